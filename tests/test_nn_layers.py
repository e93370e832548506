"""Every layer and activation of ``rb.nn`` against PyTorch with the same weights: output, input
gradient and every parameter gradient, in train and eval mode, float32 and float64; plus float64
finite-difference gradchecks (first and second order) of the fused functions."""

from __future__ import annotations

import math

import numpy as np
import pytest

import rosenblatt as rb
from rosenblatt.nn import functional as F
from tests.parity import (
    HAVE_TORCH,
    assert_close,
    check_grad,
    check_op,
    check_second_order,
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
rng = np.random.default_rng(7)


def r(*shape):
    return rng.standard_normal(shape)


def away_from_zero(*shape):
    """Values at least 0.05 from 0 (kinks of relu-like units are then not sampled)."""
    x = rng.standard_normal(shape)
    return np.where(np.abs(x) < 0.05, 0.3, x)


# -- functional activations --------------------------------------------------------------------

ACTIVATION_CASES = [
    ("relu", F.relu, lambda x: TF.relu(x)),
    ("leaky_relu", lambda x: F.leaky_relu(x, 0.2), lambda x: TF.leaky_relu(x, 0.2)),
    ("elu", lambda x: F.elu(x, 0.7), lambda x: TF.elu(x, 0.7)),
    ("selu", F.selu, lambda x: TF.selu(x)),
    ("gelu", F.gelu, lambda x: TF.gelu(x)),
    ("gelu_tanh", lambda x: F.gelu(x, approximate="tanh"), lambda x: TF.gelu(x, approximate="tanh")),
    ("silu", F.silu, lambda x: TF.silu(x)),
    ("softplus", F.softplus, lambda x: TF.softplus(x)),
    ("softplus_beta", lambda x: F.softplus(x * 8, beta=2.0, threshold=5.0),
     lambda x: TF.softplus(x * 8, beta=2.0, threshold=5.0)),
    ("sigmoid", F.sigmoid, lambda x: torch.sigmoid(x)),
    ("tanh", F.tanh, lambda x: torch.tanh(x)),
    ("softmax", lambda x: F.softmax(x, 1), lambda x: torch.softmax(x, 1)),
    ("log_softmax", lambda x: F.log_softmax(x, -1), lambda x: torch.log_softmax(x, -1)),
]


@requires_torch
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,fn,tfn", ACTIVATION_CASES, ids=[c[0] for c in ACTIVATION_CASES])
def test_activation_matches_torch(name, fn, tfn, dtype):
    check_op(fn, tfn, [away_from_zero(4, 5, 3)], dtype)


# Piecewise-linear units have a zero second derivative: nothing to differentiate twice.
SMOOTH_CASES = [c for c in ACTIVATION_CASES if c[0] not in ("relu", "leaky_relu")]


@pytest.mark.parametrize("name,fn,tfn", ACTIVATION_CASES, ids=[c[0] for c in ACTIVATION_CASES])
def test_activation_gradcheck(name, fn, tfn):
    check_grad(fn, [away_from_zero(3, 4)], second_order=name in dict((c[0], 1) for c in SMOOTH_CASES))


@requires_torch
@pytest.mark.parametrize("name,fn,tfn", SMOOTH_CASES, ids=[c[0] for c in SMOOTH_CASES])
def test_activation_second_derivatives_match_torch(name, fn, tfn):
    check_second_order(fn, tfn, [away_from_zero(3, 4)])


def test_activations_are_single_nodes():
    x = rb_tensor(r(3, 4), requires_grad=True)
    for fn in (F.gelu, F.elu, F.selu, F.silu, F.leaky_relu, F.softplus):
        y = fn(x)
        assert y.grad_fn is not None and y.grad_fn.inputs[0] is x, fn.__name__


def test_softplus_is_stable_for_large_inputs():
    x = rb_tensor(np.array([-1000.0, -50.0, 0.0, 50.0, 1000.0]), requires_grad=True)
    y = F.softplus(x)
    np.testing.assert_allclose(y.numpy(), [0.0, math.log1p(math.exp(-50.0)), math.log(2.0), 50.0, 1000.0],
                               rtol=1e-12)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [0.0, 1.0 / (1.0 + math.exp(50.0)), 0.5, 1.0, 1.0], atol=1e-15)


def test_step_is_heaviside_with_zero_gradient():
    x = rb_tensor(np.array([-2.0, -0.1, 0.0, 0.4, 3.0]), requires_grad=True)
    y = F.step(x)
    np.testing.assert_array_equal(y.numpy(), [0, 0, 1, 1, 1])
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.zeros(5))
    np.testing.assert_array_equal(rb.nn.Step(threshold=0.5)(x).numpy(), [0, 0, 0, 0, 1])


# -- linear ------------------------------------------------------------------------------------


@requires_torch
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("x_shape", [(5, 4), (2, 3, 4), (4,)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_matches_torch(dtype, x_shape, bias):
    arrays = [r(*x_shape), r(3, 4)] + ([r(3)] if bias else [])
    check_op(lambda x, w, *b: F.linear(x, w, *b), lambda x, w, *b: TF.linear(x, w, *b), arrays, dtype)


def test_linear_equals_its_composite_oracle():
    x, w, b = (rb_tensor(a, requires_grad=True) for a in (r(6, 4), r(3, 4), r(3)))
    gy = rb_tensor(r(6, 3))
    fused = rb.grad(F.linear(x, w, b), [x, w, b], gy)
    composite = rb.grad(F.linear_composite(x, w, b), [x, w, b], gy)
    assert_close(F.linear(x, w, b), F.linear_composite(x, w, b), rtol=1e-12, atol=1e-12)
    for a, c in zip(fused, composite):
        assert_close(a, c, rtol=1e-12, atol=1e-12)


def test_linear_gradcheck_first_and_second_order():
    check_grad(lambda x, w, b: F.linear(x, w, b), [r(3, 4), r(2, 4), r(2)], second_order=True)
    check_grad(lambda x, w: F.linear(x, w), [r(2, 3, 4), r(2, 4)], second_order=True)


def test_linear_computes_only_needed_gradients():
    layer = on_device(rb.nn.Linear(4, 3))
    layer.weight.requires_grad_(False)
    x = rb_tensor(r(5, 4))  # a data batch: no gradient wanted
    layer(x).sum().backward()
    assert layer.weight.grad is None and layer.bias.grad is not None and x.grad is None


# -- layers with weights, against torch modules ----------------------------------------------------


def _copy_to_torch(layer, t_layer, dtype):
    t_layer.to(torch.float64 if dtype == np.float64 else torch.float32)
    state = {k: torch.tensor(np.asarray(v.numpy())) for k, v in layer.state_dict().items()}
    t_layer.load_state_dict(state)


def layer_parity(layer, t_layer, x, dtype, train=True, integer_input=False, scale=1.0):
    """Same output, input gradient and parameter gradients as the torch layer (weights copied)."""
    on_device(layer.to(dtype))
    _copy_to_torch(layer, t_layer, dtype)
    layer.train(train)
    t_layer.train(train)
    if integer_input:
        xr, xt = rb_tensor(x), torch.tensor(x)
    else:
        x = np.asarray(x, dtype=dtype)
        xr, xt = rb_tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    yr, yt = layer(xr), t_layer(xt)
    assert_close(yr, yt, "output", **tol(dtype, scale))
    upstream = np.random.default_rng(3).standard_normal(yr.shape).astype(dtype)
    yr.backward(rb_tensor(upstream))
    yt.backward(torch.tensor(upstream))
    if not integer_input:
        assert_close(xr.grad, xt.grad, "input gradient", **tol(dtype, 10 * scale))
    t_params = dict(t_layer.named_parameters())
    for name, p in layer.named_parameters():
        assert p.grad is not None, f"{name}: no gradient"
        assert_close(p.grad, t_params[name].grad, f"gradient of {name}", **tol(dtype, 10 * scale))
    for name, b in layer.named_buffers():
        assert_close(b, dict(t_layer.named_buffers())[name], f"buffer {name}", **tol(dtype, scale))
    return yr


def _randomize(layer):
    """Non-trivial affine parameters (the defaults 1 and 0 would hide mistakes)."""
    with rb.no_grad():
        for p in layer.parameters():
            p.copy_(rng.uniform(0.5, 1.5, p.shape))
    return layer


@requires_torch
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("train", [True, False])
def test_linear_layer_matches_torch(dtype, train):
    layer_parity(rb.nn.Linear(6, 4), torch.nn.Linear(6, 4), r(5, 6), dtype, train)
    layer_parity(rb.nn.Linear(6, 4, bias=False), torch.nn.Linear(6, 4, bias=False), r(2, 5, 6), dtype, train)


@requires_torch
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("shape", [(8, 3), (4, 3, 5)])
def test_batchnorm1d_matches_torch(dtype, train, shape):
    layer = _randomize(rb.nn.BatchNorm1d(3))
    with rb.no_grad():
        layer.running_mean.copy_(r(3))
        layer.running_var.copy_(rng.uniform(0.5, 2, 3))
    layer_parity(layer, torch.nn.BatchNorm1d(3), r(*shape) * 2 + 1, dtype, train)


@requires_torch
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("shape", [(128, 160), (24, 16)], ids=["large", "small"])
def test_batchnorm1d_on_features_matches_torch(shape, affine):
    """BatchNorm1d on (N, C) features (an MLP): from 16,384 elements oneDNN's kernel runs when that
    set is active, below it (and on the NumPy set) the NumPy kernel's BLAS column sums; output,
    every gradient and the running statistics against PyTorch over two training steps and an
    evaluation step, float32."""
    from rosenblatt import kernels
    from tests import parity

    layer, t_layer = rb.nn.BatchNorm1d(shape[1], affine=affine), torch.nn.BatchNorm1d(shape[1], affine=affine)
    if affine:
        _randomize(layer)
    for step in range(2):
        y = layer_parity(layer, t_layer, r(*shape) * (step + 2) + 3, np.float32, train=True)
        fn = type(y.grad_fn).__name__
        onednn = kernels.active() == "onednn" and parity.DEVICE == "cpu" and shape[0] * shape[1] >= 1 << 14
        assert fn == ("BatchNormOneDnnFn" if onednn else "BatchNormFn"), fn
        with rb.no_grad():  # a step of SGD; the running statistics carry over (copied to PyTorch's layer)
            for p in layer.parameters():
                p.copy_(p - 0.1 * p.grad)
                p.grad = None
        for p in t_layer.parameters():
            p.grad = None
    layer_parity(layer, t_layer, r(*shape), np.float32, train=False)


@requires_torch
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("train", [True, False])
def test_batchnorm2d_matches_torch(dtype, train):
    layer = _randomize(rb.nn.BatchNorm2d(3))
    layer_parity(layer, torch.nn.BatchNorm2d(3), r(4, 3, 5, 6), dtype, train)


@requires_torch
@pytest.mark.parametrize("kwargs", [dict(affine=False), dict(track_running_stats=False), dict(momentum=None)])
@pytest.mark.parametrize("train", [True, False])
def test_batchnorm_options_match_torch(kwargs, train):
    layer = rb.nn.BatchNorm1d(4, **kwargs)
    t_layer = torch.nn.BatchNorm1d(4, **kwargs)
    on_device(layer.to(np.float64))
    _copy_to_torch(layer, t_layer, np.float64)
    for step in range(3):  # several steps: running statistics and the cumulative average
        x = r(6, 4) * (step + 1) + step
        layer.train(train)
        t_layer.train(train)
        if not any(True for _ in layer.parameters()):
            assert_close(layer(rb_tensor(x)), t_layer(torch.tensor(x)), rtol=1e-10, atol=1e-10)
        else:
            layer_parity(layer, t_layer, x, np.float64, train)
    t_buffers = dict(t_layer.named_buffers())
    for name, b in layer.named_buffers():
        assert_close(b, t_buffers[name], name, rtol=1e-10, atol=1e-12)
    assert set(layer.state_dict()) == set(t_layer.state_dict())


@requires_torch
@pytest.mark.parametrize("dtype", DTYPES)
def test_batchnorm_running_statistics_after_several_steps(dtype):
    layer = on_device(rb.nn.BatchNorm2d(2, momentum=0.3).to(dtype))
    t_layer = torch.nn.BatchNorm2d(2, momentum=0.3).to(torch.float64 if dtype == np.float64 else torch.float32)
    for step in range(5):
        x = (r(3, 2, 4, 4) * (1 + step) + 2 * step).astype(dtype)
        layer(rb_tensor(x))
        t_layer(torch.tensor(x))
    assert int(layer.num_batches_tracked.item()) == 5
    assert layer.num_batches_tracked.dtype == np.int64
    assert_close(layer.running_mean, t_layer.running_mean, **tol(dtype))
    assert_close(layer.running_var, t_layer.running_var, **tol(dtype))
    layer.eval()
    t_layer.eval()
    x = r(2, 2, 3, 3).astype(dtype)
    assert_close(layer(rb_tensor(x)), t_layer(torch.tensor(x)), **tol(dtype))


def test_batchnorm_gradcheck_first_and_second_order():
    def bn(x, w, b):
        return F.batch_norm(x, None, None, w, b, training=True)

    check_grad(bn, [r(4, 3), r(3), r(3)], second_order=True)
    check_grad(bn, [r(2, 3, 2, 2), r(3), r(3)], second_order=True)
    check_grad(lambda x: F.batch_norm(x, None, None, training=True), [r(5, 2, 3)], second_order=True)


def test_batchnorm_fused_equals_composite():
    from rosenblatt.nn.functional.normalization import batch_norm_composite

    x, w, b = (rb_tensor(a, requires_grad=True) for a in (r(4, 3, 5), r(3), r(3)))
    gy = rb_tensor(r(4, 3, 5))
    fused = F.batch_norm(x, None, None, w, b, training=True)
    composite = batch_norm_composite(x, w, b)
    assert_close(fused, composite, rtol=1e-12, atol=1e-12)
    for a, c in zip(rb.grad(fused, [x, w, b], gy), rb.grad(composite, [x, w, b], gy)):
        assert_close(a, c, rtol=1e-10, atol=1e-12)


def test_batchnorm_bad_input_names_layer_and_shapes():
    layer = rb.nn.BatchNorm1d(4)
    with pytest.raises(ValueError, match=r"BatchNorm1d\(4\).*4 channels.*got 3"):
        layer(rb.randn(5, 3))
    with pytest.raises(ValueError, match=r"BatchNorm2d\(4\).*\(N, C, H, W\)"):
        rb.nn.BatchNorm2d(4)(rb.randn(5, 4))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        layer(rb.randn(1, 4))


@requires_torch
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,normalized", [((4, 6), (6,)), ((2, 3, 4, 5), (4, 5))])
def test_layernorm_matches_torch(dtype, shape, normalized):
    layer = _randomize(rb.nn.LayerNorm(normalized))
    layer_parity(layer, torch.nn.LayerNorm(normalized), r(*shape) * 3 + 1, dtype)
    layer = rb.nn.LayerNorm(normalized, elementwise_affine=False)
    layer_parity(layer, torch.nn.LayerNorm(normalized, elementwise_affine=False), r(*shape), dtype)


def test_layernorm_gradcheck_first_and_second_order():
    check_grad(lambda x, w, b: F.layer_norm(x, (4,), w, b), [r(3, 4), r(4), r(4)], second_order=True)
    check_grad(lambda x: F.layer_norm(x, (2, 3)), [r(2, 2, 3)], second_order=True)
    with pytest.raises(ValueError, match=r"LayerNorm\(\(5,\)\).*\(\*, 5\).*\(2, 4\)"):
        rb.nn.LayerNorm(5)(rb.randn(2, 4))


@requires_torch
@pytest.mark.parametrize("dtype", DTYPES)
def test_embedding_matches_torch(dtype):
    idx = np.array([[1, 3, 3, 0], [4, 3, 1, 1]])
    layer_parity(rb.nn.Embedding(6, 3), torch.nn.Embedding(6, 3), idx, dtype, integer_input=True)
    layer = rb.nn.Embedding(6, 3, padding_idx=3)
    np.testing.assert_array_equal(layer.weight.numpy()[3], 0)
    layer_parity(layer, torch.nn.Embedding(6, 3, padding_idx=3), idx, dtype, integer_input=True)
    assert np.all(layer.weight.grad.numpy()[3] == 0) and np.any(layer.weight.grad.numpy()[1] != 0)


@requires_torch
def test_embedding_with_padding_second_derivatives_match_torch():
    idx = np.array([[0, 2, 2], [1, 0, 2]])
    check_second_order(lambda w: F.embedding(idx, w, padding_idx=2) ** 3,
                       lambda w: TF.embedding(torch.tensor(idx), w, padding_idx=2) ** 3, [r(3, 4)])


def test_embedding_gradcheck_and_errors():
    idx = np.array([[0, 2, 2], [1, 0, 2]])
    check_grad(lambda w: F.embedding(idx, w) ** 2, [r(3, 4)], second_order=True)
    with pytest.raises(IndexError, match=r"embedding.*\[0, 5\).*got values in \[0, 7\]"):
        rb.nn.Embedding(5, 2)(rb.tensor([0, 7]))
    with pytest.raises(TypeError, match="integer"):
        rb.nn.Embedding(5, 2)(rb.tensor([0.0, 1.0]))


@requires_torch
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,args", [("ReLU", ()), ("LeakyReLU", (0.1,)), ("ELU", (0.5,)), ("SELU", ()),
                                       ("GELU", ()), ("SiLU", ()), ("Softplus", ()), ("Sigmoid", ()),
                                       ("Tanh", ()), ("Softmax", (1,)), ("LogSoftmax", (1,)),
                                       ("Identity", ()), ("Flatten", ())])
def test_parameterless_layers_match_torch(dtype, name, args):
    layer = getattr(rb.nn, name)(*args)
    t_layer = getattr(torch.nn, name)(*args)
    layer_parity(layer, t_layer, away_from_zero(3, 4, 2), dtype)


@requires_torch
def test_layer_reprs_match_torch():
    pairs = [
        (rb.nn.Linear(3, 4), torch.nn.Linear(3, 4)),
        (rb.nn.Linear(3, 4, bias=False), torch.nn.Linear(3, 4, bias=False)),
        (rb.nn.BatchNorm1d(5), torch.nn.BatchNorm1d(5)),
        (rb.nn.BatchNorm2d(5, momentum=None, affine=False), torch.nn.BatchNorm2d(5, momentum=None, affine=False)),
        (rb.nn.LayerNorm(7), torch.nn.LayerNorm(7)),
        (rb.nn.Embedding(10, 3, padding_idx=0), torch.nn.Embedding(10, 3, padding_idx=0)),
        (rb.nn.LeakyReLU(0.2), torch.nn.LeakyReLU(0.2)),
        (rb.nn.ELU(), torch.nn.ELU()),
        (rb.nn.Softplus(), torch.nn.Softplus()),
        (rb.nn.Flatten(), torch.nn.Flatten()),
        (rb.nn.ReLU(), torch.nn.ReLU()),
    ]
    for ours, theirs in pairs:
        assert repr(ours) == repr(theirs)


def test_flatten_unflatten_round_trip():
    x = rb_tensor(r(2, 3, 4, 5), requires_grad=True)
    flat = rb.nn.Flatten()(x)
    assert flat.shape == (2, 60)
    back = rb.nn.Unflatten(1, (3, 4, 5))(flat)
    assert back.shape == x.shape
    assert rb.nn.Unflatten(1, (3, -1))(flat).shape == (2, 3, 20)
    back.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.ones(x.shape))
    with pytest.raises(ValueError, match="Unflatten"):
        rb.nn.Unflatten(1, (7, 8))(flat)


# -- default initialisation -----------------------------------------------------------------------


def test_linear_default_init_follows_pytorch():
    layer = rb.nn.Linear(400, 300)
    bound = 1.0 / math.sqrt(400)
    w, b = layer.weight.numpy(), layer.bias.numpy()
    assert np.abs(w).max() <= bound and np.abs(b).max() <= bound
    # U(-a, a) has standard deviation a / sqrt(3)
    assert abs(w.std() - bound / math.sqrt(3)) < 0.01 * bound
    assert abs(w.mean()) < 0.01 * bound
    assert w.dtype == np.float32


def test_embedding_and_norm_default_init():
    emb = rb.nn.Embedding(500, 100).weight.numpy()
    assert abs(emb.mean()) < 0.02 and abs(emb.std() - 1.0) < 0.02
    bn = rb.nn.BatchNorm1d(3)
    np.testing.assert_array_equal(bn.weight.numpy(), 1)
    np.testing.assert_array_equal(bn.bias.numpy(), 0)
    np.testing.assert_array_equal(bn.running_var.numpy(), 1)


def test_initialisation_is_reproducible_with_manual_seed():
    rb.manual_seed(11)
    a = rb.nn.Linear(5, 5).weight.numpy().copy()
    rb.manual_seed(11)
    b = rb.nn.Linear(5, 5).weight.numpy()
    np.testing.assert_array_equal(a, b)


# -- regularisation layers -----------------------------------------------------------------------


def test_dropout_statistics_scaling_and_gradient():
    x = rb_tensor(np.ones((200, 500)), requires_grad=True)
    layer = rb.nn.Dropout(0.3)
    y = layer(x)
    kept = y.numpy() != 0
    assert abs(kept.mean() - 0.7) < 0.01
    np.testing.assert_allclose(y.numpy()[kept], 1 / 0.7)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), y.numpy())  # gradient = the scaled mask
    layer.eval()
    assert layer(x) is x
    assert rb.nn.Dropout(0.0)(x) is x
    assert np.all(F.dropout(x, 1.0).numpy() == 0)
    with pytest.raises(ValueError, match=r"Dropout.*\[0, 1\]"):
        rb.nn.Dropout(1.5)


def test_dropout_reproducible_with_seed():
    x = rb.ones(10, 10)
    rb.manual_seed(3)
    a = F.dropout(x, 0.5).numpy()
    rb.manual_seed(3)
    np.testing.assert_array_equal(a, F.dropout(x, 0.5).numpy())


def test_dropout2d_drops_whole_channels():
    x = rb_tensor(np.ones((50, 40, 3, 3)), requires_grad=True)
    y = rb.nn.Dropout2d(0.5)(x).numpy()
    per_channel = y.reshape(50, 40, 9)
    assert np.all((per_channel == 0).all(-1) | (per_channel == 2.0).all(-1))
    assert abs((per_channel[..., 0] == 0).mean() - 0.5) < 0.05
    with pytest.raises(ValueError, match="dropout2d"):
        rb.nn.Dropout2d()(rb.ones(3, 4))


def test_gaussian_noise_only_in_training():
    x = rb_tensor(np.zeros((300, 300)), requires_grad=True)
    layer = rb.nn.GaussianNoise(0.5)
    y = layer(x).numpy()
    assert abs(y.std() - 0.5) < 0.01 and abs(y.mean()) < 0.01
    layer.eval()
    assert layer(x) is x
    layer.train()
    layer(x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), 1)


# -- bad input ------------------------------------------------------------------------------------


def test_linear_bad_input_names_layer_and_shapes():
    layer = rb.nn.Linear(4, 2)
    with pytest.raises(ValueError, match=r"Linear\(4, 2\).*\(\*, 4\).*\(3, 5\)"):
        layer(rb.randn(3, 5))
    with pytest.raises(ValueError, match=r"Linear\(4, 2\)"):
        layer(rb.tensor(1.0))
    with pytest.raises(TypeError, match="Linear"):
        layer(np.ones((3, 4)))
    with pytest.raises(ValueError, match="linear"):
        F.linear(rb.randn(2, 4), rb.randn(3, 5))


def test_bad_activation_arguments():
    with pytest.raises(ValueError, match="approximate"):
        F.gelu(rb.randn(3), approximate="fast")
    with pytest.raises(IndexError, match="Softmax"):
        rb.nn.Softmax(axis=2)(rb.randn(3, 4))


# -- PyTorch's inplace=True -------------------------------------------------------------------

INPLACE_LAYERS = [
    (lambda inplace: rb.nn.ReLU(inplace=inplace), "ReLU(inplace=True)"),
    (lambda inplace: rb.nn.LeakyReLU(0.2, inplace=inplace), "LeakyReLU(negative_slope=0.2, inplace=True)"),
    (lambda inplace: rb.nn.ELU(inplace=inplace), "ELU(alpha=1.0, inplace=True)"),
    (lambda inplace: rb.nn.SELU(inplace=inplace), "SELU(inplace=True)"),
    (lambda inplace: rb.nn.SiLU(inplace=inplace), "SiLU(inplace=True)"),
    (lambda inplace: rb.nn.Dropout(0.5, inplace=inplace), "Dropout(p=0.5, inplace=True)"),
    (lambda inplace: rb.nn.Dropout2d(0.5, inplace=inplace), "Dropout2d(p=0.5, inplace=True)"),
]


@pytest.mark.parametrize("make, text", INPLACE_LAYERS, ids=[t.split("(")[0] for _, t in INPLACE_LAYERS])
def test_inplace_layers(make, text):
    """``inplace=True`` as PyTorch code writes it: the repr shows it; without a graph the input is
    overwritten and returned; in training the values and gradients are those of ``inplace=False``
    and the input is left alone."""
    layer, plain = make(True), make(False)
    assert repr(layer) == text
    data = np.random.default_rng(0).standard_normal((2, 3, 4, 4)).astype(np.float32)

    def run(module, seed=1):
        rb.manual_seed(seed)
        x = rb.tensor(data, requires_grad=True)
        h = x * 2.0
        y = module(h)
        (y * rb.tensor(data)).sum().backward()
        return h, y, x.grad.numpy()

    h, y, grad = run(layer)
    _, y_ref, grad_ref = run(plain)
    np.testing.assert_allclose(y.detach().numpy(), y_ref.detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(grad, grad_ref, rtol=1e-6)
    np.testing.assert_array_equal(h.detach().numpy(), 2.0 * data)  # recorded: not overwritten
    x = rb.tensor(data.copy())
    rb.manual_seed(1)
    with rb.no_grad():
        out = layer.eval()(x) if "Dropout" not in text else layer.train()(x)
    rb.manual_seed(1)
    with rb.no_grad():
        expected = plain.train(layer.training)(rb.tensor(data)).numpy()
    assert out is x
    np.testing.assert_allclose(x.numpy(), expected, rtol=1e-6)
