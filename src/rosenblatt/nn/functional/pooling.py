"""Pooling: ``max_pool1d/2d``, ``avg_pool1d/2d``, ``adaptive_avg_pool2d``, ``adaptive_max_pool2d``.

The array work is done by kernels: :mod:`rosenblatt.kernels.pooling` (NumPy/CuPy strided views
over the kernel offsets, the reference and the fallback) or, with the oneDNN kernel set active
and float32 NumPy arrays, :mod:`rosenblatt.kernels.onednn.pooling`.

Each Function's ``backward_arrays`` calls its adjoint's array kernel (the first-order gradient);
its differentiable ``backward`` applies the adjoint's :class:`Function` (a scatter whose gradient
is a gather and vice versa), so pooling layers support double backward.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from rosenblatt import kernels
from rosenblatt.backend import get_array_module
from rosenblatt.core import Function, Tensor, broadcast_to, constant
from rosenblatt.kernels import pooling as pooling_kernels
from rosenblatt.kernels.pooling import pool_output_size
from rosenblatt.nn.functional._geometry import GeometryCache, plain
from rosenblatt.nn.functional.conv import _int_tuple
from rosenblatt.ops import matmul, reshape

# --------------------------------------------------------------------------------------------
# Geometry
# --------------------------------------------------------------------------------------------


class _PoolGeometry:
    """Kernel, stride, padding, dilation and the resulting sizes of one 2-D pooling call."""

    __slots__ = ("kernel", "stride", "padding", "dilation", "in_hw", "out_hw", "padded_hw")

    def __init__(self, op: str, in_hw: tuple[int, int], kernel_size: Any, stride: Any, padding: Any,
                 dilation: Any, ceil_mode: bool) -> None:
        self.kernel = _int_tuple(op, "kernel_size", kernel_size, 2)
        self.stride = self.kernel if stride is None or stride == () else _int_tuple(op, "stride", stride, 2)
        self.padding = _int_tuple(op, "padding", padding, 2, minimum=0)
        self.dilation = _int_tuple(op, "dilation", dilation, 2)
        for k, p, d in zip(self.kernel, self.padding, self.dilation):
            if p > (d * (k - 1) + 1) // 2:
                raise ValueError(f"{op}: padding {self.padding} must be at most half of the kernel extent "
                                 f"(kernel {self.kernel}, dilation {self.dilation})")
        self.in_hw = tuple(in_hw)
        self.out_hw = tuple(pool_output_size(op, n, k, s, p, d, ceil_mode) for n, k, s, p, d in
                            zip(in_hw, self.kernel, self.stride, self.padding, self.dilation))
        # With ceil_mode the last window can reach past the padded input: make room for it.
        self.padded_hw = tuple(max(n + 2 * p, (o - 1) * s + d * (k - 1) + 1) for n, p, o, s, d, k in
                               zip(in_hw, self.padding, self.out_hw, self.stride, self.dilation, self.kernel))

    def offsets(self):
        """``(index, row_slice, col_slice)`` for every kernel offset: that offset's strided view."""
        (kh, kw), (sh, sw), (dh, dw), (oh, ow) = self.kernel, self.stride, self.dilation, self.out_hw
        for i in range(kh):
            rows = slice(i * dh, i * dh + sh * (oh - 1) + 1, sh)
            for j in range(kw):
                yield i * kw + j, rows, slice(j * dw, j * dw + sw * (ow - 1) + 1, sw)

    @property
    def overlapping(self) -> bool:
        """True when windows share input pixels (then backward must add, not assign)."""
        return any(s < d * (k - 1) + 1 for k, s, d in zip(self.kernel, self.stride, self.dilation))

    @property
    def needs_padding(self) -> bool:
        return tuple(self.padded_hw) != tuple(self.in_hw)


_geometries = GeometryCache()


def _pool_geometry(op: str, in_hw: tuple[int, int], kernel_size: Any, stride: Any, padding: Any, dilation: Any,
                   ceil_mode: bool) -> _PoolGeometry:
    """A :class:`_PoolGeometry` (never changed once made), remembered for arguments that are plain
    ints or tuples of them (a layer's own attributes): a layer called again skips the checks' cost."""
    key = (op, in_hw, kernel_size, stride, padding, dilation, ceil_mode)
    cacheable = type(ceil_mode) is bool and all(map(plain, key[1:6]))
    return _geometries.get(key, cacheable,
                           lambda: _PoolGeometry(op, in_hw, kernel_size, stride, padding, dilation, ceil_mode))


def _check_input(op: str, x: Any, spatial: int = 2) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: expected a Tensor input, got {type(x).__name__}")
    dims = "(N, C, L)" if spatial == 1 else "(N, C, H, W)"
    if x.ndim != spatial + 2:
        raise ValueError(f"{op}: expected a {spatial + 2}-D input {dims} (or {spatial + 1}-D unbatched), "
                         f"got shape {x.shape}")
    if x.dtype.kind != "f":
        raise TypeError(f"{op}: expected a floating input, got dtype {x.dtype}")


def _unbatched(fn: Any, x: Tensor, *args: Any, **kwargs: Any) -> Any:
    out = fn(reshape(x, (1,) + x.shape), *args, **kwargs)
    if isinstance(out, tuple):
        return tuple(reshape(o, o.shape[1:]) for o in out)
    return reshape(out, out.shape[1:])


# --------------------------------------------------------------------------------------------
# Max pooling
# --------------------------------------------------------------------------------------------


_dnn_pool: Any = None  # rosenblatt.kernels.onednn.pooling, imported on first use


def _onednn_size(x: Any) -> bool:
    """Whether the oneDNN kernels take ``x`` and it is big enough for oneDNN's pooling (its
    ``MIN_ELEMENTS``): a batch-1 pool then builds no arguments for a call that declines.

    Height-1 inputs (1-D pooling as a 2-D pooling of an ``(N, C, 1, L)`` view) stay with the NumPy
    kernel: oneDNN's fast (JIT) pooling refuses them and its reference loop (``simple_nchw``) is
    slower than NumPy there (64x32x256, kernel 2, forward + backward: 3.8 ms against 1.4 ms).
    """
    global _dnn_pool
    if not kernels.use_onednn(x) or (x.ndim == 4 and x.shape[2] == 1):
        return False
    if _dnn_pool is None:
        from rosenblatt.kernels.onednn import pooling

        _dnn_pool = pooling
    return x.size >= _dnn_pool.MIN_ELEMENTS


def _onednn_args(geom: _PoolGeometry) -> tuple:
    """Kernel, stride, padding before and after (``ceil_mode``'s overhang included), dilation."""
    pad_r = tuple(p - n - left for p, n, left in zip(geom.padded_hw, geom.in_hw, geom.padding))
    return geom.kernel, geom.stride, geom.padding, pad_r, geom.dilation


class MaxPool2dFunction(Function):
    @staticmethod
    def forward(ctx, x, geom):
        ctx.argmax = ctx.onednn_workspace = None
        if _onednn_size(x):
            from rosenblatt.kernels.onednn import pooling as dnn

            result = dnn.pool_forward(x, x.shape[:2] + tuple(geom.out_hw), "max", *_onednn_args(geom),
                                      training=ctx.needs_input_grad[0])
            if result is not None:
                out, ctx.onednn_workspace = result
                return out
        out, ctx.argmax = pooling_kernels.max_pool(x, geom, with_argmax=ctx.needs_input_grad[0])
        return out

    @staticmethod
    def backward(ctx, gy):
        x, geom = ctx.inputs
        return MaxPoolScatter.apply(gy, _argmax(ctx), x.shape, geom), None

    @staticmethod
    def backward_arrays(ctx, gy):
        x, geom = ctx.inputs
        if ctx.onednn_workspace is not None and kernels.use_onednn(gy):
            from rosenblatt.kernels.onednn import pooling as dnn

            gx = dnn.pool_backward(gy, ctx.onednn_workspace, x.shape, "max", *_onednn_args(geom))
            if gx is not None:
                return gx, None
        return pooling_kernels.max_pool_scatter(gy, _argmax(ctx), x.shape, geom), None


def _argmax(ctx: Any) -> Any:
    """The winning positions of a :class:`MaxPool2dFunction` node (recomputed when oneDNN ran the
    forward: its workspace serves only its own backward)."""
    if ctx.argmax is None:
        x, geom = ctx.inputs
        ctx.argmax = pooling_kernels.max_pool(x.data, geom, with_argmax=True)[1]
    return ctx.argmax


class MaxPoolScatter(Function):
    """Gradient of max pooling: each output gradient goes to the input pixel that won its window."""

    @staticmethod
    def forward(ctx, gy, argmax, x_shape, geom):
        return pooling_kernels.max_pool_scatter(gy, argmax, x_shape, geom)

    @staticmethod
    def backward(ctx, ggx):
        _, argmax, _, geom = ctx.inputs
        return MaxPoolGather.apply(ggx, argmax, geom), None, None, None

    @staticmethod
    def backward_arrays(ctx, ggx):
        _, argmax, _, geom = ctx.inputs
        return pooling_kernels.max_pool_gather(ggx, argmax, geom), None, None, None


class MaxPoolGather(Function):
    """Picks, for every window, the value at the position that won the max (the adjoint of
    :class:`MaxPoolScatter`; used for second derivatives)."""

    @staticmethod
    def forward(ctx, x, argmax, geom):
        return pooling_kernels.max_pool_gather(x, argmax, geom)

    @staticmethod
    def backward(ctx, gy):
        x, argmax, geom = ctx.inputs
        return MaxPoolScatter.apply(gy, argmax, x.shape, geom), None, None

    @staticmethod
    def backward_arrays(ctx, gy):
        x, argmax, geom = ctx.inputs
        return pooling_kernels.max_pool_scatter(gy, argmax, x.shape, geom), None, None


def max_pool2d(input: Tensor, kernel_size: int | tuple[int, int], stride: int | tuple[int, int] | None = None,
               padding: int | tuple[int, int] = 0, dilation: int | tuple[int, int] = 1, ceil_mode: bool = False,
               return_indices: bool = False) -> Tensor | tuple[Tensor, Tensor]:
    """2-D max pooling of an ``(N, C, H, W)`` input (``stride`` defaults to ``kernel_size``).

    Padding counts as ``-inf``; windows may overlap; ``ceil_mode`` keeps a last partial window.
    With ``return_indices`` also returns the flat ``h*W + w`` position of every maximum.
    """
    if isinstance(input, Tensor) and input.ndim == 3:
        return _unbatched(max_pool2d, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)
    _check_input("max_pool2d", input)
    geom = _pool_geometry("max_pool2d", input.shape[2:], kernel_size, stride, padding, dilation, ceil_mode)
    if not return_indices:
        return MaxPool2dFunction.apply(input, geom)
    _, argmax = pooling_kernels.max_pool(input.data, geom, with_argmax=True)
    out = MaxPoolGather.apply(input, argmax, geom)
    return out, constant(pooling_kernels.flat_indices(argmax, geom))


def max_pool1d(input: Tensor, kernel_size: int | tuple[int], stride: int | tuple[int] | None = None,
               padding: int | tuple[int] = 0, dilation: int | tuple[int] = 1, ceil_mode: bool = False,
               return_indices: bool = False) -> Tensor | tuple[Tensor, Tensor]:
    """1-D max pooling of an ``(N, C, L)`` input (a 2-D pooling of a 4-D view, see :func:`_pool1d_view`)."""
    if isinstance(input, Tensor) and input.ndim == 2:
        return _unbatched(max_pool1d, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)
    _check_input("max_pool1d", input, spatial=1)
    k, s, p, d = _args_1d("max_pool1d", kernel_size, stride, padding, dilation)
    out = max_pool2d(_pool1d_view(input, k, s, p, d), (1, k), (1, s), (0, p), (1, d), ceil_mode, return_indices)
    if return_indices:
        return _flat_1d(out[0]), _flat_1d(out[1])
    return _flat_1d(out)


def _pool1d_view(x: Tensor, k: int, s: int, p: int, d: int) -> Tensor:
    """The 4-D view a 1-D pooling of ``x`` runs on as a 2-D pooling with a ``(1, k)`` kernel.

    In general ``(N, C, 1, L)``. When the oneDNN kernels take the call and the windows tile the
    signal (``k == s``, no padding nor dilation, ``k`` divides ``L``), the signal is cut into
    ``rows`` equal rows, ``(N, C, rows, L/rows)``, each a whole number of windows (``rows`` is the
    smallest divisor above 1 of the window count): the windows, the output's order and the flat
    ``return_indices`` positions (``row * L/rows + col``) are those of the 1-D pooling, but oneDNN's
    JIT pooling, which refuses height-1 inputs, runs it. ``max_pool1d(x, 2)`` on 64x32x256, forward +
    backward with 2 threads: 0.86 ms against 3.8 ms on the ``(N, C, 1, L)`` view (oneDNN's reference
    loop) and 1.4 ms in NumPy (PyTorch: 1.8 ms); ``avg_pool1d(x, 2)``: 0.81 ms against 2.3 ms.
    """
    n, c, length = x.shape
    rows = 1
    if k == s and p == 0 and d == 1 and length % k == 0 and length > k and _onednn_size(x.data):
        windows = length // k
        rows = next((r for r in range(2, math.isqrt(windows) + 1) if windows % r == 0), windows)
    return reshape(x, (n, c, rows, length // rows))


def _flat_1d(y: Tensor) -> Tensor:
    """A 2-D pooling's ``(N, C, rows, cols)`` output of a :func:`_pool1d_view` as ``(N, C, rows*cols)``."""
    return reshape(y, (y.shape[0], y.shape[1], y.shape[2] * y.shape[3]))


def _args_1d(op: str, kernel_size: Any, stride: Any, padding: Any, dilation: Any = 1) -> tuple[int, int, int, int]:
    (k,) = _int_tuple(op, "kernel_size", kernel_size, 1)
    (s,) = (k,) if stride is None or stride == () else _int_tuple(op, "stride", stride, 1)
    (p,) = _int_tuple(op, "padding", padding, 1, minimum=0)
    (d,) = _int_tuple(op, "dilation", dilation, 1)
    return k, s, p, d


# --------------------------------------------------------------------------------------------
# Average pooling
# --------------------------------------------------------------------------------------------


def _avg_divisor(geom: _PoolGeometry, count_include_pad: bool, divisor_override: int | None, xp: Any,
                 dtype: Any) -> Any:
    """The number each window sum is divided by: a scalar, or an ``(OH, OW)`` map when windows
    near the border count fewer pixels (``count_include_pad=False``, or ``ceil_mode`` overhang)."""
    if divisor_override is not None:
        return float(divisor_override)
    (kh, kw), (pt, pl), (h, w) = geom.kernel, geom.padding, geom.in_hw
    if count_include_pad and tuple(geom.padded_hw) == (h + 2 * pt, w + 2 * pl):
        return float(kh * kw)
    mask = np.zeros(geom.padded_hw)
    if count_include_pad:  # pixels of the padded input count, the ceil_mode overhang does not
        mask[: h + 2 * pt, : w + 2 * pl] = 1
    else:
        mask[pt:pt + h, pl:pl + w] = 1
    counts = sum(mask[rows, cols] for _, rows, cols in geom.offsets())
    return xp.asarray(counts, dtype=dtype)


def _avg_pool(x: Any, geom: _PoolGeometry, divisor: Any, alg: str | None) -> Any:
    """Average pooling of an array; ``alg`` is the oneDNN algorithm that computes exactly this
    average, or None."""
    if alg is not None and _onednn_size(x):
        from rosenblatt.kernels.onednn import pooling as dnn

        result = dnn.pool_forward(x, x.shape[:2] + tuple(geom.out_hw), alg, *_onednn_args(geom), training=False)
        if result is not None:
            return result[0]
    return pooling_kernels.avg_pool(x, geom, divisor)


def _avg_pool_transpose(gy: Any, x_shape: tuple[int, ...], geom: _PoolGeometry, divisor: Any,
                        alg: str | None) -> Any:
    """The adjoint of :func:`_avg_pool` (average pooling's input gradient) on arrays."""
    if alg is not None and kernels.use_onednn(gy) and x_shape[2] != 1:  # height 1: see _onednn_size
        from rosenblatt.kernels.onednn import pooling as dnn

        gx = dnn.pool_backward(gy, None, tuple(x_shape), alg, *_onednn_args(geom))
        if gx is not None:
            return gx
    return pooling_kernels.avg_pool_transpose(gy, x_shape, geom, divisor)


class AvgPool2dFunction(Function):
    @staticmethod
    def forward(ctx, x, geom, divisor, alg=None):
        return _avg_pool(x, geom, divisor, alg)

    @staticmethod
    def backward(ctx, gy):
        x, geom, divisor, alg = ctx.inputs
        return AvgPoolTranspose.apply(gy, x.shape, geom, divisor, alg), None, None, None

    @staticmethod
    def backward_arrays(ctx, gy):
        x, geom, divisor, alg = ctx.inputs
        return _avg_pool_transpose(gy, x.shape, geom, divisor, alg), None, None, None


class AvgPoolTranspose(Function):
    """Gradient of average pooling: every window's gradient, divided by its size, added back to
    each of its pixels (one strided add per kernel offset)."""

    @staticmethod
    def forward(ctx, gy, x_shape, geom, divisor, alg=None):
        return _avg_pool_transpose(gy, x_shape, geom, divisor, alg)

    @staticmethod
    def backward(ctx, ggx):
        _, _, geom, divisor, alg = ctx.inputs
        return AvgPool2dFunction.apply(ggx, geom, divisor, alg), None, None, None, None

    @staticmethod
    def backward_arrays(ctx, ggx):
        _, _, geom, divisor, alg = ctx.inputs
        return _avg_pool(ggx, geom, divisor, alg), None, None, None, None


def avg_pool2d(input: Tensor, kernel_size: int | tuple[int, int], stride: int | tuple[int, int] | None = None,
               padding: int | tuple[int, int] = 0, ceil_mode: bool = False, count_include_pad: bool = True,
               divisor_override: int | None = None) -> Tensor:
    """2-D average pooling of an ``(N, C, H, W)`` input (``stride`` defaults to ``kernel_size``).

    As in PyTorch, zero padding counts in the average unless ``count_include_pad=False``;
    ``divisor_override`` replaces the window size.
    """
    if isinstance(input, Tensor) and input.ndim == 3:
        return _unbatched(avg_pool2d, input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                          divisor_override)
    _check_input("avg_pool2d", input)
    geom = _pool_geometry("avg_pool2d", input.shape[2:], kernel_size, stride, padding, 1, ceil_mode)
    if divisor_override is not None and (not isinstance(divisor_override, (int, np.integer)) or divisor_override == 0):
        raise ValueError(f"avg_pool2d: divisor_override must be a non-zero int, got {divisor_override!r}")
    divisor = _avg_divisor(geom, count_include_pad, divisor_override, get_array_module(input.data), input.dtype)
    # the oneDNN algorithm that computes exactly PyTorch's average (none for divisor_override, nor
    # when a ceil_mode window hanging over the padded input should count the padding)
    alg = None
    if divisor_override is None:
        if not count_include_pad:
            alg = "avg_exclude"
        elif tuple(geom.padded_hw) == tuple(n + 2 * p for n, p in zip(geom.in_hw, geom.padding)):
            alg = "avg_include"
    return AvgPool2dFunction.apply(input, geom, divisor, alg)


def avg_pool1d(input: Tensor, kernel_size: int | tuple[int], stride: int | tuple[int] | None = None,
               padding: int | tuple[int] = 0, ceil_mode: bool = False, count_include_pad: bool = True) -> Tensor:
    """1-D average pooling of an ``(N, C, L)`` input (a 2-D pooling of a 4-D view, see :func:`_pool1d_view`)."""
    if isinstance(input, Tensor) and input.ndim == 2:
        return _unbatched(avg_pool1d, input, kernel_size, stride, padding, ceil_mode, count_include_pad)
    _check_input("avg_pool1d", input, spatial=1)
    k, s, p, _ = _args_1d("avg_pool1d", kernel_size, stride, padding)
    return _flat_1d(avg_pool2d(_pool1d_view(input, k, s, p, 1), (1, k), (1, s), (0, p), ceil_mode, count_include_pad))


# --------------------------------------------------------------------------------------------
# Adaptive pooling
# --------------------------------------------------------------------------------------------


def _adaptive_output_size(op: str, output_size: Any, in_hw: tuple[int, int]) -> tuple[int, int]:
    if isinstance(output_size, (int, np.integer)) and not isinstance(output_size, bool):
        sizes = (int(output_size),) * 2
    elif isinstance(output_size, (tuple, list)) and len(output_size) == 2:
        sizes = tuple(n if s is None else s for s, n in zip(output_size, in_hw))
    else:
        raise ValueError(f"{op}: output_size must be an int or a pair (None keeps the input size), "
                         f"got {output_size!r}")
    if any(not isinstance(s, (int, np.integer)) or s < 1 for s in sizes):
        raise ValueError(f"{op}: output sizes must be positive ints, got {output_size!r}")
    return int(sizes[0]), int(sizes[1])


def _adaptive_bounds(size: int, out: int) -> tuple[np.ndarray, np.ndarray]:
    """PyTorch's windows: ``start = floor(i*size/out)``, ``end = ceil((i+1)*size/out)``."""
    i = np.arange(out)
    return (i * size) // out, -((-(i + 1) * size) // out)


def _averaging_matrix(size: int, out: int, dtype: Any) -> np.ndarray:
    start, end = _adaptive_bounds(size, out)
    matrix = np.zeros((out, size))
    for row, (a, b) in enumerate(zip(start, end)):
        matrix[row, a:b] = 1.0 / (b - a)
    return matrix.astype(dtype)


def _plane_means(x: Any) -> Any:
    """The ``(N, C, 1, 1)`` means of the planes of an ``(N, C, H, W)`` array: ``sum / (H*W)``.

    The sums are one BLAS matrix-vector product with a vector of ones (``(N*C, H*W) @ 1``, or a
    batched ``1^T @ (N, H*W, C)`` for a channels-last array), not NumPy's ``mean``: NumPy reduces
    the short rows of a plane one at a time (at 64x64x8x8: 100 us; the product takes 16 us).
    """
    xp = get_array_module(x)
    n, c, h, w = x.shape
    count = h * w
    if x.flags.c_contiguous:
        sums = x.reshape(n * c, count) @ xp.ones(count, dtype=x.dtype)
    elif x.transpose(0, 2, 3, 1).flags.c_contiguous:
        sums = xp.matmul(xp.ones((1, count), dtype=x.dtype), x.transpose(0, 2, 3, 1).reshape(n, count, c))
    else:
        return x.mean(axis=(2, 3), keepdims=True)
    return (sums / count).reshape(n, c, 1, 1)


class GlobalAvgPoolFunction(Function):
    """Global average pooling, ``adaptive_avg_pool2d(x, 1)`` (the head of every ResNet): the plane
    means of :func:`_plane_means` forward; backward spreads ``gy / (H*W)`` over every plane. Its
    differentiable ``backward`` is the same formula with tensor ops (the gradient of ``mean``).

    At 64x64x8x8, forward + backward with 2 threads: 0.16 ms against 0.27 ms as ``mean(x, axis=(2, 3))``
    (PyTorch: 0.20 ms).
    """

    @staticmethod
    def forward(ctx, x):
        return _plane_means(x)

    @staticmethod
    def backward(ctx, gy):
        (x,) = ctx.inputs
        return broadcast_to(gy / (x.shape[2] * x.shape[3]), x.shape)

    @staticmethod
    def backward_arrays(ctx, gy):
        (x,) = ctx.inputs
        xd = x.data
        gx = get_array_module(xd).empty_like(xd)  # the input's layout (channels-last stays so)
        gx[...] = gy / (xd.shape[2] * xd.shape[3])
        return gx


def adaptive_avg_pool2d(input: Tensor, output_size: int | tuple[int | None, int | None]) -> Tensor:
    """Average pooling to a fixed ``output_size`` whatever the input size (PyTorch's windows).

    ``output_size=1`` is global average pooling (:class:`GlobalAvgPoolFunction`). When the sizes
    divide evenly this is a plain average pooling; otherwise the windows overlap and differ in size,
    and the pooling is two small matrix products ``A_h @ x @ A_w^T`` (a window mean is a mean of row
    means).
    """
    if isinstance(input, Tensor) and input.ndim == 3:
        return _unbatched(adaptive_avg_pool2d, input, output_size)
    _check_input("adaptive_avg_pool2d", input)
    h, w = input.shape[2:]
    oh, ow = _adaptive_output_size("adaptive_avg_pool2d", output_size, (h, w))
    if oh == 1 and ow == 1:
        return GlobalAvgPoolFunction.apply(input)
    if h % oh == 0 and w % ow == 0:
        return avg_pool2d(input, (h // oh, w // ow))
    xp = get_array_module(input.data)
    rows = constant(xp.asarray(_averaging_matrix(h, oh, input.dtype)))
    cols = constant(xp.asarray(_averaging_matrix(w, ow, input.dtype).T))
    return matmul(matmul(rows, input), cols)


def _plane_gather(x: Any, index: Any) -> Any:
    """``out[n, c, k] = x[n, c, index[n, c, k]]`` on flattened planes."""
    xp = get_array_module(x)
    n, c = x.shape[:2]
    return xp.take_along_axis(x.reshape(n, c, -1), index.reshape(n, c, -1), axis=2).reshape(index.shape)


def _plane_scatter(gy: Any, index: Any, x_shape: tuple[int, ...]) -> Any:
    """Adds ``gy`` into zeros of ``x_shape`` at the flat plane positions ``index`` (repeated
    positions accumulate: one ``bincount`` over the whole batch, no ``np.add.at``)."""
    xp = get_array_module(gy)
    n, c = x_shape[:2]
    plane = int(np.prod(x_shape[2:]))
    flat = index.reshape(n * c, -1) + (xp.arange(n * c) * plane).reshape(-1, 1)
    total = xp.bincount(flat.ravel(), weights=gy.reshape(-1).astype(np.float64), minlength=n * c * plane)
    return total.astype(gy.dtype).reshape(x_shape)


class _PlaneGather(Function):
    """:func:`_plane_gather`; its gradient is :class:`_PlaneScatter`."""

    @staticmethod
    def forward(ctx, x, index):
        return _plane_gather(x, index)

    @staticmethod
    def backward(ctx, gy):
        x, index = ctx.inputs
        return _PlaneScatter.apply(gy, index, x.shape), None

    @staticmethod
    def backward_arrays(ctx, gy):
        x, index = ctx.inputs
        return _plane_scatter(gy, index, x.shape), None


class _PlaneScatter(Function):
    """:func:`_plane_scatter`; its gradient is :class:`_PlaneGather`."""

    @staticmethod
    def forward(ctx, gy, index, x_shape):
        return _plane_scatter(gy, index, x_shape)

    @staticmethod
    def backward(ctx, ggx):
        _, index, _ = ctx.inputs
        return _PlaneGather.apply(ggx, index), None, None

    @staticmethod
    def backward_arrays(ctx, ggx):
        _, index, _ = ctx.inputs
        return _plane_gather(ggx, index), None, None


def adaptive_max_pool2d(input: Tensor, output_size: int | tuple[int | None, int | None],
                        return_indices: bool = False) -> Tensor | tuple[Tensor, Tensor]:
    """Max pooling to a fixed ``output_size`` (PyTorch's windows ``[floor(i*H/OH), ceil((i+1)*H/OH))``).

    With ``return_indices`` also returns the flat ``h*W + w`` position of each maximum.
    """
    if isinstance(input, Tensor) and input.ndim == 3:
        return _unbatched(adaptive_max_pool2d, input, output_size, return_indices)
    _check_input("adaptive_max_pool2d", input)
    x = input.data
    xp = get_array_module(x)
    h, w = x.shape[2:]
    oh, ow = _adaptive_output_size("adaptive_max_pool2d", output_size, (h, w))
    row_start, row_end = _adaptive_bounds(h, oh)
    col_start, col_end = _adaptive_bounds(w, ow)
    best = index = None
    # Loop over offsets inside the (largest) window; shorter windows repeat their last pixel,
    # which cannot change the maximum nor (ties go to the first) its position.
    for a in range(int((row_end - row_start).max())):
        rows = xp.asarray(np.minimum(row_start + a, row_end - 1))
        for b in range(int((col_end - col_start).max())):
            cols = xp.asarray(np.minimum(col_start + b, col_end - 1))
            view = x[:, :, rows[:, None], cols[None, :]]
            position = rows[:, None] * w + cols[None, :]
            if best is None:
                best = view
                index = xp.broadcast_to(position, view.shape).copy()
                continue
            better = view > best
            xp.copyto(index, xp.broadcast_to(position, view.shape), where=better)
            xp.maximum(best, view, out=best)
    out = _PlaneGather.apply(input, index)
    if return_indices:
        return out, constant(index)
    return out



def _adaptive_length(op: str, output_size: Any) -> int:
    size = output_size[0] if isinstance(output_size, (tuple, list)) and len(output_size) == 1 else output_size
    if not isinstance(size, (int, np.integer)) or isinstance(size, bool) or size < 1:
        raise ValueError(f"{op}: output_size must be a positive int (or a 1-tuple of one), got {output_size!r}")
    return int(size)


def adaptive_avg_pool1d(input: Tensor, output_size: int | tuple[int]) -> Tensor:  # noqa: A002
    """Average pooling of an ``(N, C, L)`` signal to ``output_size`` values whatever ``L``
    (PyTorch's windows; ``output_size=1`` is the global average of a time series): the 2-D pooling
    of the ``(N, C, 1, L)`` view."""
    if isinstance(input, Tensor) and input.ndim == 2:
        return _unbatched(adaptive_avg_pool1d, input, output_size)
    _check_input("adaptive_avg_pool1d", input, spatial=1)
    size = _adaptive_length("adaptive_avg_pool1d", output_size)
    n, c, length = input.shape
    return _flat_1d(adaptive_avg_pool2d(reshape(input, (n, c, 1, length)), (1, size)))


def adaptive_max_pool1d(input: Tensor, output_size: int | tuple[int],  # noqa: A002
                        return_indices: bool = False) -> Tensor | tuple[Tensor, Tensor]:
    """Max pooling of an ``(N, C, L)`` signal to ``output_size`` values (PyTorch's windows); with
    ``return_indices`` also the position of each maximum along ``L``."""
    if isinstance(input, Tensor) and input.ndim == 2:
        return _unbatched(adaptive_max_pool1d, input, output_size, return_indices)
    _check_input("adaptive_max_pool1d", input, spatial=1)
    size = _adaptive_length("adaptive_max_pool1d", output_size)
    n, c, length = input.shape
    out = adaptive_max_pool2d(reshape(input, (n, c, 1, length)), (1, size), return_indices)
    if return_indices:  # (positions h*L + w with h = 0: already those along L)
        return _flat_1d(out[0]), _flat_1d(out[1])
    return _flat_1d(out)


__all__ = ["adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_max_pool1d", "adaptive_max_pool2d", "avg_pool1d", "avg_pool2d", "max_pool1d", "max_pool2d",
           "MaxPool2dFunction", "MaxPoolGather", "MaxPoolScatter", "AvgPool2dFunction", "AvgPoolTranspose"]

