"""Rosenblatt's perceptron: one threshold unit trained with the perceptron learning rule.

F. Rosenblatt, "The perceptron: a probabilistic model for information storage and organization
in the brain", Psychological Review 65(6):386-408, 1958.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rosenblatt.core import Tensor, get_default_dtype, mark_modified, no_grad
from rosenblatt.nn import functional as F
from rosenblatt.nn.module import Module
from rosenblatt.nn.parameter import Parameter


@dataclass
class PerceptronHistory:
    """What :meth:`Perceptron.fit` did: misclassified samples per epoch, and whether an epoch
    without errors was reached (the data were separated)."""

    errors: list[int] = field(default_factory=list)
    converged: bool = False
    epochs: int = 0


class Perceptron(Module):
    """A single threshold unit ``y = step(w . x + b)`` (outputs 0 or 1), Rosenblatt (1958).

    Trained by :meth:`fit` with Rosenblatt's rule, one sample at a time:
    ``w += lr * (y - y_hat) * x``, ``b += lr * (y - y_hat)``. The rule changes the weights only on
    mistakes, and it stops making them after finitely many updates if and only if the two classes
    are linearly separable (Novikoff's convergence theorem); on XOR it never converges.
    The unit has no useful gradient (the step is flat), which is why multi-layer networks
    replaced it with smooth units trained by backpropagation.

    Shape:
        input: ``(N, in_features)`` (or ``(in_features,)``); output: ``(N,)`` of 0.0 / 1.0.
    """

    def __init__(self, in_features: int, dtype: Any = None) -> None:
        super().__init__()
        self.in_features = int(in_features)
        dtype = np.dtype(dtype or get_default_dtype())
        self.weight = Parameter(Tensor(np.zeros((1, self.in_features), dtype=dtype)))
        self.bias = Parameter(Tensor(np.zeros(1, dtype=dtype)))
        self.converged = False

    def _check(self, x: Any) -> Tensor:
        x = x if isinstance(x, Tensor) else Tensor(np.asarray(x, dtype=self.weight.dtype))
        if x.ndim not in (1, 2) or x.shape[-1] != self.in_features:
            raise ValueError(f"Perceptron({self.in_features}): expected input of shape (N, {self.in_features}), "
                             f"got {x.shape}")
        return x

    def forward(self, x: Any) -> Tensor:
        x = self._check(x)
        scores = F.linear(x, self.weight, self.bias)
        return F.step(scores.reshape(scores.shape[:-1]))

    def predict(self, x: Any) -> np.ndarray:
        """Class labels 0/1 as a NumPy integer array."""
        with no_grad():
            return np.asarray(self.forward(x)).astype(np.int64)

    def fit(self, x: Any, y: Any, epochs: int = 100, lr: float = 1.0, shuffle: bool = False,
            verbose: bool = False) -> PerceptronHistory:
        """Train with the perceptron rule for at most ``epochs`` passes over ``(x, y)``.

        ``y`` holds labels 0/1 (-1/1 is accepted and read as 0/1). Stops at the first epoch without
        a mistake (``converged=True``); otherwise warns that the data may not be linearly
        separable. With ``shuffle=True`` the samples are visited in a new order each epoch (drawn
        from rosenblatt's generator).
        """
        from rosenblatt import random as _random

        x = np.asarray(self._check(x).data, dtype=self.weight.dtype)
        if x.ndim == 1:
            x = x[None, :]
        labels = np.asarray(y.data if isinstance(y, Tensor) else y).reshape(-1)
        if labels.shape[0] != x.shape[0]:
            raise ValueError(f"Perceptron.fit: x has {x.shape[0]} samples but y has {labels.shape[0]} labels")
        values = set(np.unique(labels).tolist())
        if values <= {-1, 1} and -1 in values:
            labels = (labels > 0).astype(np.int64)
        elif not values <= {0, 1}:
            raise ValueError(f"Perceptron.fit: labels must be 0/1 (or -1/1), got values {sorted(values)}")
        targets = labels.astype(x.dtype)
        w = self.weight.data.reshape(-1)  # views: updated in place
        b = self.bias.data
        history = PerceptronHistory()
        for epoch in range(int(epochs)):
            order = _random.permutation(len(x)) if shuffle else range(len(x))
            mistakes = 0
            for i in order:
                # Each update depends on the previous one: the rule is inherently sequential.
                prediction = 1.0 if float(x[i] @ w + b[0]) >= 0.0 else 0.0
                error = targets[i] - prediction
                if error != 0.0:
                    w += (lr * error) * x[i]
                    b += lr * error
                    mistakes += 1
            history.errors.append(mistakes)
            history.epochs = epoch + 1
            if verbose:
                print(f"epoch {epoch + 1}: {mistakes} mistakes")
            if mistakes == 0:
                history.converged = True
                break
        mark_modified(self.weight)
        mark_modified(self.bias)
        self.converged = history.converged
        if not history.converged:
            warnings.warn(
                f"Perceptron.fit did not converge in {epochs} epochs ({history.errors[-1] if history.errors else 0} "
                "mistakes in the last one): the classes may not be linearly separable (e.g. XOR)",
                RuntimeWarning,
                stacklevel=2,
            )
        return history

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}"


def perceptron(in_features: int = 2, **kwargs: Any) -> Perceptron:
    """Factory for the model registry."""
    return Perceptron(in_features, **kwargs)
