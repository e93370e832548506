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


def _spy(monkeypatch, names=("tanh", "tanh_grad")):
    """Record, in order, the calls of the oneDNN eltwise functions ``names``."""
    from rosenblatt.kernels.onednn import eltwise

    calls = []
    for name in names:
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
    np.testing.assert_allclose(eltwise.tanh_grad(big.T, big), big.T * (1 - big * big), rtol=1e-5, atol=1e-6)
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


def test_relu_keeps_nan(onednn):
    """The ReLU stays NumPy's maximum: oneDNN's relu would turn NaN into 0, and a NaN must reach the
    loss (as in PyTorch)."""
    x = rng.standard_normal((64, 32, 16, 16)).astype(np.float32)
    x.reshape(-1)[:5] = [np.nan, np.inf, -np.inf, 0.0, -0.0]
    y = act.relu(x)
    np.testing.assert_array_equal(y, np.maximum(x, 0))
    assert np.isnan(y.reshape(-1)[0])
    t = rb.tensor(x, requires_grad=True)
    assert np.isnan(rb.relu(t).sum().item())


def test_sum_of_two_big_arrays_matches_numpy(onednn, monkeypatch):
    """``a + b`` of two large float32 tensors runs on oneDNN (the residual sum of a hand-written
    block); the result is the same correctly rounded sum, and its gradient passes through."""
    from rosenblatt.kernels.onednn import eltwise

    real = eltwise.binary
    calls = _spy(monkeypatch, ("binary",))
    a = rng.standard_normal((16, 16, 32, 32)).astype(np.float32)
    b = rng.standard_normal(a.shape).astype(np.float32)
    ta, tb = rb.tensor(a, requires_grad=True), rb.tensor(b, requires_grad=True)
    y = ta + tb
    assert calls == ["binary"]
    np.testing.assert_array_equal(y.numpy(), a + b)
    (y * 2.0).sum().backward()
    np.testing.assert_array_equal(ta.grad.numpy(), np.full(a.shape, 2.0, np.float32))
    np.testing.assert_array_equal(tb.grad.numpy(), np.full(a.shape, 2.0, np.float32))
    # declined: broadcasting, another dtype, a strided view (NumPy adds them)
    np.testing.assert_array_equal((ta + rb.tensor(b[:1])).numpy(), a + b[:1])
    assert real("add", a, b.astype(np.float64)) is None and real("add", a, b.transpose(0, 1, 3, 2)) is None
    assert real("add", a[:1, :1], b[:1, :1]) is None  # below MIN_ELEMENTS


def _bits(x):
    return np.ascontiguousarray(x).view(np.int32)


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div"])
def test_arithmetic_kernel_is_numpy_bit_for_bit(onednn, op):
    """``binary`` gives NumPy's float32 result bit for bit (one IEEE operation per element): arrays of
    one shape and Python numbers, signed zeros, infinities and NaN included; what it declines."""
    from rosenblatt.kernels.onednn import eltwise

    numpy_op = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.true_divide}[op]
    a = (rng.standard_normal((300, 1000)) * 3).astype(np.float32)
    b = rng.standard_normal(a.shape).astype(np.float32)
    a[0, :6] = [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-40]
    b[0, :6] = [-0.0, 0.0, 2.0, np.inf, 1.0, 1e-40]
    with np.errstate(all="ignore"):
        for other in (b, 0.9, -1, 3, 0.0, 1e-30):
            y = eltwise.binary(op, a, other)
            ref = numpy_op(a, other)
            assert y is not None and y.dtype == np.float32 and y.shape == a.shape
            np.testing.assert_array_equal(_bits(y), _bits(ref), err_msg=f"{op} {type(other).__name__}")
        for other in (b[:1], b[:, :1], b[0], b[:1, :1], b[0, :1]):  # broadcast second operands
            y = eltwise.binary(op, a, np.ascontiguousarray(other))
            assert y is not None
            np.testing.assert_array_equal(_bits(y), _bits(numpy_op(a, other)), err_msg=f"{op} {other.shape}")
    assert eltwise.binary(op, a, float("inf")) is None and eltwise.binary(op, a, 1e39) is None
    assert eltwise.binary(op, a, b[:2]) is None and eltwise.binary(op, a, np.float32(2.0)) is None
    assert eltwise.binary(op, a[:1], b) is None  # the first operand must have the output's shape
    assert eltwise.binary(op, a, b[:, :1]) is None and eltwise.binary(op, a, b[0, ::2]) is None  # strided
    assert eltwise.binary(op, a.astype(np.float64), 2.0) is None
    assert eltwise.binary(op, a[:, ::2], 2.0) is None


@pytest.mark.parametrize("expression", ["x + y", "x - y", "x * y", "x / y", "x * 0.5", "0.5 * x", "x + 2",
                                        "x - 2", "x / 4", "-x", "2 - x", "x / (y * y + 1)", "x * row", "row + x",
                                        "x - column", "x / column"])
def test_arithmetic_ops_on_large_arrays_take_the_oneDNN_kernel(onednn, monkeypatch, expression):
    """The +, -, *, / ops (and their gradients) of large float32 tensors run on oneDNN's threads and
    give the values and gradients of the NumPy kernels."""
    from rosenblatt.kernels.onednn import eltwise
    from rosenblatt.ops import arithmetic

    expected_forward = {"x + y": ["add"], "x - y": ["sub"], "x * y": ["mul"], "x / y": ["div"], "x * 0.5": ["mul"],
                        "0.5 * x": ["mul"], "x + 2": ["add"], "x - 2": ["sub"], "x / 4": ["div"], "-x": ["mul"],
                        "2 - x": [], "x / (y * y + 1)": ["mul", "add", "div"], "x * row": ["mul"],
                        "row + x": ["add"], "x - column": ["sub"], "x / column": ["div"]}[expression]
    a = rng.standard_normal((512, 600)).astype(np.float32)
    b = (rng.standard_normal(a.shape) + 3).astype(np.float32)
    weight = rng.standard_normal(a.shape).astype(np.float32)
    results = {}
    real = eltwise.binary
    for on in (True, False):
        monkeypatch.setattr(arithmetic, "ONEDNN_MIN", 1 << 18 if on else 1 << 40)
        calls: list[str] = []
        monkeypatch.setattr(eltwise, "binary", lambda op, p, q, calls=calls: calls.append(op) or real(op, p, q))
        x, y = rb.tensor(a, requires_grad=True), rb.tensor(b, requires_grad=True)
        row, column = rb.tensor(b[0] + 2, requires_grad=True), rb.tensor(b[:, :1] + 2, requires_grad=True)
        out = eval(expression, {"x": x, "y": y, "row": row, "column": column})
        forward_calls = list(calls)
        (out * rb.tensor(weight)).sum().backward()
        results[on] = (out.numpy(), x.grad.numpy()) + tuple(None if t.grad is None else t.grad.numpy()
                                                             for t in (y, row, column))
        if on:
            assert forward_calls == expected_forward, forward_calls
            assert len(calls) > len(forward_calls) + 1, calls  # the weighting and the gradients
        else:
            assert calls == []
    for ran, reference in zip(results[True], results[False]):
        if reference is not None:
            np.testing.assert_array_equal(ran, reference)


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


# -- the other activations on oneDNN's eltwise algorithms ------------------------------------------

_SPECIAL = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-40, -1e-40, 1e-30, -1e-30, 3.0, -3.0, 6.0, -6.0,
                     20.0, -20.0, 88.0, -88.0, 100.0, -100.0, 1e30, -1e30, 3.4e38, -3.4e38], np.float32)


def _big_input(shape):
    x = np.concatenate([rng.standard_normal(int(np.prod(shape)) // 2) * 4, rng.uniform(-30, 30, int(np.prod(shape)))])
    x = x[: int(np.prod(shape))].astype(np.float32)
    x[: _SPECIAL.size] = _SPECIAL
    # both sides of the kinks of hardtanh (-1, 1) and relu6 (0, 6)
    for i, b in enumerate((-1.0, 1.0, 0.0, 6.0)):
        b = np.float32(b)
        x[_SPECIAL.size + 3 * i: _SPECIAL.size + 3 * i + 3] = [np.nextafter(b, np.float32(-1e9)), b,
                                                             np.nextafter(b, np.float32(1e9))]
    return x.reshape(shape)


def _numpy_kernels(fn, *args):
    previous = kernels.active()
    kernels.set_kernels("numpy")
    try:
        with np.errstate(all="ignore"):
            return fn(*args)
    finally:
        kernels.set_kernels(previous)


def _torch_value_and_grad(fn, x, gy):
    import torch

    t = torch.from_numpy(x.copy()).requires_grad_(True)
    y = fn(t)
    y.backward(torch.from_numpy(gy))
    return y.detach().numpy(), t.grad.numpy()


def _spy_generic(monkeypatch):
    return _spy(monkeypatch, ("forward", "backward"))


def _torch_fn(name):
    import torch
    import torch.nn.functional as F

    return {
        "sigmoid": torch.sigmoid,
        "gelu": F.gelu,
        "gelu_tanh": lambda t: F.gelu(t, approximate="tanh"),
        "silu": F.silu,
        "leaky_relu": lambda t: F.leaky_relu(t, 0.2),
        "hardtanh": lambda t: F.hardtanh(t, -1.0, 1.0),
        "relu6": F.relu6,
    }[name]


# name: (forward, gradient from (gy, x, y), what oneDNN runs, tolerance against PyTorch and NumPy)
_ROUTED = {
    "sigmoid": (act.sigmoid, lambda gy, x, y: act.sigmoid_grad(gy, y), ("forward", "backward")),
    "gelu": (act.gelu, lambda gy, x, y: act.gelu_grad(gy, x), ("forward", "backward")),
    "gelu_tanh": (act.gelu_tanh, lambda gy, x, y: act.gelu_tanh_grad(gy, x), ("forward", "backward")),
    "silu": (act.silu, lambda gy, x, y: act.silu_grad(gy, x), ("forward", "backward")),
    "leaky_relu": (lambda x: act.leaky_relu(x, 0.2), lambda gy, x, y: act.leaky_relu_grad(gy, x, 0.2), ("forward",)),
    "hardtanh": (lambda x: act.hardtanh(x, -1.0, 1.0), lambda gy, x, y: act.hardtanh_grad(gy, x, -1.0, 1.0),
                 ("backward",)),
    "relu6": (lambda x: act.hardtanh(x, 0.0, 6.0), lambda gy, x, y: act.hardtanh_grad(gy, x, 0.0, 6.0),
              ("backward",)),
}


_EPS = float(np.finfo(np.float32).eps)
# (rtol, tail) in float32 eps of the forward and the gradient against PyTorch, then against the
# NumPy kernel. ``tail`` allows an absolute error of ``tail * eps * |x|``: where a formula cancels
# (``1 + erf(x/√2)``, ``1 + tanh``) to a result far below ``|x|``, float32 keeps only that much.
_TOLERANCE = {
    "sigmoid": ((4, 0), (4, 0), (4, 0), (4, 0)),
    "gelu": ((4, 0), (4, 0), (8, 4), (16, 4)),
    "gelu_tanh": ((8, 4), (16, 4), (8, 4), (16, 4)),
    "silu": ((4, 0), (16, 2), (4, 2), (16, 2)),
    "leaky_relu": ((0, 0), (0, 0), (0, 0), (0, 0)),
    "hardtanh": ((0, 0), (0, 0), (0, 0), (0, 0)),
    "relu6": ((0, 0), (0, 0), (0, 0), (0, 0)),
}


def _close(got, expected, x, tolerance, what):
    """Equal, or within ``rtol * eps * |expected| + tail * eps * |x|`` (``tolerance``; ``x``: the
    scale of the terms that cancel), NaN where NaN; results below float32's normal range count as
    0, and differences below 1e-35 (a subnormal intermediate flushed to 0) are ignored."""
    rtol, tail = tolerance
    got, expected, x = got.astype(np.float64), expected.astype(np.float64), x.astype(np.float64)
    tiny = np.finfo(np.float32).tiny
    got[np.abs(got) < tiny], expected[np.abs(expected) < tiny] = 0.0, 0.0
    with np.errstate(all="ignore"):
        allowed = _EPS * (rtol * np.abs(expected) + tail * np.abs(x)) + 1e-35
        bad = ~((got == expected) | (np.isnan(got) & np.isnan(expected)) | (np.abs(got - expected) <= allowed))
    assert not bad.any(), f"{what}: {bad.sum()} differ, e.g. x={x[bad][:5]} got={got[bad][:5]} expected={expected[bad][:5]}"


@pytest.mark.parametrize("name", sorted(_ROUTED))
def test_activation_runs_on_onednn_and_matches_numpy_and_pytorch(onednn, monkeypatch, name):
    pytest.importorskip("torch")
    forward, gradient, routed = _ROUTED[name]
    tol_torch, tol_torch_grad, tol_numpy, tol_numpy_grad = _TOLERANCE[name]
    x = _big_input((64, 16, 16, 16))
    gy = rng.standard_normal(x.shape).astype(np.float32)
    calls = _spy_generic(monkeypatch)
    with np.errstate(all="ignore"):
        y = forward(x)
        gx = gradient(gy, x, y)
    assert calls == list(routed)
    assert y.dtype == gx.dtype == np.float32 and y.shape == gx.shape == x.shape
    ty, tgx = _torch_value_and_grad(_torch_fn(name), x, gy)
    _close(y, ty, x, tol_torch, f"{name} vs PyTorch")
    if name == "sigmoid":  # the gradient from the output: compared from the same y
        tgx = _numpy_kernels(gradient, gy, x, y)
    # the gradient's terms are about |gy| max(1, |x|)^k (k = 3 for gelu_tanh: x (1 - t²) x²)
    terms = np.abs(gy.astype(np.float64)) * np.maximum(np.abs(x.astype(np.float64)), 1) ** (3 if name == "gelu_tanh" else 1)
    _close(gx, tgx, terms, tol_torch_grad, f"{name} gradient vs PyTorch")
    ny = _numpy_kernels(forward, x)
    keep = np.ones(x.shape, bool)
    if name == "gelu":  # NumPy's x * (1 + erf(x/√2)) / 2 gives inf at inf and x near float32's max;
        keep = np.abs(x) < 1e38  # oneDNN, as PyTorch, NaN at inf and inf from ~1.7e38
        np.testing.assert_array_equal(y[~keep], ty[~keep])
    _close(y[keep], ny[keep], x[keep], tol_numpy, f"{name} vs the NumPy kernel")
    _close(gx, _numpy_kernels(gradient, gy, x, y), terms, tol_numpy_grad, f"{name} gradient vs the NumPy kernel")
    small = x[:1, :1]
    calls.clear()
    with np.errstate(all="ignore"):
        gradient(gy[:1, :1], small, forward(small))
    assert calls == []  # below the size limits: NumPy, not asked


def test_activation_declined_cases_use_numpy(onednn, monkeypatch):
    x = _big_input((64, 16, 16, 16))
    calls = _spy_generic(monkeypatch)
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(act.leaky_relu(x, 0.0), np.where(x > 0, x, x * np.float32(0)))
        assert calls == []  # slope 0: oneDNN's relu would give 0 for -inf, not NaN
        x64 = x.astype(np.float64)
        np.testing.assert_array_equal(act.silu(x64), _numpy_kernels(act.silu, x64))
        assert calls == []
        xt = x.transpose(0, 1, 3, 2)
        np.testing.assert_array_equal(act.silu(xt), _numpy_kernels(act.silu, xt))
        gy = np.ones_like(x)
        np.testing.assert_array_equal(act.hardtanh_grad(np.float32(1), x, -1.0, 1.0), (x > -1) & (x < 1))
        np.testing.assert_array_equal(act.sigmoid_grad(gy[:2], act.sigmoid(x)[:2]),
                                      _numpy_kernels(act.sigmoid_grad, gy[:2], act.sigmoid(x)[:2]))
    assert calls == ["forward", "forward", "forward"]  # the strided view asks and is declined; scalar gy is not asked


@pytest.mark.parametrize("name", ["sigmoid", "gelu", "silu"])
def test_activation_layers_train_the_same_on_both_kernel_sets(name):
    import rosenblatt.nn.functional as F

    fn = {"sigmoid": rb.sigmoid, "gelu": F.gelu, "silu": F.silu}[name]
    x = rng.standard_normal((64, 16, 16, 16)).astype(np.float32)
    grads = {}
    for kernel_set in ("numpy", "onednn"):
        previous = kernels.active()
        kernels.set_kernels(kernel_set)
        try:
            t = rb.tensor(x, requires_grad=True)
            (fn(t) * rb.tensor(x)).sum().backward()
            grads[kernel_set] = t.grad.numpy()
        finally:
            kernels.set_kernels(previous)
    np.testing.assert_allclose(grads["onednn"], grads["numpy"], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("symbol", ["+=", "-=", "*=", "/="])
def test_in_place_arithmetic_on_large_arrays_takes_the_oneDNN_kernel(onednn, monkeypatch, symbol):
    """``x op= y`` (and ``add_``, ``sub_``, ``mul_``, ``div_``) of a large float32 tensor writes into its
    own array on oneDNN's threads with NumPy's bits, for an array of its shape, a broadcast row and a
    number; an operand sharing its memory, a read-only array or a small one run on NumPy."""
    from rosenblatt.kernels.onednn import eltwise

    real = eltwise.binary
    calls: list[bool] = []
    monkeypatch.setattr(eltwise, "binary", lambda op, a, b, in_place=False: calls.append(in_place) or real(
        op, a, b, in_place=in_place))
    a = rng.standard_normal((512, 600)).astype(np.float32)
    b = (rng.standard_normal(a.shape) + 3).astype(np.float32)
    for other in (b, b[0], 0.7):
        calls.clear()
        t = rb.tensor(a.copy())
        memory, version = t.numpy(), t._version
        exec(f"t {symbol} (rb.tensor(other) if isinstance(other, np.ndarray) else other)",
             {"t": t, "rb": rb, "np": np, "other": other})
        expected = a.copy()
        exec(f"expected {symbol} (other if isinstance(other, np.ndarray) else np.float32(other))",
             {"expected": expected, "other": other, "np": np})
        assert calls == [True] and t.numpy() is memory and t._version == version + 1
        np.testing.assert_array_equal(t.numpy().view(np.int32), expected.view(np.int32))
    calls.clear()
    t = rb.tensor(a.copy())
    exec(f"t {symbol} t", {"t": t})  # the same memory on both sides: NumPy
    expected = a.copy()
    exec(f"expected {symbol} expected", {"expected": expected})
    np.testing.assert_array_equal(t.numpy(), expected)
    assert not eltwise.binary("add", np.broadcast_to(a[0], a.shape), 1.0, in_place=True)
    small = rb.tensor(a[:4].copy())
    calls.clear()
    exec(f"small {symbol} 2.0", {"small": small})
    assert calls == []
