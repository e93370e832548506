"""``ReLU6``, ``Hardtanh``, ``Hardswish``, ``Hardsigmoid`` and ``Mish`` and their functional forms
against PyTorch: forward values and input gradients in float32 and float64 (the exact kink points
included, where the gradient is a convention: PyTorch's is checked value by value, on both backward
paths), float64 finite-difference gradchecks, second derivatives, reprs and ``inplace=True``."""

from __future__ import annotations

import numpy as np
import pytest

import rosenblatt as rb
from rosenblatt.nn import functional as F
from tests.parity import (
    HAVE_TORCH,
    assert_close,
    check_grad,
    check_op,
    check_second_order,
    rb_tensor,
    requires_torch,
)

if HAVE_TORCH:
    import torch
    import torch.nn.functional as TF
else:
    torch = TF = None

DTYPES = [np.float32, np.float64]

# name -> (rosenblatt function, PyTorch function, the kinks, whether it is smooth enough for second
# derivatives against PyTorch). All kinks are exact in float32.
CASES = {
    "relu6": (F.relu6, lambda x: TF.relu6(x), [0.0, 6.0]),
    "hardtanh": (F.hardtanh, lambda x: TF.hardtanh(x), [-1.0, 1.0]),
    "hardtanh_bounds": (lambda x: F.hardtanh(x, -0.5, 2.0), lambda x: TF.hardtanh(x, -0.5, 2.0), [-0.5, 2.0]),
    "hardtanh_keywords": (lambda x: F.hardtanh(x, min_val=0.25, max_val=0.75),
                          lambda x: TF.hardtanh(x, min_val=0.25, max_val=0.75), [0.25, 0.75]),
    "hardswish": (F.hardswish, lambda x: TF.hardswish(x), [-3.0, 3.0]),
    "hardsigmoid": (F.hardsigmoid, lambda x: TF.hardsigmoid(x), [-3.0, 3.0]),
    "mish": (F.mish, lambda x: TF.mish(x), [0.0]),
}
NAMES = list(CASES)
# Second derivatives that are not zero (the others are piecewise linear; PyTorch has no double
# backward for hardsigmoid at all).
CURVED = ["hardswish", "mish"]


def inputs(name, seed=0):
    """Random values over the interesting range, each kink exactly and just beside it, and (for mish)
    large magnitudes where a naive softplus overflows."""
    rng = np.random.default_rng(seed)
    kinks = np.asarray(CASES[name][2])
    values = [rng.uniform(-8.0, 8.0, 40), kinks, kinks - 0.125, kinks + 0.125]
    if name == "mish":
        values.append(np.array([-1000.0, -100.0, -30.0, -20.0, 20.0, 30.0, 100.0, 1000.0]))
    return np.concatenate(values)


def away_from_kinks(name, shape=(3, 4), seed=1):
    """Random values at least 0.05 from every kink (finite differences straddle no kink)."""
    x = np.random.default_rng(seed).uniform(-5.0, 8.0, shape)
    for kink in CASES[name][2]:
        x = np.where(np.abs(x - kink) < 0.05, kink + 0.3, x)
    return x


# -- forward and gradient against PyTorch --------------------------------------------------------


@requires_torch
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", NAMES)
def test_functional_matches_torch(name, dtype):
    fn, tfn, _ = CASES[name]
    check_op(fn, tfn, [inputs(name)], dtype)


@requires_torch
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("create_graph", [False, True], ids=["arrays", "tensor_ops"])
def test_gradient_at_the_kinks_is_pytorchs(name, dtype, create_graph):
    """At each kink, exactly on it and 1/8 on either side: the same value and gradient as PyTorch
    (evaluated there), through both ``backward_arrays`` and the differentiable ``backward``."""
    fn, tfn, kinks = CASES[name]
    points = np.concatenate([[k - 0.125, k, k + 0.125] for k in kinks]).astype(dtype)
    x = rb_tensor(points, requires_grad=True)
    y = fn(x)
    (g,) = rb.grad(y, [x], rb_tensor(np.ones_like(points)), create_graph=create_graph)
    tx = torch.tensor(points, requires_grad=True)
    ty = tfn(tx)
    (tg,) = torch.autograd.grad(ty, [tx], torch.ones_like(tx))
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-6, atol=1e-7)
    # (PyTorch's float64 hardsigmoid gradient is float32's 1/6, 3e-8 off: within rtol)
    np.testing.assert_allclose(g.numpy(), tg.numpy(), rtol=1e-6, atol=1e-7)


# The conventions themselves, written out (PyTorch's, checked above against torch itself).
KINK_GRADIENTS = {
    "relu6": [0.0, 0.0],
    "hardtanh": [0.0, 0.0],
    "hardtanh_bounds": [0.0, 0.0],
    "hardtanh_keywords": [0.0, 0.0],
    "hardswish": [0.0, 1.0],
    "hardsigmoid": [0.0, 0.0],
    "mish": [0.6],
}


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("create_graph", [False, True], ids=["arrays", "tensor_ops"])
def test_gradient_values_exactly_at_the_kinks(name, create_graph):
    fn, _, kinks = CASES[name]
    x = rb_tensor(np.asarray(kinks, dtype=np.float64), requires_grad=True)
    (g,) = rb.grad(fn(x), [x], rb_tensor(np.ones(len(kinks))), create_graph=create_graph)
    np.testing.assert_allclose(g.numpy(), KINK_GRADIENTS[name], rtol=1e-15, atol=0)


@requires_torch
@pytest.mark.parametrize("dtype", DTYPES)
def test_mish_is_finite_and_exact_for_large_inputs(dtype):
    values = np.array([-1000.0, -100.0, -50.0, -20.0, 0.0, 20.0, 50.0, 100.0, 1000.0], dtype=dtype)
    x = rb_tensor(values, requires_grad=True)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        y = F.mish(x)
        y.sum().backward()
    tx = torch.tensor(values, requires_grad=True)
    ty = TF.mish(tx)
    ty.sum().backward()
    assert np.all(np.isfinite(y.numpy())) and np.all(np.isfinite(x.grad.numpy()))
    assert_close(y, ty, "mish", rtol=1e-6, atol=1e-30)
    assert_close(x.grad, tx.grad, "mish gradient", rtol=1e-6, atol=1e-30)
    np.testing.assert_array_equal(y.numpy()[-4:], values[-4:])  # mish(x) = x for large x
    np.testing.assert_array_equal(x.grad.numpy()[-4:], 1.0)


# -- finite differences and second derivatives ---------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_gradcheck(name):
    check_grad(CASES[name][0], [away_from_kinks(name)], second_order=True)


@requires_torch
@pytest.mark.parametrize("name", CURVED)
def test_second_derivatives_match_torch(name):
    fn, tfn, kinks = CASES[name]
    check_second_order(fn, tfn, [np.concatenate([away_from_kinks(name, (12,)), kinks])])


@pytest.mark.parametrize("name", ["relu6", "hardtanh", "hardsigmoid"])
def test_piecewise_linear_units_have_zero_second_derivative(name):
    x = rb_tensor(np.concatenate([away_from_kinks(name, (12,)), CASES[name][2]]), requires_grad=True)
    gy = rb_tensor(np.random.default_rng(2).standard_normal(x.shape), requires_grad=True)
    (g,) = rb.grad(CASES[name][0](x), [x], gy, create_graph=True)
    gx, ggy = rb.grad((g * g).sum(), [x, gy], allow_unused=True)
    assert gx is None or np.all(gx.numpy() == 0)
    # the first derivative, read back through the gradient's dependence on gy
    (tg,) = rb.grad(CASES[name][0](x), [x], rb_tensor(np.ones(x.shape)))
    np.testing.assert_allclose(ggy.numpy(), 2 * gy.numpy() * tg.numpy() ** 2, rtol=1e-12)


def test_activations_are_single_nodes():
    x = rb_tensor(np.random.default_rng(3).standard_normal((3, 4)), requires_grad=True)
    for fn in (F.relu6, F.hardtanh, F.hardswish, F.hardsigmoid, F.mish):
        y = fn(x)
        assert y.grad_fn is not None and y.grad_fn.inputs[0] is x, fn.__name__


# -- layers ----------------------------------------------------------------------------------------

LAYERS = [
    ("ReLU6", (), "relu6"),
    ("Hardtanh", (), "hardtanh"),
    ("Hardtanh", (-0.5, 2.0), "hardtanh_bounds"),
    ("Hardswish", (), "hardswish"),
    ("Hardsigmoid", (), "hardsigmoid"),
    ("Mish", (), "mish"),
]


@requires_torch
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cls, args, name", LAYERS, ids=[f"{c}{a}" for c, a, _ in LAYERS])
def test_layer_matches_torch(cls, args, name, dtype):
    layer, t_layer = getattr(rb.nn, cls)(*args), getattr(torch.nn, cls)(*args)
    check_op(layer, t_layer, [inputs(name, seed=4).reshape(-1, 1)], dtype)


@requires_torch
def test_reprs_match_torch():
    made = [
        lambda nn: nn.ReLU6(), lambda nn: nn.ReLU6(inplace=True), lambda nn: nn.Hardtanh(),
        lambda nn: nn.Hardtanh(-2.0, 3.5), lambda nn: nn.Hardtanh(min_val=0.0, max_val=6.0, inplace=True),
        lambda nn: nn.Hardswish(), lambda nn: nn.Hardswish(inplace=True), lambda nn: nn.Hardsigmoid(),
        lambda nn: nn.Hardsigmoid(inplace=True), lambda nn: nn.Mish(), lambda nn: nn.Mish(inplace=True),
    ]
    for make in made:
        assert repr(make(rb.nn)) == repr(make(torch.nn))
    assert repr(rb.nn.Sequential(rb.nn.ReLU6(), rb.nn.Mish())) == repr(torch.nn.Sequential(torch.nn.ReLU6(),
                                                                                          torch.nn.Mish()))


def test_relu6_is_a_hardtanh_from_0_to_6():
    layer = rb.nn.ReLU6()
    assert isinstance(layer, rb.nn.Hardtanh) and (layer.min_val, layer.max_val) == (0.0, 6.0)
    x = rb_tensor(np.linspace(-8.0, 8.0, 33))
    np.testing.assert_array_equal(layer(x).numpy(), rb.nn.Hardtanh(0.0, 6.0)(x).numpy())
    np.testing.assert_array_equal(F.relu6(x).numpy(), np.clip(np.linspace(-8.0, 8.0, 33), 0.0, 6.0))


def test_formulas_written_out():
    """The definitions, independently of PyTorch."""
    v = np.linspace(-7.0, 7.0, 57)
    x = rb_tensor(v)
    np.testing.assert_allclose(F.hardtanh(x, -2.0, 1.5).numpy(), np.minimum(np.maximum(v, -2.0), 1.5), rtol=0)
    np.testing.assert_allclose(F.hardsigmoid(x).numpy(), np.minimum(np.maximum(v / 6 + 0.5, 0.0), 1.0),
                               rtol=1e-15, atol=1e-16)
    np.testing.assert_allclose(F.hardswish(x).numpy(), v * np.minimum(np.maximum(v + 3.0, 0.0), 6.0) / 6.0,
                               rtol=1e-15, atol=1e-16)
    np.testing.assert_allclose(F.mish(x).numpy(), v * np.tanh(np.log1p(np.exp(v))), rtol=1e-14, atol=1e-16)


# -- bad arguments ---------------------------------------------------------------------------------


def test_hardtanh_bounds_are_checked():
    x = rb_tensor(np.linspace(-2.0, 2.0, 9))
    with pytest.raises(ValueError, match=r"hardtanh: min_val \(2\.0\) cannot be greater than max_val \(1\.0\)"):
        F.hardtanh(x, 2.0, 1.0)
    with pytest.raises(ValueError, match=r"Hardtanh: max_val \(1\.0\) must be greater than min_val"):
        rb.nn.Hardtanh(1.0, 1.0)
    with pytest.raises(ValueError, match="Hardtanh"):
        rb.nn.Hardtanh(min_val=2.0, max_val=-2.0)
    # equal bounds are allowed in the function (as in PyTorch): a constant, with no gradient
    x.requires_grad_(True)
    y = F.hardtanh(x, 0.5, 0.5)
    y.sum().backward()
    np.testing.assert_array_equal(y.numpy(), 0.5)
    np.testing.assert_array_equal(x.grad.numpy(), 0.0)


@requires_torch
def test_hardtanh_rejects_what_pytorch_rejects():
    with pytest.raises(ValueError):
        TF.hardtanh(torch.zeros(3), 2.0, 1.0)
    with pytest.raises(ValueError):
        F.hardtanh(rb_tensor(np.zeros(3)), 2.0, 1.0)


@pytest.mark.parametrize("name", ["relu6", "hardtanh", "hardswish", "hardsigmoid", "mish"])
def test_non_tensor_input_names_the_function(name):
    with pytest.raises(TypeError, match=name):
        getattr(F, name)(np.zeros(3))


# -- PyTorch's inplace=True ------------------------------------------------------------------------

INPLACE = [
    ("ReLU6", lambda inplace: rb.nn.ReLU6(inplace=inplace), lambda x, inplace: F.relu6(x, inplace=inplace)),
    ("Hardtanh", lambda inplace: rb.nn.Hardtanh(-0.5, 2.0, inplace=inplace),
     lambda x, inplace: F.hardtanh(x, -0.5, 2.0, inplace=inplace)),
    ("Hardswish", lambda inplace: rb.nn.Hardswish(inplace=inplace), lambda x, inplace: F.hardswish(x, inplace=inplace)),
    ("Hardsigmoid", lambda inplace: rb.nn.Hardsigmoid(inplace=inplace),
     lambda x, inplace: F.hardsigmoid(x, inplace=inplace)),
    ("Mish", lambda inplace: rb.nn.Mish(inplace=inplace), lambda x, inplace: F.mish(x, inplace=inplace)),
]


@pytest.mark.parametrize("name, make, function", INPLACE, ids=[n for n, _, _ in INPLACE])
def test_inplace(name, make, function):
    """``inplace=True`` as PyTorch code writes it: without a graph the input is overwritten and
    returned; in training the values and gradients are those of ``inplace=False`` and the input is
    left alone."""
    data = np.random.default_rng(0).uniform(-4.0, 4.0, (2, 3, 4)).astype(np.float32)

    def run(apply):
        x = rb_tensor(data, requires_grad=True)
        h = x * 2.0
        y = apply(h)
        (y * rb_tensor(data)).sum().backward()
        return h, y, x.grad.numpy()

    for apply, reference in ((make(True), make(False)),
                             (lambda t: function(t, True), lambda t: function(t, False))):
        h, y, grad = run(apply)
        _, y_ref, grad_ref = run(reference)
        assert y is not h
        np.testing.assert_array_equal(y.detach().numpy(), y_ref.detach().numpy())
        np.testing.assert_array_equal(grad, grad_ref)
        np.testing.assert_array_equal(h.detach().numpy(), 2.0 * data)  # recorded: not overwritten

        expected = reference(rb_tensor(data)).numpy()
        x = rb_tensor(data.copy())
        with rb.no_grad():
            out = apply(x)
        assert out is x
        np.testing.assert_array_equal(x.numpy(), expected)
        x = rb_tensor(data.copy())  # a tensor that needs no gradient: overwritten with grad mode on
        assert apply(x) is x
        np.testing.assert_array_equal(x.numpy(), expected)

    x = rb_tensor(data.copy())
    with rb.no_grad():
        out = make(False)(x)
    assert out is not x
    np.testing.assert_array_equal(x.numpy(), data)  # inplace=False never writes into the input
