"""Regularising noise: ``dropout``, ``dropout2d`` and ``gaussian_noise`` (training mode only).

Dropout uses the "inverted" convention of PyTorch: kept units are scaled by ``1 / (1 - p)`` during
training so nothing changes at evaluation time. The mask (already scaled) is drawn from
rosenblatt's generator and applied with a single multiplication, whose backward is ``gy * mask``.
"""

from __future__ import annotations

from typing import Any

from rosenblatt import random as _random
from rosenblatt.backend import get_array_module
from rosenblatt.core import Tensor, constant
from rosenblatt.nn.functional.activation import in_place
from rosenblatt.ops import mul


def _check_p(name: str, p: float) -> float:
    p = float(p)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{name}: dropout probability must be in [0, 1], got {p}")
    return p


def _scaled_mask(x: Tensor, keep: float, shape: tuple[int, ...]) -> Tensor:
    dtype = x.data.dtype
    mask = _random.bernoulli_mask(keep, shape, dtype)
    if keep > 0:
        mask *= dtype.type(1.0 / keep)
    return constant(_on_device_of(x, mask))


def _on_device_of(x: Tensor, array: Any) -> Any:
    # Random numbers are drawn on the CPU (one generator, same values on every backend).
    xp = get_array_module(x.data)
    return array if xp.__name__ == "numpy" else xp.asarray(array)


def dropout(x: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero each element with probability ``p`` and scale the rest by ``1 / (1 - p)``.

    ``inplace=True`` writes into ``x`` where no graph records it (as the activations of
    :mod:`rosenblatt.nn.functional.activation`).

    Shape:
        any; the output has the input's shape.
    """
    p = _check_p("dropout", p)
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return in_place(x, x * 0.0, inplace)
    return in_place(x, mul(x, _scaled_mask(x, 1.0 - p, x.shape)), inplace)


def dropout2d(x: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero whole channels: each ``x[n, c]`` feature map is dropped with probability ``p``.

    Shape:
        ``(N, C, H, W)`` or ``(C, H, W)``; the output has the input's shape.
    """
    p = _check_p("dropout2d", p)
    if x.ndim not in (3, 4):
        raise ValueError(f"dropout2d: expected a 3-D (C, H, W) or 4-D (N, C, H, W) input, got shape {x.shape}")
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return in_place(x, x * 0.0, inplace)
    mask_shape = x.shape[:-2] + (1, 1)
    return in_place(x, mul(x, _scaled_mask(x, 1.0 - p, mask_shape)), inplace)


def gaussian_noise(x: Tensor, std: float = 0.1, training: bool = True) -> Tensor:
    """Add zero-mean Gaussian noise of standard deviation ``std`` (training only).

    Shape:
        any; the output has the input's shape.
    """
    std = float(std)
    if std < 0:
        raise ValueError(f"gaussian_noise: std must be non-negative, got {std}")
    if not training or std == 0.0:
        return x
    noise = _random.normal_array(0.0, std, x.shape, x.data.dtype)
    return x + constant(_on_device_of(x, noise))


__all__ = ["dropout", "dropout2d", "gaussian_noise"]
