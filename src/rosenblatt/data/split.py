"""Splitting data: ``random_split``, ``train_val_test_split`` (optionally stratified), ``KFold``."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from rosenblatt.data.dataset import Dataset, Subset, to_numpy


def _rng(seed: int | None) -> np.random.Generator:
    """A private generator for ``seed``, or rosenblatt's global one when ``seed`` is None."""
    if seed is None:
        from rosenblatt.random import generator

        return generator()
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"expected seed to be a non-negative integer or None, got {seed!r}")
    return np.random.Generator(np.random.PCG64(int(seed)))


def _counts_from_fractions(n: int, fractions: Sequence[float], where: str) -> list[int]:
    total = float(sum(fractions))
    if any(f < 0 for f in fractions) or abs(total - 1.0) > 1e-6:
        raise ValueError(f"{where}: fractions must be non-negative and sum to 1, got {list(fractions)}")
    counts = [int(np.floor(n * f)) for f in fractions]
    for i in range(n - sum(counts)):  # hand out the remainder round-robin, as PyTorch does
        counts[i % len(counts)] += 1
    return counts


def random_split(dataset: Dataset, lengths: Sequence[int | float], seed: int | None = None) -> list[Subset]:
    """Split ``dataset`` into non-overlapping random subsets of the given lengths (or fractions).

    Args:
        dataset: any dataset.
        lengths: sample counts summing to ``len(dataset)``, or fractions summing to 1.
        seed: seed of the permutation (None: rosenblatt's global generator).
    """
    n = len(dataset)
    if all(isinstance(v, (int, np.integer)) for v in lengths):
        counts = [int(v) for v in lengths]
        if sum(counts) != n or any(c < 0 for c in counts):
            raise ValueError(f"random_split: lengths must be non-negative and sum to len(dataset)={n}, got {counts}")
    else:
        counts = _counts_from_fractions(n, [float(v) for v in lengths], "random_split")
    order = _rng(seed).permutation(n)
    bounds = np.cumsum([0] + counts)
    return [Subset(dataset, order[bounds[i]:bounds[i + 1]]) for i in range(len(counts))]


def _stratified_order(labels: np.ndarray, sizes: list[int], rng: np.random.Generator) -> list[np.ndarray]:
    """Indices for each part so that every class keeps its proportion in every part."""
    classes, inverse = np.unique(labels, return_inverse=True)
    n = labels.shape[0]
    fractions = np.asarray(sizes, dtype=np.float64) / n
    parts: list[list[np.ndarray]] = [[] for _ in sizes]
    for c in range(len(classes)):
        members = rng.permutation(np.flatnonzero(inverse == c))
        # Largest-remainder rounding of this class's share of every part.
        exact = fractions * members.shape[0]
        take = np.floor(exact).astype(np.int64)
        leftover = members.shape[0] - take.sum()
        take[np.argsort(-(exact - take), kind="stable")[:leftover]] += 1
        bounds = np.cumsum(np.concatenate([[0], take]))
        for i in range(len(sizes)):
            parts[i].append(members[bounds[i]:bounds[i + 1]])
    return [rng.permutation(np.concatenate(p)) for p in parts]


def train_val_test_split(*arrays: Any, val: float | int = 0.1, test: float | int = 0.1,
                         stratify: Any = None, seed: int | None = None) -> tuple[tuple[np.ndarray, ...], ...]:
    """Shuffle arrays together and cut them into train, validation and test parts.

    Args:
        *arrays: arrays with the same length (e.g. ``x, y``).
        val, test: size of the validation and test parts, as a fraction of the samples (float in
            [0, 1)) or a count (int). ``0`` gives an empty part.
        stratify: class labels (an array of the same length) whose proportions every part keeps;
            ``True`` means the last array (``y``). None: a plain random split.
        seed: seed of the shuffle (None: rosenblatt's global generator).

    Returns:
        ``(train, val, test)``, each a tuple of arrays in the order given, e.g.
        ``(x_tr, y_tr), (x_va, y_va), (x_te, y_te) = train_val_test_split(x, y, seed=0)``.
    """
    if not arrays:
        raise ValueError("train_val_test_split: expected at least one array")
    arrays = tuple(to_numpy(a) for a in arrays)
    n = arrays[0].shape[0]
    if any(a.shape[0] != n for a in arrays):
        raise ValueError(f"train_val_test_split: arrays must have the same length, got {[a.shape[0] for a in arrays]}")

    def count(v: float | int, name: str) -> int:
        if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
            c = int(v)
        elif isinstance(v, float) and 0.0 <= v < 1.0:
            c = int(round(v * n))
        else:
            raise ValueError(f"train_val_test_split: {name} must be a fraction in [0, 1) or a count, got {v!r}")
        return c

    n_val, n_test = count(val, "val"), count(test, "test")
    if n_val < 0 or n_test < 0 or n_val + n_test >= n:
        raise ValueError(f"train_val_test_split: val ({n_val}) + test ({n_test}) must leave training samples out of {n}")
    sizes = [n - n_val - n_test, n_val, n_test]
    rng = _rng(seed)
    if stratify is not None and stratify is not False:
        labels = arrays[-1] if stratify is True else to_numpy(stratify)
        if labels.shape[0] != n:
            raise ValueError(f"train_val_test_split: stratify labels have length {labels.shape[0]}, expected {n}")
        if labels.ndim > 1:  # one-hot labels
            labels = labels.reshape(n, -1).argmax(axis=1)
        parts = _stratified_order(labels, sizes, rng)
    else:
        order = rng.permutation(n)
        parts = [order[:sizes[0]], order[sizes[0]:sizes[0] + sizes[1]], order[sizes[0] + sizes[1]:]]
    return tuple(tuple(a[p] for a in arrays) for p in parts)


class KFold:
    """K-fold cross-validation indices.

    ``for train_idx, val_idx in KFold(5, seed=0).split(n): ...`` gives five disjoint validation
    folds covering every sample once (fold sizes differ by at most one).

    Args:
        n_splits: number of folds (>= 2).
        shuffle: shuffle the samples before cutting the folds.
        seed: seed of the shuffle (None: rosenblatt's global generator).
    """

    def __init__(self, n_splits: int = 5, shuffle: bool = True, seed: int | None = None) -> None:
        if not isinstance(n_splits, (int, np.integer)) or n_splits < 2:
            raise ValueError(f"KFold: n_splits must be an integer >= 2, got {n_splits!r}")
        self.n_splits = int(n_splits)
        self.shuffle = shuffle
        self.seed = seed

    def split(self, data: Any) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(train_indices, val_indices)`` for each fold; ``data`` is a length or an array/dataset."""
        n = int(data) if isinstance(data, (int, np.integer)) else len(data)
        if n < self.n_splits:
            raise ValueError(f"KFold: cannot make {self.n_splits} folds out of {n} samples")
        order = _rng(self.seed).permutation(n) if self.shuffle else np.arange(n)
        sizes = np.full(self.n_splits, n // self.n_splits)
        sizes[: n % self.n_splits] += 1
        bounds = np.cumsum(np.concatenate([[0], sizes]))
        for k in range(self.n_splits):
            val_idx = order[bounds[k]:bounds[k + 1]]
            train_idx = np.concatenate([order[:bounds[k]], order[bounds[k + 1]:]])
            yield train_idx, val_idx

    def get_n_splits(self) -> int:
        """Number of folds."""
        return self.n_splits
