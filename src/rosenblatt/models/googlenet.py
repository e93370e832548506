"""GoogLeNet / Inception v1 (Szegedy et al., "Going deeper with convolutions", CVPR 2015,
arXiv:1409.4842)."""

from __future__ import annotations

from rosenblatt import nn
from rosenblatt.core import Tensor
from rosenblatt.models._checks import check_image_batch
from rosenblatt.ops import cat


class BasicConv2d(nn.Module):
    """Convolution (no bias) -> ``BatchNorm2d(eps=0.001)`` -> ReLU: torchvision's GoogLeNet unit
    (batch norm came later than the paper, with Inception v2).

    Shape:
        - Input: ``(N, in_channels, H, W)``
        - Output: ``(N, out_channels, H', W')`` as for ``Conv2d(in_channels, out_channels, **kwargs)``
    """

    def __init__(self, in_channels: int, out_channels: int, **kwargs) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **kwargs)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)
        self.relu = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.bn(self.conv(x)))


class InceptionModule(nn.Module):
    """The Inception module of Szegedy et al. (2014), Figure 2(b): four parallel branches
    (1x1; 1x1 -> 3x3; 1x1 -> "5x5"; 3x3 max pool -> 1x1) concatenated along channels.

    As in torchvision (whose weights this layout loads), the "5x5" branch uses a 3x3 kernel.

    Args:
        in_channels: input channels.
        ch1x1: output channels of the 1x1 branch.
        ch3x3red, ch3x3: reduction and output channels of the 3x3 branch.
        ch5x5red, ch5x5: reduction and output channels of the second (nominally 5x5) branch.
        pool_proj: output channels of the pooling branch's 1x1 projection.

    Shape:
        - Input: ``(N, in_channels, H, W)``
        - Output: ``(N, ch1x1 + ch3x3 + ch5x5 + pool_proj, H, W)``
    """

    def __init__(self, in_channels: int, ch1x1: int, ch3x3red: int, ch3x3: int, ch5x5red: int, ch5x5: int,
                 pool_proj: int) -> None:
        super().__init__()
        self.out_channels = ch1x1 + ch3x3 + ch5x5 + pool_proj
        self.branch1 = BasicConv2d(in_channels, ch1x1, kernel_size=1)
        self.branch2 = nn.Sequential(BasicConv2d(in_channels, ch3x3red, kernel_size=1),
                                     BasicConv2d(ch3x3red, ch3x3, kernel_size=3, padding=1))
        self.branch3 = nn.Sequential(BasicConv2d(in_channels, ch5x5red, kernel_size=1),
                                     BasicConv2d(ch5x5red, ch5x5, kernel_size=3, padding=1))
        self.branch4 = nn.Sequential(nn.MaxPool2d(kernel_size=3, stride=1, padding=1, ceil_mode=True),
                                     BasicConv2d(in_channels, pool_proj, kernel_size=1))

    def forward(self, x: Tensor) -> Tensor:
        return cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], axis=1)


class InceptionAux(nn.Module):
    """The auxiliary classifier attached to inception 4a and 4d during training (torchvision layout).

    Shape:
        - Input: ``(N, in_channels, H, W)``
        - Output: ``(N, num_classes)`` logits
    """

    def __init__(self, in_channels: int, num_classes: int, dropout: float = 0.7) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d((4, 4))
        self.conv = BasicConv2d(in_channels, 128, kernel_size=1)
        self.fc1 = nn.Linear(2048, 1024)
        self.relu = nn.ReLU()
        self.fc2 = nn.Linear(1024, num_classes)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(self.pool(x))
        x = self.relu(self.fc1(x.reshape(x.shape[0], -1)))
        return self.fc2(self.dropout(x))


class GoogLeNet(nn.Module):
    """GoogLeNet (Inception v1): a convolutional stem, nine Inception modules, global average
    pooling and one linear layer.

    From Szegedy et al., "Going deeper with convolutions" (2014), in torchvision's form: batch-normalised
    convolutions (:class:`BasicConv2d`), no auxiliary classifiers by default (6,624,904 parameters
    for 1000 classes; ``aux_logits=True`` adds the two of the paper, which then, in training mode,
    make ``forward`` return ``(logits, aux2, aux1)``).

    ``small_input=True`` (for 32x32 or 28x28 images): a 3x3 stride-1 first convolution and no
    max pool in the stem, so only the two pools between Inception stages downsample. Minimum input
    size: 8x8 with ``small_input`` and 32x32 without (224x224 intended).

    Shape:
        - Input: ``(N, in_channels, H, W)``
        - Output: ``(N, num_classes)`` logits
    """

    def __init__(self, num_classes: int = 1000, in_channels: int = 3, small_input: bool = False,
                 aux_logits: bool = False, dropout: float = 0.2, dropout_aux: float = 0.7) -> None:
        super().__init__()
        self.in_channels, self.small_input, self.aux_logits = in_channels, small_input, aux_logits
        if small_input:
            self.min_size = 8
            self.conv1 = BasicConv2d(in_channels, 64, kernel_size=3, stride=1, padding=1)
            self.maxpool1 = nn.Identity()
        else:
            self.min_size = 32
            self.conv1 = BasicConv2d(in_channels, 64, kernel_size=7, stride=2, padding=3)
            self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2 = BasicConv2d(64, 64, kernel_size=1)
        self.conv3 = BasicConv2d(64, 192, kernel_size=3, padding=1)
        self.maxpool2 = nn.Identity() if small_input else nn.MaxPool2d(3, stride=2, ceil_mode=True)

        self.inception3a = InceptionModule(192, 64, 96, 128, 16, 32, 32)
        self.inception3b = InceptionModule(256, 128, 128, 192, 32, 96, 64)
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)

        self.inception4a = InceptionModule(480, 192, 96, 208, 16, 48, 64)
        self.inception4b = InceptionModule(512, 160, 112, 224, 24, 64, 64)
        self.inception4c = InceptionModule(512, 128, 128, 256, 24, 64, 64)
        self.inception4d = InceptionModule(512, 112, 144, 288, 32, 64, 64)
        self.inception4e = InceptionModule(528, 256, 160, 320, 32, 128, 128)
        self.maxpool4 = nn.MaxPool2d(2, stride=2, ceil_mode=True)

        self.inception5a = InceptionModule(832, 256, 160, 320, 32, 128, 128)
        self.inception5b = InceptionModule(832, 384, 192, 384, 48, 128, 128)

        if aux_logits:
            self.aux1 = InceptionAux(512, num_classes, dropout=dropout_aux)
            self.aux2 = InceptionAux(528, num_classes, dropout=dropout_aux)
        else:
            self.aux1 = None
            self.aux2 = None
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(1024, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        # torchvision draws from a normal(0, 0.01) truncated to [-2, 2]: at 200 standard deviations
        # the truncation never bites, so a plain normal is the same distribution
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.normal_(m.weight, 0.0, 0.01)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor | tuple[Tensor, Tensor, Tensor]:
        check_image_batch("GoogLeNet", x, self.in_channels, self.min_size)
        x = self.maxpool1(self.conv1(x))
        x = self.maxpool2(self.conv3(self.conv2(x)))
        x = self.maxpool3(self.inception3b(self.inception3a(x)))
        x = self.inception4a(x)
        aux1 = self.aux1(x) if self.aux1 is not None and self.training else None
        x = self.inception4d(self.inception4c(self.inception4b(x)))
        aux2 = self.aux2(x) if self.aux2 is not None and self.training else None
        x = self.maxpool4(self.inception4e(x))
        x = self.inception5b(self.inception5a(x))
        x = self.avgpool(x)
        x = self.fc(self.dropout(x.reshape(x.shape[0], -1)))
        if aux1 is not None:
            return x, aux2, aux1
        return x


def googlenet(num_classes: int = 1000, in_channels: int = 3, small_input: bool = False, **kwargs) -> GoogLeNet:
    """GoogLeNet without auxiliary classifiers (torchvision layout; ``small_input=True`` for 32x32/28x28)."""
    return GoogLeNet(num_classes=num_classes, in_channels=in_channels, small_input=small_input, **kwargs)
