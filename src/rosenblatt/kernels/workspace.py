"""Scratch memory reused between kernel calls: the workspace (a per-thread LRU of arrays).

Kernels need large temporaries (im2col columns, padded inputs, layout copies). A fresh 100 MB
array costs tens of thousands of page faults each time it is touched; keeping the same memory
from one training step to the next avoids that storm.

glibc's ``malloc`` aligns NumPy's arrays to 16 bytes, so most start inside a 64-byte cache line,
and AVX-512 kernels then split loads and stores over two lines. The workspace's NumPy buffers
therefore start on a 64-byte boundary (:func:`aligned_empty`; what it saves is measured at
``rosenblatt.kernels.onednn.library.ALIGNED_MIN_BYTES``).
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from typing import Any

import numpy as np

from rosenblatt.kernels.memory import address

_WORKSPACE_MAX_BYTES = 512 * 2**20
_WORKSPACE_MAX_ENTRIES = 48


class _Workspace(threading.local):
    """Per-thread LRU cache of scratch arrays keyed by (purpose, shape, dtype, backend)."""

    def __init__(self) -> None:
        self.buffers: OrderedDict[tuple, Any] = OrderedDict()
        self.nbytes = 0


_workspace = _Workspace()


ALIGNMENT = 64  # bytes: one cache line, one AVX-512 register


def aligned_empty(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """A new C-contiguous NumPy array whose memory starts on a :data:`ALIGNMENT`-byte boundary (a
    view into a slightly larger byte buffer); its contents are undefined."""
    dtype = np.dtype(dtype)
    nbytes = dtype.itemsize * math.prod(shape)
    raw = np.empty(nbytes + ALIGNMENT, np.uint8)
    return np.ndarray(shape, dtype, raw, -address(raw) % ALIGNMENT)


def workspace(tag: str, shape: tuple[int, ...], dtype: Any, xp: Any = np) -> Any:
    """A scratch array of ``shape``/``dtype`` reused between calls; its contents are undefined.

    A fresh 100 MB array costs tens of thousands of page faults each time it is touched; reusing
    the same memory from one training step to the next avoids that. Callers must not let the
    array escape (return it, save it for backward): the next call with the same ``tag`` and
    shape gets the same memory.
    """
    key = (tag, shape, np.dtype(dtype).str, xp.__name__)
    buffers = _workspace.buffers
    buffer = buffers.get(key)
    if buffer is not None:
        buffers.move_to_end(key)
        return buffer
    buffer = aligned_empty(shape, dtype) if xp is np else xp.empty(shape, dtype=dtype)
    if buffer.nbytes > _WORKSPACE_MAX_BYTES // 2:
        return buffer  # too large to keep around
    buffers[key] = buffer
    _workspace.nbytes += buffer.nbytes
    while _workspace.nbytes > _WORKSPACE_MAX_BYTES or len(buffers) > _WORKSPACE_MAX_ENTRIES:
        _, old = buffers.popitem(last=False)
        _workspace.nbytes -= old.nbytes
    return buffer


def clear_workspace() -> None:
    """Release the scratch buffers that convolution and pooling keep between calls."""
    _workspace.buffers.clear()
    _workspace.nbytes = 0


def gemm_workspace(tag: str, rows: int, cols: int, dtype: Any, xp: Any = np) -> Any:
    """A ``(rows, cols)`` workspace matrix whose rows are padded by 64 elements.

    Column matrices are wide (``N*OH*OW`` columns). When a row is a power-of-two multiple of
    4 KiB long, every row maps to the same cache sets and BLAS's packing of the operand thrashes
    (measured: a third slower); a padded leading dimension avoids that. The result is a view.
    """
    buffer = workspace(tag, (rows, cols + 64), dtype, xp)
    return buffer[:, :cols]


__all__ = ["ALIGNMENT", "aligned_empty", "clear_workspace", "gemm_workspace", "workspace"]
