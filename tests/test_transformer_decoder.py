"""The rest of the Transformer family against PyTorch with the same weights: ``nn.MultiheadAttention``
with ``kdim``/``vdim``, ``add_bias_kv`` and ``add_zero_attn``; ``nn.TransformerDecoderLayer``,
``nn.TransformerDecoder`` and ``nn.Transformer`` (outputs, input and parameter gradients, float32 and
float64, post-norm and ``norm_first``, ReLU and GELU, causal and key-padding masks, both layouts);
float64 finite-difference gradchecks; ONNX export; clear errors; and a Transformer that learns to
reverse sequences."""

from __future__ import annotations

import numpy as np
import pytest

import rosenblatt as rb
from rosenblatt.nn import functional as F
from tests.parity import HAVE_TORCH, assert_close, on_device, rb_tensor, requires_torch, tol

if HAVE_TORCH:
    import torch
    import torch.nn.functional as TF
else:
    torch = TF = None

DTYPES = [np.float32, np.float64]
# PyTorch warns when a boolean padding mask meets a float causal mask (both are tested on purpose)
pytestmark = pytest.mark.filterwarnings("ignore:Support for mismatched key_padding_mask")
rng = np.random.default_rng(16)


def r(*shape):
    return rng.standard_normal(shape)


def _load_from_torch(module, t_module, dtype):
    """Copy a PyTorch module's state_dict (the same keys, in the same order) into ours, cast to ``dtype``."""
    t_module.to(torch.float64 if dtype == np.float64 else torch.float32)
    state = t_module.state_dict()
    assert list(module.state_dict()) == list(state), "state_dict keys differ from PyTorch's"
    for key, value in module.state_dict().items():
        assert tuple(value.shape) == tuple(state[key].shape), f"{key}: shape differs from PyTorch's"
    module.load_state_dict({k: v.detach().numpy().astype(dtype) for k, v in state.items()})
    on_device(module.to(dtype))


def _compare_grads(module, t_module, dtype, scale=10.0):
    t_params = dict(t_module.named_parameters())
    assert [n for n, _ in module.named_parameters()] == list(t_params), "parameter names or order differ"
    for name, p in module.named_parameters():
        assert p.grad is not None, f"{name}: no gradient"
        assert_close(p.grad, t_params[name].grad, f"gradient of {name}", **tol(dtype, scale))


def _backward_both(out, t_out, dtype, seed=3):
    g = np.random.default_rng(seed).standard_normal(out.shape).astype(dtype)
    out.backward(rb_tensor(g))
    t_out.backward(torch.tensor(g))


def _compare_decoder_run(out, t_out, tgt_pair, memory_pair, dtype):
    """A decoder's output, then the gradients of tgt and memory, against PyTorch's."""
    assert_close(out, t_out, "output", **tol(dtype))
    _backward_both(out, t_out, dtype)
    assert_close(tgt_pair[0].grad, tgt_pair[1].grad, "gradient of tgt", **tol(dtype, 10))
    assert_close(memory_pair[0].grad, memory_pair[1].grad, "gradient of memory", **tol(dtype, 10))


def _seq(n, length, d, batch_first, dtype):
    return r(*((n, length, d) if batch_first else (length, n, d))).astype(dtype)


def _pair(array):
    return rb_tensor(array, requires_grad=True), torch.tensor(array, requires_grad=True)


# -- MultiheadAttention: kdim / vdim, add_bias_kv, add_zero_attn ---------------------------------

MHA_VARIANTS = {
    "kdim_vdim": dict(kdim=5, vdim=3),
    "kdim_vdim_no_bias": dict(kdim=5, vdim=3, bias=False),
    "bias_kv": dict(add_bias_kv=True),
    "zero_attn": dict(add_zero_attn=True),
    "all": dict(kdim=5, vdim=7, add_bias_kv=True, add_zero_attn=True),
}


@requires_torch
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("variant", list(MHA_VARIANTS))
def test_multihead_attention_options_match_torch(dtype, batch_first, variant):
    kwargs = MHA_VARIANTS[variant]
    e, h, n, length, source = 8, 2, 3, 4, 5
    layer = rb.nn.MultiheadAttention(e, h, batch_first=batch_first, **kwargs)
    t_layer = torch.nn.MultiheadAttention(e, h, batch_first=batch_first, **kwargs)
    _load_from_torch(layer, t_layer, dtype)
    kdim, vdim = kwargs.get("kdim", e), kwargs.get("vdim", e)
    (q, tq), (k, tk), (v, tv) = (_pair(_seq(n, s, d, batch_first, dtype))
                                 for s, d in ((length, e), (source, kdim), (source, vdim)))
    kpm = np.zeros((n, source), dtype=bool)
    kpm[0, -2:] = True
    am = np.triu(np.ones((length, source), dtype=bool), 1)
    out, w = layer(q, k, v, key_padding_mask=kpm, attn_mask=am, average_attn_weights=False)
    t_out, t_w = t_layer(tq, tk, tv, key_padding_mask=torch.tensor(kpm), attn_mask=torch.tensor(am),
                         average_attn_weights=False)
    assert_close(out, t_out, "output", **tol(dtype))
    assert_close(w, t_w, "weights", **tol(dtype))
    gw = np.random.default_rng(2).standard_normal(w.shape).astype(dtype)
    g = np.random.default_rng(1).standard_normal(out.shape).astype(dtype)
    ((out * rb_tensor(g)).sum() + (w * rb_tensor(gw)).sum()).backward()
    ((t_out * torch.tensor(g)).sum() + (t_w * torch.tensor(gw)).sum()).backward()
    for name, x, tx in (("query", q, tq), ("key", k, tk), ("value", v, tv)):
        assert_close(x.grad, tx.grad, f"gradient of {name}", **tol(dtype, 10))
    _compare_grads(layer, t_layer, dtype)


@requires_torch
@pytest.mark.parametrize("variant", ["bias_kv", "zero_attn"])
def test_multihead_self_attention_with_extra_keys_and_float_masks_matches_torch(variant):
    # self-attention (query is key is value) with a float 3-D attn_mask and float padding mask
    dtype, e, h, n, length = np.float64, 6, 3, 2, 4
    layer = rb.nn.MultiheadAttention(e, h, **MHA_VARIANTS[variant])
    t_layer = torch.nn.MultiheadAttention(e, h, **MHA_VARIANTS[variant])
    _load_from_torch(layer, t_layer, dtype)
    x, tx = _pair(_seq(n, length, e, False, dtype))
    am, kpm = r(n * h, length, length), r(n, length)
    out, w = layer(x, x, x, key_padding_mask=kpm, attn_mask=am)
    t_out, t_w = t_layer(tx, tx, tx, key_padding_mask=torch.tensor(kpm), attn_mask=torch.tensor(am))
    assert_close(out, t_out, "output", **tol(dtype))
    assert_close(w, t_w, "weights", **tol(dtype))
    _backward_both(out, t_out, dtype)
    assert_close(x.grad, tx.grad, "input gradient", **tol(dtype, 10))
    _compare_grads(layer, t_layer, dtype)


@requires_torch
def test_multihead_attention_kdim_unbatched_and_is_causal_match_torch():
    layer = rb.nn.MultiheadAttention(6, 2, kdim=4, vdim=5)
    t_layer = torch.nn.MultiheadAttention(6, 2, kdim=4, vdim=5)
    _load_from_torch(layer, t_layer, np.float64)
    q, k, v = r(3, 6), r(4, 4), r(4, 5)
    kpm = np.array([False, False, True, False])
    out, w = layer(rb.tensor(q), rb.tensor(k), rb.tensor(v), key_padding_mask=kpm)
    t_out, t_w = t_layer(*(torch.tensor(a) for a in (q, k, v)), key_padding_mask=torch.tensor(kpm))
    assert_close(out, t_out, "output", **tol(np.float64))
    assert_close(w, t_w, "weights", **tol(np.float64))
    # is_causal: PyTorch needs the mask as well; ours builds it when it is left out
    x = r(5, 2, 6)
    mask = torch.nn.Transformer.generate_square_subsequent_mask(5, dtype=torch.float64)
    self_layer, t_self = rb.nn.MultiheadAttention(6, 2), torch.nn.MultiheadAttention(6, 2)
    _load_from_torch(self_layer, t_self, np.float64)
    t_out, _ = t_self(*(torch.tensor(x),) * 3, attn_mask=mask, is_causal=True, need_weights=False)
    for given in (mask.numpy(), None):
        out, _ = self_layer(*(rb.tensor(x),) * 3, attn_mask=given, is_causal=True, need_weights=False)
        assert_close(out, t_out, "causal output", **tol(np.float64))


def test_multihead_attention_separate_projections_have_pytorch_names():
    layer = rb.nn.MultiheadAttention(8, 2, kdim=4, vdim=6, add_bias_kv=True)
    shapes = {k: tuple(v.shape) for k, v in layer.state_dict().items()}
    assert shapes == {"q_proj_weight": (8, 8), "k_proj_weight": (8, 4), "v_proj_weight": (8, 6),
                      "in_proj_bias": (24,), "bias_k": (1, 1, 8), "bias_v": (1, 1, 8),
                      "out_proj.weight": (8, 8), "out_proj.bias": (8,)}
    assert layer.in_proj_weight is None and not layer._qkv_same_embed_dim
    same = rb.nn.MultiheadAttention(8, 2, kdim=8, vdim=8)
    assert same._qkv_same_embed_dim and same.q_proj_weight is None and "in_proj_weight" in same.state_dict()
    assert "kdim=4, vdim=6" in repr(layer) and "add_bias_kv=True" in repr(layer)


def test_multihead_attention_options_gradcheck():
    layer = rb.nn.MultiheadAttention(4, 2, kdim=3, vdim=5, add_bias_kv=True, add_zero_attn=True,
                                     batch_first=True).to(np.float64)
    kpm = np.array([[False, False, True], [False, False, False]])
    params = list(layer.parameters())
    assert rb.autograd.gradcheck(
        lambda q, k, v, *p: layer(q, k, v, key_padding_mask=kpm, need_weights=True),
        (rb_tensor(r(2, 4, 4), True), rb_tensor(r(2, 3, 3), True), rb_tensor(r(2, 3, 5), True), *params))
    # a learnt float attn_mask keeps its gradient through the padding for the extra keys
    assert rb.autograd.gradcheck(
        lambda q, k, v, mask: layer(q, k, v, attn_mask=mask, need_weights=False)[0],
        (rb_tensor(r(2, 4, 4), True), rb_tensor(r(2, 3, 3), True), rb_tensor(r(2, 3, 5), True),
         rb_tensor(r(4, 3), True)))


def test_multihead_attention_option_errors_name_the_layer():
    layer = rb.nn.MultiheadAttention(8, 2, kdim=4, vdim=6, batch_first=True)
    q = rb.tensor(r(2, 3, 8).astype(np.float32))
    k, v = rb.tensor(r(2, 5, 4).astype(np.float32)), rb.tensor(r(2, 5, 6).astype(np.float32))
    with pytest.raises(ValueError, match=r"MultiheadAttention\(embed_dim=8\): expected key of shape "
                                         r"\(N, S, kdim\) with kdim = 4, got \(2, 5, 8\)"):
        layer(q, rb.tensor(r(2, 5, 8).astype(np.float32)), v)
    with pytest.raises(ValueError, match="expected value of shape .* vdim = 6"):
        layer(q, k, k)
    with pytest.raises(ValueError, match="kdim must be positive"):
        rb.nn.MultiheadAttention(8, 2, kdim=0)
    extra = rb.nn.MultiheadAttention(8, 2, add_zero_attn=True, batch_first=True)
    with pytest.raises(ValueError, match=r"expected key_padding_mask of shape \(2, 3\)"):
        extra(q, q, q, key_padding_mask=np.zeros((2, 4), bool))
    with pytest.raises(ValueError, match=r"expected attn_mask of shape \(3, 3\)"):
        extra(q, q, q, attn_mask=np.zeros((3, 4), bool))


# -- TransformerDecoderLayer / TransformerDecoder ------------------------------------------------


def _decoder_inputs(n, t, s, d, batch_first, dtype):
    tgt, memory = _seq(n, t, d, batch_first, dtype), _seq(n, s, d, batch_first, dtype)
    tgt_kpm = np.zeros((n, t), dtype=bool)
    tgt_kpm[1, -2:] = True  # trailing padding: every query keeps an earlier key under the causal mask
    mem_kpm = np.zeros((n, s), dtype=bool)
    mem_kpm[0, -3:] = True
    return tgt, memory, tgt_kpm, mem_kpm


@requires_torch
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_transformer_decoder_matches_torch(dtype, batch_first, norm_first, activation):
    d, h, ff, n, t, s = 8, 2, 16, 3, 5, 6
    kwargs = dict(dropout=0.0, activation=activation, batch_first=batch_first, norm_first=norm_first)
    t_model = torch.nn.TransformerDecoder(torch.nn.TransformerDecoderLayer(d, h, ff, **kwargs), 2,
                                          norm=torch.nn.LayerNorm(d))
    model = rb.nn.TransformerDecoder(rb.nn.TransformerDecoderLayer(d, h, ff, **kwargs), 2, norm=rb.nn.LayerNorm(d))
    _load_from_torch(model, t_model, dtype)
    tgt, memory, tgt_kpm, mem_kpm = _decoder_inputs(n, t, s, d, batch_first, dtype)
    (x, tx), (m, tm) = _pair(tgt), _pair(memory)
    t_mask = torch.nn.Transformer.generate_square_subsequent_mask(t, dtype=tx.dtype)
    out = model(x, m, tgt_mask=rb.nn.Transformer.generate_square_subsequent_mask(t, dtype=dtype),
                tgt_key_padding_mask=tgt_kpm, memory_key_padding_mask=mem_kpm, tgt_is_causal=True)
    t_out = t_model(tx, tm, tgt_mask=t_mask, tgt_key_padding_mask=torch.tensor(tgt_kpm),
                    memory_key_padding_mask=torch.tensor(mem_kpm), tgt_is_causal=True)
    _compare_decoder_run(out, t_out, (x, tx), (m, tm), dtype)
    _compare_grads(model, t_model, dtype)


@requires_torch
@pytest.mark.parametrize("dtype", DTYPES)
def test_transformer_decoder_layer_masks_and_options_match_torch(dtype):
    # float masks for both attentions, a callable activation, layer_norm_eps and bias=False
    d, h, ff, n, t, s = 6, 3, 10, 2, 4, 5
    kwargs = dict(dropout=0.0, layer_norm_eps=1e-3, bias=False, batch_first=True)
    layer = rb.nn.TransformerDecoderLayer(d, h, ff, activation=F.gelu, **kwargs)
    t_layer = torch.nn.TransformerDecoderLayer(d, h, ff, activation=TF.gelu, **kwargs)
    _load_from_torch(layer, t_layer, dtype)
    assert layer.norm1.eps == 1e-3 and layer.linear1.bias is None and layer.self_attn.in_proj_bias is None
    (x, tx), (m, tm) = _pair(_seq(n, t, d, True, dtype)), _pair(_seq(n, s, d, True, dtype))
    tgt_mask, memory_mask = r(n * h, t, t).astype(dtype), r(t, s).astype(dtype)
    out = layer(x, m, tgt_mask=tgt_mask, memory_mask=memory_mask)
    t_out = t_layer(tx, tm, tgt_mask=torch.tensor(tgt_mask), memory_mask=torch.tensor(memory_mask))
    _compare_decoder_run(out, t_out, (x, tx), (m, tm), dtype)
    _compare_grads(layer, t_layer, dtype)


@requires_torch
def test_transformer_decoder_layer_unbatched_and_causal_flags_match_torch():
    d, h, t, s = 8, 4, 5, 5
    layer = rb.nn.TransformerDecoderLayer(d, h, 12, dropout=0.0, norm_first=True)
    t_layer = torch.nn.TransformerDecoderLayer(d, h, 12, dropout=0.0, norm_first=True)
    _load_from_torch(layer, t_layer, np.float64)
    tgt, memory = r(t, d), r(s, d)
    mask = torch.nn.Transformer.generate_square_subsequent_mask(t, dtype=torch.float64)
    t_out = t_layer(torch.tensor(tgt), torch.tensor(memory), tgt_mask=mask, memory_mask=mask,
                    tgt_is_causal=True, memory_is_causal=True)
    # the flags alone build the masks
    out = layer(rb.tensor(tgt), rb.tensor(memory), tgt_is_causal=True, memory_is_causal=True)
    assert_close(out, t_out, "output", **tol(np.float64))
    assert out.shape == (t, d)


@requires_torch
@pytest.mark.parametrize("dtype", DTYPES)
def test_encoder_layer_options_match_torch(dtype):
    # layer_norm_eps, bias=False, a Module as activation, norm and enable_nested_tensor on the stack
    d, h = 8, 2
    kwargs = dict(dropout=0.0, layer_norm_eps=1e-4, bias=False, batch_first=True)
    model = rb.nn.TransformerEncoder(rb.nn.TransformerEncoderLayer(d, h, 12, activation=rb.nn.GELU(), **kwargs),
                                     2, norm=rb.nn.LayerNorm(d, bias=False), enable_nested_tensor=False)
    t_model = torch.nn.TransformerEncoder(
        torch.nn.TransformerEncoderLayer(d, h, 12, activation=torch.nn.GELU(), **kwargs), 2,
        norm=torch.nn.LayerNorm(d, bias=False), enable_nested_tensor=False)
    _load_from_torch(model, t_model, dtype)
    x, tx = _pair(_seq(2, 5, d, True, dtype))
    out, t_out = model(x, is_causal=True), t_model(tx, mask=torch.nn.Transformer.generate_square_subsequent_mask(
        5, dtype=tx.dtype), is_causal=True)
    assert_close(out, t_out, "output", **tol(dtype))
    _backward_both(out, t_out, dtype)
    assert_close(x.grad, tx.grad, "input gradient", **tol(dtype, 10))
    _compare_grads(model, t_model, dtype)


def test_transformer_decoder_layer_gradcheck():
    layer = rb.nn.TransformerDecoderLayer(4, 2, 6, dropout=0.0, activation="gelu", batch_first=True).to(np.float64)
    params = list(layer.parameters())
    tgt_kpm = np.array([[False, False, True], [False, False, False]])
    mem_kpm = np.array([[False, True, True, False], [False, False, False, False]])

    def fn(tgt, memory, *p):
        return layer(tgt, memory, tgt_key_padding_mask=tgt_kpm, memory_key_padding_mask=mem_kpm, tgt_is_causal=True)

    assert rb.autograd.gradcheck(fn, (rb_tensor(r(2, 3, 4), True), rb_tensor(r(2, 4, 4), True), *params))
    pre_norm = rb.nn.TransformerDecoderLayer(4, 2, 6, dropout=0.0, norm_first=True).to(np.float64)
    assert rb.autograd.gradcheck(lambda tgt, memory, *p: pre_norm(tgt, memory, tgt_is_causal=True),
                                 (rb_tensor(r(3, 2, 4), True), rb_tensor(r(2, 2, 4), True),
                                  *pre_norm.parameters()))


def test_decoder_layers_are_independent_copies_with_pytorch_names():
    model = rb.nn.TransformerDecoder(rb.nn.TransformerDecoderLayer(8, 2, 16), 3)
    names = [n for n, _ in model.named_parameters()]
    assert names[:3] == ["layers.0.self_attn.in_proj_weight", "layers.0.self_attn.in_proj_bias",
                         "layers.0.self_attn.out_proj.weight"]
    assert "layers.0.multihead_attn.in_proj_weight" in names and "layers.2.norm3.bias" in names
    assert model.layers[0].linear1.weight is not model.layers[1].linear1.weight


def test_decoder_dropout_only_in_training():
    layer = rb.nn.TransformerDecoderLayer(8, 2, 16, dropout=0.5, batch_first=True)
    tgt, memory = rb.tensor(r(2, 4, 8).astype(np.float32)), rb.tensor(r(2, 5, 8).astype(np.float32))
    assert not np.allclose(layer(tgt, memory).numpy(), layer(tgt, memory).numpy())
    layer.eval()
    np.testing.assert_array_equal(layer(tgt, memory).numpy(), layer(tgt, memory).numpy())


# -- Transformer -------------------------------------------------------------------------------


@requires_torch
@pytest.mark.filterwarnings("ignore:enable_nested_tensor is True")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("norm_first", [False, True])
def test_transformer_matches_torch(dtype, batch_first, norm_first):
    d, h, n, s, t = 8, 2, 3, 6, 5
    kwargs = dict(d_model=d, nhead=h, num_encoder_layers=2, num_decoder_layers=2, dim_feedforward=12, dropout=0.0,
                  activation="gelu" if norm_first else "relu", batch_first=batch_first, norm_first=norm_first)
    model, t_model = rb.nn.Transformer(**kwargs), torch.nn.Transformer(**kwargs)
    _load_from_torch(model, t_model, dtype)
    tgt, src, tgt_kpm, src_kpm = _decoder_inputs(n, t, s, d, batch_first, dtype)
    (x, tx), (y, ty) = _pair(src), _pair(tgt)
    masks = dict(tgt_key_padding_mask=tgt_kpm, src_key_padding_mask=src_kpm, memory_key_padding_mask=src_kpm)
    out = model(x, y, tgt_mask=model.generate_square_subsequent_mask(t, dtype=dtype), **masks)
    t_out = t_model(tx, ty, tgt_mask=t_model.generate_square_subsequent_mask(t, dtype=tx.dtype),
                    **{k: torch.tensor(v) for k, v in masks.items()})
    assert_close(out, t_out, "output", **tol(dtype, 10))
    _backward_both(out, t_out, dtype)
    assert_close(x.grad, tx.grad, "gradient of src", **tol(dtype, 10))
    assert_close(y.grad, ty.grad, "gradient of tgt", **tol(dtype, 10))
    _compare_grads(model, t_model, dtype, scale=30)


@requires_torch
def test_generate_square_subsequent_mask_and_init_match_torch():
    ours = rb.nn.Transformer.generate_square_subsequent_mask(4)
    theirs = torch.nn.Transformer.generate_square_subsequent_mask(4)
    assert_close(ours, theirs, "mask")
    assert ours.dtype == np.float32
    assert rb.nn.Transformer.generate_square_subsequent_mask(3, dtype=np.float64).dtype == np.float64
    # every weight matrix is re-drawn Xavier-uniform: the copies of a layer differ
    model = rb.nn.Transformer(16, 2, 2, 2, 32)
    w0, w1 = model.encoder.layers[0].linear1.weight.numpy(), model.encoder.layers[1].linear1.weight.numpy()
    assert not np.allclose(w0, w1)
    bound = np.sqrt(6 / (16 + 32))
    assert np.abs(w0).max() <= bound and np.abs(w0).max() > 0.8 * bound
    assert [n for n, _ in model.named_parameters()][-2:] == ["decoder.norm.weight", "decoder.norm.bias"]


def test_transformer_custom_parts():
    encoder = rb.nn.TransformerEncoder(rb.nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0), 1)
    decoder = rb.nn.TransformerDecoder(rb.nn.TransformerDecoderLayer(8, 2, 16, dropout=0.0), 1)
    model = rb.nn.Transformer(8, 2, custom_encoder=encoder, custom_decoder=decoder)
    assert model.encoder is encoder and model.decoder is decoder and len(model.decoder.layers) == 1
    src, tgt = rb.tensor(r(6, 2, 8).astype(np.float32)), rb.tensor(r(4, 2, 8).astype(np.float32))
    assert model(src, tgt, tgt_is_causal=True).shape == (4, 2, 8)


def test_bad_input_names_the_layer():
    layer = rb.nn.TransformerDecoderLayer(8, 2, 16, batch_first=True)
    tgt, memory = rb.tensor(r(2, 4, 8).astype(np.float32)), rb.tensor(r(2, 5, 8).astype(np.float32))
    with pytest.raises(ValueError, match=r"TransformerDecoderLayer\(d_model=8\): expected tgt of shape "
                                         r"\(N, T, E\) or \(T, E\) with E = 8, got \(2, 4, 6\)"):
        layer(rb.tensor(r(2, 4, 6).astype(np.float32)), memory)
    with pytest.raises(ValueError, match=r"expected memory of shape \(N, S, E\).*got \(2, 5, 6\)"):
        layer(tgt, rb.tensor(r(2, 5, 6).astype(np.float32)))
    with pytest.raises(ValueError, match="tgt and memory must have the same batch size"):
        layer(tgt, rb.tensor(r(3, 5, 8).astype(np.float32)))
    with pytest.raises(ValueError, match="tgt and memory must both be batched or both unbatched"):
        layer(tgt, rb.tensor(r(5, 8).astype(np.float32)))
    with pytest.raises(TypeError, match="TransformerDecoderLayer: expected memory to be a Tensor"):
        layer(tgt, r(2, 5, 8))
    with pytest.raises(ValueError, match=r"attn_mask of shape \(4, 4\)"):
        layer(tgt, memory, tgt_mask=np.zeros((4, 5), bool))
    with pytest.raises(ValueError, match=r"key_padding_mask of shape \(2, 5\)"):
        layer(tgt, memory, memory_key_padding_mask=np.zeros((2, 4), bool))
    with pytest.raises(ValueError, match="TransformerDecoderLayer: activation should be"):
        rb.nn.TransformerDecoderLayer(8, 2, activation="tanh")
    with pytest.raises(ValueError, match="TransformerDecoder: num_layers"):
        rb.nn.TransformerDecoder(layer, 0)
    with pytest.raises(TypeError, match="TransformerDecoder: expected a layer"):
        rb.nn.TransformerDecoder("layer", 2)
    with pytest.raises(ValueError, match=r"TransformerEncoderLayer\(d_model=8\): expected src"):
        rb.nn.TransformerEncoderLayer(8, 2)(rb.tensor(r(4, 2, 6).astype(np.float32)))
    model = rb.nn.Transformer(8, 2, 1, 1, 16)
    with pytest.raises(ValueError, match=r"Transformer: src and tgt must have the same batch size \(dimension 1\)"):
        model(rb.tensor(r(5, 2, 8).astype(np.float32)), rb.tensor(r(4, 3, 8).astype(np.float32)))
    with pytest.raises(ValueError, match=r"Transformer\(d_model=8\): expected tgt"):
        model(rb.tensor(r(5, 2, 8).astype(np.float32)), rb.tensor(r(4, 2, 4).astype(np.float32)))


# -- ONNX ----------------------------------------------------------------------------------------


class _Decoder(rb.nn.Module):
    """A decoder called with constant masks (exported into the graph)."""

    def __init__(self, decoder, length):
        super().__init__()
        self.decoder = decoder
        self.mask = rb.nn.Transformer.generate_square_subsequent_mask(length)

    def forward(self, tgt, memory):
        return self.decoder(tgt, memory, tgt_mask=self.mask)


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
def test_transformer_decoder_onnx_matches_onnxruntime(norm_first, batch_first, tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from tests.test_onnx import roundtrip

    layer = rb.nn.TransformerDecoderLayer(8, 2, 16, activation="gelu" if norm_first else "relu",
                                          batch_first=batch_first, norm_first=norm_first)
    model = _Decoder(rb.nn.TransformerDecoder(layer, 2, norm=rb.nn.LayerNorm(8)), 4).eval()
    inputs = [[r(b, 4, 8).astype(np.float32), r(b, 6, 8).astype(np.float32)] for b in (3, 5)]
    if batch_first:
        roundtrip(model, *inputs, tmp_path)
    else:
        inputs = [[a.transpose(1, 0, 2).copy() for a in pair] for pair in inputs]
        roundtrip(model, *inputs, tmp_path, batch_axis=1)


class _CrossAttention(rb.nn.Module):
    def __init__(self):
        super().__init__()
        self.attention = rb.nn.MultiheadAttention(8, 2, kdim=5, vdim=3, batch_first=True)

    def forward(self, x, k, v):
        return self.attention(x, k, v)


def test_multihead_attention_kdim_onnx_matches_onnxruntime(tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from rosenblatt.io.onnx_export import UnsupportedOperatorError, export_onnx
    from tests.test_onnx import roundtrip

    inputs = [[r(b, 4, 8).astype(np.float32), r(b, 6, 5).astype(np.float32), r(b, 6, 3).astype(np.float32)]
              for b in (3, 5)]
    roundtrip(_CrossAttention().eval(), *inputs, tmp_path)
    model = _CrossAttention()
    model.attention = rb.nn.MultiheadAttention(8, 2, add_zero_attn=True, batch_first=True)
    x = r(3, 4, 8).astype(np.float32)
    with pytest.raises(UnsupportedOperatorError, match="add_zero_attn"):
        export_onnx(model.eval(), [x, x, x], tmp_path / "m.onnx")


# -- learning ------------------------------------------------------------------------------------


def test_transformer_learns_to_reverse_sequences():
    """Reversal needs the decoder's attention to find the mirrored source position through the
    positional embeddings, with the causal mask keeping the next token hidden: chance is 1/8 per
    token, and with the gradient of either the encoder's self-attention or the decoder's
    cross-attention negated, no sequence comes out right (27% of tokens)."""
    rb.manual_seed(0)
    data = np.random.default_rng(0)
    vocab, length, d = 8, 6, 32
    bos = vocab
    token = rb.nn.Embedding(vocab + 1, d)
    position = rb.nn.Embedding(length, d)
    model = rb.nn.Transformer(d, 4, 1, 1, 64, dropout=0.0, batch_first=True)
    head = rb.nn.Linear(d, vocab)
    params = [*token.parameters(), *position.parameters(), *model.parameters(), *head.parameters()]
    opt = rb.optim.Adam(params, lr=3e-3)
    mask = rb.nn.Transformer.generate_square_subsequent_mask(length)
    positions = rb.tensor(np.arange(length))

    def embed(tokens):
        return token(rb.tensor(tokens)) + position(positions)

    def logits(src, tgt_in):
        return head(model(embed(src), embed(tgt_in), tgt_mask=mask))

    for _ in range(250):
        src = data.integers(0, vocab, size=(64, length))
        tgt = src[:, ::-1]
        tgt_in = np.concatenate([np.full((64, 1), bos), tgt[:, :-1]], axis=1)
        loss = F.cross_entropy(logits(src, tgt_in).reshape(-1, vocab), rb.tensor(tgt.reshape(-1)))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    src = data.integers(0, vocab, size=(200, length))
    decoded = np.full((200, 1), bos)
    with rb.no_grad():  # greedy decoding, one token at a time
        for i in range(length):
            padded = np.concatenate([decoded, np.zeros((200, length - decoded.shape[1]), int)], axis=1)
            step = logits(src, padded).numpy()[:, i].argmax(-1)
            decoded = np.concatenate([decoded, step[:, None]], axis=1)
    exact = np.mean(np.all(decoded[:, 1:] == src[:, ::-1], axis=1))
    assert exact > 0.95, (exact, loss.item())
