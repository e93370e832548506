"""Layers that rearrange pixels and patches: ``PixelShuffle``, ``PixelUnshuffle``, ``Unfold`` and
``Fold`` (the functional forms are in :mod:`rosenblatt.nn.functional.patches`)."""

from __future__ import annotations

from rosenblatt.core import Tensor
from rosenblatt.nn.functional.patches import fold, pixel_shuffle, pixel_unshuffle, unfold
from rosenblatt.nn.module import Module

_IntPair = int | tuple[int, int]


class PixelShuffle(Module):
    """Moves each group of ``r*r`` channels into an ``r x r`` block of pixels, ``r = upscale_factor``:
    the sub-pixel convolution's upsampling step (Shi et al., "Real-Time Single Image and Video
    Super-Resolution Using an Efficient Sub-Pixel Convolutional Neural Network", CVPR 2016).
    See :func:`rosenblatt.nn.functional.patches.pixel_shuffle`.

    Shape:
        - Input: ``(*, C*r^2, H, W)``, any number of leading dimensions
        - Output: ``(*, C, H*r, W*r)``
    """

    def __init__(self, upscale_factor: int) -> None:
        super().__init__()
        self.upscale_factor = upscale_factor

    def forward(self, input: Tensor) -> Tensor:
        return pixel_shuffle(input, self.upscale_factor)

    def extra_repr(self) -> str:
        return f"upscale_factor={self.upscale_factor}"


class PixelUnshuffle(Module):
    """Moves each ``r x r`` block of pixels into ``r*r`` channels, ``r = downscale_factor``: the
    inverse of :class:`PixelShuffle`. See :func:`rosenblatt.nn.functional.patches.pixel_unshuffle`.

    Shape:
        - Input: ``(*, C, H*r, W*r)``, any number of leading dimensions
        - Output: ``(*, C*r^2, H, W)``
    """

    def __init__(self, downscale_factor: int) -> None:
        super().__init__()
        self.downscale_factor = downscale_factor

    def forward(self, input: Tensor) -> Tensor:
        return pixel_unshuffle(input, self.downscale_factor)

    def extra_repr(self) -> str:
        return f"downscale_factor={self.downscale_factor}"


class Unfold(Module):
    """Extracts the sliding ``kh x kw`` blocks of an image as columns (im2col); each argument is an
    int or a pair ``(height, width)``. See :func:`rosenblatt.nn.functional.patches.unfold`.

    Shape:
        - Input: ``(N, C, H, W)`` or ``(C, H, W)``
        - Output: ``(N, C*kh*kw, L)`` or ``(C*kh*kw, L)``, ``L = H_blocks * W_blocks``,
          ``H_blocks = (H + 2*padding[0] - dilation[0]*(kh - 1) - 1) // stride[0] + 1`` (likewise W)
    """

    def __init__(self, kernel_size: _IntPair, dilation: _IntPair = 1, padding: _IntPair = 0,
                 stride: _IntPair = 1) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.dilation = dilation
        self.padding = padding
        self.stride = stride

    def forward(self, input: Tensor) -> Tensor:
        return unfold(input, self.kernel_size, self.dilation, self.padding, self.stride)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, dilation={self.dilation}, padding={self.padding}, "
                f"stride={self.stride}")


class Fold(Module):
    """Adds columns of sliding blocks back into an image of ``output_size`` (col2im), summing
    where blocks overlap: the adjoint of :class:`Unfold` with the same arguments. See
    :func:`rosenblatt.nn.functional.patches.fold`.

    Shape:
        - Input: ``(N, C*kh*kw, L)`` or ``(C*kh*kw, L)``, ``L`` the number of blocks of an
          ``output_size`` image
        - Output: ``(N, C, *output_size)`` or ``(C, *output_size)``
    """

    def __init__(self, output_size: _IntPair, kernel_size: _IntPair, dilation: _IntPair = 1,
                 padding: _IntPair = 0, stride: _IntPair = 1) -> None:
        super().__init__()
        self.output_size = output_size
        self.kernel_size = kernel_size
        self.dilation = dilation
        self.padding = padding
        self.stride = stride

    def forward(self, input: Tensor) -> Tensor:
        return fold(input, self.output_size, self.kernel_size, self.dilation, self.padding, self.stride)

    def extra_repr(self) -> str:
        return (f"output_size={self.output_size}, kernel_size={self.kernel_size}, dilation={self.dilation}, "
                f"padding={self.padding}, stride={self.stride}")


__all__ = ["Fold", "PixelShuffle", "PixelUnshuffle", "Unfold"]
