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
# The ReLU itself stays NumPy's maximum: oneDNN's relu maps NaN to 0 (PyTorch and NumPy keep NaN,
# and a NaN must reach the loss), although it was faster on two threads (2M elements 598 -> 330 us).
# The other activations with a oneDNN eltwise algorithm of the same formula, measured (minimum of
# several rounds, in microseconds) NumPy -> oneDNN at 65,536 / 262,144 / 2,097,152 elements, on one
# OpenMP thread (what the thread policy runs on a busy machine; two threads only gain more):
#   sigmoid         336 -> 44,    1981 -> 134,   13987 -> 1476
#   its gradient     22 -> 22,     149 -> 130,    2080 -> 1039  (from y: NumPy takes three passes)
#   gelu (erf)      981 -> 37,    4175 -> 128,   34640 -> 1255
#   its gradient   1074 -> 160,   4645 -> 648,   39879 -> 5392
#   gelu (tanh)      77 -> 40,     503 -> 157,    6543 -> 1209
#   its gradient    175 -> 105,   1063 -> 433,   13584 -> 3423
#   silu             52 -> 37,     291 -> 141,    4385 -> 981
#   its gradient    511 -> 51,    2352 -> 188,   25431 -> 1742
#   leaky_relu      253 -> 17,    1674 -> 67,    13800 -> 961
#   hardtanh grad    32 -> 24,     174 -> 125,    1761 -> 1047
# Not routed: ELU/SELU (oneDNN
# computes exp(x) - 1, which loses the relative precision of expm1 near 0, and gives a NaN input
# the gradient gy), softplus (soft_relu loses the small values of x < -5 and can go negative),
# mish (wrong far tails, an infinite gradient for large x), hardswish (x * (x/6 + 1/2) is not
# PyTorch's x * (x + 3) / 6: thousands of ulp near x = -3), hardsigmoid (maps NaN to 1, and
# computes x/6 + 1/2, so the gradient is 0 already at the float below 3), the forward of
# hardtanh/relu6 (clip maps NaN to a bound where PyTorch keeps NaN; no faster either), the
# leaky_relu gradient (a NaN input gets gy, PyTorch slope * gy) and leaky_relu with slope 0
# (oneDNN gives 0 for -inf where PyTorch's -inf * 0 is NaN).
# Smaller arrays (down to eltwise.ALG_MIN_ELEMENTS), measured NumPy (with SciPy's erf) -> oneDNN
# in microseconds at 1,024 / 4,096 / 16,384 elements, two threads:
#   gelu            7.8 -> 7.7,   27 -> 8.2,   137 -> 11
#   its gradient     13 -> 9.4,   36 -> 11,    166 -> 16
#   silu            2.9 -> 7.3,  5.1 -> 8.7,    15 -> 11
#   its gradient     15 -> 9.5,   28 -> 9.5,   166 -> 14
# (a GELU MLP layer at batch 128, 256 features, spent 0.3 ms in NumPy's erf each way).
SIGMOID_ONEDNN_MIN = 1 << 16
SIGMOID_GRAD_ONEDNN_MIN = 1 << 18
GELU_ONEDNN_MIN = 1 << 11
GELU_GRAD_ONEDNN_MIN = 1 << 10
GELU_TANH_ONEDNN_MIN = 1 << 16
GELU_TANH_GRAD_ONEDNN_MIN = 1 << 16
SILU_ONEDNN_MIN = 1 << 14
SILU_GRAD_ONEDNN_MIN = 1 << 11
LEAKY_RELU_ONEDNN_MIN = 1 << 16
HARDTANH_GRAD_ONEDNN_MIN = 1 << 16
# Softmax (oneDNN's softmax primitive), NumPy -> oneDNN in microseconds, rows of 10 / 64 entries:
# 1,024 elements forward 13 -> 8.3 / 6.3 -> 7.9, backward 4.4 -> 8.7 / 2.8 -> 12; 4,096 elements
# forward 43 -> 12 / 17 -> 10, backward 12 -> 11 / 5.9 -> 9.5; 65,536 elements forward 551 -> 80 /
# 198 -> 29, backward 153 -> 44 / 65 -> 17 (NumPy's reductions along a short last axis are slow).
SOFTMAX_ONEDNN_MIN = 1 << 12

# SELU's constants (Klambauer et al., 2017), the same digits PyTorch uses.
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946

SQRT_2 = math.sqrt(2.0)
SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
GELU_TANH_COEFF = 0.044715


def relu(x: Any) -> Any:
    """``max(x, 0)`` (NaN stays NaN)."""
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


def _onednn_forward(x: Any, min_size: int, alg: str, alpha: float = 0.0, beta: float = 0.0) -> Any:
    """oneDNN eltwise ``alg`` (a name in :mod:`rosenblatt.kernels.onednn.eltwise`, ``ELTWISE_*``)
    on ``x`` when it is a float32 NumPy array of at least ``min_size`` elements and the oneDNN
    kernels are active; ``None`` otherwise, or when oneDNN declines."""
    if type(x) is np.ndarray and x.size >= min_size and kernels.use_onednn(x):
        from rosenblatt.kernels.onednn import eltwise

        return eltwise.forward(x, getattr(eltwise, alg), alpha, beta)
    return None


def _onednn_backward(gy: Any, data: Any, min_size: int, alg: str, alpha: float = 0.0, beta: float = 0.0) -> Any:
    """The gradient ``gy * f'`` of oneDNN eltwise ``alg`` from ``data`` (its input, or its output
    for a ``*_USE_DST_FOR_BWD`` algorithm), under the same conditions as :func:`_onednn_forward`
    (``gy`` too must be a float32 array of ``data``'s shape); ``None`` otherwise."""
    if (type(data) is np.ndarray and data.size >= min_size and type(gy) is np.ndarray
            and kernels.use_onednn(data, gy)):
        from rosenblatt.kernels.onednn import eltwise

        return eltwise.backward(gy, data, getattr(eltwise, alg), alpha, beta)
    return None


def sigmoid(x: Any) -> Any:
    """``1 / (1 + exp(-x))`` without overflow, full relative precision for large negative ``x``
    (threaded in oneDNN for big float32 arrays when its kernels are active: the same values
    within a few ulp, except that results below float32's normal range, ``x < -87.3``, are 0)."""
    y = _onednn_forward(x, SIGMOID_ONEDNN_MIN, "ELTWISE_LOGISTIC_USE_DST_FOR_BWD")
    if y is not None:
        return y
    xp = get_array_module(x)
    # sigmoid(x) = 1 / (1 + e) for x >= 0 and e / (1 + e) for x < 0, with e = exp(-|x|).
    e = xp.exp(-xp.abs(x))
    denominator = 1.0 + e
    return xp.where(x >= 0, 1.0, e) / denominator


def sigmoid_grad(gy: Any, y: Any) -> Any:
    """``gy * y * (1 - y)`` from the output ``y`` (one pass in oneDNN for big float32 arrays when
    its kernels are active)."""
    gx = _onednn_backward(gy, y, SIGMOID_GRAD_ONEDNN_MIN, "ELTWISE_LOGISTIC_USE_DST_FOR_BWD")
    if gx is not None:
        return gx
    out = 1.0 - y
    out *= y
    out *= gy
    return out


def leaky_relu(x: Any, slope: float) -> Any:
    """``x`` where positive, ``slope * x`` elsewhere (in oneDNN, the same values, for big float32
    arrays when its kernels are active)."""
    if slope != 0.0:  # with alpha 0, oneDNN's relu gives 0 (not NaN) for -inf and +0 for x < 0
        y = _onednn_forward(x, LEAKY_RELU_ONEDNN_MIN, "ELTWISE_RELU", slope)
        if y is not None:
            return y
    return get_array_module(x).where(x > 0, x, x * x.dtype.type(slope))


def leaky_relu_grad(gy: Any, x: Any, slope: float) -> Any:
    """``gy`` where ``x > 0``, ``slope * gy`` elsewhere."""
    factor = get_array_module(x).where(x > 0, x.dtype.type(1), x.dtype.type(slope))
    return gy * factor


def hardtanh(x: Any, min_val: float, max_val: float) -> Any:
    """``x`` clipped to ``[min_val, max_val]`` (``relu6`` is ``hardtanh(x, 0, 6)``)."""
    return get_array_module(x).clip(x, x.dtype.type(min_val), x.dtype.type(max_val))


def hardtanh_grad(gy: Any, x: Any, min_val: float, max_val: float) -> Any:
    """``gy`` where ``min_val < x < max_val``, else 0: PyTorch's gradient, 0 at both kinks (and for
    a NaN ``x``); oneDNN's ``clip_v2`` gradient, the same, for big float32 arrays when its kernels
    are active."""
    gx = _onednn_backward(gy, x, HARDTANH_GRAD_ONEDNN_MIN, "ELTWISE_CLIP_V2", min_val, max_val)
    if gx is not None:
        return gx
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


def softmax(x: Any, axis: int, log: bool = False) -> Any:
    """``exp(x) / sum(exp(x))`` along ``axis`` (``log=True``: its logarithm, ``x - logsumexp(x)``),
    stable: the maximum is subtracted first. oneDNN's softmax primitive (one threaded pass) for
    float32 arrays of :data:`SOFTMAX_ONEDNN_MIN` elements or more when its kernels are active.

    A row holding NaN or ``+inf``, or only ``-inf``, is NaN throughout, as in PyTorch. oneDNN makes
    only some of its entries NaN, so an output with a NaN (found by its maximum, a fast pass: 42 us
    per million entries) is computed again by NumPy."""
    if type(x) is np.ndarray and x.size >= SOFTMAX_ONEDNN_MIN and kernels.use_onednn(x):
        from rosenblatt.kernels.onednn import softmax as dnn

        y = dnn.forward(x, axis, log)
        if y is not None and not np.isnan(y.max()):
            return y
    xp = get_array_module(x)
    with np.errstate(invalid="ignore"):  # a row of -inf: inf - inf, NaN as in PyTorch, without a warning
        y = x - x.max(axis=axis, keepdims=True)
    if log:
        y -= xp.log(xp.exp(y).sum(axis=axis, keepdims=True))
        return y
    xp.exp(y, out=y)
    y /= y.sum(axis=axis, keepdims=True)
    return y


def softmax_grad(gy: Any, y: Any, axis: int, log: bool = False) -> Any:
    """The input gradient of :func:`softmax` from its output ``y``: ``y * (gy - sum(gy * y))``
    (``log=True``: ``gy - exp(y) * sum(gy)``); one oneDNN pass under :func:`softmax`'s conditions.
    A log-softmax gradient needs an output without NaN (oneDNN's gradient of a NaN row is ``-inf``,
    PyTorch's NaN); a softmax gradient of a NaN row is NaN either way, so it skips that check."""
    if (type(y) is np.ndarray and y.size >= SOFTMAX_ONEDNN_MIN and type(gy) is np.ndarray
            and kernels.use_onednn(y, gy) and not (log and np.isnan(y.max()))):
        from rosenblatt.kernels.onednn import softmax as dnn

        gx = dnn.backward(gy, y, axis, log)
        if gx is not None:
            return gx
    if log:
        p = get_array_module(gy).exp(y)
        p *= gy.sum(axis=axis, keepdims=True)
        return gy - p
    gx = y * gy
    gx -= y * gx.sum(axis=axis, keepdims=True)
    return gx


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
    """Exact GELU ``x * Phi(x)`` (in oneDNN for big float32 arrays when its kernels are active:
    PyTorch's values, which differ from this formula's in the last bits where ``1 + erf`` cancels,
    ``x < -3``, and give NaN for ``x = inf``, inf for ``x`` above ~1.7e38)."""
    y = _onednn_forward(x, GELU_ONEDNN_MIN, "ELTWISE_GELU_ERF")
    if y is not None:
        return y
    return (0.5 * x * (1.0 + erf(x / x.dtype.type(SQRT_2)))).astype(x.dtype, copy=False)


def gelu_derivative(x: Any) -> Any:
    """``Phi(x) + x * phi(x)``: the derivative of the exact GELU."""
    xp = get_array_module(x)
    pdf = xp.exp(-0.5 * x * x) * x.dtype.type(INV_SQRT_2PI)
    cdf = 0.5 * (1.0 + erf(x / x.dtype.type(SQRT_2)))
    return (cdf + x * pdf).astype(x.dtype, copy=False)


def gelu_grad(gy: Any, x: Any) -> Any:
    """``gy * (Phi(x) + x * phi(x))`` (in oneDNN for big float32 arrays when its kernels are
    active: PyTorch's values)."""
    gx = _onednn_backward(gy, x, GELU_GRAD_ONEDNN_MIN, "ELTWISE_GELU_ERF")
    if gx is not None:
        return gx
    return gy * gelu_derivative(x)


def gelu_tanh(x: Any) -> Any:
    """GELU's tanh approximation ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x³)))`` (in oneDNN for
    big float32 arrays when its kernels are active)."""
    y = _onednn_forward(x, GELU_TANH_ONEDNN_MIN, "ELTWISE_GELU_TANH")
    if y is not None:
        return y
    xp = get_array_module(x)
    inner = x.dtype.type(SQRT_2_OVER_PI) * (x + GELU_TANH_COEFF * x * x * x)
    return 0.5 * x * (1.0 + xp.tanh(inner))


def gelu_tanh_grad(gy: Any, x: Any) -> Any:
    """The gradient of :func:`gelu_tanh` (in oneDNN for big float32 arrays when its kernels are
    active)."""
    gx = _onednn_backward(gy, x, GELU_TANH_GRAD_ONEDNN_MIN, "ELTWISE_GELU_TANH")
    if gx is not None:
        return gx
    xp = get_array_module(x)
    t = xp.tanh((x + GELU_TANH_COEFF * x * x * x) * x.dtype.type(SQRT_2_OVER_PI))
    dinner = (1.0 + 3 * GELU_TANH_COEFF * x * x) * x.dtype.type(SQRT_2_OVER_PI)
    return gy * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * dinner)


def silu(x: Any) -> Any:
    """``x * sigmoid(x)``, the sigmoid as ``(tanh(x / 2) + 1) / 2`` (no overflow); oneDNN's
    ``swish`` for big float32 arrays when its kernels are active (closer to the exact value where
    ``tanh(x / 2) + 1`` cancels, ``x < -3``)."""
    y = _onednn_forward(x, SILU_ONEDNN_MIN, "ELTWISE_SWISH", 1.0)
    if y is not None:
        return y
    xp = get_array_module(x)
    s = xp.tanh(x * 0.5)
    s += 1.0
    s *= 0.5
    return x * s


def silu_grad(gy: Any, x: Any) -> Any:
    """``gy * s * (1 + x * (1 - s))`` with ``s = sigmoid(x)`` (in oneDNN for big float32 arrays
    when its kernels are active)."""
    gx = _onednn_backward(gy, x, SILU_GRAD_ONEDNN_MIN, "ELTWISE_SWISH", 1.0)
    if gx is not None:
        return gx
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
