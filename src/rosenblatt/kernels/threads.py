"""One thread policy for every pool that computes for rosenblatt.

Three thread pools can run a training step: NumPy's BLAS (OpenBLAS in the NumPy wheels: matrix
products), oneDNN's OpenMP team (the ``onednn`` kernel set) and the optimiser's block threads
(:mod:`rosenblatt.kernels.optim`). Left alone they disagree on how many threads to start, and
OpenBLAS keeps idle threads spinning for about a tenth of a second after each product: on a busy
machine they take the cores away from the processes (ours included) that have work.

The policy, applied when rosenblatt first computes on the CPU and again by :func:`set_num_threads`:

- **One number.** Every pool gets the same thread count: ``rb.set_num_threads(n)``, else the
  environment (``OMP_NUM_THREADS``, then ``OPENBLAS_NUM_THREADS``), else the number of cores this
  process may run on.
- **Short waiting.** OpenBLAS's idle threads spin for at most ``SPIN_CYCLES`` (a few hundred
  microseconds) before they sleep, instead of 2**28 cycles; oneDNN's OpenMP runtime is loaded with
  a short spin count (``library.SPIN_COUNT``). Consecutive products of one step still find the
  threads awake, and a busy machine does not lose cores to idle spinning.
- **Yield to a busy machine** (unless ``ROSENBLATT_ADAPTIVE_THREADS=0``, and only while no count
  was fixed with ``rb.set_num_threads``). At most every ``LOAD_INTERVAL`` seconds (checked from
  ``backward``, a few microseconds) the share of the machine that *other* processes use is read
  from ``/proc/stat`` over ``LOAD_WINDOW`` seconds of this process's computation. When they keep
  the cores busy, the pools drop to the cores left over (at least one): threads that wait for a
  descheduled partner only slow everyone down. When the machine quietens, the configured count
  comes back.

OpenBLAS is controlled at run time through ``ctypes`` on the library NumPy has already loaded
(found in ``/proc/self/maps``), so nothing is imported or loaded for it. With another BLAS (MKL,
Accelerate) the BLAS part of the policy is skipped and :func:`blas_info` says so.
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

# Cycles an idle OpenBLAS thread spins before it sleeps, as the power of two OpenBLAS takes
# (its default is 28: about 0.1 s at 2.5 GHz). 2**20 cycles is about 0.4 ms: long enough to bridge
# the gaps between the products of one step, short enough not to matter on a busy machine.
SPIN_CYCLES_LOG2 = 20
# Seconds between two looks at the machine's load, and how long one look lasts.
LOAD_INTERVAL = 0.5
LOAD_WINDOW = 0.1
# A window in which two calls of tick() lay further apart than this is dropped: this process paused
# in between (between two bursts of work, say), and what ran then was not competing with it. So
# the load is read only while backward passes come at least this often (steps up to ~50 ms).
MAX_TICK_GAP = 0.05

_lock = threading.Lock()
_requested: int | None = None   # set_num_threads(n), or None: from the environment / the cores
_effective: int | None = None   # what the pools run with now (lower than requested on a busy machine)
_applied = False                # the policy has been applied to the pools once
# On unless ROSENBLATT_ADAPTIVE_THREADS=0, and only while no count was set with set_num_threads:
# a count that follows the load may change the last bits of results (sums split differently), so
# a count the user chose stays fixed.
_adaptive = os.environ.get("ROSENBLATT_ADAPTIVE_THREADS", "1") != "0"
_listeners: list[Callable[[int], None]] = []


# -- the configured count ----------------------------------------------------------------------


def _cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _from_environment() -> int | None:
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        value = os.environ.get(var, "").split(",")[0].strip()
        if value:
            try:
                return max(1, int(value))
            except ValueError:
                continue
    return None


def configured_threads() -> int:
    """The thread count the pools run with on a quiet machine (``rb.get_num_threads()``)."""
    if _requested is not None:
        return _requested
    return _from_environment() or _cores()


def get_num_threads() -> int:
    """The number of threads rosenblatt's kernels use (``torch.get_num_threads``'s counterpart)."""
    return configured_threads()


def set_num_threads(n: int) -> None:
    """Use ``n`` threads in every pool: BLAS products, oneDNN kernels and optimiser updates.

    Raises ``ValueError`` unless ``n`` is a positive integer.
    """
    global _requested
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"set_num_threads: expected a positive integer, got {n!r}")
    with _lock:
        _requested = n
    _apply(n)


def effective_threads() -> int:
    """The threads the pools use right now (fewer than configured while the machine is busy)."""
    ensure_applied()
    return _effective if _effective is not None else configured_threads()


# -- the worker threads ---------------------------------------------------------------------------

_workers: Any = None  # a ThreadPoolExecutor, grown on demand
_workers_size = 0
_workers_lock = threading.Lock()


def run_at_once(tasks: list[Callable[[], Any]]) -> None:
    """Run ``tasks`` at the same time: the first on the calling thread, each other one on a worker
    thread of one process-wide pool (the optimisers' shares of an update, the parts of a recurrent
    layer's batch). Returns when every task is done, then raises the first exception a task
    raised: no task may still be writing into its caller's arrays when this returns. A task must
    not call this itself (it would wait for workers that may all be busy with its siblings)."""
    global _workers, _workers_size
    from concurrent.futures import ThreadPoolExecutor

    if len(tasks) > 1 and _workers_size < len(tasks) - 1:
        with _workers_lock:
            if _workers_size < len(tasks) - 1:
                old = _workers
                _workers = ThreadPoolExecutor(len(tasks) - 1, thread_name_prefix="rosenblatt")
                _workers_size = len(tasks) - 1
                if old is not None:
                    old.shutdown(wait=False)
    futures = [_workers.submit(task) for task in tasks[1:]]
    error = None
    try:
        tasks[0]()
    except BaseException as exc:  # the workers still hold the caller's buffers: wait for them first
        error = exc
    for future in futures:
        exc = future.exception()
        error = error or exc
    if error is not None:
        raise error


def _forget_workers_after_fork() -> None:
    # A forked child has none of the parent's threads: it starts its own when it needs them.
    global _workers, _workers_size, _workers_lock
    _workers, _workers_size, _workers_lock = None, 0, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_workers_after_fork)


def on_change(listener: Callable[[int], None]) -> None:
    """Call ``listener(n)`` whenever the pools' thread count changes (used by the oneDNN library)."""
    _listeners.append(listener)


def _apply(n: int) -> None:
    global _effective, _applied
    with _lock:
        first, _applied = not _applied, True
        if n == _effective and not first:
            return
        _effective = n
    blas = _openblas()
    if blas is not None:
        if first:
            # also when set_num_threads comes before any computation: OpenBLAS's default spin
            # (2**28 cycles) after each product slowed a LeNet-5 step 12x next to oneDNN's threads
            blas.shorten_spinning()
        blas.set_num_threads(n)
    library = sys.modules.get("rosenblatt.kernels.onednn.library")
    if library is not None and hasattr(library, "set_num_threads"):
        try:
            library.set_num_threads(n)  # a no-op until the library is loaded
        except Exception:  # noqa: BLE001 - a failing native library must not break the NumPy path
            pass
    for listener in list(_listeners):
        listener(n)


def ensure_applied() -> None:
    """Apply the policy once (first CPU computation): thread counts and OpenBLAS's idle spinning."""
    if not _applied:
        _apply(configured_threads())


# -- OpenBLAS through ctypes ------------------------------------------------------------------


class _OpenBLAS:
    """The OpenBLAS that NumPy loaded: thread count and idle spinning."""

    def __init__(self, path: str, lib: ctypes.CDLL, prefix: str, suffix: str) -> None:
        self.path = path
        self.lib = lib
        self.prefix, self.suffix = prefix, suffix
        self._set = getattr(lib, f"{prefix}openblas_set_num_threads{suffix}")
        self._set.argtypes, self._set.restype = [ctypes.c_int], None
        self._get = getattr(lib, f"{prefix}openblas_get_num_threads{suffix}")
        self._get.argtypes, self._get.restype = [], ctypes.c_int
        config = getattr(lib, f"{prefix}openblas_get_config{suffix}", None)
        if config is not None:
            config.restype = ctypes.c_char_p
        self.config = config().decode(errors="replace").strip() if config is not None else "OpenBLAS"
        self.spinning_shortened = False

    def set_num_threads(self, n: int) -> None:
        self._set(int(n))

    def get_num_threads(self) -> int:
        return int(self._get())

    def shorten_spinning(self) -> None:
        """Restart OpenBLAS's thread server with a short spin before idle threads sleep.

        OpenBLAS reads ``OPENBLAS_THREAD_TIMEOUT`` when it starts its threads; the variable is set
        (unless the user set it), re-read, and the server restarted, all before any product of
        ours runs. A library without these entry points keeps its default.
        """
        lib = self.lib
        try:
            read_env = lib.openblas_read_env
            shutdown = lib.blas_thread_shutdown_
        except AttributeError:
            return
        os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", str(SPIN_CYCLES_LOG2))
        read_env.restype = None
        shutdown.restype = ctypes.c_int
        read_env()
        shutdown()  # the threads start again, with the new timeout, on the next threaded product
        self.spinning_shortened = True


_blas: _OpenBLAS | None = None
_blas_checked = False
_blas_reason = ""


def _openblas() -> _OpenBLAS | None:
    """NumPy's OpenBLAS, or None (another BLAS, or not on Linux)."""
    global _blas, _blas_checked, _blas_reason
    if _blas_checked:
        return _blas
    _blas_checked = True
    import numpy as np  # noqa: F401 - NumPy loads its BLAS; we only look it up

    paths = []
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.rsplit(" ", 1)[-1].strip()
                name = os.path.basename(path).lower()
                if "openblas" in name and ".so" in name and path not in paths:
                    paths.append(path)
    except OSError:
        _blas_reason = "no /proc/self/maps: BLAS threads left to the library"
        return None
    for path in paths:
        try:
            lib = ctypes.CDLL(path, mode=ctypes.RTLD_LOCAL)
        except OSError:
            continue
        for prefix, suffix in (("scipy_", "64_"), ("scipy_", ""), ("", "64_"), ("", "")):
            try:
                _blas = _OpenBLAS(path, lib, prefix, suffix)
            except AttributeError:
                continue
            return _blas
    _blas_reason = "NumPy's BLAS is not OpenBLAS: its threads are left to the library"
    return None


def blas_info() -> str:
    """What the policy controls of NumPy's BLAS, for ``rosenblatt info``."""
    blas = _openblas()
    if blas is None:
        return _blas_reason or "unknown BLAS"
    return f"{blas.config.split()[0]} {blas.config.split()[1] if len(blas.config.split()) > 1 else ''}".strip()


def blas_threads() -> int | None:
    """The thread count NumPy's OpenBLAS reports now (None: not OpenBLAS)."""
    blas = _openblas()
    return blas.get_num_threads() if blas is not None else None


# -- the busy-machine check --------------------------------------------------------------------

_last_check = 0.0
_last_tick = 0.0  # the latest tick() while a window is open
_window_gap = 0.0  # the longest time between two tick() calls in the open window
_last_sample: tuple[float, float, float] | None = None  # (wall, machine busy jiffies, our cpu seconds)
_window: tuple[float, float, float] | None = None  # the open load window's first sample, as above
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _machine_busy_seconds() -> float | None:
    try:
        with open("/proc/stat", "rb") as f:
            fields = f.readline().split()
    except OSError:
        return None
    # user nice system idle iowait irq softirq steal ...: busy = all but idle and iowait
    values = [int(v) for v in fields[1:9]]
    return (sum(values) - values[3] - values[4]) / _TICKS


def other_load() -> float | None:
    """Cores kept busy by other processes since the previous call (None on the first, or without /proc)."""
    global _last_sample
    busy = _machine_busy_seconds()
    if busy is None:
        return None
    t = os.times()
    sample = (time.monotonic(), busy, t.user + t.system)
    previous, _last_sample = _last_sample, sample
    if previous is None or sample[0] - previous[0] <= 0:
        return None
    return max(0.0, ((sample[1] - previous[1]) - (sample[2] - previous[2])) / (sample[0] - previous[0]))


def _window_load(start: tuple[float, float, float]) -> float | None:
    busy = _machine_busy_seconds()
    if busy is None:
        return None
    t = os.times()
    wall = time.monotonic() - start[0]
    if wall <= 0:
        return None
    return max(0.0, ((busy - start[1]) - (t.user + t.system - start[2])) / wall)


def tick() -> None:
    """Cheap hook for the hot path (each ``backward``): apply the policy, adapt to the load now and then.

    Every ``LOAD_INTERVAL`` seconds a window of ``LOAD_WINDOW`` seconds opens; the load other
    processes put on the machine is read over that window, which lies inside this process's
    computation (a window that an idle pause stretched to several times its length is dropped:
    what ran while this process waited says nothing about the cores it will share; so is one in
    which two consecutive calls lay more than ``MAX_TICK_GAP`` apart: a pause between two bursts of
    work, while another process may have had the machine to itself).
    """
    global _last_check, _window, _window_gap, _last_tick
    if not _applied:
        ensure_applied()
    if not _adaptive or _requested is not None:
        return
    now = time.monotonic()
    if _window is None:
        if now - _last_check < LOAD_INTERVAL:
            return
        busy = _machine_busy_seconds()
        if busy is not None:
            t = os.times()
            _window = (now, busy, t.user + t.system)
            _window_gap, _last_tick = 0.0, now
        _last_check = now
        return
    gap, _last_tick = now - _last_tick, now
    if gap > _window_gap:
        _window_gap = gap
    elapsed = now - _window[0]
    if elapsed < LOAD_WINDOW:
        return
    start, _window = _window, None
    _last_check = now
    if elapsed > 4 * LOAD_WINDOW or _window_gap > MAX_TICK_GAP:
        return
    load = _window_load(start)
    if load is None:
        return
    wanted = configured_threads()
    n = max(1, min(wanted, int(_cores() - load + 0.5)))
    if n != _effective:
        _apply(n)


def policy_info() -> dict[str, Any]:
    """The policy's state, for ``rosenblatt info`` and the benchmark records."""
    ensure_applied()
    blas = _openblas()
    return {
        "threads": configured_threads(),
        "effective": effective_threads(),
        "cores": _cores(),
        "blas": blas_info(),
        "blas_threads": blas_threads(),
        "blas_spin_shortened": bool(blas and blas.spinning_shortened),
        "adaptive": _adaptive and _requested is None,
    }
