"""Volumes and the new normalisation/activation layers against PyTorch: ``conv3d``, ``max_pool3d``,
``avg_pool3d``, ``BatchNorm3d``, ``group_norm``/``GroupNorm`` and ``prelu``/``PReLU`` (forward,
input and parameter gradients, float32 and float64, the same weights), float64 finite-difference
gradchecks, second derivatives, error messages, and a small 3-D CNN that learns."""

from __future__ import annotations

import numpy as np
import pytest

import rosenblatt as rb
from rosenblatt import nn
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

# PyTorch warns that it copies the input for "same" padding with even kernels; irrelevant here.
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same'")

DTYPES = [np.float32, np.float64]
rng = np.random.default_rng(7)


def r(*shape):
    return rng.standard_normal(shape)


# -- conv3d ---------------------------------------------------------------------------------------

CONV3D_CASES = [
    ((2, 3, 5, 6, 4), (4, 3, 3, 3, 3), {}),
    ((2, 3, 6, 7, 5), (4, 3, 3, 2, 3), dict(stride=(1, 2, 1), padding=1, dilation=(2, 1, 1))),
    ((1, 4, 5, 5, 6), (6, 2, 2, 3, 3), dict(stride=2, padding=(1, 0, 2), groups=2)),
    ((2, 4, 4, 5, 4), (8, 1, 3, 3, 3), dict(padding="same", groups=4)),  # depthwise
    ((2, 3, 5, 4, 6), (2, 3, 2, 2, 2), dict(padding="same")),  # even kernel: asymmetric padding
    ((2, 5, 3, 4, 3), (3, 5, 1, 1, 1), {}),  # 1x1x1
    ((3, 5, 6, 4), (2, 3, 3, 3, 3), dict(padding=1)),  # unbatched (C, D, H, W)
]


@requires_torch
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("x_shape,w_shape,kw", CONV3D_CASES)
def test_conv3d_matches_torch(x_shape, w_shape, kw, dtype):
    check_op(lambda x, w, b: F.conv3d(x, w, b, **kw), lambda x, w, b: TF.conv3d(x, w, b, **kw),
             [r(*x_shape), r(*w_shape), r(w_shape[0])], dtype)


@requires_torch
def test_conv3d_without_bias_and_in_chunks(monkeypatch):
    import rosenblatt.kernels.conv3d as kernels

    monkeypatch.setattr(kernels, "COLUMNS_MAX_BYTES", 1)  # one sample per chunk
    check_op(lambda x, w: F.conv3d(x, w, stride=2, padding=1), lambda x, w: TF.conv3d(x, w, stride=2, padding=1),
             [r(3, 2, 5, 4, 5), r(3, 2, 3, 3, 3)], np.float64)


@pytest.mark.parametrize("kw", [dict(padding=1), dict(stride=2, groups=2, dilation=(1, 2, 1))])
def test_conv3d_gradcheck(kw):
    groups = kw.get("groups", 1)
    check_grad(lambda x, w, b: F.conv3d(x, w, b, **kw), [r(1, 2, 4, 5, 4), r(2, 2 // groups, 2, 2, 3), r(2)])


@requires_torch
def test_conv3d_second_order_matches_torch():
    kw = dict(stride=2, padding=1)
    check_second_order(lambda x, w: F.conv3d(x, w, **kw), lambda x, w: TF.conv3d(x, w, **kw),
                       [r(2, 2, 4, 5, 4), r(3, 2, 3, 3, 3)])


@requires_torch
@pytest.mark.parametrize("dtype", DTYPES)
def test_conv3d_layer_matches_torch(dtype):
    layer = on_device(nn.Conv3d(2, 4, (3, 3, 2), stride=(1, 2, 1), padding=1, dtype=dtype))
    reference = torch.nn.Conv3d(2, 4, (3, 3, 2), stride=(1, 2, 1), padding=1).to(torch.float64 if dtype == np.float64
                                                                                  else torch.float32)
    with torch.no_grad():
        reference.weight.copy_(torch.tensor(layer.weight.numpy()))
        reference.bias.copy_(torch.tensor(layer.bias.numpy()))
    x = r(2, 2, 5, 6, 4).astype(dtype)
    out = layer(rb_tensor(x))
    expected = reference(torch.tensor(x))
    assert_close(out, expected, "forward", **tol(dtype))
    upstream = r(*out.shape).astype(dtype)
    out.backward(rb_tensor(upstream))
    expected.backward(torch.tensor(upstream))
    assert_close(layer.weight.grad, reference.weight.grad, "weight gradient", **tol(dtype, 10))
    assert_close(layer.bias.grad, reference.bias.grad, "bias gradient", **tol(dtype, 10))
    assert layer.weight.shape == (4, 2, 3, 3, 2)
    assert "Conv3d(2, 4, kernel_size=(3, 3, 2)" in repr(layer)


@requires_torch
@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_conv3d_padding_modes_match_torch(mode):
    layer = nn.Conv3d(2, 3, 3, padding=(1, 2, 1), padding_mode=mode, dtype=np.float64)
    reference = torch.nn.Conv3d(2, 3, 3, padding=(1, 2, 1), padding_mode=mode).double()
    with torch.no_grad():
        reference.weight.copy_(torch.tensor(layer.weight.numpy()))
        reference.bias.copy_(torch.tensor(layer.bias.numpy()))
    check_op(layer, reference, [r(2, 2, 4, 5, 6)], np.float64)


def test_conv3d_errors():
    with pytest.raises(ValueError, match=r"conv3d: expected a 5-D input"):
        F.conv3d(rb.randn(2, 3, 4), rb.randn(2, 3, 1, 1, 1))
    with pytest.raises(ValueError, match=r"conv3d: expected input with 3 channels"):
        F.conv3d(rb.randn(1, 2, 4, 4, 4), rb.randn(2, 3, 1, 1, 1))
    with pytest.raises(ValueError, match=r"kernel extent 5 .* along D"):
        F.conv3d(rb.randn(1, 1, 3, 8, 8), rb.randn(1, 1, 5, 1, 1))
    with pytest.raises(ValueError, match=r"Conv3d\(1, 2.*expected a 5-D input \(N, C, D, H, W\)"):
        nn.Conv3d(1, 2, 3)(rb.randn(1, 8, 8))


# -- 3-D pooling ----------------------------------------------------------------------------------

MAX_POOL_CASES = [
    dict(kernel_size=2),
    dict(kernel_size=(3, 2, 3), stride=(2, 1, 2), padding=(1, 0, 1)),
    dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
    dict(kernel_size=2, stride=1, dilation=(2, 1, 1)),
]


@requires_torch
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kw", MAX_POOL_CASES)
def test_max_pool3d_matches_torch(kw, dtype):
    check_op(lambda x: F.max_pool3d(x, **kw), lambda x: TF.max_pool3d(x, **kw), [r(2, 3, 6, 7, 5)], dtype)


@requires_torch
def test_max_pool3d_indices_and_unbatched():
    kw = dict(kernel_size=(3, 2, 2), stride=2, padding=1, return_indices=True)
    check_op(lambda x: F.max_pool3d(x, **kw), lambda x: TF.max_pool3d(x, **kw), [r(2, 2, 5, 6, 5)], np.float64)
    check_op(lambda x: F.max_pool3d(x, 2), lambda x: TF.max_pool3d(x, 2), [r(2, 4, 6, 4)], np.float64)


AVG_POOL_CASES = [
    dict(kernel_size=2),
    dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=3, stride=2, padding=1, count_include_pad=False),
    dict(kernel_size=(2, 3, 2), stride=2, ceil_mode=True),
    dict(kernel_size=2, stride=1, divisor_override=3),
]


@requires_torch
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kw", AVG_POOL_CASES)
def test_avg_pool3d_matches_torch(kw, dtype):
    check_op(lambda x: F.avg_pool3d(x, **kw), lambda x: TF.avg_pool3d(x, **kw), [r(2, 3, 5, 7, 6)], dtype)


@pytest.mark.parametrize("fn", [lambda x: F.max_pool3d(x, 2, stride=1, padding=1),
                                lambda x: F.avg_pool3d(x, 3, stride=2, padding=1, count_include_pad=False)])
def test_pool3d_gradcheck(fn):
    check_grad(fn, [r(1, 2, 4, 5, 4)], second_order=True)


@requires_torch
def test_pool3d_layers_match_torch():
    x = r(2, 2, 6, 6, 6)
    check_op(nn.MaxPool3d(2, return_indices=True), torch.nn.MaxPool3d(2, return_indices=True), [x], np.float64)
    check_op(nn.MaxPool3d(3, stride=2, padding=1), torch.nn.MaxPool3d(3, stride=2, padding=1), [x], np.float64)
    check_op(nn.AvgPool3d(2, count_include_pad=False), torch.nn.AvgPool3d(2, count_include_pad=False), [x],
             np.float64)


def test_pool3d_errors():
    with pytest.raises(ValueError, match=r"max_pool3d: expected a 5-D input"):
        F.max_pool3d(rb.randn(2, 3, 4), 2)
    with pytest.raises(ValueError, match=r"MaxPool3d\(kernel_size=2.*expected a 5-D input \(N, C, D, H, W\)"):
        nn.MaxPool3d(2)(rb.randn(2, 3, 4))
    with pytest.raises(ValueError, match=r"avg_pool3d: padding .* at most half"):
        F.avg_pool3d(rb.randn(1, 1, 4, 4, 4), 2, padding=2)


# -- BatchNorm3d ----------------------------------------------------------------------------------


@requires_torch
@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_norm3d_matches_torch(dtype):
    layer = on_device(nn.BatchNorm3d(3, momentum=0.3, dtype=dtype))
    reference = torch.nn.BatchNorm3d(3, momentum=0.3).to(torch.float64 if dtype == np.float64 else torch.float32)
    weight, bias = r(3).astype(dtype), r(3).astype(dtype)
    with rb.no_grad():
        layer.weight.data[...] = weight
        layer.bias.data[...] = bias
    with torch.no_grad():
        reference.weight.copy_(torch.tensor(weight))
        reference.bias.copy_(torch.tensor(bias))
    x = (r(2, 3, 4, 3, 5) * 2 + 1).astype(dtype)
    xr, xt = rb_tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    out, expected = layer(xr), reference(xt)
    assert_close(out, expected, "forward", **tol(dtype))
    upstream = r(*x.shape).astype(dtype)
    out.backward(rb_tensor(upstream))
    expected.backward(torch.tensor(upstream))
    for what, a, b in [("input", xr.grad, xt.grad), ("weight", layer.weight.grad, reference.weight.grad),
                       ("bias", layer.bias.grad, reference.bias.grad),
                       ("running_mean", layer.running_mean, reference.running_mean),
                       ("running_var", layer.running_var, reference.running_var)]:
        assert_close(a, b, what, **tol(dtype, 10))
    layer.eval()
    reference.eval()
    assert_close(layer(rb_tensor(x)), reference(torch.tensor(x)), "evaluation", **tol(dtype))


def test_batch_norm3d_rejects_images():
    with pytest.raises(ValueError, match=r"BatchNorm3d\(3\): expected input of shape \(N, C, D, H, W\)"):
        nn.BatchNorm3d(3)(rb.randn(2, 3, 4, 4))


# -- GroupNorm ------------------------------------------------------------------------------------


@requires_torch
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,groups", [((2, 6, 5, 4), 3), ((3, 4, 7), 1), ((2, 4, 3, 2, 3), 4), ((5, 6), 2)])
def test_group_norm_matches_torch(shape, groups, dtype):
    c = shape[1]
    check_op(lambda x, w, b: F.group_norm(x, groups, w, b), lambda x, w, b: TF.group_norm(x, groups, w, b),
             [r(*shape) * 3 + 1, r(c), r(c)], dtype)


@requires_torch
def test_group_norm_layer_matches_torch_and_without_affine():
    layer = nn.GroupNorm(2, 4, eps=1e-3, affine=False, dtype=np.float64)
    assert layer.weight is None and list(layer.parameters()) == []
    check_op(layer, torch.nn.GroupNorm(2, 4, eps=1e-3, affine=False).double(), [r(2, 4, 3, 3)], np.float64)
    layer = nn.GroupNorm(2, 4)
    assert [name for name, _ in layer.named_parameters()] == ["weight", "bias"]
    assert repr(layer) == "GroupNorm(2, 4, eps=1e-05, affine=True)"


def test_group_norm_gradcheck():
    check_grad(lambda x, w, b: F.group_norm(x, 2, w, b), [r(2, 4, 3, 2), r(4), r(4)], second_order=True)


def test_group_norm_errors():
    with pytest.raises(ValueError, match=r"GroupNorm: num_groups=3 must divide num_channels=4"):
        nn.GroupNorm(3, 4)
    with pytest.raises(ValueError, match=r"GroupNorm\(2, 4\): expected an input of shape \(N, 4, \*\)"):
        nn.GroupNorm(2, 4)(rb.randn(2, 3, 5))
    with pytest.raises(ValueError, match=r"group_norm: expected weight of shape \(4,\)"):
        F.group_norm(rb.randn(2, 4, 3), 2, rb.randn(3))


# -- PReLU ----------------------------------------------------------------------------------------


@requires_torch
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,slopes", [((3, 4, 5), 4), ((2, 3, 4, 4), 1), ((6,), 1), ((2, 5), 5),
                                          ((2, 2, 3, 3, 3), 2)])
def test_prelu_matches_torch(shape, slopes, dtype):
    check_op(F.prelu, TF.prelu, [r(*shape), rng.uniform(-0.5, 0.5, slopes)], dtype)


def test_prelu_gradcheck():
    check_grad(F.prelu, [r(2, 3, 4), rng.uniform(0.1, 0.4, 3)], second_order=True)


@requires_torch
def test_prelu_layer():
    layer = nn.PReLU(3, init=0.1, dtype=np.float64)
    assert np.all(layer.weight.numpy() == 0.1) and repr(layer) == "PReLU(num_parameters=3)"
    reference = torch.nn.PReLU(3, init=0.1).double()
    check_op(layer, reference, [r(2, 3, 5)], np.float64)
    with pytest.raises(ValueError, match=r"prelu: weight has 3 slopes, so the input needs 3 channels in dimension 1"):
        layer(rb.randn(2, 4, 5))
    with pytest.raises(ValueError, match=r"PReLU: num_parameters must be a positive int"):
        nn.PReLU(0)


# -- learning -------------------------------------------------------------------------------------


def _showers(n, seed):
    """Two kinds of 16^3 'showers': a narrow core along the beam or a wide blob (plus noise)."""
    g = np.random.default_rng(seed)
    labels = g.integers(0, 2, n)
    grid = np.stack(np.meshgrid(*[np.arange(16)] * 3, indexing="ij"), 0).astype(np.float32)
    centre = g.uniform(5, 11, (n, 3, 1, 1, 1)).astype(np.float32)
    width = np.where(labels == 0, 1.2, 3.0).astype(np.float32).reshape(n, 1, 1, 1)
    d2 = ((grid[None, 1:] - centre[:, 1:]) ** 2).sum(1)
    volumes = np.exp(-d2 / (2 * width ** 2)) * np.exp(-(grid[0] - centre[:, 0]) ** 2 / 40)
    volumes += 0.05 * g.standard_normal(volumes.shape)
    return volumes[:, None].astype(np.float32), labels.astype(np.int64)


def test_small_3d_cnn_learns_on_16_cubed_volumes():
    rb.manual_seed(0)
    x, y = _showers(96, seed=0)
    model = nn.Sequential(
        nn.Conv3d(1, 4, 3, padding=1), nn.GroupNorm(2, 4), nn.PReLU(4), nn.MaxPool3d(2),
        nn.Conv3d(4, 8, 3, padding=1), nn.BatchNorm3d(8), nn.ReLU(), nn.AvgPool3d(2),
        nn.Flatten(), nn.Linear(8 * 4 * 4 * 4, 2),
    )
    optimizer = rb.optim.Adam(model.parameters(), lr=3e-3)
    loader = rb.data.DataLoader((x, y), batch_size=16, shuffle=True, seed=0)
    for _ in range(4):
        for xb, yb in loader:
            loss = F.cross_entropy(model(xb), yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.eval()
    xt, yt = _showers(64, seed=1)
    with rb.no_grad():
        accuracy = (model(rb.tensor(xt)).numpy().argmax(1) == yt).mean()
    assert accuracy > 0.9


def test_prelu_is_one_node_with_first_and_second_derivatives():
    """``F.prelu`` is one node (so ONNX export sees it); its gradients and their derivatives pass
    float64 finite differences, with one slope and with one per channel."""
    from rosenblatt.autograd import gradcheck, gradgradcheck
    from rosenblatt.nn.functional.activation import PReLUFn

    rng = np.random.default_rng(4)
    x = rb.tensor(rng.standard_normal((2, 3, 4, 4)), requires_grad=True)
    for slopes in (np.array([0.25]), np.array([0.1, -0.2, 0.3])):
        w = rb.tensor(slopes, requires_grad=True)
        assert isinstance(rb.nn.functional.prelu(x, w).grad_fn, PReLUFn)
        assert gradcheck(rb.nn.functional.prelu, (x, w))
        assert gradgradcheck(rb.nn.functional.prelu, (x, w))
