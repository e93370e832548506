"""Densely connected networks (Huang, Liu, van der Maaten and Weinberger, "Densely connected
convolutional networks", CVPR 2017, arXiv:1608.06993)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from rosenblatt import nn
from rosenblatt.core import Tensor
from rosenblatt.models._checks import check_image_batch
from rosenblatt.ops import cat


class DenseLayer(nn.Module):
    """One layer of a dense block, the "bottleneck" form (DenseNet-B): ``BN -> ReLU -> 1x1 conv
    (bn_size * growth_rate channels) -> BN -> ReLU -> 3x3 conv (growth_rate channels)``, applied to the
    concatenation of every earlier feature map of the block.

    Shape:
        - Input: a list of ``(N, C_i, H, W)`` tensors with ``sum(C_i) = in_channels``
        - Output: ``(N, growth_rate, H, W)``
    """

    def __init__(self, in_channels: int, growth_rate: int, bn_size: int = 4, drop_rate: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.BatchNorm2d(in_channels)
        self.relu1 = nn.ReLU()
        self.conv1 = nn.Conv2d(in_channels, bn_size * growth_rate, kernel_size=1, bias=False)
        self.norm2 = nn.BatchNorm2d(bn_size * growth_rate)
        self.relu2 = nn.ReLU()
        self.conv2 = nn.Conv2d(bn_size * growth_rate, growth_rate, kernel_size=3, padding=1, bias=False)
        self.drop_rate = drop_rate
        self.dropout = nn.Dropout(drop_rate) if drop_rate > 0 else None

    def forward(self, features: Tensor | list[Tensor]) -> Tensor:
        x = cat(features, axis=1) if isinstance(features, (list, tuple)) else features
        x = self.conv1(self.relu1(self.norm1(x)))
        x = self.conv2(self.relu2(self.norm2(x)))
        return self.dropout(x) if self.dropout is not None else x


class DenseBlock(nn.ModuleDict):
    """``num_layers`` :class:`DenseLayer` (named ``denselayer1``, ``denselayer2``, ...), each fed with
    the block input and all earlier layers' outputs; returns all of them concatenated
    (Huang et al., 2017, "Densely Connected Convolutional Networks").

    Shape:
        - Input: ``(N, in_channels, H, W)``
        - Output: ``(N, in_channels + num_layers * growth_rate, H, W)``
    """

    def __init__(self, num_layers: int, in_channels: int, bn_size: int = 4, growth_rate: int = 32,
                 drop_rate: float = 0.0) -> None:
        super().__init__()
        for i in range(num_layers):
            self[f"denselayer{i + 1}"] = DenseLayer(in_channels + i * growth_rate, growth_rate, bn_size, drop_rate)

    def forward(self, x: Tensor) -> Tensor:
        features = [x]
        for layer in self.values():
            features.append(layer(features))
        return cat(features, axis=1)


class Transition(nn.Sequential):
    """Between dense blocks: ``BN -> ReLU -> 1x1 conv -> 2x2 average pool`` (the compression of
    DenseNet-C sets ``out_channels``; Huang et al., 2017).

    Shape:
        - Input: ``(N, in_channels, H, W)``
        - Output: ``(N, out_channels, H // 2, W // 2)``
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(OrderedDict([
            ("norm", nn.BatchNorm2d(in_channels)),
            ("relu", nn.ReLU()),
            ("conv", nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False)),
            ("pool", nn.AvgPool2d(kernel_size=2, stride=2)),
        ]))


class DenseNet(nn.Module):
    """DenseNet-BC of Huang et al., "Densely connected convolutional networks" (2017): a stem,
    dense blocks of bottleneck layers separated by compressing transitions, a final batch norm,
    ReLU, global average pooling and a linear layer.

    Layout and names (``features.conv0``, ``features.denseblock1.denselayer1.norm1``,
    ``features.transition1.conv``, ``features.norm5``, ``classifier``) and initialisation are
    torchvision's; densenet121 has 7,978,856 parameters for 1000 classes.

    ``small_input=True``: the CIFAR stem of the paper (one 3x3 convolution with ``num_init_features``
    channels, no pooling) instead of the 7x7/2 convolution and 3x3/2 max pool. Each transition halves
    the size, so the minimum input is ``2**(blocks - 1)`` with ``small_input`` and ``4 * 2**(blocks - 1)``
    without (32 for densenet121; 224 intended).

    Args:
        growth_rate: channels each dense layer adds (k in the paper).
        block_config: number of layers in each dense block.
        num_init_features: channels of the stem convolution.
        bn_size: the bottleneck has ``bn_size * growth_rate`` channels.
        compression: the fraction of channels a transition keeps (theta; 0.5 in DenseNet-BC).
        drop_rate: dropout after each dense layer.

    Shape:
        - Input: ``(N, in_channels, H, W)``
        - Output: ``(N, num_classes)`` logits
    """

    def __init__(self, growth_rate: int = 32, block_config: Sequence[int] = (6, 12, 24, 16),
                 num_init_features: int = 64, bn_size: int = 4, drop_rate: float = 0.0, num_classes: int = 1000,
                 in_channels: int = 3, small_input: bool = False, compression: float = 0.5) -> None:
        super().__init__()
        if not 0.0 < compression <= 1.0:
            raise ValueError(f"DenseNet: compression must be in (0, 1], got {compression}")
        if not block_config:
            raise ValueError("DenseNet: block_config needs at least one dense block")
        self.in_channels, self.small_input = in_channels, small_input
        blocks = len(block_config)
        self.min_size = 2 ** (blocks - 1) if small_input else 4 * 2 ** (blocks - 1)
        if small_input:
            stem = [("conv0", nn.Conv2d(in_channels, num_init_features, kernel_size=3, padding=1, bias=False))]
        else:
            stem = [
                ("conv0", nn.Conv2d(in_channels, num_init_features, kernel_size=7, stride=2, padding=3, bias=False)),
                ("norm0", nn.BatchNorm2d(num_init_features)),
                ("relu0", nn.ReLU()),
                ("pool0", nn.MaxPool2d(kernel_size=3, stride=2, padding=1)),
            ]
        self.features = nn.Sequential(OrderedDict(stem))
        channels = num_init_features
        for i, num_layers in enumerate(block_config):
            self.features.add_module(f"denseblock{i + 1}",
                                     DenseBlock(num_layers, channels, bn_size, growth_rate, drop_rate))
            channels += num_layers * growth_rate
            if i != blocks - 1:
                out_channels = int(channels * compression)
                self.features.add_module(f"transition{i + 1}", Transition(channels, out_channels))
                channels = out_channels
        self.features.add_module(f"norm{blocks + 1}", nn.BatchNorm2d(channels))
        self.relu = nn.ReLU()
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.classifier = nn.Linear(channels, num_classes)
        self.num_features = channels

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        check_image_batch("DenseNet", x, self.in_channels, self.min_size)
        x = self.avgpool(self.relu(self.features(x)))
        return self.classifier(x.reshape(x.shape[0], -1))


def densenet121(num_classes: int = 1000, in_channels: int = 3, small_input: bool = False, **kwargs) -> DenseNet:
    """DenseNet-121 (Huang et al., 2017): k = 32, blocks 6-12-24-16; torchvision layout, 7,978,856
    parameters for 1000 classes."""
    return DenseNet(32, (6, 12, 24, 16), 64, num_classes=num_classes, in_channels=in_channels,
                    small_input=small_input, **kwargs)


def densenet_bc(num_classes: int = 10, in_channels: int = 3, small_input: bool = True, growth_rate: int = 12,
                block_config: Sequence[int] = (6, 6, 6), **kwargs) -> DenseNet:
    """A small DenseNet-BC for 28x28/32x32 images: the CIFAR form of Huang et al. (2017) with
    k = 12, three blocks of 6 bottleneck layers (depth 40), 2k stem channels and compression 0.5
    (about 0.18 M parameters). ``small_input=False`` uses the ImageNet stem instead."""
    return DenseNet(growth_rate, block_config, 2 * growth_rate, num_classes=num_classes, in_channels=in_channels,
                    small_input=small_input, **kwargs)
