"""``EarlyStopping``: stop when a monitored quantity stops improving; restore the best weights."""

from __future__ import annotations

import math
from typing import Any

from rosenblatt.train.callbacks.base import Callback, monitored_value, resolve_mode


class EarlyStopping(Callback):
    """Stop training after ``patience`` epochs without improvement of ``monitor``.

    With ``restore_best_weights=True`` the model ends with the weights of its best epoch — when
    training stops early *and* when it runs out of epochs (Keras restores only on an early stop).

    Args:
        monitor: the quantity to watch (``"val_loss"``, ``"val_accuracy"``, ``"loss"``, ...).
        patience: epochs without improvement before stopping.
        min_delta: the smallest change that counts as an improvement.
        mode: ``"min"``, ``"max"`` or ``"auto"`` (max for accuracy-like names).
        restore_best_weights: load the best epoch's weights at the end.
        baseline: stop if the quantity has not beaten this value after ``patience`` epochs.
        verbose: say on stdout when training stops and which epoch's weights are restored.

    Attributes:
        best, best_epoch: the best value seen and its epoch; ``stopped_epoch`` (or None).
    """

    def __init__(self, monitor: str = "val_loss", patience: int = 5, min_delta: float = 0.0, mode: str = "auto",
                 restore_best_weights: bool = True, baseline: float | None = None, verbose: bool = True) -> None:
        super().__init__()
        if patience < 0:
            raise ValueError(f"EarlyStopping: patience must be >= 0, got {patience}")
        self.monitor, self.patience, self.min_delta = monitor, int(patience), abs(float(min_delta))
        self.mode = resolve_mode(monitor, mode)
        self.restore_best_weights, self.baseline = restore_best_weights, baseline
        self.verbose = verbose
        self._reset()

    def _reset(self) -> None:
        self.wait = 0
        self.stop_training = False
        self.best = math.inf if self.mode == "min" else -math.inf
        if self.baseline is not None:
            self.best = float(self.baseline)
        self.best_epoch: int | None = None
        self.best_weights: dict[str, Any] | None = None
        self.stopped_epoch: int | None = None
        self.last_epoch: int | None = None

    def _improved(self, value: float) -> bool:
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        if self.trainer is None or not getattr(self.trainer, "resuming", False):
            self._reset()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        value = monitored_value("EarlyStopping", self.monitor, logs)
        self.last_epoch = epoch
        if self._improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self.best_weights = {k: v.data.copy() for k, v in self.model.state_dict().items()}
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            self.stop_training = True
            if self.verbose:
                best = "" if self.best_epoch is None else f" (best {self.best:.4g} in epoch {self.best_epoch + 1})"
                print(f"EarlyStopping: stopped after epoch {epoch + 1}: {self.monitor} has not improved for "
                      f"{self.wait} epoch{'s' if self.wait != 1 else ''}{best}")

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self.restore_best_weights and self.best_weights is not None:
            self.model.load_state_dict(self.best_weights)
            if self.verbose and self.best_epoch != self.last_epoch:
                print(f"EarlyStopping: restored the weights of epoch {self.best_epoch + 1} "
                      f"({self.monitor} {self.best:.4g})")

    def state_dict(self) -> dict[str, Any]:
        return {"wait": self.wait, "best": self.best, "best_epoch": self.best_epoch, "best_weights": self.best_weights}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        missing = {"wait", "best", "best_epoch"} - set(state)
        if missing:
            raise ValueError(f"EarlyStopping.load_state_dict: the saved state lacks {', '.join(sorted(missing))}")
        self.wait, self.best, self.best_epoch = state["wait"], state["best"], state["best_epoch"]
        self.best_weights = state.get("best_weights")
