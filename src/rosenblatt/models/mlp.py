"""The multi-layer perceptron: fully connected layers with smooth activations, trained by
backpropagation.

D. E. Rumelhart, G. E. Hinton and R. J. Williams, "Learning representations by back-propagating
errors", Nature 323:533-536, 1986. Residual connections follow K. He et al., "Deep residual
learning for image recognition", CVPR 2016.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from rosenblatt.core import Tensor
from rosenblatt.nn import activation as act
from rosenblatt.nn.dropout import Dropout
from rosenblatt.nn.linear import Identity, Linear
from rosenblatt.nn.module import Module, ModuleList, Sequential
from rosenblatt.nn.normalization import BatchNorm1d

ACTIVATIONS: dict[str, Callable[[], Module]] = {
    "relu": act.ReLU,
    "leaky_relu": act.LeakyReLU,
    "elu": act.ELU,
    "selu": act.SELU,
    "gelu": act.GELU,
    "silu": act.SiLU,
    "swish": act.SiLU,
    "softplus": act.Softplus,
    "sigmoid": act.Sigmoid,
    "tanh": act.Tanh,
    "relu6": act.ReLU6,
    "hardtanh": act.Hardtanh,
    "hardswish": act.Hardswish,
    "hardsigmoid": act.Hardsigmoid,
    "mish": act.Mish,
    "identity": Identity,
    "linear": Identity,
}


def make_activation(activation: str | Callable[[], Module] | Module) -> Module:
    """An activation layer from a name (``"relu"``, ``"tanh"``, ...), a Module class or a factory."""
    if isinstance(activation, str):
        key = activation.lower()
        if key not in ACTIVATIONS:
            raise ValueError(f"MLP: unknown activation {activation!r}; known: {sorted(ACTIVATIONS)}")
        return ACTIVATIONS[key]()
    if isinstance(activation, Module):
        raise TypeError("MLP: pass the activation's name or class, not an instance (each layer needs its own)")
    if callable(activation):
        module = activation()
        if not isinstance(module, Module):
            raise TypeError(f"MLP: activation factory returned {type(module).__name__}, not a Module")
        return module
    raise TypeError(f"MLP: activation must be a name or a Module class, got {activation!r}")


class MLP(Module):
    """A multi-layer perceptron (Rumelhart, Hinton & Williams, 1986).

    ``sizes = [in, h1, ..., hk, out]`` gives ``k`` hidden blocks, each
    ``Linear -> [BatchNorm1d] -> activation -> [Dropout]``, and a final ``Linear`` producing raw
    scores (apply the loss's own softmax/sigmoid). With ``residual=True`` every hidden block whose
    input and output widths are equal adds its input to its output (``h + block(h)``), which keeps
    gradients flowing through deep stacks (He et al., 2016).

    Shape:
        input: ``(N, sizes[0])``; output: ``(N, sizes[-1])``.
    """

    def __init__(self, sizes: Sequence[int], activation: str | Callable[[], Module] = "relu",
                 dropout: float = 0.0, batch_norm: bool = False, residual: bool = False) -> None:
        super().__init__()
        sizes = [int(s) for s in sizes]
        if len(sizes) < 2 or any(s <= 0 for s in sizes):
            raise ValueError(f"MLP: sizes must list at least an input and an output width, all positive, got {sizes}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"MLP: dropout must be in [0, 1), got {dropout}")
        self.sizes = sizes
        self.residual = bool(residual)
        blocks = []
        for width_in, width_out in zip(sizes[:-2], sizes[1:-1]):
            layers: list[Module] = [Linear(width_in, width_out)]
            if batch_norm:
                layers.append(BatchNorm1d(width_out))
            layers.append(make_activation(activation))
            if dropout > 0:
                layers.append(Dropout(dropout))
            blocks.append(Sequential(*layers))
        self.hidden = ModuleList(blocks)
        self.output = Linear(sizes[-2], sizes[-1])
        self._skips = [self.residual and a == b for a, b in zip(sizes[:-2], sizes[1:-1])]

    def forward(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor) or x.ndim != 2 or x.shape[1] != self.sizes[0]:
            raise ValueError(f"MLP: expected input of shape (N, {self.sizes[0]}), got {getattr(x, 'shape', x)}")
        for block, skip in zip(self.hidden, self._skips):
            x = x + block(x) if skip else block(x)
        return self.output(x)

    def extra_repr(self) -> str:
        return f"sizes={self.sizes}" + (", residual=True" if self.residual else "")


def mlp(sizes: Sequence[int] = (64, 128, 10), **kwargs: Any) -> MLP:
    """Factory for the model registry (default: 8x8 digits -> 10 classes)."""
    return MLP(sizes, **kwargs)
