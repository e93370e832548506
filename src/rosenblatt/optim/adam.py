"""Adam (Kingma & Ba, 2015) and AdamW (Loshchilov & Hutter, 2019), with the AMSGrad variant."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from rosenblatt.backend import get_array_module
from rosenblatt.core import mark_modified
from rosenblatt.kernels import optim as kernels
from rosenblatt.optim.optimizer import Optimizer


class Adam(Optimizer):
    r"""Adam: per-coordinate steps from running averages of the gradient and of its square.

    From "Adam: A Method for Stochastic Optimization" (Kingma & Ba, ICLR 2015); AMSGrad from "On the
    Convergence of Adam and Beyond" (Reddi et al., ICLR 2018). PyTorch's update exactly: with
    ``g = grad + weight_decay * param`` (L2 penalty in the gradient; see :class:`AdamW` for decoupled
    decay) and ``t`` the step count::

        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        v_max = max(v_max, v)            # amsgrad only; v_max replaces v below
        param = param - lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)

    Args:
        params: parameters or parameter groups (see :class:`Optimizer`).
        lr: learning rate.
        betas: decay rates ``(beta1, beta2)`` of the two running averages, each in [0, 1).
        eps: added to the denominator for numerical stability.
        weight_decay: L2 penalty added to the gradient.
        amsgrad: use the running maximum of ``v`` (AMSGrad).
        maximize: ascend the objective instead of descending.

    State per parameter: ``step``, ``exp_avg``, ``exp_avg_sq`` and, with amsgrad, ``max_exp_avg_sq``.
    """

    _decoupled_weight_decay = False

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, amsgrad: bool = False, *,
                 maximize: bool = False) -> None:
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                        maximize=maximize)
        super().__init__(params, defaults)

    def _check_hyperparameters(self, group: Mapping[str, Any]) -> None:
        super()._check_hyperparameters(group)
        betas = group.get("betas", (0.9, 0.999))
        if len(betas) != 2:
            raise ValueError(f"{type(self).__name__}: betas must be a pair (beta1, beta2), got {betas!r}")
        for i, beta in enumerate(betas):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"{type(self).__name__}: invalid beta parameter at index {i}: expected a value "
                                 f"in [0, 1), got {beta!r}")

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One update of every parameter with a gradient; returns ``closure()`` if given."""
        loss = self._evaluate_closure(closure)
        with self._updates():
            for index, group, p, grad in self._params_with_grad():
                state = self.state.by_index.get(index)
                if state is None:
                    state = self.state.by_index[index] = {
                        "step": 0, "exp_avg": self._zeros_like(p), "exp_avg_sq": self._zeros_like(p)}
                state["step"] += 1
                step = state["step"]
                lr, weight_decay = group["lr"], group["weight_decay"]
                beta1, beta2 = group["betas"]
                bias_correction1 = 1 - beta1 ** step
                bias_correction2_sqrt = math.sqrt(1 - beta2 ** step)
                # lr * m / (sqrt(v) / c2 + eps) / c1  ==  (lr * c2 / c1) * m / (sqrt(v) + eps * c2):
                # one pass fewer over the arrays than dividing sqrt(v) by c2.
                step_size = lr * bias_correction2_sqrt / bias_correction1
                eps = group["eps"] * bias_correction2_sqrt
                xp = get_array_module(p.data)
                if self._decoupled_weight_decay:
                    decay, l2 = 1 - lr * weight_decay, 0.0
                else:
                    decay, l2 = 1.0, weight_decay
                if group["amsgrad"] and "max_exp_avg_sq" not in state:
                    state["max_exp_avg_sq"] = self._zeros_like(p)
                arrays = (p.data, grad, state["exp_avg"], state["exp_avg_sq"],
                          state["max_exp_avg_sq"] if group["amsgrad"] else None)
                if not kernels.adam_onednn(*arrays, self._runner, beta1, beta2, step_size, eps, decay, l2,
                                           group["maximize"]):
                    self._apply(kernels.adam, arrays, 2, xp, beta1, beta2, step_size, eps, decay, l2,
                                group["maximize"])
                mark_modified(p)
        return loss


class AdamW(Adam):
    r"""Adam with decoupled weight decay: the parameter shrinks by ``lr * weight_decay`` each step.

    From "Decoupled Weight Decay Regularization" (Loshchilov & Hutter, ICLR 2019). Before the Adam
    update of :class:`Adam` (with no L2 term in the gradient), ``param = param * (1 - lr * weight_decay)``,
    so the decay is not rescaled by the adaptive denominator. PyTorch's update exactly.

    Args: as :class:`Adam`, with ``weight_decay`` defaulting to ``1e-2``.
    """

    _decoupled_weight_decay = True

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False, *,
                 maximize: bool = False) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize)
