"""Pooling and resizing layers: max/average pooling (1-D, 2-D, adaptive) and ``Upsample``."""

from __future__ import annotations

from typing import Any

from rosenblatt.core import Tensor
from rosenblatt.nn.functional.pooling import (
    adaptive_avg_pool1d,
    adaptive_avg_pool2d,
    adaptive_max_pool1d,
    adaptive_max_pool2d,
    avg_pool1d,
    avg_pool2d,
    max_pool1d,
    max_pool2d,
)
from rosenblatt.nn.functional.pooling3d import avg_pool3d, max_pool3d
from rosenblatt.nn.functional.resize import interpolate
from rosenblatt.nn.module import Module


def _check_rank(layer: Module, x: Any, spatial: int) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{type(layer).__name__}: expected a Tensor input, got {type(x).__name__}")
    if x.ndim not in (spatial + 1, spatial + 2):
        dims = {1: "(N, C, L)", 2: "(N, C, H, W)", 3: "(N, C, D, H, W)"}[spatial]
        raise ValueError(f"{type(layer).__name__}({layer.extra_repr()}): expected a {spatial + 2}-D input {dims} "
                         f"(or {spatial + 1}-D unbatched), got shape {x.shape}")


class _MaxPoolNd(Module):
    _spatial = 2

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0, dilation: Any = 1,
                 return_indices: bool = False, ceil_mode: bool = False) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.dilation = dilation
        self.return_indices = return_indices
        self.ceil_mode = ceil_mode

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class MaxPool1d(_MaxPoolNd):
    """1-D max pooling over ``(N, C, L)`` (``stride`` defaults to ``kernel_size``; padding is -inf).

    Shape:
        - Input: ``(N, C, L)`` or ``(C, L)``
        - Output: ``(N, C, L_out)``, ``L_out = (L + 2*padding - dilation*(kernel_size-1) - 1) // stride + 1``
          (rounded up with ``ceil_mode``)
    """

    def forward(self, x: Tensor) -> Any:
        _check_rank(self, x, 1)
        return max_pool1d(x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode,
                          self.return_indices)


class MaxPool2d(_MaxPoolNd):
    """2-D max pooling over ``(N, C, H, W)`` windows (``stride`` defaults to ``kernel_size``).

    Windows may overlap (``stride < kernel_size``); padding counts as ``-inf``; the gradient goes to
    the first maximum of each window, as in PyTorch.

    Shape:
        - Input: ``(N, C, H, W)`` or ``(C, H, W)``
        - Output: ``(N, C, H_out, W_out)``,
          ``H_out = (H + 2*padding[0] - dilation[0]*(kernel_size[0]-1) - 1) // stride[0] + 1``
          (rounded up with ``ceil_mode``)
    """

    def forward(self, x: Tensor) -> Any:
        _check_rank(self, x, 2)
        return max_pool2d(x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode,
                          self.return_indices)


class _AvgPoolNd(Module):
    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0, ceil_mode: bool = False,
                 count_include_pad: bool = True) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.ceil_mode = ceil_mode
        self.count_include_pad = count_include_pad

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool1d(_AvgPoolNd):
    """1-D average pooling over ``(N, C, L)``; zero padding counts unless ``count_include_pad=False``.

    Shape:
        - Input: ``(N, C, L)`` or ``(C, L)``
        - Output: ``(N, C, L_out)``, ``L_out = (L + 2*padding - kernel_size) // stride + 1``
    """

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0, ceil_mode: bool = False,
                 count_include_pad: bool = True) -> None:
        # PyTorch stores this layer's sizes as 1-tuples (and shows them so in its repr).
        def single(v: Any) -> Any:
            return v if v is None or isinstance(v, tuple) else (v,)

        super().__init__(single(kernel_size), single(stride), single(padding), ceil_mode, count_include_pad)

    def forward(self, x: Tensor) -> Tensor:
        _check_rank(self, x, 1)
        return avg_pool1d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode, self.count_include_pad)


class AvgPool2d(_AvgPoolNd):
    """2-D average pooling over ``(N, C, H, W)``; zero padding counts in the average unless
    ``count_include_pad=False`` (PyTorch's default is to count it); ``divisor_override`` replaces the
    window size.

    Shape:
        - Input: ``(N, C, H, W)`` or ``(C, H, W)``
        - Output: ``(N, C, H_out, W_out)``, ``H_out = (H + 2*padding[0] - kernel_size[0]) // stride[0] + 1``
    """

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0, ceil_mode: bool = False,
                 count_include_pad: bool = True, divisor_override: int | None = None) -> None:
        super().__init__(kernel_size, stride, padding, ceil_mode, count_include_pad)
        self.divisor_override = divisor_override

    def forward(self, x: Tensor) -> Tensor:
        _check_rank(self, x, 2)
        return avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode, self.count_include_pad,
                          self.divisor_override)


class _AdaptivePoolNd(Module):
    """Pooling to a fixed ``output_size`` whatever the input size: ``_pool(x, output_size, ...)``
    over ``_spatial`` trailing axes."""

    _spatial = 2
    _pool: Any = None

    def __init__(self, output_size: Any) -> None:
        super().__init__()
        self.output_size = output_size

    def forward(self, x: Tensor) -> Any:
        _check_rank(self, x, self._spatial)
        return type(self)._pool(x, self.output_size, *self._extra_args())

    def _extra_args(self) -> tuple:
        return ()

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class _AdaptiveMaxPoolNd(_AdaptivePoolNd):
    def __init__(self, output_size: Any, return_indices: bool = False) -> None:
        super().__init__(output_size)
        self.return_indices = return_indices

    def _extra_args(self) -> tuple:
        return (self.return_indices,)


class AdaptiveAvgPool1d(_AdaptivePoolNd):
    """Average pooling of a signal to ``output_size`` values whatever its length;
    ``AdaptiveAvgPool1d(1)`` is the global average of a time series (before a linear head).

    Shape:
        - Input: ``(N, C, L)`` or ``(C, L)``
        - Output: ``(N, C, output_size)``
    """

    _spatial = 1
    _pool = staticmethod(adaptive_avg_pool1d)


class AdaptiveMaxPool1d(_AdaptiveMaxPoolNd):
    """Max pooling of a signal to ``output_size`` values with PyTorch's windows
    ``[floor(i*L/OL), ceil((i+1)*L/OL))``.

    Shape:
        - Input: ``(N, C, L)`` or ``(C, L)``
        - Output: ``(N, C, output_size)``
    """

    _spatial = 1
    _pool = staticmethod(adaptive_max_pool1d)


class AdaptiveAvgPool2d(_AdaptivePoolNd):
    """Average pooling to a fixed ``output_size`` (int, or pair with ``None`` = keep that axis),
    whatever the input size; ``AdaptiveAvgPool2d(1)`` is global average pooling.

    Shape:
        - Input: ``(N, C, H, W)`` or ``(C, H, W)``
        - Output: ``(N, C, *output_size)``
    """

    _pool = staticmethod(adaptive_avg_pool2d)


class AdaptiveMaxPool2d(_AdaptiveMaxPoolNd):
    """Max pooling to a fixed ``output_size`` with PyTorch's windows
    ``[floor(i*H/OH), ceil((i+1)*H/OH))``.

    Shape:
        - Input: ``(N, C, H, W)`` or ``(C, H, W)``
        - Output: ``(N, C, *output_size)``
    """

    _pool = staticmethod(adaptive_max_pool2d)


class Upsample(Module):
    """Resizes images (or 1-D signals) by ``scale_factor`` or to ``size``
    (see :func:`rosenblatt.nn.functional.interpolate`): ``mode`` is ``"nearest"``, ``"bilinear"``
    (``align_corners=False`` by default, as in PyTorch), ``"linear"``, ``"nearest-exact"`` or ``"area"``.

    The first positional argument is ``scale_factor`` (``Upsample(2)`` doubles the size); PyTorch's
    first positional argument is ``size``, so pass ``size=`` by keyword. Keyword calls are identical
    to PyTorch's.

    Shape:
        - Input: ``(N, C, H, W)`` (or ``(N, C, L)``)
        - Output: ``(N, C, floor(H*scale_factor), floor(W*scale_factor))`` or ``(N, C, *size)``
    """

    def __init__(self, scale_factor: float | tuple[float, ...] | None = None, mode: str = "nearest",
                 size: int | tuple[int, ...] | None = None, align_corners: bool | None = None) -> None:
        super().__init__()
        if (size is None) == (scale_factor is None):
            raise ValueError(f"Upsample: give exactly one of size and scale_factor, got size={size!r}, "
                             f"scale_factor={scale_factor!r}")
        self.size = size
        if isinstance(scale_factor, (tuple, list)):
            self.scale_factor = tuple(float(f) for f in scale_factor)
        else:
            self.scale_factor = float(scale_factor) if scale_factor is not None else None
        self.mode = mode
        self.align_corners = align_corners

    def forward(self, x: Tensor) -> Tensor:
        return interpolate(x, self.size, self.scale_factor, self.mode, self.align_corners)

    def extra_repr(self) -> str:
        info = f"scale_factor={self.scale_factor!r}" if self.scale_factor is not None else f"size={self.size!r}"
        return info + f", mode={self.mode!r}"



class MaxPool3d(_MaxPoolNd):
    """3-D max pooling over ``(N, C, D, H, W)`` volumes (``stride`` defaults to ``kernel_size``).

    Windows may overlap; padding counts as ``-inf``; the gradient goes to the first maximum of each
    window, as in PyTorch.

    Shape:
        - Input: ``(N, C, D, H, W)`` or ``(C, D, H, W)``
        - Output: ``(N, C, D_out, H_out, W_out)``,
          ``D_out = (D + 2*padding[0] - dilation[0]*(kernel_size[0]-1) - 1) // stride[0] + 1``
          (likewise H_out, W_out; rounded up with ``ceil_mode``)
    """

    def forward(self, x: Tensor) -> Any:
        _check_rank(self, x, 3)
        return max_pool3d(x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode,
                          self.return_indices)


class AvgPool3d(_AvgPoolNd):
    """3-D average pooling over ``(N, C, D, H, W)`` volumes; zero padding counts in the average unless
    ``count_include_pad=False``; ``divisor_override`` replaces the window size.

    Shape:
        - Input: ``(N, C, D, H, W)`` or ``(C, D, H, W)``
        - Output: ``(N, C, D_out, H_out, W_out)``, ``D_out = (D + 2*padding[0] - kernel_size[0]) // stride[0] + 1``
    """

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0, ceil_mode: bool = False,
                 count_include_pad: bool = True, divisor_override: int | None = None) -> None:
        super().__init__(kernel_size, stride, padding, ceil_mode, count_include_pad)
        self.divisor_override = divisor_override

    def forward(self, x: Tensor) -> Tensor:
        _check_rank(self, x, 3)
        return avg_pool3d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode, self.count_include_pad,
                          self.divisor_override)


__all__ = ["AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveMaxPool1d", "AdaptiveMaxPool2d", "AvgPool1d", "AvgPool2d", "MaxPool1d", "MaxPool2d", "Upsample", "AvgPool3d", "MaxPool3d"]
