"""The GEMM entry point (``rosenblatt.kernels.gemm``): oneDNN's sgemm against ``numpy.matmul``.

Every layout the kernel takes without a copy (contiguous, transposed views, column slices,
row-strided outputs), accumulation, stacks and flattened leading axes, and the inputs it must hand
to NumPy unchanged (float64, aliasing outputs, long stacks, mismatched shapes).
"""

from __future__ import annotations

import numpy as np
import pytest

from rosenblatt import kernels
from rosenblatt.kernels import gemm
from rosenblatt.kernels.onednn import library as L

ONEDNN_OK, ONEDNN_WHY = L.load()
rng = np.random.default_rng(3)


@pytest.fixture
def kernel_set(kernel_set, monkeypatch):
    """Each kernel set (tests/conftest.py); under oneDNN the small test products go to oneDNN too."""
    monkeypatch.setattr(gemm, "_min_macs", 0)
    return kernel_set


def f32(*shape):
    return rng.standard_normal(shape).astype(np.float32)


def views(m, k):
    """The same (m, k) values laid out four ways."""
    base = f32(m, k)
    wide = np.zeros((m, k + 5), np.float32)
    wide[:, 2:k + 2] = base
    return {
        "contiguous": base,
        "transposed": np.ascontiguousarray(base.T).T,
        "column slice": wide[:, 2:k + 2],
        "transposed slice": np.ascontiguousarray(wide.T)[2:k + 2].T,
    }


@pytest.mark.parametrize("la", ["contiguous", "transposed", "column slice", "transposed slice"])
@pytest.mark.parametrize("lb", ["contiguous", "transposed", "column slice"])
def test_layouts_match_numpy(kernel_set, la, lb):
    a = views(37, 19)[la]
    b = views(19, 23)[lb]
    np.testing.assert_allclose(gemm.matmul(a, b), a.astype(np.float64) @ b, rtol=1e-5, atol=1e-5)


def test_out_and_accumulate(kernel_set):
    a, b = f32(8, 5), f32(5, 6)
    buffer = np.full((8, 10), 7.0, np.float32)
    out = buffer[:, :6]  # row-strided output
    r = gemm.matmul(a, b, out)
    assert r is out
    np.testing.assert_allclose(buffer[:, :6], a @ b, rtol=1e-5, atol=1e-6)
    assert (buffer[:, 6:] == 7.0).all()
    gemm.matmul(a, b, out, accumulate=True)
    np.testing.assert_allclose(buffer[:, :6], 2 * (a @ b), rtol=1e-5, atol=1e-6)


def test_linear_with_bias(kernel_set):
    x, w, bias = f32(9, 4), f32(3, 4), f32(3)
    np.testing.assert_allclose(gemm.linear(x, w, bias), x @ w.T + bias, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gemm.linear(x, w), x @ w.T, rtol=1e-5, atol=1e-6)


def test_stacks_and_leading_axes(kernel_set):
    a, b = f32(3, 4, 5), f32(3, 5, 2)
    np.testing.assert_allclose(gemm.matmul(a, b), np.matmul(a, b), rtol=1e-5, atol=1e-6)
    long_a, long_b = f32(gemm.MAX_STACK + 1, 2, 3), f32(gemm.MAX_STACK + 1, 3, 2)
    np.testing.assert_allclose(gemm.matmul(long_a, long_b), np.matmul(long_a, long_b), rtol=1e-5, atol=1e-6)
    x, w = f32(2, 3, 4, 5), f32(5, 6)
    r = gemm.matmul(x, w)
    assert r.shape == (2, 3, 4, 6)
    np.testing.assert_allclose(r, x @ w, rtol=1e-5, atol=1e-6)


def test_what_numpy_keeps(kernel_set):
    a, b = rng.standard_normal((4, 3)), rng.standard_normal((3, 2))
    r = gemm.matmul(a, b)
    assert r.dtype == np.float64
    np.testing.assert_array_equal(r, a @ b)  # float64 never leaves NumPy
    with pytest.raises(ValueError):
        gemm.matmul(f32(4, 3), f32(4, 3))
    with pytest.raises(ValueError):
        gemm.matmul(f32(4, 3), f32(3, 2), np.empty((4, 3), np.float32))
    empty = gemm.matmul(f32(0, 3), f32(3, 2))
    assert empty.shape == (0, 2)
    square = f32(4, 4)
    expected = square @ square
    np.testing.assert_allclose(gemm.matmul(square, square, square.copy()), expected, rtol=1e-5)


def test_onednn_really_runs():
    if not ONEDNN_OK:
        pytest.skip(f"oneDNN unavailable: {ONEDNN_WHY}")
    previous = kernels.active()
    kernels.set_kernels("onednn")
    try:
        gemm._sgemm = None
        gemm.matmul(f32(2, 2), f32(2, 2))
        assert gemm._sgemm is None  # below min_macs(): NumPy's BLAS on the calling thread
        n = 1 + int(round(gemm.HALVES_MACS ** (1 / 3)))  # (just over MIN_MACS: NumPy in two halves)
        gemm.matmul(f32(n, n), f32(n, n))
        assert gemm._sgemm is not None
    finally:
        kernels.set_kernels(previous)


def test_broadcast_operands_run_on_onednn(monkeypatch):
    """A zero-stride operand (the gradient of ``y.sum()`` through a linear layer) is copied and the
    product runs on oneDNN, not in NumPy on the calling thread."""
    if not ONEDNN_OK:
        pytest.skip(f"oneDNN unavailable: {ONEDNN_WHY}")
    previous = kernels.active()
    kernels.set_kernels("onednn")
    calls = []
    real = gemm._gemm
    monkeypatch.setattr(gemm, "_gemm", lambda *a: calls.append(a[0].strides) or real(*a))
    try:
        g = np.broadcast_to(np.float32(1.5), (32, 64, 128))
        w = f32(128, 96)
        np.testing.assert_allclose(gemm.matmul(g, w), np.matmul(np.ascontiguousarray(g), w), rtol=1e-5)
        a = f32(96, 64)
        np.testing.assert_allclose(gemm.matmul(a, g[0]), np.matmul(a, np.ascontiguousarray(g[0])), rtol=1e-5)
        assert len(calls) == 2 and 0 not in calls[0]
    finally:
        kernels.set_kernels(previous)


def test_small_products_run_on_one_thread(monkeypatch):
    """A product under both one-thread limits sets oneDNN's team to one thread for the call and back;
    a larger one does not; both agree with NumPy."""
    if not ONEDNN_OK:
        pytest.skip(f"oneDNN unavailable: {ONEDNN_WHY}")
    previous = kernels.active()
    kernels.set_kernels("onednn")
    calls = []
    L._require()
    before = L.get_num_threads()
    try:
        L.set_num_threads(2)
        real = L._gomp.omp_set_num_threads

        class Spy:
            omp_get_max_threads = L._gomp.omp_get_max_threads

            def omp_set_num_threads(self, n):
                calls.append(getattr(n, "value", n))  # an int or a ctypes c_int
                real(n)

        monkeypatch.setattr(L, "_gomp", Spy())
        a, b = f32(32, 150), f32(150, 140)  # over HALVES_MACS, under both one-thread limits
        assert not gemm._halves(32, 150, 140) and gemm._one_thread_product(32, 150, 140)
        np.testing.assert_allclose(gemm.matmul(a, b), a @ b, rtol=1e-4, atol=1e-4)
        assert calls == [1, 2]
        calls.clear()
        a, b = f32(1, 784), f32(784, 512)  # 1.6 MB of weights: threaded
        np.testing.assert_allclose(gemm.matmul(a, b), a @ b, rtol=1e-4, atol=1e-4)
        assert calls == [] and L.get_num_threads() == 2
    finally:
        monkeypatch.undo()
        L.set_num_threads(before)
        kernels.set_kernels(previous)


def _refuse_sgemm(*args):
    raise AssertionError("dnnl_sgemm was called")


@pytest.mark.parametrize("rows", [16, 15])  # even, and odd (halves of 8 and 7 rows)
@pytest.mark.parametrize("accumulate", [False, True])
def test_products_just_over_min_macs_run_in_numpy_halves(monkeypatch, rows, accumulate):
    """A product between MIN_MACS and HALVES_MACS on small operands (LeNet-5's second convolution at
    batch 1) runs as two NumPy products of half the rows each, never on dnnl_sgemm; a single row, a
    larger product, or ``HALVES = False`` goes to dnnl_sgemm."""
    if not ONEDNN_OK:
        pytest.skip(f"oneDNN unavailable: {ONEDNN_WHY}")
    previous = kernels.active()
    kernels.set_kernels("onednn")
    try:
        monkeypatch.setattr(gemm, "_sgemm", _refuse_sgemm)
        a, b = f32(rows, 150), f32(150, 140)
        assert gemm.min_macs() <= a.shape[0] * 150 * 140 < gemm.HALVES_MACS
        base = f32(rows, 140)
        out = base.copy()
        result = gemm.matmul(a, b, out, accumulate=accumulate)
        assert result is out
        np.testing.assert_allclose(out, (base if accumulate else 0) + a @ b, rtol=1e-5, atol=1e-4)
        x, w = f32(rows, 150), f32(140, 150)  # a layer's product, x @ w.T
        y = np.zeros((rows, 140), np.float32)
        assert gemm._linear_gemm(x, w, y, 0.0)
        np.testing.assert_allclose(y, x @ w.T, rtol=1e-5, atol=1e-4)
        for shape_a, shape_b in [((1, 2000), (2000, 140)), ((64, 150), (150, 140))]:  # one row; too big
            with pytest.raises(AssertionError, match="dnnl_sgemm was called"):
                gemm.matmul(f32(*shape_a), f32(*shape_b))
        monkeypatch.setattr(gemm, "HALVES", False)
        with pytest.raises(AssertionError, match="dnnl_sgemm was called"):
            gemm.matmul(a, b)
    finally:
        monkeypatch.undo()
        kernels.set_kernels(previous)


def test_batch1_layers_with_big_weights_go_to_onednn(monkeypatch):
    """A single row times a matrix of GEMV_THREADED_ELEMENTS or more runs on dnnl_sgemm (threaded)
    even below MIN_MACS; a smaller one stays on NumPy. Both give NumPy's values."""
    if not ONEDNN_OK:
        pytest.skip(f"oneDNN unavailable: {ONEDNN_WHY}")
    previous = kernels.active()
    kernels.set_kernels("onednn")
    try:
        x, w = f32(1, 512), f32(256, 512)  # a batch-1 layer: 131,072 multiply-adds, under MIN_MACS
        assert 512 * 256 < gemm.MIN_MACS
        np.testing.assert_allclose(gemm.linear(x, w), x @ w.T, rtol=1e-5, atol=1e-4)
        monkeypatch.setattr(gemm, "_sgemm", _refuse_sgemm)
        with pytest.raises(AssertionError, match="dnnl_sgemm was called"):
            gemm.linear(x, w)
        with pytest.raises(AssertionError, match="dnnl_sgemm was called"):
            gemm.matmul(x, w.T)
        small = f32(64, 512)  # 32,768 elements: NumPy
        np.testing.assert_allclose(gemm.linear(x, small), x @ small.T, rtol=1e-5, atol=1e-4)
    finally:
        monkeypatch.undo()
        kernels.set_kernels(previous)


# -- Linear + ReLU in one node (a Transformer's feed-forward block) ------------------------------

from rosenblatt.nn.functional.linear import linear_relu, linear_tanh  # noqa: E402
from tests.parity import check_grad, check_op, check_second_order, requires_torch  # noqa: E402

# (fused op, PyTorch's activation name, scale of the weights: tanh kept off saturation)
LINEAR_ACTIVATIONS = [(linear_relu, "relu", 1.0), (linear_tanh, "tanh", 0.3)]
LINEAR_ACTIVATION_IDS = ["relu", "tanh"]


@requires_torch
@pytest.mark.parametrize("fused, act, scale", LINEAR_ACTIVATIONS, ids=LINEAR_ACTIVATION_IDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rows", [3, 200])  # small: sgemm + NumPy; big: the activation a primitive post-op
def test_linear_activation_matches_torch(kernel_set, fused, act, scale, dtype, rows):
    from tests.parity import torch

    t_act = getattr(torch, act)
    x, w, b = rng.standard_normal((2, rows, 17)), scale * rng.standard_normal((90, 17)), rng.standard_normal(90)
    check_op(fused, lambda x, w, b: t_act(torch.nn.functional.linear(x, w, b)), [x, w, b], dtype)
    check_op(lambda x, w: fused(x, w), lambda x, w: t_act(torch.nn.functional.linear(x, w)), [x, w], dtype)


@pytest.mark.parametrize("fused, act, scale", LINEAR_ACTIVATIONS, ids=LINEAR_ACTIVATION_IDS)
def test_linear_activation_gradients_by_finite_differences(kernel_set, fused, act, scale):
    check_grad(fused, [rng.standard_normal((4, 5)), rng.standard_normal((3, 5)), rng.standard_normal(3)])


@requires_torch
@pytest.mark.parametrize("fused, act, scale", LINEAR_ACTIVATIONS, ids=LINEAR_ACTIVATION_IDS)
def test_linear_activation_second_order(kernel_set, fused, act, scale):
    from tests.parity import torch

    t_act = getattr(torch, act)
    check_second_order(lambda x, w, b: fused(x, w, b) ** 2,
                       lambda x, w, b: t_act(torch.nn.functional.linear(x, w, b)) ** 2,
                       [rng.standard_normal((4, 5)), rng.standard_normal((3, 5)), rng.standard_normal(3)])


def test_transformer_feed_forward_keeps_hooks_of_linear1(kernel_set):
    import rosenblatt as rb

    layer = rb.nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0, batch_first=True)
    x = rb.tensor(f32(2, 3, 8))
    plain = layer(x).numpy()
    seen = []
    handle = layer.linear1.register_forward_hook(lambda module, args, out: seen.append(out.shape))
    np.testing.assert_allclose(layer(x).numpy(), plain, rtol=1e-6, atol=1e-6)
    assert seen == [(2, 3, 16)]  # the hooked layer runs unfused
    handle.remove()


@pytest.mark.parametrize("rows", [3, 128, 700])  # NumPy's sum below COLUMN_SUMS_MIN, a product from it
def test_column_sums(kernel_set, rows):
    g = rng.standard_normal((rows, 200)).astype(np.float32)
    np.testing.assert_allclose(gemm.column_sums(g), g.astype(np.float64).sum(axis=0), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("extras", [{}, {"relu": True}, {"scale": 0.5, "gelu": True}, {"accumulate": True}],
                         ids=["plain", "relu", "scale-gelu", "accumulate"])
def test_matmul_primitive_adds_a_residual_as_it_writes(extras):
    """``out = post(a @ b + bias) + residual``: the residual is the last post-op, after any other
    (its execution argument follows their count); strided residuals; what is declined."""
    if not ONEDNN_OK:
        pytest.skip(f"oneDNN unavailable: {ONEDNN_WHY}")
    from rosenblatt.kernels.activation import gelu
    from rosenblatt.kernels.onednn import matmul as primitive

    a, b, bias = f32(48, 40), f32(40, 24), f32(24)
    residual_wide = f32(48, 30)
    for residual in (f32(48, 24), residual_wide[:, 3:27]):
        start = f32(48, 24)
        out = start.copy()
        done = primitive.matmul(a, b, out, bias=bias, residual=residual, **extras)
        if residual.base is not None and not done:  # a strided residual: oneDNN 3.2 offers only its
            continue                                 # reference loop, which is declined
        assert done
        y = extras.get("scale", 1.0) * ((start if extras.get("accumulate") else 0) + a @ b + bias)
        if extras.get("relu"):
            y = np.maximum(y, 0)
        if extras.get("gelu"):
            y = gelu(y)
        np.testing.assert_allclose(out, y + residual, rtol=1e-5, atol=1e-5)
    out = np.empty((48, 24), np.float32)
    assert not primitive.matmul(a, b, out, residual=f32(48, 23))
    assert not primitive.matmul(a, b, out, residual=f32(48, 24).astype(np.float64))
