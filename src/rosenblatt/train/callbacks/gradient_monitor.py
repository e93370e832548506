"""``GradientMonitor``: per-layer gradient norms each epoch, the vanishing-gradient detector."""

from __future__ import annotations

import math
import sys
from typing import Any

import numpy as np

from rosenblatt.train.callbacks.base import Callback


class GradientMonitor(Callback):
    """Record the gradient norm of every layer, averaged over each epoch's batches.

    A layer is a module owning parameters (``"features.0"``, ``"fc"``, ...); its norm is the L2
    norm of all its parameters' gradients together. Norms that shrink by orders of magnitude from
    the last layer to the first show vanishing gradients; growing ones, exploding gradients.

    Args:
        every: measure every ``every``-th batch (1: all), to keep the cost low on big models.
        warn_ratio: print a warning when the first layer's norm is below ``warn_ratio`` times the
            last layer's (None: never warn).
        file: where warnings go (default stderr).

    Attributes:
        norms: ``{layer: [mean norm of epoch 0, epoch 1, ...]}``.
    """

    def __init__(self, every: int = 1, warn_ratio: float | None = 1e-4, file: Any = None) -> None:
        super().__init__()
        if every < 1:
            raise ValueError(f"GradientMonitor: every must be >= 1, got {every}")
        self.every, self.warn_ratio, self.file = int(every), warn_ratio, file
        self.norms: dict[str, list[float]] = {}
        self._sums: dict[str, float] = {}
        self._count = 0

    def _layers(self) -> dict[str, list[Any]]:
        layers: dict[str, list[Any]] = {}
        for name, param in self.model.named_parameters():
            layer = name.rpartition(".")[0] or name
            layers.setdefault(layer, []).append(param)
        return layers

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._sums, self._count, self._batch = {}, 0, 0

    def on_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if batch % self.every:
            return
        self._count += 1
        for layer, params in self._layers().items():
            total = 0.0
            for p in params:
                if p.grad is not None:
                    g = p.grad.data
                    total += float((g * g).sum())
            self._sums[layer] = self._sums.get(layer, 0.0) + math.sqrt(total)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if not self._count:
            return
        epochs_before = len(next(iter(self.norms.values()), []))
        for layer, total in self._sums.items():
            self.norms.setdefault(layer, [math.nan] * epochs_before).append(total / self._count)
        names = list(self._sums)
        if self.warn_ratio is not None and len(names) > 1:
            first, last = self.norms[names[0]][-1], self.norms[names[-1]][-1]
            if last > 0 and first < self.warn_ratio * last:
                print(f"GradientMonitor: epoch {epoch + 1}: gradient norm of '{names[0]}' ({first:.2e}) is "
                      f"{last / max(first, 1e-300):.1e} times smaller than that of '{names[-1]}' ({last:.2e}): "
                      "vanishing gradients", file=self.file or sys.stderr)

    def last(self) -> dict[str, float]:
        """The latest epoch's norm per layer."""
        return {layer: values[-1] for layer, values in self.norms.items()}

    def plot(self, path: str | None = None) -> Any:
        """Norm per layer (log scale) for each recorded epoch; saved to ``path`` when given."""
        from matplotlib.figure import Figure

        fig = Figure(figsize=(max(5, 0.5 * len(self.norms)), 3.5))
        ax = fig.add_subplot(1, 1, 1)
        names = list(self.norms)
        data = np.array([self.norms[n] for n in names])
        for e in range(data.shape[1] if data.size else 0):
            ax.plot(range(len(names)), data[:, e], marker="o", alpha=0.3 + 0.7 * (e + 1) / data.shape[1],
                    label=f"epoch {e + 1}")
        ax.set_yscale("log")
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=60, ha="right", fontsize=7)
        ax.set_ylabel("gradient norm")
        fig.tight_layout()
        if path is not None:
            fig.savefig(path, dpi=110)
        return fig
