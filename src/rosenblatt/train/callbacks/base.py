"""``Callback``: the hooks ``Trainer.fit`` calls, as in Keras."""

from __future__ import annotations

from typing import Any

_MAX_WORDS = ("acc", "auc", "f1", "precision", "recall", "r2", "top")


def resolve_mode(monitor: str, mode: str = "auto") -> str:
    """``"min"`` or ``"max"``: ``auto`` picks max for accuracy-like quantities, min otherwise."""
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode != "auto":
        return mode
    name = monitor[4:] if monitor.startswith("val_") else monitor
    return "max" if any(word in name for word in _MAX_WORDS) else "min"


class Callback:
    """Base class of training callbacks; override the hooks you need.

    Hooks: ``on_train_begin(logs)``, ``on_train_end(logs)``, ``on_epoch_begin(epoch, logs)``,
    ``on_epoch_end(epoch, logs)`` (``logs`` holds the epoch's ``loss``, metrics and ``val_*``),
    ``on_batch_begin(batch, logs)``, ``on_batch_end(batch, logs)`` (``logs["loss"]``: the batch loss;
    parameter gradients are still in ``.grad``). Set ``self.stop_training = True`` (or
    ``self.trainer.stop_training``) to end training after the current batch.

    ``self.trainer`` is the running :class:`~rosenblatt.train.Trainer` and ``self.model`` its model.
    Callbacks with state that matters for resuming implement ``state_dict``/``load_state_dict``.
    """

    def __init__(self) -> None:
        self.trainer: Any = None
        self.stop_training = False

    def set_trainer(self, trainer: Any) -> None:
        """Called by the Trainer before training starts."""
        self.trainer = trainer

    @property
    def model(self) -> Any:
        """The model being trained (None before ``fit`` attaches the callback to a trainer)."""
        return None if self.trainer is None else self.trainer.model

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        """Called once before the first epoch."""

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        """Called once after the last epoch (also after an early stop)."""

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        """Called at the start of every epoch (0-based)."""

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        """Called at the end of every epoch with its training and validation results."""

    def on_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        """Called before each training batch."""

    def on_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        """Called after each optimiser step with the batch loss."""

    def state_dict(self) -> dict[str, Any]:
        """State to keep in a checkpoint (default: none)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state returned by :meth:`state_dict`."""


def monitored_value(callback_name: str, monitor: str, logs: dict[str, Any] | None) -> float:
    """``logs[monitor]``, or a clear error naming what is available."""
    logs = logs or {}
    if monitor not in logs:
        hint = " (validation data is needed: pass val= or validation_split= to fit)" if monitor.startswith("val_") else ""
        raise ValueError(f"{callback_name}: monitored quantity '{monitor}' is not in the logs{hint}; "
                         f"available: {', '.join(sorted(logs)) or 'none'}")
    return float(logs[monitor])
