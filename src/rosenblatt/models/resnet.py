"""Residual networks (He, Zhang, Ren and Sun, "Deep residual learning for image recognition",
CVPR 2016, arXiv:1512.03385): the ImageNet ResNets in torchvision's layout and the CIFAR ResNet-20."""

from __future__ import annotations

from collections.abc import Sequence

from rosenblatt import nn
from rosenblatt.core import Tensor
from rosenblatt.models._checks import check_image_batch
from rosenblatt.nn._fusion import RESIDUAL_BLOCKS, conv_bn, residual_block
from rosenblatt.ops import pad


def _conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d, relu: nn.ReLU | None, x: Tensor,
             residual: Tensor | None = None) -> Tensor:
    """``relu(bn(conv(x)) + residual)`` (each part optional): one fused node where the oneDNN kernels run."""
    y = conv_bn(conv, bn, relu, x, residual)
    if y is None:
        y = bn(conv(x))
        if residual is not None:
            y = y + residual
        if relu is not None:
            y = relu(y)
    return y


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution with padding 1 and no bias (a batch norm follows)."""
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution without bias: the projection shortcut."""
    return nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and a shortcut: ``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))``
    (He et al. 2016, Figure 2). ``downsample`` maps ``x`` to the output shape when it changes.

    Shape:
        - Input: ``(N, in_channels, H, W)``
        - Output: ``(N, channels, ceil(H / stride), ceil(W / stride))``
    """

    expansion = 1

    def __init__(self, in_channels: int, channels: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_channels, channels, stride)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU()
        self.conv2 = conv3x3(channels, channels)
        self.bn2 = nn.BatchNorm2d(channels)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        return self._forward_with(x, x if self.downsample is None else self.downsample(x))

    def _forward_with(self, x: Tensor, identity: Tensor) -> Tensor:
        """The block on ``x`` with its shortcut ``identity`` already computed."""
        y = residual_block(self.conv1, self.bn1, self.relu, self.conv2, self.bn2, x, identity)
        if y is not None:  # one fused node where the oneDNN kernels run
            return y
        out = _conv_bn(self.conv1, self.bn1, self.relu, x)
        return _conv_bn(self.conv2, self.bn2, self.relu, out, identity)


RESIDUAL_BLOCKS.add(BasicBlock)  # a Sequential runs a stage of identity blocks as one fused node


class Bottleneck(nn.Module):
    """1x1 reduce -> 3x3 -> 1x1 expand (by ``expansion = 4``), each with batch norm, plus a shortcut
    (He et al. 2016, Figure 5 right). As in torchvision ("ResNet v1.5") the stride sits on the 3x3
    convolution.

    Shape:
        - Input: ``(N, in_channels, H, W)``
        - Output: ``(N, 4 * channels, ceil(H / stride), ceil(W / stride))``
    """

    expansion = 4

    def __init__(self, in_channels: int, channels: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = conv1x1(in_channels, channels)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = conv3x3(channels, channels, stride)
        self.bn2 = nn.BatchNorm2d(channels)
        self.conv3 = conv1x1(channels, channels * self.expansion)
        self.bn3 = nn.BatchNorm2d(channels * self.expansion)
        self.relu = nn.ReLU()
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = _conv_bn(self.conv1, self.bn1, self.relu, x)
        out = _conv_bn(self.conv2, self.bn2, self.relu, out)
        return _conv_bn(self.conv3, self.bn3, self.relu, out, identity)


def _init_resnet(model: nn.Module, zero_init_residual: bool) -> None:
    # torchvision's initialisation: He et al. 2015 (fan_out) for convolutions, BN to identity
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    if zero_init_residual:
        # start each residual branch at zero, so each block starts as the identity (Goyal et al. 2017)
        for m in model.modules():
            if isinstance(m, Bottleneck):
                nn.init.zeros_(m.bn3.weight)
            elif isinstance(m, BasicBlock):
                nn.init.zeros_(m.bn2.weight)


class ResNet(nn.Module):
    """The ImageNet residual network of He et al., "Deep residual learning for image recognition"
    (2016), Table 1: a 7x7/2 convolution and 3x3/2 max pool, four stages of residual blocks
    (64, 128, 256, 512 channels; stride 2 from the second), global average pooling and a linear layer.

    Layout, names (``conv1``, ``bn1``, ``layer1.0.conv1``, ``layer2.0.downsample.0``, ``fc``, ...)
    and initialisation are torchvision's, so its ``state_dict`` loads. Parameter counts for 1000
    classes: resnet18 11,689,512; resnet34 21,797,672; resnet50 25,557,032.

    ``small_input=True`` (for 32x32 or 28x28 images): a 3x3 stride-1 first convolution and no max
    pool. Any input of at least 1x1 runs; 32x32 (or 8x8 with ``small_input``) is the smallest size at
    which every stage still sees more than one pixel (224x224 intended).

    Args:
        block: :class:`BasicBlock` or :class:`Bottleneck`.
        layers: number of blocks in each of the four stages.
        width: channels of the first stage (64 in the paper); the stages have width x 1, 2, 4, 8.

    Shape:
        - Input: ``(N, in_channels, H, W)``
        - Output: ``(N, num_classes)`` logits
    """

    def __init__(self, block: type[BasicBlock] | type[Bottleneck], layers: Sequence[int], num_classes: int = 1000,
                 in_channels: int = 3, small_input: bool = False, width: int = 64,
                 zero_init_residual: bool = False) -> None:
        super().__init__()
        if len(layers) != 4:
            raise ValueError(f"ResNet: layers must give the number of blocks of 4 stages, got {list(layers)}")
        self.in_channels, self.small_input = in_channels, small_input
        self._channels = width
        if small_input:
            self.conv1 = nn.Conv2d(in_channels, width, kernel_size=3, stride=1, padding=1, bias=False)
        else:
            self.conv1 = nn.Conv2d(in_channels, width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU()
        self.maxpool = nn.Identity() if small_input else nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, width, layers[0])
        self.layer2 = self._make_layer(block, width * 2, layers[1], stride=2)
        self.layer3 = self._make_layer(block, width * 4, layers[2], stride=2)
        self.layer4 = self._make_layer(block, width * 8, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(width * 8 * block.expansion, num_classes)
        _init_resnet(self, zero_init_residual)

    def _make_layer(self, block: type[BasicBlock] | type[Bottleneck], channels: int, blocks: int,
                    stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self._channels != channels * block.expansion:
            downsample = nn.Sequential(conv1x1(self._channels, channels * block.expansion, stride),
                                       nn.BatchNorm2d(channels * block.expansion))
        layers = [block(self._channels, channels, stride, downsample)]
        self._channels = channels * block.expansion
        layers += [block(self._channels, channels) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        check_image_batch("ResNet", x, self.in_channels, 1)
        x = self.maxpool(_conv_bn(self.conv1, self.bn1, self.relu, x))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.avgpool(x)
        return self.fc(x.reshape(x.shape[0], -1))


def resnet18(num_classes: int = 1000, in_channels: int = 3, small_input: bool = False, **kwargs) -> ResNet:
    """ResNet-18 (He et al. 2016; torchvision layout, 11,689,512 parameters for 1000 classes)."""
    return ResNet(BasicBlock, [2, 2, 2, 2], num_classes, in_channels, small_input, **kwargs)


def resnet34(num_classes: int = 1000, in_channels: int = 3, small_input: bool = False, **kwargs) -> ResNet:
    """ResNet-34 (He et al. 2016; torchvision layout, 21,797,672 parameters for 1000 classes)."""
    return ResNet(BasicBlock, [3, 4, 6, 3], num_classes, in_channels, small_input, **kwargs)


def resnet50(num_classes: int = 1000, in_channels: int = 3, small_input: bool = False, **kwargs) -> ResNet:
    """ResNet-50 (He et al. 2016; torchvision layout, 25,557,032 parameters for 1000 classes)."""
    return ResNet(Bottleneck, [3, 4, 6, 3], num_classes, in_channels, small_input, **kwargs)


# -- the CIFAR networks of section 4.2 ------------------------------------------------------------

class PadShortcut(nn.Module):
    """Option A shortcut of He et al. (2016): subsample by ``stride`` and append zero channels,
    so the shortcut adds no parameters.

    Shape:
        - Input: ``(N, C, H, W)``
        - Output: ``(N, out_channels, ceil(H / stride), ceil(W / stride))``
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 2) -> None:
        super().__init__()
        if out_channels < in_channels:
            raise ValueError(f"PadShortcut: out_channels ({out_channels}) must be >= in_channels ({in_channels})")
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride

    def forward(self, x: Tensor) -> Tensor:
        if self.stride != 1:
            x = x[:, :, ::self.stride, ::self.stride]
        extra = self.out_channels - self.in_channels
        # split the new channels evenly on both sides, as the common CIFAR implementations do
        return pad(x, (0, 0, 0, 0, extra // 2, extra - extra // 2))

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, stride={self.stride}"


class CifarResNet(nn.Module):
    """The CIFAR-10 residual network of He et al. (2016), section 4.2: a 3x3 convolution with 16
    channels, three stages of ``n`` :class:`BasicBlock` (16, 32, 64 channels; stride 2 from the
    second), global average pooling and a linear layer: ``6n + 2`` weighted layers (n = 3: ResNet-20).

    ``shortcut="A"`` (the paper's CIFAR choice, default): parameter-free shortcuts that subsample and
    zero-pad channels (:class:`PadShortcut`); ResNet-20 then has 269,722 parameters for 10 classes.
    ``shortcut="B"``: 1x1 convolution + batch norm projections where the shape changes.
    Minimum input size 4x4 (32x32 intended; 28x28 works).

    Shape:
        - Input: ``(N, in_channels, H, W)``
        - Output: ``(N, num_classes)`` logits
    """

    def __init__(self, n: int = 3, num_classes: int = 10, in_channels: int = 3, shortcut: str = "A",
                 width: int = 16) -> None:
        super().__init__()
        if shortcut not in ("A", "B"):
            raise ValueError(f"CifarResNet: shortcut must be 'A' or 'B', got {shortcut!r}")
        self.in_channels, self.shortcut = in_channels, shortcut
        self.conv1 = conv3x3(in_channels, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU()
        self._channels = width
        self.layer1 = self._make_layer(width, n, 1)
        self.layer2 = self._make_layer(width * 2, n, 2)
        self.layer3 = self._make_layer(width * 4, n, 2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(width * 4, num_classes)
        _init_resnet(self, zero_init_residual=False)

    def _make_layer(self, channels: int, blocks: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self._channels != channels:
            if self.shortcut == "A":
                downsample = PadShortcut(self._channels, channels, stride)
            else:
                downsample = nn.Sequential(conv1x1(self._channels, channels, stride), nn.BatchNorm2d(channels))
        layers = [BasicBlock(self._channels, channels, stride, downsample)]
        self._channels = channels
        layers += [BasicBlock(channels, channels) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        check_image_batch("CifarResNet", x, self.in_channels, 4)
        x = _conv_bn(self.conv1, self.bn1, self.relu, x)
        x = self.layer3(self.layer2(self.layer1(x)))
        x = self.avgpool(x)
        return self.fc(x.reshape(x.shape[0], -1))


def resnet20(num_classes: int = 10, in_channels: int = 3, small_input: bool = True, shortcut: str = "A",
             **kwargs) -> CifarResNet:
    """ResNet-20 for 32x32 images (He et al. 2016, section 4.2; option A shortcuts by default).
    ``small_input`` is accepted for a uniform factory signature: this network is built for small images."""
    return CifarResNet(3, num_classes=num_classes, in_channels=in_channels, shortcut=shortcut, **kwargs)
