"""Helpers shared by the plotting modules: lazy pyplot, arrays from tensors, saving figures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from rosenblatt.backend import is_cupy_array
from rosenblatt.core import Tensor


def pyplot(path: str | Path | None) -> Any:
    """``matplotlib.pyplot``, imported on first use (with the file-only Agg backend when saving)."""
    import matplotlib

    if path is not None:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def to_numpy(value: Any) -> np.ndarray:
    """A host NumPy array from a tensor, a CuPy array or anything array-like."""
    if isinstance(value, Tensor):
        return value.numpy()
    if is_cupy_array(value):
        return value.get()
    return np.asarray(value)


def finish(fig: Any, plt: Any, path: str | Path | None) -> Any:
    """Save ``fig`` to ``path`` (creating folders) and close it; return it either way."""
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100, bbox_inches="tight")
        plt.close(fig)
    return fig
