"""The process group: which rank this process is, how many there are, and raw collectives.

rosenblatt's data parallelism runs on MPI through ``mpi4py`` (the ``mpi`` extra). Launch N copies of
a script with ``mpiexec -n N python script.py``; each calls :func:`init` and learns its
:func:`rank` and the :func:`world_size`. Without ``mpi4py``, or when started without ``mpiexec``,
every function here describes a world of one process and every collective is a no-op, so the same
script runs unchanged on a laptop.

Only buffer-based MPI calls are used (``Allreduce``, ``Bcast`` on NumPy arrays): the lower-case
``mpi4py`` calls pickle Python objects, and rosenblatt never pickles anything.
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

from rosenblatt.backend import is_cupy_array

# Environment variables that MPI launchers set in every process they start (MPICH/Hydra and Intel
# MPI: PMI_*; Open MPI: OMPI_COMM_WORLD_*; PMIx-based launchers: PMIX_*). Reading them lets
# "auto" mode decide without importing mpi4py, whose import initialises MPI.
_SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MPI_LOCALNRANKS", "PMIX_SIZE")


class _State:
    comm: Any = None  # an mpi4py communicator once init() has found more than one process
    initialized = False


def launched_with_mpi() -> bool:
    """True when an MPI launcher started this process as one of several (read from the environment)."""
    for name in _SIZE_VARIABLES:
        value = os.environ.get(name)
        if value is not None:
            try:
                if int(value) > 1:
                    return True
            except ValueError:
                continue
    return False


def _import_mpi() -> Any:
    try:
        from mpi4py import MPI
    except ImportError:
        return None
    return MPI


def init(comm: Any = None) -> int:
    """Join the process group and return the world size.

    ``comm`` is an ``mpi4py`` communicator (``MPI.COMM_WORLD`` by default). Calling ``init`` again
    is harmless. Without ``mpi4py`` the world is this process alone (with a warning if an MPI
    launcher evidently started several processes, since they would then train independently).
    """
    if _State.initialized and comm is None:
        return world_size()
    mpi = _import_mpi()
    if mpi is None:
        if launched_with_mpi():
            warnings.warn("rosenblatt.distributed: launched under mpiexec but mpi4py is not installed; "
                          "each process will train alone (pip install 'rosenblatt[mpi]')", stacklevel=2)
        _State.comm = None
    else:
        comm = comm if comm is not None else mpi.COMM_WORLD
        _State.comm = comm if comm.Get_size() > 1 else None
    _State.initialized = True
    return world_size()


def is_initialized() -> bool:
    """True once :func:`init` has run (in one process or many)."""
    return _State.initialized


def is_distributed() -> bool:
    """True when :func:`init` found more than one process: collectives really communicate."""
    return _State.comm is not None


def _auto_init() -> None:
    # Started by mpiexec but init() not called yet: join now, so rank() is right from the start.
    if not _State.initialized and launched_with_mpi():
        init()


def rank() -> int:
    """This process's index, 0 to ``world_size() - 1`` (0 when not distributed). Under ``mpiexec``
    the first call joins the process group (:func:`init`) if nothing has yet."""
    _auto_init()
    return _State.comm.Get_rank() if _State.comm is not None else 0


def world_size() -> int:
    """The number of processes training together (1 when not distributed); joins the process
    group under ``mpiexec`` like :func:`rank`."""
    _auto_init()
    return _State.comm.Get_size() if _State.comm is not None else 1


def communicator() -> Any:
    """The ``mpi4py`` communicator in use, or ``None`` in a single process."""
    return _State.comm


def barrier() -> None:
    """Wait until every process has reached this point."""
    if _State.comm is not None:
        _State.comm.Barrier()


def _host(array: Any) -> np.ndarray:
    # The MPICH wheel is not CUDA-aware: GPU arrays travel through host memory.
    return array.get() if is_cupy_array(array) else np.ascontiguousarray(array)


def allreduce_array(array: Any, op: str = "sum") -> Any:
    """Reduce an array element-wise over all processes; every process gets the result.

    ``op`` is ``"sum"``, ``"mean"``, ``"max"`` or ``"min"``. Returns a new array on the input's
    device (the input itself, unchanged, when not distributed).
    """
    if op not in ("sum", "mean", "max", "min"):
        raise ValueError(f"allreduce_array: op must be 'sum', 'mean', 'max' or 'min', got {op!r}")
    if _State.comm is None:
        return array
    from mpi4py import MPI

    host = np.array(_host(array), copy=True)
    mpi_op = {"sum": MPI.SUM, "mean": MPI.SUM, "max": MPI.MAX, "min": MPI.MIN}[op]
    _State.comm.Allreduce(MPI.IN_PLACE, host, op=mpi_op)
    if op == "mean":
        host /= world_size()
    return _back_like(host, array)


def broadcast_array(array: Any, root: int = 0) -> Any:
    """Return ``root``'s copy of ``array`` on every process (same shape and dtype everywhere)."""
    if _State.comm is None:
        return array
    host = np.array(_host(array), copy=True)
    _State.comm.Bcast(host, root=root)
    return _back_like(host, array)


def _back_like(host: np.ndarray, like: Any) -> Any:
    if is_cupy_array(like):
        import cupy

        with cupy.cuda.Device(like.device.id):
            return cupy.asarray(host)
    return host


# --------------------------------------------------------------------------------------------
# Rank 0 does the talking and the writing
# --------------------------------------------------------------------------------------------

F = TypeVar("F", bound=Callable[..., Any])


def is_main_process() -> bool:
    """True on rank 0, the process that prints, logs and writes checkpoints."""
    return rank() == 0


def rank_zero_only(fn: F) -> F:
    """Decorator: the function runs on rank 0 only and returns ``None`` on the other ranks."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if rank() == 0:
            return fn(*args, **kwargs)
        return None

    return wrapper  # type: ignore[return-value]


def print_rank0(*args: Any, **kwargs: Any) -> None:
    """``print`` on rank 0 only, so N processes do not print every line N times."""
    if rank() == 0:
        print(*args, **kwargs)


def save_on_main(state_dict: Any, path: str | os.PathLike) -> None:
    """``rb.save(state_dict, path)`` on rank 0 only; the other ranks wait until the file exists."""
    if rank() == 0:
        from rosenblatt.serialization import save

        save(state_dict, path)
    barrier()
