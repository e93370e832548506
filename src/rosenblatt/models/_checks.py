"""Input checks shared by the convolutional models: a clear error instead of a shape error deep inside."""

from __future__ import annotations

from typing import Any


def check_image_batch(model: str, x: Any, in_channels: int, min_size: int, multiple_of: int = 1) -> None:
    """Raise ``ValueError`` unless ``x`` is an ``(N, in_channels, H, W)`` batch with ``H, W >= min_size``
    (and divisible by ``multiple_of``)."""
    shape = tuple(getattr(x, "shape", ()))
    if len(shape) != 4 or shape[1] != in_channels:
        raise ValueError(f"{model}: expected input of shape (N, {in_channels}, H, W), got {shape}")
    height, width = shape[2], shape[3]
    if height < min_size or width < min_size:
        raise ValueError(f"{model}: input images must be at least {min_size}x{min_size}, got {height}x{width}")
    if height % multiple_of or width % multiple_of:
        raise ValueError(f"{model}: input height and width must be multiples of {multiple_of}, got {height}x{width}")
