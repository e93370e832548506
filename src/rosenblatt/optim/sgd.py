"""Stochastic gradient descent, with momentum, dampening, Nesterov momentum and weight decay."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from rosenblatt.backend import get_array_module
from rosenblatt.core import mark_modified
from rosenblatt.kernels import optim as kernels
from rosenblatt.optim.optimizer import Optimizer


class SGD(Optimizer):
    r"""Stochastic gradient descent (optionally with momentum), PyTorch's update exactly.

    With ``d = grad + weight_decay * param`` (``-grad`` when ``maximize``), each step is::

        v = d                                    # on the first step (the buffer starts as a copy)
        v = momentum * v + (1 - dampening) * d   # on every later step
        d = d + momentum * v   if nesterov  else  v
        param = param - lr * d

    and plain gradient descent ``param = param - lr * d`` when ``momentum == 0``.

    The lecture's momentum rule ``v = a v + (1 - a) g``, ``w = w - lr v`` (an exponential moving
    average of the gradients) is ``momentum=a, dampening=a``. One difference to keep in mind: the
    buffer starts as a copy of the first gradient (as in PyTorch), not as ``(1 - a) g`` from
    ``v = 0``, so there is no start-up bias to correct.

    Args:
        params: parameters or parameter groups (see :class:`Optimizer`).
        lr: learning rate.
        momentum: momentum factor (0 disables momentum).
        dampening: dampening of the gradient's contribution to the momentum buffer.
        weight_decay: L2 penalty ``weight_decay * param`` added to the gradient.
        nesterov: Nesterov momentum (needs ``momentum > 0`` and ``dampening == 0``).
        maximize: ascend the objective instead of descending.

    State per parameter: ``momentum_buffer`` (only with momentum).
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False, *, maximize: bool = False) -> None:
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                        nesterov=nesterov, maximize=maximize)
        super().__init__(params, defaults)

    def _check_hyperparameters(self, group: Mapping[str, Any]) -> None:
        super()._check_hyperparameters(group)
        momentum = group.get("momentum", 0.0)
        if not momentum >= 0:
            raise ValueError(f"SGD: invalid momentum value: expected momentum >= 0, got {momentum!r}")
        if group.get("nesterov", False) and (momentum <= 0 or group.get("dampening", 0.0) != 0):
            raise ValueError(
                f"SGD: Nesterov momentum requires a momentum > 0 and zero dampening, got momentum={momentum!r}, "
                f"dampening={group.get('dampening', 0.0)!r}"
            )

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One update of every parameter with a gradient; returns ``closure()`` if given."""
        loss = self._evaluate_closure(closure)
        with self._updates():
            for index, group, p, grad in self._params_with_grad():
                xp = get_array_module(p.data)
                lr, momentum, weight_decay = group["lr"], group["momentum"], group["weight_decay"]
                if momentum == 0:
                    # One pass per array through BLAS where it can run; the ufunc kernel otherwise.
                    if not kernels.sgd_one_pass(p.data, grad, None, lr, 0.0, 0.0, weight_decay, group["maximize"],
                                                False):
                        self._apply(kernels.sgd, (p.data, grad), 2, xp, lr, weight_decay, group["maximize"])
                else:
                    state = self.state.by_index.setdefault(index, {})
                    first = "momentum_buffer" not in state
                    if first:
                        state["momentum_buffer"] = self._zeros_like(p)
                    buf = state["momentum_buffer"]
                    # Nesterov or weight decay: a few oneDNN passes for a large float32 array; plain
                    # momentum: one pass per array (BLAS or oneDNN). The ufunc kernel otherwise.
                    if group["nesterov"] or weight_decay:
                        done = kernels.sgd_momentum_onednn(p.data, grad, buf, self._runner, lr, momentum,
                                                           group["dampening"], group["nesterov"], weight_decay,
                                                           group["maximize"], first)
                    else:
                        done = kernels.sgd_one_pass(p.data, grad, buf, lr, momentum, group["dampening"],
                                                    weight_decay, group["maximize"], first)
                    if not done:
                        self._apply(kernels.sgd_momentum, (p.data, grad, buf), 2, xp, lr, momentum,
                                    group["dampening"], group["nesterov"], weight_decay, group["maximize"], first)
                mark_modified(p)  # the parameter changed in place: graphs that saved it are now stale
        return loss
