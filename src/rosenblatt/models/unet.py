"""U-Net (Ronneberger, Fischer and Brox, "U-Net: convolutional networks for biomedical image
segmentation", MICCAI 2015, arXiv:1505.04597)."""

from __future__ import annotations

from rosenblatt import nn
from rosenblatt.core import Tensor
from rosenblatt.models._checks import check_image_batch
from rosenblatt.ops import cat


class DoubleConv(nn.Sequential):
    """``(3x3 conv -> [BatchNorm2d] -> ReLU) x 2``, padded so the size is kept.

    Shape:
        - Input: ``(N, in_channels, H, W)``
        - Output: ``(N, out_channels, H, W)``
    """

    def __init__(self, in_channels: int, out_channels: int, batch_norm: bool = True) -> None:
        layers: list[nn.Module] = []
        for channels in (in_channels, out_channels):
            layers.append(nn.Conv2d(channels, out_channels, kernel_size=3, padding=1, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(out_channels))
            layers.append(nn.ReLU())
        super().__init__(*layers)


class UNet(nn.Module):
    """U-Net: a contracting path of double 3x3 convolutions and 2x2 max pools (channels doubling
    at each of ``depth`` levels), an expanding path of 2x2 up-convolutions (``ConvTranspose2d``) that
    halve the channels, each concatenated with the feature map of the same level ("skip
    connection"), then a double convolution; a final 1x1 convolution gives ``out_channels`` maps.

    From Ronneberger et al., "U-Net: convolutional networks for biomedical image segmentation" (2015).
    Differences from the paper, as in most current uses: padded convolutions, so the output has the
    input's size and no cropping is needed, and optional batch norm (on by default). The output is
    raw: logits for segmentation (with ``CrossEntropyLoss`` or ``BCEWithLogitsLoss``), or the
    image itself for denoising (with ``MSELoss``).

    Args:
        in_channels: channels of the input images.
        out_channels: output maps (classes for segmentation, image channels for denoising).
        depth: number of 2x2 down-samplings (4 in the paper).
        base_channels: channels of the first level (64 in the paper); level i has ``base_channels * 2**i``.
        batch_norm: batch norm after each convolution.

    Height and width must be multiples of ``2**depth`` (so the minimum input size is ``2**depth``).

    Shape:
        - Input: ``(N, in_channels, H, W)``
        - Output: ``(N, out_channels, H, W)``
    """

    def __init__(self, in_channels: int = 1, out_channels: int = 1, depth: int = 4, base_channels: int = 64,
                 batch_norm: bool = True) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"UNet: depth must be at least 1, got {depth}")
        self.in_channels, self.out_channels, self.depth = in_channels, out_channels, depth
        widths = [base_channels * 2 ** i for i in range(depth + 1)]
        self.inc = DoubleConv(in_channels, widths[0], batch_norm)
        self.pool = nn.MaxPool2d(2)
        self.downs = nn.ModuleList([DoubleConv(widths[i], widths[i + 1], batch_norm) for i in range(depth)])
        self.ups = nn.ModuleList([nn.ConvTranspose2d(widths[i + 1], widths[i], kernel_size=2, stride=2)
                                  for i in reversed(range(depth))])
        self.up_convs = nn.ModuleList([DoubleConv(2 * widths[i], widths[i], batch_norm)
                                       for i in reversed(range(depth))])
        self.outc = nn.Conv2d(widths[0], out_channels, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        check_image_batch("UNet", x, self.in_channels, 2 ** self.depth, multiple_of=2 ** self.depth)
        x = self.inc(x)
        skips = [x]
        for down in self.downs:
            x = down(self.pool(x))
            skips.append(x)
        skips.pop()  # the bottom level feeds the first up-convolution directly
        for up, conv in zip(self.ups, self.up_convs):
            x = conv(cat([skips.pop(), up(x)], axis=1))
        return self.outc(x)


def unet(num_classes: int = 1, in_channels: int = 1, small_input: bool = True, depth: int = 2,
         base_channels: int = 16, **kwargs) -> UNet:
    """A small U-Net (depth 2, 16 base channels: inputs must be multiples of 4). ``num_classes`` is the
    number of output maps; ``small_input`` is accepted for a uniform factory signature."""
    return UNet(in_channels=in_channels, out_channels=num_classes, depth=depth, base_channels=base_channels, **kwargs)
