"""Pictures of what an autoencoder learned: reconstructions beside their inputs, and the latent space.

matplotlib is imported inside the functions (with the non-interactive Agg backend when a file is
written), so importing rosenblatt stays cheap.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from rosenblatt.core import Tensor, no_grad
from rosenblatt.viz._common import finish as _finish
from rosenblatt.viz._common import pyplot as _pyplot
from rosenblatt.viz._common import to_numpy as _numpy


def _run_eval(fn: Any, model: Any, x: Any) -> np.ndarray:
    """``fn(x)`` in eval mode without a graph (no dropout, no denoising corruption)."""
    was_training = getattr(model, "training", False)
    if hasattr(model, "eval"):
        model.eval()
    try:
        with no_grad():
            return _numpy(fn(x if isinstance(x, Tensor) else Tensor(np.asarray(x))))
    finally:
        if hasattr(model, "train"):
            model.train(was_training)


def _as_image(sample: np.ndarray, image_shape: tuple[int, ...] | None) -> np.ndarray:
    if image_shape is not None:
        sample = sample.reshape(image_shape)
    elif sample.ndim == 1:
        side = math.isqrt(sample.size)
        if side * side != sample.size:
            raise ValueError(f"plot_reconstructions: cannot guess an image shape for {sample.size} features; "
                             "pass image_shape=(H, W)")
        sample = sample.reshape(side, side)
    if sample.ndim == 3:  # (C, H, W)
        sample = sample[0] if sample.shape[0] == 1 else np.moveaxis(sample, 0, -1)
    return sample


def plot_reconstructions(model: Any, x: Any, path: str | Path | None = None, n: int = 8,
                         image_shape: tuple[int, ...] | None = None, title: str | None = None) -> Any:
    """Draw ``n`` inputs (top row) above the model's reconstructions of them (bottom row).

    Args:
        model: an autoencoder (any module mapping ``x`` to a reconstruction of the same size).
        x: a batch ``(N, D)`` of flat images or ``(N, C, H, W)`` images.
        path: where to write the PNG; ``None`` returns the figure without saving it.
        n: how many samples to show (the first ``n``).
        image_shape: the shape of one image for flat inputs (default: square).

    Returns the matplotlib ``Figure``.
    """
    data = _numpy(x)
    if data.ndim < 2 or len(data) == 0:
        raise ValueError(f"plot_reconstructions: expected a non-empty batch, got shape {data.shape}")
    data = data[:n]
    recon = _run_eval(model, model, data)
    if recon.shape[0] != data.shape[0] or recon[0].size != data[0].size:
        raise ValueError(f"plot_reconstructions: the model maps {data.shape} to {recon.shape}, not a reconstruction")
    plt = _pyplot(path)
    count = len(data)
    fig, axes = plt.subplots(2, count, figsize=(1.2 * count, 2.6), squeeze=False)
    for i in range(count):
        for row, batch in enumerate((data, recon.reshape(data.shape))):
            ax = axes[row][i]
            ax.imshow(_as_image(batch[i], image_shape), cmap="gray")
            ax.set_xticks([])
            ax.set_yticks([])
        if i == 0:
            axes[0][0].set_ylabel("input")
            axes[1][0].set_ylabel("output")
    fig.suptitle(title or "Reconstructions")
    return _finish(fig, plt, path)


def plot_latent_space(model: Any, x: Any, labels: Any, path: str | Path | None = None,
                      title: str | None = None) -> Any:
    """Scatter the codes ``model.encode(x)`` in 2-D, coloured by class.

    A code of more than two dimensions is projected onto its first two principal components
    (the axis labels say so). Returns the matplotlib ``Figure``.
    """
    if not hasattr(model, "encode"):
        raise TypeError(f"plot_latent_space: the model needs an encode() method, {type(model).__name__} has none")
    labels = _numpy(labels).reshape(-1)
    codes = _run_eval(model.encode, model, x)
    codes = codes.reshape(codes.shape[0], -1)
    if codes.shape[0] != labels.shape[0]:
        raise ValueError(f"plot_latent_space: {codes.shape[0]} samples but {labels.shape[0]} labels")
    axis_names = ("z1", "z2")
    if codes.shape[1] == 1:
        codes = np.concatenate([codes, np.zeros_like(codes)], axis=1)
    elif codes.shape[1] > 2:
        centred = codes - codes.mean(axis=0)
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        codes = centred @ vt[:2].T
        axis_names = ("principal component 1", "principal component 2")
    plt = _pyplot(path)
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    classes = np.unique(labels)
    cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    for k, c in enumerate(classes):
        chosen = labels == c
        ax.scatter(codes[chosen, 0], codes[chosen, 1], s=8, color=cmap(k % cmap.N), label=str(c))
    ax.set_xlabel(axis_names[0])
    ax.set_ylabel(axis_names[1])
    ax.legend(title="class", fontsize="small", markerscale=2, loc="best")
    ax.set_title(title or "Latent space")
    return _finish(fig, plt, path)


__all__ = ["plot_latent_space", "plot_reconstructions"]
