"""``ModelCheckpoint``: save a full training checkpoint (or the weights) during training."""

from __future__ import annotations

import math
import os
from typing import Any

from rosenblatt.train.callbacks.base import Callback, monitored_value, resolve_mode
from rosenblatt.train.callbacks.terminate_on_nan import non_finite_parameter


class ModelCheckpoint(Callback):
    """Save a checkpoint at the end of epochs, atomically.

    A full checkpoint (:func:`rosenblatt.io.save_checkpoint`: model, optimiser, schedulers, epoch,
    history, random state, data-loader position) lets ``Trainer.fit(resume_from=path)`` continue
    exactly; ``save_weights_only=True`` writes just the model's ``state_dict`` (``rb.load`` reads it).
    An epoch whose loss is not finite, or that leaves a parameter NaN or infinite (a NaN can stay
    out of the loss: see :class:`TerminateOnNaN`), is never saved, so the last good checkpoint
    survives a diverging run.

    Args:
        path: the file; may contain ``{epoch}`` (1-based) and log keys, e.g. ``"ckpt-{epoch:03d}.safetensors"``.
        monitor: the quantity deciding what "best" means.
        save_best_only: write only when ``monitor`` improved (else every epoch).
        mode: ``"min"``, ``"max"`` or ``"auto"``.
        save_weights_only: write only the weights.
    """

    def __init__(self, path: str | os.PathLike, monitor: str = "val_loss", save_best_only: bool = True,
                 mode: str = "auto", save_weights_only: bool = False) -> None:
        super().__init__()
        self.path = os.fspath(path)
        self.monitor, self.save_best_only = monitor, save_best_only
        self.mode = resolve_mode(monitor, mode)
        self.save_weights_only = save_weights_only
        self.best = math.inf if self.mode == "min" else -math.inf
        self.last_saved: str | None = None

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs or {}
        if not math.isfinite(float(logs.get("loss", 0.0))):
            return
        if non_finite_parameter(self.model) is not None:  # the last good checkpoint stays
            return
        if self.save_best_only:
            value = monitored_value("ModelCheckpoint", self.monitor, logs)
            better = value < self.best if self.mode == "min" else value > self.best
            if not better:
                return
            self.best = value
        path = self.path.format(epoch=epoch + 1, **logs)
        if self.save_weights_only:
            from rosenblatt.serialization import save

            save(self.model.state_dict(), path)
        else:
            self.trainer.save_checkpoint(path)
        self.last_saved = path

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = state.get("best", self.best)
