"""``LRSchedulerCallback``: step a learning-rate scheduler during training."""

from __future__ import annotations

from typing import Any

from rosenblatt.optim.lr_scheduler import LRScheduler, OneCycleLR, ReduceLROnPlateau
from rosenblatt.train.callbacks.base import Callback, monitored_value


class LRSchedulerCallback(Callback):
    """Call ``scheduler.step()`` after every epoch (or every batch).

    ``ReduceLROnPlateau`` is stepped with the monitored value: ``scheduler.step(logs[monitor])``.
    The scheduler's state is saved in the Trainer's checkpoints. A scheduler put directly in a
    Trainer's ``callbacks`` is wrapped in one of these (see :func:`as_callback`).

    Args:
        scheduler: any scheduler of :mod:`rosenblatt.optim.lr_scheduler`.
        monitor: the quantity given to ``ReduceLROnPlateau`` (ignored by other schedulers); None:
            ``val_loss`` when there is validation data, else ``loss``.
        interval: ``"epoch"`` or ``"batch"`` (e.g. ``OneCycleLR``, whose steps count batches).
    """

    def __init__(self, scheduler: Any, monitor: str | None = "val_loss", interval: str = "epoch") -> None:
        super().__init__()
        if interval not in ("epoch", "batch"):
            raise ValueError(f"LRSchedulerCallback: interval must be 'epoch' or 'batch', got {interval!r}")
        if not hasattr(scheduler, "step"):
            raise TypeError(f"LRSchedulerCallback: expected a scheduler with step(), got {type(scheduler).__name__}")
        self.scheduler, self.monitor, self.interval = scheduler, monitor, interval
        self.needs_metric = isinstance(scheduler, ReduceLROnPlateau)

    def on_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if self.interval == "batch":
            if self.needs_metric:
                self.scheduler.step(monitored_value("LRSchedulerCallback", "loss", logs))
            else:
                self.scheduler.step()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self.interval != "epoch":
            return
        if self.needs_metric:
            self.scheduler.step(monitored_value("LRSchedulerCallback", self.monitor or "val_loss", logs))
        else:
            self.scheduler.step()


def as_callback(obj: Any, where: str = "Trainer") -> Callback:
    """``obj`` itself if it is a :class:`Callback`; a scheduler wrapped in :class:`LRSchedulerCallback`
    (``OneCycleLR`` stepped per batch, the rest per epoch); a clear error otherwise."""
    if isinstance(obj, Callback):
        return obj
    if isinstance(obj, LRScheduler):
        return LRSchedulerCallback(obj, monitor=None, interval="batch" if isinstance(obj, OneCycleLR) else "epoch")
    hint = " (a class: did you forget the parentheses?)" if isinstance(obj, type) else ""
    raise TypeError(f"{where}: callbacks must be Callback objects or learning-rate schedulers, "
                    f"got {type(obj).__name__}{hint}")
