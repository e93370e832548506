"""How the C allocator hands memory to NumPy's arrays: keep freed memory for the next step.

A training step allocates and frees the same few dozen arrays of one to a few megabytes each
(activations, gradients, temporaries). glibc's ``malloc`` serves such blocks with ``mmap`` and
gives them back to the kernel when they are freed, or, once its adaptive threshold has grown,
trims the top of the heap as soon as more than twice that threshold is free. Either way the next
step touches fresh pages: a Transformer encoder step (d_model 128, batch 32 x 64 tokens) took
about 15,000 page faults, a seventh of its time on one thread.

The policy, applied once when rosenblatt is imported (Linux with glibc only):

- blocks below ``MMAP_THRESHOLD`` bytes come from the heap (``M_MMAP_THRESHOLD``; larger ones,
  rare and reused through :mod:`rosenblatt.kernels.workspace`, are still mapped and unmapped);
- the heap keeps up to ``TRIM_THRESHOLD`` bytes of free memory at its top instead of returning
  it (``M_TRIM_THRESHOLD``).

The process then holds on to the memory of its largest step, as PyTorch's allocator does.
Setting ``ROSENBLATT_MALLOC_POLICY=0``, or any of glibc's own ``MALLOC_MMAP_THRESHOLD_``,
``MALLOC_TRIM_THRESHOLD_`` or ``GLIBC_TUNABLES``, leaves the allocator as it is.

:func:`address` gives the C libraries that rosenblatt calls through ``ctypes`` the address of an
array's memory.
"""

from __future__ import annotations

import ctypes
import os
import sys
from typing import Any

# glibc's largest mmap threshold on 64-bit systems (setting more is refused): 32 MiB.
MMAP_THRESHOLD = 32 * 2**20
TRIM_THRESHOLD = 512 * 2**20
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")

_applied: bool | None = None  # None: not tried; False: skipped or refused; True: in effect


def apply() -> bool:
    """Apply the policy (once); True when it is in effect."""
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if (not sys.platform.startswith("linux") or os.environ.get("ROSENBLATT_MALLOC_POLICY", "1") == "0"
            or any(os.environ.get(var) for var in _USER_SETTINGS)):
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _applied = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _applied


def applied() -> bool:
    """True when the allocator policy is in effect (for ``rosenblatt info``)."""
    return bool(_applied)


__all__ = ["MMAP_THRESHOLD", "TRIM_THRESHOLD", "applied", "apply"]


_char_from_buffer, _addressof = ctypes.c_char.from_buffer, ctypes.addressof


def address(a: Any) -> int:
    """The address of NumPy array ``a``'s first element, for a C library called through ``ctypes``.

    ``a.ctypes.data`` builds a ctypes helper object (0.9 us a call, and a oneDNN primitive takes
    three or more arrays); a writable C-contiguous array's buffer gives the address in 0.3 us.
    Other arrays (read-only, strided, empty) take the general route."""
    if a.flags.c_contiguous:
        try:
            return _addressof(_char_from_buffer(a))
        except (TypeError, ValueError, BufferError):
            pass
    return a.ctypes.data
