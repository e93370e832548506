"""``TensorBoard``: per-epoch scalars (and weight histograms) in event files TensorBoard reads."""

from __future__ import annotations

import os
from typing import Any

from rosenblatt.train.callbacks.base import Callback


class TensorBoard(Callback):
    """Write the epoch's results to ``log_dir`` for ``tensorboard --logdir log_dir``.

    The layout is Keras's: ``log_dir/train`` holds ``epoch_loss``, ``epoch_<metric>`` and
    ``epoch_learning_rate``; ``log_dir/validation`` holds the ``val_*`` results under the same tags,
    so TensorBoard draws training and validation curves in the same chart. The step is the epoch
    (0-based). The files are written by :mod:`rosenblatt.io.event_file` (no TensorFlow or
    TensorBoard needed to write them) and flushed after every epoch.

    Args:
        log_dir: the folder of this run (created).
        histogram_freq: every this many epochs, also write a histogram of each parameter's values
            (tag: the parameter's name, e.g. ``fc1.weight``); 0 for none.
    """

    rank_zero_only = True  # under MPI data parallelism, one process writes

    def __init__(self, log_dir: str | os.PathLike = "logs", histogram_freq: int = 0) -> None:
        super().__init__()
        if isinstance(histogram_freq, bool) or not isinstance(histogram_freq, int) or histogram_freq < 0:
            raise ValueError(f"TensorBoard: histogram_freq must be a non-negative integer, got {histogram_freq!r}")
        self.log_dir, self.histogram_freq = os.fspath(log_dir), histogram_freq
        self._writers: dict[str, Any] = {}

    def _writer(self, name: str) -> Any:
        from rosenblatt.io.event_file import EventFileWriter

        if name not in self._writers:
            self._writers[name] = EventFileWriter(os.path.join(self.log_dir, name))
        return self._writers[name]

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._writer("train")

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        train: dict[str, float] = {}
        validation: dict[str, float] = {}
        for key, value in (logs or {}).items():
            if key == "lr":
                train["epoch_learning_rate"] = value
            elif key.startswith("val_"):
                validation[f"epoch_{key[4:]}"] = value
            else:
                train[f"epoch_{key}"] = value
        self._writer("train").add_scalars(epoch, train)
        if validation:
            self._writer("validation").add_scalars(epoch, validation)
        if self.histogram_freq and epoch % self.histogram_freq == 0 and self.model is not None:
            arrays = {name: p.numpy() for name, p in self.model.named_parameters()}
            self._writer("train").add_histograms(epoch, arrays)
        for writer in self._writers.values():
            writer.flush()

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers = {}
