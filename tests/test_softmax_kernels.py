"""Softmax and log-softmax on oneDNN's softmax primitive, broadcast gradients into the oneDNN
kernels, and the matmul primitive's refusal of its reference loop: values and gradients against
PyTorch, with checks that the kernel meant to run did."""

from __future__ import annotations

import numpy as np
import pytest

import rosenblatt as rb
import rosenblatt.nn.functional as F
from rosenblatt.kernels import activation as act

torch = pytest.importorskip("torch")
rng = np.random.default_rng(11)


def _spy(monkeypatch, module, names):
    calls = []
    for name in names:
        real = getattr(module, name)
        monkeypatch.setattr(module, name, lambda *a, _real=real, _name=name, **k: calls.append(_name)
                            or _real(*a, **k))
    return calls


def _softmax_pair(x: np.ndarray, g: np.ndarray, axis: int, log: bool):
    rx, tx = rb.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    ry = (rb.log_softmax if log else rb.softmax)(rx, axis)
    ty = (torch.log_softmax if log else torch.softmax)(tx, axis)
    ry.backward(rb.tensor(g))
    ty.backward(torch.tensor(g))
    return (ry.numpy(), rx.grad.numpy()), (ty.detach().numpy(), tx.grad.numpy())


@pytest.mark.parametrize("log", [False, True])
@pytest.mark.parametrize("shape,axis", [((64, 128), 1), ((64, 128), 0), ((8, 16, 64), 1), ((16, 32, 16), -1),
                                        ((4096, 3), 1), ((2, 3, 40, 50), 2)])
def test_softmax_matches_pytorch_on_both_kernel_sets(kernel_set, monkeypatch, shape, axis, log):
    from rosenblatt.kernels.onednn import softmax as dnn

    calls = _spy(monkeypatch, dnn, ["forward", "backward"])
    x = (rng.standard_normal(shape) * 4).astype(np.float32)
    g = rng.standard_normal(shape).astype(np.float32)
    (y, gx), (ty, tgx) = _softmax_pair(x, g, axis, log)
    # log-softmax: x - max - log(sum) is exact to a few ulp of the row's largest |x| (16 here: 2e-6)
    np.testing.assert_allclose(y, ty, rtol=1e-5, atol=1e-5 if log else 2e-6)
    np.testing.assert_allclose(gx, tgx, rtol=1e-4, atol=2e-5)
    assert y.dtype == gx.dtype == np.float32
    assert calls == (["forward", "backward"] if kernel_set == "onednn" else [])


@pytest.mark.parametrize("log", [False, True])
def test_rows_with_nan_or_inf_are_nan_throughout_as_in_pytorch(onednn, log):
    x = rng.standard_normal((64, 128)).astype(np.float32)
    x[0, :5] = -np.inf  # some -inf: zero probability, finite elsewhere
    x[1] = -np.inf  # all -inf: NaN row
    x[2, 0] = np.inf
    x[3, 7] = np.nan
    x[4, :2] = np.inf
    x[5, :2] = 1e38, -1e38
    g = np.ones_like(x)
    (y, gx), (ty, tgx) = _softmax_pair(x, g, 1, log)
    for ours, theirs in ((y, ty), (gx, tgx)):
        np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs))
        finite = ~np.isnan(theirs)
        np.testing.assert_allclose(ours[finite], theirs[finite], rtol=1e-5, atol=2e-6)
    assert np.isnan(y[1:5]).all() and not np.isnan(y[[0, 5]]).any()


@pytest.mark.parametrize("log", [False, True])
def test_nan_in_the_upstream_gradient_spreads_over_its_row_as_in_pytorch(onednn, log):
    x = rng.standard_normal((64, 128)).astype(np.float32)
    g = rng.standard_normal((64, 128)).astype(np.float32)
    g[3, 9] = np.nan
    (_, gx), (_, tgx) = _softmax_pair(x, g, 1, log)
    np.testing.assert_array_equal(np.isnan(gx), np.isnan(tgx))
    assert np.isnan(gx[3]).all()


def test_small_and_float64_softmax_stay_on_numpy(onednn, monkeypatch):
    from rosenblatt.kernels.onednn import softmax as dnn

    calls = _spy(monkeypatch, dnn, ["forward", "backward"])
    small = rng.standard_normal((8, act.SOFTMAX_ONEDNN_MIN // 16)).astype(np.float32)
    y = act.softmax(small, 1)
    np.testing.assert_allclose(y, torch.softmax(torch.tensor(small), 1).numpy(), rtol=1e-6, atol=1e-7)
    act.softmax(rng.standard_normal((64, 128)), 1)  # float64 (gradient checks)
    assert calls == []


def test_softmax_gradcheck_float64():
    x = rb.tensor(rng.standard_normal((3, 5)), requires_grad=True)
    assert rb.autograd.gradcheck(lambda t: rb.softmax(t, 1), (x,))
    assert rb.autograd.gradcheck(lambda t: rb.log_softmax(t, 0), (x,))


def test_gelu_gradient_of_a_sum_runs_on_onednn(onednn, monkeypatch):
    """``y.sum().backward()`` hands the GELU a broadcast gradient (zero strides). It is copied into
    the activation's layout for the oneDNN kernel instead of sending the layer to NumPy's erf."""
    from rosenblatt.kernels.onednn import eltwise

    calls = _spy(monkeypatch, eltwise, ["backward"])
    x = rng.standard_normal((32, 64, 64)).astype(np.float32)
    rx, tx = rb.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    F.gelu(rx).sum().backward()
    torch.nn.functional.gelu(tx).sum().backward()
    np.testing.assert_allclose(rx.grad.numpy(), tx.grad.numpy(), rtol=1e-5, atol=1e-6)
    assert calls == ["backward"]


def test_channels_last_activation_takes_a_broadcast_gradient(onednn):
    from rosenblatt.kernels.onednn import library as L

    y = L.empty_channels_last((4, 16, 32, 32))
    y[...] = rng.standard_normal(y.shape)
    g = np.broadcast_to(np.float32(2.0), y.shape)
    same = L.same_layout(g, y)
    assert same.strides == y.strides
    np.testing.assert_array_equal(same, g)


def test_attention_backward_from_a_sum_is_not_the_reference_loop(onednn):
    """A broadcast gradient reaching the attention products made oneDNN pick its reference matmul
    (0.38 s instead of about 2 ms); such operands are copied first, and no matmul primitive runs
    the reference implementation."""
    from rosenblatt.kernels.onednn import library as L
    from rosenblatt.kernels.onednn import matmul

    q, k, v = (rng.standard_normal((4, 2, 16, 8)).astype(np.float32) for _ in range(3))
    rq, rk, rv = (rb.tensor(a, requires_grad=True) for a in (q, k, v))
    tq, tk, tv = (torch.tensor(a, requires_grad=True) for a in (q, k, v))
    F.scaled_dot_product_attention(rq, rk, rv).sum().backward()
    torch.nn.functional.scaled_dot_product_attention(tq, tk, tv).sum().backward()
    for ours, theirs in ((rq, tq), (rk, tk), (rv, tv)):
        np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-4, atol=1e-5)
    out = np.empty((4, 2, 16, 16), np.float32)
    assert matmul.matmul(np.broadcast_to(np.float32(1), (4, 2, 16, 8)), k.swapaxes(-1, -2), out)
    np.testing.assert_allclose(out, np.broadcast_to(k.sum(-1)[:, :, None, :], out.shape), rtol=1e-5)
    impls = [p.impl() for key, p in L.cache_items() if key[0] == "matmul" and p]
    assert impls and not any(i.startswith("ref") for i in impls)


@pytest.mark.parametrize("name", ["gelu", "silu"])
def test_mid_size_gelu_and_silu_run_on_onednn(onednn, monkeypatch, name):
    """From a few thousand elements (a batch of 128 by 32 features) the GELU and SiLU and their
    gradients run on oneDNN, with PyTorch's values; tiny arrays stay on NumPy."""
    from rosenblatt.kernels.onednn import eltwise

    calls = _spy(monkeypatch, eltwise, ["forward", "backward"])
    for shape, expected in (((128, 32), ["forward", "backward"] if name == "gelu" else ["backward"]), ((4, 8), [])):
        calls.clear()
        x = rng.standard_normal(shape).astype(np.float32)
        g = rng.standard_normal(shape).astype(np.float32)
        rx, tx = rb.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        y = getattr(F, name)(rx)
        y.backward(rb.tensor(g))
        assert calls == expected
        ty = getattr(torch.nn.functional, name)(tx)
        ty.backward(torch.tensor(g))
        np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(rx.grad.numpy(), tx.grad.numpy(), rtol=1e-5, atol=1e-6)
