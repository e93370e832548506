"""VGG (Simonyan and Zisserman, "Very deep convolutional networks for large-scale image
recognition", ICLR 2015, arXiv:1409.1556)."""

from __future__ import annotations

from collections.abc import Sequence

from rosenblatt import nn
from rosenblatt.core import Tensor
from rosenblatt.models._checks import check_image_batch

# Table 1 of the paper: numbers are 3x3 convolutions (output channels), "M" a 2x2 max pool.
CONFIGS: dict[str, list[int | str]] = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg13": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
              512, 512, 512, 512, "M"],
}


def make_layers(cfg: Sequence[int | str], in_channels: int = 3, batch_norm: bool = False) -> nn.Sequential:
    """The convolutional part of a VGG: ``conv3x3 [-> BatchNorm2d] -> ReLU`` per number in ``cfg``,
    ``MaxPool2d(2)`` per ``"M"`` (torchvision's indices, so ``features.0.weight`` etc. match)."""
    layers: list[nn.Module] = []
    channels = in_channels
    for item in cfg:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        elif isinstance(item, int) and item > 0:
            layers.append(nn.Conv2d(channels, item, kernel_size=3, padding=1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(item))
            layers.append(nn.ReLU())
            channels = item
        else:
            raise ValueError(f"VGG: a cfg entry must be a positive channel count or 'M', got {item!r}")
    return nn.Sequential(*layers)


class VGG(nn.Module):
    """VGG: stacks of 3x3 convolutions and 2x2 max pools, then three fully connected layers.

    From Simonyan and Zisserman, "Very deep convolutional networks for large-scale image recognition"
    (2014). ``cfg`` is ``"vgg11"`` (A), ``"vgg13"`` (B), ``"vgg16"`` (D), ``"vgg19"`` (E) or a list like
    ``[64, "M", 128, "M"]``. The layout, names (``features``, ``avgpool``, ``classifier``),
    initialisation and parameter counts (vgg11 132,863,336; vgg16 138,357,544 for 1000 classes)
    are torchvision's.

    ``small_input=True`` (for 32x32 or 28x28 images): the last max pool of ``cfg`` is replaced by
    global average pooling, and the classifier has ``hidden_features`` units (512 by default)
    instead of 7x7x512 -> 4096. With k pools in ``cfg`` the minimum input size is ``2**(k-1)``
    (16 for the named configs); the standard form needs ``2**k`` (32; 224 intended).

    Shape:
        - Input: ``(N, in_channels, H, W)``
        - Output: ``(N, num_classes)`` logits
    """

    def __init__(self, cfg: str | Sequence[int | str] = "vgg11", batch_norm: bool = False, num_classes: int = 1000,
                 in_channels: int = 3, small_input: bool = False, dropout: float = 0.5,
                 hidden_features: int | None = None, init_weights: bool = True) -> None:
        super().__init__()
        if isinstance(cfg, str):
            if cfg not in CONFIGS:
                raise ValueError(f"VGG: cfg must be one of {sorted(CONFIGS)} or a list, got {cfg!r}")
            cfg = CONFIGS[cfg]
        cfg = list(cfg)
        channels = [c for c in cfg if c != "M"]
        if not channels:
            raise ValueError(f"VGG: cfg needs at least one convolution, got {cfg}")
        pools = cfg.count("M")
        self.in_channels, self.small_input = in_channels, small_input
        if small_input:
            if cfg[-1] == "M":
                cfg = cfg[:-1]
                pools -= 1
            self.min_size = 2 ** pools
            hidden = 512 if hidden_features is None else hidden_features
            self.features = make_layers(cfg, in_channels, batch_norm)
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            flat = channels[-1]
        else:
            self.min_size = 2 ** pools
            hidden = 4096 if hidden_features is None else hidden_features
            self.features = make_layers(cfg, in_channels, batch_norm)
            self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
            flat = channels[-1] * 7 * 7
        self.classifier = nn.Sequential(
            nn.Linear(flat, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )
        if init_weights:
            self._init_weights()

    def _init_weights(self) -> None:
        # torchvision's VGG initialisation (He et al. 2015 for the convolutions)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        check_image_batch("VGG", x, self.in_channels, self.min_size)
        x = self.avgpool(self.features(x))
        return self.classifier(x.reshape(x.shape[0], -1))


def _factory(name: str):
    def build(num_classes: int = 1000, in_channels: int = 3, small_input: bool = False, batch_norm: bool = False,
              **kwargs) -> VGG:
        return VGG(name, batch_norm=batch_norm, num_classes=num_classes, in_channels=in_channels,
                   small_input=small_input, **kwargs)

    build.__name__ = name
    build.__qualname__ = name
    build.__doc__ = f"VGG configuration {name} (torchvision layout; ``small_input=True`` for 32x32 or 28x28 images)."
    return build


vgg11 = _factory("vgg11")
vgg13 = _factory("vgg13")
vgg16 = _factory("vgg16")
vgg19 = _factory("vgg19")
