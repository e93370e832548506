"""``LRSchedulerCallback``: step a learning-rate scheduler during training."""

from __future__ import annotations

from typing import Any

from rosenblatt.train.callbacks.base import Callback, monitored_value


def is_plateau_scheduler(scheduler: Any) -> bool:
    """True for ``ReduceLROnPlateau``-like schedulers, whose ``step`` takes the monitored value."""
    return type(scheduler).__name__ == "ReduceLROnPlateau" or getattr(scheduler, "needs_metric", False)


class LRSchedulerCallback(Callback):
    """Call ``scheduler.step()`` after every epoch (or every batch).

    ``ReduceLROnPlateau`` is stepped with the monitored value: ``scheduler.step(logs[monitor])``.
    The scheduler's state is saved in the Trainer's checkpoints.

    Args:
        scheduler: any scheduler of :mod:`rosenblatt.optim.lr_scheduler`.
        monitor: the quantity given to ``ReduceLROnPlateau`` (ignored by other schedulers).
        interval: ``"epoch"`` or ``"batch"`` (e.g. ``OneCycleLR``, whose steps count batches).
    """

    def __init__(self, scheduler: Any, monitor: str = "val_loss", interval: str = "epoch") -> None:
        super().__init__()
        if interval not in ("epoch", "batch"):
            raise ValueError(f"LRSchedulerCallback: interval must be 'epoch' or 'batch', got {interval!r}")
        if not hasattr(scheduler, "step"):
            raise TypeError(f"LRSchedulerCallback: expected a scheduler with step(), got {type(scheduler).__name__}")
        self.scheduler, self.monitor, self.interval = scheduler, monitor, interval

    def on_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if self.interval == "batch":
            if is_plateau_scheduler(self.scheduler):
                self.scheduler.step(monitored_value("LRSchedulerCallback", "loss", logs))
            else:
                self.scheduler.step()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self.interval != "epoch":
            return
        if is_plateau_scheduler(self.scheduler):
            self.scheduler.step(monitored_value("LRSchedulerCallback", self.monitor, logs))
        else:
            self.scheduler.step()
