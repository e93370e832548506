"""Weight penalties for ``Trainer(regularizer=...)``: ``L1``, ``L2``, ``L1L2``.

They penalise the *weights* — parameters with two or more dimensions (Linear and convolution
kernels, embeddings, recurrent matrices) — and leave biases and normalisation scales alone, as
Keras's kernel regularisers do. ``L2(lam)`` adds ``lam * sum w^2`` (gradient ``2 lam w``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _weights(model: Any) -> list[Any]:
    return [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]


def _penalties() -> tuple[Any, Any]:
    try:
        from rosenblatt.nn.utils import l1_penalty, l2_penalty
    except ImportError:
        from rosenblatt.nn.utils.regularization import l1_penalty, l2_penalty
    return l1_penalty, l2_penalty


class L1L2:
    """``l1 * sum |w| + l2 * sum w^2`` over the model's weights."""

    def __init__(self, l1: float = 0.0, l2: float = 0.0) -> None:
        if l1 < 0 or l2 < 0:
            raise ValueError(f"{type(self).__name__}: coefficients must be >= 0, got l1={l1}, l2={l2}")
        self.l1, self.l2 = float(l1), float(l2)

    def __call__(self, model: Any) -> Any:
        weights = _weights(model)
        if not weights:
            return None
        l1_penalty, l2_penalty = _penalties()
        total = None
        if self.l1:
            total = self.l1 * l1_penalty(weights)
        if self.l2:
            term = self.l2 * l2_penalty(weights)
            total = term if total is None else total + term
        return total

    def __repr__(self) -> str:
        return f"{type(self).__name__}(l1={self.l1}, l2={self.l2})"


class L1(L1L2):
    """``coef * sum |w|`` (lasso: pushes weights to exactly zero)."""

    def __init__(self, coef: float) -> None:
        super().__init__(l1=coef)


class L2(L1L2):
    """``coef * sum w^2`` (ridge / weight decay)."""

    def __init__(self, coef: float) -> None:
        super().__init__(l2=coef)


def get_regularizer(spec: Any) -> Any:
    """A callable ``model -> penalty`` from an ``L1``/``L2`` object, a callable or ``{"l1": a, "l2": b}``."""
    if spec is None or callable(spec):
        return spec
    if isinstance(spec, Mapping):
        unknown = set(spec) - {"l1", "l2"}
        if unknown:
            raise ValueError(f"Trainer: regularizer keys must be 'l1' and/or 'l2', got {sorted(unknown)}")
        return L1L2(spec.get("l1", 0.0), spec.get("l2", 0.0))
    raise TypeError(f"Trainer: regularizer must be L1/L2/L1L2, a dict or a callable(model), got {type(spec).__name__}")
