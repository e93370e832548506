"""Pooling and resizing against PyTorch (forward and input gradient, float32 and float64),
float64 gradchecks, second derivatives, the layers' repr and error messages."""

from __future__ import annotations

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
    rb_tensor,
    requires_torch,
)

if HAVE_TORCH:
    import torch
    import torch.nn.functional as TF
else:
    torch = TF = None

DTYPES = [np.float32, np.float64]
rng = np.random.default_rng(5)


def r(*shape):
    return rng.standard_normal(shape)


MAX_POOL2D_CASES = [
    (2, {}),
    ((2, 3), dict(stride=(2, 1))),
    (3, dict(stride=2, padding=1)),  # overlapping windows, -inf padding
    (3, dict(stride=1)),
    (3, dict(stride=2, padding=1, ceil_mode=True)),
    ((2, 3), dict(stride=(1, 2), padding=(1, 1), dilation=2)),
]


@requires_torch
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kernel,kw", MAX_POOL2D_CASES)
def test_max_pool2d_matches_torch(kernel, kw, dtype):
    check_op(lambda x: F.max_pool2d(x, kernel, **kw), lambda x: TF.max_pool2d(x, kernel, **kw), [r(2, 3, 10, 9)], dtype)


@requires_torch
def test_max_pool2d_ties_go_to_the_first_maximum_like_torch():
    x = rng.integers(0, 3, size=(2, 2, 8, 8)).astype(np.float64)  # many equal values per window
    check_op(lambda t: F.max_pool2d(t, 2), lambda t: TF.max_pool2d(t, 2), [x], np.float64)
    check_op(lambda t: F.max_pool2d(t, 3, 1, 1), lambda t: TF.max_pool2d(t, 3, 1, 1), [x], np.float64)


@requires_torch
def test_max_pool_return_indices_match_torch():
    x = r(2, 3, 9, 7)
    out, idx = F.max_pool2d(rb_tensor(x), 3, 2, 1, return_indices=True)
    t_out, t_idx = TF.max_pool2d(torch.tensor(x), 3, 2, 1, return_indices=True)
    assert_close(out, t_out)
    np.testing.assert_array_equal(idx.numpy(), t_idx.numpy())
    out, idx = F.adaptive_max_pool2d(rb_tensor(x), (4, 3), return_indices=True)
    t_out, t_idx = TF.adaptive_max_pool2d(torch.tensor(x), (4, 3), return_indices=True)
    np.testing.assert_array_equal(idx.numpy(), t_idx.numpy())


AVG_POOL2D_CASES = [
    (2, {}),
    (3, dict(stride=2, padding=1)),  # count_include_pad=True, PyTorch's default
    (3, dict(stride=2, padding=1, count_include_pad=False)),
    (3, dict(stride=1, padding=1)),
    (3, dict(stride=2, padding=1, ceil_mode=True)),
    (3, dict(stride=2, padding=1, ceil_mode=True, count_include_pad=False)),
    (2, dict(ceil_mode=True)),
    ((2, 3), dict(stride=(1, 2), divisor_override=4)),
]


@requires_torch
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kernel,kw", AVG_POOL2D_CASES)
def test_avg_pool2d_matches_torch(kernel, kw, dtype):
    check_op(lambda x: F.avg_pool2d(x, kernel, **kw), lambda x: TF.avg_pool2d(x, kernel, **kw), [r(2, 3, 10, 9)], dtype)


@requires_torch
@pytest.mark.parametrize("dtype", DTYPES)
def test_pool1d_matches_torch(dtype):
    x = [r(2, 3, 11)]
    check_op(lambda t: F.max_pool1d(t, 3, 2, 1), lambda t: TF.max_pool1d(t, 3, 2, 1), x, dtype)
    check_op(lambda t: F.max_pool1d(t, 2), lambda t: TF.max_pool1d(t, 2), x, dtype)
    check_op(lambda t: F.avg_pool1d(t, 3, 2, 1), lambda t: TF.avg_pool1d(t, 3, 2, 1), x, dtype)
    check_op(lambda t: F.avg_pool1d(t, 4, ceil_mode=True, count_include_pad=False),
             lambda t: TF.avg_pool1d(t, 4, ceil_mode=True, count_include_pad=False), x, dtype)


ADAPTIVE_SIZES = [1, (3, 4), (5, 3), (7, 4), (13, 9), (None, 2)]  # divisible, not, larger than the input


@requires_torch
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size", ADAPTIVE_SIZES)
def test_adaptive_pools_match_torch(size, dtype):
    x = [r(2, 3, 10, 6)]
    check_op(lambda t: F.adaptive_avg_pool2d(t, size), lambda t: TF.adaptive_avg_pool2d(t, size), x, dtype)
    check_op(lambda t: F.adaptive_max_pool2d(t, size), lambda t: TF.adaptive_max_pool2d(t, size), x, dtype)


@requires_torch
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size", [1, 3, 4, 7, 13, (5,)])  # global, divisible, not, larger than the input
def test_adaptive_1d_pools_match_torch(size, dtype):
    x = [r(2, 3, 12)]
    check_op(lambda t: F.adaptive_avg_pool1d(t, size), lambda t: TF.adaptive_avg_pool1d(t, size), x, dtype)
    check_op(lambda t: F.adaptive_max_pool1d(t, size), lambda t: TF.adaptive_max_pool1d(t, size), x, dtype)
    _, index = F.adaptive_max_pool1d(rb_tensor(x[0]), size, return_indices=True)
    _, t_index = TF.adaptive_max_pool1d(torch.tensor(x[0]), size, return_indices=True)
    np.testing.assert_array_equal(index.numpy(), t_index.numpy())
    unbatched = rb.nn.AdaptiveAvgPool1d(size)(rb_tensor(x[0][0]))
    assert_close(unbatched, TF.adaptive_avg_pool1d(torch.tensor(x[0][0]), size))
    assert rb.nn.AdaptiveMaxPool1d(size)(rb_tensor(x[0])).shape == tuple(TF.adaptive_max_pool1d(torch.tensor(x[0]),
                                                                                                 size).shape)


def test_adaptive_1d_pools_gradcheck_and_errors():
    x = [r(2, 2, 9)]
    check_grad(lambda t: F.adaptive_avg_pool1d(t, 4), x)
    check_grad(lambda t: F.adaptive_max_pool1d(t, 4), x)
    with pytest.raises(ValueError, match="adaptive_avg_pool1d: expected a 3-D input"):
        F.adaptive_avg_pool1d(rb_tensor(r(2, 3, 4, 5)), 2)
    with pytest.raises(ValueError, match="adaptive_max_pool1d: output_size must be a positive int"):
        F.adaptive_max_pool1d(rb_tensor(r(2, 3, 4)), (2, 2))
    with pytest.raises(ValueError, match=r"AdaptiveAvgPool1d\(output_size=2\): expected a 3-D input"):
        rb.nn.AdaptiveAvgPool1d(2)(rb_tensor(r(2, 3, 4, 5)))


def test_pool_gradchecks():
    x = [r(1, 2, 6, 5)]
    check_grad(lambda t: F.max_pool2d(t, 3, 2, 1), x)
    check_grad(lambda t: F.avg_pool2d(t, 3, 2, 1, ceil_mode=True, count_include_pad=False), x)
    check_grad(lambda t: F.adaptive_avg_pool2d(t, (4, 3)), x)
    check_grad(lambda t: F.adaptive_max_pool2d(t, (4, 3)), x)


@requires_torch
@pytest.mark.parametrize("rb_pool,torch_pool", [
    (lambda t: F.max_pool2d(t, 3, 2, 1), lambda t: TF.max_pool2d(t, 3, 2, 1)),
    (lambda t: F.max_pool2d(t, 2), lambda t: TF.max_pool2d(t, 2)),
    (lambda t: F.avg_pool2d(t, 3, 1, 1), lambda t: TF.avg_pool2d(t, 3, 1, 1)),
    (lambda t: F.adaptive_max_pool2d(t, (4, 3)), lambda t: TF.adaptive_max_pool2d(t, (4, 3))),
])
def test_pool_second_order_matches_torch(rb_pool, torch_pool):
    # Squared outputs make the gradient depend on x, so the second derivative is not zero.
    check_second_order(lambda t: rb_pool(t) * rb_pool(t), lambda t: torch_pool(t) * torch_pool(t), [r(2, 2, 6, 5)])


# -- 1-D pooling on its 4-D views, global average pooling ------------------------------------------

# (input shape, pooling arguments): shapes of 8*32*L >= 65536 elements reach the oneDNN kernels
POOL1D_CASES = [
    ((8, 32, 256), dict(kernel_size=2)),  # tiled: rows of whole windows under oneDNN
    ((8, 32, 258), dict(kernel_size=3)),  # 86 windows: 2 rows
    ((8, 33, 254), dict(kernel_size=2)),  # 127 windows (a prime): 127 rows of one window
    ((8, 32, 257), dict(kernel_size=2)),  # a tail left over: the (N, C, 1, L) view
    ((8, 32, 257), dict(kernel_size=2, ceil_mode=True)),
    ((8, 32, 256), dict(kernel_size=3, stride=2, padding=1)),  # overlapping, padded
    ((3, 5, 11), dict(kernel_size=2)),  # small: NumPy
    ((3, 5, 12), dict(kernel_size=4, stride=4)),
]


@requires_torch
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,kw", POOL1D_CASES)
def test_pool1d_views_match_torch(shape, kw, dtype):
    x = [r(*shape)]
    check_op(lambda t: F.max_pool1d(t, **kw), lambda t: TF.max_pool1d(t, **kw), x, dtype)
    check_op(lambda t: F.avg_pool1d(t, **kw), lambda t: TF.avg_pool1d(t, **kw), x, dtype)
    out, idx = F.max_pool1d(rb_tensor(x[0].astype(dtype)), return_indices=True, **kw)
    t_out, t_idx = TF.max_pool1d(torch.tensor(x[0].astype(dtype)), return_indices=True, **kw)
    assert_close(out, t_out)
    np.testing.assert_array_equal(idx.numpy(), t_idx.numpy())


@requires_torch
def test_pool1d_strided_input_matches_torch():
    x = r(8, 64, 256)[:, ::2]  # (8, 32, 256), not contiguous
    check_op(lambda t: F.max_pool1d(t, 2), lambda t: TF.max_pool1d(t, 2), [x], np.float32)
    check_op(lambda t: F.avg_pool1d(t, 4), lambda t: TF.avg_pool1d(t, 4), [x], np.float32)


def test_pool1d_view_splits_rows_only_for_onednn_and_tiling_windows():
    from rosenblatt import kernels
    from rosenblatt.nn.functional import pooling

    x = rb.tensor(np.zeros((8, 32, 256), np.float32))
    onednn = kernels.use_onednn(x.data)
    assert pooling._pool1d_view(x, 2, 2, 0, 1).shape == ((8, 32, 2, 128) if onednn else (8, 32, 1, 256))
    assert pooling._pool1d_view(x, 4, 4, 0, 1).shape == ((8, 32, 2, 128) if onednn else (8, 32, 1, 256))
    x254 = rb.tensor(np.zeros((8, 33, 254), np.float32))
    assert pooling._pool1d_view(x254, 2, 2, 0, 1).shape == ((8, 33, 127, 2) if onednn else (8, 33, 1, 254))
    for k, s, p, d in ((3, 2, 1, 1), (2, 1, 0, 1), (2, 2, 0, 2), (3, 3, 0, 1)):  # overlapping, padded, dilated, a tail
        assert pooling._pool1d_view(x, k, s, p, d).shape == (8, 32, 1, 256)
    assert not pooling._onednn_size(np.zeros((8, 32, 1, 256), np.float32))  # height 1: NumPy's kernel
    assert pooling._onednn_size(np.zeros((8, 32, 2, 128), np.float32)) == onednn


def test_pool1d_gradchecks():
    x = [r(2, 3, 12)]
    check_grad(lambda t: F.max_pool1d(t, 2), x, second_order=True)
    check_grad(lambda t: F.avg_pool1d(t, 3), x, second_order=True)
    check_grad(lambda t: F.avg_pool1d(t, 3, 2, 1, count_include_pad=False), x)


GAP_SHAPES = [(2, 3, 8, 8), (3, 5, 7, 9), (4, 2, 1, 1), (2, 3, 1, 6), (64, 64, 8, 8)]


def _layouts(shape):
    a = r(*shape)
    cl = np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    strided = r(shape[0], shape[1], 2 * shape[2], shape[3])[:, :, ::2]
    return {"contiguous": a, "channels_last": cl, "strided": strided}


@requires_torch
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "strided"])
@pytest.mark.parametrize("shape", GAP_SHAPES)
def test_global_avg_pool_matches_torch(shape, layout, dtype):
    x = _layouts(shape)[layout]
    for size in (1, (1, 1)):
        check_op(lambda t, s=size: F.adaptive_avg_pool2d(t, s), lambda t, s=size: TF.adaptive_avg_pool2d(t, s), [x], dtype)
    check_op(lambda t: F.interpolate(t, size=1, mode="area"), lambda t: TF.interpolate(t, size=1, mode="area"),
             [x], dtype)


def test_global_avg_pool_runs_fused_and_equals_mean():
    from rosenblatt.nn.functional.pooling import GlobalAvgPoolFunction

    for layout, a in _layouts((3, 4, 5, 7)).items():
        x = rb_tensor(a, requires_grad=True)
        y = F.adaptive_avg_pool2d(x, 1)
        assert isinstance(y.grad_fn, GlobalAvgPoolFunction), layout
        assert y.shape == (3, 4, 1, 1)
        assert_close(y, rb.mean(x, axis=(2, 3), keepdims=True), layout, rtol=1e-13, atol=1e-15)
        g = r(3, 4, 1, 1)
        (gx,) = rb.grad(y, x, rb_tensor(g), retain_graph=True)
        np.testing.assert_array_equal(gx.numpy(), np.broadcast_to(g / 35, a.shape))
        y.backward(rb_tensor(g))
        np.testing.assert_array_equal(x.grad.numpy(), np.broadcast_to(g / 35, a.shape))
    unbatched = F.adaptive_avg_pool2d(rb_tensor(r(4, 5, 7)), 1)
    assert unbatched.shape == (4, 1, 1)


def test_global_avg_pool_gradcheck():
    check_grad(lambda t: F.adaptive_avg_pool2d(t, 1), [r(2, 3, 4, 5)], second_order=True)
    check_grad(lambda t: F.adaptive_avg_pool2d(t, 1) ** 2, [r(2, 3, 4, 5)], second_order=True)


@requires_torch
def test_global_avg_pool_second_order_matches_torch():
    check_second_order(lambda t: F.adaptive_avg_pool2d(t, 1) * F.adaptive_avg_pool2d(t, 1),
                       lambda t: TF.adaptive_avg_pool2d(t, 1) * TF.adaptive_avg_pool2d(t, 1), [r(2, 3, 4, 5)])


# -- interpolate ------------------------------------------------------------------------------------

INTERPOLATE_CASES = [
    dict(scale_factor=2),
    dict(scale_factor=(2, 3)),
    dict(scale_factor=0.5),
    dict(scale_factor=1 / 3),
    dict(size=(13, 17)),
    dict(size=(5, 3)),
    dict(size=(9, 7), mode="nearest-exact"),
    dict(scale_factor=2, mode="bilinear"),
    dict(scale_factor=3, mode="bilinear"),
    dict(scale_factor=0.5, mode="bilinear"),
    dict(scale_factor=(1.7, 0.6), mode="bilinear"),
    dict(size=(13, 4), mode="bilinear"),
    dict(size=(13, 4), mode="bilinear", align_corners=True),
    dict(scale_factor=1.3, mode="bilinear", recompute_scale_factor=True),
    dict(size=(4, 5), mode="area"),
]


@requires_torch
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kw", INTERPOLATE_CASES)
def test_interpolate_matches_torch(kw, dtype):
    check_op(lambda t: F.interpolate(t, **kw), lambda t: TF.interpolate(t, **kw), [r(2, 3, 8, 11)], dtype)


@requires_torch
@pytest.mark.parametrize("kw", [dict(size=13, mode="linear"), dict(scale_factor=2.5), dict(scale_factor=0.5, mode="linear")])
def test_interpolate_1d_matches_torch(kw):
    check_op(lambda t: F.interpolate(t, **kw), lambda t: TF.interpolate(t, **kw), [r(2, 3, 8)], np.float64)


def test_interpolate_gradcheck():
    check_grad(lambda t: F.interpolate(t, scale_factor=1.5, mode="bilinear"), [r(1, 2, 4, 3)], second_order=True)
    check_grad(lambda t: F.interpolate(t, size=(5, 7)), [r(1, 2, 4, 3)])


# -- layers -----------------------------------------------------------------------------------------


@requires_torch
@pytest.mark.parametrize("make,shape", [
    (lambda m: m.MaxPool2d(3, 2, 1), (2, 3, 9, 8)),
    (lambda m: m.MaxPool2d(2, ceil_mode=True), (2, 3, 9, 8)),
    (lambda m: m.MaxPool1d(3, 2), (2, 3, 9)),
    (lambda m: m.AvgPool2d(3, 2, 1, count_include_pad=False), (2, 3, 9, 8)),
    (lambda m: m.AvgPool1d(2), (2, 3, 9)),
    (lambda m: m.AdaptiveAvgPool2d((3, 5)), (2, 3, 9, 8)),
    (lambda m: m.AdaptiveAvgPool2d(1), (3, 9, 8)),  # unbatched
    (lambda m: m.AdaptiveMaxPool2d((4, 3)), (2, 3, 9, 8)),
    (lambda m: m.Upsample(scale_factor=2), (2, 3, 4, 5)),
    (lambda m: m.Upsample(2, "bilinear") if m is rb.nn else m.Upsample(scale_factor=2, mode="bilinear"), (2, 3, 4, 5)),
    (lambda m: m.Upsample(scale_factor=2, mode="bilinear"), (2, 3, 4, 5)),
    (lambda m: m.Upsample(size=(7, 3), mode="bilinear", align_corners=True), (2, 3, 4, 5)),
])
def test_pool_layers_match_torch(make, shape):
    layer, t_layer = make(rb.nn), make(torch.nn)
    assert repr(layer) == repr(t_layer)
    check_op(layer, t_layer, [r(*shape)], np.float64)


def test_max_pool_layer_trains_through():
    """Conv -> max-pool -> linear separates images by where a bright blob is (left or right half)."""
    rb.manual_seed(0)
    x = np.zeros((32, 1, 8, 8), np.float32)
    y = np.arange(32) % 2
    for i, label in enumerate(y):
        col = rng.integers(0, 3) + (5 if label else 0)
        x[i, 0, rng.integers(0, 7), col] = 1.0
    x += 0.05 * rng.standard_normal(x.shape).astype(np.float32)
    model = rb.nn.Sequential(rb.nn.Conv2d(1, 4, 3, padding=1), rb.nn.ReLU(), rb.nn.MaxPool2d(4),
                             rb.nn.Flatten(), rb.nn.Linear(16, 2))
    opt = rb.optim.Adam(model.parameters(), lr=0.05)
    xt, yt = rb.tensor(x), rb.tensor(y)
    for _ in range(60):
        loss = F.cross_entropy(model(xt), yt)
        opt.zero_grad()
        loss.backward()
        opt.step()
    accuracy = (model(xt).numpy().argmax(1) == y).mean()
    assert accuracy == 1.0 and loss.item() < 0.1


def test_pooling_errors_are_clear():
    with pytest.raises(ValueError, match="4-D input"):
        rb.nn.MaxPool2d(2)(rb.zeros(3, 4))
    with pytest.raises(ValueError, match="at most half"):
        F.max_pool2d(rb.zeros(1, 1, 8, 8), 2, padding=2)
    with pytest.raises(ValueError, match="larger than the padded input"):
        F.avg_pool2d(rb.zeros(1, 1, 2, 2), 3)
    with pytest.raises(ValueError, match="output_size"):
        F.adaptive_avg_pool2d(rb.zeros(1, 1, 4, 4), (2, 2, 2))
    with pytest.raises(ValueError, match="exactly one of size and scale_factor"):
        F.interpolate(rb.zeros(1, 1, 4, 4))
    with pytest.raises(ValueError, match="mode"):
        F.interpolate(rb.zeros(1, 1, 4, 4), scale_factor=2, mode="bicubic-ish")
    with pytest.raises(ValueError, match="align_corners"):
        F.interpolate(rb.zeros(1, 1, 4, 4), scale_factor=2, align_corners=True)
    with pytest.raises(TypeError, match="floating"):
        F.max_pool2d(rb.zeros(1, 1, 4, 4, dtype=rb.int64), 2)
