"""Matrix products for the layers: one entry point, two libraries.

Every matrix product that rosenblatt's layers compute on the CPU (``Linear``, ``matmul``, the
NumPy convolution kernels' GEMMs) goes through :func:`matmul`. With the NumPy kernel set it *is*
``numpy.matmul`` (NumPy's BLAS, OpenBLAS in the wheels). With the ``onednn`` kernel set, float32
2-D products run on oneDNN's ``dnnl_sgemm`` instead.

Why route products away from a good BLAS: a training step alternates matrix products with oneDNN
primitives (layer norm, convolution, pooling, batch norm). Two thread pools then take turns on the
same cores: OpenBLAS's threads spin a little after each product, OpenMP's threads sleep after
each primitive, and every hand-over costs a wake-up. A Transformer encoder step measured 144 ms
with the two pools and 96 ms with OpenBLAS alone; ``dnnl_sgemm`` runs on the same OpenMP team as
the primitives, and on the layer shapes measured it is also a little faster than OpenBLAS
(a 128x784 by 784x512 product: 0.33 ms against 0.46 ms, 2 threads).

Operands are taken as they lie in memory: a C-contiguous matrix, a transposed view of one, or a
row-strided view (a slice of columns) go to the library without a copy. Anything else (other
dtypes, CuPy arrays, empty matrices, stacks of matrices, odd strides) goes to ``numpy.matmul``:
the two give the same result up to float rounding.
"""

from __future__ import annotations

import ctypes
from typing import Any

import numpy as np

from rosenblatt import kernels
from rosenblatt.kernels.memory import address as _address

_F32 = np.dtype(np.float32)
_sgemm: Any = None  # dnnl_sgemm, bound on first use


def _bind() -> Any:
    global _sgemm
    from rosenblatt.kernels.onednn import library

    lib = library._require()
    fn = lib.dnnl_sgemm
    i64, ptr = ctypes.c_int64, ctypes.c_void_p
    fn.argtypes = [ctypes.c_char, ctypes.c_char, i64, i64, i64, ctypes.c_float, ptr, i64, ptr, i64,
                   ctypes.c_float, ptr, i64]  # fmt: skip
    fn.restype = ctypes.c_int
    _sgemm = fn
    return fn


def _layout(a: np.ndarray) -> tuple[bytes, int] | None:
    """``(trans, leading dimension)`` of a float32 matrix as it lies in memory, or None."""
    rows, cols = a.shape
    s0, s1 = a.strides
    if s1 == 4 and s0 % 4 == 0 and s0 // 4 >= cols:
        return b"N", s0 // 4
    if s0 == 4 and s1 % 4 == 0 and s1 // 4 >= rows:
        return b"T", s1 // 4
    if rows == 1 and s1 == 4:
        return b"N", cols
    if cols == 1 and s0 == 4:
        return b"T", rows
    return None


def _gemm(a: np.ndarray, b: np.ndarray, out: np.ndarray, beta: float) -> bool:
    """``out = a @ b + beta * out`` on oneDNN for 2-D float32 matrices; False when not possible."""
    la, lb, lo = _layout(a), _layout(b), _layout(out)
    if la is None or lb is None or lo is None or lo[0] != b"N":
        return False
    m, k = a.shape
    n = b.shape[1]
    if _halves(m, k, n) and _numpy_halves(a, b, out, beta):
        return True
    fn = _sgemm or _bind()
    if _one_thread_product(m, k, n):
        from rosenblatt.kernels.onednn import library

        with library.one_thread():  # on the calling thread: no sleeping team to wake for microseconds of work
            return fn(la[0], lb[0], m, n, k, 1.0, _address(a), la[1], _address(b), lb[1],
                      beta, _address(out), lo[1]) == 0  # fmt: skip
    return fn(la[0], lb[0], m, n, k, 1.0, _address(a), la[1], _address(b), lb[1],
              beta, _address(out), lo[1]) == 0  # fmt: skip


# Stacks of at most this many matrices are multiplied one GEMM call each (the groups of a
# grouped convolution); longer stacks go to NumPy, which loops in C.
MAX_STACK = 16


# Products with fewer multiply-adds than this stay on NumPy's BLAS even with the oneDNN kernels:
# OpenBLAS runs them on the calling thread (no pool to wake), and a batch-1 layer measured
# 4.5-6.5 us there against 10-13 us through dnnl_sgemm. From this size on OpenBLAS would start
# its own threads, a second pool next to oneDNN's: products of up to 10**6 multiply-adds on
# OpenBLAS (its single-thread small-matrix kernels on AVX-512 take some of them) made a LeNet-5
# forward pass at batch 1 faster (330 -> 255 us), but the default `rosenblatt train` run took
# 3.3 s instead of 0.8 s, its OpenBLAS threads and oneDNN's spinning threads taking turns.
MIN_MACS = 1 << 18
# Products below both sizes run on the calling thread only (oneDNN's team set to one thread for the
# call): a few microseconds of work, where waking a sleeping team costs tens. LeNet-5's second
# convolution at batch 1, 16x150 by 150x140, took 90 us that way against 12 us on one thread. Larger
# operands stay threaded: a batch-1 layer of 784x512 weights (1.6 MB, a matrix-vector product, bound
# by memory) took 93 us on one thread against 53 us on two. Tried and reverted: these products on
# NumPy's OpenBLAS with its thread count set to one for the call (its small-matrix kernels took 5-7
# us where dnnl_sgemm took 13-14 us), but setting the count back to two restarted OpenBLAS's
# threads, which then spun next to oneDNN's: the default `rosenblatt train` run took 3.4 s of
# training instead of 0.7 s.
ONE_THREAD_MACS = 1 << 20
ONE_THREAD_FLOATS = 1 << 15
_min_macs: int | None = None  # MIN_MACS unless a test lowers it


# Products up to twice MIN_MACS on small operands run on NumPy's BLAS in two halves (the rows of the
# left operand): each half stays below OpenBLAS's threading threshold (MIN_MACS), so it runs on the
# calling thread, in OpenBLAS's small-matrix kernels, with no thread pool started. One thread, ms:
# LeNet-5's second convolution at batch 1 (16x150 by 150x140) 19 us on dnnl_sgemm against 9.5 us in
# two halves; the last layer of a batch-128 MLP (128x256 by 256x10) 17 -> 14 us, its gradients
# (128x10 by 10x256, 10x128 by 128x256) 22 -> 10 and 14 -> 10 us. Larger products, or a single row
# (a batch-1 layer bound by reading its weights, where two threads each read half), stay on oneDNN.
HALVES_MACS = 1 << 19
HALVES_FLOATS = 1 << 15
HALVES = True  # False: these products run on dnnl_sgemm too


def _halves(m: int, k: int, n: int) -> bool:
    """Whether an ``(m, k) @ (k, n)`` product runs on NumPy in two halves."""
    macs = m * k * n
    return (HALVES and m > 1 and min_macs() <= macs < HALVES_MACS and m * k + k * n + m * n < HALVES_FLOATS
            and (m + 1) // 2 * k * n < min_macs())


def _numpy_halves(a: np.ndarray, b: np.ndarray, out: np.ndarray, beta: float) -> bool:
    if beta not in (0.0, 1.0):
        return False
    h = (a.shape[0] + 1) // 2
    for rows in (slice(0, h), slice(h, None)):
        if beta:
            out[rows] += np.matmul(a[rows], b)
        else:
            np.matmul(a[rows], b, out=out[rows])
    return True


# A single row times a matrix of at least this many elements (a batch-1 layer with 512 KB of weights,
# or more) goes to dnnl_sgemm's threads even below MIN_MACS: the product is bound by reading the
# weights, two threads each read half, and in a model each core's cache keeps its half of every
# layer. A 784-512-256-10 MLP at batch 1 with its 512x256 layer there: 102-110 -> 91-95 us per
# forward pass (2 threads), though that layer alone, cache-hot, is faster on OpenBLAS's one thread.
GEMV_THREADED_ELEMENTS = 1 << 17


def _big_enough(m: int, k: int, n: int) -> bool:
    """Whether an ``(m, k) @ (k, n)`` product goes to ``dnnl_sgemm``."""
    return (m * k * n >= (_min_macs if _min_macs is not None else MIN_MACS)
            or (m == 1 and k * n >= GEMV_THREADED_ELEMENTS))


def _one_thread_product(m: int, k: int, n: int) -> bool:
    """Whether an ``(m, k) @ (k, n)`` product runs on the calling thread only."""
    return m * k * n < ONE_THREAD_MACS and m * k + k * n + m * n < ONE_THREAD_FLOATS


def min_macs() -> int:
    """The smallest product (in multiply-adds) that goes to ``dnnl_sgemm``."""
    return _min_macs if _min_macs is not None else MIN_MACS


def _onednn_matmul(a: np.ndarray, b: np.ndarray, out: Any, beta: float) -> Any:
    if out is not None and (type(out) is not np.ndarray or out.dtype != _F32
                            or np.may_share_memory(out, a) or np.may_share_memory(out, b)):
        return None
    if a.ndim > 2 and b.ndim == 2 and a.flags.c_contiguous and (out is None or out.flags.c_contiguous):
        # (*, k) @ (k, n): one GEMM over the flattened leading axes
        flat_out = None if out is None else out.reshape(-1, out.shape[-1])
        r = _onednn_matmul(a.reshape(-1, a.shape[-1]), b, flat_out, beta)
        if r is None:
            return None
        return out if out is not None else r.reshape(a.shape[:-1] + (b.shape[1],))
    if a.ndim != b.ndim or a.ndim not in (2, 3) or a.shape[-1] != b.shape[-2] or not a.size or not b.size:
        return None
    shape = a.shape[:-1] + (b.shape[-1],)
    if not _big_enough(a.shape[-2], a.shape[-1], b.shape[-1]):
        return None
    if a.ndim == 3 and (a.shape[0] != b.shape[0] or a.shape[0] > MAX_STACK):
        return None
    if out is None:
        out = np.empty(shape, dtype=_F32)
    elif out.shape != shape:
        return None
    if a.ndim == 2:
        return out if _gemm(a, b, out, beta) else None
    for i in range(a.shape[0]):
        if not _gemm(a[i], b[i], out[i], beta):
            return None if i == 0 else _numpy_rest(a, b, out, beta, i)
    return out


def _numpy_rest(a: np.ndarray, b: np.ndarray, out: np.ndarray, beta: float, i: int) -> np.ndarray:
    if beta:
        out[i:] += np.matmul(a[i:], b[i:])
    else:
        np.matmul(a[i:], b[i:], out=out[i:])
    return out


def matmul(a: Any, b: Any, out: Any = None, *, accumulate: bool = False) -> Any:
    """``a @ b`` into a new array or into ``out`` (``out += a @ b`` with ``accumulate=True``).

    Same contract as ``numpy.matmul(a, b, out=out)`` for every input it accepts. float32 NumPy
    operands run on oneDNN's GEMM when the oneDNN kernels are active: 2-D products, an
    ``(*, k) @ (k, n)`` product with a contiguous left operand, and short stacks of matrices.
    """
    if (type(a) is np.ndarray and type(b) is np.ndarray and a.dtype == _F32 and b.dtype == _F32
            and not (a.ndim == 2 and b.ndim == 2 and not _big_enough(a.shape[0], a.shape[1], b.shape[-1]))
            and kernels.use_onednn()):
        if 0 in a.strides and a.size > 1:  # a broadcast operand (the gradient of a sum): a copy lets
            a = np.ascontiguousarray(a)    # the product run threaded instead of in NumPy (0.9 ms per
        if 0 in b.strides and b.size > 1:  # 2048x128 by 128x128 product of a MultiheadAttention)
            b = np.ascontiguousarray(b)
        r = _onednn_matmul(a, b, out, 1.0 if accumulate else 0.0)
        if r is not None:
            return r
    xp = np if type(a) is np.ndarray else _array_module(a)
    if accumulate:
        out += xp.matmul(a, b)
        return out
    return xp.matmul(a, b, out=out) if out is not None else xp.matmul(a, b)


# Below this many output elements a layer's product goes to sgemm with the bias added by NumPy:
# the matmul primitive's bias and activation fusion saves passes over big outputs, but its call
# costs ~10 us more (batch-1 inference).
PRIMITIVE_MIN_OUTPUT = 16384


def _linear_gemm(x: np.ndarray, weight: np.ndarray, out: np.ndarray, beta: float) -> bool:
    """``out = x @ weight.T + beta * out`` on ``dnnl_sgemm`` (float32, ``out`` new and C-contiguous);
    False when the operands' layouts need the general path. The common case, both operands
    C-contiguous, skips :func:`matmul`'s checks: at batch 1 they cost 6 us around a 10 us product
    (784x512 weights)."""
    if not (x.flags.c_contiguous and weight.flags.c_contiguous):
        return _gemm(x, weight.T, out, beta)
    m, k = x.shape
    n = weight.shape[0]
    if _one_thread_product(m, k, n) or _halves(m, k, n):
        return _gemm(x, weight.T, out, beta)
    fn = _sgemm or _bind()
    return fn(b"N", b"T", m, n, k, 1.0, _address(x), k, _address(weight), k, beta, _address(out), n) == 0


def linear(x: Any, weight: Any, bias: Any = None, relu: bool = False, gelu: bool = False, tanh: bool = False) -> Any:
    """``x @ weight.T + bias`` for a 2-D ``x`` (then ``max(., 0)`` with ``relu=True``, the exact
    GELU with ``gelu=True``, ``tanh`` with ``tanh=True``).

    With the oneDNN kernels, big outputs come from one matmul primitive that adds the bias and
    applies the activation as it writes them; small ones from sgemm.
    """
    if (type(x) is np.ndarray and x.dtype == _F32 and type(weight) is np.ndarray and weight.dtype == _F32
            and x.ndim == 2 and x.size and _big_enough(x.shape[0], x.shape[1], weight.shape[0])
            and kernels.use_onednn(bias)):
        out = np.empty((x.shape[0], weight.shape[0]), dtype=_F32)
        if out.size >= PRIMITIVE_MIN_OUTPUT and x.flags.c_contiguous:
            from rosenblatt.kernels.onednn import matmul as dnn

            b = None if bias is None else np.ascontiguousarray(bias)
            if dnn.matmul(x, weight.T, out, bias=b, relu=relu, gelu=gelu, tanh=tanh):
                return out
        beta = 0.0
        if bias is not None:
            out[...] = bias
            beta = 1.0
        if _linear_gemm(x, weight, out, beta):
            y = out
        else:
            y = matmul(x, weight.T, out, accumulate=bias is not None)
    else:
        # (a 2-D product of NumPy arrays that is not a float32 one for oneDNN: NumPy's own)
        y = np.matmul(x, weight.T) if type(x) is np.ndarray and type(weight) is np.ndarray and x.ndim == 2 \
            else matmul(x, weight.T)
        if bias is not None:
            y += bias
    if relu:
        np.maximum(y, 0, out=y) if type(y) is np.ndarray else _array_module(y).maximum(y, 0, out=y)
    if gelu:
        from rosenblatt.kernels.activation import gelu as exact_gelu

        y = exact_gelu(y)
    if tanh:
        from rosenblatt.kernels.activation import tanh as tanh_kernel

        y = tanh_kernel(y)
    return y


# From this many elements a bias gradient is a threaded ``ones @ g`` (oneDNN); below, NumPy's sum on
# the calling thread is faster: 128x512 took 6 us in NumPy against 12 us as a product, 512x512 28
# against 19 us, 2048x512 182 against 51 us.
COLUMN_SUMS_MIN = 1 << 17


def column_sums(g: Any) -> Any:
    """``g.sum(axis=0)`` of a 2-D array (a bias gradient); with oneDNN and from
    :data:`COLUMN_SUMS_MIN` elements a threaded ``ones @ g``."""
    if (type(g) is np.ndarray and g.dtype == _F32 and g.ndim == 2 and g.size >= COLUMN_SUMS_MIN
            and kernels.use_onednn()):
        out = np.empty((1, g.shape[1]), dtype=_F32)
        if _gemm(np.ones((1, g.shape[0]), dtype=_F32), g, out, 0.0):
            return out.reshape(-1)
    return g.sum(axis=0)


def _array_module(a: Any) -> Any:
    from rosenblatt.backend import get_array_module

    return get_array_module(a)
