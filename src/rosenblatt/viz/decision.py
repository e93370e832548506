"""Decision boundaries of a classifier of 2-D points: the regions it assigns to each class."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np


def decision_regions(model: Any, x: Any, steps: int = 200, margin: float = 0.5,
                     threshold: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The class ``model`` predicts on a ``steps x steps`` grid covering the points ``x``.

    Args:
        model: a Module or any callable taking an ``(N, 2)`` batch and returning scores: one column
            per class (the class is the arg-max) or a single column (the class is ``score > threshold``).
        x: the ``(N, 2)`` points the grid must cover.
        steps: grid points per axis.
        margin: how far the grid extends beyond the points.
        threshold: for a single output column; None takes 0.5 when every score lies in [0, 1]
            (probabilities, a step unit) and 0 otherwise (logits).

    Returns:
        ``(xx, yy, classes)``, each ``(steps, steps)``: grid coordinates and the predicted class (int64).
    """
    import rosenblatt as rb

    points = np.asarray(x, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"decision_regions: expected 2-D points of shape (N, 2), got shape {points.shape}")
    if steps < 2:
        raise ValueError(f"decision_regions: steps must be at least 2, got {steps}")
    low, high = points.min(0) - margin, points.max(0) + margin
    xx, yy = np.meshgrid(np.linspace(low[0], high[0], steps), np.linspace(low[1], high[1], steps))
    grid = np.stack([xx.ravel(), yy.ravel()], axis=1)
    scores = _predict(model, grid, rb)
    if scores.ndim == 1 or scores.shape[1] == 1:
        scores = scores.reshape(-1)
        if threshold is None:
            threshold = 0.5 if scores.min() >= 0 and scores.max() <= 1 else 0.0
        classes = (scores > threshold).astype(np.int64)
    else:
        classes = scores.argmax(axis=1).astype(np.int64)
    return xx, yy, classes.reshape(xx.shape)


def _predict(model: Any, grid: np.ndarray, rb: Any) -> np.ndarray:
    was_training = getattr(model, "training", None)
    parameters = list(model.parameters()) if hasattr(model, "parameters") else []
    dtype = parameters[0].dtype if parameters else np.float32
    device = parameters[0].device if parameters else None
    if was_training:
        model.eval()  # dropout and batch statistics would blur the regions
    try:
        with rb.no_grad():
            out = model(rb.tensor(grid.astype(dtype), device=device))
    finally:
        if was_training:
            model.train()
    if isinstance(out, (tuple, list)):
        out = out[0]
    return np.asarray(out, dtype=np.float64)


def plot_decision_boundary(model: Any | Callable[..., Any], x: Any, y: Any = None,
                           path: str | os.PathLike | None = None, steps: int = 200, margin: float = 0.5,
                           threshold: float | None = None, title: str | None = None) -> Any:
    """Colour the plane by the class ``model`` predicts and draw the points ``x`` on top.

    Shows what a perceptron cannot do (one straight boundary, so no XOR) and the curved regions a
    hidden layer carves. ``model``, ``steps``, ``margin`` and ``threshold`` are as in
    :func:`decision_regions`.

    Args:
        x: ``(N, 2)`` points; ``y``: their labels (colours the points), optional.
        path: save the figure there (PNG, SVG, PDF from the suffix); None just returns it.
        title: the figure's title.

    Returns:
        The matplotlib ``Figure``.
    """
    xx, yy, classes = decision_regions(model, x, steps, margin, threshold)
    points = np.asarray(x, dtype=np.float64)
    labels = None if y is None else np.asarray(y).reshape(-1)
    if labels is not None and len(labels) != len(points):
        raise ValueError(f"plot_decision_boundary: {len(points)} points but {len(labels)} labels")
    if path is not None:
        from matplotlib.figure import Figure  # no pyplot: works without a display

        fig = Figure(figsize=(4.5, 4))
    else:
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=(4.5, 4))
    ax = fig.add_subplot(1, 1, 1)
    num_classes = int(max(classes.max(), labels.max() if labels is not None and labels.size else 0)) + 1
    cmap = "coolwarm" if num_classes <= 2 else "tab10"
    levels = np.arange(num_classes + 1) - 0.5
    ax.contourf(xx, yy, classes, levels=levels, cmap=cmap, alpha=0.35)
    if len(np.unique(classes)) > 1:  # the boundary itself, where the predicted class changes
        ax.contour(xx, yy, classes, levels=levels[1:-1], colors="k", linewidths=0.8)
    if labels is None:
        ax.scatter(points[:, 0], points[:, 1], c="k", s=10)
    else:
        ax.scatter(points[:, 0], points[:, 1], c=labels, cmap=cmap, vmin=0, vmax=max(num_classes - 1, 1), s=14,
                   edgecolors="k", linewidths=0.3)
    ax.set_xlim(xx.min(), xx.max())
    ax.set_ylim(yy.min(), yy.max())
    if title:
        ax.set_title(title)
    fig.tight_layout()
    if path is not None:
        fig.savefig(os.fspath(path), dpi=110)
    return fig
