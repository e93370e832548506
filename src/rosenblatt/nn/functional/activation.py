"""Activation functions, each one fused ``Function`` (one node in the graph, one pass forward).

The array math is in :mod:`rosenblatt.kernels.activation`: ``forward`` and ``backward_arrays``
call its kernels. ``backward`` writes the same gradient with differentiable ops (mostly in terms
of the saved input or the output), so second derivatives work. ``relu``, ``sigmoid``, ``tanh``,
``softmax`` and ``log_softmax`` are the core ops of ``rosenblatt.ops`` re-exported (``relu`` with
PyTorch's ``inplace`` argument).

``inplace=True`` (PyTorch's memory saver) writes the result into the input and returns the input
where nothing records the change: with gradients off, or for a tensor that needs none. Inside a
recorded graph the result is a new tensor with the same values (rosenblatt's graph is never
rewritten in place), and the input is left as it was.
"""

from __future__ import annotations

import math
from typing import Any

from rosenblatt.backend import get_array_module
from rosenblatt.core import Function, Tensor, constant, is_grad_enabled, sum_to_array
from rosenblatt.kernels import activation as _act
from rosenblatt.kernels.activation import SELU_ALPHA, SELU_SCALE
from rosenblatt.nn.functional._fused import composite_backward
from rosenblatt.ops import exp, log_softmax, reshape, sigmoid, softmax, tanh, where
from rosenblatt.ops import relu as _relu


def _check_tensor(name: str, x: Any) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: expected a Tensor, got {type(x).__name__}")
    return x


# False while ``export_onnx`` traces a model: the tracer names each op's result, and a result
# copied into the op's input would leave the activation out of the exported graph.
ENABLED = True


def in_place(x: Tensor, y: Tensor, inplace: bool) -> Tensor:
    """PyTorch's ``inplace=True``: ``y`` written into ``x`` and ``x`` returned, where no graph records
    the change (gradients off, or ``x`` needs none); else ``y`` (see the module docstring)."""
    if (not inplace or not ENABLED or y is x or (is_grad_enabled() and x.requires_grad)
            or y.shape != x.shape):
        return y
    x.data[...] = y.data
    x._bump()
    return x


def relu(x: Tensor, inplace: bool = False) -> Tensor:
    """``max(x, 0)``."""
    return in_place(x, _relu(x), inplace) if inplace else _relu(x)


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
        return _act.leaky_relu(x, slope)

    @staticmethod
    def backward(ctx, gy):
        x, slope = ctx.inputs
        return gy * constant(_act.leaky_relu_grad(x.data.dtype.type(1), x.data, slope)), None

    @staticmethod
    def backward_arrays(ctx, gy):
        x, slope = ctx.inputs
        return _act.leaky_relu_grad(gy, x.data, slope), None


def leaky_relu(x: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    """``x`` where positive, ``negative_slope * x`` elsewhere."""
    return in_place(x, LeakyReLUFn.apply(_check_tensor("leaky_relu", x), float(negative_slope)), inplace)


class HardtanhFn(Function):
    @staticmethod
    def forward(ctx, x, min_val, max_val):
        return _act.hardtanh(x, min_val, max_val)

    @staticmethod
    def backward(ctx, gy):
        x, min_val, max_val = ctx.inputs
        # Piecewise linear: a constant mask, so the second derivative is zero.
        mask = _act.hardtanh_grad(x.data.dtype.type(1), x.data, min_val, max_val)
        return gy * constant(mask), None, None

    @staticmethod
    def backward_arrays(ctx, gy):
        x, min_val, max_val = ctx.inputs
        return _act.hardtanh_grad(gy, x.data, min_val, max_val), None, None


def hardtanh(x: Tensor, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False) -> Tensor:
    """``x`` clipped to ``[min_val, max_val]``; the gradient is 1 strictly between them, else 0
    (0 at the kinks, as PyTorch)."""
    min_val, max_val = float(min_val), float(max_val)
    if min_val > max_val:
        raise ValueError(f"hardtanh: min_val ({min_val}) cannot be greater than max_val ({max_val})")
    return in_place(x, HardtanhFn.apply(_check_tensor("hardtanh", x), min_val, max_val), inplace)


def relu6(x: Tensor, inplace: bool = False) -> Tensor:
    """``min(max(x, 0), 6)``: ``hardtanh(x, 0, 6)``, with its gradient (0 at ``x = 0`` and ``x = 6``)."""
    return in_place(x, HardtanhFn.apply(_check_tensor("relu6", x), 0.0, 6.0), inplace)


class ELUFn(Function):
    @staticmethod
    def forward(ctx, x, alpha, scale):
        return _act.elu(x, alpha, scale)

    @staticmethod
    def backward(ctx, gy):
        x, alpha, scale = ctx.inputs
        positive = constant(x.data > 0)
        # For x <= 0: d/dx scale*alpha*(e^x - 1) = scale*alpha*e^x, in terms of the input so the
        # formula stays differentiable.
        negative = exp(where(positive, 0.0, x)) * (alpha * scale)
        return gy * where(positive, scale, negative), None, None

    @staticmethod
    def backward_arrays(ctx, gy):
        x, alpha, scale = ctx.inputs
        return _act.elu_grad(gy, x.data, alpha, scale), None, None


def elu(x: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """Exponential linear unit: ``x`` if ``x > 0`` else ``alpha * (exp(x) - 1)``."""
    return in_place(x, ELUFn.apply(_check_tensor("elu", x), float(alpha), 1.0), inplace)


def selu(x: Tensor, inplace: bool = False) -> Tensor:
    """Scaled ELU with the self-normalising constants of Klambauer et al. (2017)."""
    return in_place(x, ELUFn.apply(_check_tensor("selu", x), SELU_ALPHA, SELU_SCALE), inplace)


# -- smooth units ----------------------------------------------------------------------------


class NormalCDF(Function):
    """``Phi(x)``, the standard normal distribution function; its derivative is the density."""

    @staticmethod
    def forward(ctx, x):
        return (0.5 * (1.0 + _act.erf(x / x.dtype.type(_act.SQRT_2)))).astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, gy):
        x = ctx.inputs[0]
        return gy * (exp(x * x * -0.5) * _act.INV_SQRT_2PI)


class GELUFn(Function):
    @staticmethod
    def forward(ctx, x):
        return _act.gelu(x)

    @staticmethod
    def backward(ctx, gy):
        # d/dx x Phi(x) = Phi(x) + x phi(x), differentiable to any order.
        x = ctx.inputs[0]
        return gy * (NormalCDF.apply(x) + x * (exp(x * x * -0.5) * _act.INV_SQRT_2PI))

    @staticmethod
    def backward_arrays(ctx, gy):
        return _act.gelu_grad(gy, ctx.inputs[0].data)


class GELUTanhFn(Function):
    @staticmethod
    def forward(ctx, x):
        return _act.gelu_tanh(x)

    @staticmethod
    def backward(ctx, gy):
        x = ctx.inputs[0]
        t = tanh((x + _act.GELU_TANH_COEFF * x * x * x) * _act.SQRT_2_OVER_PI)
        dinner = (1.0 + 3 * _act.GELU_TANH_COEFF * x * x) * _act.SQRT_2_OVER_PI
        return gy * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * dinner)

    @staticmethod
    def backward_arrays(ctx, gy):
        return _act.gelu_tanh_grad(gy, ctx.inputs[0].data)


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
        return _act.silu(x)

    @staticmethod
    def backward(ctx, gy):
        x = ctx.inputs[0]
        s = sigmoid(x)
        return gy * (s * (1.0 + x * (1.0 - s)))

    @staticmethod
    def backward_arrays(ctx, gy):
        return _act.silu_grad(gy, ctx.inputs[0].data)


def silu(x: Tensor, inplace: bool = False) -> Tensor:
    """Sigmoid-weighted linear unit (swish): ``x * sigmoid(x)``."""
    return in_place(x, SiLUFn.apply(_check_tensor("silu", x)), inplace)


class SoftplusFn(Function):
    @staticmethod
    def forward(ctx, x, beta, threshold):
        return _act.softplus(x, beta, threshold)

    @staticmethod
    def backward(ctx, gy):
        x, beta, threshold = ctx.inputs
        linear = constant(x.data * beta > threshold)
        return gy * where(linear, 1.0, sigmoid(x * beta)), None, None

    @staticmethod
    def backward_arrays(ctx, gy):
        x, beta, threshold = ctx.inputs
        return _act.softplus_grad(gy, x.data, beta, threshold), None, None


def softplus(x: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """``log(1 + exp(beta * x)) / beta``; linear where ``beta * x > threshold`` (as PyTorch)."""
    return SoftplusFn.apply(_check_tensor("softplus", x), float(beta), float(threshold))


class HardsigmoidFn(Function):
    @staticmethod
    def forward(ctx, x):
        return _act.hardsigmoid(x)

    @staticmethod
    def backward(ctx, gy):
        x = ctx.inputs[0]
        # Piecewise linear: a constant slope (1/6 between the kinks), so the second derivative is zero.
        return gy * constant(_act.hardsigmoid_grad(x.data.dtype.type(1), x.data))

    @staticmethod
    def backward_arrays(ctx, gy):
        return _act.hardsigmoid_grad(gy, ctx.inputs[0].data)


def hardsigmoid(x: Tensor, inplace: bool = False) -> Tensor:
    """Piecewise-linear sigmoid ``clip(x + 3, 0, 6) / 6``: 0 up to ``x = -3``, 1 from ``x = 3``.

    The gradient is ``1/6`` strictly between -3 and 3, else 0 (0 at the kinks, as PyTorch).
    """
    return in_place(x, HardsigmoidFn.apply(_check_tensor("hardsigmoid", x)), inplace)


class HardswishFn(Function):
    @staticmethod
    def forward(ctx, x):
        return _act.hardswish(x)

    @staticmethod
    def backward(ctx, gy):
        x = ctx.inputs[0]
        # x / 3 + 1/2 on the middle piece, differentiable (second derivative 1/3 there).
        slope = where(x.data <= -3, 0.0, where(x.data < 3, x / 3.0 + 0.5, 1.0))
        return gy * slope

    @staticmethod
    def backward_arrays(ctx, gy):
        return _act.hardswish_grad(gy, ctx.inputs[0].data)


def hardswish(x: Tensor, inplace: bool = False) -> Tensor:
    """Hard swish ``x * clip(x + 3, 0, 6) / 6`` (Howard et al., "Searching for MobileNetV3", 2019).

    The gradient is 0 for ``x <= -3``, ``x / 3 + 1/2`` for ``-3 < x < 3`` and 1 for ``x >= 3``:
    PyTorch's values at the kinks (0 at -3, 1 at 3).
    """
    return in_place(x, HardswishFn.apply(_check_tensor("hardswish", x)), inplace)


class MishFn(Function):
    @staticmethod
    def forward(ctx, x):
        return _act.mish(x)

    @staticmethod
    def backward(ctx, gy):
        x = ctx.inputs[0]
        # Softplus without PyTorch's linear threshold (mish has none); differentiable to any order.
        t = tanh(SoftplusFn.apply(x, 1.0, math.inf))
        return gy * (t + x * sigmoid(x) * (1.0 - t * t))

    @staticmethod
    def backward_arrays(ctx, gy):
        return _act.mish_grad(gy, ctx.inputs[0].data)


def mish(x: Tensor, inplace: bool = False) -> Tensor:
    """Mish ``x * tanh(softplus(x))`` (Misra, "Mish: A Self Regularized Non-Monotonic Activation
    Function", 2019); smooth, computed without overflow for large ``|x|``."""
    return in_place(x, MishFn.apply(_check_tensor("mish", x)), inplace)


class PReLUFn(Function):
    """``x`` where ``x > 0``, else ``slope * x`` (``slope`` already shaped to broadcast): one node, so
    that ONNX export sees the operation (a ``where`` would carry its condition as a constant)."""

    @staticmethod
    def forward(ctx, x, slope):
        xp = get_array_module(x)
        return xp.where(x > 0, x, x * slope)

    @staticmethod
    def backward(ctx, gy):
        return composite_backward(lambda x_, s_: where(x_.data > 0, x_, x_ * s_), ctx.inputs,
                                  ctx.needs_input_grad, [gy])

    @staticmethod
    def backward_arrays(ctx, gy):
        x, slope = ctx.inputs
        xd, sd = x.data, slope.data
        xp = get_array_module(xd)
        positive = xd > 0
        gx = xp.where(positive, gy, gy * sd) if ctx.needs_input_grad[0] else None
        gs = None
        if ctx.needs_input_grad[1]:  # sum(x * gy) over the negative part, down to the slope's shape
            gs = sum_to_array(xp.where(positive, 0, xd * gy).astype(sd.dtype, copy=False), sd.shape)
        return gx, gs


def prelu(input: Tensor, weight: Tensor) -> Tensor:
    """Parametric ReLU (He et al., 2015): ``x`` where positive, ``weight * x`` elsewhere.

    ``weight`` holds one slope, or one per channel (axis 1 of the input, as in PyTorch: an input
    of fewer than 2 dimensions has one channel).
    One node whose gradients are those of ``where(x > 0, x, x * slope)`` (``gy`` where ``x > 0``,
    else ``weight * gy``; the slope gets ``sum(x * gy)`` over its negative part, as in PyTorch),
    differentiable again.

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
    return PReLUFn.apply(input, slope)


__all__ = ["elu", "gelu", "hardsigmoid", "hardswish", "hardtanh", "leaky_relu", "log_softmax", "mish", "prelu",
           "relu", "relu6", "selu", "sigmoid", "silu", "softmax", "softplus", "step", "tanh"]
