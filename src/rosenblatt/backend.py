"""The array-backend seam: NumPy on the CPU, CuPy on a GPU, one code path for both.

Every op asks :func:`get_array_module` for ``xp`` from its inputs and then calls ``xp.exp``,
``xp.matmul``, ... CuPy is imported lazily, the first time a GPU is asked for, so importing
rosenblatt never fails (nor slows down) on a machine without it.

The hot array math itself lives in :mod:`rosenblatt.kernels`; :func:`kernels` and
:func:`set_kernels` name and choose the kernel set (``"onednn"`` or ``"numpy"``).
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

_cupy: ModuleType | None = None
_cupy_checked = False


def cupy_module() -> ModuleType | None:
    """Return the ``cupy`` module if it is installed and a GPU is usable, else ``None``."""
    global _cupy, _cupy_checked
    if not _cupy_checked:
        _cupy_checked = True
        try:
            import cupy

            if cupy.cuda.runtime.getDeviceCount() > 0:
                _cupy = cupy
        except Exception:  # no cupy, no driver, or no device: the CPU it is
            _cupy = None
    return _cupy


def is_cupy_array(array: Any) -> bool:
    """True when ``array`` is a CuPy ndarray (checked without importing CuPy)."""
    return type(array).__module__.startswith("cupy")


def get_array_module(*arrays: Any) -> ModuleType:
    """Return ``numpy`` or ``cupy``: the module that owns the first array-like argument."""
    for array in arrays:
        if type(array) is np.ndarray:
            return np
        if is_cupy_array(array):
            return cupy_module() or np
    return np


def kernels() -> str:
    """The active kernel set and why: ``"onednn (...)"`` or ``"numpy (...)"``.

    ``"onednn"`` runs native CPU kernels from Intel's oneDNN (the ``fast`` extra); ``"numpy"``
    runs the NumPy kernels (CuPy on a GPU). Decided on first use from ``ROSENBLATT_KERNELS`` or
    :func:`set_kernels`.
    """
    from rosenblatt import kernels as _kernels

    return _kernels.kernels()


def set_kernels(name: str = "auto") -> str:
    """Choose the kernel set: ``"auto"`` (oneDNN when it loads, else NumPy), ``"onednn"`` or ``"numpy"``.

    Returns the name of the active set. ``"onednn"`` without a loadable library raises
    ``RuntimeError`` saying why; an unknown name raises ``ValueError``.
    """
    from rosenblatt import kernels as _kernels

    return _kernels.set_kernels(name)


class Device:
    """A compute device: ``Device("cpu")``, ``Device("cuda")`` or ``Device("cuda:1")``."""

    __slots__ = ("type", "index")

    def __init__(self, spec: str | Device = "cpu") -> None:
        if isinstance(spec, Device):
            self.type, self.index = spec.type, spec.index
            return
        if not isinstance(spec, str):
            raise TypeError(f"device: expected a string like 'cpu' or 'cuda:0', got {spec!r}")
        kind, _, index = spec.partition(":")
        if kind not in ("cpu", "cuda"):
            raise ValueError(f"device: expected 'cpu', 'cuda' or 'cuda:N', got {spec!r}")
        if kind == "cpu" and index:
            raise ValueError(f"device: 'cpu' takes no index, got {spec!r}")
        self.type = kind
        self.index = int(index) if index else (0 if kind == "cuda" else None)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str):
            other = Device(other)
        return isinstance(other, Device) and (self.type, self.index) == (other.type, other.index)

    def __hash__(self) -> int:
        return hash((self.type, self.index))

    def __repr__(self) -> str:
        return f"device(type='{self.type}'" + (f", index={self.index})" if self.index is not None else ")")

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"


def device(spec: str | Device = "cpu") -> Device:
    """Build a :class:`Device` from ``"cpu"``, ``"cuda"`` or ``"cuda:N"``."""
    return Device(spec)


def device_of(array: Any) -> Device:
    """The device an array lives on."""
    if is_cupy_array(array):
        return Device(f"cuda:{array.device.id}")
    return Device("cpu")


def to_device(array: Any, dev: Device) -> Any:
    """Copy ``array`` to ``dev`` (no copy when it is already there)."""
    if dev.type == "cpu":
        return array.get() if is_cupy_array(array) else array
    cp = cupy_module()
    if cp is None:
        raise RuntimeError(
            "device 'cuda' requested, but CuPy with a usable GPU is not available "
            "(install the extra: pip install 'rosenblatt[gpu]')"
        )
    with cp.cuda.Device(dev.index or 0):
        return cp.asarray(array)


class cuda:  # noqa: N801 - mirrors torch.cuda
    """``rb.cuda.is_available()`` and ``rb.cuda.device_count()``, as in PyTorch."""

    @staticmethod
    def is_available() -> bool:
        """True when CuPy is installed and sees at least one GPU."""
        return cupy_module() is not None

    @staticmethod
    def device_count() -> int:
        """Number of GPUs CuPy sees (0 without CuPy)."""
        cp = cupy_module()
        return int(cp.cuda.runtime.getDeviceCount()) if cp is not None else 0
