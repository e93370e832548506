"""Regularisation layers: ``Dropout`` (Srivastava et al., 2014), ``Dropout2d`` and ``GaussianNoise``.

All three are active only in training mode (``model.train()``) and are the identity in
evaluation mode (``model.eval()``).
"""

from __future__ import annotations

from rosenblatt.core import Tensor
from rosenblatt.nn import functional as F
from rosenblatt.nn.module import Module


def _check_p(name: str, p: float) -> float:
    p = float(p)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{name}: dropout probability must be in [0, 1], got {p}")
    return p


class Dropout(Module):
    """Zeroes each element with probability ``p`` in training, scaling the rest by ``1 / (1 - p)``
    (Srivastava et al., 2014). ``inplace=True`` writes into the input where no graph records it.

    Shape:
        input ``(*)``; output ``(*)``.
    """

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__()
        self.p = _check_p("Dropout", p)
        self.inplace = bool(inplace)

    def forward(self, x: Tensor) -> Tensor:
        return F.dropout(x, self.p, self.training, self.inplace)

    def extra_repr(self) -> str:
        return f"p={self.p}" + (", inplace=True" if self.inplace else "")


class Dropout2d(Module):
    """Zeroes whole channels (feature maps) with probability ``p`` in training.

    Shape:
        input ``(N, C, H, W)`` or ``(C, H, W)``; output: same shape.
    """

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__()
        self.p = _check_p("Dropout2d", p)
        self.inplace = bool(inplace)

    def forward(self, x: Tensor) -> Tensor:
        return F.dropout2d(x, self.p, self.training, self.inplace)

    def extra_repr(self) -> str:
        return f"p={self.p}" + (", inplace=True" if self.inplace else "")


class GaussianNoise(Module):
    """Adds N(0, std^2) noise in training (noise injection as a regulariser).

    Shape:
        input ``(*)``; output ``(*)``.
    """

    def __init__(self, std: float = 0.1) -> None:
        super().__init__()
        if std < 0:
            raise ValueError(f"GaussianNoise: std must be non-negative, got {std}")
        self.std = float(std)

    def forward(self, x: Tensor) -> Tensor:
        return F.gaussian_noise(x, self.std, self.training)

    def extra_repr(self) -> str:
        return f"std={self.std}"
