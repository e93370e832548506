"""Rearranging pixels into channels and images into patches: ``pixel_shuffle``, ``pixel_unshuffle``,
``unfold`` and ``fold``.

``pixel_shuffle`` (Shi et al., "Real-Time Single Image and Video Super-Resolution Using an
Efficient Sub-Pixel Convolutional Neural Network", CVPR 2016) moves each group of ``r*r``
channels into an ``r x r`` block of pixels; ``pixel_unshuffle`` is its inverse. Both are a reshape,
a permutation of axes and a reshape, composed from the differentiable ops of
:mod:`rosenblatt.ops`, so gradients, second derivatives and ONNX export come from those ops.

``unfold`` (im2col) copies every sliding ``kh x kw`` block of an image into a column, and
``fold`` (col2im) is its adjoint: it adds the columns back into an image, summing where blocks
overlap. Each is one :class:`~rosenblatt.core.Function` whose backward applies the other, so
their second derivatives need nothing more. The array kernels loop over the ``kh*kw`` kernel
offsets only: each offset is one strided slice of the zero-padded image, copied into (unfold) or
added from (fold) the block axis of all samples, channels and positions at once.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rosenblatt.backend import get_array_module
from rosenblatt.core import Function, Tensor
from rosenblatt.ops import permute, reshape

_IntPair = int | tuple[int, int]


# -- pixel shuffle --------------------------------------------------------------------------------------


def _check_factor(op: str, name: str, value: Any) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{op}: {name} must be a positive int, got {value!r}")
    return int(value)


def _check_image(op: str, input: Any) -> None:
    if not isinstance(input, Tensor):
        raise TypeError(f"{op}: expected a Tensor input, got {type(input).__name__}")
    if input.ndim < 3:
        raise ValueError(f"{op}: expected an input of shape (*, C, H, W) with at least 3 dimensions, "
                         f"got shape {input.shape}")


def pixel_shuffle(input: Tensor, upscale_factor: int) -> Tensor:
    """Rearrange ``(*, C*r*r, H, W)`` into ``(*, C, H*r, W*r)``, ``r = upscale_factor``.

    Output pixel ``(c, h*r + i, w*r + j)`` is input channel ``c*r*r + i*r + j`` at ``(h, w)``
    (Shi et al., "Real-Time Single Image and Video Super-Resolution Using an Efficient Sub-Pixel
    Convolutional Neural Network", CVPR 2016). Any number of leading batch dimensions is allowed.

    Shape:
        input: ``(*, C*r^2, H, W)``; output: ``(*, C, H*r, W*r)``.
    """
    op = "pixel_shuffle"
    _check_image(op, input)
    r = _check_factor(op, "upscale_factor", upscale_factor)
    *batch, channels, h, w = input.shape
    if channels % (r * r):
        raise ValueError(f"{op}: the {channels} channels of input shape {input.shape} must be divisible by "
                         f"upscale_factor**2 = {r * r}")
    if r == 1:
        return input
    c = channels // (r * r)
    b = len(batch)
    x = reshape(input, (*batch, c, r, r, h, w))
    x = permute(x, (*range(b), b, b + 3, b + 1, b + 4, b + 2))  # (*, C, H, r, W, r)
    return reshape(x, (*batch, c, h * r, w * r))


def pixel_unshuffle(input: Tensor, downscale_factor: int) -> Tensor:
    """Rearrange ``(*, C, H*r, W*r)`` into ``(*, C*r*r, H, W)``, ``r = downscale_factor``: the
    inverse of :func:`pixel_shuffle`.

    Input pixel ``(c, h*r + i, w*r + j)`` becomes output channel ``c*r*r + i*r + j`` at ``(h, w)``.
    Any number of leading batch dimensions is allowed.

    Shape:
        input: ``(*, C, H*r, W*r)``; output: ``(*, C*r^2, H, W)``.
    """
    op = "pixel_unshuffle"
    _check_image(op, input)
    r = _check_factor(op, "downscale_factor", downscale_factor)
    *batch, c, height, width = input.shape
    if height % r or width % r:
        raise ValueError(f"{op}: the height {height} and width {width} of input shape {input.shape} must be "
                         f"divisible by downscale_factor = {r}")
    if r == 1:
        return input
    h, w = height // r, width // r
    b = len(batch)
    x = reshape(input, (*batch, c, h, r, w, r))
    x = permute(x, (*range(b), b, b + 2, b + 4, b + 1, b + 3))  # (*, C, r, r, H, W)
    return reshape(x, (*batch, c * r * r, h, w))


# -- unfold and fold: array kernels ---------------------------------------------------------------------


def _blocks(size: int, kernel: int, dilation: int, padding: int, stride: int) -> int:
    """The number of block positions along one axis."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def _offset_slices(i: int, j: int, geom: tuple, blocks: tuple[int, int]) -> tuple[slice, slice]:
    """The strided slices of the padded image that kernel offset ``(i, j)`` meets at every block."""
    _, (dh, dw), _, (sh, sw) = geom
    bh, bw = blocks
    top, left = i * dh, j * dw
    return slice(top, top + sh * (bh - 1) + 1, sh), slice(left, left + sw * (bw - 1) + 1, sw)


def unfold_array(x: Any, geom: tuple) -> Any:
    """im2col of an ``(N, C, H, W)`` array: ``(N, C*kh*kw, L)``, row ``c*kh*kw + i*kw + j``."""
    xp = get_array_module(x)
    (kh, kw), (dh, dw), (ph, pw), (sh, sw) = geom
    n, c, h, w = x.shape
    blocks = (_blocks(h, kh, dh, ph, sh), _blocks(w, kw, dw, pw, sw))
    if ph or pw:
        padded = xp.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=x.dtype)
        padded[:, :, ph:ph + h, pw:pw + w] = x
    else:
        padded = x
    out = xp.empty((n, c, kh, kw) + blocks, dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            out[:, :, i, j] = padded[(slice(None), slice(None)) + _offset_slices(i, j, geom, blocks)]
    return out.reshape(n, c * kh * kw, blocks[0] * blocks[1])


def fold_array(cols: Any, output_size: tuple[int, int], geom: tuple) -> Any:
    """col2im of an ``(N, C*kh*kw, L)`` array into ``(N, C, H, W)``, overlapping entries summed."""
    xp = get_array_module(cols)
    (kh, kw), (dh, dw), (ph, pw), (sh, sw) = geom
    h, w = output_size
    n = cols.shape[0]
    c = cols.shape[1] // (kh * kw)
    blocks = (_blocks(h, kh, dh, ph, sh), _blocks(w, kw, dw, pw, sw))
    blocks6 = cols.reshape((n, c, kh, kw) + blocks)
    padded = xp.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            padded[(slice(None), slice(None)) + _offset_slices(i, j, geom, blocks)] += blocks6[:, :, i, j]
    if ph or pw:
        return xp.ascontiguousarray(padded[:, :, ph:ph + h, pw:pw + w])
    return padded


class UnfoldFunction(Function):
    """im2col of a 4-D input (:func:`unfold`); its gradient is :class:`FoldFunction` of the output
    gradient, so second derivatives are unfolds and folds again."""

    @staticmethod
    def forward(ctx, x, geom):
        return unfold_array(x, geom)

    @staticmethod
    def backward(ctx, gy):
        x, geom = ctx.inputs
        return FoldFunction.apply(gy, tuple(x.shape[2:]), geom), None

    @staticmethod
    def backward_arrays(ctx, gy):
        x, geom = ctx.inputs
        return fold_array(gy, tuple(x.shape[2:]), geom), None


class FoldFunction(Function):
    """col2im of a 3-D input into an image of ``output_size`` (:func:`fold`); its gradient is
    :class:`UnfoldFunction` of the output gradient."""

    @staticmethod
    def forward(ctx, cols, output_size, geom):
        return fold_array(cols, output_size, geom)

    @staticmethod
    def backward(ctx, gy):
        _, _, geom = ctx.inputs
        return UnfoldFunction.apply(gy, geom), None, None

    @staticmethod
    def backward_arrays(ctx, gy):
        _, _, geom = ctx.inputs
        return unfold_array(gy, geom), None, None


# -- unfold and fold: arguments -------------------------------------------------------------------------


def _pair(op: str, name: str, value: Any, minimum: int) -> tuple[int, int]:
    values = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    kind = "positive" if minimum > 0 else "non-negative"
    if len(values) != 2 or any(not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < minimum
                               for v in values):
        raise ValueError(f"{op}: {name} must be a {kind} int or a pair of {kind} ints, got {value!r}")
    return int(values[0]), int(values[1])


def _geometry(op: str, kernel_size: Any, dilation: Any, padding: Any, stride: Any) -> tuple:
    """``(kernel, dilation, padding, stride)``, each a pair of ints (the kernels' ``geom``)."""
    return (_pair(op, "kernel_size", kernel_size, 1), _pair(op, "dilation", dilation, 1),
            _pair(op, "padding", padding, 0), _pair(op, "stride", stride, 1))


def _block_grid(op: str, size: tuple[int, int], geom: tuple, what: str) -> tuple[int, int]:
    (kh, kw), (dh, dw), (ph, pw), (sh, sw) = geom
    blocks = (_blocks(size[0], kh, dh, ph, sh), _blocks(size[1], kw, dw, pw, sw))
    if blocks[0] < 1 or blocks[1] < 1:
        raise ValueError(f"{op}: {what} {size} with padding {(ph, pw)} is smaller than the dilated kernel "
                         f"{((kh - 1) * dh + 1, (kw - 1) * dw + 1)} (kernel_size {(kh, kw)}, dilation "
                         f"{(dh, dw)}): no block fits")
    return blocks


def unfold(input: Tensor, kernel_size: _IntPair, dilation: _IntPair = 1, padding: _IntPair = 0,
           stride: _IntPair = 1) -> Tensor:
    """Extract the sliding ``kh x kw`` blocks of an image as columns (im2col).

    Column ``l`` holds the block at position ``l`` of the ``(H_blocks, W_blocks)`` grid (row-major);
    its row ``c*kh*kw + i*kw + j`` is channel ``c`` at kernel offset ``(i, j)``. Each argument is an
    int or a pair ``(height, width)``; the image is zero-padded by ``padding`` on both sides.

    Shape:
        input: ``(N, C, H, W)`` or ``(C, H, W)``; output: ``(N, C*kh*kw, L)`` or ``(C*kh*kw, L)``,
        ``L = H_blocks * W_blocks``,
        ``H_blocks = (H + 2*padding[0] - dilation[0]*(kh - 1) - 1) // stride[0] + 1`` (likewise W).
    """
    op = "unfold"
    if not isinstance(input, Tensor):
        raise TypeError(f"{op}: expected a Tensor input, got {type(input).__name__}")
    if input.ndim not in (3, 4):
        raise ValueError(f"{op}: expected a 3-D (C, H, W) or 4-D (N, C, H, W) input, got shape {input.shape}")
    geom = _geometry(op, kernel_size, dilation, padding, stride)
    _block_grid(op, tuple(input.shape[-2:]), geom, "input size")
    if input.ndim == 3:
        y = UnfoldFunction.apply(reshape(input, (1,) + input.shape), geom)
        return reshape(y, y.shape[1:])
    return UnfoldFunction.apply(input, geom)


def fold(input: Tensor, output_size: _IntPair, kernel_size: _IntPair, dilation: _IntPair = 1,
         padding: _IntPair = 0, stride: _IntPair = 1) -> Tensor:
    """Add columns of sliding blocks back into an image of ``output_size`` (col2im): the adjoint
    of :func:`unfold` with the same arguments. Entries of overlapping blocks are summed.

    ``fold(unfold(x))`` is ``x`` times the number of blocks that cover each pixel (``x`` itself when
    the blocks do not overlap and cover the image).

    Shape:
        input: ``(N, C*kh*kw, L)`` or ``(C*kh*kw, L)``; output: ``(N, C, H, W)`` or ``(C, H, W)``
        with ``(H, W) = output_size``; ``L`` must be the number of blocks :func:`unfold` finds in
        an ``(H, W)`` image with these arguments.
    """
    op = "fold"
    if not isinstance(input, Tensor):
        raise TypeError(f"{op}: expected a Tensor input, got {type(input).__name__}")
    if input.ndim not in (2, 3):
        raise ValueError(f"{op}: expected a 2-D (C*kh*kw, L) or 3-D (N, C*kh*kw, L) input, got shape "
                         f"{input.shape}")
    size = _pair(op, "output_size", output_size, 1)
    geom = _geometry(op, kernel_size, dilation, padding, stride)
    (kh, kw) = geom[0]
    rows, length = input.shape[-2:]
    if rows % (kh * kw):
        raise ValueError(f"{op}: the size {rows} of dimension {input.ndim - 2} of input shape {input.shape} must "
                         f"be divisible by the kernel's kh*kw = {kh * kw} (kernel_size {(kh, kw)})")
    bh, bw = _block_grid(op, size, geom, "output_size")
    if length != bh * bw:
        raise ValueError(f"{op}: expected L = {bh * bw} blocks ({bh} x {bw}) in the last dimension of input "
                         f"shape {input.shape} for output_size {size}, got L = {length}")
    if input.ndim == 2:
        y = FoldFunction.apply(reshape(input, (1,) + input.shape), size, geom)
        return reshape(y, y.shape[1:])
    return FoldFunction.apply(input, size, geom)


__all__ = ["fold", "pixel_shuffle", "pixel_unshuffle", "unfold"]
