"""Max and average pooling kernels for volumes ``(N, C, D, H, W)`` on raw arrays.

As in the 2-D pooling, windows are never materialised and nothing loops over the batch, the
channels or the voxels: the loops run over the ``kd*kh*kw`` kernel offsets only. Offset
``(i, j, l)`` sees one strided view of the padded input that holds that offset's voxel for every
window at once. Max pooling keeps a running maximum and the offset that produced it (ties go to
the first offset, as in PyTorch); its backward writes the output gradient into each offset's
strided view where that offset won (a strided add per offset: overlapping windows add up,
``np.add.at`` is never needed). Average pooling sums the views; its backward adds the scaled
gradient into every view.

The code does not depend on the number of spatial axes; :class:`PoolGeometry` describes one call.
"""

from __future__ import annotations

from itertools import product
from typing import Any

import numpy as np

from rosenblatt.backend import get_array_module
from rosenblatt.kernels.pooling import pool_output_size, running_max


class PoolGeometry:
    """Kernel, stride, symmetric padding and dilation of one pooling call, and the sizes they give."""

    __slots__ = ("kernel", "stride", "padding", "dilation", "in_size", "out_size", "padded_size")

    def __init__(self, op: str, in_size: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...],
                 padding: tuple[int, ...], dilation: tuple[int, ...], ceil_mode: bool) -> None:
        for k, p, d in zip(kernel, padding, dilation):
            if p > (d * (k - 1) + 1) // 2:
                raise ValueError(f"{op}: padding {padding} must be at most half of the kernel extent "
                                 f"(kernel {kernel}, dilation {dilation})")
        self.kernel, self.stride, self.padding, self.dilation = kernel, stride, padding, dilation
        self.in_size = tuple(in_size)
        self.out_size = tuple(pool_output_size(op, n, k, s, p, d, ceil_mode)
                              for n, k, s, p, d in zip(in_size, kernel, stride, padding, dilation))
        # With ceil_mode the last window can reach past the padded input: make room for it.
        self.padded_size = tuple(max(n + 2 * p, (o - 1) * s + d * (k - 1) + 1) for n, p, o, s, d, k in
                                 zip(in_size, padding, self.out_size, stride, dilation, kernel))

    def offsets(self):
        """``(index, slices)`` for every kernel offset: the strided view that offset sees."""
        for index, offset in enumerate(product(*(range(k) for k in self.kernel))):
            yield index, (slice(None), slice(None)) + tuple(
                slice(o * d, o * d + s * (m - 1) + 1, s)
                for o, d, s, m in zip(offset, self.dilation, self.stride, self.out_size))

    @property
    def window_size(self) -> int:
        return int(np.prod(self.kernel))

    @property
    def overlapping(self) -> bool:
        """True when windows share input voxels (then backward must add, not assign)."""
        return any(s < d * (k - 1) + 1 for k, s, d in zip(self.kernel, self.stride, self.dilation))

    @property
    def needs_padding(self) -> bool:
        return self.padded_size != self.in_size

    def interior(self) -> tuple[slice, ...]:
        return (slice(None), slice(None)) + tuple(slice(p, p + n) for p, n in zip(self.padding, self.in_size))


def _padded(x: Any, geom: PoolGeometry, fill: float) -> Any:
    """``x`` inside an array of the padded size whose border is ``fill``."""
    if not geom.needs_padding:
        return x
    xp = get_array_module(x)
    out = xp.full(x.shape[:2] + geom.padded_size, fill, dtype=x.dtype)
    out[geom.interior()] = x
    return out


def _zeros_padded(shape: tuple[int, ...], dtype: Any, geom: PoolGeometry, xp: Any) -> Any:
    return xp.zeros(tuple(shape[:2]) + geom.padded_size, dtype=dtype)


def _crop(buffer: Any, geom: PoolGeometry) -> Any:
    if not geom.needs_padding:
        return buffer
    return buffer[geom.interior()].copy()


def max_pool_array(x: Any, geom: PoolGeometry, with_argmax: bool) -> tuple[Any, Any]:
    """Running maximum over the kernel offsets; ``argmax`` (or None) is the winning offset."""
    padded = _padded(x, geom, -np.inf)
    windows = ((k, padded[slices]) for k, slices in geom.offsets())
    return running_max(windows, geom.window_size, with_argmax, get_array_module(x))


def max_pool_scatter_array(gy: Any, argmax: Any, x_shape: tuple[int, ...], geom: PoolGeometry) -> Any:
    """Gradient of max pooling: each output gradient goes to the voxel that won its window."""
    xp = get_array_module(gy)
    gx = _zeros_padded(x_shape, gy.dtype, geom, xp)
    overlapping = geom.overlapping
    for k, slices in geom.offsets():
        won = argmax == k
        if overlapping:
            gx[slices] += gy * won
        else:  # disjoint windows: each voxel is written by at most one offset
            xp.multiply(gy, won, out=gx[slices])
    return _crop(gx, geom)


def max_pool_gather_array(x: Any, argmax: Any, geom: PoolGeometry) -> Any:
    """For every window, the value of ``x`` at the position that won the max (the adjoint of
    :func:`max_pool_scatter_array`)."""
    xp = get_array_module(x)
    padded = _padded(x, geom, 0.0)
    out = xp.zeros(argmax.shape, dtype=x.dtype)
    for k, slices in geom.offsets():
        xp.copyto(out, padded[slices], where=argmax == k)
    return out


def flat_indices(argmax: Any, geom: PoolGeometry) -> Any:
    """PyTorch's ``return_indices``: the flat position ``(d*H + h)*W + w`` of each maximum."""
    xp = get_array_module(argmax)
    offsets = np.unravel_index(np.arange(geom.window_size), geom.kernel)
    index = xp.zeros(argmax.shape, dtype=np.int64)
    winner = argmax.astype(np.int64)
    for axis, (o_table, s, d, p, m, n) in enumerate(zip(offsets, geom.stride, geom.dilation, geom.padding,
                                                        geom.out_size, geom.in_size)):
        shape = [1] * len(geom.kernel)
        shape[axis] = m
        start = (xp.arange(m) * s - p).reshape(shape)
        position = start + xp.asarray(o_table)[winner] * d
        index = index * n + position
    return index


def avg_divisor(geom: PoolGeometry, count_include_pad: bool, divisor_override: int | None, xp: Any,
                dtype: Any) -> Any:
    """The number each window sum is divided by: a scalar, or a per-position map when windows at
    the border count fewer voxels (``count_include_pad=False``, or ``ceil_mode`` overhang)."""
    if divisor_override is not None:
        return float(divisor_override)
    with_pad = tuple(n + 2 * p for n, p in zip(geom.in_size, geom.padding))
    if count_include_pad and geom.padded_size == with_pad:
        return float(geom.window_size)
    mask = np.zeros((1, 1) + geom.padded_size)
    if count_include_pad:  # voxels of the padded input count, the ceil_mode overhang does not
        mask[(slice(None), slice(None)) + tuple(slice(0, n) for n in with_pad)] = 1
    else:
        mask[geom.interior()] = 1
    counts = sum(mask[slices] for _, slices in geom.offsets())
    return xp.asarray(counts[0, 0], dtype=dtype)


def avg_pool_array(x: Any, geom: PoolGeometry, divisor: Any) -> Any:
    """Window sums over the kernel offsets, divided by ``divisor``."""
    padded = _padded(x, geom, 0.0)
    acc = None
    for _, slices in geom.offsets():
        view = padded[slices]
        if acc is None:
            acc = view.copy()
        else:
            acc += view
    acc /= divisor
    return acc


def avg_pool_transpose_array(gy: Any, x_shape: tuple[int, ...], geom: PoolGeometry, divisor: Any) -> Any:
    """Gradient of average pooling: each window's gradient, divided by its size, added to each of
    its voxels (one strided add per kernel offset)."""
    xp = get_array_module(gy)
    gx = _zeros_padded(x_shape, gy.dtype, geom, xp)
    scaled = gy / divisor
    overlapping = geom.overlapping
    for _, slices in geom.offsets():
        if overlapping:
            gx[slices] += scaled
        else:
            gx[slices] = scaled
    return _crop(gx, geom)


__all__ = ["PoolGeometry", "avg_divisor", "avg_pool_array", "avg_pool_transpose_array", "flat_indices",
           "max_pool_array", "max_pool_gather_array", "max_pool_scatter_array", "pool_output_size"]
