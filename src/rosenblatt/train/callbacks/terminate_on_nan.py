"""``TerminateOnNaN``: stop as soon as the loss becomes NaN or infinite."""

from __future__ import annotations

import math
import sys
from typing import Any

from rosenblatt.train.callbacks.base import Callback


class TerminateOnNaN(Callback):
    """End training after the first batch whose loss is NaN or infinite (and say so on stderr).

    Attributes:
        terminated_at: ``(epoch, batch)`` where it happened, or None.
    """

    def __init__(self) -> None:
        super().__init__()
        self.terminated_at: tuple[int, int] | None = None
        self._epoch = 0

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._epoch = epoch

    def on_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            self.terminated_at = (self._epoch, batch)
            print(f"TerminateOnNaN: loss is {loss} at epoch {self._epoch + 1}, batch {batch + 1}; stopping",
                  file=sys.stderr)
            self.stop_training = True
