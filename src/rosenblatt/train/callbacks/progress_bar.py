"""``ProgressBar``: one updating line per epoch in a terminal, one plain line per epoch elsewhere."""

from __future__ import annotations

import shutil
import sys
import time
from typing import Any, TextIO

from rosenblatt.train.callbacks.base import Callback

LINE_WIDTH = 80  # the longest line an epoch's summary takes (a classic terminal)
_SHORT_NAMES = {"accuracy": "acc", "binary_accuracy": "acc", "top5_accuracy": "top5", "precision": "prec",
                "recall": "rec", "roc_auc": "auc"}


def _short(key: str) -> str:
    prefix = "val_" if key.startswith("val_") else ""
    name = key[len(prefix):]
    return prefix + _SHORT_NAMES.get(name, name)


def format_logs(logs: dict[str, Any], width: int | None = None) -> str:
    """``loss 0.1234 - accuracy 0.9500 - val_loss ...`` (the learning rate in short form).

    With ``width``, the text is made to fit: first the learning rate goes, then names are
    shortened (``val_acc``), then training metrics other than the loss go. Validation numbers
    always stay.
    """
    def render(items: list[tuple[str, Any]], short: bool) -> str:
        parts = []
        for key, value in items:
            name = _short(key) if short else key
            parts.append(f"{name} {value:.3g}" if key == "lr" else f"{name} {value:.4f}")
        return " - ".join(parts)

    items = list(logs.items())
    text = render(items, False)
    if width is None or len(text) <= width:
        return text
    without_lr = [(k, v) for k, v in items if k != "lr"]
    essential = [(k, v) for k, v in without_lr if k == "loss" or k.startswith("val_")]
    for candidate in (render(without_lr, False), render(without_lr, True), render(essential, True)):
        if len(candidate) <= width:
            return candidate
    return candidate


class ProgressBar(Callback):
    """Show training progress without flooding logs or notebooks.

    In a terminal: one line per epoch that updates in place as batches go by (tqdm when it is
    installed, else a built-in bar), then is replaced by the epoch's results. When the output is not
    a terminal (a file, a CI log, a notebook): exactly one plain line per epoch, at its end. The
    line with the results fits 80 columns (see :func:`format_logs`), validation numbers included.

    Args:
        file: where to write (default: ``sys.stdout``).
        use_tqdm: force (True) or forbid (False) tqdm; None: use it when installed and in a terminal.
        min_interval: seconds between two redraws of the updating line.
        per_batch: False: one plain line per epoch, also in a terminal (Keras's ``verbose=2``).
    """

    def __init__(self, file: TextIO | None = None, use_tqdm: bool | None = None, min_interval: float = 0.1,
                 per_batch: bool = True) -> None:
        super().__init__()
        self.file, self.use_tqdm, self.min_interval = file, use_tqdm, min_interval
        self.per_batch = per_batch
        self._bar: Any = None
        self._interactive = False

    @property
    def _out(self) -> TextIO:
        return self.file if self.file is not None else sys.stdout

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        isatty = getattr(self._out, "isatty", None)
        self._interactive = bool(isatty and isatty()) and self.per_batch
        self._tqdm = None
        if self.use_tqdm is not False and self.per_batch and (self._interactive or self.use_tqdm):
            try:
                from tqdm import tqdm

                self._tqdm = tqdm
            except ImportError:
                self._tqdm = None

    def _desc(self, epoch: int) -> str:
        total = getattr(self.trainer, "epochs", None)
        return f"epoch {epoch + 1}/{total}" if total else f"epoch {epoch + 1}"

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._epoch, self._start, self._seen, self._loss_sum = epoch, time.perf_counter(), 0, 0.0
        self._last_draw = 0.0
        steps = getattr(self.trainer, "steps_per_epoch", None)
        self._steps = steps
        if self._tqdm is not None:
            # A terminal that reports no width (some ptys) would get an empty bar: assume 100 columns.
            width = shutil.get_terminal_size((0, 0)).columns
            size = {"dynamic_ncols": True} if width > 0 else {"ncols": 100, "nrows": 24}
            self._bar = self._tqdm(total=steps, desc=self._desc(epoch), file=self._out, leave=False,
                                   mininterval=self.min_interval, unit="batch", **size)

    def on_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        loss = (logs or {}).get("loss", float("nan"))
        self._seen += 1
        self._loss_sum += loss
        if self._bar is not None:
            self._bar.update(1)
            now = time.perf_counter()
            if now - self._last_draw >= self.min_interval:
                self._bar.set_postfix_str(f"loss {self._loss_sum / self._seen:.4f}", refresh=False)
                self._last_draw = now
        elif self._interactive:
            now = time.perf_counter()
            if now - self._last_draw >= self.min_interval:
                self._last_draw = now
                done = f"{self._seen}/{self._steps}" if self._steps else str(self._seen)
                self._out.write(f"\r{self._desc(self._epoch)} [{done}] loss {self._loss_sum / self._seen:.4f}")
                self._out.flush()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        elapsed = time.perf_counter() - self._start
        if self._bar is not None:  # the bar goes; the results line takes its place
            self._bar.close()
            self._bar = None
        head = f"{self._desc(epoch)} - {elapsed:.1f}s - "
        text = format_logs(logs or {}, width=LINE_WIDTH - len(head))
        if len(head) + len(text) > LINE_WIDTH:
            head = f"{self._desc(epoch)} - "
        # In a terminal, blank the in-place progress line before writing over it.
        prefix = "\r" + " " * LINE_WIDTH + "\r" if self._interactive and self._tqdm is None else ""
        self._out.write(f"{prefix}{head}{text}\n")
        self._out.flush()

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
