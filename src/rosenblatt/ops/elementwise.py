"""Element-wise math: exp, log, sqrt, trigonometry, and the core activations (tanh, sigmoid, relu).

Where the derivative is a function of the output (exp, sqrt, tanh, sigmoid) backward uses the
output tensor, which keeps the formula differentiable for second derivatives. The activations'
array math is in :mod:`rosenblatt.kernels.activation`: their ``forward`` and ``backward_arrays``
call its kernels.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rosenblatt.backend import get_array_module
from rosenblatt.core import Function, Tensor, constant
from rosenblatt.kernels import activation as _act

_ndarray = np.ndarray
_F32 = np.dtype(np.float32)


class Exp(Function):
    @staticmethod
    def forward(ctx, x):
        return get_array_module(x).exp(x)

    @staticmethod
    def backward(ctx, gy):
        return gy * ctx.output()

    @staticmethod
    def backward_arrays(ctx, gy):
        return gy * ctx.output().data


class Log(Function):
    @staticmethod
    def forward(ctx, x):
        return get_array_module(x).log(x)

    @staticmethod
    def backward(ctx, gy):
        return gy / ctx.inputs[0]


class Log1p(Function):
    @staticmethod
    def forward(ctx, x):
        return get_array_module(x).log1p(x)

    @staticmethod
    def backward(ctx, gy):
        return gy / (ctx.inputs[0] + 1.0)


class Sqrt(Function):
    @staticmethod
    def forward(ctx, x):
        return get_array_module(x).sqrt(x)

    @staticmethod
    def backward(ctx, gy):
        return gy / (2.0 * ctx.output())


class Abs(Function):
    @staticmethod
    def forward(ctx, x):
        return get_array_module(x).abs(x)

    @staticmethod
    def backward(ctx, gy):
        x = ctx.inputs[0]
        return gy * constant(get_array_module(x.data).sign(x.data))


class Sign(Function):
    @staticmethod
    def forward(ctx, x):
        return get_array_module(x).sign(x)

    @staticmethod
    def backward(ctx, gy):
        return gy * 0.0


class Sin(Function):
    @staticmethod
    def forward(ctx, x):
        return get_array_module(x).sin(x)

    @staticmethod
    def backward(ctx, gy):
        return gy * cos(ctx.inputs[0])


class Cos(Function):
    @staticmethod
    def forward(ctx, x):
        return get_array_module(x).cos(x)

    @staticmethod
    def backward(ctx, gy):
        return -gy * sin(ctx.inputs[0])


class Tanh(Function):
    @staticmethod
    def forward(ctx, x):
        return _act.tanh(x)

    @staticmethod
    def backward(ctx, gy):
        y = ctx.output()
        return gy * (1.0 - y * y)

    @staticmethod
    def backward_arrays(ctx, gy):
        return _act.tanh_grad(gy, ctx.output().data)


class Sigmoid(Function):
    @staticmethod
    def forward(ctx, x):
        return _act.sigmoid(x)

    @staticmethod
    def backward(ctx, gy):
        y = ctx.output()
        return gy * (y * (1.0 - y))

    @staticmethod
    def backward_arrays(ctx, gy):
        return _act.sigmoid_grad(gy, ctx.output().data)


class ReLU(Function):
    @staticmethod
    def forward(ctx, x):
        return _act.relu(x)

    @staticmethod
    def backward(ctx, gy):
        y = ctx.output().data
        return gy * constant((y > 0).astype(y.dtype))

    @staticmethod
    def backward_arrays(ctx, gy):
        return _act.relu_grad(gy, ctx.output().data)


def exp(x: Tensor) -> Tensor:
    """Element-wise ``e**x``."""
    return Exp.apply(x)


def log(x: Tensor) -> Tensor:
    """Element-wise natural logarithm."""
    return Log.apply(x)


def log1p(x: Tensor) -> Tensor:
    """Element-wise ``log(1 + x)``, accurate for small ``x``."""
    return Log1p.apply(x)


def sqrt(x: Tensor) -> Tensor:
    """Element-wise square root."""
    return Sqrt.apply(x)


def abs(x: Tensor) -> Tensor:  # noqa: A001 - rb.abs, like torch.abs
    """Element-wise absolute value (gradient ``sign(x)``, 0 at 0)."""
    return Abs.apply(x)


def sign(x: Tensor) -> Tensor:
    """Element-wise sign (-1, 0, 1); its gradient is zero."""
    return Sign.apply(x)


def sin(x: Tensor) -> Tensor:
    """Element-wise sine."""
    return Sin.apply(x)


def cos(x: Tensor) -> Tensor:
    """Element-wise cosine."""
    return Cos.apply(x)


def tanh(x: Tensor) -> Tensor:
    """Element-wise hyperbolic tangent."""
    return Tanh.apply(x)


def sigmoid(x: Tensor) -> Tensor:
    """Element-wise logistic function ``1 / (1 + exp(-x))``."""
    return Sigmoid.apply(x)


def relu(x: Tensor) -> Tensor:
    """Element-wise ``max(x, 0)`` (gradient 0 at 0, as PyTorch)."""
    return ReLU.apply(x)


class Clone(Function):
    @staticmethod
    def forward(ctx, x):
        return x.copy(order="K")  # the layout kept, as PyTorch's clone keeps the memory format

    @staticmethod
    def backward(ctx, gy):
        return gy


def clone(x: Tensor) -> Tensor:
    """A copy of ``x`` that stays connected to the graph (laid out in memory as ``x`` is)."""
    return Clone.apply(x)


class Contiguous(Function):
    @staticmethod
    def forward(ctx, x):
        if type(x) is _ndarray and x.dtype == _F32 and x.ndim == 4:
            from rosenblatt import kernels

            if kernels.use_onednn(x):  # a channels-last activation: oneDNN's reorder, not NumPy's transposing copy
                from rosenblatt.kernels.onednn import library

                return library.contiguous(x)
        return get_array_module(x).ascontiguousarray(x)

    @staticmethod
    def backward(ctx, gy):
        return gy

    backward_arrays = backward


class ToChannelsLast(Function):
    @staticmethod
    def forward(ctx, x):
        if type(x) is _ndarray and x.dtype == _F32:
            from rosenblatt import kernels

            if kernels.use_onednn(x):  # oneDNN's reorder, not NumPy's transposing copy
                from rosenblatt.kernels.onednn import library

                if x.flags.c_contiguous:
                    return library.to_channels_last(x)
        xp = get_array_module(x)
        n, c, h, w = x.shape
        out = xp.empty((n, h, w, c), dtype=x.dtype).transpose(0, 3, 1, 2)
        out[...] = x
        return out

    @staticmethod
    def backward(ctx, gy):
        return gy

    backward_arrays = backward


def to_channels_last(x: Tensor) -> Tensor:
    """A 4-D ``x`` laid out channels-last (``(N, C, H, W)`` over ``(N, H, W, C)`` memory): ``x`` itself
    when it already is, else a copy that stays connected to the graph."""
    return x if x.data.transpose(0, 2, 3, 1).flags.c_contiguous else ToChannelsLast.apply(x)


def contiguous(x: Tensor) -> Tensor:
    """``x`` when its array is C-contiguous, else a C-contiguous copy that stays connected to the graph.
    (With the oneDNN kernels, standalone convolution, batch-norm and pooling layers return
    channels-last arrays: ``(N, C, H, W)`` views of ``(N, H, W, C)`` memory.)"""
    return x if x.data.flags.c_contiguous else Contiguous.apply(x)


class Cast(Function):
    @staticmethod
    def forward(ctx, x, dtype):
        ctx.in_dtype = x.dtype
        return x.astype(dtype)

    @staticmethod
    def backward(ctx, gy):
        return cast(gy, ctx.in_dtype), None


def cast(x: Tensor, dtype: Any) -> Tensor:
    """``x`` converted to ``dtype`` (differentiable between floating dtypes)."""
    import numpy as np

    dtype = np.dtype(dtype)
    if x.dtype == dtype:
        return x
    if dtype.kind not in "fc":
        return constant(x.data.astype(dtype))
    return Cast.apply(x, dtype)


class ToDevice(Function):
    @staticmethod
    def forward(ctx, x, device):
        from rosenblatt.backend import device_of, to_device

        ctx.source = device_of(x)
        return to_device(x, device)

    @staticmethod
    def backward(ctx, gy):
        return to_device(gy, ctx.source), None


def to_device(x: Tensor, device: Any) -> Tensor:
    """``x`` copied to ``device`` (differentiable: the gradient comes back to the source device)."""
    from rosenblatt.backend import Device

    device = Device(device)
    if x.device == device:
        return x
    return ToDevice.apply(x, device)
