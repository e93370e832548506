"""3-D convolution kernels on raw arrays (NCDHW data, PyTorch's ``(O, C/g, kd, kh, kw)`` weights).

Volumes (calorimeter cells, medical scans) are convolved the way images are in the 2-D kernels:

1. **im2col in one copy.** The zero-padded input is laid out channel-major, ``(C, N, Dp, Hp, Wp)``,
   and viewed without copying as ``(C, kd, kh, kw, N, OD, OH, OW)`` sliding windows
   (``as_strided``); one copy makes the ``(C*kd*kh*kw, N*OD*OH*OW)`` column matrix.
2. **One GEMM per group** gives the output; the weight gradient is one GEMM against the columns.
3. **Input gradient without scatter-adds:** the gradient columns (one GEMM) are added back into a
   padded buffer with one strided slice-add per kernel offset (``kd*kh*kw`` of them, each over the
   whole chunk); ``np.add.at`` is never used.

The column matrix is ``kd*kh*kw`` times the input's size (27 times for a 3x3x3 kernel), so the
batch is processed in chunks whose columns stay under :data:`COLUMNS_MAX_BYTES`: memory stays
bounded, the GEMMs stay thousands of columns wide, and the columns are still in cache when the
GEMM reads them. Every loop runs over batch chunks or kernel offsets, never over voxels.

The arrays may be NumPy or CuPy arrays (``get_array_module``).
"""

from __future__ import annotations

from itertools import product
from typing import Any, NamedTuple

from rosenblatt.backend import get_array_module

# Columns of one chunk stay under this size (see the module docstring).
COLUMNS_MAX_BYTES = 8 * 2**20


class Conv3dGeometry(NamedTuple):
    """Stride, per-side padding ``((front, back), (top, bottom), (left, right))``, dilation, groups."""

    stride: tuple[int, int, int]
    padding: tuple[tuple[int, int], tuple[int, int], tuple[int, int]]
    dilation: tuple[int, int, int]
    groups: int


def conv3d_output_size(in_size: tuple[int, ...], kernel: tuple[int, ...],
                       geom: Conv3dGeometry) -> tuple[int, int, int]:
    """``(OD, OH, OW)``: ``(size + pads - dilation*(k-1) - 1) // stride + 1`` per axis."""
    return tuple((n + p[0] + p[1] - d * (k - 1) - 1) // s + 1  # type: ignore[return-value]
                 for n, k, s, p, d in zip(in_size, kernel, geom.stride, geom.padding, geom.dilation))


def _chunks(n: int, bytes_per_sample: int) -> list[tuple[int, int]]:
    """Near-equal ``(start, stop)`` ranges of the batch whose columns fit the budget."""
    if n == 0:
        return []
    capacity = max(1, min(n, COLUMNS_MAX_BYTES // max(bytes_per_sample, 1)))
    count = -(-n // capacity)
    capacity = -(-n // count)
    return [(start, min(start + capacity, n)) for start in range(0, n, capacity)]


def _offset_slices(kernel: tuple[int, ...], geom: Conv3dGeometry, out: tuple[int, ...]):
    """``(i, j, l), (depth, row, col slices)`` of every kernel offset: the padded-input voxels
    that offset meets at every output position."""
    for offset in product(*(range(k) for k in kernel)):
        yield offset, tuple(slice(o * d, o * d + s * (m - 1) + 1, s)
                            for o, d, s, m in zip(offset, geom.dilation, geom.stride, out))


def _padded_channel_major(x: Any, pads: tuple[tuple[int, int], ...]) -> Any:
    """``x`` ``(N, C, D, H, W)`` as a zero-padded ``(C, N, Dp, Hp, Wp)`` array."""
    xp = get_array_module(x)
    n, c = x.shape[:2]
    size = tuple(s + lo + hi for s, (lo, hi) in zip(x.shape[2:], pads))
    out = xp.zeros((c, n) + size, dtype=x.dtype)
    interior = tuple(slice(lo, lo + s) for s, (lo, _) in zip(x.shape[2:], pads))
    out[(slice(None), slice(None)) + interior] = x.transpose(1, 0, 2, 3, 4)
    return out


def im2col3d(x: Any, kernel: tuple[int, int, int], geom: Conv3dGeometry) -> Any:
    """Columns ``(C*kd*kh*kw, N*OD*OH*OW)`` of ``x``.

    Row ``c*kd*kh*kw + (i*kh + j)*kw + l`` holds the voxels that kernel offset ``(i, j, l)`` of
    channel ``c`` meets at every output position of every sample.
    """
    xp = get_array_module(x)
    n, c = x.shape[:2]
    kd, kh, kw = kernel
    od, oh, ow = conv3d_output_size(x.shape[2:], kernel, geom)
    padded = _padded_channel_major(x, geom.padding)
    s_c, s_n, s_d, s_h, s_w = padded.strides
    (sd, sh, sw), (dd, dh, dw) = geom.stride, geom.dilation
    windows = xp.lib.stride_tricks.as_strided(
        padded, shape=(c, kd, kh, kw, n, od, oh, ow),
        strides=(s_c, dd * s_d, dh * s_h, dw * s_w, s_n, sd * s_d, sh * s_h, sw * s_w))
    cols = xp.empty((c * kd * kh * kw, n * od * oh * ow), dtype=x.dtype)
    xp.copyto(cols.reshape(c, kd, kh, kw, n, od, oh, ow), windows)
    return cols


def _grad_channel_major(gy: Any, groups: int) -> Any:
    """The output gradient ``(N, O, OD, OH, OW)`` as ``(G, O/G, N*OD*OH*OW)`` (one copy)."""
    xp = get_array_module(gy)
    n, o = gy.shape[:2]
    return xp.ascontiguousarray(gy.reshape(n, o, -1).transpose(1, 0, 2)).reshape(groups, o // groups, -1)


def _column_bytes(x_shape: tuple[int, ...], kernel: tuple[int, ...], out: tuple[int, ...], itemsize: int) -> int:
    return x_shape[1] * kernel[0] * kernel[1] * kernel[2] * out[0] * out[1] * out[2] * itemsize


def conv3d_array(x: Any, w: Any, geom: Conv3dGeometry) -> Any:
    """The convolution on raw arrays: im2col per batch chunk, one GEMM per group."""
    xp = get_array_module(x)
    n = x.shape[0]
    o, cg, kd, kh, kw = w.shape
    g = geom.groups
    k = cg * kd * kh * kw
    out = conv3d_output_size(x.shape[2:], (kd, kh, kw), geom)
    positions = out[0] * out[1] * out[2]
    y = xp.empty((n, o, positions), dtype=x.dtype)
    weight = w.reshape(g, o // g, k)
    for start, stop in _chunks(n, _column_bytes(x.shape, (kd, kh, kw), out, x.dtype.itemsize)):
        b = stop - start
        cols = im2col3d(x[start:stop], (kd, kh, kw), geom).reshape(g, k, b * positions)
        part = xp.matmul(weight, cols)  # (G, O/G, b*P)
        y[start:stop] = part.reshape(o, b, positions).transpose(1, 0, 2)
    return y.reshape((n, o) + out)


def conv3d_grad_weight_array(x: Any, gy: Any, w_shape: tuple[int, ...], geom: Conv3dGeometry) -> Any:
    """d(loss)/d(weight): ``gy @ columns^T`` per group, summed over batch chunks."""
    xp = get_array_module(x)
    n = x.shape[0]
    o, cg, kd, kh, kw = w_shape
    g = geom.groups
    k = cg * kd * kh * kw
    out = tuple(gy.shape[2:])
    gw = xp.zeros((g, o // g, k), dtype=x.dtype)
    for start, stop in _chunks(n, _column_bytes(x.shape, (kd, kh, kw), out, x.dtype.itemsize)):
        cols = im2col3d(x[start:stop], (kd, kh, kw), geom)
        gy_cm = _grad_channel_major(gy[start:stop], g)
        gw += xp.matmul(gy_cm, cols.reshape(g, k, -1).transpose(0, 2, 1))
    return gw.reshape(w_shape)


def conv3d_grad_input_array(gy: Any, w: Any, x_shape: tuple[int, ...], geom: Conv3dGeometry) -> Any:
    """d(loss)/d(input), also the forward of a transposed 3-D convolution.

    Gradient columns ``w^T @ gy`` (one GEMM per group), then one strided slice-add per kernel
    offset into a zero-padded channel-major buffer, cropped back to the input.
    """
    xp = get_array_module(gy)
    n, c = x_shape[:2]
    o, cg, kd, kh, kw = w.shape
    g = geom.groups
    k = cg * kd * kh * kw
    out = tuple(gy.shape[2:])
    padded_size = tuple(s + lo + hi for s, (lo, hi) in zip(x_shape[2:], geom.padding))
    interior = tuple(slice(lo, lo + s) for s, (lo, _) in zip(x_shape[2:], geom.padding))
    weight_t = w.reshape(g, o // g, k).transpose(0, 2, 1)  # (G, k, O/G)
    gx = xp.empty(tuple(x_shape), dtype=gy.dtype)
    for start, stop in _chunks(n, _column_bytes(x_shape, (kd, kh, kw), out, gy.dtype.itemsize)):
        b = stop - start
        gcols = xp.matmul(weight_t, _grad_channel_major(gy[start:stop], g))  # (G, k, b*P)
        gcols = gcols.reshape((c, kd, kh, kw, b) + out)
        target = xp.zeros((c, b) + padded_size, dtype=gy.dtype)
        for offset, slices in _offset_slices((kd, kh, kw), geom, out):
            target[(slice(None), slice(None)) + slices] += gcols[(slice(None),) + offset]
        gx[start:stop] = target[(slice(None), slice(None)) + interior].transpose(1, 0, 2, 3, 4)
    return gx


__all__ = ["COLUMNS_MAX_BYTES", "Conv3dGeometry", "conv3d_array", "conv3d_grad_input_array",
           "conv3d_grad_weight_array", "conv3d_output_size", "im2col3d"]
