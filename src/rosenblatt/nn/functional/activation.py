"""Activation functions, each one fused ``Function`` (one node in the graph, one pass forward).

Backward formulas are written with differentiable ops (mostly in terms of the saved input or the
output), so second derivatives work. ``relu``, ``sigmoid``, ``tanh``, ``softmax`` and
``log_softmax`` are the core ops of ``rosenblatt.ops`` re-exported.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from rosenblatt.backend import get_array_module
from rosenblatt.core import Function, Tensor
from rosenblatt.ops import exp, log_softmax, relu, reshape, sigmoid, softmax, tanh, where

# SELU's constants (Klambauer et al., 2017), the same digits PyTorch uses.
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946

_SQRT_2 = math.sqrt(2.0)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def _check_tensor(name: str, x: Any) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: expected a Tensor, got {type(x).__name__}")
    return x


def _const(array: Any) -> Tensor:
    return Tensor._make(array)


# -- step (the perceptron's threshold unit) --------------------------------------------------


class StepFn(Function):
    @staticmethod
    def forward(ctx, x, threshold):
        return (x >= threshold).astype(x.dtype)

    @staticmethod
    def backward(ctx, gy):
        # Piecewise constant: the derivative is zero wherever it exists.
        return gy * 0.0, None


def step(x: Tensor, threshold: float = 0.0) -> Tensor:
    """Heaviside step: 1 where ``x >= threshold``, else 0 (Rosenblatt's threshold unit).

    Its gradient is zero everywhere, so it cannot be trained by backpropagation; the perceptron
    learning rule (``rb.models.Perceptron``) trains it instead.
    """
    return StepFn.apply(_check_tensor("step", x), float(threshold))


# -- rectifiers ------------------------------------------------------------------------------


class LeakyReLUFn(Function):
    @staticmethod
    def forward(ctx, x, slope):
        xp = get_array_module(x)
        return xp.where(x > 0, x, x * x.dtype.type(slope))

    @staticmethod
    def backward(ctx, gy):
        x, slope = ctx.inputs
        xd = x.data
        factor = get_array_module(xd).where(xd > 0, xd.dtype.type(1), xd.dtype.type(slope))
        return gy * _const(factor), None


def leaky_relu(x: Tensor, negative_slope: float = 0.01) -> Tensor:
    """``x`` where positive, ``negative_slope * x`` elsewhere."""
    return LeakyReLUFn.apply(_check_tensor("leaky_relu", x), float(negative_slope))


class ELUFn(Function):
    @staticmethod
    def forward(ctx, x, alpha, scale):
        xp = get_array_module(x)
        negative = xp.expm1(xp.minimum(x, 0)) * x.dtype.type(alpha)
        y = xp.where(x > 0, x, negative)
        if scale != 1.0:
            y *= x.dtype.type(scale)
        return y

    @staticmethod
    def backward(ctx, gy):
        x, alpha, scale = ctx.inputs
        positive = _const(x.data > 0)
        # For x <= 0: d/dx scale*alpha*(e^x - 1) = scale*alpha*e^x, in terms of the input so the
        # formula stays differentiable.
        negative = exp(where(positive, 0.0, x)) * (alpha * scale)
        return gy * where(positive, scale, negative), None, None


def elu(x: Tensor, alpha: float = 1.0) -> Tensor:
    """Exponential linear unit: ``x`` if ``x > 0`` else ``alpha * (exp(x) - 1)``."""
    return ELUFn.apply(_check_tensor("elu", x), float(alpha), 1.0)


def selu(x: Tensor) -> Tensor:
    """Scaled ELU with the self-normalising constants of Klambauer et al. (2017)."""
    return ELUFn.apply(_check_tensor("selu", x), SELU_ALPHA, SELU_SCALE)


# -- smooth units ----------------------------------------------------------------------------


def _erf(x: Any) -> Any:
    """Element-wise error function on a raw array (SciPy/CuPy's when present, else math.erf)."""
    xp = get_array_module(x)
    if xp is not np:
        from cupyx.scipy.special import erf as cupy_erf

        return cupy_erf(x)
    try:
        from scipy.special import erf as scipy_erf
    except ImportError:  # exact but slower: math.erf element by element
        return np.vectorize(math.erf, otypes=[x.dtype])(x)
    return scipy_erf(x).astype(x.dtype, copy=False)


class GELUGrad(Function):
    """d GELU(x)/dx for the exact form: ``Phi(x) + x * phi(x)``; its own derivative is
    ``phi(x) * (2 - x^2)``, which makes GELU twice differentiable."""

    once_differentiable = True  # third derivatives are not needed by anyone

    @staticmethod
    def forward(ctx, x):
        xp = get_array_module(x)
        pdf = xp.exp(-0.5 * x * x) * x.dtype.type(_INV_SQRT_2PI)
        cdf = 0.5 * (1.0 + _erf(x / x.dtype.type(_SQRT_2)))
        return (cdf + x * pdf).astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, gy):
        xd = ctx.inputs[0].data
        xp = get_array_module(xd)
        pdf = xp.exp(-0.5 * xd * xd) * xd.dtype.type(_INV_SQRT_2PI)
        return gy * _const(pdf * (2.0 - xd * xd))


class GELUFn(Function):
    @staticmethod
    def forward(ctx, x):
        return (0.5 * x * (1.0 + _erf(x / x.dtype.type(_SQRT_2)))).astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, gy):
        return gy * GELUGrad.apply(ctx.inputs[0])


class GELUTanhFn(Function):
    @staticmethod
    def forward(ctx, x):
        xp = get_array_module(x)
        inner = x.dtype.type(_SQRT_2_OVER_PI) * (x + 0.044715 * x * x * x)
        return 0.5 * x * (1.0 + xp.tanh(inner))

    @staticmethod
    def backward(ctx, gy):
        x = ctx.inputs[0]
        t = tanh((x + 0.044715 * x * x * x) * _SQRT_2_OVER_PI)
        dinner = (1.0 + 3 * 0.044715 * x * x) * _SQRT_2_OVER_PI
        return gy * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * dinner)


def gelu(x: Tensor, approximate: str = "none") -> Tensor:
    """Gaussian error linear unit ``x * Phi(x)`` (Hendrycks & Gimpel, 2016).

    ``approximate="tanh"`` uses ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``, as PyTorch.
    """
    _check_tensor("gelu", x)
    if approximate == "none":
        return GELUFn.apply(x)
    if approximate == "tanh":
        return GELUTanhFn.apply(x)
    raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")


class SiLUFn(Function):
    @staticmethod
    def forward(ctx, x):
        xp = get_array_module(x)
        s = xp.tanh(x * 0.5)
        s += 1.0
        s *= 0.5
        return x * s

    @staticmethod
    def backward(ctx, gy):
        x = ctx.inputs[0]
        s = sigmoid(x)
        return gy * (s * (1.0 + x * (1.0 - s)))


def silu(x: Tensor) -> Tensor:
    """Sigmoid-weighted linear unit (swish): ``x * sigmoid(x)``."""
    return SiLUFn.apply(_check_tensor("silu", x))


class SoftplusFn(Function):
    @staticmethod
    def forward(ctx, x, beta, threshold):
        xp = get_array_module(x)
        bx = x * x.dtype.type(beta)
        # log(1 + e^z) = max(z, 0) + log1p(e^-|z|): no overflow for large z
        soft = (xp.maximum(bx, 0) + xp.log1p(xp.exp(-xp.abs(bx)))) / x.dtype.type(beta)
        return xp.where(bx > threshold, x, soft)

    @staticmethod
    def backward(ctx, gy):
        x, beta, threshold = ctx.inputs
        linear = _const(x.data * beta > threshold)
        return gy * where(linear, 1.0, sigmoid(x * beta)), None, None


def softplus(x: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """``log(1 + exp(beta * x)) / beta``; linear where ``beta * x > threshold`` (as PyTorch)."""
    return SoftplusFn.apply(_check_tensor("softplus", x), float(beta), float(threshold))


def prelu(input: Tensor, weight: Tensor) -> Tensor:
    """Parametric ReLU (He et al., 2015): ``x`` where positive, ``weight * x`` elsewhere.

    ``weight`` holds one slope, or one per channel (axis 1 of the input, as in PyTorch: an input
    of fewer than 2 dimensions has one channel).
    Composed of ``where`` and a product, so the gradients (``gy`` where ``x > 0``, else
    ``weight * gy``; the slope gets ``sum(x * gy)`` over its negative part) are PyTorch's and
    second derivatives come for free.

    Shape:
        input ``(N, C, *)``, or any shape with a single slope; weight ``(1,)`` or ``(C,)``;
        output: the input's shape.
    """
    if not isinstance(input, Tensor) or not isinstance(weight, Tensor):
        raise TypeError(f"prelu: expected tensors for input and weight, got {type(input).__name__} and "
                        f"{type(weight).__name__}")
    if weight.ndim != 1:
        raise ValueError(f"prelu: expected a 1-D weight of shape (1,) or (C,), got shape {weight.shape}")
    slopes = weight.shape[0]
    if slopes == 1:
        slope = reshape(weight, ())
    else:
        if input.ndim < 2 or input.shape[1] != slopes:
            raise ValueError(f"prelu: weight has {slopes} slopes, so the input needs {slopes} channels in "
                             f"dimension 1; got input of shape {input.shape}")
        slope = reshape(weight, (slopes,) + (1,) * (input.ndim - 2))
    return where(input.data > 0, input, input * slope)


__all__ = ["elu", "gelu", "leaky_relu", "log_softmax", "prelu", "relu", "selu", "sigmoid", "silu", "softmax",
           "softplus", "step", "tanh"]
