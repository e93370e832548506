"""Adagrad (Duchi, Hazan & Singer, 2011): steps shrink with the accumulated squared gradients."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from rosenblatt.backend import get_array_module
from rosenblatt.core import mark_modified
from rosenblatt.kernels import optim as kernels
from rosenblatt.optim.optimizer import Optimizer


class Adagrad(Optimizer):
    r"""Adagrad, from "Adaptive Subgradient Methods for Online Learning and Stochastic Optimization"
    (Duchi, Hazan & Singer, JMLR 2011). PyTorch's update exactly: with ``g = grad + weight_decay * param``
    and ``t`` the step count::

        clr = lr / (1 + (t - 1) * lr_decay)
        sum = sum + g * g                     # starts at initial_accumulator_value
        param = param - clr * g / (sqrt(sum) + eps)

    Args:
        params: parameters or parameter groups (see :class:`Optimizer`).
        lr: learning rate.
        lr_decay: learning-rate decay per step.
        weight_decay: L2 penalty added to the gradient.
        initial_accumulator_value: starting value of the sum of squared gradients.
        eps: added to the denominator for numerical stability.
        maximize: ascend the objective instead of descending.

    State per parameter: ``step`` and ``sum``.
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-2, lr_decay: float = 0.0, weight_decay: float = 0.0,
                 initial_accumulator_value: float = 0.0, eps: float = 1e-10, *, maximize: bool = False) -> None:
        defaults = dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, eps=eps, maximize=maximize)
        super().__init__(params, defaults)

    def _check_hyperparameters(self, group: Mapping[str, Any]) -> None:
        super()._check_hyperparameters(group)
        if not group.get("lr_decay", 0.0) >= 0:
            raise ValueError(f"Adagrad: invalid lr_decay value: expected lr_decay >= 0, got {group['lr_decay']!r}")
        if not group.get("initial_accumulator_value", 0.0) >= 0:
            raise ValueError("Adagrad: invalid initial_accumulator_value: expected a value >= 0, got "
                             f"{group['initial_accumulator_value']!r}")

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One update of every parameter with a gradient; returns ``closure()`` if given."""
        loss = self._evaluate_closure(closure)
        with self._updates():
            for index, group, p, grad in self._params_with_grad():
                state = self.state.by_index.get(index)
                if state is None:
                    accumulator = self._zeros_like(p)
                    accumulator += group["initial_accumulator_value"]
                    state = self.state.by_index[index] = {"step": 0, "sum": accumulator}
                state["step"] += 1
                clr = group["lr"] / (1 + (state["step"] - 1) * group["lr_decay"])
                if not kernels.adagrad_onednn(p.data, grad, state["sum"], self._runner, clr, group["eps"],
                                              group["weight_decay"], group["maximize"]):
                    self._apply(kernels.adagrad, (p.data, grad, state["sum"]), 2, get_array_module(p.data), clr,
                                group["eps"], group["weight_decay"], group["maximize"])
                mark_modified(p)
        return loss
