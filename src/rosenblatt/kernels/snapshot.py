"""Bit-exact snapshots of arrays: has anything been written into them since?

Inference fast paths remember what they derived from a model's parameters: batch norm folded into
the convolution before it, weights reordered into a oneDNN layout. Such a cache must be dropped as
soon as a parameter changes. A version counter sees every write made through rosenblatt (optimiser
steps, ``load_state_dict``, ``copy_``, indexing assignment), but not a write into the array itself:
``p.data -= lr * p.grad.data``, ``w.data[mask] = 0``, ``np.clip(w.data, -c, c, out=w.data)``. Those
are common in hand-written training loops and pruning experiments, so the caches also compare the
arrays' bits with a copy taken when the cache was filled. That costs one read of the parameters per
call (ResNet-20: 1 MB, about 0.1 ms), where recomputing the derived weights cost 0.7 ms.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

# Arrays up to this many bytes are kept and compared as ``bytes`` (one memcmp, the least overhead);
# bigger ones as an array compared through an integer view (vectorised, bit for bit).
_BYTES_MAX = 64 * 1024


def _bits(a: np.ndarray) -> np.ndarray:
    """``a`` viewed as unsigned integers of its item size (bitwise comparison: NaN equals itself,
    -0.0 differs from 0.0)."""
    return a.view(f"u{a.itemsize}") if a.itemsize in (1, 2, 4, 8) else a


class Snapshot:
    """The arrays (``None`` allowed) of a cache's sources, and a copy of their contents."""

    __slots__ = ("arrays", "copies")

    def __init__(self, arrays: Sequence[Any]) -> None:
        self.arrays = tuple(arrays)
        self.copies = tuple(None if a is None else (a.tobytes() if a.nbytes <= _BYTES_MAX else _bits(a).copy())
                            for a in self.arrays)

    def holds(self, arrays: Sequence[Any]) -> bool:
        """True when ``arrays`` are the same objects as at the snapshot, holding the same bits."""
        if len(arrays) != len(self.arrays):
            return False
        for a, old, copy in zip(arrays, self.arrays, self.copies):
            if a is not old:
                return False
            if a is None:
                continue
            if type(copy) is bytes:
                if a.tobytes() != copy:
                    return False
            elif not np.array_equal(_bits(a), copy):
                return False
        return True


__all__ = ["Snapshot"]
