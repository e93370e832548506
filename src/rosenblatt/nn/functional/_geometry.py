"""Checked layer geometries, remembered by their arguments.

Convolution and pooling check their arguments (stride, padding, dilation, ...) and derive the
output size on every call. A layer passes the same plain values each time, so the checked result is
remembered under those values; arguments of any other type (floats, bools, lists, tensors) skip the
memory and get the full checks and error messages every time.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")


def plain(value: Any) -> bool:
    """``None``, an int (not a bool), a string or a tuple of ints: hashable, and equal only to itself."""
    t = type(value)
    return value is None or t is int or t is str or (t is tuple and all(type(v) is int for v in value))


class GeometryCache:
    """A bounded map from plain argument tuples to checked geometries."""

    def __init__(self, capacity: int = 1024) -> None:
        self.capacity = capacity
        self._store: dict[Hashable, Any] = {}

    def get(self, key: tuple, cacheable: bool, build: Callable[[], T]) -> T:
        """The geometry for ``key``: remembered when ``cacheable``, else built (and checked) anew."""
        geom = self._store.get(key) if cacheable else None
        if geom is None:
            geom = build()
            if cacheable:
                if len(self._store) >= self.capacity:
                    self._store.clear()
                self._store[key] = geom
        return geom
