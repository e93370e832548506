"""Adadelta (Zeiler, 2012): steps scaled by the ratio of running RMS of updates and of gradients."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from rosenblatt.backend import get_array_module
from rosenblatt.core import mark_modified
from rosenblatt.kernels import optim as kernels
from rosenblatt.optim.optimizer import Optimizer


class Adadelta(Optimizer):
    r"""Adadelta, from "ADADELTA: An Adaptive Learning Rate Method" (Zeiler, 2012). PyTorch's update
    exactly: with ``g = grad + weight_decay * param``::

        square_avg = rho * square_avg + (1 - rho) * g * g
        delta = sqrt(acc_delta + eps) / sqrt(square_avg + eps) * g
        acc_delta = rho * acc_delta + (1 - rho) * delta * delta
        param = param - lr * delta

    Args:
        params: parameters or parameter groups (see :class:`Optimizer`).
        lr: scale of the update (1.0 in the paper).
        rho: decay rate of the running averages, in [0, 1].
        eps: added inside the square roots for numerical stability.
        weight_decay: L2 penalty added to the gradient.
        maximize: ascend the objective instead of descending.

    State per parameter: ``step``, ``square_avg`` and ``acc_delta``.
    """

    def __init__(self, params: Iterable[Any], lr: float = 1.0, rho: float = 0.9, eps: float = 1e-6,
                 weight_decay: float = 0.0, *, maximize: bool = False) -> None:
        defaults = dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults)

    def _check_hyperparameters(self, group: Mapping[str, Any]) -> None:
        super()._check_hyperparameters(group)
        if not 0.0 <= group.get("rho", 0.9) <= 1.0:
            raise ValueError(f"Adadelta: invalid rho value: expected a value in [0, 1], got {group['rho']!r}")

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One update of every parameter with a gradient; returns ``closure()`` if given."""
        loss = self._evaluate_closure(closure)
        with self._updates():
            for index, group, p, grad in self._params_with_grad():
                state = self.state.by_index.get(index)
                if state is None:
                    state = self.state.by_index[index] = {
                        "step": 0, "square_avg": self._zeros_like(p), "acc_delta": self._zeros_like(p)}
                state["step"] += 1
                arrays = (p.data, grad, state["square_avg"], state["acc_delta"])
                if not kernels.adadelta_onednn(*arrays, self._runner, group["lr"], group["rho"], group["eps"],
                                               group["weight_decay"], group["maximize"]):
                    self._apply(kernels.adadelta, arrays, 3, get_array_module(p.data), group["lr"], group["rho"],
                                group["eps"], group["weight_decay"], group["maximize"])
                mark_modified(p)
        return loss
