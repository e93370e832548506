"""Small helpers shared by the op modules: argument normalisation and clear error messages."""

from __future__ import annotations

from typing import Any

from rosenblatt.core import Tensor, as_array


def as_tensor_arg(x: Any) -> Tensor:
    """Wrap non-tensor arguments (scalars, arrays, lists) as constant tensors."""
    return x if isinstance(x, Tensor) else Tensor(x)


def axis_args(op: str, axis: Any, keepdims: bool, kw: dict[str, Any]) -> tuple[Any, bool]:
    """Accept NumPy's ``axis``/``keepdims`` and PyTorch's ``dim``/``keepdim`` spellings."""
    if kw:
        if "dim" in kw:
            axis = kw.pop("dim")
        if "keepdim" in kw:
            keepdims = kw.pop("keepdim")
        if kw:
            raise TypeError(f"{op}: unexpected keyword argument(s) {sorted(kw)}")
    if isinstance(axis, list):
        axis = tuple(axis)
    return axis, bool(keepdims)


def normalize_axis(op: str, axis: int, ndim: int) -> int:
    """Turn a possibly negative axis into a positive one, with a clear error when out of range."""
    if not -ndim <= axis < max(ndim, 1):
        raise IndexError(f"{op}: axis {axis} is out of range for a tensor with {ndim} dimension(s)")
    return axis % ndim if ndim else 0


def normalize_axes(op: str, axis: Any, ndim: int) -> tuple[int, ...]:
    """All reduced axes as a sorted tuple of positive ints (``None`` means every axis)."""
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, int):
        return (normalize_axis(op, axis, ndim),)
    return tuple(sorted(normalize_axis(op, a, ndim) for a in axis))


def shape_args(shape: tuple[Any, ...]) -> tuple[int, ...]:
    """``f(2, 3)`` and ``f((2, 3))`` both mean shape (2, 3)."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return tuple(int(s) for s in shape)


def raw(x: Any) -> Any:
    """The array inside a tensor, or ``x`` itself."""
    return x.data if isinstance(x, Tensor) else x


def shape_of(x: Any) -> tuple[int, ...]:
    return tuple(getattr(raw(x), "shape", ()))


def broadcast_error(op: str, *operands: Any) -> ValueError:
    shapes = ", ".join(str(shape_of(o)) for o in operands)
    return ValueError(f"{op}: shapes {shapes} cannot be broadcast together")


__all__ = ["as_array", "as_tensor_arg", "axis_args", "normalize_axis", "normalize_axes", "shape_args",
           "raw", "shape_of", "broadcast_error"]
