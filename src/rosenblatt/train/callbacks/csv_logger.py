"""``CSVLogger``: one CSV row per epoch, flushed as training goes."""

from __future__ import annotations

import csv
import os
from typing import Any

from rosenblatt.train.callbacks.base import Callback


class CSVLogger(Callback):
    """Append ``epoch,loss,...,val_loss,...`` rows to a CSV file after every epoch.

    The file is flushed each epoch, so it can be watched (or plotted) while training runs.

    Args:
        path: the CSV file (its folder is created).
        append: keep existing rows (e.g. when resuming) instead of starting a new file.
        separator: the field separator.
    """

    def __init__(self, path: str | os.PathLike, append: bool = False, separator: str = ",") -> None:
        super().__init__()
        self.path, self.append, self.separator = os.fspath(path), append, separator
        self._keys: list[str] | None = None
        self._file: Any = None
        self._writer: Any = None

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        folder = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(folder, exist_ok=True)
        resuming = self.append or getattr(self.trainer, "resuming", False)
        self._keys = None
        if resuming and os.path.isfile(self.path) and os.path.getsize(self.path) > 0:
            with open(self.path, newline="") as f:
                header = next(csv.reader(f, delimiter=self.separator), None)
            self._keys = header[1:] if header else None
            self._file = open(self.path, "a", newline="")
        else:
            self._file = open(self.path, "w", newline="")
        self._writer = csv.writer(self._file, delimiter=self.separator, lineterminator="\n")

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs or {}
        if self._keys is None:
            self._keys = list(logs)
            self._writer.writerow(["epoch", *self._keys])
        self._writer.writerow([epoch, *(repr(float(logs[k])) if k in logs else "" for k in self._keys)])
        self._file.flush()

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
