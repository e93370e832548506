"""Optimiser update kernels: element-wise updates on raw arrays, run block by block on threads.

An update kernel is a function ``kernel(param, grad, *state, *scratch, xp, *hyper)`` that updates
``param`` and its state arrays in place with in-place ufuncs (``out=``); the optimisers of
:mod:`rosenblatt.optim` choose the kernel and its hyper-parameters, and an :class:`UpdateRunner`
runs it.

On the CPU a large parameter is processed in blocks of a few tens of kilobytes: every pass of an
update then reads data that is already in the cache, so a dozen cheap ufunc passes cost about one
trip through main memory. Blocks also bound the scratch memory: one small buffer per optimiser and
thread instead of parameter-sized temporaries on every step.

A step first collects the updates of all its parameters, then runs their blocks. NumPy's ufuncs
release the GIL, so when a step touches enough elements (``PARALLEL_MIN_ELEMENTS``) the blocks are
split into contiguous shares of equal size, one per thread (:func:`update_threads`: the thread
policy's count of :mod:`rosenblatt.kernels.threads`, at most ``MAX_THREADS``), each run with its own
scratch buffers. Every element goes through the same ufuncs in the same order whichever thread runs
it, so the result is bit-for-bit the one of a single thread.

Plain SGD and SGD with momentum are one pass per array instead: ``param += alpha * x`` and
``buf = alpha * x + beta * buf`` are BLAS's ``axpy`` and ``axpby`` (NumPy's OpenBLAS, through
``ctypes``), which read each array once - the same arithmetic as PyTorch's ``add_(x, alpha=...)``.
Arrays from :data:`CHUNKED_MAX` (131,072) elements on share the work out on the policy's BLAS
threads; smaller ones run in chunks on the calling thread (:data:`CHUNK`). Without OpenBLAS (another BLAS, CuPy, strided
arrays) the ufunc kernels run.

Adagrad, RMSprop, Adam / AdamW, Adadelta and SGD with Nesterov momentum or weight decay run as a
few oneDNN primitives per large float32 array when the oneDNN kernels are active
(:func:`adagrad_onednn`, :func:`rmsprop_onednn`, :func:`adam_onednn`, :func:`adadelta_onednn`,
:func:`sgd_momentum_onednn`, :mod:`rosenblatt.kernels.onednn.optim`).
"""

from __future__ import annotations

import ctypes
import functools
import os
from collections.abc import Callable
from typing import Any

import numpy as np

from rosenblatt.backend import device_of, get_array_module, is_cupy_array
from rosenblatt.kernels.memory import address as _address
from rosenblatt.kernels.threads import run_at_once

# Bytes of one array per block. A block's working set (the parameter, its gradient, two or three
# state arrays and scratch buffers: 5-8 MiB) stays in the last-level cache between the passes of an
# update, and each ufunc call has enough work that its fixed cost of about a microsecond is lost in
# it (on a 5M-parameter Adam step, 1 MiB blocks took 15% less time than 128 KiB ones).
BLOCK_BYTES = 1024 * 1024
# A step over fewer elements runs on the calling thread alone: handing work to another thread
# costs tens of microseconds, more than a small model's whole update.
PARALLEL_MIN_ELEMENTS = 256 * 1024


def _max_threads_from_environment() -> int | None:
    value = os.environ.get("ROSENBLATT_OPTIM_THREADS")
    if value is None:
        return None
    try:
        return max(1, int(value))
    except ValueError:
        raise ValueError(f"ROSENBLATT_OPTIM_THREADS: expected a positive integer, got {value!r}") from None


# Threads that run the blocks of one step (the calling thread is one of them): the thread policy's
# count, capped here. Two is what a memory-bound update gains from on most machines; None follows
# the policy up to 2. ROSENBLATT_OPTIM_THREADS sets it.
MAX_THREADS: int | None = _max_threads_from_environment()


def update_threads() -> int:
    """Threads a large update runs on: the policy's current count, at most ``MAX_THREADS`` (default 2)."""
    from rosenblatt.kernels import threads

    return max(1, min(threads.effective_threads(), MAX_THREADS if MAX_THREADS is not None else 2))


Work = tuple[Callable[..., None], tuple[Any, ...], int, tuple[Any, ...]]


class UpdateRunner:
    """Runs update kernels over cache-sized blocks, on threads; owns the scratch buffers.

    One runner per optimiser: its scratch arrays (one flat array per backend, device, dtype and
    thread slot, grown on demand) are reused by every step, so updates allocate nothing.
    """

    def __init__(self) -> None:
        self.scratch: dict[tuple[Any, ...], Any] = {}

    def run(self, work: list[tuple[Callable[..., None], tuple[Any, ...], int, tuple[Any, ...]]]) -> None:
        """Run queued updates: NumPy blocks on up to :func:`update_threads` threads, everything else here."""
        # Units of work: (kernel, arrays, n_scratch, args, start, stop); start is None for an array
        # processed whole.
        units: list[tuple[Any, ...]] = []
        whole: list[tuple[Any, ...]] = []
        total = 0
        for kernel, arrays, n_scratch, args in work:
            first = arrays[0]
            size = first.size
            block = max(1, BLOCK_BYTES // first.dtype.itemsize)
            if get_array_module(first) is not np:
                whole.append((kernel, arrays, n_scratch, args, None, size))
                continue
            if size > block and all(a is None or a.flags.c_contiguous for a in arrays):
                flats = tuple(None if a is None else a.reshape(-1) for a in arrays)
                units.extend((kernel, flats, n_scratch, args, start, min(start + block, size))
                             for start in range(0, size, block))
            else:
                units.append((kernel, arrays, n_scratch, args, None, size))
            total += size
        for unit in whole:  # CuPy: kernel launches are asynchronous already
            self.run_units([unit], 0)
        threads = update_threads() if total >= PARALLEL_MIN_ELEMENTS else 1
        if threads <= 1 or len(units) < 2:
            self.run_units(units, 0)
            return
        # Contiguous shares of about total / threads elements each: a block that straddles a share's
        # end is cut there (at a multiple of 64 elements, so that shares start on a cache line).
        shares: list[list[tuple[Any, ...]]] = [[] for _ in range(threads)]
        share, done = 0, 0
        end = total // threads
        for unit in units:
            kernel, arrays, n_scratch, args, start, stop = unit
            if start is not None:
                while share < threads - 1 and done + (stop - start) > end:
                    cut = start + (end - done) // 64 * 64
                    if cut > start:
                        shares[share].append((kernel, arrays, n_scratch, args, start, cut))
                        done += cut - start
                        start = cut
                    share += 1
                    end = total * (share + 1) // threads
                unit = (kernel, arrays, n_scratch, args, start, stop)
            elif share < threads - 1 and done >= end:
                share += 1
                end = total * (share + 1) // threads
            shares[share].append(unit)
            done += stop if start is None else stop - start
        run_at_once([functools.partial(self.run_units, share, slot) for slot, share in enumerate(shares)
                     if share or not slot])

    def run_units(self, units: list[tuple[Any, ...]], slot: int) -> None:
        """Run units of work with the scratch buffers of thread slot ``slot``."""
        buffers_for: dict[tuple[Any, ...], list[Any]] = {}
        for kernel, arrays, n_scratch, args, start, stop in units:
            first = arrays[0]
            if start is None:  # the whole array, in its own shape
                size = first.size
                scratch = self.scratch_buffer(get_array_module(first), first, size * n_scratch, slot)
                buffers = [scratch[k * size:(k + 1) * size].reshape(first.shape) for k in range(n_scratch)]
                kernel(*arrays, *buffers, *args)
                continue
            n = stop - start
            key = (first.dtype, n_scratch, n)
            buffers = buffers_for.get(key)
            if buffers is None:
                block = max(1, BLOCK_BYTES // first.dtype.itemsize)
                scratch = self.scratch_buffer(np, first, block * n_scratch, slot)
                buffers = buffers_for[key] = [scratch[k * block:k * block + n] for k in range(n_scratch)]
            kernel(*[None if a is None else a[start:stop] for a in arrays], *buffers, *args)

    def scratch_buffer(self, xp: Any, like: Any, size: int, slot: int = 0) -> Any:
        """A flat scratch array of at least ``size`` elements of ``like``'s dtype, on its device."""
        key = (xp.__name__, str(device_of(like)), like.dtype.str, slot)
        buffer = self.scratch.get(key)
        if buffer is None or buffer.size < size:
            if is_cupy_array(like):
                with like.device:
                    buffer = xp.empty(size, dtype=like.dtype)
            else:
                buffer = xp.empty(size, dtype=like.dtype)
            self.scratch[key] = buffer
        return buffer[:size]


# -- one-pass SGD through BLAS -----------------------------------------------------------------

_blas_routines: dict[Any, tuple[Any, Any, Any]] | None = None
# From this many elements the momentum buffer is updated by ``scal`` then ``axpy`` (both threaded in
# OpenBLAS) instead of one ``axpby`` (single-threaded): 527 against 689 us for 2.4M floats, 2 threads.
SCAL_AXPY_MIN = 1 << 20
# Arrays under CHUNKED_MAX elements go through BLAS in chunks of at most CHUNK elements: OpenBLAS
# runs such an ``axpy`` on the calling thread (it starts its threads above 10,000 elements). In a
# training step its threads would be woken next to oneDNN's still-spinning team: LeNet-5's 120x400
# weight took a median 128 us per momentum update that way, against about 10 us in chunks. A chunk
# (96 KB of float32 for three arrays) also stays in L2 between the buffer's and the parameter's
# update. Bigger arrays are worth the threads: a 1000x1000 weight's update took 30 % longer on one.
CHUNK = 8192
CHUNKED_MAX = 1 << 17
# With the oneDNN kernels, arrays from CHUNKED_MAX on are updated on oneDNN's team instead (see
# _onednn_one_pass): one pool for the layers and the optimiser. OpenBLAS's threads would spin on
# through the next forward pass, and a step that used both pools paid for the hand-over each time:
# a loop of SGD steps over 4M + 1M floats alone took 0.77 ms on OpenBLAS, 0.85 ms on oneDNN and
# 1.03 ms with the 4M array on one pool and the 1M array on the other.


def _chunks(n: int, itemsize: int) -> Any:
    """``(byte offset, count)`` of consecutive chunks covering ``n`` elements (the whole at once from
    :data:`CHUNKED_MAX` on, where OpenBLAS's threads pay off)."""
    if n >= CHUNKED_MAX:
        return ((0, n),)
    return ((start * itemsize, min(CHUNK, n - start)) for start in range(0, n, CHUNK))


def _blas_for(dtype: Any) -> tuple[Any, Any, Any] | None:
    """``(axpy, axpby, scal)`` of NumPy's OpenBLAS for float32 / float64 (``scal`` may be None), or None."""
    global _blas_routines
    if _blas_routines is None:
        _blas_routines = {}
        from rosenblatt.kernels import threads

        blas = threads._openblas()
        if blas is not None:
            index = ctypes.c_int64 if "64" in blas.suffix else ctypes.c_int
            for letter, dt, real in (("s", np.dtype(np.float32), ctypes.c_float),
                                     ("d", np.dtype(np.float64), ctypes.c_double)):
                try:
                    axpy = getattr(blas.lib, f"{blas.prefix}cblas_{letter}axpy{blas.suffix}")
                    axpby = getattr(blas.lib, f"{blas.prefix}cblas_{letter}axpby{blas.suffix}")
                except AttributeError:
                    continue
                scal = getattr(blas.lib, f"{blas.prefix}cblas_{letter}scal{blas.suffix}", None)
                axpy.argtypes = [index, real, ctypes.c_void_p, index, ctypes.c_void_p, index]
                axpby.argtypes = [index, real, ctypes.c_void_p, index, real, ctypes.c_void_p, index]
                axpy.restype = axpby.restype = None
                if scal is not None:
                    scal.argtypes, scal.restype = [index, real, ctypes.c_void_p, index], None
                _blas_routines[dt] = (axpy, axpby, scal)
    return _blas_routines.get(dtype)


# In-place ``add_(x, alpha=...)`` / ``sub_`` of arrays from this many elements on goes through
# :func:`axpy` (one pass, threaded); smaller ones stay on NumPy, whose two passes over data in the
# cache beat BLAS in chunks called through ctypes: 4,096 elements 1.9 us against 6.6 us, 65,536
# elements 14 against 23 us (32 against 45 us with the data out of the cache).
AXPY_MIN_ELEMENTS = CHUNKED_MAX


def axpy(y: Any, x: Any, alpha: float) -> bool:
    """``y += alpha * x`` in place in one pass over each array (the arithmetic of PyTorch's
    ``y.add_(x, alpha=alpha)``); False, touching nothing, when it cannot run that way.

    NumPy's ``y += alpha * x`` writes the product to a temporary and reads it back: three passes
    through memory instead of two. This runs on oneDNN's team (float32 arrays with the oneDNN
    kernels) or BLAS's threaded ``axpy`` (OpenBLAS). It declines other BLAS libraries, CuPy arrays,
    different shapes or dtypes (broadcasting), non-contiguous or overlapping arrays and arrays under
    :data:`AXPY_MIN_ELEMENTS`.
    """
    if (type(y) is not np.ndarray or type(x) is not np.ndarray or y.shape != x.shape or y.dtype != x.dtype
            or y.size < AXPY_MIN_ELEMENTS or np.may_share_memory(y, x)):
        return False
    return sgd_one_pass(y, x, None, abs(alpha), 0.0, 0.0, 0.0, alpha > 0, False)


def sgd_one_pass(param: Any, grad: Any, buf: Any, lr: float, momentum: float, dampening: float,
                 weight_decay: float, maximize: bool, first: bool) -> bool:
    """SGD (``buf is None``: plain; else with momentum, not Nesterov) in one pass per array.

    Plain: ``param = (1 - lr * weight_decay) * param - lr * grad`` (one ``axpby``; ``axpy`` without
    decay). Momentum: ``buf = momentum * buf + (1 - dampening) * grad`` (``buf = grad`` on the first
    step), then ``param = param - lr * buf``. ``maximize`` flips the gradient's sign. Returns False,
    touching nothing, when BLAS cannot run it (not OpenBLAS, not a contiguous float32/float64 NumPy
    array, momentum with weight decay): the caller then runs the ufunc kernel.
    """
    if type(param) is not np.ndarray or type(grad) is not np.ndarray or grad.dtype != param.dtype:
        return False
    if not (param.flags.c_contiguous and grad.flags.c_contiguous):
        return False
    routines = _blas_for(param.dtype)
    if routines is None:
        return False
    axpy, axpby, scal = routines
    n = param.size
    sign = 1.0 if maximize else -1.0
    if buf is not None and (weight_decay or type(buf) is not np.ndarray or not buf.flags.c_contiguous):
        return False
    if n >= CHUNKED_MAX and _onednn_one_pass(param, grad, buf, lr, momentum, dampening, weight_decay, sign, first):
        return True
    p_ptr, g_ptr = _address(param), _address(grad)
    if buf is None and n <= CHUNK and not weight_decay:  # one call (most biases): no chunk loop
        axpy(n, sign * lr, g_ptr, 1, p_ptr, 1)
        return True
    if buf is None:
        for start, count in _chunks(n, param.itemsize):
            if weight_decay:
                axpby(count, sign * lr, g_ptr + start, 1, 1.0 - lr * weight_decay, p_ptr + start, 1)
            else:
                axpy(count, sign * lr, g_ptr + start, 1, p_ptr + start, 1)
        return True
    if first:
        if maximize:
            np.negative(grad, out=buf)
        else:
            np.copyto(buf, grad)
    b_ptr = _address(buf)
    if n >= SCAL_AXPY_MIN and scal is not None and not first:
        scal(n, momentum, b_ptr, 1)
        axpy(n, -sign * (1.0 - dampening), g_ptr, 1, b_ptr, 1)
        axpy(n, -lr, b_ptr, 1, p_ptr, 1)
        return True
    for start, count in _chunks(n, param.itemsize):  # buffer then parameter, a chunk at a time
        if not first:
            axpby(count, -sign * (1.0 - dampening), g_ptr + start, 1, momentum, b_ptr + start, 1)
        axpy(count, -lr, b_ptr + start, 1, p_ptr + start, 1)
    return True



def _onednn_one_pass(param: Any, grad: Any, buf: Any, lr: float, momentum: float, dampening: float,
                     weight_decay: float, sign: float, first: bool) -> bool:
    """:func:`sgd_one_pass` of a large float32 array on oneDNN's threads (the team that runs the
    layers' kernels), or False, touching nothing, when the oneDNN kernels are not in use."""
    from rosenblatt import kernels

    if param.dtype != np.float32 or not kernels.use_onednn():
        return False
    from rosenblatt.kernels.onednn import eltwise

    if buf is None:
        return eltwise.axpby(param, grad, sign * lr, 1.0 - lr * weight_decay)
    if first:
        if not eltwise.axpby(param, grad, sign * lr):  # buf = grad: param -= lr * buf
            return False
        if sign < 0:
            np.copyto(buf, grad)
        else:
            np.negative(grad, out=buf)
        return True
    if not eltwise.axpby(buf, grad, -sign * (1.0 - dampening), momentum):
        return False
    if not eltwise.axpby(param, buf, -lr):  # the buffer is updated: finish here whatever happens
        param -= lr * buf
    return True


# -- Adagrad and RMSprop on oneDNN ---------------------------------------------------------------
# Large float32 arrays (from ADAPTIVE_MIN_ELEMENTS on) with the oneDNN kernels are updated by
# rosenblatt.kernels.onednn.optim: two to five binary primitives with post-ops, each one threaded
# pass, instead of the ufunc kernels' ten or so passes per block. Steps of 5M parameters (4M + 1M +
# 3,000), two threads, ufunc kernels -> oneDNN (PyTorch's for-loop step in the same process):
# Adagrad 3.86 -> 2.01 ms (3.73), RMSprop 4.45 -> 2.04 ms (3.93), RMSprop(momentum=0.9) 5.77 ->
# 2.92 ms (5.74), RMSprop(momentum=0.9, centered=True) 8.98 -> 4.76 ms (8.39). A 2^17-element
# array: 0.12-0.27 -> 0.06-0.11 ms; the two are even at about 2^15 elements.
ADAPTIVE_MIN_ELEMENTS = CHUNKED_MAX
# The runner's scratch slot of the weight-decayed gradient (a whole array, not a thread's blocks).
WHOLE_ARRAY_SLOT = -1


def _onednn_adaptive(param: Any) -> bool:
    """True when ``param`` may take the oneDNN Adagrad / RMSprop update (a large float32 NumPy array,
    the oneDNN kernels active)."""
    if type(param) is not np.ndarray or param.dtype != np.float32 or param.size < ADAPTIVE_MIN_ELEMENTS:
        return False
    from rosenblatt import kernels

    return kernels.use_onednn()


def _whole_array_scratch(runner: UpdateRunner, param: np.ndarray) -> Callable[[], np.ndarray]:
    """A function that returns a scratch array shaped like ``param``, kept by ``runner`` from step to
    step (asked for only by an update that runs and needs it)."""
    return lambda: runner.scratch_buffer(np, param, param.size, WHOLE_ARRAY_SLOT).reshape(param.shape)


def adagrad_onednn(param: Any, grad: Any, state_sum: Any, runner: UpdateRunner, clr: float, eps: float,
                   weight_decay: float, maximize: bool) -> bool:
    """:func:`adagrad` on oneDNN's threads for a large float32 array (the oneDNN kernels active, every
    array a C-contiguous float32 NumPy array); False, touching nothing, when it does not run."""
    if not _onednn_adaptive(param):
        return False
    from rosenblatt.kernels.onednn import optim as onednn_optim

    return onednn_optim.adagrad(param, grad, state_sum, _whole_array_scratch(runner, param), clr, eps, weight_decay,
                                -1.0 if maximize else 1.0)


def rmsprop_onednn(param: Any, grad: Any, square_avg: Any, grad_avg: Any, buf: Any, runner: UpdateRunner, lr: float,
                   alpha: float, eps: float, weight_decay: float, momentum: float, maximize: bool) -> bool:
    """:func:`rmsprop` on oneDNN's threads for a large float32 array (``grad_avg``: centered, ``buf``:
    with momentum, else None); False, touching nothing, when it does not run."""
    if not _onednn_adaptive(param):
        return False
    from rosenblatt.kernels.onednn import optim as onednn_optim

    return onednn_optim.rmsprop(param, grad, square_avg, grad_avg, buf, _whole_array_scratch(runner, param), lr,
                                alpha, eps, weight_decay, momentum, -1.0 if maximize else 1.0)


def _whole_array_scratches(runner: UpdateRunner, param: np.ndarray) -> Callable[[int], list[np.ndarray]]:
    """A function that returns ``k`` distinct flat scratch arrays of ``param``'s size, kept by
    ``runner`` from step to step (asked for only by an update that runs and needs them)."""

    def scratches(k: int) -> list[np.ndarray]:
        n = param.size
        flat = runner.scratch_buffer(np, param, k * n, WHOLE_ARRAY_SLOT)
        return [flat[i * n:(i + 1) * n] for i in range(k)]

    return scratches


# -- SGD with momentum, Adam and Adadelta on oneDNN ---------------------------------------------------
# The same approach for the other optimisers (rosenblatt.kernels.onednn.optim: sgd_momentum, adam,
# adadelta). Steps of 5M parameters (4M + 1M + 3,000), two threads, ufunc kernels -> oneDNN
# (PyTorch's for-loop step in the same process), minimum of several alternating rounds:
# SGD(momentum=0.9, nesterov=True, weight_decay=1e-4) 4.90 -> 3.41 ms (5.50), SGD(momentum=0.9,
# weight_decay=1e-4) 4.38 -> 3.03 ms (3.54), Adam 6.65 -> 3.72 ms (7.31), Adam(amsgrad=True) 8.64 ->
# 4.51 ms (8.77), AdamW(weight_decay=0.01) 6.68 -> 3.63 ms (7.78), Adadelta 9.16 -> 5.74 ms (9.19), on a
# machine shared with other work (load about 1.4 on two cores). Plain SGD and SGD with momentum
# alone stay on sgd_one_pass.


def sgd_momentum_onednn(param: Any, grad: Any, buf: Any, runner: UpdateRunner, lr: float, momentum: float,
                        dampening: float, nesterov: bool, weight_decay: float, maximize: bool, first: bool) -> bool:
    """:func:`sgd_momentum` on oneDNN's threads for a large float32 array (the oneDNN kernels active,
    every array a C-contiguous float32 NumPy array); False, touching nothing, when it does not run.
    Plain momentum without weight decay is :func:`sgd_one_pass`'s."""
    if not _onednn_adaptive(param):
        return False
    from rosenblatt.kernels.onednn import optim as onednn_optim

    return onednn_optim.sgd_momentum(param, grad, buf, _whole_array_scratches(runner, param), lr, momentum, dampening,
                                     nesterov, weight_decay, -1.0 if maximize else 1.0, first)


def adam_onednn(param: Any, grad: Any, exp_avg: Any, exp_avg_sq: Any, max_exp_avg_sq: Any, runner: UpdateRunner,
                beta1: float, beta2: float, step_size: float, eps: float, decay: float, l2: float,
                maximize: bool) -> bool:
    """:func:`adam` on oneDNN's threads for a large float32 array (``max_exp_avg_sq``: AMSGrad, else
    None); False, touching nothing, when it does not run."""
    if not _onednn_adaptive(param):
        return False
    from rosenblatt.kernels.onednn import optim as onednn_optim

    return onednn_optim.adam(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, _whole_array_scratches(runner, param),
                             beta1, beta2, step_size, eps, decay, l2, -1.0 if maximize else 1.0)


def adadelta_onednn(param: Any, grad: Any, square_avg: Any, acc_delta: Any, runner: UpdateRunner, lr: float,
                    rho: float, eps: float, weight_decay: float, maximize: bool) -> bool:
    """:func:`adadelta` on oneDNN's threads for a large float32 array; False, touching nothing, when it
    does not run."""
    if not _onednn_adaptive(param):
        return False
    from rosenblatt.kernels.onednn import optim as onednn_optim

    return onednn_optim.adadelta(param, grad, square_avg, acc_delta, _whole_array_scratches(runner, param), lr, rho,
                                 eps, weight_decay, -1.0 if maximize else 1.0)


# -- the update kernels ------------------------------------------------------------------------

def effective_grad(xp: Any, param: Any, grad: Any, out: Any, weight_decay: float, maximize: bool) -> Any:
    """The gradient an update uses: ``(-grad if maximize else grad) + weight_decay * param``.

    Written into ``out`` when it differs from ``grad`` (which is never modified: it belongs to the
    caller); returns the array to read it from.
    """
    if weight_decay:
        xp.multiply(param, weight_decay, out=out)
        if maximize:
            out -= grad
        else:
            out += grad
        return out
    if maximize:
        xp.negative(grad, out=out)
        return out
    return grad


def sgd(param, grad, d, tmp, xp, lr, weight_decay, maximize):
    d = effective_grad(xp, param, grad, d, weight_decay, maximize)
    xp.multiply(d, lr, out=tmp)
    param -= tmp


def sgd_momentum(param, grad, buf, d, tmp, xp, lr, momentum, dampening, nesterov, weight_decay, maximize,
                         first):
    d = effective_grad(xp, param, grad, d, weight_decay, maximize)
    if first:
        xp.copyto(buf, d)
    else:
        buf *= momentum
        if dampening:
            xp.multiply(d, 1 - dampening, out=tmp)
            buf += tmp
        else:
            buf += d
    if nesterov:
        xp.multiply(buf, momentum, out=tmp)
        tmp += d
        tmp *= lr
    else:
        xp.multiply(buf, lr, out=tmp)
    param -= tmp


def adam(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, d, tmp, xp, beta1, beta2, step_size, eps, decay,
                 l2, maximize):
    if decay != 1.0:
        param *= decay
    d = effective_grad(xp, param, grad, d, l2, maximize)
    # m = beta1 * m + (1 - beta1) * d, written as beta1 * (m - d) + d: three passes, no temporary.
    exp_avg -= d
    exp_avg *= beta1
    exp_avg += d
    xp.multiply(d, 1 - beta2, out=tmp)
    tmp *= d
    exp_avg_sq *= beta2
    exp_avg_sq += tmp
    if max_exp_avg_sq is not None:  # AMSGrad: normalise by the largest second moment so far
        xp.maximum(max_exp_avg_sq, exp_avg_sq, out=max_exp_avg_sq)
        exp_avg_sq = max_exp_avg_sq
    xp.sqrt(exp_avg_sq, out=tmp)
    tmp += eps
    xp.divide(exp_avg, tmp, out=tmp)
    tmp *= step_size
    param -= tmp


def rmsprop(param, grad, square_avg, grad_avg, buf, d, tmp, xp, lr, alpha, eps, weight_decay, momentum,
                    maximize):
    d = effective_grad(xp, param, grad, d, weight_decay, maximize)
    xp.multiply(d, 1 - alpha, out=tmp)
    tmp *= d
    square_avg *= alpha
    square_avg += tmp
    if grad_avg is not None:
        grad_avg -= d
        grad_avg *= alpha
        grad_avg += d
        xp.multiply(grad_avg, grad_avg, out=tmp)
        xp.subtract(square_avg, tmp, out=tmp)
        xp.sqrt(tmp, out=tmp)
    else:
        xp.sqrt(square_avg, out=tmp)
    tmp += eps
    xp.divide(d, tmp, out=tmp)
    if buf is not None:
        buf *= momentum
        buf += tmp
        xp.multiply(buf, lr, out=tmp)
    else:
        tmp *= lr
    param -= tmp


def adagrad(param, grad, accumulator, d, tmp, xp, clr, eps, weight_decay, maximize):
    d = effective_grad(xp, param, grad, d, weight_decay, maximize)
    xp.multiply(d, d, out=tmp)
    accumulator += tmp
    xp.sqrt(accumulator, out=tmp)
    tmp += eps
    xp.divide(d, tmp, out=tmp)
    tmp *= clr
    param -= tmp


def adadelta(param, grad, square_avg, acc_delta, d, std, delta, xp, lr, rho, eps, weight_decay, maximize):
    d = effective_grad(xp, param, grad, d, weight_decay, maximize)
    xp.multiply(d, 1 - rho, out=std)
    std *= d
    square_avg *= rho
    square_avg += std
    xp.add(square_avg, eps, out=std)
    xp.sqrt(std, out=std)
    xp.add(acc_delta, eps, out=delta)
    xp.sqrt(delta, out=delta)
    delta /= std
    delta *= d
    xp.multiply(delta, 1 - rho, out=std)
    std *= delta
    acc_delta *= rho
    acc_delta += std
    delta *= lr
    param -= delta
