"""Flatten parameters into one vector and back (for line searches, evolution strategies, ...)."""

from __future__ import annotations

from collections.abc import Iterable

from rosenblatt.core import Tensor, no_grad
from rosenblatt.ops import cat, reshape


def parameters_to_vector(parameters: Iterable[Tensor]) -> Tensor:
    """All parameters flattened and concatenated, in order, into one 1-D tensor (differentiable)."""
    params = list(parameters)
    if not params:
        raise ValueError("parameters_to_vector: no parameters given")
    return cat([reshape(p, (-1,)) for p in params], axis=0)


def vector_to_parameters(vec: Tensor, parameters: Iterable[Tensor]) -> None:
    """Copy consecutive slices of the 1-D ``vec`` into the parameters (in place, no gradient)."""
    params = list(parameters)
    if not isinstance(vec, Tensor):
        raise TypeError(f"vector_to_parameters: expected a Tensor, got {type(vec).__name__}")
    total = sum(p.numel() for p in params)
    if vec.ndim != 1 or vec.shape[0] != total:
        raise ValueError(
            f"vector_to_parameters: expected a 1-D vector of {total} elements (the parameters' total), "
            f"got shape {vec.shape}"
        )
    offset = 0
    with no_grad():
        for p in params:
            n = p.numel()
            p.copy_(vec.data[offset:offset + n].reshape(p.shape))
            offset += n
