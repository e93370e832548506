"""Gradient clipping: ``clip_grad_norm_`` and ``clip_grad_value_`` (in place, PyTorch's semantics)."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from rosenblatt.backend import get_array_module
from rosenblatt.core import Tensor, mark_modified


def _grads(parameters: Tensor | Iterable[Tensor]) -> list[Tensor]:
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    return [p.grad for p in parameters if p.grad is not None]


def clip_grad_norm_(
    parameters: Tensor | Iterable[Tensor],
    max_norm: float,
    norm_type: float = 2.0,
    error_if_nonfinite: bool = False,
) -> Tensor:
    """Scale all gradients together so that their joint norm is at most ``max_norm``.

    The norm is taken over all gradients as if concatenated into one vector (``norm_type`` may be
    ``float('inf')`` for the largest absolute value). Gradients are multiplied by
    ``min(1, max_norm / (total_norm + 1e-6))``, as PyTorch. Returns the total norm before clipping
    (a 0-d tensor).
    """
    grads = _grads(parameters)
    max_norm, norm_type = float(max_norm), float(norm_type)
    if not grads:
        return Tensor(0.0)
    xp = get_array_module(grads[0].data)
    if math.isinf(norm_type):
        norms = [xp.abs(g.data).max() if g.data.size else xp.zeros((), g.data.dtype) for g in grads]
        total = max(float(n) for n in norms)
    else:
        total = sum(float((xp.abs(g.data.astype(xp.float64, copy=False)) ** norm_type).sum()) for g in grads)
        total = total ** (1.0 / norm_type)
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(
            f"clip_grad_norm_: the total norm of order {norm_type} of the gradients is non-finite ({total}), "
            "so they cannot be clipped (set error_if_nonfinite=False to scale them anyway)"
        )
    coefficient = max_norm / (total + 1e-6)
    if coefficient < 1.0:
        with np.errstate(invalid="ignore"):  # an infinite norm makes NaNs, as in PyTorch
            for g in grads:
                g.data *= g.data.dtype.type(coefficient)
                mark_modified(g)
    return Tensor(xp.asarray(total, dtype=grads[0].data.dtype))


def clip_grad_value_(parameters: Tensor | Iterable[Tensor], clip_value: float) -> None:
    """Clip every gradient element to ``[-clip_value, clip_value]`` in place."""
    clip_value = float(clip_value)
    if clip_value < 0:
        raise ValueError(f"clip_grad_value_: clip_value must be non-negative, got {clip_value}")
    for g in _grads(parameters):
        xp = get_array_module(g.data)
        xp.clip(g.data, -clip_value, clip_value, out=g.data)
