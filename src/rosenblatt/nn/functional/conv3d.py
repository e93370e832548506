"""3-D convolution ``conv3d`` of ``(N, C, D, H, W)`` volumes (PyTorch's weight layout and arguments).

The array work is in :mod:`rosenblatt.kernels.conv3d` (im2col per batch chunk, one GEMM per group,
no scatter-adds), or in oneDNN's N-d convolution kernels (:mod:`rosenblatt.kernels.onednn.conv`)
when that kernel set is active and the arrays are float32 NumPy arrays. As for ``conv2d``, the two gradients are Functions themselves
(:class:`Conv3dGradInput`, :class:`Conv3dGradWeight`) whose backward passes are convolutions, so
``create_graph=True`` gives exact second derivatives.
"""

from __future__ import annotations

from typing import Any

from rosenblatt.core import Function, Tensor
from rosenblatt.kernels.conv3d import (
    Conv3dGeometry,
    conv3d_array,
    conv3d_grad_input_array,
    conv3d_grad_weight_array,
)
from rosenblatt.nn.functional.conv import (
    _check_weight,
    _int_tuple,
    _padding_pairs,
    onednn_backward,
    onednn_forward,
    onednn_grad_input,
    onednn_grad_weight,
)
from rosenblatt.ops import reshape
from rosenblatt.ops import sum as sum_op


class Conv3dFunction(Function):
    """``y = conv3d(x, w) + b``; backward through :class:`Conv3dGradInput` / :class:`Conv3dGradWeight`."""

    @staticmethod
    def forward(ctx, x, w, b, geom):
        y = onednn_forward(x, w, b, geom)
        if y is not None:
            return y
        y = conv3d_array(x, w, geom)
        if b is not None:
            y += b.reshape(1, -1, 1, 1, 1)
        return y

    @staticmethod
    def backward(ctx, gy):
        grads = onednn_backward(ctx, gy)
        if grads is not None:
            return grads
        x, w, b, geom = ctx.inputs
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        gx = Conv3dGradInput.apply(gy, w, x.shape, geom) if need_x else None
        gw = Conv3dGradWeight.apply(x, gy, w.shape, geom) if need_w else None
        gb = sum_op(gy, axis=(0, 2, 3, 4)) if need_b else None
        return gx, gw, gb, None


class Conv3dGradInput(Function):
    """``gx = conv3d_grad_input(gy, w)``: linear in ``gy`` and in ``w``."""

    @staticmethod
    def forward(ctx, gy, w, x_shape, geom):
        gx = onednn_grad_input(gy, w, x_shape, geom)
        if gx is not None:
            return gx
        return conv3d_grad_input_array(gy, w, tuple(x_shape), geom)

    @staticmethod
    def backward(ctx, ggx):
        gy, w, _, geom = ctx.inputs
        need_gy, need_w = ctx.needs_input_grad[:2]
        d_gy = Conv3dFunction.apply(ggx, w, None, geom) if need_gy else None
        d_w = Conv3dGradWeight.apply(ggx, gy, w.shape, geom) if need_w else None
        return d_gy, d_w, None, None


class Conv3dGradWeight(Function):
    """``gw = conv3d_grad_weight(x, gy)``: bilinear in ``x`` and ``gy``."""

    @staticmethod
    def forward(ctx, x, gy, w_shape, geom):
        gw = onednn_grad_weight(x, gy, w_shape, geom)
        if gw is not None:
            return gw
        return conv3d_grad_weight_array(x, gy, tuple(w_shape), geom)

    @staticmethod
    def backward(ctx, ggw):
        x, gy, _, geom = ctx.inputs
        need_x, need_gy = ctx.needs_input_grad[:2]
        d_x = Conv3dGradInput.apply(gy, ggw, x.shape, geom) if need_x else None
        d_gy = Conv3dFunction.apply(x, ggw, None, geom) if need_gy else None
        return d_x, d_gy, None, None


def conv3d_geometry(op: str, in_size: tuple[int, ...], kernel: tuple[int, ...], stride: Any, padding: Any,
                    dilation: Any, groups: int) -> Conv3dGeometry:
    """Checked :class:`Conv3dGeometry` (``padding`` may be an int, a triple, ``"same"``/``"valid"``)."""
    stride = _int_tuple(op, "stride", stride, 3)
    dilation = _int_tuple(op, "dilation", dilation, 3)
    pads = _padding_pairs(op, padding, kernel, stride, dilation)
    for size, k, p, d, axis in zip(in_size, kernel, pads, dilation, "DHW"):
        extent = d * (k - 1) + 1
        if size + p[0] + p[1] < extent:
            raise ValueError(f"{op}: kernel extent {extent} (kernel {k}, dilation {d}) is larger than the "
                             f"padded input {size + p[0] + p[1]} along {axis}")
    return Conv3dGeometry(stride, pads, dilation, int(groups))  # type: ignore[arg-type]


def conv3d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride: int | tuple[int, int, int] = 1,
           padding: int | tuple[int, int, int] | str = 0, dilation: int | tuple[int, int, int] = 1,
           groups: int = 1) -> Tensor:
    """3-D convolution (cross-correlation, as in PyTorch) of an ``(N, C, D, H, W)`` input.

    ``weight`` is ``(O, C/groups, kd, kh, kw)``, ``bias`` ``(O,)``. ``padding`` is an int, a
    triple, or ``"same"``/``"valid"``. A 4-D ``(C, D, H, W)`` input is a batch of one.

    Shape:
        - input: ``(N, C, D, H, W)`` or ``(C, D, H, W)``
        - output: ``(N, O, OD, OH, OW)`` with
          ``OD = (D + 2*padding[0] - dilation[0]*(kd-1) - 1) // stride[0] + 1`` (likewise OH, OW)
    """
    if isinstance(input, Tensor) and input.ndim == 4:
        out = conv3d(reshape(input, (1,) + input.shape), weight, bias, stride, padding, dilation, groups)
        return reshape(out, out.shape[1:])
    if isinstance(input, Tensor) and input.ndim != 5:
        raise ValueError(f"conv3d: expected a 5-D input (N, C, D, H, W) (or 4-D unbatched), got shape {input.shape}")
    _check_weight("conv3d", input, weight, bias, groups, 3)
    geom = conv3d_geometry("conv3d", input.shape[2:], weight.shape[2:], stride, padding, dilation, groups)
    return Conv3dFunction.apply(input, weight, bias, geom)


__all__ = ["Conv3dFunction", "Conv3dGradInput", "Conv3dGradWeight", "conv3d", "conv3d_geometry"]
