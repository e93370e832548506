"""Normalisation: ``batch_norm`` (Ioffe & Szegedy, 2015) and ``layer_norm`` (Ba et al., 2016).

Both normalise with the *biased* variance and are fused: forward computes ``x_hat`` once and
backward uses the closed form

    dx = invstd * (g - mean(g) - x_hat * mean(g * x_hat)),   g = dy * weight

(means over the normalised axes), so a whole normalisation layer is one node. Batch norm's array
work is done by kernels: :mod:`rosenblatt.kernels.normalization` (NumPy/CuPy, the reference and
the fallback) or, with the oneDNN kernel set active and float32 NumPy arrays,
:mod:`rosenblatt.kernels.onednn.normalization`. The readable
versions from primitives, ``batch_norm_composite`` and ``layer_norm_composite``, are the test
oracles and give the second derivatives under ``create_graph=True``.
"""

from __future__ import annotations

from collections.abc import Sequence

from rosenblatt import kernels
from rosenblatt.backend import get_array_module
from rosenblatt.core import Function, Tensor, constant, mark_modified, no_grad
from rosenblatt.kernels import normalization as norm_kernels
from rosenblatt.nn.functional._fused import composite_backward
from rosenblatt.ops import mean, reshape, sqrt


def _param_shape(ndim: int, channels: int) -> tuple[int, ...]:
    return (1, channels) + (1,) * (ndim - 2)


def _reduce_axes(ndim: int) -> tuple[int, ...]:
    return (0,) + tuple(range(2, ndim))


# -- batch norm ------------------------------------------------------------------------------


def batch_norm_composite(x: Tensor, weight: Tensor | None, bias: Tensor | None, eps: float = 1e-5) -> Tensor:
    """Training-mode batch norm from primitives (batch statistics, biased variance)."""
    axes = _reduce_axes(x.ndim)
    mu = mean(x, axes, keepdims=True)
    centered = x - mu
    var = mean(centered * centered, axes, keepdims=True)
    y = centered / sqrt(var + eps)
    shape = _param_shape(x.ndim, x.shape[1])
    if weight is not None:
        y = y * reshape(weight, shape)
    if bias is not None:
        y = y + reshape(bias, shape)
    return y


class BatchNormFn(Function):
    """Training-mode batch norm given the batch mean and inverse standard deviation."""

    @staticmethod
    def forward(ctx, x, weight, bias, batch_mean, invstd, eps, centered=None):
        y, ctx.x_hat = norm_kernels.batch_norm_train_forward(x, weight, bias, batch_mean, invstd, centered)
        return y

    @staticmethod
    def backward(ctx, gy):
        eps = ctx.inputs[5]
        return composite_backward(lambda x_, w_, b_, *_: batch_norm_composite(x_, w_, b_, eps),
                                  ctx.inputs, ctx.needs_input_grad, [gy])

    @staticmethod
    def backward_arrays(ctx, gy):
        _, weight, _, _, invstd, _ = ctx.inputs
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        return norm_kernels.batch_norm_train_backward(
            gy, ctx.x_hat, invstd, None if weight is None else weight.data, need_x, need_w, need_b) + (None,) * 3


class BatchNormOneDnnFn(Function):
    """Training-mode batch norm whose forward oneDNN already computed: ``result`` is
    ``(y, batch_mean, batch_var)``; backward runs oneDNN's backward (or, declined, the NumPy one)."""

    @staticmethod
    def forward(ctx, x, weight, bias, eps, result=None):
        y, ctx.batch_mean, ctx.batch_var, ctx.kept = result
        return y

    @staticmethod
    def backward(ctx, gy):
        eps = ctx.inputs[3]
        return composite_backward(lambda x_, w_, b_, *_: batch_norm_composite(x_, w_, b_, eps),
                                  ctx.inputs, ctx.needs_input_grad, [gy])

    @staticmethod
    def backward_arrays(ctx, gy):
        x, weight, bias, eps = ctx.inputs
        w = None if weight is None else weight.data
        grads = None
        if kernels.use_onednn(gy):
            from rosenblatt.kernels.onednn import normalization as dnn

            grads = dnn.batch_norm_train_backward(gy, x.data, w, ctx.batch_mean, ctx.batch_var, eps, ctx.kept)
        if grads is None:
            shape = _param_shape(x.ndim, x.shape[1])
            invstd = (1.0 / get_array_module(x.data).sqrt(ctx.batch_var + eps)).astype(x.dtype, copy=False)
            x_hat = (x.data - ctx.batch_mean.reshape(shape)) * invstd.reshape(shape)
            grads = norm_kernels.batch_norm_train_backward(gy, x_hat, invstd, w)
        return tuple(g if need else None for g, need in zip(grads, ctx.needs_input_grad[:3])) + (None,)


# BatchNorm1d on (N, C) features (an MLP): oneDNN's kernel (threaded, one pass each way over the
# plain layout, which is channels-last with no spatial axes) from this many elements. Kernels
# alone, forward + backward, interleaved, 2 threads, oneDNN against NumPy: 128x512 float32 98 us
# against 181 us, 128x128 43 against 55 us, 64x128 38 us both, 32x64 31 against 25 us. The whole
# F.batch_norm of 128x512 with weight and bias, forward + backward with a dense upstream gradient:
# 245 -> 132 us (PyTorch, interleaved: 124 us).
_ONEDNN_MIN_2D = 1 << 14


def _update_running_stats(running_mean: Tensor, running_var: Tensor, batch_mean, batch_var, count: int,
                          momentum: float) -> None:
    """``running = (1 - momentum) * running + momentum * batch`` (the variance unbiased), in place."""
    with no_grad():
        m = float(momentum)
        running_mean.data *= 1.0 - m
        running_mean.data += m * batch_mean.astype(running_mean.dtype, copy=False)
        running_var.data *= 1.0 - m
        running_var.data += (m * count / (count - 1)) * batch_var.astype(running_var.dtype, copy=False)
    mark_modified(running_mean, running_var)


def _check_batch_norm(x: Tensor, channels: int | None, name: str) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: expected a Tensor, got {type(x).__name__}")
    if x.ndim < 2:
        raise ValueError(f"{name}: expected an input of shape (N, C, ...), got shape {x.shape}")
    if channels is not None and x.shape[1] != channels:
        raise ValueError(f"{name}: expected {channels} channels in dimension 1, got input of shape {x.shape}")


def batch_norm(
    x: Tensor,
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Batch normalisation over every axis but the channel axis 1.

    In training (or without running statistics) the batch mean and biased variance normalise
    ``x``, and the running statistics, if given, are updated in place exactly as PyTorch does:
    ``running = (1 - momentum) * running + momentum * batch`` with the *unbiased* batch variance.
    Otherwise the running statistics normalise. With the oneDNN kernel set, training runs oneDNN's
    kernel on feature maps of :data:`~rosenblatt.kernels.onednn.normalization.MIN_SPATIAL`
    positions or more, on blocked 4-D layouts, and on ``(N, C)`` inputs of at least 16,384 elements.

    Shape:
        x: ``(N, C)``, ``(N, C, L)`` or ``(N, C, H, W)``; running stats, weight, bias: ``(C,)``;
        output: the shape of ``x``.
    """
    channels = running_mean.shape[0] if running_mean is not None else (
        weight.shape[0] if weight is not None else None)
    _check_batch_norm(x, channels, "batch_norm")
    xd = x.data
    xp = get_array_module(xd)
    if training or running_mean is None or running_var is None:
        count = xd.size // xd.shape[1]
        if count <= 1:
            raise ValueError(f"batch_norm: expected more than 1 value per channel when training, got input of shape {x.shape}")
        update = training and running_mean is not None and running_var is not None
        w, b = (None if weight is None else weight.data), (None if bias is None else bias.data)
        if kernels.use_onednn(xd, w, b):
            from rosenblatt.kernels.onednn import normalization as dnn

            worthwhile = dnn.worthwhile(xd.shape) or xd.ndim == 2 and xd.size >= _ONEDNN_MIN_2D
            result = dnn.batch_norm_train_forward(xd, w, b, eps) if worthwhile else None
            if result is not None:
                if update:
                    _update_running_stats(running_mean, running_var, result[1], result[2], count, momentum)
                return BatchNormOneDnnFn.apply(x, weight, bias, float(eps), result=result)
        batch_mean, batch_var, centered = norm_kernels.batch_stats(xd)
        if update:
            _update_running_stats(running_mean, running_var, batch_mean, batch_var, count, momentum)
        invstd = 1.0 / xp.sqrt(batch_var + eps)
        return BatchNormFn.apply(x, weight, bias, batch_mean, invstd.astype(xd.dtype, copy=False), eps,
                                 centered=centered)
    # Evaluation: a fixed affine map per channel.
    shape = _param_shape(xd.ndim, xd.shape[1])
    invstd = constant((1.0 / xp.sqrt(running_var.data + eps)).astype(xd.dtype, copy=False))
    scale = invstd if weight is None else weight * invstd
    shift = constant(-running_mean.data.astype(xd.dtype, copy=False)) * scale
    if bias is not None:
        shift = shift + bias
    return x * reshape(scale, shape) + reshape(shift, shape)


# -- layer norm ------------------------------------------------------------------------------


def layer_norm_composite(x: Tensor, normalized_shape: Sequence[int], weight: Tensor | None = None,
                         bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """Layer norm from primitives: the oracle of :func:`layer_norm`."""
    axes = tuple(range(x.ndim - len(normalized_shape), x.ndim))
    mu = mean(x, axes, keepdims=True)
    centered = x - mu
    var = mean(centered * centered, axes, keepdims=True)
    y = centered / sqrt(var + eps)
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


class LayerNormFn(Function):
    @staticmethod
    def forward(ctx, x, weight, bias, num_axes, eps):
        xp = get_array_module(x)
        axes = tuple(range(x.ndim - num_axes, x.ndim))
        mu = x.mean(axis=axes, keepdims=True)
        x_hat = x - mu
        var = xp.mean(x_hat * x_hat, axis=axes, keepdims=True)
        invstd = 1.0 / xp.sqrt(var + eps)
        x_hat *= invstd
        ctx.x_hat, ctx.invstd = x_hat, invstd
        y = x_hat if weight is None else x_hat * weight
        if bias is not None:
            y = y + bias
        return y

    @staticmethod
    def backward(ctx, gy):
        x, _, _, num_axes, eps = ctx.inputs
        shape = x.shape[x.ndim - num_axes:]
        return composite_backward(lambda x_, w_, b_, *_: layer_norm_composite(x_, shape, w_, b_, eps),
                                  ctx.inputs, ctx.needs_input_grad, [gy])

    @staticmethod
    def backward_arrays(ctx, g):
        _, weight, _, num_axes, _ = ctx.inputs
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        x_hat = ctx.x_hat
        axes = tuple(range(g.ndim - num_axes, g.ndim))
        lead = tuple(range(g.ndim - num_axes))
        gx = gw = gb = None
        if need_x:
            gh = g if weight is None else g * weight.data
            gx = gh - gh.mean(axis=axes, keepdims=True)
            gx -= x_hat * (gh * x_hat).mean(axis=axes, keepdims=True)
            gx *= ctx.invstd
        if need_w:
            gw = (g * x_hat).sum(axis=lead)
        if need_b:
            gb = g.sum(axis=lead)
        return gx, gw, gb, None, None


class LayerNormOneDnnFn(Function):
    """Layer norm over the last axis whose forward oneDNN already computed: ``result`` is
    ``(y, row_mean, row_var)`` on the ``(rows, features)`` view; backward runs oneDNN's backward
    (or, declined, the NumPy one)."""

    @staticmethod
    def forward(ctx, x, weight, bias, eps, result=None):
        y, ctx.row_mean, ctx.row_var = result
        return y.reshape(x.shape)

    @staticmethod
    def backward(ctx, gy):
        eps = ctx.inputs[3]
        return composite_backward(lambda x_, w_, b_, *_: layer_norm_composite(x_, x_.shape[-1:], w_, b_, eps),
                                  ctx.inputs, ctx.needs_input_grad, [gy])

    @staticmethod
    def backward_arrays(ctx, gy):
        x, weight, bias, eps = ctx.inputs
        w = None if weight is None else weight.data
        features = x.shape[-1]
        x2, g2 = x.data.reshape(-1, features), gy.reshape(-1, features)
        grads = None
        if kernels.use_onednn(g2):
            from rosenblatt.kernels.onednn import layer_norm as dnn

            grads = dnn.layer_norm_backward(g2, x2, w, ctx.row_mean, ctx.row_var, eps)
        if grads is None:
            xp = get_array_module(x2)
            invstd = (1.0 / xp.sqrt(ctx.row_var + eps)).astype(x2.dtype, copy=False)[:, None]
            x_hat = (x2 - ctx.row_mean[:, None]) * invstd
            gh = g2 if w is None else g2 * w
            gx = gh - gh.mean(axis=1, keepdims=True)
            gx -= x_hat * (gh * x_hat).mean(axis=1, keepdims=True)
            gx *= invstd
            grads = (gx, (g2 * x_hat).sum(axis=0), g2.sum(axis=0))
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        gx, gw, gb = grads
        gx = gx.reshape(x.shape)
        return tuple(g if need else None for g, need in zip((gx, gw, gb), (need_x, need_w, need_b))) + (None,)


def layer_norm(x: Tensor, normalized_shape: int | Sequence[int], weight: Tensor | None = None,
               bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """Normalise over the trailing ``normalized_shape`` axes of each sample, then scale and shift.

    Shape:
        x: ``(*, *normalized_shape)``; weight, bias: ``normalized_shape``; output: shape of ``x``.
    """
    if isinstance(normalized_shape, int):
        normalized_shape = (normalized_shape,)
    normalized_shape = tuple(int(n) for n in normalized_shape)
    if not isinstance(x, Tensor):
        raise TypeError(f"layer_norm: expected a Tensor, got {type(x).__name__}")
    k = len(normalized_shape)
    if x.ndim < k or tuple(x.shape[x.ndim - k:]) != normalized_shape:
        raise ValueError(
            f"layer_norm: expected an input of shape (*, {', '.join(map(str, normalized_shape))}), "
            f"got shape {x.shape}"
        )
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None and tuple(p.shape) != normalized_shape:
            raise ValueError(f"layer_norm: {name} must have shape {normalized_shape}, got {p.shape}")
    w, b = (None if weight is None else weight.data), (None if bias is None else bias.data)
    if k == 1 and x.size and kernels.use_onednn(x.data, w, b):
        # One trailing axis (a Transformer's features): oneDNN's kernel, threaded, in one or two passes.
        from rosenblatt.kernels.onednn import layer_norm as dnn

        result = dnn.layer_norm_forward(x.data.reshape(-1, x.shape[-1]), w, b, float(eps))
        if result is not None:
            return LayerNormOneDnnFn.apply(x, weight, bias, float(eps), result=result)
    return LayerNormFn.apply(x, weight, bias, k, float(eps))


__all__ = ["batch_norm", "batch_norm_composite", "layer_norm", "layer_norm_composite"]
