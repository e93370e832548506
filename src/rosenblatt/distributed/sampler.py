"""``DistributedSampler``: gives each process its own share of the dataset, reshuffled every epoch."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from rosenblatt.distributed.comm import rank as _rank
from rosenblatt.distributed.comm import world_size as _world_size


class DistributedSampler:
    """Indices of one process's shard of a dataset, as in ``torch.utils.data.DistributedSampler``.

    Every epoch all processes draw the *same* permutation (seeded by ``seed + epoch``, so no
    communication is needed) and process ``r`` takes positions ``r, r + R, r + 2R, ...`` of it.
    Without ``drop_last`` the permutation is padded with its own first indices so that every
    process gets ``ceil(N / R)`` samples (equal step counts keep the gradient all-reduce in lock
    step); with ``drop_last`` the tail is cut so that every process gets ``floor(N / R)``.
    Call :meth:`set_epoch` at the start of each epoch, or every epoch repeats the first order.

    Args:
        dataset_or_len: a dataset (anything with ``len``) or its length.
        num_replicas: number of processes (default: ``rb.distributed.world_size()``).
        rank: this process's index (default: ``rb.distributed.rank()``).
        shuffle: permute each epoch; otherwise shard ``0..N-1`` in order.
        seed: base seed; must be the same on every process.
        drop_last: cut the tail instead of padding it.
    """

    def __init__(self, dataset_or_len: Any, num_replicas: int | None = None, rank: int | None = None,
                 shuffle: bool = True, seed: int = 0, drop_last: bool = False) -> None:
        length = dataset_or_len if isinstance(dataset_or_len, (int, np.integer)) else len(dataset_or_len)
        num_replicas = _world_size() if num_replicas is None else int(num_replicas)
        rank = _rank() if rank is None else int(rank)
        if length < 0:
            raise ValueError(f"DistributedSampler: expected a non-negative dataset length, got {length}")
        if num_replicas < 1:
            raise ValueError(f"DistributedSampler: num_replicas must be at least 1, got {num_replicas}")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"DistributedSampler: rank must be in [0, {num_replicas - 1}], got {rank}")
        self.length = int(length)
        self.num_replicas = num_replicas
        self.rank = rank
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.drop_last = bool(drop_last)
        self.epoch = 0
        if drop_last:
            self.num_samples = self.length // num_replicas
        else:
            self.num_samples = math.ceil(self.length / num_replicas)
        self.total_size = self.num_samples * num_replicas

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose permutation the next iteration uses."""
        self.epoch = int(epoch)

    def indices(self) -> np.ndarray:
        """This process's indices for the current epoch, as an int64 array."""
        if self.shuffle:
            # A generator of its own, seeded identically on every process: the shards of one epoch
            # must come from one permutation, whatever else each process has drawn from rb.random.
            order = np.random.Generator(np.random.PCG64(self.seed + self.epoch)).permutation(self.length)
        else:
            order = np.arange(self.length)
        if self.total_size > self.length:  # pad by wrapping around (repeatedly if N < R)
            order = np.resize(order, self.total_size)
        else:
            order = order[:self.total_size]
        return order[self.rank:self.total_size:self.num_replicas].astype(np.int64)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices().tolist())

    def __len__(self) -> int:
        return self.num_samples

    def __repr__(self) -> str:
        return (f"DistributedSampler(length={self.length}, num_replicas={self.num_replicas}, rank={self.rank}, "
                f"shuffle={self.shuffle}, seed={self.seed}, drop_last={self.drop_last})")
