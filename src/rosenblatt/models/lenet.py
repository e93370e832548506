"""LeNet-5 (LeCun, Bottou, Bengio and Haffner, "Gradient-based learning applied to document
recognition", Proc. IEEE 1998)."""

from __future__ import annotations

from rosenblatt import nn
from rosenblatt.core import Tensor
from rosenblatt.models._checks import check_image_batch
from rosenblatt.nn._fusion import run_sequence

# names, looked up when a model is built
_ACTIVATIONS = {"tanh": "Tanh", "relu": "ReLU"}
_POOLS = {"avg": "AvgPool2d", "max": "MaxPool2d"}


class LeNet5(nn.Module):
    """LeNet-5: two 5x5 convolutions with 2x2 subsampling, then three fully connected layers
    (6 -> 16 feature maps, 120 -> 84 -> ``num_classes`` units).

    From LeCun et al., "Gradient-based learning applied to document recognition" (1998). This is the
    common MNIST form of it: ``conv1`` pads by 2 so that a 28x28 image plays the role of the paper's
    32x32 input (C1 gives 28x28 maps, S2 14x14, C3 10x10, S4 5x5). Simplifications from the paper,
    as in most modern versions: plain ``tanh`` (or ``relu``) instead of the scaled tanh, parameter-free
    average (or max) pooling instead of trainable subsampling, C3 connected to all S2 maps, and a
    linear output layer instead of the RBF units.

    Args:
        num_classes: number of output logits.
        in_channels: channels of the input images.
        activation: ``"tanh"`` (the paper's squashing function) or ``"relu"``.
        pooling: ``"avg"`` (the paper's subsampling) or ``"max"``.
        input_size: height and width of the (square) inputs; 28 by default. The first fully
            connected layer is sized for it. Minimum 12.

    Shape:
        - Input: ``(N, in_channels, input_size, input_size)``
        - Output: ``(N, num_classes)`` logits
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1, activation: str = "tanh",
                 pooling: str = "avg", input_size: int = 28) -> None:
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise ValueError(f"LeNet5: activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}")
        if pooling not in _POOLS:
            raise ValueError(f"LeNet5: pooling must be one of {sorted(_POOLS)}, got {pooling!r}")
        # after conv1 (same size), pool, conv2 (5x5 valid: -4) and pool
        final_size = (input_size // 2 - 4) // 2
        if final_size < 1:
            raise ValueError(f"LeNet5: input_size must be at least 12, got {input_size}")
        self.in_channels, self.input_size = in_channels, input_size
        act, pool = getattr(nn, _ACTIVATIONS[activation]), getattr(nn, _POOLS[pooling])
        self.conv1 = nn.Conv2d(in_channels, 6, kernel_size=5, padding=2)
        self.act1 = act()
        self.pool1 = pool(2)
        self.conv2 = nn.Conv2d(6, 16, kernel_size=5)
        self.act2 = act()
        self.pool2 = pool(2)
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(16 * final_size * final_size, 120)
        self.act3 = act()
        self.fc2 = nn.Linear(120, 84)
        self.act4 = act()
        self.fc3 = nn.Linear(84, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        check_image_batch("LeNet5", x, self.in_channels, self.input_size)
        if x.shape[2] != self.input_size or x.shape[3] != self.input_size:
            raise ValueError(f"LeNet5: built for {self.input_size}x{self.input_size} inputs, "
                             f"got {x.shape[2]}x{x.shape[3]} (pass input_size=...)")
        # pool1(act1(conv1(x))), then pool2(act2(conv2(...))): with the oneDNN kernels one chain whose
        # activations stay in oneDNN's layouts; fc1 + act3 and fc2 + act4: each one product with the
        # activation applied as it is written (rosenblatt.nn._fusion.run_sequence)
        return run_sequence([self.conv1, self.act1, self.pool1, self.conv2, self.act2, self.pool2, self.flatten,
                             self.fc1, self.act3, self.fc2, self.act4, self.fc3], x)


def lenet5(num_classes: int = 10, in_channels: int = 1, small_input: bool = True, **kwargs) -> LeNet5:
    """LeNet-5 for 28x28 inputs (``small_input`` is accepted for a uniform factory signature: LeNet-5
    is a small-input model already). Other keyword arguments go to :class:`LeNet5`."""
    return LeNet5(num_classes=num_classes, in_channels=in_channels, **kwargs)
