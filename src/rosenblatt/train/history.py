"""``History``: what ``Trainer.fit`` returns — every logged quantity, epoch by epoch."""

from __future__ import annotations

import csv
import io
import math
import os
from typing import Any


class History:
    """Loss and metrics per epoch, as Keras's ``History``.

    Attributes:
        history: ``{"loss": [...], "accuracy": [...], "val_loss": [...], ...}``, one value per epoch.
        epoch: the epoch numbers (0-based) the values belong to.
    """

    def __init__(self, history: dict[str, list[float]] | None = None, epoch: list[int] | None = None) -> None:
        self.history: dict[str, list[float]] = {k: list(v) for k, v in (history or {}).items()}
        self.epoch: list[int] = list(epoch) if epoch is not None else list(range(len(next(iter(self.history.values()), []))))

    def append(self, epoch: int, logs: dict[str, float]) -> None:
        """Record the logs of one epoch (keys first seen later are padded with NaN before)."""
        for key, value in logs.items():
            if key not in self.history:
                self.history[key] = [math.nan] * len(self.epoch)
            self.history[key].append(float(value))
        self.epoch.append(int(epoch))
        for values in self.history.values():
            if len(values) < len(self.epoch):
                values.append(math.nan)

    def __getitem__(self, key: str) -> list[float]:
        return self.history[key]

    def __contains__(self, key: str) -> bool:
        return key in self.history

    def __len__(self) -> int:
        return len(self.epoch)

    def best(self, key: str = "val_loss", mode: str = "auto") -> tuple[int, float]:
        """``(epoch, value)`` of the best value of ``key`` (lowest, or highest for accuracy-like keys)."""
        from rosenblatt.train.callbacks.base import resolve_mode

        values = self.history[key]
        pick = max if resolve_mode(key, mode) == "max" else min
        index = pick((i for i in range(len(values)) if not math.isnan(values[i])), key=values.__getitem__)
        return self.epoch[index], values[index]

    def plot(self, path: str | os.PathLike | None = None, keys: list[str] | None = None) -> Any:
        """Learning curves (see :func:`rosenblatt.viz.plot_learning_curves`); saved to ``path`` when given."""
        from rosenblatt.viz.curves import plot_learning_curves

        return plot_learning_curves(self, path=path, keys=keys)

    def to_csv(self, path: str | os.PathLike | None = None) -> str:
        """Write ``epoch,loss,...`` rows to ``path`` (atomically); returns the CSV text."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        keys = list(self.history)
        writer.writerow(["epoch", *keys])
        for row, epoch in enumerate(self.epoch):
            writer.writerow([epoch, *(repr(self.history[k][row]) for k in keys)])
        text = buffer.getvalue()
        if path is not None:
            from rosenblatt.serialization import atomic_write

            atomic_write(path, [text.encode("utf-8")])
        return text

    def state_dict(self) -> dict[str, Any]:
        """JSON-ready form (saved in checkpoints)."""
        return {"history": self.history, "epoch": self.epoch}

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> History:
        """Rebuild a History saved with :meth:`state_dict`."""
        return cls(state.get("history", {}), state.get("epoch"))

    def __repr__(self) -> str:
        last = ", ".join(f"{k}={v[-1]:.4g}" for k, v in self.history.items() if v)
        return f"History({len(self)} epochs: {last})"
