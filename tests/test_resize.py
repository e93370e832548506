"""``F.interpolate``'s fused paths against PyTorch and against the composition they replace.

Integer nearest upscaling (``scale_factor=2``, ``size`` a multiple of the input size) runs as one
:class:`NearestUpsampleFunction`; these tests check its forward and gradients (float32 and
float64, odd sizes, channels-last and non-contiguous inputs and gradients) against PyTorch and
against :func:`interpolate_composite`, its float64 finite differences and second derivatives, and
that the fused op is the one that ran. The bilinear cases of the same shapes are checked too.
"""

from __future__ import annotations

import numpy as np
import pytest

import rosenblatt as rb
from rosenblatt.nn import functional as F
from rosenblatt.nn.functional import resize
from tests import parity
from tests.parity import (
    HAVE_TORCH,
    assert_close,
    check_grad,
    check_op,
    check_second_order,
    rb_tensor,
    requires_torch,
    to_numpy,
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


# (input shape, interpolate arguments): every one an integer nearest upscaling
NEAREST_UPSCALES = [
    ((2, 3, 5, 7), dict(scale_factor=2)),
    ((2, 3, 5, 7), dict(scale_factor=(3, 2))),
    ((1, 2, 4, 3), dict(scale_factor=(1, 4))),  # one axis kept
    ((2, 3, 5, 7), dict(size=(10, 21))),  # UNet-like: a size that is a multiple of the input's
    ((2, 3, 5, 7), dict(size=(15, 7))),
    ((3, 2, 6, 6), dict(scale_factor=2, mode="nearest-exact")),
    ((3, 2, 9), dict(scale_factor=2)),  # 1-D signal
    ((3, 2, 9), dict(size=27)),
    ((4, 16, 16, 16), dict(scale_factor=2)),
]


def _fused_ran(y: rb.Tensor) -> bool:
    return isinstance(y.grad_fn, resize.NearestUpsampleFunction) or (
        y.grad_fn is not None and any(isinstance(i, rb.Tensor) and isinstance(i.grad_fn, resize.NearestUpsampleFunction)
                                      for i in y.grad_fn.inputs))


@requires_torch
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,kw", NEAREST_UPSCALES)
def test_nearest_upscale_matches_torch(shape, kw, dtype):
    check_op(lambda t: F.interpolate(t, **kw), lambda t: TF.interpolate(t, **kw), [r(*shape)], dtype)


@pytest.mark.parametrize("shape,kw", NEAREST_UPSCALES)
def test_nearest_upscale_runs_fused_and_matches_the_composite(shape, kw):
    x = rb_tensor(r(*shape), requires_grad=True)
    y = F.interpolate(x, **kw)
    assert _fused_ran(y)
    y_ref = resize.interpolate_composite(x, **kw)
    assert not _fused_ran(y_ref)
    np.testing.assert_array_equal(to_numpy(y), to_numpy(y_ref))
    g = rb_tensor(r(*y.shape))
    (gx,) = rb.grad(y, x, g)
    (gx_ref,) = rb.grad(y_ref, x, g)
    assert_close(gx, gx_ref, "gradient", rtol=1e-13, atol=1e-13)


def test_nearest_downscale_and_fractional_sizes_stay_composite():
    x = rb_tensor(r(2, 3, 8, 6), requires_grad=True)
    for kw in (dict(scale_factor=0.5), dict(size=(12, 9)), dict(scale_factor=(2, 0.5)), dict(size=(8, 6))):
        assert not _fused_ran(F.interpolate(x, **kw))


def _as_laid_out(array: np.ndarray) -> rb.Tensor:
    """A tensor on ``array``'s memory as it lies (channels-last, strided) on the CPU backend
    (``rb.tensor`` copies into a C-contiguous array); a device copy on another backend."""
    return rb.from_numpy(array) if parity.DEVICE == "cpu" else rb_tensor(array)


@requires_torch
@pytest.mark.parametrize("kw", [dict(scale_factor=2), dict(size=(10, 21)), dict(scale_factor=(2, 3))])
def test_nearest_upscale_layouts_match_torch(kw):
    """Channels-last and strided inputs, and a channels-last upstream gradient."""
    base = r(2, 4, 10, 14).astype(np.float32)
    for array in (np.ascontiguousarray(base[:, :, :5, :7].transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2),  # channels-last
                  base[:, :, 1::2, ::2]):  # strided, 5x7
        x = _as_laid_out(array).requires_grad_(True)
        tx = torch.tensor(np.ascontiguousarray(array), requires_grad=True)
        y, ty = F.interpolate(x, **kw), TF.interpolate(tx, **kw)
        assert _fused_ran(y)
        assert_close(y, ty, "forward", rtol=0, atol=0)
        g = r(*y.shape).astype(np.float32)
        g_cl = np.ascontiguousarray(g.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
        (gx,) = rb.grad(y, x, _as_laid_out(g_cl))
        (tgx,) = torch.autograd.grad(ty, tx, torch.tensor(g))
        assert_close(gx, tgx, "gradient", rtol=1e-6, atol=1e-6)


def test_nearest_upscale_adjoint_adds_in_torchs_order():
    """Each pixel's gradient is ``((g00 + g01) + g10) + g11``, in float32 as PyTorch adds it."""
    g = r(3, 2, 8, 10).astype(np.float32) * np.float32(1e4)
    got = resize._upsample_nearest_adjoint(g, 2, 2)
    expected = ((g[:, :, 0::2, 0::2] + g[:, :, 0::2, 1::2]) + g[:, :, 1::2, 0::2]) + g[:, :, 1::2, 1::2]
    np.testing.assert_array_equal(got, expected)


def test_nearest_upscale_gradcheck():
    check_grad(lambda t: F.interpolate(t, scale_factor=2), [r(1, 2, 3, 4)], second_order=True)
    check_grad(lambda t: F.interpolate(t, size=(9, 8)), [r(2, 1, 3, 4)], second_order=True)
    check_grad(lambda t: F.interpolate(t, scale_factor=3), [r(2, 2, 5)], second_order=True)


@requires_torch
def test_nearest_upscale_second_order_matches_torch():
    check_second_order(lambda t: F.interpolate(t, scale_factor=2) ** 2, lambda t: TF.interpolate(t, scale_factor=2) ** 2,
                       [r(2, 2, 3, 5)])
    check_second_order(lambda t: F.interpolate(t, size=(6, 15)) ** 2, lambda t: TF.interpolate(t, size=(6, 15)) ** 2,
                       [r(2, 2, 3, 5)])


BILINEAR_CASES = [
    dict(scale_factor=2, mode="bilinear"),
    dict(scale_factor=2, mode="bilinear", align_corners=True),
    dict(size=(32, 32), mode="bilinear"),
    dict(size=(31, 35), mode="bilinear", align_corners=True),
]


@requires_torch
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kw", BILINEAR_CASES)
@pytest.mark.parametrize("shape", [(2, 3, 16, 16), (2, 3, 15, 17)])
def test_bilinear_matches_torch(shape, kw, dtype):
    check_op(lambda t: F.interpolate(t, **kw), lambda t: TF.interpolate(t, **kw), [r(*shape)], dtype)


@requires_torch
def test_bilinear_channels_last_matches_torch():
    array = np.ascontiguousarray(r(2, 15, 17, 3).astype(np.float32)).transpose(0, 3, 1, 2)
    check_op(lambda t: F.interpolate(t, scale_factor=2, mode="bilinear"),
             lambda t: TF.interpolate(t, scale_factor=2, mode="bilinear"), [array], np.float32)


@requires_torch
@pytest.mark.parametrize("kw", [dict(scale_factor=2), dict(scale_factor=(3, 2)), dict(size=(32, 16))])
def test_nearest_upscale_of_big_float32_inputs_under_both_kernel_sets(kernel_set, kw):
    """From ``resampling.MIN_ELEMENTS`` output elements the oneDNN kernels write the upscaled array in
    one pass (oneDNN's resampling primitive): the same bits as NumPy's repeat (NaN, infinities and
    signed zeros included), a channels-last input giving a channels-last output; a strided input
    and the gradient stay NumPy's."""
    from rosenblatt.kernels.onednn import library as L
    from rosenblatt.kernels.onednn import resampling

    base = r(8, 16, 16, 16).astype(np.float32)
    base[0, 0, 0, :4] = [np.nan, np.inf, -np.inf, -0.0]
    channels_last = np.ascontiguousarray(base.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    strided = np.repeat(base, 2, axis=3)[:, :, :, ::2]
    for array in (base, channels_last, strided):
        x = _as_laid_out(array).requires_grad_(True)
        tx = torch.tensor(np.ascontiguousarray(array), requires_grad=True)
        y, ty = F.interpolate(x, **kw), TF.interpolate(tx, **kw)
        assert _fused_ran(y) and y.numel() >= resampling.MIN_ELEMENTS
        expected = ty.detach().numpy()
        np.testing.assert_array_equal(y.numpy().view(np.uint32), expected.view(np.uint32))
        assert (L.channels_last(y.numpy()) is not None) == (kernel_set == "onednn" and array is channels_last)
        g = r(*y.shape).astype(np.float32)
        (gx,) = rb.grad(y, x, rb_tensor(g))
        (tgx,) = torch.autograd.grad(ty, tx, torch.tensor(g))
        assert_close(gx, tgx, "gradient", rtol=1e-6, atol=1e-6)
    ran = any(isinstance(key, tuple) and key[:1] == ("nearest upsampling",) and value is not None
              for key, value in L.cache_items())
    assert ran == (kernel_set == "onednn")


@pytest.mark.parametrize("factors", [(2, 2), (1, 2), (2, 4), (3, 2)])
def test_nearest_upscale_adjoint_under_both_kernel_sets(kernel_set, factors):
    """With the oneDNN kernels, the gradient of a big float32 upscaling whose window has a
    power-of-two size is an average pooling times the window size (exact scalings): each window's
    sum, within rounding of PyTorch's order; infinities and NaN propagate. Other windows, and the
    NumPy kernels, add the strided views in PyTorch's order."""
    from rosenblatt.kernels.onednn import library as L

    fh, fw = factors
    g = r(8, 16, 16 * fh, 16 * fw).astype(np.float32)
    g[0, 0, 0, 0], g[1, 2, 3, 4] = np.inf, np.nan
    views = [g[:, :, i::fh, j::fw] for i in range(fh) for j in range(fw)]
    expected = views[0] + views[1]
    for view in views[2:]:
        expected = expected + view
    got = resize._upsample_nearest_adjoint(g, fh, fw)
    pooled = any(isinstance(key, tuple) and key[:1] == ("pool",) and value for key, value in L.cache_items())
    power_of_two = fh * fw in (2, 4, 8)
    assert pooled == (kernel_set == "onednn" and power_of_two)
    if pooled:
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
        assert np.isinf(got[0, 0, 0, 0]) and np.isnan(got[1, 2, 3 // fh, 4 // fw])
    else:
        np.testing.assert_array_equal(got, expected)
