"""Classic fixed image filters as convolution weights (for frozen ``Conv2d`` layers)."""

from __future__ import annotations

from typing import Any

import numpy as np

from rosenblatt.core import get_default_dtype


def sobel_filters(in_channels: int = 1, dtype: Any = None) -> np.ndarray:
    """The Sobel edge detectors as a ``(2, in_channels, 3, 3)`` weight: output channel 0 is the
    horizontal derivative ``d/dx``, channel 1 the vertical ``d/dy`` (summed over input channels).

    Use with ``rb.nn.Conv2d.from_weights(sobel_filters(), padding=1)``; ``sqrt(gx**2 + gy**2)`` of
    the two outputs is the gradient magnitude.
    """
    if not isinstance(in_channels, (int, np.integer)) or in_channels < 1:
        raise ValueError(f"sobel_filters: in_channels must be a positive int, got {in_channels!r}")
    gx = np.array([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
    kernels = np.stack([gx, gx.T])  # (2, 3, 3): d/dx, then d/dy (top row negative)
    weight = np.repeat(kernels[:, None], in_channels, axis=1)
    return weight.astype(dtype or get_default_dtype())


__all__ = ["sobel_filters"]
