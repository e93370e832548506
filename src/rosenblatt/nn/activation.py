"""Activation layers: thin modules around ``rb.nn.functional``'s fused activation functions.

Shape (all of them, except where noted): input ``(*)``, output ``(*)`` of the same shape.

``inplace=True`` (``ReLU``, ``ReLU6``, ``Hardtanh``, ``LeakyReLU``, ``ELU``, ``SELU``, ``SiLU``,
``Hardswish``, ``Hardsigmoid``, ``Mish``, as in PyTorch) writes the result into the input where no
graph records it (inference); in training the result is a new tensor with the same values (see
:mod:`rosenblatt.nn.functional.activation`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rosenblatt.core import Tensor, get_default_dtype
from rosenblatt.nn import functional as F
from rosenblatt.nn.module import Module
from rosenblatt.nn.parameter import Parameter
from rosenblatt.ops._util import normalize_axis


class Step(Module):
    """Heaviside threshold unit of Rosenblatt's perceptron: 1 where ``x >= threshold``, else 0.

    Its gradient is zero, so it is trained with the perceptron rule, not backpropagation.

    Shape:
        input ``(*)``; output ``(*)``.
    """

    def __init__(self, threshold: float = 0.0) -> None:
        super().__init__()
        self.threshold = float(threshold)

    def forward(self, x: Tensor) -> Tensor:
        return F.step(x, self.threshold)

    def extra_repr(self) -> str:
        return f"threshold={self.threshold}"


class _InPlace(Module):
    """Base of the activations whose only argument is PyTorch's ``inplace``."""

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = bool(inplace)

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class ReLU(_InPlace):
    """``max(x, 0)``.

    Shape:
        input ``(*)``; output ``(*)``.
    """

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(x, self.inplace)


class Hardtanh(Module):
    """``x`` clipped to ``[min_val, max_val]``::

        Hardtanh(x) = max_val  if x > max_val
                      min_val  if x < min_val
                      x        otherwise

    The gradient is 1 strictly between ``min_val`` and ``max_val`` and 0 elsewhere, the kinks
    included (as PyTorch).

    Shape:
        input ``(*)``; output ``(*)``.
    """

    def __init__(self, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False) -> None:
        super().__init__()
        self.min_val = float(min_val)
        self.max_val = float(max_val)
        self.inplace = bool(inplace)
        if self.max_val <= self.min_val:
            raise ValueError(f"{type(self).__name__}: max_val ({self.max_val}) must be greater than min_val "
                             f"({self.min_val})")

    def forward(self, x: Tensor) -> Tensor:
        return F.hardtanh(x, self.min_val, self.max_val, self.inplace)

    def extra_repr(self) -> str:
        return f"min_val={self.min_val}, max_val={self.max_val}" + (", inplace=True" if self.inplace else "")


class ReLU6(Hardtanh):
    """``min(max(x, 0), 6)``: ``Hardtanh(0, 6)`` (a subclass, as in PyTorch), gradient 0 at 0 and 6.

    Shape:
        input ``(*)``; output ``(*)``.
    """

    def __init__(self, inplace: bool = False) -> None:
        super().__init__(0.0, 6.0, inplace)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu6(x, self.inplace)

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class LeakyReLU(Module):
    """``x`` where positive, ``negative_slope * x`` elsewhere.

    Shape:
        input ``(*)``; output ``(*)``.
    """

    def __init__(self, negative_slope: float = 0.01, inplace: bool = False) -> None:
        super().__init__()
        self.negative_slope = float(negative_slope)
        self.inplace = bool(inplace)

    def forward(self, x: Tensor) -> Tensor:
        return F.leaky_relu(x, self.negative_slope, self.inplace)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}" + (", inplace=True" if self.inplace else "")


class ELU(Module):
    """``x`` if ``x > 0`` else ``alpha * (exp(x) - 1)`` (Clevert et al., 2016).

    Shape:
        input ``(*)``; output ``(*)``.
    """

    def __init__(self, alpha: float = 1.0, inplace: bool = False) -> None:
        super().__init__()
        self.alpha = float(alpha)
        self.inplace = bool(inplace)

    def forward(self, x: Tensor) -> Tensor:
        return F.elu(x, self.alpha, self.inplace)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}" + (", inplace=True" if self.inplace else "")


class SELU(_InPlace):
    """Scaled ELU with the self-normalising constants (Klambauer et al., 2017).

    Shape:
        input ``(*)``; output ``(*)``.
    """

    def forward(self, x: Tensor) -> Tensor:
        return F.selu(x, self.inplace)


class GELU(Module):
    """``x * Phi(x)``; ``approximate="tanh"`` for the tanh approximation (Hendrycks & Gimpel, 2016).

    Shape:
        input ``(*)``; output ``(*)``.
    """

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, x: Tensor) -> Tensor:
        return F.gelu(x, self.approximate)

    def extra_repr(self) -> str:
        return f"approximate='{self.approximate}'"


class SiLU(_InPlace):
    """``x * sigmoid(x)`` (swish).

    Shape:
        input ``(*)``; output ``(*)``.
    """

    def forward(self, x: Tensor) -> Tensor:
        return F.silu(x, self.inplace)


class Hardsigmoid(_InPlace):
    """Piecewise-linear sigmoid::

        Hardsigmoid(x) = 0            if x <= -3
                         1            if x >= 3
                         x / 6 + 1/2  otherwise

    The gradient is ``1/6`` strictly between -3 and 3 and 0 elsewhere, the kinks included (as
    PyTorch). Like PyTorch's, the repr does not show ``inplace``.

    Shape:
        input ``(*)``; output ``(*)``.
    """

    def forward(self, x: Tensor) -> Tensor:
        return F.hardsigmoid(x, self.inplace)

    def extra_repr(self) -> str:
        return ""  # PyTorch's repr leaves out inplace here


class Hardswish(_InPlace):
    """Hard swish (Howard et al., "Searching for MobileNetV3", 2019)::

        Hardswish(x) = 0                if x <= -3
                       x                if x >= 3
                       x * (x + 3) / 6  otherwise

    The gradient is 0 for ``x <= -3``, ``x / 3 + 1/2`` for ``-3 < x < 3`` and 1 for ``x >= 3``
    (PyTorch's values at the kinks). Like PyTorch's, the repr does not show ``inplace``.

    Shape:
        input ``(*)``; output ``(*)``.
    """

    def forward(self, x: Tensor) -> Tensor:
        return F.hardswish(x, self.inplace)

    def extra_repr(self) -> str:
        return ""  # PyTorch's repr leaves out inplace here


class Mish(_InPlace):
    """``x * tanh(softplus(x))`` with ``softplus(x) = log(1 + exp(x))`` (Misra, 2019).

    Shape:
        input ``(*)``; output ``(*)``.
    """

    def forward(self, x: Tensor) -> Tensor:
        return F.mish(x, self.inplace)


class Softplus(Module):
    """``log(1 + exp(beta x)) / beta``, linear above ``threshold``.

    Shape:
        input ``(*)``; output ``(*)``.
    """

    def __init__(self, beta: float = 1.0, threshold: float = 20.0) -> None:
        super().__init__()
        self.beta = float(beta)
        self.threshold = float(threshold)

    def forward(self, x: Tensor) -> Tensor:
        return F.softplus(x, self.beta, self.threshold)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, threshold={self.threshold}"


class Sigmoid(Module):
    """``1 / (1 + exp(-x))``.

    Shape:
        input ``(*)``; output ``(*)``.
    """

    def forward(self, x: Tensor) -> Tensor:
        return F.sigmoid(x)


class Tanh(Module):
    """Hyperbolic tangent.

    Shape:
        input ``(*)``; output ``(*)``.
    """

    def forward(self, x: Tensor) -> Tensor:
        return F.tanh(x)


class Softmax(Module):
    """``exp(x) / sum(exp(x))`` along ``axis`` (``dim=`` is accepted too).

    Shape:
        input ``(*)``; output ``(*)``, summing to 1 along ``axis``.
    """

    def __init__(self, axis: int = -1, dim: int | None = None) -> None:
        super().__init__()
        self.axis = int(dim if dim is not None else axis)

    def forward(self, x: Tensor) -> Tensor:
        normalize_axis("Softmax", self.axis, x.ndim)
        return F.softmax(x, self.axis)

    def extra_repr(self) -> str:
        return f"axis={self.axis}"


class LogSoftmax(Module):
    """``log(softmax(x))`` along ``axis``, computed stably (``dim=`` is accepted too).

    Shape:
        input ``(*)``; output ``(*)``.
    """

    def __init__(self, axis: int = -1, dim: int | None = None) -> None:
        super().__init__()
        self.axis = int(dim if dim is not None else axis)

    def forward(self, x: Tensor) -> Tensor:
        normalize_axis("LogSoftmax", self.axis, x.ndim)
        return F.log_softmax(x, self.axis)

    def extra_repr(self) -> str:
        return f"axis={self.axis}"


class PReLU(Module):
    """Parametric ReLU (He et al., "Delving Deep into Rectifiers", 2015): ``x`` where positive,
    ``a * x`` elsewhere, with a learnt slope ``a`` (one, or one per channel), initialised to ``init``.

    Shape:
        input ``(N, C, *)`` (with ``num_parameters`` equal to 1 or C), or any shape when
        ``num_parameters=1``; output: the input's shape.
    """

    def __init__(self, num_parameters: int = 1, init: float = 0.25, dtype: Any = None) -> None:
        super().__init__()
        if not isinstance(num_parameters, (int, np.integer)) or isinstance(num_parameters, bool) or num_parameters < 1:
            raise ValueError(f"PReLU: num_parameters must be a positive int, got {num_parameters!r}")
        self.num_parameters = int(num_parameters)
        self.init = float(init)
        dtype = np.dtype(dtype or get_default_dtype())
        self.weight = Parameter(Tensor(np.full(self.num_parameters, self.init, dtype=dtype)))

    def forward(self, x: Tensor) -> Tensor:
        return F.prelu(x, self.weight)

    def extra_repr(self) -> str:
        return f"num_parameters={self.num_parameters}"
