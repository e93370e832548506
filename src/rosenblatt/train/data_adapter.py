"""Turn what a user passes to ``Trainer`` into batches: ``(batches, split)`` where
``split(batch) -> (inputs, targets, sample_weights)``.

Accepted: a DataLoader, a Dataset, arrays ``(x, y)`` / ``(x, y, sample_weight)`` (``x`` a tuple or
list for several inputs, ``y`` a tuple or a dict for several outputs), or, for prediction, ``x``
alone. Keras's ``fit(x, y)`` is turned into ``(x, y)`` first by :func:`combine`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from rosenblatt.data.dataset import Dataset, TensorDataset, to_numpy
from rosenblatt.data.loader import DataLoader


def combine(x: Any, y: Any, sample_weight: Any, where: str) -> Any:
    """Keras's separate ``x, y, sample_weight`` as one data argument (``x`` alone when ``y`` is None)."""
    if y is None:
        if sample_weight is None:
            return x
        if not isinstance(x, (tuple, list)) or len(x) != 2:
            raise ValueError(f"{where}: sample_weight needs array data: fit(x, y, sample_weight=w) or "
                             f"fit((x, y), sample_weight=w)")
        return (x[0], x[1], sample_weight)
    if isinstance(x, (DataLoader, Dataset)):
        raise ValueError(f"{where}: y must be None when x is a {type(x).__name__} (it yields the targets itself); "
                         f"give validation data as validation_data=")
    return (x, y) if sample_weight is None else (x, y, sample_weight)


def check_batch_size(batch_size: Any, where: str) -> int | None:
    if batch_size is None:
        return None
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"{where}: batch_size must be a positive integer, got {batch_size!r}")
    return int(batch_size)


class ArrayData:
    """Arrays ``(x, y[, w])`` with several inputs/targets, flattened into one TensorDataset."""

    def __init__(self, data: Sequence[Any], output_names: list[str], where: str) -> None:
        if len(data) not in (1, 2, 3):
            raise ValueError(f"{where}: expected (x, y) or (x, y, sample_weight), got a sequence of {len(data)} items")
        x = data[0]
        y = data[1] if len(data) > 1 else None
        w = data[2] if len(data) > 2 else None
        xs = list(x) if isinstance(x, (tuple, list)) else [x]
        if y is None:
            ys = []
        elif isinstance(y, Mapping):
            missing = [n for n in output_names if n not in y]
            if missing:
                raise ValueError(f"{where}: targets for outputs {missing} are missing from the dict y")
            ys = [y[n] for n in output_names]
        elif isinstance(y, (tuple, list)):
            ys = list(y)
        else:
            ys = [y]
        self.n_inputs, self.n_targets, self.has_weight = len(xs), len(ys), w is not None
        arrays = xs + ys + ([to_numpy(w).astype(np.float64).reshape(-1)] if w is not None else [])
        try:
            self.dataset = TensorDataset(*arrays)
        except (ValueError, TypeError) as exc:
            raise type(exc)(f"{where}: {str(exc).replace('TensorDataset: ', '')}") from None

    def split(self, batch: tuple) -> tuple[list, list, Any]:
        xs = list(batch[:self.n_inputs])
        ys = list(batch[self.n_inputs:self.n_inputs + self.n_targets])
        w = batch[-1] if self.has_weight else None
        return xs, ys, w

    def rebuild(self, arrays: Sequence[Any]) -> tuple:
        """``(x, y[, w])`` again from the flat arrays (after a split into train and validation)."""
        xs = arrays[:self.n_inputs]
        ys = arrays[self.n_inputs:self.n_inputs + self.n_targets]
        x = xs[0] if len(xs) == 1 else tuple(xs)
        y = ys[0] if len(ys) == 1 else tuple(ys)
        return (x, y, arrays[-1]) if self.has_weight else (x, y)


def _is_dataset(data: Any) -> bool:
    return isinstance(data, Dataset) or (hasattr(data, "__getitem__") and hasattr(data, "__len__")
                                         and not isinstance(data, (tuple, list, np.ndarray))
                                         and not hasattr(data, "data"))


def batches(data: Any, output_names: list[str], batch_size: int | None, shuffle: bool, seed: int | None,
            where: str, with_targets: bool = True) -> tuple[Any, Any]:
    """``(iterable of batches, split)`` for ``data`` (see the module docstring)."""
    n_outputs = len(output_names)
    if isinstance(data, DataLoader):
        return data, lambda batch: split_loader_batch(batch, output_names)
    if _is_dataset(data):
        loader = DataLoader(data, batch_size=batch_size or 32, shuffle=shuffle, seed=seed)
        return loader, lambda batch: split_loader_batch(batch, output_names)
    if isinstance(data, (tuple, list)):
        arrays = ArrayData(data, output_names, where)
    elif with_targets:
        raise TypeError(f"{where}: expected x and y (arrays), a tuple (x, y), a DataLoader or a Dataset, "
                        f"got {type(data).__name__} alone")
    else:
        arrays = ArrayData((data,), output_names, where)
    if with_targets and arrays.n_targets != n_outputs:
        raise ValueError(f"{where}: {arrays.n_targets} target arrays for {n_outputs} outputs")
    return DataLoader(arrays.dataset, batch_size=batch_size or 32, shuffle=shuffle, seed=seed), arrays.split


def split_loader_batch(batch: Any, output_names: list[str]) -> tuple[list, list, Any]:
    """A DataLoader's batch as ``(inputs, targets, None)``: ``(x, y)`` pairs, or flat ``(x..., y...)``."""
    from rosenblatt.core import Tensor

    if isinstance(batch, Tensor):
        return [batch], [], None
    batch = tuple(batch)
    if len(batch) == 2 and any(isinstance(b, (tuple, list, Mapping)) for b in batch):
        x, y = batch
        xs = list(x) if isinstance(x, (tuple, list)) else [x]
        if isinstance(y, Mapping):
            ys = [y[n] for n in output_names]
        else:
            ys = list(y) if isinstance(y, (tuple, list)) else [y]
        return xs, ys, None
    n_targets = len(output_names)
    if len(batch) <= n_targets:
        return list(batch), [], None  # inputs only (prediction)
    return list(batch[:-n_targets]), list(batch[-n_targets:]), None


def split_validation(data: Any, fraction: float, stratify: Any, seed: int, output_names: list[str],
                     where: str) -> tuple[Any, Any]:
    """Hold out ``fraction`` of ``data`` for validation, after shuffling (optionally stratified).

    Keras takes the last rows instead, which gives a one-class validation set on sorted data.
    """
    from rosenblatt.data.split import random_split, train_val_test_split

    if isinstance(data, (tuple, list)):
        arrays = ArrayData(data, output_names, where)
        labels = None
        if stratify is True:
            if arrays.n_targets != 1:
                raise ValueError(f"{where}: stratify=True needs a single target; pass the labels instead")
            labels = arrays.dataset.arrays[arrays.n_inputs]
        elif stratify is not False and stratify is not None:
            labels = to_numpy(stratify)
        train, val, _ = train_val_test_split(*arrays.dataset.arrays, val=float(fraction), test=0,
                                             stratify=labels, seed=seed)
        return arrays.rebuild(train), arrays.rebuild(val)
    if isinstance(data, Dataset):
        if stratify is not False and stratify is not None:
            raise ValueError(f"{where}: stratify needs array data (x, y)")
        n_val = int(round(len(data) * fraction))
        return tuple(random_split(data, [len(data) - n_val, n_val], seed=seed))
    raise ValueError(f"{where}: validation_split needs arrays (x, y) or a Dataset, not a DataLoader; "
                     f"pass validation_data=")


def class_weight_array(class_weight: Any, where: str) -> np.ndarray | None:
    """``{class: weight}`` or a sequence as an array indexed by class."""
    if class_weight is None:
        return None
    if isinstance(class_weight, str) or not isinstance(class_weight, (Mapping, Sequence, np.ndarray)):
        raise TypeError(f"{where}: class_weight must be a dict {{class: weight}} or a list of weights, "
                        f"got {class_weight!r}")
    if isinstance(class_weight, Mapping):
        keys = [int(k) for k in class_weight]
        if not keys or min(keys) < 0:
            raise ValueError(f"{where}: class_weight keys must be class indices >= 0, got {sorted(keys)}")
        array = np.ones(max(keys) + 1)
        for k, v in class_weight.items():
            array[int(k)] = float(v)
    else:
        array = np.asarray(class_weight, dtype=np.float64).reshape(-1)
    if np.any(array < 0):
        raise ValueError(f"{where}: class weights must be >= 0")
    return array


def class_weights_for(class_weight: np.ndarray, target: Any) -> np.ndarray:
    """Each sample's class weight; targets are class indices, one-hot rows or 0/1 values."""
    labels = to_numpy(target)
    if labels.ndim >= 2 and labels.shape[-1] > 1 and labels.dtype.kind == "f":
        labels = labels.argmax(axis=-1)
    labels = np.rint(labels.reshape(labels.shape[0], -1)[:, 0]).astype(np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= class_weight.shape[0]):
        raise ValueError(f"Trainer: class_weight covers classes 0..{class_weight.shape[0] - 1}, "
                         f"got label {labels.max()}")
    return class_weight[labels]
