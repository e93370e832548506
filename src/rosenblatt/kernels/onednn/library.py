"""Finding and loading ``libdnnl`` (the ``onednn-cpu-gomp`` wheel) and the ctypes bindings."""

from __future__ import annotations


def load() -> tuple[bool, str]:
    """Load the library once; return ``(ok, reason)`` for :func:`rosenblatt.kernels.kernels`."""
    return False, "oneDNN bindings are not available in this build"
