"""``ROOTDataset``: samples from a TTree of a ROOT file, the format of high-energy-physics ntuples.

Read with ``uproot`` (pure Python, no ROOT installation) and ``awkward``. A branch holds either one
number per event (a jet's mass) or a variable-length list per event (the momenta of its
constituents). Lists are padded with zeros to ``max_len`` and come with a boolean mask that is
True at the real entries, so a batch is a dense array a model can use (mask the padding in the
pooling, or let the zeros through).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from rosenblatt.data.dataset import TensorDataset


def _require_uproot() -> tuple[Any, Any]:
    try:
        import awkward
        import uproot
    except ImportError:
        raise ImportError("ROOTDataset needs uproot and awkward: pip install 'rosenblatt[root]' "
                          "(or pip install uproot awkward)") from None
    return uproot, awkward


class ROOTDataset(TensorDataset):
    """Samples from the branches ``features`` (and ``target``) of the TTree ``tree`` in a ROOT file.

    What a sample holds depends on the kinds of the feature branches:

    - only flat branches (one number per event): ``(x, y)`` with ``x`` of shape ``(F,)``;
    - only jagged branches (a list per event, the same length in every branch of one event, e.g.
      the ``pt``, ``eta``, ``phi`` of a jet's constituents): ``(x, mask, y)`` with ``x`` of shape
      ``(max_len, F)`` and ``mask`` ``(max_len,)``, True at the real entries;
    - both: ``(x, mask, scalars, y)``, the flat branches in ``scalars`` ``(F_flat,)``.

    ``y`` is left out without a ``target``. Features are float32; the target keeps integers as
    int64 (class labels) and is float32 otherwise.

    Args:
        path: the ROOT file.
        tree: the TTree's name (``"events"``, or ``"dir/tree"``).
        features: branch names (a single name is one feature).
        target: a flat branch with the label or value to predict.
        max_len: the padded length of jagged branches (longer lists are cut); None takes the
            longest list in the file.

    The branches are read into memory when the dataset is made (``uproot`` reads whole baskets;
    for ntuples larger than memory, write the columns to HDF5 and use ``HDF5Dataset``).

    Attributes:
        arrays: the padded arrays, in sample order; ``feature_names``, ``jagged_names``,
            ``scalar_names``: which branch went where.
    """

    def __init__(self, path: str | os.PathLike, tree: str, features: str | Sequence[str], target: str | None = None,
                 max_len: int | None = None) -> None:
        uproot, ak = _require_uproot()
        self.path = os.fspath(path)
        features = [features] if isinstance(features, str) else list(features)
        if not features:
            raise ValueError("ROOTDataset: expected at least one feature branch, got none")
        if max_len is not None and (not isinstance(max_len, (int, np.integer)) or max_len < 1):
            raise ValueError(f"ROOTDataset: max_len must be a positive int or None, got {max_len!r}")
        try:
            file = uproot.open(self.path)
        except (OSError, ValueError) as exc:
            raise ValueError(f"ROOTDataset: cannot open '{self.path}' as a ROOT file: {exc}") from None
        with file:
            if tree not in file:
                trees = [k.split(";")[0] for k, v in file.items() if hasattr(v, "num_entries")]
                raise ValueError(f"ROOTDataset: '{self.path}' has no tree '{tree}' (trees: {', '.join(trees) or 'none'})")
            ttree = file[tree]
            wanted = features + ([target] if target is not None else [])
            missing = [b for b in wanted if b not in ttree.keys()]
            if missing:
                raise ValueError(f"ROOTDataset: tree '{tree}' has no branch {', '.join(map(repr, missing))} "
                                 f"(branches: {', '.join(ttree.keys())})")
            columns = ttree.arrays(wanted, library="ak")
        jagged = [name for name in features if columns[name].ndim > 1]
        scalars = [name for name in features if columns[name].ndim == 1]
        arrays: list[np.ndarray] = []
        if jagged:
            counts = np.asarray(ak.num(columns[jagged[0]], axis=1))
            for name in jagged[1:]:
                if not np.array_equal(np.asarray(ak.num(columns[name], axis=1)), counts):
                    raise ValueError(f"ROOTDataset: jagged branches '{jagged[0]}' and '{name}' differ in length in "
                                     "some events; branches padded together must describe the same objects")
            length = int(counts.max(initial=0)) if max_len is None else int(max_len)
            length = max(length, 1)
            padded = [ak.to_numpy(ak.fill_none(ak.pad_none(columns[name], length, axis=1, clip=True), 0.0))
                      .astype(np.float32) for name in jagged]
            arrays.append(np.stack(padded, axis=-1))
            arrays.append(np.arange(length)[None, :] < np.minimum(counts, length)[:, None])
        if scalars:
            arrays.append(np.stack([ak.to_numpy(columns[name]).astype(np.float32) for name in scalars], axis=-1))
        if target is not None:
            if columns[target].ndim != 1:
                raise ValueError(f"ROOTDataset: target '{target}' must be a flat branch (one value per event)")
            values = ak.to_numpy(columns[target])
            integer = values.dtype.kind in "iub"
            arrays.append(values.astype(np.int64 if integer else np.float32))
        self.tree, self.max_len = tree, (arrays[0].shape[1] if jagged else None)
        self.feature_names, self.jagged_names, self.scalar_names = features, jagged, scalars
        self.target_name = target
        super().__init__(*arrays)

    def __repr__(self) -> str:
        return (f"ROOTDataset('{self.path}', tree='{self.tree}', {len(self)} events, jagged={self.jagged_names}, "
                f"flat={self.scalar_names}, max_len={self.max_len}, target={self.target_name!r})")


__all__ = ["ROOTDataset"]
