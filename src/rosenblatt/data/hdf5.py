"""``HDF5Dataset``: samples read lazily from datasets inside an HDF5 file (``h5py``).

Nothing is loaded when the dataset is made: each ``__getitem__`` reads just the rows it needs, so
files much larger than memory can be trained on. A batch (an index array, as the ``DataLoader``
asks for) is one read per HDF5 dataset: h5py wants increasing, distinct indices, so the batch is
read in sorted order (as one contiguous slab when the indices are dense, which is much faster than
a point selection) and put back in the requested order.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import numpy as np

from rosenblatt.data.dataset import Dataset


def _require_h5py() -> Any:
    try:
        import h5py
    except ImportError:
        raise ImportError("HDF5Dataset needs h5py: pip install 'rosenblatt[h5]' (or pip install h5py)") from None
    return h5py


def _dataset_names(f: Any, h5py: Any) -> list[str]:
    names: list[str] = []

    def visit(name: str) -> None:
        if isinstance(f[name], h5py.Dataset):
            names.append(name)

    f.visit(visit)
    return names


class HDF5Dataset(Dataset):
    """Samples ``(x[i], y[i])`` (or ``x[i]`` alone) from the HDF5 datasets named ``x`` and ``y``.

    Args:
        path: the HDF5 file.
        x: the name (path inside the file, e.g. ``"features"`` or ``"train/images"``) of the inputs;
            their first axis indexes the samples.
        y: the name of the targets (same first axis), or None for inputs only.

    Values keep their stored dtype (convert them in a ``transform`` or in the model); the file is
    opened on first access, once per thread, and stays open until :meth:`close`.

    Example::

        data = rb.data.datasets.HDF5Dataset("showers.h5", x="energy", y="label")
        loader = rb.data.DataLoader(data, batch_size=64, shuffle=True, num_workers=2)
    """

    batched_indexing = True

    def __init__(self, path: str | os.PathLike, x: str, y: str | None = None) -> None:
        h5py = _require_h5py()
        self.path = os.fspath(path)
        self.keys = (x,) if y is None else (x, y)
        try:
            with h5py.File(self.path, "r") as f:
                shapes = []
                for key in self.keys:
                    if key not in f or not isinstance(f[key], h5py.Dataset):
                        names = _dataset_names(f, h5py)
                        raise ValueError(f"HDF5Dataset: '{self.path}' has no dataset '{key}' "
                                         f"(datasets: {', '.join(names) or 'none'})")
                    shapes.append(f[key].shape)
        except OSError as exc:
            raise ValueError(f"HDF5Dataset: cannot open '{self.path}' as HDF5: {exc}") from None
        if any(len(s) == 0 for s in shapes):
            raise ValueError(f"HDF5Dataset: datasets {self.keys} need a first (sample) axis, got shapes {shapes}")
        if len({s[0] for s in shapes}) != 1:
            raise ValueError(f"HDF5Dataset: '{x}' and '{y}' differ in length: shapes {shapes[0]} and {shapes[1]}")
        self.shapes = tuple(shapes)
        self._length = int(shapes[0][0])
        self._local = threading.local()

    def _datasets(self) -> tuple[Any, ...]:
        handles = getattr(self._local, "datasets", None)
        if handles is None:
            f = _require_h5py().File(self.path, "r")
            self._local.file = f
            handles = self._local.datasets = tuple(f[k] for k in self.keys)
        return handles

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index: Any) -> Any:
        datasets = self._datasets()
        if isinstance(index, (int, np.integer)):
            i = int(index)
            if not -self._length <= i < self._length:
                raise IndexError(f"HDF5Dataset: index {i} is out of range for {self._length} samples")
            i %= self._length
            out = tuple(d[i] for d in datasets)
        else:
            out = tuple(self._read_rows(d, np.asarray(index, dtype=np.int64)) for d in datasets)
        return out[0] if len(out) == 1 else out

    def _read_rows(self, dataset: Any, index: np.ndarray) -> np.ndarray:
        if index.size == 0:
            return np.empty((0,) + dataset.shape[1:], dtype=dataset.dtype)
        if index.min() < -self._length or index.max() >= self._length:
            raise IndexError(f"HDF5Dataset: indices out of range for {self._length} samples")
        index = index % self._length
        rows, inverse = np.unique(index, return_inverse=True)
        first, last = int(rows[0]), int(rows[-1])
        if last - first + 1 <= 2 * rows.size:  # dense: one contiguous read, then pick
            block = dataset[first:last + 1]
            return block[index - first]
        return dataset[rows][inverse.reshape(-1)]

    def close(self) -> None:
        """Close this thread's handle on the file (it reopens on the next access)."""
        f = getattr(self._local, "file", None)
        if f is not None:
            f.close()
        self._local = threading.local()

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}: {s}" for k, s in zip(self.keys, self.shapes))
        return f"HDF5Dataset('{self.path}', {fields})"


__all__ = ["HDF5Dataset"]
