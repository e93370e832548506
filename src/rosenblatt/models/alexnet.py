"""AlexNet (Krizhevsky, Sutskever and Hinton, "ImageNet classification with deep convolutional
neural networks", NeurIPS 2012)."""

from __future__ import annotations

from rosenblatt import nn
from rosenblatt.core import Tensor
from rosenblatt.models._checks import check_image_batch


class AlexNet(nn.Module):
    """AlexNet: five convolutions (64, 192, 384, 256, 256 channels in the single-GPU form of
    "One weird trick", Krizhevsky 2014) and three fully connected layers with dropout.

    From Krizhevsky et al., "ImageNet classification with deep convolutional neural networks" (2012).
    The layout, module names (``features``, ``avgpool``, ``classifier``) and parameter count
    (61,100,840 for 1000 classes) are torchvision's, so its ``state_dict`` loads.

    ``small_input=True`` adapts it to 32x32 images (CIFAR, or 28x28 MNIST): a 3x3 stride-1 first
    convolution, 2x2 max pooling, a 2x2 adaptive average pool and ``hidden_features`` (1024 by default)
    units in the classifier. Minimum input size: 63x63 for the standard form (224x224 intended),
    8x8 for ``small_input``.

    Shape:
        - Input: ``(N, in_channels, H, W)``
        - Output: ``(N, num_classes)`` logits
    """

    def __init__(self, num_classes: int = 1000, in_channels: int = 3, small_input: bool = False,
                 dropout: float = 0.5, hidden_features: int | None = None) -> None:
        super().__init__()
        self.in_channels, self.small_input = in_channels, small_input
        if small_input:
            hidden = 1024 if hidden_features is None else hidden_features
            pooled = 2
            self.min_size = 8
            self.features = nn.Sequential(
                nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(64, 192, kernel_size=3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(192, 384, kernel_size=3, padding=1), nn.ReLU(),
                nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(),
                nn.Conv2d(256, 256, kernel_size=3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            )
        else:
            hidden = 4096 if hidden_features is None else hidden_features
            pooled = 6
            self.min_size = 63
            self.features = nn.Sequential(
                nn.Conv2d(in_channels, 64, kernel_size=11, stride=4, padding=2), nn.ReLU(),
                nn.MaxPool2d(kernel_size=3, stride=2),
                nn.Conv2d(64, 192, kernel_size=5, padding=2), nn.ReLU(), nn.MaxPool2d(kernel_size=3, stride=2),
                nn.Conv2d(192, 384, kernel_size=3, padding=1), nn.ReLU(),
                nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(),
                nn.Conv2d(256, 256, kernel_size=3, padding=1), nn.ReLU(), nn.MaxPool2d(kernel_size=3, stride=2),
            )
        self.avgpool = nn.AdaptiveAvgPool2d((pooled, pooled))
        self.classifier = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(256 * pooled * pooled, hidden), nn.ReLU(),
            nn.Dropout(dropout), nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        check_image_batch("AlexNet", x, self.in_channels, self.min_size)
        x = self.avgpool(self.features(x))
        return self.classifier(x.reshape(x.shape[0], -1))


def alexnet(num_classes: int = 1000, in_channels: int = 3, small_input: bool = False, **kwargs) -> AlexNet:
    """AlexNet (torchvision layout; ``small_input=True`` for 32x32 or 28x28 images)."""
    return AlexNet(num_classes=num_classes, in_channels=in_channels, small_input=small_input, **kwargs)
