"""Finding and loading ``libdnnl`` (the ``onednn-cpu-gomp`` wheel) and the ctypes bindings.

The oneDNN 3.2 C API is called through :mod:`ctypes`, so nothing is compiled at install time.
Nothing here runs at ``import rosenblatt``: :func:`load` is called by the kernel-set selection
the first time a kernel runs.

Loading
    :func:`load` finds ``libdnnl.so.3`` through the file list of the installed
    ``onednn-cpu-gomp`` distribution, sets ``GOMP_SPINCOUNT`` to :data:`SPIN_COUNT` unless the
    user set it or ``OMP_WAIT_POLICY`` (idle OpenMP threads spin briefly, then sleep), checks for the system's ``libgomp.so.1`` (missing: one warning line, then
    the NumPy kernels), loads the library, and creates the CPU engine and stream. It returns
    ``(ok, reason)``; :func:`version` names the library, e.g. ``"oneDNN 3.2.0 (onednn-cpu-gomp)"``.
    :func:`set_num_threads` / :func:`get_num_threads` set and read the OpenMP thread count
    (``omp_set_num_threads``); a count set before loading is applied on load.

Bindings (valid after a successful :func:`load`)
    - :data:`C`: the C enum values by their name without the ``dnnl_`` prefix (``C.f32``,
      ``C.format_tag_any``, ``C.forward_training``, ``C.eltwise_relu``, ``C.query_dst_md``, ...)
      and the execution argument numbers (``C.ARG_SRC``, ``C.ARG_DIFF_WEIGHTS``, ...).
    - :class:`MemoryDesc`: a memory descriptor, ``MemoryDesc.with_tag(dims, tag)``,
      ``MemoryDesc.with_strides(dims, strides)`` (strides in elements), ``MemoryDesc.of(array)``
      (the layout of a NumPy array); ``.dims``, ``.ndims``, ``.nbytes``, ``.is_dense_plain()``,
      ``==``. Passed to the C API as ``.handle``.
    - :class:`Attr`: primitive attributes, ``Attr(post_ops=[(C.eltwise_relu, 0.0, 0.0)])``.
    - :func:`create_pd`: ``create_pd("convolution_forward", *args, op="conv2d")`` calls
      ``dnnl_convolution_forward_primitive_desc_create(&pd, engine, *args)`` and returns the
      primitive descriptor handle (any non-success status raises :class:`DnnlError`).
    - :class:`Primitive`: made from a primitive descriptor; ``.md(arg)`` is the memory
      descriptor the primitive expects for an execution argument (``C.ARG_SRC``, ...; the
      workspace and the scratchpad included), ``.execute([(C.ARG_SRC, array), ...])`` runs it on
      the arrays' buffers. The arrays must be laid out as ``.md(arg)`` says (a blocked layout is
      held in a flat float32 array of ``.md(arg).nbytes`` bytes). The call is synchronous: the
      arrays only need to stay alive for its duration.
    - :func:`cached`: the primitive cache, ``cached(key, build)`` returns the primitive built by
      ``build()`` for a hashable ``key`` (shape and parameters); building one costs ~10 ms.
    - :func:`reorder`: a cached reorder primitive between two memory descriptors;
      :func:`to_layout` copies an array into another layout.
    - :func:`call`: any other C function, ``call("name", *args, op=...)`` with the status checked.
      :func:`bind` declares a function's ctypes signature first (``bind("name", [c_void_p, ...])``).
    - :class:`DnnlError`: a failed call, naming the op and the C function.

A primitive (its argument memory objects are reused from call to call) is executed under one
process-wide lock, so concurrent Python threads serialise on oneDNN calls.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import os
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator, Sequence
from ctypes import POINTER, c_float, c_int, c_int64, c_size_t, c_uint, c_void_p
from typing import Any

import numpy as np

from rosenblatt.kernels.memory import address
from rosenblatt.kernels.workspace import aligned_empty

DISTRIBUTION = "onednn-cpu-gomp"
LIBRARY_NAME = "libdnnl.so.3"
GOMP_NAME = "libgomp.so.1"
# Iterations an idle OpenMP thread spins before it sleeps (``GOMP_SPINCOUNT``). GNU OpenMP's
# default, 300,000, is milliseconds: on a machine where other processes are busy, threads that
# spin take the cores away from the threads that have work. Passive waiting (no spin) costs a
# wake-up of every thread at every primitive: a batch-1 MLP took 180 us against 80 us, and the
# default `rosenblatt train` run 1.5 s of training against 0.8 s (a LeNet-5 step with a spin of
# 3,000 iterations: 6.3 ms against 4.5 ms). 15,000 iterations (about 0.1 ms on the machine measured)
# bridge the gaps between the primitives of one step and stop soon after it.
SPIN_COUNT = 15_000
MAX_NDIMS = 12
CACHE_CAPACITY = 1024

_Dims = c_int64 * MAX_NDIMS


class DnnlError(RuntimeError):
    """A oneDNN call failed; the message names the op and the C function."""


class _Constants:
    """Enum values of the oneDNN 3.2 C API (``dnnl_types.h``), without the ``dnnl_`` prefix."""

    def __init__(self, values: dict[str, int]) -> None:
        self.__dict__.update(values)


# Values taken from oneDNN 3.2's dnnl_types.h / dnnl_common_types.h.
C: Any = _Constants(
    {
        # dnnl_status_t
        "success": 0, "out_of_memory": 1, "invalid_arguments": 2, "unimplemented": 3,
        "last_impl_reached": 4, "runtime_error": 5, "not_required": 6,
        # dnnl_data_type_t
        "data_type_undef": 0, "f16": 1, "bf16": 2, "f32": 3, "s32": 4, "s8": 5, "u8": 6,
        # dnnl_format_tag_t
        "format_tag_undef": 0, "format_tag_any": 1, "a": 2, "ab": 3, "abc": 4, "abcd": 5,
        "abcde": 6, "abcdef": 7, "x": 2, "nc": 3, "ncw": 4, "nchw": 5, "ncdhw": 6, "oiw": 4,
        "oihw": 5, "oidhw": 6, "goiw": 5, "goihw": 6, "goidhw": 7, "nwc": 15, "nhwc": 22,
        "ndhwc": 33,
        # dnnl_format_kind_t
        "format_kind_any": 1, "blocked": 2,
        # dnnl_prop_kind_t
        "forward_training": 64, "forward_inference": 96, "backward": 128, "backward_data": 160,
        "backward_weights": 192, "backward_bias": 193,
        # dnnl_alg_kind_t
        "convolution_direct": 1, "convolution_auto": 3, "deconvolution_direct": 10,
        "eltwise_relu": 32, "eltwise_tanh": 33, "eltwise_elu": 34, "eltwise_logistic": 41,
        "eltwise_gelu_tanh": 43, "eltwise_swish": 44, "eltwise_gelu_erf": 49,
        "eltwise_relu_use_dst_for_bwd": 256, "eltwise_tanh_use_dst_for_bwd": 257,
        "eltwise_logistic_use_dst_for_bwd": 260,
        "pooling_max": 511, "pooling_avg_include_padding": 767,
        "pooling_avg_exclude_padding": 1023,
        "vanilla_rnn": 8191, "vanilla_lstm": 12287, "vanilla_gru": 16383, "lbr_gru": 20479,
        # dnnl_rnn_direction_t, dnnl_rnn_flags_t
        "unidirectional_left2right": 1, "unidirectional_right2left": 2,
        "bidirectional_concat": 3, "bidirectional_sum": 4,
        "rnn_flags_undef": 0, "rnn_flags_diff_weights_overwrite": 1,
        # dnnl_normalization_flags_t
        "normalization_flags_none": 0, "use_global_stats": 1, "use_scale": 2, "use_shift": 4,
        "fuse_norm_relu": 8,
        # dnnl_scratchpad_mode_t, dnnl_engine_kind_t, dnnl_stream_flags_t
        "scratchpad_mode_library": 0, "scratchpad_mode_user": 1, "cpu": 1,
        "stream_default_flags": 1,
        # dnnl_query_t
        "query_impl_info_str": 8, "query_src_md": 129, "query_diff_src_md": 130,
        "query_weights_md": 131, "query_diff_weights_md": 132, "query_dst_md": 133,
        "query_diff_dst_md": 134, "query_workspace_md": 135, "query_scratchpad_md": 136,
        "query_exec_arg_md": 255, "query_ndims_s32": 256, "query_dims": 257,
        "query_data_type": 258, "query_padded_dims": 260, "query_format_kind": 262,
        "query_strides": 14,
        # execution arguments (DNNL_ARG_*)
        "ARG_SRC": 1, "ARG_SRC_LAYER": 1, "ARG_SRC_1": 2, "ARG_SRC_ITER": 2, "ARG_SRC_2": 3,
        "ARG_SRC_ITER_C": 3, "ARG_DST": 17, "ARG_DST_LAYER": 17, "ARG_DST_ITER": 18,
        "ARG_DST_ITER_C": 19, "ARG_FROM": 1, "ARG_TO": 17,
        "ARG_WEIGHTS": 33, "ARG_WEIGHTS_LAYER": 33, "ARG_WEIGHTS_ITER": 34,
        "ARG_WEIGHTS_PEEPHOLE": 35, "ARG_WEIGHTS_PROJECTION": 36, "ARG_BIAS": 41,
        "ARG_MEAN": 49, "ARG_VARIANCE": 50, "ARG_SCALE": 51, "ARG_SHIFT": 52,
        "ARG_WORKSPACE": 64, "ARG_SCRATCHPAD": 80,
        "ARG_DIFF_SRC": 129, "ARG_DIFF_SRC_LAYER": 129, "ARG_DIFF_SRC_ITER": 130,
        "ARG_DIFF_SRC_ITER_C": 131, "ARG_DIFF_DST": 145, "ARG_DIFF_DST_LAYER": 145,
        "ARG_DIFF_DST_ITER": 146, "ARG_DIFF_DST_ITER_C": 147,
        "ARG_DIFF_WEIGHTS": 161, "ARG_DIFF_WEIGHTS_LAYER": 161, "ARG_DIFF_WEIGHTS_ITER": 162,
        "ARG_DIFF_WEIGHTS_PEEPHOLE": 163, "ARG_DIFF_WEIGHTS_PROJECTION": 164,
        "ARG_DIFF_BIAS": 169, "ARG_DIFF_SCALE": 255, "ARG_DIFF_SHIFT": 256,
    }
)  # fmt: skip

_STATUS_NAMES = {
    1: "out of memory", 2: "invalid arguments", 3: "unimplemented",
    4: "last implementation reached", 5: "runtime error", 6: "not required",
}  # fmt: skip

# -- loading ----------------------------------------------------------------------------------

_lock = threading.RLock()
_loaded: bool | None = None  # None: not tried yet
_reason = ""
_lib: Any = None
_gomp: Any = None
_engine = c_void_p()
_stream = c_void_p()
_pending_threads: int | None = None
_warned_gomp = False


def _find_library() -> str | None:
    """The path of ``libdnnl.so.3`` from the installed distribution's file list, or ``None``."""
    from importlib import metadata

    try:
        files = metadata.distribution(DISTRIBUTION).files or []
    except metadata.PackageNotFoundError:
        return None
    best = None
    for f in files:
        name = f.name
        if name == LIBRARY_NAME or (best is None and name.startswith(LIBRARY_NAME)):
            path = str(f.locate())
            if os.path.exists(path):
                best = path
                if name == LIBRARY_NAME:
                    break
    return best


def load() -> tuple[bool, str]:
    """Load the library once; return ``(ok, reason)`` for :func:`rosenblatt.kernels.kernels`."""
    global _loaded, _reason
    if _loaded is not None:
        return _loaded, _reason
    with _lock:
        if _loaded is None:
            try:
                _loaded, _reason = _load()
            except Exception as exc:  # a broken install must never break the NumPy path
                _loaded, _reason = False, f"oneDNN failed to load: {exc}"
    return _loaded, _reason


def _load() -> tuple[bool, str]:
    global _lib, _gomp, _warned_gomp
    path = _find_library()
    if path is None:
        return False, f"{DISTRIBUTION} is not installed (pip install 'rosenblatt[fast]')"
    # GNU OpenMP reads its settings once, as it loads: a short spin, then sleep (see SPIN_COUNT).
    # The variable is set only for that moment, so that child processes do not inherit it.
    set_spin = "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ
    if set_spin:
        os.environ["GOMP_SPINCOUNT"] = str(SPIN_COUNT)
    try:
        _gomp = ctypes.CDLL(GOMP_NAME)
    except OSError:
        reason = f"{GOMP_NAME} (GNU OpenMP) is missing, which oneDNN needs"
        if not _warned_gomp:
            _warned_gomp = True
            warnings.warn_explicit(
                f"{reason}; using the NumPy kernels (install libgomp1 to get the fast ones)",
                RuntimeWarning, filename="rosenblatt", lineno=0,
            )  # fmt: skip
        return False, reason
    finally:
        if set_spin:
            del os.environ["GOMP_SPINCOUNT"]
    lib = ctypes.CDLL(path)
    _declare(lib)
    _lib = lib
    _check(lib.dnnl_engine_create(ctypes.byref(_engine), C.cpu, 0), "load", "engine_create")
    _check(
        lib.dnnl_stream_create(ctypes.byref(_stream), _engine, C.stream_default_flags),
        "load", "stream_create",
    )  # fmt: skip
    if _pending_threads is not None:
        _gomp.omp_set_num_threads(c_int(_pending_threads))
    return True, version()


def loaded() -> bool:
    """True when the library has been loaded successfully (never loads it)."""
    return bool(_loaded)


def version() -> str:
    """The library's version and origin, e.g. ``"oneDNN 3.2.0 (onednn-cpu-gomp)"``."""
    if _lib is None:
        return "oneDNN (not loaded)"
    v = _lib.dnnl_version().contents
    return f"oneDNN {v.major}.{v.minor}.{v.patch} ({DISTRIBUTION})"


def set_num_threads(n: int) -> None:
    """Set the OpenMP thread count oneDNN uses (applied on load if the library is not loaded)."""
    global _pending_threads
    n = int(n)
    if n < 1:
        raise ValueError(f"set_num_threads: expected a positive thread count, got {n}")
    _pending_threads = n
    if _loaded and _gomp is not None:
        _gomp.omp_set_num_threads(c_int(n))


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """oneDNN calls inside run on one OpenMP thread, and primitives created inside are made (and
    cached) for one; the thread count is restored after. For work of a few microseconds, where
    waking the other threads costs more than they save."""
    threads = get_num_threads()
    if not threads or threads == 1:
        yield
        return
    set_num_threads(1)
    try:
        yield
    finally:
        set_num_threads(threads)


@contextlib.contextmanager
def single_thread_here() -> Iterator[None]:
    """Inside, oneDNN calls *from this thread* run on one OpenMP thread, and primitives created here
    are made for one (OpenMP's thread count is per thread; the configured count, and the key of
    :func:`cached`, stay as they are: give such primitives keys of their own)."""
    before = int(_gomp.omp_get_max_threads())
    _gomp.omp_set_num_threads(c_int(1))
    try:
        yield
    finally:
        _gomp.omp_set_num_threads(c_int(before))


_thread_state = threading.local()  # a thread's own stream, and whether its team is one thread


def _thread_stream() -> c_void_p:
    """The calling thread's own stream (a stream is not shared between threads that run at once)."""
    stream = getattr(_thread_state, "stream", None)
    if stream is None:
        stream = c_void_p()
        _check(_lib.dnnl_stream_create(ctypes.byref(stream), _engine, C.stream_default_flags),
               "oneDNN", "stream_create")  # fmt: skip
        _thread_state.stream = stream
    return stream


def _on_one_thread(task: Callable[[], Any]) -> Callable[[], Any]:
    def run() -> Any:  # on a worker thread: its OpenMP team becomes one thread, for good
        if not getattr(_thread_state, "one_thread", False):
            _gomp.omp_set_num_threads(c_int(1))
            _thread_state.one_thread = True
        return task()

    return run


def run_concurrently(tasks: Sequence[Callable[[], Any]]) -> None:
    """Run ``tasks`` at the same time, each on one thread with a one-thread OpenMP team: the first
    on this thread, the others on the worker threads (:func:`rosenblatt.kernels.threads.run_at_once`).
    Each task should execute its own primitives (made under :func:`single_thread_here`) with
    ``concurrent=True``. Returns when all are done; the first exception raised by a task is raised
    here then.

    Independent slices of one problem (the sequences of a recurrent layer's batch) scale better
    this way than one primitive on a team: every time step of an RNN primitive is a few small
    parallel regions, and each costs the team a barrier.
    """
    from rosenblatt.kernels.threads import run_at_once

    def first() -> None:
        with single_thread_here():
            tasks[0]()

    run_at_once([first] + [_on_one_thread(task) for task in tasks[1:]])


def get_num_threads() -> int | None:
    """The OpenMP thread count oneDNN uses, or ``None`` when the library is not loaded."""
    if _loaded and _gomp is not None:
        return int(_gomp.omp_get_max_threads())
    return _pending_threads


# -- signatures -------------------------------------------------------------------------------


class _Version(ctypes.Structure):
    _fields_ = [
        ("major", c_int), ("minor", c_int), ("patch", c_int), ("hash", ctypes.c_char_p),
        ("cpu_runtime", c_uint), ("gpu_runtime", c_uint),
    ]  # fmt: skip


class _ExecArg(ctypes.Structure):
    _fields_ = [("arg", c_int), ("memory", c_void_p)]


_P, _D, _F, _U, _I = c_void_p, POINTER(c_int64), c_float, c_uint, c_int
_PP = POINTER(c_void_p)

_SIGNATURES: dict[str, tuple[Any, list[Any]]] = {
    "engine_create": (_I, [_PP, _I, c_size_t]),
    "stream_create": (_I, [_PP, _P, _U]),
    "stream_wait": (_I, [_P]),
    "version": (POINTER(_Version), []),
    "set_verbose": (_I, [_I]),
    "memory_desc_create_with_tag": (_I, [_PP, _I, _D, _I, _I]),
    "memory_desc_create_with_strides": (_I, [_PP, _I, _D, _I, _D]),
    "memory_desc_clone": (_I, [_PP, _P]),
    "memory_desc_destroy": (_I, [_P]),
    "memory_desc_query": (_I, [_P, _I, _P]),
    "memory_desc_get_size": (c_size_t, [_P]),
    "memory_desc_equal": (_I, [_P, _P]),
    "memory_create": (_I, [_PP, _P, _P, _P]),
    "memory_set_data_handle": (_I, [_P, _P]),
    "memory_destroy": (_I, [_P]),
    "primitive_desc_query_md": (_P, [_P, _I, _I]),
    "primitive_desc_query": (_I, [_P, _I, _I, _P]),
    "primitive_desc_destroy": (_I, [_P]),
    "primitive_create": (_I, [_PP, _P]),
    "primitive_execute": (_I, [_P, _P, _I, POINTER(_ExecArg)]),
    "primitive_destroy": (_I, [_P]),
    "primitive_attr_create": (_I, [_PP]),
    "primitive_attr_destroy": (_I, [_P]),
    "primitive_attr_set_scratchpad_mode": (_I, [_P, _I]),
    "primitive_attr_set_post_ops": (_I, [_P, _P]),
    "post_ops_create": (_I, [_PP]),
    "post_ops_append_eltwise": (_I, [_P, _I, _F, _F]),
    "post_ops_append_sum": (_I, [_P, _F, ctypes.c_int32, _I]),
    "post_ops_append_binary": (_I, [_P, _I, _P]),
    "post_ops_destroy": (_I, [_P]),
    "reorder_primitive_desc_create": (_I, [_PP, _P, _P, _P, _P, _P]),
    # primitive descriptor constructors: (pd*, engine, ...)
    "convolution_forward_primitive_desc_create":
        (_I, [_PP, _P, _I, _I, _P, _P, _P, _P, _D, _D, _D, _D, _P]),
    "convolution_backward_data_primitive_desc_create":
        (_I, [_PP, _P, _I, _P, _P, _P, _D, _D, _D, _D, _P, _P]),
    "convolution_backward_weights_primitive_desc_create":
        (_I, [_PP, _P, _I, _P, _P, _P, _P, _D, _D, _D, _D, _P, _P]),
    "deconvolution_forward_primitive_desc_create":
        (_I, [_PP, _P, _I, _I, _P, _P, _P, _P, _D, _D, _D, _D, _P]),
    "deconvolution_backward_data_primitive_desc_create":
        (_I, [_PP, _P, _I, _P, _P, _P, _D, _D, _D, _D, _P, _P]),
    "deconvolution_backward_weights_primitive_desc_create":
        (_I, [_PP, _P, _I, _P, _P, _P, _P, _D, _D, _D, _D, _P, _P]),
    "pooling_forward_primitive_desc_create":
        (_I, [_PP, _P, _I, _I, _P, _P, _D, _D, _D, _D, _D, _P]),
    "pooling_backward_primitive_desc_create":
        (_I, [_PP, _P, _I, _P, _P, _D, _D, _D, _D, _D, _P, _P]),
    "batch_normalization_forward_primitive_desc_create":
        (_I, [_PP, _P, _I, _P, _P, _F, _U, _P]),
    "batch_normalization_backward_primitive_desc_create":
        (_I, [_PP, _P, _I, _P, _P, _P, _F, _U, _P, _P]),
    "eltwise_forward_primitive_desc_create": (_I, [_PP, _P, _I, _I, _P, _P, _F, _F, _P]),
    "eltwise_backward_primitive_desc_create": (_I, [_PP, _P, _I, _P, _P, _P, _F, _F, _P, _P]),
}  # fmt: skip


def _declare(lib: Any) -> None:
    for name, (restype, argtypes) in _SIGNATURES.items():
        fn = getattr(lib, "dnnl_" + name)
        fn.restype, fn.argtypes = restype, argtypes


def bind(name: str, argtypes: Sequence[Any], restype: Any = c_int) -> None:
    """Declare the ctypes signature of ``dnnl_<name>`` (for :func:`call` and :func:`create_pd`)."""
    _SIGNATURES[name] = (restype, list(argtypes))
    if _lib is not None:
        fn = getattr(_lib, "dnnl_" + name)
        fn.restype, fn.argtypes = restype, list(argtypes)


def _check(status: int, op: str, name: str) -> None:
    if status != 0:
        what = _STATUS_NAMES.get(status, f"status {status}")
        raise DnnlError(f"{op}: oneDNN dnnl_{name} failed ({what})")


def _require() -> Any:
    if _lib is None:
        ok, why = load()
        if not ok:
            raise DnnlError(f"oneDNN is not available: {why}")
    return _lib


def call(name: str, *args: Any, op: str = "oneDNN") -> None:
    """Call ``dnnl_<name>(*args)`` and raise :class:`DnnlError` naming ``op`` on failure."""
    _check(getattr(_require(), "dnnl_" + name)(*args), op, name)


def engine() -> c_void_p:
    """The CPU engine handle."""
    _require()
    return _engine


def stream() -> c_void_p:
    """The CPU stream handle."""
    _require()
    return _stream


def dims(values: Sequence[int]) -> Any:
    """A ``dnnl_dims_t`` holding ``values``."""
    return _Dims(*values)


# -- memory descriptors -----------------------------------------------------------------------


class MemoryDesc:
    """An owned ``dnnl_memory_desc_t`` (float32 unless told otherwise)."""

    __slots__ = ("handle",)

    def __init__(self, handle: c_void_p) -> None:
        self.handle = handle

    @classmethod
    def with_tag(cls, shape: Sequence[int], tag: int, dtype: int = C.f32) -> MemoryDesc:
        """A descriptor for ``shape`` in the layout named by ``tag`` (``C.format_tag_any`` too)."""
        h = c_void_p()
        call("memory_desc_create_with_tag", ctypes.byref(h), len(shape), _Dims(*shape), dtype,
             tag, op="memory_desc")  # fmt: skip
        return cls(h)

    @classmethod
    def with_strides(
        cls, shape: Sequence[int], strides: Sequence[int], dtype: int = C.f32
    ) -> MemoryDesc:
        """A plain descriptor for ``shape`` with ``strides`` counted in elements."""
        h = c_void_p()
        call("memory_desc_create_with_strides", ctypes.byref(h), len(shape), _Dims(*shape), dtype,
             _Dims(*strides), op="memory_desc")  # fmt: skip
        return cls(h)

    @classmethod
    def contiguous(cls, shape: Sequence[int]) -> MemoryDesc:
        """A plain C-contiguous (row-major) descriptor for ``shape``, of any number of axes."""
        strides, step = [], 1
        for n in reversed(shape):
            strides.append(step)
            step *= n
        return cls.with_strides(shape, strides[::-1])

    @classmethod
    def of(cls, array: np.ndarray) -> MemoryDesc:
        """The descriptor of a float32 NumPy array's own layout (its strides)."""
        item = array.itemsize
        return cls.with_strides(array.shape, [s // item for s in array.strides])

    @classmethod
    def clone(cls, handle: Any) -> MemoryDesc:
        """An owned copy of a descriptor owned by something else (a primitive descriptor)."""
        h = c_void_p()
        call("memory_desc_clone", ctypes.byref(h), handle, op="memory_desc")
        return cls(h)

    @property
    def ndims(self) -> int:
        n = c_int()
        call("memory_desc_query", self.handle, C.query_ndims_s32, ctypes.byref(n), op="query")
        return n.value

    @property
    def dims(self) -> tuple[int, ...]:
        p = _D()
        call("memory_desc_query", self.handle, C.query_dims, ctypes.byref(p), op="query")
        return tuple(p[i] for i in range(self.ndims))

    @property
    def strides(self) -> tuple[int, ...]:
        p = _D()
        call("memory_desc_query", self.handle, C.query_strides, ctypes.byref(p), op="query")
        return tuple(p[i] for i in range(self.ndims))

    @property
    def nbytes(self) -> int:
        """Bytes a buffer in this layout takes (blocked layouts are padded)."""
        return int(_lib.dnnl_memory_desc_get_size(self.handle))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MemoryDesc):
            return NotImplemented
        return bool(_lib.dnnl_memory_desc_equal(self.handle, other.handle))

    __hash__ = None  # type: ignore[assignment]

    def matches(self, array: np.ndarray) -> bool:
        """True when ``array`` (dense float32) is laid out exactly as this descriptor says."""
        return self == MemoryDesc.of(array)

    def __del__(self) -> None:
        if self.handle and _lib is not None:
            _lib.dnnl_memory_desc_destroy(self.handle)
            self.handle = None

    def __repr__(self) -> str:
        return f"MemoryDesc(dims={self.dims}, nbytes={self.nbytes})"


# -- attributes -------------------------------------------------------------------------------


SUM = -1  # a post-op "algorithm": ``(SUM, scale, 0.0)`` adds ``scale`` times what dst held before
# a post-op "algorithm": ``(BINARY_ADD, memory descriptor, 0.0)`` adds a second input of that
# descriptor (execution argument :func:`post_op_src` of the post-op's index)
BINARY_ADD = 0x1FFF0
_POST_OP_BASE = 32768  # DNNL_ARG_ATTR_MULTIPLE_POST_OP_BASE


def post_op_src(index: int) -> int:
    """The execution argument of the second input of binary post-op number ``index``."""
    return _POST_OP_BASE * (index + 1) | C.ARG_SRC_1


class Attr:
    """Primitive attributes: post-ops ``[(alg, alpha, beta), ...]`` (eltwise algorithms, or :data:`SUM`)
    and scratchpad mode."""

    __slots__ = ("handle",)

    def __init__(
        self, post_ops: Sequence[tuple[int, float, float]] = (), user_scratchpad: bool = False
    ) -> None:
        self.handle = c_void_p()
        call("primitive_attr_create", ctypes.byref(self.handle), op="attr")
        if user_scratchpad:
            call("primitive_attr_set_scratchpad_mode", self.handle, C.scratchpad_mode_user,
                 op="attr")  # fmt: skip
        if post_ops:
            po = c_void_p()
            call("post_ops_create", ctypes.byref(po), op="attr")
            try:
                for alg, alpha, beta in post_ops:
                    if alg == SUM:
                        call("post_ops_append_sum", po, alpha, 0, C.data_type_undef, op="attr")
                    elif alg == BINARY_ADD:
                        call("post_ops_append_binary", po, alg, alpha.handle, op="attr")
                    else:
                        call("post_ops_append_eltwise", po, alg, alpha, beta, op="attr")
                call("primitive_attr_set_post_ops", self.handle, po, op="attr")
            finally:
                _lib.dnnl_post_ops_destroy(po)

    def __del__(self) -> None:
        if self.handle and _lib is not None:
            _lib.dnnl_primitive_attr_destroy(self.handle)
            self.handle = None


# -- primitive descriptors and primitives -----------------------------------------------------


def create_pd(kind: str, *args: Any, op: str = "oneDNN") -> c_void_p:
    """``dnnl_<kind>_primitive_desc_create(&pd, engine, *args)``; the new descriptor's handle.

    ``args`` are passed as the C function takes them after the engine (``MemoryDesc``/``Attr``
    objects pass as their handles, ``None`` as ``NULL``). A status other than success (most
    often "unimplemented" for a combination the library does not cover) raises
    :class:`DnnlError` naming ``op``.
    """
    lib = _require()
    pd = c_void_p()
    cargs = [a.handle if isinstance(a, (MemoryDesc, Attr)) else a for a in args]
    name = f"{kind}_primitive_desc_create"
    _check(getattr(lib, "dnnl_" + name)(ctypes.byref(pd), _engine, *cargs), op, name)
    return pd


class Primitive:
    """A primitive built from a primitive descriptor (which it owns and keeps)."""

    __slots__ = ("pd", "handle", "name", "_mds", "_slots", "_own_lock")

    def __init__(self, pd: c_void_p, name: str = "oneDNN") -> None:
        self.pd = pd
        self.name = name
        self.handle = c_void_p()
        self._mds: dict[int, MemoryDesc] = {}
        self._slots: dict[tuple[int, ...], tuple[list[c_void_p], Any]] = {}
        self._own_lock = threading.Lock()
        try:
            call("primitive_create", ctypes.byref(self.handle), pd, op=name)
        except DnnlError:
            _lib.dnnl_primitive_desc_destroy(pd)
            self.pd = None
            raise

    def md(self, arg: int) -> MemoryDesc:
        """The memory descriptor of execution argument ``arg`` (e.g. ``C.ARG_DST``)."""
        md = self._mds.get(arg)
        if md is None:
            h = _lib.dnnl_primitive_desc_query_md(self.pd, C.query_exec_arg_md, arg)
            if not h:
                raise DnnlError(f"{self.name}: the primitive takes no argument {arg}")
            md = self._mds[arg] = MemoryDesc.clone(h)
        return md

    def has_arg(self, arg: int) -> bool:
        """True when the primitive takes (a non-empty) execution argument ``arg``."""
        h = _lib.dnnl_primitive_desc_query_md(self.pd, C.query_exec_arg_md, arg)
        return bool(h) and _lib.dnnl_memory_desc_get_size(h) > 0

    def impl(self) -> str:
        """The name of the implementation oneDNN picked (e.g. ``"brgconv:avx2"``)."""
        s = ctypes.c_char_p()
        call("primitive_desc_query", self.pd, C.query_impl_info_str, 0, ctypes.byref(s),
             op=self.name)  # fmt: skip
        return (s.value or b"").decode()

    def _slot(self, key: tuple[int, ...]) -> tuple[list[c_void_p], Any]:
        mems = []
        cargs = (_ExecArg * len(key))()
        for i, arg in enumerate(key):
            m = c_void_p()
            call("memory_create", ctypes.byref(m), self.md(arg).handle, _engine, None,
                 op=self.name)  # fmt: skip
            mems.append(m)
            cargs[i].arg, cargs[i].memory = arg, m
        slot = self._slots[key] = (mems, cargs)
        return slot

    def execute(self, args: Sequence[tuple[int, np.ndarray]], concurrent: bool = False) -> None:
        """Run the primitive on ``[(C.ARG_..., array), ...]`` (synchronously).

        Executions are serialised on the library's stream, unless ``concurrent``: then this one runs
        on the calling thread's own stream, beside executions of *other* primitives (see
        :func:`run_concurrently`); only executions of this same primitive wait for each other.
        """
        key = tuple(a for a, _ in args)
        stream = _thread_stream() if concurrent else _stream
        with self._own_lock if concurrent else _lock:
            slot = self._slots.get(key)
            if slot is None:
                with _lock:
                    slot = self._slot(key)
            mems, cargs = slot
            set_handle = _lib.dnnl_memory_set_data_handle
            for m, (_, array) in zip(mems, args):
                set_handle(m, address(array))
            status = _lib.dnnl_primitive_execute(self.handle, stream, len(key), cargs)
            if status == 0:
                status = _lib.dnnl_stream_wait(stream)
            # The memory objects keep pointing at these buffers, which may be freed later: they
            # are used only here, and every execution sets all of them first (a reset cost a
            # ctypes call per argument: ~1 us, 47 calls in a ResNet-20 forward pass).
        if status != 0:
            _check(status, self.name, "primitive_execute")

    def __del__(self) -> None:
        if _lib is None:
            return
        for mems, _ in self._slots.values():
            for m in mems:
                _lib.dnnl_memory_destroy(m)
        self._slots.clear()
        if self.handle:
            _lib.dnnl_primitive_destroy(self.handle)
            self.handle = None
        if self.pd:
            _lib.dnnl_primitive_desc_destroy(self.pd)
            self.pd = None


# -- the primitive cache and reorders ---------------------------------------------------------

_cache: OrderedDict[Hashable, Any] = OrderedDict()


def cached(key: Hashable, build: Callable[[], Any]) -> Any:
    """The object ``build()`` made for ``key``, built on first use (an LRU of primitives).

    Entries are kept per OpenMP thread count: oneDNN fixes a primitive's thread count when it
    creates it (its kernels then ask for exactly that many threads, whatever the runtime is set to
    later), so a primitive made for two threads would go on using two on a machine where the
    thread policy has dropped to one. Measured on LeNet-5 training while two other processes spun:
    11.4 ms per step with the two-thread primitives run at one thread, 7.2 ms with one-thread ones.
    """
    key = (_pending_threads, key)
    try:
        value = _cache[key]
    except KeyError:
        with _lock:
            value = _cache.get(key)
            if value is None:
                value = build()
                _cache[key] = value
                if len(_cache) > CACHE_CAPACITY:
                    _cache.popitem(last=False)
        return value
    try:
        _cache.move_to_end(key)
    except KeyError:  # evicted by another thread meanwhile: still a valid object
        pass
    return value


def cache_items() -> list[tuple[Hashable, Any]]:
    """``(key, object)`` of every cached entry, keys as given to :func:`cached` (for tests and tools)."""
    with _lock:
        return [(key[1], value) for key, value in _cache.items()]


def cached_or_none(key: Hashable, build: Callable[[], Any]) -> Any:
    """Like :func:`cached`, but a ``build`` that oneDNN refuses (:class:`DnnlError`) is remembered
    as unsupported and gives ``None``, so the caller falls back to the NumPy kernel at once."""

    def attempt() -> Any:
        try:
            return build()
        except DnnlError:
            return False

    return cached(key, attempt) or None


# -- channels-last arrays ----------------------------------------------------------------------
#
# A 4-D activation may be an (N, C, H, W) view of C-contiguous (N, H, W, C) memory: what the
# standalone convolution, batch-norm and pooling kernels write (oneDNN's nhwc kernels are as fast
# as its blocked ones, and NumPy's element-wise ops keep that layout), so that the layers of a
# model whose ``forward`` calls them one by one pass their activations on without reorders.


def channels_last(a: np.ndarray) -> np.ndarray | None:
    """The C-contiguous ``(N, H, W, C)`` array that the 4-D array ``a`` views as ``(N, C, H, W)``, or
    ``None`` when ``a`` is not laid out that way."""
    if a.ndim != 4:
        return None
    t = a.transpose(0, 2, 3, 1)
    return t if t.flags.c_contiguous else None


def strided_channels_last(a: np.ndarray) -> np.ndarray | None:
    """:func:`channels_last` of a 4-D array that is not also C-contiguous (a plain array whose
    channel or spatial extent is 1 lies both ways: it is taken as plain), else ``None``."""
    return None if a.ndim != 4 or a.flags.c_contiguous else channels_last(a)


def as_channels_last_memory(a: np.ndarray) -> np.ndarray:
    """The ``(N, H, W, C)`` memory of a float32 4-D array's values: its own when it is channels-last,
    else a channels-last copy (oneDNN's reorder)."""
    t = strided_channels_last(a)
    return t if t is not None else to_channels_last(np.ascontiguousarray(a)).transpose(0, 2, 3, 1)


# Arrays that oneDNN writes and reads: 64-byte aligned from this size on. glibc's malloc aligns to 16
# bytes, so a NumPy array starts 16, 32 or 48 bytes into a cache line three times in four, and
# oneDNN's AVX-512 kernels then split loads and stores over two lines. Measured (2 threads, buffers
# rotated in one process, median us) on 64x16x32x32 float32: a reorder from NCHW into the blocked
# layout 112 aligned, 166 with the NCHW source misaligned; from the blocked layout to NCHW 132, 198
# with the NCHW output misaligned; a convolution's weights pass writing its gradients, see
# conv._GRADIENT_ARGS. Below this size the extra call costs more than it saves.
ALIGNED_MIN_BYTES = 1 << 16


def empty(shape: int | Sequence[int], aligned: bool = False) -> np.ndarray:
    """A new C-contiguous float32 array for oneDNN to write, starting on a 64-byte boundary when it
    holds at least :data:`ALIGNED_MIN_BYTES` (always with ``aligned=True``)."""
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    if aligned or 4 * math.prod(shape) >= ALIGNED_MIN_BYTES:
        return aligned_empty(shape, np.float32)
    return np.empty(shape, np.float32)


def empty_channels_last(shape: Sequence[int]) -> np.ndarray:
    """A new float32 ``(N, C, H, W)`` array laid out channels-last (a view of ``(N, H, W, C)`` memory;
    aligned as :func:`empty`)."""
    n, c, h, w = shape
    return empty((n, h, w, c)).transpose(0, 3, 1, 2)


def channels_last_md(shape: Sequence[int]) -> MemoryDesc:
    """The descriptor of a channels-last ``(N, C, H, W)`` float32 array (cached per shape)."""
    return cached(("nhwc md", tuple(shape)), lambda: MemoryDesc.with_tag(shape, C.nhwc))


def contiguous(a: np.ndarray) -> np.ndarray:
    """``a`` as a C-contiguous array: ``a`` itself when it is one; a channels-last float32 array
    reordered by oneDNN (64x32x32x32: 0.4 ms, several times faster than NumPy's transposing copy);
    NumPy's copy of anything else."""
    if a.flags.c_contiguous:
        return a
    t = channels_last(a) if a.dtype == np.float32 and type(a) is np.ndarray else None
    if t is None:
        return np.ascontiguousarray(a)
    shape = tuple(a.shape)
    out = np.empty(shape, np.float32)
    to_plain = cached(("nhwc->nchw", shape), lambda: reorder(channels_last_md(shape), MemoryDesc.with_tag(shape, C.abcd)))
    to_plain.execute([(C.ARG_FROM, t), (C.ARG_TO, out)])
    return out


def same_layout(a: np.ndarray, ref: np.ndarray, copy: bool = True) -> np.ndarray | None:
    """``a`` laid out like ``ref`` (same shape): ``a`` itself when it already is; a reorder between the
    plain and the channels-last layout of a 4-D float32 array; with ``copy=True``, a copy into
    ``ref``'s layout of any other float32 array when ``ref`` is C-contiguous or channels-last (a
    broadcast gradient, the gradient of ``y.sum()``, or a transposed one: declining them sent a GELU
    backward to NumPy's erf, 16x slower than the copy and oneDNN); ``None`` otherwise."""
    if a.strides == ref.strides:
        return a
    if a.shape != ref.shape or a.dtype != np.float32 or type(a) is not np.ndarray:
        return None
    if not copy and not (a.ndim == 4 and (a.flags.c_contiguous or channels_last(a) is not None)):
        return None
    if ref.flags.c_contiguous:
        return contiguous(a)
    if ref.ndim != 4 or channels_last(ref) is None:
        return None
    if a.flags.c_contiguous:
        return to_channels_last(a)
    out = empty_channels_last(ref.shape)
    np.copyto(out, a)
    return out


def to_channels_last(a: np.ndarray) -> np.ndarray:
    """A C-contiguous 4-D float32 array's values in a new channels-last array (oneDNN's reorder)."""
    shape = tuple(a.shape)
    out = empty_channels_last(shape)
    to_nhwc = cached(("nchw->nhwc", shape), lambda: reorder(MemoryDesc.with_tag(shape, C.abcd), channels_last_md(shape)))
    to_nhwc.execute([(C.ARG_FROM, a), (C.ARG_TO, out.transpose(0, 2, 3, 1))])
    return out


def float32_parameter(p: Any, size: int, fill: float) -> Any:
    """A contiguous float32 per-channel parameter, or ``fill`` everywhere when ``p`` is ``None``."""
    return np.full(size, fill, np.float32) if p is None else np.ascontiguousarray(p, dtype=np.float32)


def clear_cache() -> None:
    """Forget every cached primitive."""
    with _lock:
        _cache.clear()


def reorder(src: MemoryDesc, dst: MemoryDesc, key: Hashable | None = None, accumulate: bool = False) -> Primitive:
    """A reorder primitive copying layout ``src`` into layout ``dst`` (cached when ``key`` given).

    With ``accumulate`` it adds into what ``dst`` holds (a sum post-op): ``dst += reorder(src)``.
    """

    def build() -> Primitive:
        # dnnl_reorder_primitive_desc_create takes an engine per side, not a leading one
        pd = c_void_p()
        attr = Attr([(SUM, 1.0, 0.0)]) if accumulate else None
        call("reorder_primitive_desc_create", ctypes.byref(pd), src.handle, _engine, dst.handle,
             _engine, attr.handle if attr is not None else None, op="reorder")  # fmt: skip
        return Primitive(pd, "reorder")

    _require()
    return build() if key is None else cached(("reorder", key, accumulate), build)


def to_layout(
    array: np.ndarray, src: MemoryDesc, dst: MemoryDesc, out: np.ndarray, key: Hashable
) -> np.ndarray:
    """Copy ``array`` (laid out as ``src``) into ``out`` laid out as ``dst``; return ``out``."""
    reorder(src, dst, key).execute([(C.ARG_FROM, array), (C.ARG_TO, out)])
    return out
