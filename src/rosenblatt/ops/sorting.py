"""Sorting: ``sort``, ``argsort`` and ``topk``, with PyTorch's names and results.

The order is computed on raw arrays (it has no gradient); the values are then gathered from the
input with the differentiable :func:`~rosenblatt.ops.shape.take_along_axis`, so the gradient of
``values`` flows back to the elements they came from (and second derivatives work).

Ties keep their original order, in both directions: the sort is stable. PyTorch's CPU sort gives
the same order, so indices agree with ``torch.sort``/``torch.topk`` there too; NaN counts as larger
than every number (last in ascending order, first in descending order), as in PyTorch.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rosenblatt.backend import get_array_module
from rosenblatt.core import Tensor, constant
from rosenblatt.ops._util import axis_args, normalize_axis
from rosenblatt.ops.reduction import ValuesIndices
from rosenblatt.ops.shape import take_along_axis


def _order(data: Any, axis: int, descending: bool) -> Any:
    """Stable sorting indices along ``axis``."""
    xp = get_array_module(data)
    if not descending:
        return xp.argsort(data, axis=axis, kind="stable")
    # A stable descending order, without negating (which breaks for unsigned and boolean data):
    # sort the reversed array, reverse the result, and map positions back. Equal elements then
    # come out in their original order, and NaN (last when ascending) comes first.
    n = data.shape[axis]
    reversed_order = xp.argsort(xp.flip(data, axis), axis=axis, kind="stable")
    return (n - 1) - xp.flip(reversed_order, axis)


def _as_tensor(name: str, x: Any) -> Tensor:
    x = x if isinstance(x, Tensor) else Tensor(x)
    if x.ndim == 0:
        raise ValueError(f"{name}: expected a tensor with at least one dimension, got a 0-d tensor")
    return x


def argsort(x: Tensor, dim: int = -1, descending: bool = False, **kw: Any) -> Tensor:
    """Indices that sort ``x`` along ``dim`` (``axis=`` also accepted); stable, int64."""
    dim, _ = axis_args("argsort", kw.pop("axis", dim), False, kw)
    x = _as_tensor("argsort", x)
    axis = normalize_axis("argsort", dim, x.ndim)
    return constant(_order(x.data, axis, bool(descending)).astype(np.int64))


def sort(x: Tensor, dim: int = -1, descending: bool = False, stable: bool = False, **kw: Any) -> ValuesIndices:
    """Sort along ``dim``: a named tuple ``(values, indices)``, as ``torch.sort``.

    ``values`` is differentiable; ``indices`` are int64 positions along ``dim``. Equal elements
    keep their order whatever ``stable`` says (the argument exists for PyTorch's signature).
    """
    dim, _ = axis_args("sort", kw.pop("axis", dim), False, kw)
    x = _as_tensor("sort", x)
    axis = normalize_axis("sort", dim, x.ndim)
    indices = constant(_order(x.data, axis, bool(descending)).astype(np.int64))
    return ValuesIndices(take_along_axis(x, indices, axis), indices)


def topk(x: Tensor, k: int, dim: int = -1, largest: bool = True, sorted: bool = True,  # noqa: A002
         **kw: Any) -> ValuesIndices:
    """The ``k`` largest (or smallest, ``largest=False``) elements along ``dim``, as ``torch.topk``.

    Returns a named tuple ``(values, indices)`` of size ``k`` along ``dim``, ordered from the most
    extreme down (also with ``sorted=False``, where PyTorch leaves the order unspecified). Among
    equal elements the one with the lower index comes first. ``values`` is differentiable.
    """
    dim, _ = axis_args("topk", kw.pop("axis", dim), False, kw)
    x = _as_tensor("topk", x)
    axis = normalize_axis("topk", dim, x.ndim)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"topk: k must be an int, got {type(k).__name__}")
    n = x.shape[axis]
    if not 0 <= k <= n:
        raise ValueError(f"topk: k must be in [0, {n}] for dimension {axis} of size {n}, got k={k}")
    order = _order(x.data, axis, descending=bool(largest))
    keep = (slice(None),) * axis + (slice(0, int(k)),)
    indices = constant(order[keep].astype(np.int64))
    return ValuesIndices(take_along_axis(x, indices, axis), indices)
