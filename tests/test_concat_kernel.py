"""``rb.cat`` on oneDNN's concat primitive: large float32 joins along every axis give NumPy's exact
result and PyTorch's gradients; other inputs, and shapes met for the first time, run on NumPy."""

from __future__ import annotations

import numpy as np
import pytest

import rosenblatt as rb
from rosenblatt.core import constant
from rosenblatt.kernels.onednn import concat
from rosenblatt.kernels.onednn import library as L
from tests.parity import check_op, requires_torch


def _built(shapes, axis) -> bool:
    return any(k == ("cat", shapes, axis) for k, _ in L.cache_items())


@pytest.mark.parametrize("axis", [0, 1, 2, 3])
def test_large_joins_are_numpy_exact_on_every_axis(onednn, axis):
    rng = np.random.default_rng(axis)
    shapes = []
    for i, extra in enumerate((3, 5, 2)):
        shape = [16, 12, 16, 32]
        shape[axis] = extra * (i + 1) * 8
        shapes.append(tuple(shape))
    arrays = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    assert sum(a.size for a in arrays) >= concat.MIN_ELEMENTS
    L.clear_cache()
    concat._seen.clear()
    expected = np.concatenate(arrays, axis=axis)
    for call in range(3):
        y = rb.cat([rb.tensor(a) for a in arrays], axis=axis).numpy()
        assert y.dtype == np.float32 and y.shape == expected.shape
        np.testing.assert_array_equal(y, expected)
        # the first call with these shapes runs on NumPy, the next ones on oneDNN's primitive
        assert _built(tuple(shapes), axis) == (call > 0)


def _channels_last(a):
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


@pytest.mark.parametrize("axis", [0, 1, 2, 3])
def test_channels_last_joins_stay_channels_last(onednn, axis):
    """Channels-last activations (what the convolutions hand each other) are joined in their
    (N, H, W, C) memory, and the result is channels-last as well."""
    rng = np.random.default_rng(10 + axis)
    shapes = [[16, 24, 16, 32], [16, 24, 16, 32]]
    shapes[1][axis] = 16
    arrays = [_channels_last(rng.standard_normal(s).astype(np.float32)) for s in shapes]
    assert sum(a.size for a in arrays) >= concat.MIN_ELEMENTS
    concat._seen.clear()
    expected = np.concatenate(arrays, axis=axis)
    for _ in range(2):  # NumPy's join, then the primitive's
        y = rb.cat([constant(a) for a in arrays], axis=axis).numpy()  # (rb.tensor would copy to C order)
        np.testing.assert_array_equal(y, expected)
    assert L.channels_last(y) is not None and not y.flags.c_contiguous
    nhwc = tuple(tuple(np.asarray(s)[[0, 2, 3, 1]]) for s in shapes)
    assert _built(nhwc, (0, 3, 1, 2)[axis])


def test_declined_inputs_run_on_numpy(onednn):
    rng = np.random.default_rng(1)
    a = rng.standard_normal((64, 16, 32, 32)).astype(np.float32)
    for arrays in ([a, a.astype(np.float64)],  # another dtype
                   [a.transpose(0, 2, 3, 1), a.transpose(0, 2, 3, 1)],  # not C-contiguous
                   [a[:, :, :2, :2], a[:, :, :2, :2]],  # small (and strided)
                   [a, a[:, :0]],  # an empty input
                   [a, _channels_last(a)]):  # plain and channels-last arrays mixed
        for _ in range(2):
            assert concat.concatenate(arrays, 1) is None
        np.testing.assert_array_equal(rb.cat([constant(x) for x in arrays], axis=1).numpy(),
                                      np.concatenate(arrays, axis=1))


@requires_torch
def test_gradients_match_torch(onednn):
    import torch

    rng = np.random.default_rng(2)
    arrays = [rng.standard_normal((16, c, 32, 32)).astype(np.float32) for c in (8, 24)]
    concat._seen.clear()
    for _ in range(2):  # the second run is the primitive's
        check_op(lambda a, b: rb.cat([a, b], axis=1), lambda a, b: torch.cat([a, b], 1), arrays)
    assert _built(((16, 8, 32, 32), (16, 24, 32, 32)), 1)
