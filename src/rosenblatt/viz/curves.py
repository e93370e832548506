"""Learning curves: loss and metrics per epoch, training against validation."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any


def _series(history: Any) -> dict[str, list[float]]:
    data = getattr(history, "history", history)
    if not isinstance(data, Mapping):
        raise TypeError(f"plot_learning_curves: expected a History or a dict of lists, got {type(history).__name__}")
    return {str(k): list(v) for k, v in data.items()}


def plot_learning_curves(history: Any, path: str | os.PathLike | None = None, keys: Sequence[str] | None = None,
                         title: str | None = None) -> Any:
    """Draw one panel per quantity (``loss``, ``accuracy``, ...): training solid, validation dashed.

    The learning rate gets its own log-scale panel when it changed during training.

    Args:
        history: a :class:`~rosenblatt.train.History` or a dict ``{"loss": [...], "val_loss": [...]}``.
        path: save the figure there (PNG, SVG, PDF from the suffix); None just returns it.
        keys: the quantities to draw (default: every training quantity found).
        title: the figure's title.

    Returns:
        The matplotlib ``Figure``.
    """
    series = _series(history)
    if keys is None:
        keys = [k for k in series if not k.startswith("val_") and k != "lr"]
        keys += [k[4:] for k in series if k.startswith("val_") and k[4:] not in series]
        lr = series.get("lr", [])
        if len(set(lr)) > 1:
            keys.append("lr")
    keys = list(keys)
    if not keys:
        raise ValueError("plot_learning_curves: the history is empty; train for at least one epoch first")
    if path is not None:
        from matplotlib.figure import Figure  # no pyplot: works without a display

        fig = Figure(figsize=(4.2 * min(len(keys), 3), 3.4 * ((len(keys) + 2) // 3)))
    else:
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=(4.2 * min(len(keys), 3), 3.4 * ((len(keys) + 2) // 3)))
    columns = min(len(keys), 3)
    rows = (len(keys) + columns - 1) // columns
    for i, key in enumerate(keys):
        ax = fig.add_subplot(rows, columns, i + 1)
        for name, style, label in ((key, "-", "train"), (f"val_{key}", "--", "validation")):
            values = series.get(name)
            if values:
                epochs = range(1, len(values) + 1)
                ax.plot(epochs, values, style, marker="o" if len(values) < 30 else None, markersize=3, label=label)
        if key == "lr":
            ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.grid(alpha=0.3)
        if key != "lr":
            ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if path is not None:
        fig.savefig(os.fspath(path), dpi=110)
    return fig
