"""Attention maps: which source positions each output step looked at.

matplotlib is imported inside the function (with the non-interactive Agg backend when a file is
written), so importing rosenblatt stays cheap.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rosenblatt.viz._common import finish as _finish
from rosenblatt.viz._common import pyplot as _pyplot
from rosenblatt.viz._common import to_numpy as _as_array


def plot_attention(weights: Any, source_labels: Sequence[Any] | None = None,
                   target_labels: Sequence[Any] | None = None, path: str | Path | None = None,
                   title: str | None = None, ax: Any = None) -> Any:
    """Draw an attention map: row ``t`` shows how output step ``t`` weighted the source positions.

    Args:
        weights: a ``(T, S)`` array or tensor (one sequence's weights, e.g. ``Seq2Seq.attention_weights[i]``
            or the weights ``nn.MultiheadAttention`` returns for one sample).
        source_labels, target_labels: tick labels (tokens) for the columns and the rows (shown up to
            40 of them; longer sequences keep numeric ticks).
        path: where to write the PNG; ``None`` returns the figure without saving it.
        title: the axes title.
        ax: draw into this matplotlib ``Axes`` instead of a new figure.

    Returns the matplotlib ``Figure``.
    """
    weights = _as_array(weights)
    if weights.ndim != 2:
        raise ValueError(f"plot_attention: expected weights of shape (T, S), got shape {weights.shape}")
    for name, labels, size in (("source_labels", source_labels, weights.shape[1]),
                               ("target_labels", target_labels, weights.shape[0])):
        if labels is not None and len(labels) != size:
            raise ValueError(f"plot_attention: {name} has {len(labels)} entries for {size} positions")
    plt = _pyplot(path)
    if ax is None:
        fig, ax = plt.subplots(figsize=(1 + 0.25 * weights.shape[1], 1 + 0.25 * weights.shape[0]))
    else:
        fig = ax.figure
    image = ax.imshow(weights, cmap="viridis", vmin=0.0, vmax=max(float(weights.max()), 1e-12), aspect="auto")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    # tokens as tick labels only while they stay readable
    if source_labels is not None and len(source_labels) <= 40:
        ax.set_xticks(range(len(source_labels)), [str(s) for s in source_labels], fontsize=7)
    if target_labels is not None and len(target_labels) <= 40:
        ax.set_yticks(range(len(target_labels)), [str(s) for s in target_labels], fontsize=7)
    ax.set_xlabel("source position")
    ax.set_ylabel("output step")
    if title:
        ax.set_title(title)
    return _finish(fig, plt, path)


__all__ = ["plot_attention"]
