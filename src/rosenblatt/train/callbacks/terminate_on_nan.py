"""``TerminateOnNaN``: stop as soon as the loss, or a parameter, becomes NaN or infinite."""

from __future__ import annotations

import math
import sys
from typing import Any

from rosenblatt.backend import get_array_module
from rosenblatt.train.callbacks.base import Callback


def non_finite_parameter(model: Any) -> str | None:
    """The name of the first floating parameter of ``model`` holding a NaN or an infinity, or None."""
    for name, p in model.named_parameters():
        data = p.data
        if data.dtype.kind in "fc" and not bool(get_array_module(data).isfinite(data).all()):
            return name
    return None


class TerminateOnNaN(Callback):
    """End training after the first batch whose loss is NaN or infinite, or after the first epoch
    that leaves a parameter with a NaN or infinite value (and say which on stderr).

    The parameter check (one pass over the parameters per epoch) catches what the loss can miss:
    oneDNN's ReLU turns NaN into 0, so a NaN weight inside a fused chain of layers may leave the
    loss finite (see ``docs/limitations.md``).

    Attributes:
        terminated_at: ``(epoch, batch)`` where it happened (``batch`` None for the end-of-epoch
            parameter check), or None.
        reason: what was not finite (``"loss"`` or the parameter's name), or None.
    """

    def __init__(self) -> None:
        super().__init__()
        self.terminated_at: tuple[int, int | None] | None = None
        self.reason: str | None = None
        self._epoch = 0

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._epoch = epoch

    def on_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            self._stop((self._epoch, batch), "loss", f"loss is {loss} at epoch {self._epoch + 1}, batch {batch + 1}")

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self.stop_training or self.model is None:
            return
        name = non_finite_parameter(self.model)
        if name is not None:
            self._stop((epoch, None), name, f"parameter {name!r} holds NaN or infinite values after "
                                            f"epoch {epoch + 1} (the loss was finite)")

    def _stop(self, where: tuple[int, int | None], reason: str, message: str) -> None:
        self.terminated_at, self.reason = where, reason
        print(f"TerminateOnNaN: {message}; stopping", file=sys.stderr)
        self.stop_training = True
