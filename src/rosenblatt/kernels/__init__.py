"""The kernel floor: array-in, array-out implementations of the hot operations.

Layers and optimisers (``rosenblatt.nn.functional``, ``rosenblatt.optim``) describe *what* to
compute as differentiable Functions; the arrays are crunched by kernels in this package, one file
per family (``conv``, ``pooling``, ``normalization``, ``recurrent``, ``optim``, ...). Two kernel
sets exist:

- ``"numpy"``: the NumPy kernels in this package (CuPy on a GPU, same code). They are the
  reference and the fallback, and they always work.
- ``"onednn"``: native CPU kernels from Intel's oneDNN library (the optional ``fast`` extra,
  ``pip install 'rosenblatt[fast]'``), called through ``ctypes`` on its C API
  (:mod:`rosenblatt.kernels.onednn`).

Which set runs is decided once, lazily, on the first kernel call (so ``import rosenblatt`` never
loads a native library): ``ROSENBLATT_KERNELS`` (``auto``, ``onednn`` or ``numpy``) or
:func:`set_kernels` ask for a set; ``auto`` takes oneDNN when it loads and NumPy otherwise.
:func:`kernels` names the active set and why. A oneDNN kernel may still decline a call it does
not cover (float64 gradient checks, CuPy arrays, an unsupported parameter); the NumPy kernel then
runs, so results never depend on the set beyond float32 rounding.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

KERNEL_SETS = ("auto", "onednn", "numpy")

_requested: str = "auto"
_active: str | None = None  # resolved lazily: "onednn" or "numpy"
_reason: str = ""


def _validate(name: Any, source: str) -> str:
    if not isinstance(name, str) or name.lower() not in KERNEL_SETS:
        raise ValueError(f"{source}: expected one of {', '.join(KERNEL_SETS)}, got {name!r}")
    return name.lower()


def set_kernels(name: str = "auto") -> str:
    """Choose the kernel set: ``"auto"`` (oneDNN when available), ``"onednn"`` or ``"numpy"``.

    Asking for ``"onednn"`` when the library cannot be loaded raises ``RuntimeError`` with the
    reason. Returns the name of the set that is now active.
    """
    global _requested, _active, _reason
    _requested = _validate(name, "set_kernels")
    _active, _reason = None, ""
    _resolve()
    return _active  # type: ignore[return-value]


def _resolve() -> str:
    """Decide the active kernel set (once) and remember why."""
    global _active, _reason
    if _active is not None:
        return _active
    requested = _requested
    if requested == "numpy":
        _active, _reason = "numpy", "requested"
        return _active
    from rosenblatt.kernels.onednn import library

    ok, why = library.load()
    if ok:
        _active, _reason = "onednn", why
        if hasattr(library, "set_num_threads"):  # one thread count for every pool
            from rosenblatt.kernels import threads

            library.set_num_threads(threads.effective_threads())
    elif requested == "onednn":
        raise RuntimeError(f"kernels: 'onednn' requested but unavailable: {why}")
    else:
        _active, _reason = "numpy", why
    return _active


def active() -> str:
    """The active kernel set's name, ``"onednn"`` or ``"numpy"`` (resolving it on first use)."""
    return _active if _active is not None else _resolve()


def kernels() -> str:
    """The active kernel set and why, e.g. ``"onednn (oneDNN 3.2.0, ...)"`` or ``"numpy (...)"``."""
    name = active()
    return f"{name} ({_reason})" if _reason else name


def use_onednn(*arrays: Any) -> bool:
    """True when the oneDNN kernels are active and every array is a float32 NumPy array.

    The cheap first test every dispatch makes; a oneDNN kernel may still decline the call.
    """
    if (_active if _active is not None else _resolve()) != "onednn":
        return False
    for a in arrays:
        if a is not None and (type(a) is not np.ndarray or a.dtype != np.float32):
            return False
    return True


def _init_from_environment() -> None:
    global _requested
    value = os.environ.get("ROSENBLATT_KERNELS")
    if value:
        _requested = _validate(value, "ROSENBLATT_KERNELS")


_init_from_environment()
