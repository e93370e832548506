"""``linear``: the affine map ``y = x W^T + b`` of a fully connected layer, as one fused op.

``LinearFn`` does the whole layer in one node: one BLAS matmul forward, and in backward only the
products that are needed (no ``dx`` for a data batch, no ``dW`` for a frozen layer). The readable
version built from ``matmul`` and ``+`` is :func:`linear_composite`, its test oracle.
"""

from __future__ import annotations

from typing import Any

from rosenblatt.core import Function, Tensor, constant
from rosenblatt.kernels import activation as _act
from rosenblatt.kernels import gemm
from rosenblatt.ops import matmul, reshape, sum, transpose


class LinearFn(Function):
    @staticmethod
    def forward(ctx, x, weight, bias):
        x2 = x.reshape(-1, x.shape[-1]) if x.ndim != 2 else x
        y = gemm.linear(x2, weight, bias)
        return y.reshape(x.shape[:-1] + (weight.shape[0],)) if x.ndim != 2 else y

    @staticmethod
    def backward(ctx, gy):
        # The differentiable formulas (create_graph=True: second derivatives).
        x, weight, bias = ctx.inputs
        need_x, need_w, need_b = ctx.needs_input_grad
        g2 = reshape(gy, (-1, weight.shape[0]))
        x2 = reshape(x, (-1, x.shape[-1]))
        gx = reshape(matmul(g2, weight), x.shape) if need_x else None
        gw = matmul(transpose(g2), x2) if need_w else None
        gb = sum(g2, 0) if need_b else None
        return gx, gw, gb

    @staticmethod
    def backward_arrays(ctx, gy):
        x, weight, bias = ctx.inputs
        need_x, need_w, need_b = ctx.needs_input_grad
        g2 = gy.reshape(-1, weight.shape[0])
        xd = x.data
        x2 = xd.reshape(-1, xd.shape[-1])
        gx = gemm.matmul(g2, weight.data).reshape(xd.shape) if need_x else None
        gw = gemm.matmul(g2.T, x2) if need_w else None
        gb = gemm.column_sums(g2) if need_b else None
        return gx, gw, gb


def _linear_activated(x: Any, weight: Any, bias: Any, **activation: bool) -> Any:
    """``gemm.linear`` (with ``relu=True`` or ``tanh=True``) on an ``(*, in)`` array."""
    x2 = x.reshape(-1, x.shape[-1]) if x.ndim != 2 else x
    y = gemm.linear(x2, weight, bias, **activation)
    return y.reshape(x.shape[:-1] + (weight.shape[0],)) if x.ndim != 2 else y


class LinearReLUFn(Function):
    """``relu(linear(x))`` in one node: the ReLU is applied as the product is written (a oneDNN
    post-op), and backward masks the gradient by the kept output before the linear gradients."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        return _linear_activated(x, weight, bias, relu=True)

    @staticmethod
    def backward(ctx, gy):
        y = ctx.output().data
        return LinearFn.backward(ctx, gy * constant((y > 0).astype(y.dtype)))

    @staticmethod
    def backward_arrays(ctx, gy):
        return LinearFn.backward_arrays(ctx, _act.relu_grad(gy, ctx.output().data))


class LinearTanhFn(Function):
    """``tanh(linear(x))`` in one node: the tanh is applied as the product is written (a oneDNN
    post-op for big outputs), and backward multiplies the gradient by ``1 - y²`` of the kept output
    before the linear gradients."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        return _linear_activated(x, weight, bias, tanh=True)

    @staticmethod
    def backward(ctx, gy):
        y = ctx.output()
        return LinearFn.backward(ctx, gy * (1.0 - y * y))

    @staticmethod
    def backward_arrays(ctx, gy):
        return LinearFn.backward_arrays(ctx, _act.tanh_grad(gy, ctx.output().data))


def linear_tanh(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``tanh(x @ weight.T + bias)``: :func:`linear` and ``tanh`` fused into one node (same values
    and gradients as the two ops)."""
    _check(x, weight, bias)
    return LinearTanhFn.apply(x, weight, bias)


def linear_relu(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``relu(x @ weight.T + bias)``: :func:`linear` and ``relu`` fused into one node (same values
    and gradients as the two ops; a Transformer's feed-forward block uses it)."""
    _check(x, weight, bias)
    return LinearReLUFn.apply(x, weight, bias)


def _check(x: Any, weight: Tensor, bias: Tensor | None) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"linear: expected a Tensor input, got {type(x).__name__}")
    if weight.ndim != 2:
        raise ValueError(f"linear: weight must be 2-D (out_features, in_features), got shape {weight.shape}")
    if x.ndim == 0:
        raise ValueError(f"linear: expected an input of shape (*, {weight.shape[1]}), got a 0-d tensor")
    if x.shape[-1] != weight.shape[1]:
        raise ValueError(
            f"linear: expected input with {weight.shape[1]} features in the last dimension "
            f"(shape (*, {weight.shape[1]})), got shape {x.shape}"
        )
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"linear: bias must have shape ({weight.shape[0]},), got {bias.shape}")


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``x @ weight.T + bias`` over the last axis of ``x``.

    Shape:
        x: ``(*, in_features)``; weight: ``(out_features, in_features)``; bias: ``(out_features,)``;
        output: ``(*, out_features)``.
    """
    _check(x, weight, bias)
    return LinearFn.apply(x, weight, bias)


def linear_composite(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """The same map from primitives (``matmul`` and broadcasting ``+``): the oracle of :func:`linear`."""
    _check(x, weight, bias)
    y = matmul(x, transpose(weight))
    return y + bias if bias is not None else y


__all__ = ["linear", "linear_composite"]
