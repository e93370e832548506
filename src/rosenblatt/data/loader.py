"""``DataLoader``: batches, seeded per-epoch shuffling, per-batch transforms, background prefetching."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from rosenblatt.data.dataset import Dataset, TensorDataset


def default_collate(samples: list[Any]) -> Any:
    """Stack a list of samples into a batch: tuples are stacked field by field."""
    first = samples[0]
    if isinstance(first, (tuple, list)):
        return tuple(default_collate([s[i] for s in samples]) for i in range(len(first)))
    if isinstance(first, dict):
        return {k: default_collate([s[k] for s in samples]) for k in first}
    from rosenblatt.data.dataset import to_numpy

    return np.stack([to_numpy(s) for s in samples])


def _to_tensors(batch: Any) -> Any:
    from rosenblatt.core import Tensor

    if isinstance(batch, tuple):
        return tuple(_to_tensors(b) for b in batch)
    if isinstance(batch, list):
        return [_to_tensors(b) for b in batch]
    if isinstance(batch, dict):
        return {k: _to_tensors(v) for k, v in batch.items()}
    if isinstance(batch, Tensor) or not isinstance(batch, np.ndarray):
        return batch
    return Tensor(batch)


class DataLoader:
    """Iterate over a dataset in batches, as ``torch.utils.data.DataLoader`` does.

    Each batch is a tuple of :class:`~rosenblatt.Tensor` (one per field of the samples, e.g.
    ``(x, y)``). Datasets held in memory (``TensorDataset``, ``Subset`` of one, the built-in
    datasets) are batched with one fancy-indexing call per array; other datasets are read sample by
    sample and stacked with ``collate_fn``.

    Shuffling is seeded and reproducible: with ``seed`` given, the order of epoch ``e`` is a fixed
    function of ``(seed, e)``, so every epoch differs, two loaders with the same seed agree, and a
    resumed run (``state_dict``/``load_state_dict``) continues with the same orders. With
    ``seed=None`` the orders come from rosenblatt's global generator (``rb.manual_seed``).

    Args:
        dataset: a :class:`Dataset`, or a tuple of arrays (wrapped in a ``TensorDataset``).
        batch_size: samples per batch.
        shuffle: reshuffle the samples at every epoch.
        drop_last: drop the last, incomplete batch.
        collate_fn: turns a list of samples into a batch (default: stack each field). When given,
            it is also used for in-memory datasets (on the list of samples).
        transform: applied to each batch of arrays before it becomes Tensors: called as
            ``transform(*fields)`` and must return the same number of fields (see
            :mod:`rosenblatt.data.transforms`).
        seed: seed of the shuffling order (see above).
        num_workers: threads that read and collate the next batches in the background while the
            current one is used (0: read each batch when it is asked for). The batches and their
            order are exactly those of ``num_workers=0``: the order is drawn before reading, the
            batches are handed out in order, and ``transform`` (which may draw random numbers)
            runs in the calling thread. (A dataset whose ``__getitem__`` itself draws random
            numbers from a shared generator loses that guarantee: put randomness in
            ``transform``.) Threads help when reading releases the GIL (files, HDF5, image
            decoding, NumPy copies).
        prefetch_factor: batches read ahead per worker.
    """

    def __init__(self, dataset: Dataset | tuple, batch_size: int = 1, shuffle: bool = False,
                 drop_last: bool = False, collate_fn: Callable[[list], Any] | None = None,
                 transform: Callable[..., Any] | None = None, seed: int | None = None, num_workers: int = 0,
                 prefetch_factor: int = 2) -> None:
        if isinstance(dataset, (tuple, list)):
            dataset = TensorDataset(*dataset)
        if not hasattr(dataset, "__len__") or not hasattr(dataset, "__getitem__"):
            raise TypeError(f"DataLoader: expected a Dataset (with __len__ and __getitem__), got {type(dataset).__name__}")
        if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be a positive integer, got {batch_size!r}")
        if seed is not None and (not isinstance(seed, (int, np.integer)) or seed < 0):
            raise ValueError(f"DataLoader: seed must be a non-negative integer or None, got {seed!r}")
        for name, value, minimum in (("num_workers", num_workers, 0), ("prefetch_factor", prefetch_factor, 1)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < minimum:
                raise ValueError(f"DataLoader: {name} must be an integer >= {minimum}, got {value!r}")
        self.dataset = dataset
        self.num_workers = int(num_workers)
        self.prefetch_factor = int(prefetch_factor)
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.collate_fn = collate_fn
        self.transform = transform
        self.seed = None if seed is None else int(seed)
        self.epoch = 0  # number of epochs started: the key of the next shuffling order

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _order(self) -> np.ndarray:
        n = len(self.dataset)
        if not self.shuffle:
            return np.arange(n)
        if self.seed is not None:
            return np.random.Generator(np.random.PCG64([self.seed, self.epoch])).permutation(n)
        from rosenblatt.random import permutation

        return permutation(n)

    def _read(self, index: np.ndarray) -> Any:
        """One batch of samples, collated (the part of a batch that worker threads may do)."""
        if getattr(self.dataset, "batched_indexing", False) and self.collate_fn is None:
            return self.dataset[index]
        return (self.collate_fn or default_collate)([self.dataset[int(i)] for i in index])

    def _read_ahead(self, indices: list[np.ndarray]) -> Iterator[Any]:
        """The batches of ``indices`` in order, read by ``num_workers`` threads up to
        ``num_workers * prefetch_factor`` batches ahead."""
        from collections import deque
        from concurrent.futures import ThreadPoolExecutor

        executor = ThreadPoolExecutor(self.num_workers, thread_name_prefix="rosenblatt-loader")
        pending: deque = deque()
        ahead = self.num_workers * self.prefetch_factor
        upcoming = iter(indices)

        def submit_next() -> None:
            index = next(upcoming, None)
            if index is not None:
                pending.append(executor.submit(self._read, index))

        try:
            for _ in range(ahead):
                submit_next()
            while pending:
                batch = pending.popleft().result()
                submit_next()
                yield batch
        finally:  # also when the loop that consumes the batches stops early
            for future in pending:
                future.cancel()
            executor.shutdown(wait=True)

    def __iter__(self) -> Iterator[Any]:
        order = self._order()
        self.epoch += 1
        n = order.shape[0]
        stop = n - n % self.batch_size if self.drop_last else n
        indices = [order[start:start + self.batch_size] for start in range(0, stop, self.batch_size)]
        batches = self._read_ahead(indices) if self.num_workers > 0 else map(self._read, indices)
        for batch in batches:
            if self.transform is not None:
                if isinstance(batch, tuple):
                    out = self.transform(*batch)
                    batch = out if isinstance(out, tuple) else (out,)
                else:
                    batch = self.transform(batch)
            yield _to_tensors(batch)

    def state_dict(self) -> dict[str, Any]:
        """The loader's position (seed, epochs started, transform generator) for checkpoints."""
        state: dict[str, Any] = {"seed": self.seed, "epoch": self.epoch}
        if self.transform is not None and hasattr(self.transform, "state_dict"):
            state["transform"] = self.transform.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state returned by :meth:`state_dict`."""
        self.seed = state.get("seed", self.seed)
        self.epoch = int(state.get("epoch", 0))
        if "transform" in state and self.transform is not None and hasattr(self.transform, "load_state_dict"):
            self.transform.load_state_dict(state["transform"])

    def __repr__(self) -> str:
        workers = f", num_workers={self.num_workers}" if self.num_workers else ""
        return (f"DataLoader({len(self.dataset)} samples, batch_size={self.batch_size}, "
                f"shuffle={self.shuffle}, drop_last={self.drop_last}{workers})")
