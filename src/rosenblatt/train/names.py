"""Losses and optimisers given by name, PyTorch's or Keras's.

PyTorch-style names (``"cross_entropy"``, ``"bce_with_logits"``, ``"l1"``, ...) build the loss
module of the same name, which takes raw scores (logits). Keras's names mean what they mean in Keras:
``"sparse_categorical_crossentropy"``, ``"categorical_crossentropy"`` and ``"binary_crossentropy"``
take *probabilities* (a model ending in ``Softmax``/``Sigmoid``), clipped to ``[1e-7, 1 - 1e-7]``
as Keras does; these and ``"mse"``/``"mae"`` accept Keras's target shapes (labels ``(N,)`` for
outputs ``(N, 1)``). Keras's optimiser names use Keras's default settings (e.g. ``"rmsprop"``: lr 1e-3,
rho 0.9), PyTorch's class names PyTorch's.
"""

from __future__ import annotations

from typing import Any

from rosenblatt import nn
from rosenblatt.nn.module import Module

_KERAS_EPSILON = 1e-7


class _ProbabilityCrossEntropy(Module):
    """Cross-entropy of probabilities (not logits), Keras's way; ``reduction`` as in PyTorch."""

    sparse = True

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"{type(self).__name__}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
        self.reduction = reduction

    def forward(self, input: Any, target: Any) -> Any:  # noqa: A002 - PyTorch's name
        import rosenblatt as rb
        from rosenblatt.nn import functional as F

        target = target if isinstance(target, rb.Tensor) else rb.tensor(target)
        log_p = rb.log(rb.clip(input, _KERAS_EPSILON, 1.0 - _KERAS_EPSILON))
        if self.sparse:
            if target.ndim == log_p.ndim:  # Keras accepts labels of shape (N, 1)
                target = target.reshape(target.shape[:-1])
            return F.nll_loss(log_p, target.astype(rb.int64), reduction=self.reduction)
        per_sample = -rb.sum(target.astype(log_p.dtype) * log_p, axis=-1)
        if self.reduction == "none":
            return per_sample
        return per_sample.sum() if self.reduction == "sum" else per_sample.mean()


class SparseCategoricalCrossentropy(_ProbabilityCrossEntropy):
    """Keras's ``sparse_categorical_crossentropy``: probabilities ``(N, C)`` and class indices ``(N,)``."""

    sparse = True


class CategoricalCrossentropy(_ProbabilityCrossEntropy):
    """Keras's ``categorical_crossentropy``: probabilities ``(N, C)`` and one-hot (or soft) targets ``(N, C)``."""

    sparse = False


def _keras_target(input: Any, target: Any) -> Any:  # noqa: A002
    """Keras's leniency: a target with the output's size but another shape (labels ``(N,)`` for
    outputs ``(N, 1)``) takes the output's shape, and the output's dtype (integer 0/1 labels)."""
    import rosenblatt as rb

    target = target if isinstance(target, rb.Tensor) else rb.tensor(target)
    if target.shape != input.shape and target.size == input.size:
        target = target.reshape(input.shape)
    return target if target.dtype == input.dtype else target.astype(input.dtype)


class MeanSquaredError(nn.MSELoss):
    """Keras's ``mse``: :class:`~rosenblatt.nn.MSELoss` with Keras's target shapes (labels ``(N,)``
    for outputs ``(N, 1)``)."""

    def forward(self, input: Any, target: Any) -> Any:  # noqa: A002
        return super().forward(input, _keras_target(input, target))


class MeanAbsoluteError(nn.L1Loss):
    """Keras's ``mae``: :class:`~rosenblatt.nn.L1Loss` with Keras's target shapes."""

    def forward(self, input: Any, target: Any) -> Any:  # noqa: A002
        return super().forward(input, _keras_target(input, target))


class BinaryCrossentropy(nn.BCELoss):
    """Keras's ``binary_crossentropy``: probabilities (a model ending in ``Sigmoid``) clipped to
    ``[1e-7, 1 - 1e-7]``, targets 0/1 of the output's size (``(N,)`` labels for ``(N, 1)`` outputs)."""

    def forward(self, input: Any, target: Any) -> Any:  # noqa: A002
        import rosenblatt as rb

        return super().forward(rb.clip(input, _KERAS_EPSILON, 1.0 - _KERAS_EPSILON), _keras_target(input, target))


# name -> factory(rosenblatt.nn)
LOSSES: dict[str, Any] = {
    "cross_entropy": lambda nn: nn.CrossEntropyLoss(), "crossentropy": lambda nn: nn.CrossEntropyLoss(),
    "ce": lambda nn: nn.CrossEntropyLoss(), "nll": lambda nn: nn.NLLLoss(),
    "mse": lambda nn: MeanSquaredError(), "mean_squared_error": lambda nn: MeanSquaredError(),
    "mae": lambda nn: MeanAbsoluteError(), "mean_absolute_error": lambda nn: MeanAbsoluteError(),
    "l1": lambda nn: nn.L1Loss(),
    "huber": lambda nn: nn.HuberLoss(), "bce": lambda nn: nn.BCELoss(),
    "bce_with_logits": lambda nn: nn.BCEWithLogitsLoss(),
    "binary_crossentropy": lambda nn: BinaryCrossentropy(),
    "sparse_categorical_crossentropy": lambda nn: SparseCategoricalCrossentropy(),
    "categorical_crossentropy": lambda nn: CategoricalCrossentropy(),
}

# name -> (optimizer class name, default settings)
OPTIMIZERS: dict[str, tuple[str, dict[str, Any]]] = {
    "adam": ("Adam", {"lr": 1e-3, "eps": 1e-7}),
    "adamw": ("AdamW", {"lr": 1e-3, "eps": 1e-7, "weight_decay": 4e-3}),
    "sgd": ("SGD", {"lr": 1e-2}),
    "rmsprop": ("RMSprop", {"lr": 1e-3, "alpha": 0.9, "eps": 1e-7}),
    "adagrad": ("Adagrad", {"lr": 1e-3, "initial_accumulator_value": 0.1, "eps": 1e-7}),
    "adadelta": ("Adadelta", {"lr": 1e-3, "rho": 0.95, "eps": 1e-7}),
}


def make_loss(spec: Any, where: str = "Trainer") -> Any:
    """A loss callable from a name (see the module docstring) or the callable itself."""
    if isinstance(spec, str):
        import rosenblatt.nn as nn

        key = spec.lower()
        if key not in LOSSES:
            raise ValueError(f"{where}: unknown loss {spec!r}; known names: {', '.join(sorted(LOSSES))}")
        return LOSSES[key](nn)
    if not callable(spec):
        raise TypeError(f"{where}: a loss must be a name or a callable (e.g. nn.CrossEntropyLoss()), "
                        f"got {type(spec).__name__}")
    return spec


def make_optimizer(spec: Any, model: Any, where: str = "Trainer") -> Any:
    """An optimiser over ``model``'s parameters from a Keras name, or ``spec`` itself (or None)."""
    if spec is None:
        return None
    if isinstance(spec, str):
        import rosenblatt.optim as optim

        key = spec.lower()
        if key not in OPTIMIZERS:
            raise ValueError(f"{where}: unknown optimizer {spec!r}; known names: {', '.join(sorted(OPTIMIZERS))}")
        class_name, settings = OPTIMIZERS[key]
        return getattr(optim, class_name)(model.parameters(), **settings)
    if not (hasattr(spec, "step") and hasattr(spec, "zero_grad")):
        raise TypeError(f"{where}: an optimizer must be a name ({', '.join(sorted(OPTIMIZERS))}) or an optimiser "
                        f"object with step() and zero_grad(), got {type(spec).__name__}")
    return spec
