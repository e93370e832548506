"""RMSprop (Hinton's lecture 6e, 2012): steps divided by a running RMS of the gradient."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from rosenblatt.backend import get_array_module
from rosenblatt.core import mark_modified
from rosenblatt.kernels import optim as kernels
from rosenblatt.optim.optimizer import Optimizer


class RMSprop(Optimizer):
    r"""RMSprop, from G. Hinton's "Neural Networks for Machine Learning", lecture 6e (2012); the
    centered variant from Graves, "Generating Sequences With Recurrent Neural Networks" (2013).
    PyTorch's update exactly: with ``g = grad + weight_decay * param``::

        square_avg = alpha * square_avg + (1 - alpha) * g * g
        grad_avg = alpha * grad_avg + (1 - alpha) * g                  # centered only
        avg = sqrt(square_avg - grad_avg**2) + eps   if centered  else  sqrt(square_avg) + eps
        buf = momentum * buf + g / avg;  param = param - lr * buf      # momentum > 0
        param = param - lr * g / avg                                   # momentum == 0

    Args:
        params: parameters or parameter groups (see :class:`Optimizer`).
        lr: learning rate.
        alpha: smoothing constant of the running averages.
        eps: added to the denominator for numerical stability.
        weight_decay: L2 penalty added to the gradient.
        momentum: momentum factor (0 disables it).
        centered: normalise by an estimate of the gradient's variance instead of its second moment.
        maximize: ascend the objective instead of descending.

    State per parameter: ``step``, ``square_avg``, ``momentum_buffer`` (with momentum) and ``grad_avg``
    (centered).
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False, *,
                 maximize: bool = False) -> None:
        defaults = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                        centered=centered, maximize=maximize)
        super().__init__(params, defaults)

    def _check_hyperparameters(self, group: Mapping[str, Any]) -> None:
        super()._check_hyperparameters(group)
        if not group.get("momentum", 0.0) >= 0:
            raise ValueError(f"RMSprop: invalid momentum value: expected momentum >= 0, got {group['momentum']!r}")
        if not group.get("alpha", 0.99) >= 0:
            raise ValueError(f"RMSprop: invalid alpha value: expected alpha >= 0, got {group['alpha']!r}")

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One update of every parameter with a gradient; returns ``closure()`` if given."""
        loss = self._evaluate_closure(closure)
        with self._updates():
            for index, group, p, grad in self._params_with_grad():
                momentum, centered = group["momentum"], group["centered"]
                state = self.state.by_index.get(index)
                if state is None:
                    state = self.state.by_index[index] = {"step": 0, "square_avg": self._zeros_like(p)}
                # Created on demand, so that switching momentum or centering on mid-run works as in PyTorch
                # (where the buffers exist from the first step only when the option was on).
                if momentum > 0 and "momentum_buffer" not in state:
                    state["momentum_buffer"] = self._zeros_like(p)
                if centered and "grad_avg" not in state:
                    state["grad_avg"] = self._zeros_like(p)
                state["step"] += 1
                arrays = (p.data, grad, state["square_avg"], state["grad_avg"] if centered else None,
                          state["momentum_buffer"] if momentum > 0 else None)
                if not kernels.rmsprop_onednn(*arrays, self._runner, group["lr"], group["alpha"], group["eps"],
                                              group["weight_decay"], momentum, group["maximize"]):
                    self._apply(kernels.rmsprop, arrays, 2, get_array_module(p.data), group["lr"], group["alpha"],
                                group["eps"], group["weight_decay"], momentum, group["maximize"])
                mark_modified(p)
        return loss
