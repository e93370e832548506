"""What ``rb.train.Trainer`` does differently when it runs as one of several MPI processes.

``Trainer(..., distributed="auto")`` (the default) asks :func:`data_parallel_for`; outside
``mpiexec`` the answer is ``None`` and the Trainer is unchanged. Under ``mpiexec -n N`` it gets a
:class:`DataParallelTraining` and, at these points only:

- ``fit`` start: rank 0's weights (and its shuffling seed) are broadcast, and the training
  loader is replaced by a :class:`ShardedLoader` - each process reads its own
  :class:`DistributedSampler` shard, reshuffled every epoch; ``batch_size`` is per process, so
  the global batch is ``N * batch_size`` (PyTorch DDP's convention);
- after every ``backward()``: the gradients are averaged over the processes (bucketed all-reduce),
  so every process applies the same update;
- end of each training epoch: the loss and metrics are averaged over the processes, weighted by
  their sample counts (exact for loss, accuracy, MSE, MAE; an approximation for metrics that are
  not means over samples, such as F1 or ROC AUC);
- callbacks that write or print (``ModelCheckpoint``, ``CSVLogger``, ``ProgressBar``, and any
  callback with ``rank_zero_only = True``) run on rank 0 only.

Validation data is not sharded: every process evaluates all of it, so ``val_*`` values agree.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from rosenblatt.distributed import comm
from rosenblatt.distributed.data_parallel import allreduce_gradients, allreduce_metrics, broadcast_parameters
from rosenblatt.distributed.sampler import DistributedSampler

_RANK_ZERO_CALLBACKS = {"ModelCheckpoint", "CSVLogger", "ProgressBar"}


class ShardedLoader:
    """A ``DataLoader`` restricted to this process's shard, reshuffled every epoch.

    Each iteration draws the epoch's permutation of the *whole* dataset (identical on all
    processes: seeded by ``seed`` and the epoch), takes this process's
    :class:`DistributedSampler` shard of it and batches it with the wrapped loader's settings
    (batch size, ``drop_last``, ``collate_fn``, ``transform``).
    """

    def __init__(self, loader: Any, seed: int, num_replicas: int | None = None, rank: int | None = None) -> None:
        for attribute in ("dataset", "batch_size", "shuffle", "drop_last"):
            if not hasattr(loader, attribute):
                raise TypeError(f"ShardedLoader: expected a rosenblatt DataLoader, got {type(loader).__name__}")
        self.loader = loader
        self.sampler = DistributedSampler(len(loader.dataset), num_replicas=num_replicas, rank=rank,
                                          shuffle=loader.shuffle, seed=seed)
        self.epoch = int(getattr(loader, "epoch", 0))

    @property
    def dataset(self) -> Any:
        return self.loader.dataset

    def __len__(self) -> int:
        n, size = len(self.sampler), self.loader.batch_size
        return n // size if self.loader.drop_last else -(-n // size)

    def __iter__(self) -> Iterator[Any]:
        from rosenblatt.data.dataset import Subset
        from rosenblatt.data.loader import DataLoader

        self.sampler.set_epoch(self.epoch)
        self.epoch += 1
        shard = Subset(self.loader.dataset, self.sampler.indices())
        yield from DataLoader(shard, batch_size=self.loader.batch_size, shuffle=False, drop_last=self.loader.drop_last,
                              collate_fn=getattr(self.loader, "collate_fn", None),
                              transform=getattr(self.loader, "transform", None))


class DataParallelTraining:
    """The Trainer's hooks for data-parallel training (see the module docstring)."""

    def __init__(self, bucket_size_mb: float = 25) -> None:
        self.bucket_size_mb = bucket_size_mb

    @property
    def rank(self) -> int:
        return comm.rank()

    @property
    def world_size(self) -> int:
        return comm.world_size()

    def prepare(self, model: Any, loader: Any, seed: int | None) -> ShardedLoader:
        """Broadcast rank 0's weights and seed; return this process's shard of ``loader``."""
        broadcast_parameters(model)
        seed_array = comm.broadcast_array(np.asarray([seed or 0], dtype=np.int64))
        return ShardedLoader(loader, int(seed_array[0]))

    def allreduce_gradients(self, params: Any) -> int:
        """Average the gradients over the processes (after ``backward()``, before the step)."""
        return allreduce_gradients(params, bucket_size_mb=self.bucket_size_mb)

    def reduce_logs(self, logs: dict[str, float], weight: float) -> dict[str, float]:
        """Sample-weighted means of an epoch's logs over the processes."""
        return allreduce_metrics(logs, weight=weight)

    def callbacks_for_this_rank(self, callbacks: Sequence[Any]) -> list[Any]:
        """``callbacks`` without the writing/printing ones on ranks other than 0."""
        if comm.rank() == 0:
            return list(callbacks)
        return [cb for cb in callbacks if not (getattr(cb, "rank_zero_only", False)
                                               or type(cb).__name__ in _RANK_ZERO_CALLBACKS)]


def data_parallel_for(distributed: bool | str = "auto", bucket_size_mb: float = 25) -> DataParallelTraining | None:
    """The Trainer's data-parallel hooks, or ``None`` for ordinary single-process training.

    ``distributed``: ``"auto"`` (data-parallel exactly when started by ``mpiexec`` with several
    processes), ``True`` (the same, warning when there is only one process) or ``False``.
    """
    if distributed is False or distributed is None:
        return None
    if distributed == "auto":
        if not comm.launched_with_mpi() and not comm.is_distributed():
            return None  # never imports mpi4py outside mpiexec
    elif distributed is not True:
        raise ValueError(f"Trainer: distributed must be True, False or 'auto', got {distributed!r}")
    comm.init()
    if comm.world_size() == 1:
        if distributed is True:
            warnings.warn("Trainer(distributed=True): only one process (launch with mpiexec -n N and install "
                          "mpi4py); training on this process alone", stacklevel=3)
        return None
    return DataParallelTraining(bucket_size_mb)
