"""Attention against PyTorch with the same weights: ``F.scaled_dot_product_attention``,
``nn.MultiheadAttention``, ``nn.TransformerEncoderLayer`` / ``TransformerEncoder`` (outputs, input and
parameter gradients, float32 and float64), float64 finite-difference gradchecks, the fused
function against its composite oracle, and clear errors for bad input."""

from __future__ import annotations

import numpy as np
import pytest

import rosenblatt as rb
from rosenblatt.nn import functional as F
from rosenblatt.nn.functional.attention import scaled_dot_product_attention_composite
from tests.parity import (
    HAVE_TORCH,
    assert_close,
    check_grad,
    check_op,
    on_device,
    rb_tensor,
    requires_torch,
    tol,
)

if HAVE_TORCH:
    import torch
    import torch.nn.functional as TF
else:
    torch = TF = None

DTYPES = [np.float32, np.float64]
rng = np.random.default_rng(11)


def r(*shape):
    return rng.standard_normal(shape)


# -- scaled_dot_product_attention --------------------------------------------------------------

BOOL_MASK = rng.random((5, 6)) > 0.3
BOOL_MASK[:, 0] = True  # every query keeps at least one key
FLOAT_MASK = rng.standard_normal((2, 1, 5, 6))


@requires_torch
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mask", ["none", "bool", "float", "causal"])
def test_sdpa_matches_torch(dtype, mask):
    attn_mask = {"none": None, "bool": BOOL_MASK, "float": FLOAT_MASK.astype(dtype), "causal": None}[mask]
    causal = mask == "causal"

    def rb_fn(q, k, v):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=causal)

    def torch_fn(q, k, v):
        m = None if attn_mask is None else torch.tensor(attn_mask)
        return TF.scaled_dot_product_attention(q, k, v, attn_mask=m, is_causal=causal)

    check_op(rb_fn, torch_fn, [r(2, 3, 5, 4), r(2, 3, 6, 4), r(2, 3, 6, 7)], dtype)


@requires_torch
@pytest.mark.parametrize("dtype", DTYPES)
def test_sdpa_scale_broadcast_and_float_mask_gradient_match_torch(dtype):
    # a learnable additive mask gets the gradient of the scores, summed over its broadcast axes
    check_op(lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, attn_mask=m, scale=0.3),
             lambda q, k, v, m: TF.scaled_dot_product_attention(q, k, v, attn_mask=m, scale=0.3),
             [r(3, 4, 5), r(3, 6, 5), r(3, 6, 2), r(4, 6)], dtype)
    # key and value shared over the batch (leading axes broadcast)
    check_op(F.scaled_dot_product_attention, TF.scaled_dot_product_attention,
             [r(2, 3, 4, 5), r(1, 3, 6, 5), r(1, 3, 6, 2)], dtype)


@requires_torch
def test_sdpa_fully_masked_query_gives_zeros_like_torch():
    mask = np.ones((4, 5), dtype=bool)
    mask[2] = False
    q, k, v = r(2, 4, 3), r(2, 5, 3), r(2, 5, 3)
    ours = F.scaled_dot_product_attention(rb.tensor(q), rb.tensor(k), rb.tensor(v), attn_mask=mask)
    theirs = TF.scaled_dot_product_attention(torch.tensor(q), torch.tensor(k), torch.tensor(v),
                                             attn_mask=torch.tensor(mask))
    assert_close(ours, theirs, "output", rtol=1e-12, atol=1e-12)
    assert np.all(ours.numpy()[:, 2] == 0)


def test_sdpa_gradcheck():
    float_mask = r(4, 6)
    check_grad(lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, attn_mask=m),
               [r(2, 4, 3), r(2, 6, 3), r(2, 6, 5), float_mask])
    check_grad(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
               [r(2, 4, 3), r(2, 4, 3), r(2, 4, 5)], second_order=True)


def test_sdpa_dropout_gradcheck_with_a_fixed_mask():
    # the same seed draws the same dropout mask on every evaluation of the function
    def fn(q, k, v):
        rb.manual_seed(5)
        return F.scaled_dot_product_attention(q, k, v, dropout_p=0.4)

    check_grad(fn, [r(2, 4, 3), r(2, 6, 3), r(2, 6, 5)])


def test_sdpa_dropout_keeps_the_expectation():
    q, k, v = (rb.tensor(a) for a in (r(1, 8, 4), r(1, 8, 4), r(1, 8, 4)))
    clean = F.scaled_dot_product_attention(q, k, v).numpy()
    runs = np.mean([F.scaled_dot_product_attention(q, k, v, dropout_p=0.3).numpy() for _ in range(3000)], 0)
    assert np.abs(runs - clean).max() < 0.08
    with_dropout = F.scaled_dot_product_attention(q, k, v, dropout_p=0.5).numpy()
    assert not np.allclose(with_dropout, clean)


def test_sdpa_equals_composite_oracle_and_is_one_node():
    q, k, v = (rb_tensor(a, requires_grad=True) for a in (r(2, 4, 3), r(2, 6, 3), r(2, 6, 5)))
    bias = r(4, 6)
    fused = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
    composite = scaled_dot_product_attention_composite(q, k, v, rb_tensor(bias))
    assert_close(fused, composite, "forward", rtol=1e-6, atol=1e-7)
    assert fused.grad_fn.inputs[0] is q  # one node: q, k, v feed it directly
    g1 = rb.grad(fused.sum(), [q, k, v])
    g2 = rb.grad(composite.sum(), [q, k, v])
    for a, b in zip(g1, g2):
        assert_close(a, b, "gradient", rtol=1e-5, atol=1e-6)


def test_sdpa_bad_input_names_the_op():
    q = rb.tensor(r(2, 4, 3))
    with pytest.raises(ValueError, match="scaled_dot_product_attention: query and key"):
        F.scaled_dot_product_attention(q, rb.tensor(r(2, 5, 4)), rb.tensor(r(2, 5, 4)))
    with pytest.raises(ValueError, match="key and value must have the same length"):
        F.scaled_dot_product_attention(q, rb.tensor(r(2, 5, 3)), rb.tensor(r(2, 6, 3)))
    with pytest.raises(ValueError, match="attn_mask of shape"):
        F.scaled_dot_product_attention(q, q, q, attn_mask=np.ones((3, 3), bool))
    with pytest.raises(ValueError, match="not both"):
        F.scaled_dot_product_attention(q, q, q, attn_mask=np.ones((4, 4), bool), is_causal=True)
    with pytest.raises(TypeError, match="expected query to be a Tensor"):
        F.scaled_dot_product_attention(r(2, 4, 3), q, q)
    with pytest.raises(ValueError, match="dropout probability"):
        F.scaled_dot_product_attention(q, q, q, dropout_p=1.5)


# -- MultiheadAttention ------------------------------------------------------------------------


def _load_from_torch(module, t_module, dtype):
    """Copy a PyTorch module's state_dict (the same keys) into ours, cast to ``dtype``."""
    t_module.to(torch.float64 if dtype == np.float64 else torch.float32)
    module.load_state_dict({k: v.detach().numpy().astype(dtype) for k, v in t_module.state_dict().items()})
    on_device(module.to(dtype))


def _compare_grads(module, t_module, dtype, scale=1.0):
    t_params = dict(t_module.named_parameters())
    names = [n for n, _ in module.named_parameters()]
    assert names == list(t_params), "parameter names and order differ from PyTorch's"
    for name, p in module.named_parameters():
        assert p.grad is not None, f"{name}: no gradient"
        assert_close(p.grad, t_params[name].grad, f"gradient of {name}", **tol(dtype, 10 * scale))


def _mha_case(dtype, batch_first, self_attention, masks, need_weights, average):
    e, h, n, length, source = 8, 2, 3, 4, 5
    if self_attention:
        source = length
    layer = rb.nn.MultiheadAttention(e, h, batch_first=batch_first)
    t_layer = torch.nn.MultiheadAttention(e, h, batch_first=batch_first)
    _load_from_torch(layer, t_layer, dtype)

    def shape(s):
        return (n, s, e) if batch_first else (s, n, e)

    arrays = [r(*shape(length))] if self_attention else [r(*shape(length)), r(*shape(source)), r(*shape(source))]
    arrays = [a.astype(dtype) for a in arrays]
    kpm = am = None
    if masks == "bool":
        kpm = np.zeros((n, source), dtype=bool)
        kpm[0, -2:] = True
        am = np.triu(np.ones((length, source), dtype=bool), 1)
    elif masks == "float":
        kpm = r(n, source).astype(dtype)
        am = r(n * h, length, source).astype(dtype)
    xs = [rb_tensor(a, requires_grad=True) for a in arrays]
    txs = [torch.tensor(a, requires_grad=True) for a in arrays]
    args = xs * 3 if self_attention else xs
    t_args = txs * 3 if self_attention else txs
    out, w = layer(*args, key_padding_mask=kpm, attn_mask=am, need_weights=need_weights,
                   average_attn_weights=average)
    t_out, t_w = t_layer(*t_args, key_padding_mask=None if kpm is None else torch.tensor(kpm),
                         attn_mask=None if am is None else torch.tensor(am), need_weights=need_weights,
                         average_attn_weights=average)
    assert_close(out, t_out, "output", **tol(dtype))
    if need_weights:
        assert_close(w, t_w, "weights", **tol(dtype))
    else:
        assert w is None and t_w is None
    g = np.random.default_rng(1).standard_normal(out.shape).astype(dtype)
    loss, t_loss = (out * rb_tensor(g)).sum(), (t_out * torch.tensor(g)).sum()
    if need_weights:  # the weights take part in the loss too
        gw = np.random.default_rng(2).standard_normal(w.shape).astype(dtype)
        loss, t_loss = loss + (w * rb_tensor(gw)).sum(), t_loss + (t_w * torch.tensor(gw)).sum()
    loss.backward()
    t_loss.backward()
    for i, (x, tx) in enumerate(zip(xs, txs)):
        assert_close(x.grad, tx.grad, f"gradient of input {i}", **tol(dtype, 10))
    _compare_grads(layer, t_layer, dtype)


@requires_torch
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("self_attention", [True, False])
@pytest.mark.parametrize("masks", ["none", "bool", "float"])
def test_multihead_attention_matches_torch(dtype, batch_first, self_attention, masks):
    _mha_case(dtype, batch_first, self_attention, masks, need_weights=False, average=True)


@requires_torch
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("average", [True, False])
@pytest.mark.parametrize("self_attention", [True, False])
def test_multihead_attention_weights_match_torch(dtype, average, self_attention):
    _mha_case(dtype, True, self_attention, "bool", need_weights=True, average=average)


@requires_torch
def test_multihead_attention_unbatched_and_without_bias_match_torch():
    layer, t_layer = rb.nn.MultiheadAttention(6, 3, bias=False), torch.nn.MultiheadAttention(6, 3, bias=False)
    _load_from_torch(layer, t_layer, np.float64)
    x = r(4, 6)
    out, w = layer(rb.tensor(x), rb.tensor(x), rb.tensor(x))
    t_out, t_w = t_layer(torch.tensor(x), torch.tensor(x), torch.tensor(x))
    assert_close(out, t_out, "output", **tol(np.float64))
    assert_close(w, t_w, "weights", **tol(np.float64))


def test_multihead_attention_gradcheck():
    layer = rb.nn.MultiheadAttention(4, 2, batch_first=True).to(np.float64)
    kpm = np.array([[False, False, True], [False, False, False]])

    def fn(x, kv, *params):
        return layer(x, kv, kv, key_padding_mask=kpm, need_weights=True)

    params = [p for p in layer.parameters()]
    assert rb.autograd.gradcheck(fn, (rb_tensor(r(2, 5, 4), True), rb_tensor(r(2, 3, 4), True), *params))

    def self_fn(x, *params):
        return layer(x, x, x, need_weights=False)[0]

    assert rb.autograd.gradcheck(self_fn, (rb_tensor(r(2, 3, 4), True), *params))


def test_multihead_attention_dropout_only_in_training():
    layer = rb.nn.MultiheadAttention(8, 2, dropout=0.5, batch_first=True)
    x = rb.tensor(r(2, 5, 8).astype(np.float32))
    a, wa = layer(x, x, x)
    b, _ = layer(x, x, x)
    assert not np.allclose(a.numpy(), b.numpy())
    layer.eval()
    c, wc = layer(x, x, x)
    d, _ = layer(x, x, x)
    np.testing.assert_array_equal(c.numpy(), d.numpy())
    np.testing.assert_allclose(wc.numpy().sum(-1), 1.0, rtol=1e-5)


def test_multihead_attention_bad_input_names_layer():
    with pytest.raises(ValueError, match="divisible"):
        rb.nn.MultiheadAttention(10, 3)
    layer = rb.nn.MultiheadAttention(8, 2, batch_first=True)
    x = rb.tensor(r(2, 5, 8).astype(np.float32))
    with pytest.raises(ValueError, match=r"MultiheadAttention\(embed_dim=8\): expected query of shape \(N, L, E\)"):
        layer(rb.tensor(r(2, 5, 6).astype(np.float32)), x, x)
    with pytest.raises(ValueError, match="key_padding_mask of shape"):
        layer(x, x, x, key_padding_mask=np.zeros((2, 4), bool))
    with pytest.raises(ValueError, match="attn_mask of shape"):
        layer(x, x, x, attn_mask=np.zeros((5, 4), bool))


# -- Transformer encoder -----------------------------------------------------------------------


def _encoder_case(dtype, batch_first, norm_first, activation, num_layers=2, train_dropout=False):
    d, h, ff = 8, 2, 16
    kwargs = dict(dropout=0.0, activation=activation, batch_first=batch_first, norm_first=norm_first)
    t_layer = torch.nn.TransformerEncoderLayer(d, h, ff, **kwargs)
    t_model = torch.nn.TransformerEncoder(t_layer, num_layers, enable_nested_tensor=False)
    model = rb.nn.TransformerEncoder(rb.nn.TransformerEncoderLayer(d, h, ff, **kwargs), num_layers)
    _load_from_torch(model, t_model, dtype)
    n, s = 3, 6
    x = r(*((n, s, d) if batch_first else (s, n, d))).astype(dtype)
    kpm = np.zeros((n, s), dtype=bool)
    kpm[1, 4:] = True
    xr, xt = rb_tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    out = model(xr, src_key_padding_mask=kpm)
    t_out = t_model(xt, src_key_padding_mask=torch.tensor(kpm))
    assert_close(out, t_out, "output", **tol(dtype))
    g = np.random.default_rng(4).standard_normal(out.shape).astype(dtype)
    out.backward(rb_tensor(g))
    t_out.backward(torch.tensor(g))
    assert_close(xr.grad, xt.grad, "input gradient", **tol(dtype, 10))
    _compare_grads(model, t_model, dtype)


@requires_torch
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_transformer_encoder_state_dict_matches_torch(dtype, batch_first, norm_first, activation):
    _encoder_case(dtype, batch_first, norm_first, activation)


@requires_torch
@pytest.mark.parametrize("dtype", DTYPES)
def test_transformer_encoder_layer_with_causal_mask_matches_torch(dtype):
    layer = rb.nn.TransformerEncoderLayer(8, 4, 12, dropout=0.0, batch_first=True)
    t_layer = torch.nn.TransformerEncoderLayer(8, 4, 12, dropout=0.0, batch_first=True)
    _load_from_torch(layer, t_layer, dtype)
    x = r(2, 5, 8).astype(dtype)
    mask = torch.nn.Transformer.generate_square_subsequent_mask(5, dtype=t_layer.linear1.weight.dtype)
    xr, xt = rb_tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    out = layer(xr, src_mask=mask.numpy(), is_causal=True)
    t_out = t_layer(xt, src_mask=mask, is_causal=True)
    assert_close(out, t_out, "output", **tol(dtype))
    out.sum().backward()
    t_out.sum().backward()
    assert_close(xr.grad, xt.grad, "input gradient", **tol(dtype, 10))
    _compare_grads(layer, t_layer, dtype)


def test_transformer_encoder_layer_gradcheck():
    layer = rb.nn.TransformerEncoderLayer(4, 2, 6, dropout=0.0, activation="gelu", batch_first=True,
                                          norm_first=True).to(np.float64)
    params = list(layer.parameters())
    kpm = np.array([[False, False, True], [False, False, False]])
    assert rb.autograd.gradcheck(lambda x, *p: layer(x, src_key_padding_mask=kpm),
                                 (rb_tensor(r(2, 3, 4), True), *params))


def test_transformer_encoder_layers_are_independent_copies():
    model = rb.nn.TransformerEncoder(rb.nn.TransformerEncoderLayer(8, 2, 16), 3)
    names = [n for n, _ in model.named_parameters()]
    assert names[0] == "layers.0.self_attn.in_proj_weight" and "layers.2.norm2.bias" in names
    w0, w1 = model.layers[0].linear1.weight, model.layers[1].linear1.weight
    assert w0 is not w1
    with rb.no_grad():
        w0.data[...] = 0.0
    assert np.any(w1.numpy() != 0)


def test_transformer_encoder_learns_to_count_a_token():
    """A training test a wrong gradient cannot pass: count how often token 1 appears in a set."""
    rb.manual_seed(0)
    data = np.random.default_rng(0)
    embed = rb.nn.Embedding(4, 16)
    encoder = rb.nn.TransformerEncoder(rb.nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True), 1)
    head = rb.nn.Linear(16, 1)
    params = list(embed.parameters()) + list(encoder.parameters()) + list(head.parameters())
    opt = rb.optim.Adam(params, lr=3e-3)
    for _ in range(250):
        tokens = data.integers(0, 4, size=(32, 8))
        target = (tokens == 1).sum(1, keepdims=True).astype(np.float32)
        pred = head(encoder(embed(rb.tensor(tokens))).mean(1))
        loss = F.mse_loss(pred, rb.tensor(target))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.15, loss.item()


def test_transformer_bad_activation_names_layer():
    with pytest.raises(ValueError, match="TransformerEncoderLayer: activation"):
        rb.nn.TransformerEncoderLayer(8, 2, activation="tanh")
    with pytest.raises(ValueError, match="TransformerEncoder: num_layers"):
        rb.nn.TransformerEncoder(rb.nn.TransformerEncoderLayer(8, 2), 0)


# -- Seq2Seq with attention, and its plot ------------------------------------------------------


@pytest.mark.parametrize("score", ["dot", "general", "additive"])
def test_seq2seq_attention_weights_and_gradients(score):
    model = rb.models.seq2seq(10, embedding_dim=8, hidden_size=12, attention=score)
    src = rng.integers(2, 10, size=(3, 6))
    tgt = rng.integers(2, 10, size=(3, 5))
    logits = model(rb.tensor(src), rb.tensor(tgt), src_lengths=np.array([6, 3, 4]))
    assert logits.shape == (3, 5, 10)
    weights = model.attention_weights
    assert weights.shape == (3, 5, 6)
    np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-5)
    assert weights[1, :, 3:].max() == 0 and weights[2, :, 4:].max() == 0  # padding is never attended
    F.cross_entropy(logits.reshape(-1, 10), rb.tensor(tgt.reshape(-1))).backward()
    for name, p in model.attention.named_parameters():
        assert p.grad is not None and np.abs(p.grad.numpy()).max() > 0, name
    decoded = model.greedy_decode(rb.tensor(src), 4, start_token=1)
    assert decoded.shape == (3, 4) and model.attention_weights.shape == (3, 4, 6)


@pytest.mark.parametrize("score", ["dot", "general", "additive"])
def test_seq2seq_attention_gradcheck(score):
    attention = rb.models.seq2seq(5, embedding_dim=4, hidden_size=4, attention=score).attention.to(np.float64)
    mask = np.array([[True, True, False], [True, True, True]])
    params = list(attention.parameters())
    assert rb.autograd.gradcheck(lambda q, k, *p: attention(q, k, mask)[0],
                                 (rb_tensor(r(2, 2, 4), True), rb_tensor(r(2, 3, 4), True), *params))


def test_seq2seq_rejects_unknown_attention():
    with pytest.raises(ValueError, match="Seq2Seq: attention must be"):
        rb.models.seq2seq(5, attention="cosine")


@pytest.mark.slow
def test_seq2seq_attention_learns_reversal_where_the_plain_model_fails():
    from rosenblatt.experiments.attention import train_and_score

    plain, _, _ = train_and_score(None, 12, 0, 150, 32, 8)
    attended, _, _ = train_and_score("dot", 12, 0, 150, 32, 8)
    assert plain < 0.05 and attended > 0.3, (plain, attended)


def test_plot_attention_writes_a_png(tmp_path):
    weights = F.softmax(rb.tensor(r(5, 7)), -1)
    fig = rb.viz.plot_attention(weights, source_labels=list("abcdefg"), target_labels=list("vwxyz"),
                                path=tmp_path / "map.png", title="map")
    assert (tmp_path / "map.png").stat().st_size > 0 and fig is not None
    with pytest.raises(ValueError, match="plot_attention: expected weights of shape"):
        rb.viz.plot_attention(np.ones(3))
    with pytest.raises(ValueError, match="source_labels has 2 entries"):
        rb.viz.plot_attention(np.ones((2, 3)), source_labels=["a", "b"])
