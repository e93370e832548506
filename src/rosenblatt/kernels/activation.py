"""Activation kernels: forward values and gradients on raw arrays (NumPy, or CuPy: same code).

Each activation has a forward kernel ``f(x, ...)`` and a gradient kernel that returns
``gy * f'(x)`` from the upstream gradient ``gy`` and whatever the derivative is cheapest from:
the output ``y`` (``relu``, ``tanh``, ``sigmoid``) or the input ``x`` (the others). The
differentiable ``Function`` of each activation (:mod:`rosenblatt.ops.elementwise`,
:mod:`rosenblatt.nn.functional.activation`) calls the forward kernel in ``forward`` and the
gradient kernel in ``backward_arrays``; its ``backward`` keeps the same formula in tensor ops for
second derivatives. Results keep the input's dtype.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from rosenblatt import kernels
from rosenblatt.backend import get_array_module

# From these sizes on, tanh and its gradient run in oneDNN (when active): NumPy's tanh is
# vectorised but single-threaded, and its gradient takes three passes. Measured on 2 threads:
# 301,056 elements 94 -> 68 us forward and 142 -> 51 us backward; 102,400 elements equal forward,
# 38 -> 21 us backward.
TANH_ONEDNN_MIN = 1 << 18
TANH_GRAD_ONEDNN_MIN = 1 << 16
# The ReLU gradient likewise (NumPy: a mask, then a product): 1M elements 636 -> 313 us,
# 262,144 elements 164 -> 45 us, 65,536 elements 23 -> 18 us.
RELU_GRAD_ONEDNN_MIN = 1 << 16
# And the ReLU itself (NumPy's maximum runs on one thread): 2M elements 598 -> 330 us, 262,144
# elements 56 -> 26 us, 131,072 elements 26 -> 15 us, 65,536 elements 13 -> 12 us.
RELU_ONEDNN_MIN = 1 << 17

# SELU's constants (Klambauer et al., 2017), the same digits PyTorch uses.
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946

SQRT_2 = math.sqrt(2.0)
SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
GELU_TANH_COEFF = 0.044715


def relu(x: Any) -> Any:
    """``max(x, 0)`` (threaded in oneDNN for big float32 arrays when its kernels are active)."""
    if type(x) is np.ndarray and x.size >= RELU_ONEDNN_MIN and kernels.use_onednn(x):
        from rosenblatt.kernels.onednn import eltwise

        y = eltwise.relu(x)
        if y is not None:
            return y
    return get_array_module(x).maximum(x, 0)


def relu_grad(gy: Any, y: Any) -> Any:
    """``gy`` where the ReLU output ``y`` is positive, else 0 (one threaded pass in oneDNN for big
    float32 arrays when its kernels are active)."""
    if type(y) is np.ndarray and y.size >= RELU_GRAD_ONEDNN_MIN and kernels.use_onednn(y, gy):
        from rosenblatt.kernels.onednn import eltwise

        gx = eltwise.relu_grad(gy, y)
        if gx is not None:
            return gx
    # A multiply by the mask: several times faster than a masked select (np.where) in NumPy.
    return gy * (y > 0)


def tanh(x: Any) -> Any:
    """``tanh(x)`` (threaded in oneDNN for big float32 arrays when its kernels are active)."""
    if type(x) is np.ndarray and x.size >= TANH_ONEDNN_MIN and kernels.use_onednn(x):
        from rosenblatt.kernels.onednn import eltwise

        y = eltwise.tanh(x)
        if y is not None:
            return y
    return get_array_module(x).tanh(x)


def tanh_grad(gy: Any, y: Any) -> Any:
    """``gy * (1 - y²)`` from the output ``y`` (one threaded pass in oneDNN for big float32 arrays
    when its kernels are active)."""
    if type(y) is np.ndarray and y.size >= TANH_GRAD_ONEDNN_MIN and kernels.use_onednn(y, gy):
        from rosenblatt.kernels.onednn import eltwise

        gx = eltwise.tanh_grad(gy, y)
        if gx is not None:
            return gx
    out = y * y
    get_array_module(y).subtract(1.0, out, out=out)
    out *= gy
    return out


def sigmoid(x: Any) -> Any:
    """``1 / (1 + exp(-x))`` without overflow, full relative precision for large negative ``x``."""
    xp = get_array_module(x)
    # sigmoid(x) = 1 / (1 + e) for x >= 0 and e / (1 + e) for x < 0, with e = exp(-|x|).
    e = xp.exp(-xp.abs(x))
    denominator = 1.0 + e
    return xp.where(x >= 0, 1.0, e) / denominator


def sigmoid_grad(gy: Any, y: Any) -> Any:
    """``gy * y * (1 - y)`` from the output ``y``."""
    out = 1.0 - y
    out *= y
    out *= gy
    return out


def leaky_relu(x: Any, slope: float) -> Any:
    """``x`` where positive, ``slope * x`` elsewhere."""
    return get_array_module(x).where(x > 0, x, x * x.dtype.type(slope))


def leaky_relu_grad(gy: Any, x: Any, slope: float) -> Any:
    """``gy`` where ``x > 0``, ``slope * gy`` elsewhere."""
    factor = get_array_module(x).where(x > 0, x.dtype.type(1), x.dtype.type(slope))
    return gy * factor


def hardtanh(x: Any, min_val: float, max_val: float) -> Any:
    """``x`` clipped to ``[min_val, max_val]`` (``relu6`` is ``hardtanh(x, 0, 6)``)."""
    return get_array_module(x).clip(x, x.dtype.type(min_val), x.dtype.type(max_val))


def hardtanh_grad(gy: Any, x: Any, min_val: float, max_val: float) -> Any:
    """``gy`` where ``min_val < x < max_val``, else 0: PyTorch's gradient, 0 at both kinks."""
    return gy * ((x > min_val) & (x < max_val))


def hardsigmoid(x: Any) -> Any:
    """``clip(x + 3, 0, 6) / 6``: 0 up to ``x = -3``, 1 from ``x = 3``, linear between."""
    xp = get_array_module(x)
    y = x + x.dtype.type(3)
    xp.clip(y, 0, 6, out=y)
    y /= x.dtype.type(6)
    return y


def hardsigmoid_grad(gy: Any, x: Any) -> Any:
    """``gy / 6`` where ``-3 < x < 3``, else 0 (PyTorch's gradient: 0 at both kinks)."""
    factor = get_array_module(x).where((x > -3) & (x < 3), x.dtype.type(1.0 / 6.0), x.dtype.type(0))
    return gy * factor


def hardswish(x: Any) -> Any:
    """``x * clip(x + 3, 0, 6) / 6`` (Howard et al., 2019), PyTorch's order of operations."""
    xp = get_array_module(x)
    y = x + x.dtype.type(3)
    xp.clip(y, 0, 6, out=y)
    y *= x
    y /= x.dtype.type(6)
    return y


def hardswish_derivative(x: Any) -> Any:
    """0 where ``x <= -3``, ``x / 3 + 1/2`` where ``-3 < x < 3``, 1 from ``x = 3`` on.

    PyTorch's convention at the kinks: the derivative is 0 at ``x = -3`` and 1 at ``x = 3``
    (the one-sided values from outside the middle piece); a NaN input gets 1, as in PyTorch.
    """
    xp = get_array_module(x)
    middle = x / x.dtype.type(3) + x.dtype.type(0.5)
    return xp.where(x <= -3, x.dtype.type(0), xp.where(x < 3, middle, x.dtype.type(1)))


def hardswish_grad(gy: Any, x: Any) -> Any:
    """``gy`` times :func:`hardswish_derivative`."""
    return gy * hardswish_derivative(x)


def _tanh_softplus(x: Any) -> Any:
    """``tanh(log(1 + exp(x)))``, the softplus written ``max(x, 0) + log1p(exp(-|x|))`` so that
    no ``exp`` overflows (PyTorch's ``log1p(exp(x))`` overflows to inf for large ``x``, where
    the tanh is 1 either way)."""
    xp = get_array_module(x)
    softplus_x = xp.log1p(xp.exp(-xp.abs(x)))
    softplus_x += xp.maximum(x, 0)
    return xp.tanh(softplus_x, out=softplus_x)


def mish(x: Any) -> Any:
    """``x * tanh(softplus(x))`` (Misra, 2019)."""
    return x * _tanh_softplus(x)


def mish_grad(gy: Any, x: Any) -> Any:
    """``gy * (t + x * sigmoid(x) * (1 - t²))`` with ``t = tanh(softplus(x))``."""
    t = _tanh_softplus(x)
    return gy * (t + x * sigmoid(x) * (1.0 - t * t))


def elu(x: Any, alpha: float, scale: float = 1.0) -> Any:
    """``scale * (x if x > 0 else alpha * (exp(x) - 1))`` (SELU with its constants)."""
    xp = get_array_module(x)
    negative = xp.expm1(xp.minimum(x, 0)) * x.dtype.type(alpha)
    y = xp.where(x > 0, x, negative)
    if scale != 1.0:
        y *= x.dtype.type(scale)
    return y


def elu_grad(gy: Any, x: Any, alpha: float, scale: float = 1.0) -> Any:
    """``gy * scale`` where ``x > 0``, ``gy * scale * alpha * exp(x)`` elsewhere."""
    xp = get_array_module(x)
    factor = xp.where(x > 0, x.dtype.type(scale), xp.exp(xp.minimum(x, 0)) * x.dtype.type(alpha * scale))
    return gy * factor


def erf(x: Any) -> Any:
    """Element-wise error function (SciPy's or CuPy's when present, else ``math.erf`` per element)."""
    xp = get_array_module(x)
    if xp is not np:
        from cupyx.scipy.special import erf as cupy_erf

        return cupy_erf(x)
    try:
        from scipy.special import erf as scipy_erf
    except ImportError:  # exact but slower: math.erf element by element
        return np.vectorize(math.erf, otypes=[x.dtype])(x)
    return scipy_erf(x).astype(x.dtype, copy=False)


def gelu(x: Any) -> Any:
    """Exact GELU ``x * Phi(x)``."""
    return (0.5 * x * (1.0 + erf(x / x.dtype.type(SQRT_2)))).astype(x.dtype, copy=False)


def gelu_derivative(x: Any) -> Any:
    """``Phi(x) + x * phi(x)``: the derivative of the exact GELU."""
    xp = get_array_module(x)
    pdf = xp.exp(-0.5 * x * x) * x.dtype.type(INV_SQRT_2PI)
    cdf = 0.5 * (1.0 + erf(x / x.dtype.type(SQRT_2)))
    return (cdf + x * pdf).astype(x.dtype, copy=False)


def gelu_grad(gy: Any, x: Any) -> Any:
    """``gy * (Phi(x) + x * phi(x))``."""
    return gy * gelu_derivative(x)


def gelu_tanh(x: Any) -> Any:
    """GELU's tanh approximation ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x³)))``."""
    xp = get_array_module(x)
    inner = x.dtype.type(SQRT_2_OVER_PI) * (x + GELU_TANH_COEFF * x * x * x)
    return 0.5 * x * (1.0 + xp.tanh(inner))


def gelu_tanh_grad(gy: Any, x: Any) -> Any:
    """The gradient of :func:`gelu_tanh`."""
    xp = get_array_module(x)
    t = xp.tanh((x + GELU_TANH_COEFF * x * x * x) * x.dtype.type(SQRT_2_OVER_PI))
    dinner = (1.0 + 3 * GELU_TANH_COEFF * x * x) * x.dtype.type(SQRT_2_OVER_PI)
    return gy * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * dinner)


def silu(x: Any) -> Any:
    """``x * sigmoid(x)``, the sigmoid as ``(tanh(x / 2) + 1) / 2`` (no overflow)."""
    xp = get_array_module(x)
    s = xp.tanh(x * 0.5)
    s += 1.0
    s *= 0.5
    return x * s


def silu_grad(gy: Any, x: Any) -> Any:
    """``gy * s * (1 + x * (1 - s))`` with ``s = sigmoid(x)``."""
    s = sigmoid(x)
    return gy * (s * (1.0 + x * (1.0 - s)))


def softplus(x: Any, beta: float, threshold: float) -> Any:
    """``log(1 + exp(beta x)) / beta``, linear where ``beta x > threshold`` (as PyTorch)."""
    xp = get_array_module(x)
    bx = x * x.dtype.type(beta)
    # log(1 + e^z) = max(z, 0) + log1p(e^-|z|): no overflow for large z
    soft = (xp.maximum(bx, 0) + xp.log1p(xp.exp(-xp.abs(bx)))) / x.dtype.type(beta)
    return xp.where(bx > threshold, x, soft)


def softplus_grad(gy: Any, x: Any, beta: float, threshold: float) -> Any:
    """``gy`` where linear, ``gy * sigmoid(beta x)`` elsewhere."""
    bx = x * x.dtype.type(beta)
    return gy * get_array_module(x).where(bx > threshold, x.dtype.type(1), sigmoid(bx))
