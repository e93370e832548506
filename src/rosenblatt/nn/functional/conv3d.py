"""3-D convolution ``conv3d`` of ``(N, C, D, H, W)`` volumes (PyTorch's weight layout and arguments).

The array work is in :mod:`rosenblatt.kernels.conv3d` (im2col per batch chunk, one GEMM per group,
no scatter-adds), or in oneDNN's N-d convolution kernels (:mod:`rosenblatt.kernels.onednn.conv`)
when that kernel set is active and the arrays are float32 NumPy arrays. As for ``conv2d``, the first-order
gradients are array kernels (``backward_arrays``) and the differentiable ``backward`` is built
from the transposed convolution (:class:`ConvTranspose3dFunction`) and the weight gradient
(:class:`Conv3dWeightGradFunction`), so ``create_graph=True`` gives exact second derivatives.
"""

from __future__ import annotations

from typing import Any

from rosenblatt.core import Tensor
from rosenblatt.kernels.conv3d import (
    Conv3dGeometry,
    conv3d_array,
    conv3d_grad_input_array,
    conv3d_grad_weight_array,
)
from rosenblatt.nn.functional.conv import (
    Conv2dFunction,
    Conv2dWeightGradFunction,
    ConvKernels,
    ConvTranspose2dFunction,
    _check_weight,
    _int_tuple,
    _padding_pairs,
)
from rosenblatt.ops import reshape


class Conv3dFunction(Conv2dFunction):
    """``y = conv3d(x, w) + b``; its differentiable backward is a :class:`ConvTranspose3dFunction`
    and a :class:`Conv3dWeightGradFunction`."""


class ConvTranspose3dFunction(ConvTranspose2dFunction):
    """The transposed 3-D convolution (``conv3d``'s input gradient): linear in ``gy`` and in ``w``."""


class Conv3dWeightGradFunction(Conv2dWeightGradFunction):
    """``conv3d``'s weight gradient: bilinear in ``x`` and ``gy``."""


CONV3D_KERNELS = ConvKernels(conv3d_array, conv3d_grad_input_array, conv3d_grad_weight_array)
CONV3D_KERNELS.bind(Conv3dFunction, ConvTranspose3dFunction, Conv3dWeightGradFunction)


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


__all__ = ["Conv3dFunction", "Conv3dWeightGradFunction", "ConvTranspose3dFunction", "conv3d", "conv3d_geometry"]
