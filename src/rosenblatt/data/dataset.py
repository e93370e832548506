"""Datasets: the ``Dataset`` protocol, in-memory ``TensorDataset`` and index ``Subset``.

A dataset is anything with ``__len__`` and ``__getitem__``. Datasets that hold arrays in memory
also accept an index *array* in ``__getitem__`` and return a whole batch at once (their
``batched_indexing`` attribute is True): the :class:`~rosenblatt.data.DataLoader` then builds each
batch with one fancy-indexing call per array instead of a Python loop over samples.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def to_numpy(value: Any) -> np.ndarray:
    """A host NumPy array from an array, a Tensor, a CuPy array or a nested list."""
    from rosenblatt.core import Tensor

    if isinstance(value, Tensor):
        value = value.data
    if hasattr(value, "get") and not isinstance(value, np.ndarray):  # CuPy -> host
        value = value.get()
    return np.asarray(value)


class Dataset:
    """Base class of map-style datasets: implement ``__len__`` and ``__getitem__(index)``.

    ``__getitem__`` returns one sample, usually a tuple ``(x, y)`` of arrays. Subclasses that can
    return a whole batch for an integer index array set ``batched_indexing = True``.
    """

    batched_indexing = False

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must implement __len__")

    def __getitem__(self, index: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement __getitem__")


class TensorDataset(Dataset):
    """Samples drawn from arrays (or Tensors) that share their first dimension.

    ``TensorDataset(x, y)[i]`` is ``(x[i], y[i])``; ``TensorDataset(x, y)[idx_array]`` is the batch
    ``(x[idx_array], y[idx_array])``. The arrays stay NumPy arrays (kept on the host; the trainer
    moves each batch to its device).

    Args:
        *arrays: one or more arrays with the same length along axis 0.
    """

    batched_indexing = True

    def __init__(self, *arrays: Any) -> None:
        if not arrays:
            raise ValueError("TensorDataset: expected at least one array, got none")
        self.arrays = tuple(to_numpy(a) for a in arrays)
        lengths = [a.shape[0] if a.ndim else None for a in self.arrays]
        if None in lengths:
            raise ValueError("TensorDataset: every array needs a first (sample) axis; got a 0-d array")
        if len(set(lengths)) != 1:
            raise ValueError(f"TensorDataset: all arrays must have the same length, got lengths {lengths}")

    def __len__(self) -> int:
        return int(self.arrays[0].shape[0])

    def __getitem__(self, index: Any) -> tuple[np.ndarray, ...]:
        return tuple(a[index] for a in self.arrays)

    def __repr__(self) -> str:
        shapes = ", ".join(str(a.shape) for a in self.arrays)
        return f"TensorDataset({shapes})"


class Subset(Dataset):
    """The samples of ``dataset`` at ``indices`` (what :func:`random_split` returns)."""

    def __init__(self, dataset: Dataset, indices: Any) -> None:
        self.dataset = dataset
        self.indices = np.asarray(indices, dtype=np.int64)
        self.batched_indexing = getattr(dataset, "batched_indexing", False)

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    def __getitem__(self, index: Any) -> Any:
        return self.dataset[self.indices[index]]

    def __repr__(self) -> str:
        return f"Subset({len(self)} of {type(self.dataset).__name__})"
