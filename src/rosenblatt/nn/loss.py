"""Loss modules: each holds its settings and calls the function of the same name in
``rb.nn.functional``. ``reduction`` is ``"mean"`` (default), ``"sum"`` or ``"none"``.

Class weights (``weight``, ``pos_weight``) are registered as buffers, as in PyTorch, so they move
with ``to()`` and appear in the ``state_dict``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rosenblatt.core import Tensor
from rosenblatt.nn import functional as F
from rosenblatt.nn.module import Module


class _Loss(Module):
    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        if reduction not in ("mean", "sum", "none", "batchmean"):
            raise ValueError(f"{type(self).__name__}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
        self.reduction = reduction

    def _call(self, fn: Callable[..., Tensor], *args: Any, **kwargs: Any) -> Tensor:
        # Errors from the functional form name the function; say which module raised them instead.
        try:
            return fn(*args, **kwargs)
        except (ValueError, TypeError, IndexError) as err:
            message = str(err)
            prefix = fn.__name__ + ":"
            if message.startswith(prefix):
                message = type(self).__name__ + ":" + message[len(prefix):]
            raise type(err)(message) from None

    def extra_repr(self) -> str:
        return "" if self.reduction == "mean" else f"reduction='{self.reduction}'"


class _WeightedLoss(_Loss):
    def __init__(self, weight: Any = None, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.register_buffer("weight", weight if weight is None or isinstance(weight, Tensor) else Tensor(weight))


class MSELoss(_Loss):
    """Mean squared error ``(input - target)^2``.

    Shape:
        input and target: the same shape ``(*)``; output: scalar, or ``(*)`` with ``reduction="none"``.
    """

    def forward(self, input: Tensor, target: Any) -> Tensor:  # noqa: A002
        return self._call(F.mse_loss, input, target, reduction=self.reduction)


class L1Loss(_Loss):
    """Mean absolute error ``|input - target|`` (MAE).

    Shape:
        input and target: the same shape ``(*)``; output: scalar, or ``(*)`` with ``reduction="none"``.
    """

    def forward(self, input: Tensor, target: Any) -> Tensor:  # noqa: A002
        return self._call(F.l1_loss, input, target, reduction=self.reduction)


class HuberLoss(_Loss):
    """Quadratic for errors below ``delta``, linear above (robust regression).

    Shape:
        input and target: the same shape ``(*)``; output: scalar, or ``(*)`` with ``reduction="none"``.
    """

    def __init__(self, reduction: str = "mean", delta: float = 1.0) -> None:
        super().__init__(reduction)
        self.delta = float(delta)

    def forward(self, input: Tensor, target: Any) -> Tensor:  # noqa: A002
        return self._call(F.huber_loss, input, target, reduction=self.reduction, delta=self.delta)


class SmoothL1Loss(_Loss):
    """Huber loss divided by ``beta`` (Girshick, 2015); L1 when ``beta = 0``.

    Shape:
        input and target: the same shape ``(*)``; output: scalar, or ``(*)`` with ``reduction="none"``.
    """

    def __init__(self, reduction: str = "mean", beta: float = 1.0) -> None:
        super().__init__(reduction)
        self.beta = float(beta)

    def forward(self, input: Tensor, target: Any) -> Tensor:  # noqa: A002
        return self._call(F.smooth_l1_loss, input, target, reduction=self.reduction, beta=self.beta)


class BCELoss(_WeightedLoss):
    """Binary cross-entropy on probabilities in [0, 1] (apply ``Sigmoid`` first).

    Shape:
        input and target: the same shape ``(*)``; output: scalar, or ``(*)`` with ``reduction="none"``.
    """

    def forward(self, input: Tensor, target: Any) -> Tensor:  # noqa: A002
        return self._call(F.binary_cross_entropy, input, target, weight=self.weight, reduction=self.reduction)


class BCEWithLogitsLoss(_Loss):
    """Sigmoid and binary cross-entropy in one numerically exact step, on raw scores.

    ``pos_weight`` (one value per class) weighs positive examples, e.g. ``negatives / positives``
    for imbalanced labels.

    Shape:
        input and target: the same shape ``(*)``; output: scalar, or ``(*)`` with ``reduction="none"``.
    """

    def __init__(self, weight: Any = None, reduction: str = "mean", pos_weight: Any = None) -> None:
        super().__init__(reduction)
        self.register_buffer("weight", weight)
        self.register_buffer("pos_weight", pos_weight)

    def forward(self, input: Tensor, target: Any) -> Tensor:  # noqa: A002
        return self._call(F.binary_cross_entropy_with_logits, input, target, weight=self.weight,
                          reduction=self.reduction, pos_weight=self.pos_weight)


class CrossEntropyLoss(_WeightedLoss):
    """Softmax cross-entropy on raw class scores, with class-index targets ("sparse categorical")
    or probability / one-hot targets ("categorical"); ``weight`` per class, ``ignore_index``,
    ``label_smoothing`` as PyTorch.

    Shape:
        input: ``(N, C)`` or ``(N, C, d1, ...)``; target: ``(N,)`` / ``(N, d1, ...)`` integers or the
        input's shape of probabilities; output: scalar, or ``(N, d1, ...)`` with ``reduction="none"``.
    """

    def __init__(self, weight: Any = None, ignore_index: int = -100, reduction: str = "mean",
                 label_smoothing: float = 0.0) -> None:
        super().__init__(weight, reduction)
        self.ignore_index = int(ignore_index)
        self.label_smoothing = float(label_smoothing)

    def forward(self, input: Tensor, target: Any) -> Tensor:  # noqa: A002
        return self._call(F.cross_entropy, input, target, weight=self.weight, ignore_index=self.ignore_index,
                          reduction=self.reduction, label_smoothing=self.label_smoothing)

    def extra_repr(self) -> str:
        parts = [super().extra_repr()] if self.reduction != "mean" else []
        if self.ignore_index != -100:
            parts.append(f"ignore_index={self.ignore_index}")
        if self.label_smoothing:
            parts.append(f"label_smoothing={self.label_smoothing}")
        return ", ".join(parts)


class NLLLoss(_WeightedLoss):
    """Negative log-likelihood of class indices under log-probabilities (use after ``LogSoftmax``).

    Shape:
        input: ``(N, C)`` or ``(N, C, d1, ...)``; target: ``(N,)`` or ``(N, d1, ...)`` integers;
        output: scalar, or ``(N, d1, ...)`` with ``reduction="none"``.
    """

    def __init__(self, weight: Any = None, ignore_index: int = -100, reduction: str = "mean") -> None:
        super().__init__(weight, reduction)
        self.ignore_index = int(ignore_index)

    def forward(self, input: Tensor, target: Any) -> Tensor:  # noqa: A002
        return self._call(F.nll_loss, input, target, weight=self.weight, ignore_index=self.ignore_index,
                          reduction=self.reduction)


class KLDivLoss(_Loss):
    """Kullback-Leibler divergence with log-probability input; ``reduction="batchmean"`` gives the
    mathematical KL per sample.

    Shape:
        input and target: the same shape ``(N, *)``; output: scalar, or ``(N, *)`` with ``"none"``.
    """

    def __init__(self, reduction: str = "mean", log_target: bool = False) -> None:
        super().__init__(reduction)
        self.log_target = bool(log_target)

    def forward(self, input: Tensor, target: Any) -> Tensor:  # noqa: A002
        return self._call(F.kl_div, input, target, reduction=self.reduction, log_target=self.log_target)
