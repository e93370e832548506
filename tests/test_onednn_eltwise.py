"""The oneDNN tanh kernels: the same values as NumPy's, taken only where they apply."""

from __future__ import annotations

import numpy as np
import pytest

import rosenblatt as rb
from rosenblatt import kernels
from rosenblatt.kernels import activation as act
from rosenblatt.kernels.onednn import library as L

ok, why = L.load()
pytestmark = pytest.mark.skipif(not ok, reason=f"oneDNN unavailable: {why}")
rng = np.random.default_rng(7)


def _spy(monkeypatch):
    from rosenblatt.kernels.onednn import eltwise

    calls = []
    for name in ("tanh", "tanh_grad"):
        real = getattr(eltwise, name)
        monkeypatch.setattr(eltwise, name, lambda *a, _real=real, _name=name: calls.append(_name) or _real(*a))
    return calls


@pytest.mark.parametrize("shape", [(64, 6, 28, 28), (3, 100_003)])
def test_tanh_and_its_gradient_match_numpy(onednn, monkeypatch, shape):
    calls = _spy(monkeypatch)
    x = (rng.standard_normal(shape) * 4).astype(np.float32)
    gy = rng.standard_normal(shape).astype(np.float32)
    y = act.tanh(x)
    gx = act.tanh_grad(gy, y)
    assert calls == ["tanh", "tanh_grad"]
    expected_y = np.tanh(x)
    np.testing.assert_allclose(y, expected_y, rtol=1e-6, atol=2e-7)
    np.testing.assert_allclose(gx, gy * (1 - y * y), rtol=1e-5, atol=1e-6)  # from the same y
    assert y.dtype == gx.dtype == np.float32 and y.shape == gx.shape == shape


def test_declined_cases_use_numpy(onednn, monkeypatch):
    from rosenblatt.kernels.onednn import eltwise

    big = rng.standard_normal((600, 600)).astype(np.float32)
    assert eltwise.tanh(big.T) is None  # not contiguous
    assert eltwise.tanh(big.astype(np.float64)) is None
    assert eltwise.tanh(big[:10]) is None  # below MIN_ELEMENTS
    assert eltwise.tanh_grad(big.T, big) is None
    assert eltwise.tanh_grad(big[:300], big) is None  # shapes differ
    calls = _spy(monkeypatch)
    np.testing.assert_allclose(act.tanh(big.T), np.tanh(big.T), rtol=1e-6)
    np.testing.assert_allclose(act.tanh(big.astype(np.float64)), np.tanh(big.astype(np.float64)))
    assert calls == ["tanh"]  # the float32 view is asked and declines; float64 is not asked


def test_tanh_layer_trains_the_same_on_both_kernel_sets():
    x = rng.standard_normal((64, 6, 28, 28)).astype(np.float32)
    grads = {}
    for name in ("numpy", "onednn"):
        previous = kernels.active()
        kernels.set_kernels(name)
        try:
            t = rb.tensor(x, requires_grad=True)
            (rb.tanh(t) * rb.tensor(x)).sum().backward()
            grads[name] = t.grad.numpy()
        finally:
            kernels.set_kernels(previous)
    # 1 - y² near |y| = 1 magnifies the last-bit differences of the two tanh implementations
    np.testing.assert_allclose(grads["onednn"], grads["numpy"], rtol=1e-4, atol=2e-5)


@pytest.mark.parametrize("relu", [False, True])
def test_residual_sum_in_place(onednn, relu):
    from rosenblatt.kernels.onednn import eltwise

    y = rng.standard_normal((8, 16, 32, 32)).astype(np.float32)
    r = rng.standard_normal(y.shape).astype(np.float32)
    expected = np.maximum(y + r, 0) if relu else y + r
    out = y.copy()
    assert eltwise.add_(out, r, relu)
    np.testing.assert_array_equal(out, expected)
    declined = y.copy()
    for other in (r[:, :8], r.astype(np.float64), r.transpose(0, 1, 3, 2).copy().transpose(0, 1, 3, 2), declined):
        assert not eltwise.add_(declined, other, relu)  # other shape, dtype, layout, or itself
    np.testing.assert_array_equal(declined, y)


def test_relu_gradient_matches_numpy(onednn, monkeypatch):
    calls = _spy(monkeypatch)
    from rosenblatt.kernels.onednn import eltwise

    real = eltwise.relu_grad
    monkeypatch.setattr(eltwise, "relu_grad", lambda *a: calls.append("relu_grad") or real(*a))
    y = np.maximum(rng.standard_normal((64, 32, 16, 16)).astype(np.float32), 0)
    gy = rng.standard_normal(y.shape).astype(np.float32)
    np.testing.assert_array_equal(act.relu_grad(gy, y), gy * (y > 0))
    assert calls == ["relu_grad"]
    small = y[:1, :1]
    np.testing.assert_array_equal(act.relu_grad(gy[:1, :1], small), gy[:1, :1] * (small > 0))
    assert calls == ["relu_grad"]  # below the size limit: NumPy, not asked


def test_relu_matches_numpy(onednn, monkeypatch):
    from rosenblatt.kernels.onednn import eltwise

    calls = []
    real = eltwise.relu
    monkeypatch.setattr(eltwise, "relu", lambda *a: calls.append("relu") or real(*a))
    x = rng.standard_normal((64, 32, 16, 16)).astype(np.float32)
    x.reshape(-1)[:4] = [np.inf, -np.inf, 0.0, -0.0]
    y = act.relu(x)
    assert calls == ["relu"] and y.dtype == np.float32 and y.shape == x.shape
    np.testing.assert_array_equal(y, np.maximum(x, 0))
    small = x[:1, :1]
    np.testing.assert_array_equal(act.relu(small), np.maximum(small, 0))
    np.testing.assert_array_equal(act.relu(x.transpose(0, 1, 3, 2)), np.maximum(x.transpose(0, 1, 3, 2), 0))
    assert calls == ["relu", "relu"]  # below the size limit NumPy runs; a strided view is asked and declines


def test_sum_of_two_big_arrays_matches_numpy(onednn, monkeypatch):
    """``a + b`` of two large float32 tensors runs on oneDNN (the residual sum of a hand-written
    block); the result is the same correctly rounded sum, and its gradient passes through."""
    from rosenblatt.kernels.onednn import eltwise

    calls = []
    real = eltwise.sum_of
    monkeypatch.setattr(eltwise, "sum_of", lambda *a: calls.append("sum_of") or real(*a))
    a = rng.standard_normal((16, 16, 32, 32)).astype(np.float32)
    b = rng.standard_normal(a.shape).astype(np.float32)
    ta, tb = rb.tensor(a, requires_grad=True), rb.tensor(b, requires_grad=True)
    y = ta + tb
    assert calls == ["sum_of"]
    np.testing.assert_array_equal(y.numpy(), a + b)
    (y * 2.0).sum().backward()
    np.testing.assert_array_equal(ta.grad.numpy(), np.full(a.shape, 2.0, np.float32))
    np.testing.assert_array_equal(tb.grad.numpy(), np.full(a.shape, 2.0, np.float32))
    # declined: broadcasting, another dtype, a strided view (NumPy adds them)
    np.testing.assert_array_equal((ta + rb.tensor(b[:1])).numpy(), a + b[:1])
    assert real(a, b.astype(np.float64)) is None and real(a, b.transpose(0, 1, 3, 2)) is None
    assert real(a[:1, :1], b[:1, :1]) is None  # below MIN_ELEMENTS


def test_scaled_sum_in_place(onednn):
    """``p = beta * p + alpha * x`` (the optimisers' large updates): NumPy's values, two primitives
    (``beta == 1`` and any other) for every pair of scales, and the declined cases leave ``p`` alone."""
    from rosenblatt.kernels.onednn import eltwise

    p = rng.standard_normal((300, 500)).astype(np.float32)
    x = rng.standard_normal(p.shape).astype(np.float32)
    built = len(L.cache_items())
    for alpha, beta in ((-0.01, 1.0), (0.5, 0.9), (-1e-3, 0.999), (0.25, 1.0)):
        out = p.copy()
        assert eltwise.axpby(out, x, alpha, beta)
        np.testing.assert_allclose(out, np.float32(beta) * p + np.float32(alpha) * x, rtol=1e-6, atol=1e-6)
    assert len(L.cache_items()) == built + 2
    small = p[:10].copy()
    for target, other in ((small, x[:10]), (p.astype(np.float64), x.astype(np.float64)), (p.T, x.T), (p, p)):
        before = target.copy()
        assert not eltwise.axpby(target, other, 0.5)  # too small, float64, not contiguous, aliased
        np.testing.assert_array_equal(target, before)
