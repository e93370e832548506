"""3-D pooling: ``max_pool3d`` and ``avg_pool3d`` of ``(N, C, D, H, W)`` volumes (PyTorch's semantics).

The array work is in :mod:`rosenblatt.kernels.pooling3d` (one strided view per kernel offset).
Each Function's ``backward_arrays`` calls its adjoint's array kernel (the first-order gradient);
its differentiable ``backward`` applies the adjoint's Function (a scatter whose gradient is a
gather and vice versa), so the layers support double backward.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rosenblatt.backend import get_array_module
from rosenblatt.core import Function, Tensor, constant
from rosenblatt.kernels.pooling3d import (
    PoolGeometry,
    avg_divisor,
    avg_pool_array,
    avg_pool_transpose_array,
    flat_indices,
    max_pool_array,
    max_pool_gather_array,
    max_pool_scatter_array,
)
from rosenblatt.nn.functional.conv import _int_tuple
from rosenblatt.ops import reshape


class MaxPool3dFunction(Function):
    @staticmethod
    def forward(ctx, x, geom):
        out, argmax = max_pool_array(x, geom, with_argmax=ctx.needs_input_grad[0])
        ctx.argmax = argmax
        return out

    @staticmethod
    def backward(ctx, gy):
        x, geom = ctx.inputs
        return MaxPool3dScatter.apply(gy, ctx.argmax, x.shape, geom), None

    @staticmethod
    def backward_arrays(ctx, gy):
        x, geom = ctx.inputs
        return max_pool_scatter_array(gy, ctx.argmax, x.shape, geom), None


class MaxPool3dScatter(Function):
    """Gradient of max pooling: each output gradient goes to the voxel that won its window."""

    @staticmethod
    def forward(ctx, gy, argmax, x_shape, geom):
        return max_pool_scatter_array(gy, argmax, tuple(x_shape), geom)

    @staticmethod
    def backward(ctx, ggx):
        _, argmax, _, geom = ctx.inputs
        return MaxPool3dGather.apply(ggx, argmax, geom), None, None, None

    @staticmethod
    def backward_arrays(ctx, ggx):
        _, argmax, _, geom = ctx.inputs
        return max_pool_gather_array(ggx, argmax, geom), None, None, None


class MaxPool3dGather(Function):
    """The value at each window's winning position (the adjoint of :class:`MaxPool3dScatter`)."""

    @staticmethod
    def forward(ctx, x, argmax, geom):
        return max_pool_gather_array(x, argmax, geom)

    @staticmethod
    def backward(ctx, gy):
        x, argmax, geom = ctx.inputs
        return MaxPool3dScatter.apply(gy, argmax, x.shape, geom), None, None

    @staticmethod
    def backward_arrays(ctx, gy):
        x, argmax, geom = ctx.inputs
        return max_pool_scatter_array(gy, argmax, x.shape, geom), None, None


class AvgPool3dFunction(Function):
    @staticmethod
    def forward(ctx, x, geom, divisor):
        return avg_pool_array(x, geom, divisor)

    @staticmethod
    def backward(ctx, gy):
        x, geom, divisor = ctx.inputs
        return AvgPool3dTranspose.apply(gy, x.shape, geom, divisor), None, None

    @staticmethod
    def backward_arrays(ctx, gy):
        x, geom, divisor = ctx.inputs
        return avg_pool_transpose_array(gy, x.shape, geom, divisor), None, None


class AvgPool3dTranspose(Function):
    """Gradient of average pooling (its own gradient is an average pooling)."""

    @staticmethod
    def forward(ctx, gy, x_shape, geom, divisor):
        return avg_pool_transpose_array(gy, tuple(x_shape), geom, divisor)

    @staticmethod
    def backward(ctx, ggx):
        _, _, geom, divisor = ctx.inputs
        return AvgPool3dFunction.apply(ggx, geom, divisor), None, None, None

    @staticmethod
    def backward_arrays(ctx, ggx):
        _, _, geom, divisor = ctx.inputs
        return avg_pool_array(ggx, geom, divisor), None, None, None


def _check_input(op: str, x: Any) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: expected a Tensor input, got {type(x).__name__}")
    if x.ndim != 5:
        raise ValueError(f"{op}: expected a 5-D input (N, C, D, H, W) (or 4-D unbatched), got shape {x.shape}")
    if x.dtype.kind != "f":
        raise TypeError(f"{op}: expected a floating input, got dtype {x.dtype}")


def _geometry(op: str, x: Tensor, kernel_size: Any, stride: Any, padding: Any, dilation: Any,
              ceil_mode: bool) -> PoolGeometry:
    kernel = _int_tuple(op, "kernel_size", kernel_size, 3)
    stride = kernel if stride is None or stride == () else _int_tuple(op, "stride", stride, 3)
    padding = _int_tuple(op, "padding", padding, 3, minimum=0)
    dilation = _int_tuple(op, "dilation", dilation, 3)
    return PoolGeometry(op, x.shape[2:], kernel, stride, padding, dilation, bool(ceil_mode))


def _unbatched(fn: Any, x: Tensor, *args: Any) -> Any:
    out = fn(reshape(x, (1,) + x.shape), *args)
    if isinstance(out, tuple):
        return tuple(reshape(o, o.shape[1:]) for o in out)
    return reshape(out, out.shape[1:])


def max_pool3d(input: Tensor, kernel_size: int | tuple[int, int, int],
               stride: int | tuple[int, int, int] | None = None, padding: int | tuple[int, int, int] = 0,
               dilation: int | tuple[int, int, int] = 1, ceil_mode: bool = False,
               return_indices: bool = False) -> Tensor | tuple[Tensor, Tensor]:
    """3-D max pooling of an ``(N, C, D, H, W)`` input (``stride`` defaults to ``kernel_size``).

    Padding counts as ``-inf``; windows may overlap; ``ceil_mode`` keeps a last partial window;
    the gradient goes to the first maximum of each window. With ``return_indices`` also returns
    the flat position ``(d*H + h)*W + w`` of every maximum, as PyTorch does.

    Shape:
        - input: ``(N, C, D, H, W)`` or ``(C, D, H, W)``
        - output: ``(N, C, OD, OH, OW)``,
          ``OD = (D + 2*padding[0] - dilation[0]*(kernel_size[0]-1) - 1) // stride[0] + 1``
    """
    if isinstance(input, Tensor) and input.ndim == 4:
        return _unbatched(max_pool3d, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)
    _check_input("max_pool3d", input)
    geom = _geometry("max_pool3d", input, kernel_size, stride, padding, dilation, ceil_mode)
    if not return_indices:
        return MaxPool3dFunction.apply(input, geom)
    _, argmax = max_pool_array(input.data, geom, with_argmax=True)
    out = MaxPool3dGather.apply(input, argmax, geom)
    return out, constant(flat_indices(argmax, geom))


def avg_pool3d(input: Tensor, kernel_size: int | tuple[int, int, int],
               stride: int | tuple[int, int, int] | None = None, padding: int | tuple[int, int, int] = 0,
               ceil_mode: bool = False, count_include_pad: bool = True,
               divisor_override: int | None = None) -> Tensor:
    """3-D average pooling of an ``(N, C, D, H, W)`` input (``stride`` defaults to ``kernel_size``).

    As in PyTorch, zero padding counts in the average unless ``count_include_pad=False``;
    ``divisor_override`` replaces the window size.

    Shape:
        - input: ``(N, C, D, H, W)`` or ``(C, D, H, W)``
        - output: ``(N, C, OD, OH, OW)``, ``OD = (D + 2*padding[0] - kernel_size[0]) // stride[0] + 1``
    """
    if isinstance(input, Tensor) and input.ndim == 4:
        return _unbatched(avg_pool3d, input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                          divisor_override)
    _check_input("avg_pool3d", input)
    geom = _geometry("avg_pool3d", input, kernel_size, stride, padding, 1, ceil_mode)
    if divisor_override is not None and (not isinstance(divisor_override, (int, np.integer)) or divisor_override == 0):
        raise ValueError(f"avg_pool3d: divisor_override must be a non-zero int, got {divisor_override!r}")
    divisor = avg_divisor(geom, count_include_pad, divisor_override, get_array_module(input.data), input.dtype)
    return AvgPool3dFunction.apply(input, geom, divisor)


__all__ = ["AvgPool3dFunction", "AvgPool3dTranspose", "MaxPool3dFunction", "MaxPool3dGather", "MaxPool3dScatter",
           "avg_pool3d", "max_pool3d"]
