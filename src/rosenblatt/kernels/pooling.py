"""NumPy (and CuPy) pooling kernels: arrays in, arrays out; the reference and the fallback.

The windows are never materialised and nothing loops over the batch or the channels: the loops
run over the ``kh*kw`` kernel offsets only. Offset ``(i, j)`` sees one strided view of the padded
input, ``x[:, :, i::stride, j::stride]`` (cut to the output size), which holds that offset's pixel
for every window at once. Max pooling keeps a running maximum and the offset that produced it
(``argmax`` over the window, ties to the first offset as in PyTorch); its backward copies the
output gradient into each offset's strided view where that offset won (a strided scatter per
offset: overlapping windows add up, ``np.add.at`` is never needed). Average pooling sums the
views; its backward adds the scaled gradient into every view.

``geom`` is the pooling geometry of :mod:`rosenblatt.nn.functional.pooling` (kernel, stride,
padding, dilation, input/output/padded sizes, ``offsets()``, ``overlapping``, ``needs_padding``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rosenblatt.backend import get_array_module
from rosenblatt.kernels.workspace import workspace


def pool_output_size(op: str, size: int, kernel: int, stride: int, pad: int, dilation: int,
                     ceil_mode: bool) -> int:
    """PyTorch's ``pooling_output_shape``: with ``ceil_mode`` the last window may hang over the
    end, but must start inside the input or the left padding."""
    extent = dilation * (kernel - 1) + 1
    numerator = size + 2 * pad - extent + ((stride - 1) if ceil_mode else 0)
    if numerator < 0:
        raise ValueError(f"{op}: kernel extent {extent} is larger than the padded input {size + 2 * pad}")
    out = numerator // stride + 1
    if ceil_mode and (out - 1) * stride >= size + pad:
        out -= 1
    return out



def _padded(x: Any, geom: Any, fill: float, tag: str) -> Any:
    """``x`` inside a workspace buffer of the padded size, the border set to ``fill``."""
    if not geom.needs_padding:
        return x
    xp = get_array_module(x)
    n, c, h, w = x.shape
    (pt, pl), (hp, wp) = geom.padding, geom.padded_hw
    out = workspace(tag, (n, c, hp, wp), x.dtype, xp)
    out[:, :, :pt] = fill
    out[:, :, pt + h:] = fill
    out[:, :, pt:pt + h, :pl] = fill
    out[:, :, pt:pt + h, pl + w:] = fill
    out[:, :, pt:pt + h, pl:pl + w] = x
    return out


def _zeros_padded(shape: tuple[int, ...], dtype: Any, geom: Any, xp: Any) -> Any:
    if geom.needs_padding:
        buffer = workspace("pool.grad", shape[:2] + tuple(geom.padded_hw), dtype, xp)
        buffer.fill(0)
        return buffer
    return xp.zeros(shape, dtype=dtype)


def _crop(buffer: Any, geom: Any) -> Any:
    if not geom.needs_padding:
        return buffer
    (pt, pl), (h, w) = geom.padding, geom.in_hw
    return buffer[:, :, pt:pt + h, pl:pl + w].copy()


def max_pool(x: Any, geom: Any, with_argmax: bool) -> tuple[Any, Any]:
    """Running maximum over the kernel offsets; ``argmax`` is the winning offset per output."""
    padded = _padded(x, geom, -np.inf, "pool.pad")
    windows = ((k, padded[:, :, rows, cols]) for k, rows, cols in geom.offsets())
    return running_max(windows, geom.kernel[0] * geom.kernel[1], with_argmax, get_array_module(x))


def running_max(windows: Any, count: int, with_argmax: bool, xp: Any) -> tuple[Any, Any]:
    """The elementwise maximum of the ``(k, view)`` windows (``k`` = 0, 1, ... in order) and, if
    asked, the winning ``k`` per element (the first on ties); shared by 2-D and 3-D pooling."""
    best = argmax = None
    for k, view in windows:
        if best is None:
            best = view.copy()
            if with_argmax:
                argmax = xp.zeros(best.shape, dtype=np.int8 if count <= 127 else np.int32)
            continue
        if with_argmax:
            # Strictly greater: ties keep the first offset, as PyTorch does. Offsets come in
            # increasing order, so a new winner k is larger than any argmax so far and
            # max(argmax, k * (view > best)) records it: branch-free, unlike a masked copy
            # (copyto/where with a data-dependent mask is ~10x slower in NumPy).
            xp.maximum(argmax, xp.multiply(view > best, k, dtype=argmax.dtype), out=argmax)
        xp.maximum(best, view, out=best)
    return best, argmax


def max_pool_scatter(gy: Any, argmax: Any, x_shape: tuple[int, ...], geom: Any) -> Any:
    """Gradient of max pooling: each output gradient goes to the input pixel that won its window."""
    xp = get_array_module(gy)
    gx = _zeros_padded(tuple(x_shape), gy.dtype, geom, xp)
    overlapping = geom.overlapping
    # gy * (argmax == k) rather than a masked copy: a multiply by the mask is branch-free
    for k, rows, cols in geom.offsets():
        won = argmax == k
        if overlapping:
            gx[:, :, rows, cols] += gy * won
        else:  # disjoint windows: each pixel is written by at most one offset
            xp.multiply(gy, won, out=gx[:, :, rows, cols])
    return _crop(gx, geom)


def max_pool_gather(x: Any, argmax: Any, geom: Any) -> Any:
    """For every window, the value of ``x`` at the position that won the max."""
    xp = get_array_module(x)
    padded = _padded(x, geom, 0.0, "pool.pad")
    out = xp.zeros(argmax.shape, dtype=x.dtype)
    for k, rows, cols in geom.offsets():
        xp.copyto(out, padded[:, :, rows, cols], where=argmax == k)
    return out


def avg_pool(x: Any, geom: Any, divisor: Any) -> Any:
    """Average pooling: the sum of the kernel offsets' strided views over ``divisor``."""
    padded = _padded(x, geom, 0.0, "pool.pad")
    acc = None
    for _, rows, cols in geom.offsets():
        view = padded[:, :, rows, cols]
        if acc is None:
            acc = view.copy()
        else:
            acc += view
    acc /= divisor
    return acc


def avg_pool_transpose(gy: Any, x_shape: tuple[int, ...], geom: Any, divisor: Any) -> Any:
    """Gradient of average pooling: every window's gradient, divided by its size, added back to
    each of its pixels (one strided add per kernel offset)."""
    xp = get_array_module(gy)
    gx = _zeros_padded(tuple(x_shape), gy.dtype, geom, xp)
    scaled = gy / divisor
    overlapping = geom.overlapping
    for _, rows, cols in geom.offsets():
        if overlapping:
            gx[:, :, rows, cols] += scaled
        else:
            gx[:, :, rows, cols] = scaled
    return _crop(gx, geom)


def flat_indices(argmax: Any, geom: Any) -> Any:
    """PyTorch's ``return_indices``: the flat index ``h*W + w`` of each maximum in its input plane."""
    xp = get_array_module(argmax)
    kw, (sh, sw), (dh, dw), (pt, pl) = geom.kernel[1], geom.stride, geom.dilation, geom.padding
    oh, ow = geom.out_hw
    i, j = argmax.astype(np.int64) // kw, argmax.astype(np.int64) % kw
    rows = xp.arange(oh).reshape(-1, 1) * sh - pt + i * dh
    cols = xp.arange(ow).reshape(1, -1) * sw - pl + j * dw
    return rows * geom.in_hw[1] + cols


__all__ = ["avg_pool", "avg_pool_transpose", "flat_indices", "max_pool", "max_pool_gather", "max_pool_scatter",
           "pool_output_size"]
