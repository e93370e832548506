"""Gradient flow: the gradient norm of every layer, to see gradients vanish or explode with depth."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

import numpy as np


def layer_gradient_norms(model: Any) -> dict[str, float]:
    """The L2 norm of each layer's parameter gradients together, in registration order.

    A layer is a module owning parameters (``"hidden.0.0"``, ``"out"``, ...), grouped as
    :class:`~rosenblatt.train.GradientMonitor` groups them. Parameters without a gradient count as
    zero, so a layer cut off from the loss shows up as a missing bar rather than disappearing.
    """
    if not hasattr(model, "named_parameters"):
        raise TypeError(f"layer_gradient_norms: expected a Module, got {type(model).__name__}")
    squares: dict[str, float] = {}
    for name, param in model.named_parameters():
        layer = name.rpartition(".")[0] or name
        grad = param.grad
        total = 0.0 if grad is None else float((np.asarray(grad, dtype=np.float64) ** 2).sum())
        squares[layer] = squares.get(layer, 0.0) + total
    if not squares:
        raise ValueError("layer_gradient_norms: the model has no parameters")
    return {layer: math.sqrt(total) for layer, total in squares.items()}


def plot_gradient_flow(source: Any, path: str | os.PathLike | None = None, title: str | None = None) -> Any:
    """Plot the gradient norm of every layer, first layer on the left, on a log scale.

    Norms that fall by orders of magnitude towards the input show vanishing gradients (deep sigmoid
    networks); norms that grow show exploding ones.

    Args:
        source: a model right after ``loss.backward()`` (one bar per layer, from the current
            gradients); a :class:`~rosenblatt.train.GradientMonitor` after training, or its
            ``norms`` dict ``{layer: [norm per epoch]}`` (one line per epoch).
        path: save the figure there (PNG, SVG, PDF from the suffix); None just returns it.
        title: the figure's title.

    Returns:
        The matplotlib ``Figure``.
    """
    norms = getattr(source, "norms", None)
    per_epoch = norms if isinstance(norms, Mapping) else source if isinstance(source, Mapping) else None
    if per_epoch is not None:
        names = list(per_epoch)
        if not names:
            raise ValueError("plot_gradient_flow: no gradient norms recorded; train for at least one epoch first")
        series = np.array([list(per_epoch[n]) for n in names], dtype=np.float64)
    else:
        current = layer_gradient_norms(source)
        names, series = list(current), None
    fig = _figure(path, (max(5.0, 0.45 * len(names) + 1.5), 3.6))
    ax = fig.add_subplot(1, 1, 1)
    positions = np.arange(len(names))
    if series is None:
        heights = np.array([current[n] for n in names])
        # Zero norms cannot be drawn on a log axis; they are marked below the smallest bar instead.
        positive = heights[heights > 0]
        floor = positive.min() / 10 if positive.size else 1e-12
        ax.bar(positions, np.where(heights > 0, heights, np.nan), color="tab:blue")
        for i in np.flatnonzero(heights == 0):
            ax.plot(i, floor, marker="x", color="tab:red")
    else:
        epochs = series.shape[1]
        for e in range(epochs):
            ax.plot(positions, series[:, e], marker="o", alpha=0.3 + 0.7 * (e + 1) / epochs, label=f"epoch {e + 1}")
        if epochs <= 10:
            ax.legend(fontsize=7)
    ax.set_yscale("log")
    ax.set_xticks(positions)
    ax.set_xticklabels(names, rotation=60, ha="right", fontsize=7)
    ax.set_xlabel("layer (input side on the left)")
    ax.set_ylabel("gradient norm")
    ax.grid(alpha=0.3, axis="y")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    if path is not None:
        fig.savefig(os.fspath(path), dpi=110)
    return fig


def _figure(path: Any, size: tuple[float, float]) -> Any:
    if path is not None:
        from matplotlib.figure import Figure  # no pyplot: works without a display

        return Figure(figsize=size)
    import matplotlib.pyplot as plt

    return plt.figure(figsize=size)
