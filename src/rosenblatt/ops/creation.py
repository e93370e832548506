"""Tensor creation: zeros, ones, full, arange, linspace, eye and the random constructors."""

from __future__ import annotations

from typing import Any

import numpy as np

from rosenblatt import random as _random
from rosenblatt.backend import Device, to_device
from rosenblatt.core import Tensor, as_array, get_default_dtype
from rosenblatt.ops._util import shape_args


def _finish(array: Any, device: Any, requires_grad: bool) -> Tensor:
    if device is not None and Device(device).type != "cpu":
        array = to_device(array, Device(device))
    return Tensor(array, requires_grad=requires_grad)


def _dtype(dtype: Any) -> np.dtype:
    return np.dtype(dtype) if dtype is not None else get_default_dtype()


def tensor(data: Any, dtype: Any = None, requires_grad: bool = False, device: Any = None) -> Tensor:
    """A new tensor holding a copy of ``data`` (lists, scalars, arrays or tensors)."""
    return _finish(as_array(data, dtype, copy=True), device, requires_grad)


def as_tensor(data: Any, dtype: Any = None, device: Any = None) -> Tensor:
    """A tensor that shares ``data``'s memory when it can (no copy for a matching ndarray)."""
    if isinstance(data, Tensor) and dtype is None and device is None:
        return data
    return _finish(as_array(data, dtype), device, False)


def from_numpy(array: np.ndarray) -> Tensor:
    """A tensor sharing the memory of a NumPy array."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy: expected a numpy.ndarray, got {type(array).__name__}")
    return Tensor(array)


def zeros(*shape: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """A tensor of zeros."""
    return _finish(np.zeros(shape_args(shape), dtype=_dtype(dtype)), device, requires_grad)


def ones(*shape: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """A tensor of ones."""
    return _finish(np.ones(shape_args(shape), dtype=_dtype(dtype)), device, requires_grad)


def empty(*shape: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """An uninitialised tensor."""
    return _finish(np.empty(shape_args(shape), dtype=_dtype(dtype)), device, requires_grad)


def full(shape: Any, fill_value: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """A tensor filled with ``fill_value``."""
    if dtype is None and isinstance(fill_value, bool):
        dtype = np.bool_
    elif dtype is None and isinstance(fill_value, int):
        dtype = np.int64
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    return _finish(np.full(shape, fill_value, dtype=_dtype(dtype)), device, requires_grad)


def _like(x: Any, dtype: Any) -> tuple[tuple[int, ...], Any, Any]:
    data = x.data if isinstance(x, Tensor) else np.asarray(x)
    device = x.device if isinstance(x, Tensor) else None
    return data.shape, (dtype if dtype is not None else data.dtype), device


def zeros_like(x: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """Zeros with the shape, dtype and device of ``x``."""
    shape, dtype, device = _like(x, dtype)
    return zeros(shape, dtype=dtype, device=device, requires_grad=requires_grad)


def ones_like(x: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """Ones with the shape, dtype and device of ``x``."""
    shape, dtype, device = _like(x, dtype)
    return ones(shape, dtype=dtype, device=device, requires_grad=requires_grad)


def full_like(x: Any, fill_value: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """``fill_value`` with the shape, dtype and device of ``x``."""
    shape, dtype, device = _like(x, dtype)
    return full(shape, fill_value, dtype=dtype, device=device, requires_grad=requires_grad)


def arange(start: float, end: float | None = None, step: float = 1, dtype: Any = None,
           device: Any = None, requires_grad: bool = False) -> Tensor:
    """Evenly spaced values in ``[start, end)``; int64 for integer arguments (as PyTorch)."""
    if end is None:
        start, end = 0, start
    if dtype is None:
        integral = all(isinstance(v, (int, np.integer)) for v in (start, end, step))
        dtype = np.int64 if integral else get_default_dtype()
    return _finish(np.arange(start, end, step, dtype=np.dtype(dtype)), device, requires_grad)


def linspace(start: float, end: float, steps: int, dtype: Any = None, device: Any = None,
             requires_grad: bool = False) -> Tensor:
    """``steps`` evenly spaced values from ``start`` to ``end`` inclusive."""
    return _finish(np.linspace(start, end, steps, dtype=_dtype(dtype)), device, requires_grad)


def eye(n: int, m: int | None = None, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """The identity matrix (``n`` x ``m``)."""
    return _finish(np.eye(n, m, dtype=_dtype(dtype)), device, requires_grad)


def rand(*shape: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """Uniform samples in [0, 1) from rosenblatt's seeded generator."""
    return _finish(_random.uniform_array(0.0, 1.0, shape_args(shape), dtype), device, requires_grad)


def randn(*shape: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """Standard normal samples from rosenblatt's seeded generator."""
    return _finish(_random.normal_array(0.0, 1.0, shape_args(shape), dtype), device, requires_grad)


def uniform(low: float = 0.0, high: float = 1.0, size: Any = (), dtype: Any = None, device: Any = None,
            requires_grad: bool = False) -> Tensor:
    """Samples from U(low, high)."""
    size = (size,) if isinstance(size, int) else tuple(size)
    return _finish(_random.uniform_array(low, high, size, dtype), device, requires_grad)


def normal(mean: float = 0.0, std: float = 1.0, size: Any = (), dtype: Any = None, device: Any = None,
           requires_grad: bool = False) -> Tensor:
    """Samples from N(mean, std²)."""
    size = (size,) if isinstance(size, int) else tuple(size)
    return _finish(_random.normal_array(mean, std, size, dtype), device, requires_grad)


def randint(low: int, high: int | None = None, size: Any = (), dtype: Any = np.int64, device: Any = None) -> Tensor:
    """Random integers in ``[low, high)`` (``randint(high, size)`` also works, as in PyTorch)."""
    if high is None or isinstance(high, (tuple, list)):
        low, high, size = 0, low, (high if high is not None else size)
    size = (size,) if isinstance(size, int) else tuple(size)
    return _finish(_random.generator().integers(low, high, size=size, dtype=np.dtype(dtype)), device, False)
