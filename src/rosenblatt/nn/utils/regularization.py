"""Weight penalties to add to a loss: ``l1_penalty`` and ``l2_penalty``.

Convention: ``l2_penalty`` is the plain sum of squares ``sum w^2`` (no factor 1/2), so
``loss + lam * l2_penalty(params)`` has gradient ``2 * lam * w``; this equals SGD's
``weight_decay = 2 * lam``. ``l1_penalty`` is ``sum |w|`` (gradient ``sign(w)``, 0 at 0).
"""

from __future__ import annotations

from collections.abc import Iterable

from rosenblatt.core import Tensor
from rosenblatt.ops import abs, sum


def _params(name: str, parameters: Tensor | Iterable[Tensor]) -> list[Tensor]:
    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    if not params:
        raise ValueError(f"{name}: no parameters given")
    return params


def l1_penalty(parameters: Tensor | Iterable[Tensor]) -> Tensor:
    """``sum |w|`` over all parameters: a differentiable scalar (lasso; drives weights to zero)."""
    params = _params("l1_penalty", parameters)
    total = sum(abs(params[0]))
    for p in params[1:]:
        total = total + sum(abs(p))
    return total


def l2_penalty(parameters: Tensor | Iterable[Tensor]) -> Tensor:
    """``sum w^2`` over all parameters (no 1/2): a differentiable scalar (ridge / weight decay)."""
    params = _params("l2_penalty", parameters)
    total = sum(params[0] * params[0])
    for p in params[1:]:
        total = total + sum(p * p)
    return total
