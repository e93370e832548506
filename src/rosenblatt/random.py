"""One random generator for everything (initialisation, dropout, shuffling, augmentation).

``rb.manual_seed(s)`` makes a run bit-for-bit reproducible on the CPU. Numbers are drawn on the CPU
with NumPy's PCG64 generator, so a seed gives the same values on every backend.
"""

from __future__ import annotations

from typing import Any

import numpy as np

_DEFAULT_SEED = 0x5EED
_generator = np.random.Generator(np.random.PCG64(_DEFAULT_SEED))


def manual_seed(seed: int) -> np.random.Generator:
    """Reseed rosenblatt's generator; returns it."""
    global _generator
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"manual_seed: expected a non-negative integer, got {seed!r}")
    _generator = np.random.Generator(np.random.PCG64(int(seed)))
    return _generator


seed = manual_seed


def generator() -> np.random.Generator:
    """The generator itself (for code that needs NumPy's full random API)."""
    return _generator


def get_rng_state() -> dict[str, Any]:
    """The generator's state as a JSON-serialisable dict (saved in checkpoints)."""
    return _generator.bit_generator.state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore a state returned by :func:`get_rng_state`."""
    _generator.bit_generator.state = state


def _float_dtype(dtype: Any) -> np.dtype:
    from rosenblatt.core import get_default_dtype

    dtype = np.dtype(dtype) if dtype is not None else get_default_dtype()
    if dtype.kind != "f":
        raise TypeError(f"expected a floating dtype, got {dtype}")
    return dtype


def uniform_array(low: float, high: float, shape: tuple[int, ...], dtype: Any = None) -> np.ndarray:
    """U(low, high) samples as a NumPy array of ``dtype``."""
    dtype = _float_dtype(dtype)
    draw_dtype = dtype if dtype in (np.float32, np.float64) else np.float32
    out = _generator.random(shape, dtype=draw_dtype)
    if low != 0.0 or high != 1.0:
        out *= high - low
        out += low
    return out.astype(dtype, copy=False)


def normal_array(mean: float, std: float, shape: tuple[int, ...], dtype: Any = None) -> np.ndarray:
    """N(mean, std²) samples as a NumPy array of ``dtype``."""
    dtype = _float_dtype(dtype)
    draw_dtype = dtype if dtype in (np.float32, np.float64) else np.float32
    out = _generator.standard_normal(shape, dtype=draw_dtype)
    if std != 1.0:
        out *= std
    if mean != 0.0:
        out += mean
    return out.astype(dtype, copy=False)


def bernoulli_mask(keep: float, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """A 0/1 array where each entry is 1 with probability ``keep`` (dropout masks)."""
    return (_generator.random(shape, dtype=np.float32) < keep).astype(dtype)


def permutation(n: int) -> np.ndarray:
    """A random permutation of ``range(n)``."""
    return _generator.permutation(n)
