"""Nearest-neighbour upscaling by integer factors on oneDNN's resampling primitive: one threaded
pass that writes every output pixel, where NumPy repeats the array along one axis, then the other,
on one thread.

A UNet decoder upsamples its activations by 2 before each skip connection. Measured on a
64x16x16x16 float32 input, factor 2 (two threads): NumPy 814 us, oneDNN 200 us. The output is a
copy of input values, so it is NumPy's bit for bit (NaN payloads and signed zeros included).

The gradient (the sum of each input pixel's ``fh*fw`` copies) does not use the resampling
primitive's backward pass: oneDNN 3.2 runs it on its reference loop, ``simple:any`` (3.4 ms where
NumPy's sum of strided views takes 0.9 ms). It is an average pooling with ``fh x fw`` windows,
times ``fh*fw`` (:func:`nearest_upsample_adjoint`), for windows of a power-of-two size, where the
division and the product are exact: the sum of each window in oneDNN's order (0.46 ms).
"""

from __future__ import annotations

from ctypes import POINTER, c_float

import numpy as np

from rosenblatt.kernels.onednn import library as L

C = L.C
ENABLED = True  # False: never used (NumPy runs)
# From this many output elements (below, a oneDNN call's fixed cost is most of the time).
MIN_ELEMENTS = 1 << 16
_NEAREST = 0x2FFF0  # dnnl_resampling_nearest

L.bind("resampling_forward_primitive_desc_create", [L._PP, L._P, L._I, L._I, POINTER(c_float), L._P, L._P, L._P])


class _Plan:
    def __init__(self, shape: tuple[int, ...], fh: int, fw: int, channels_last: bool) -> None:
        n, c, h, w = shape
        out_shape = (n, c, h * fh, w * fw)
        if channels_last:
            src, dst = L.channels_last_md(shape), L.channels_last_md(out_shape)
        else:
            src, dst = L.MemoryDesc.contiguous(shape), L.MemoryDesc.contiguous(out_shape)
        factors = (c_float * 2)(float(fh), float(fw))
        self.out_shape = out_shape
        self.op = L.Primitive(L.create_pd("resampling_forward", C.forward_inference, _NEAREST, factors, src, dst,
                                          None, op="nearest upsampling"), "nearest upsampling")


def nearest_upsample(x: np.ndarray, fh: int, fw: int) -> np.ndarray | None:
    """Every pixel of a float32 ``(N, C, H, W)`` array repeated ``fh`` times down and ``fw`` times
    across, into a new array laid out as ``x`` is (C-contiguous or channels-last); ``None`` when
    declined (another dtype or layout, or fewer than :data:`MIN_ELEMENTS` output elements)."""
    if (not ENABLED or type(x) is not np.ndarray or x.dtype != np.float32 or x.ndim != 4
            or x.size * fh * fw < MIN_ELEMENTS):
        return None
    memory = x if x.flags.c_contiguous else L.channels_last(x)
    if memory is None:
        return None
    channels_last = memory is not x
    plan = L.cached_or_none(("nearest upsampling", x.shape, fh, fw, channels_last),
                            lambda: _Plan(tuple(x.shape), fh, fw, channels_last))
    if plan is None:
        return None
    y = L.empty_channels_last(plan.out_shape) if channels_last else L.empty(plan.out_shape)
    plan.op.execute([(C.ARG_SRC, memory), (C.ARG_DST, L.channels_last(y) if channels_last else y)])
    return y


def nearest_upsample_adjoint(gy: np.ndarray, fh: int, fw: int) -> np.ndarray | None:
    """The gradient of :func:`nearest_upsample`: the sum of each ``fh x fw`` block of the float32
    ``(N, C, fh*H, fw*W)`` array ``gy`` (laid out as ``gy`` is), as an average pooling times
    ``fh*fw``; ``None`` when declined (another dtype or layout, an input below
    ``pooling.MIN_ELEMENTS``, or a window whose size is not a power of two above 1)."""
    count = fh * fw
    if (not ENABLED or type(gy) is not np.ndarray or gy.dtype != np.float32 or gy.ndim != 4
            or count < 2 or count & (count - 1)):
        return None
    from rosenblatt.kernels.onednn import eltwise, pooling

    n, c, h, w = gy.shape
    pooled = pooling.pool_forward(gy, (n, c, h // fh, w // fw), "avg_include", (fh, fw), (fh, fw), (0, 0),
                                  (0, 0), (1, 1), training=False)
    if pooled is None:
        return None
    out = pooled[0]
    if eltwise.binary("mul", out, float(count), in_place=True) is None:
        out *= np.float32(count)
    return out
