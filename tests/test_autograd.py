"""The autodiff engine: graph order, memory, accumulation, grad mode, custom Functions, errors."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rosenblatt as rb
from rosenblatt.nn.functional._fused import composite_backward
from tests.parity import HAVE_TORCH, requires_torch

if HAVE_TORCH:
    import torch


def test_long_chain_backpropagates_without_recursion():
    x = rb.tensor(1.0, requires_grad=True)
    y = x
    for _ in range(10_000):
        y = y * 1.0001
    y.backward()
    assert np.isclose(x.grad.item(), 1.0001**10_000, rtol=1e-3)


def test_long_recurrence_backpropagates():
    rb.manual_seed(0)
    w = rb.randn(8, 8, dtype=rb.float64) * 0.1
    w.requires_grad_()
    h = rb.zeros(1, 8, dtype=rb.float64)
    x = rb.ones(1, 8, dtype=rb.float64)
    for _ in range(2_000):
        h = rb.tanh(h @ w + x)
    h.sum().backward()
    assert w.grad is not None and np.isfinite(w.grad.numpy()).all()


def test_diamond_graph_gradient_is_summed_once():
    # y = a*b with a = x+1, b = x*2: every path must be accounted for exactly once
    x = rb.tensor(3.0, requires_grad=True)
    a = x + 1
    b = x * 2
    y = a * b + a
    y.backward()
    assert x.grad.item() == pytest.approx(2 * (x.item() + 1) + 2 * x.item() + 1)


def test_graph_is_garbage_collected_after_backward():
    x = rb.randn(100, 100, requires_grad=True)
    y = (x.sigmoid() * 2).tanh()
    mid = weakref.ref(y.grad_fn.inputs[0])
    loss = y.sum()
    loss.backward()
    del y, loss
    gc.collect()
    assert mid() is None


def test_saved_arrays_freed_after_backward_and_second_backward_fails():
    x = rb.randn(5, requires_grad=True)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        y.backward()


def test_retain_graph_allows_second_backward_and_accumulates():
    x = rb.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    assert x.grad.tolist() == [4.0, 8.0]


def test_memory_stays_flat_over_many_steps():
    import tracemalloc

    w = rb.randn(64, 64, requires_grad=True)
    x = rb.randn(32, 64)

    def step():
        loss = (rb.tanh(x @ w) ** 2).mean()
        loss.backward()
        with rb.no_grad():
            w.sub_(0.01 * w.grad)
        w.grad = None

    tracemalloc.start()
    for _ in range(200):  # warm-up: allocator caches fill here
        step()
    gc.collect()
    base = tracemalloc.get_traced_memory()[0]
    for _ in range(1000):
        step()
    gc.collect()
    growth = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    # one step's activations are ~20 kB: anything retained per step would add up to megabytes
    assert growth < 100_000, f"memory grew by {growth} bytes over 1000 steps"


@requires_torch
def test_leaf_accumulation_matches_torch():
    a = np.array([1.0, -2.0, 3.0])
    x = rb.tensor(a, requires_grad=True)
    tx = torch.tensor(a, requires_grad=True)
    for f in (lambda t: (t * t).sum(), lambda t: (t.exp()).sum(), lambda t: (t * 3).sum()):
        f(x).backward()
        f(tx).backward()
        np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy())


def test_shared_gradient_array_is_not_aliased_between_leaves():
    a = rb.ones(3, requires_grad=True)
    b = rb.ones(3, requires_grad=True)
    (a + b).sum().backward()
    a.grad.data *= 10  # e.g. clip_grad_norm_ scaling in place
    assert b.grad.tolist() == [1.0, 1.0, 1.0]


def test_broadcast_gradient_is_writable_and_owned():
    w = rb.ones(4, requires_grad=True)
    (w * rb.ones(3, 4)).sum().backward()
    w.grad.data *= 2  # must not fail on a read-only broadcast view
    assert w.grad.tolist() == [6.0] * 4


def test_no_grad_records_nothing_and_enable_grad_inside():
    x = rb.ones(2, requires_grad=True)
    with rb.no_grad():
        y = x * 2
        assert not y.requires_grad and y.grad_fn is None
        with rb.enable_grad():
            z = x * 2
            assert z.requires_grad
    assert rb.is_grad_enabled()

    @rb.no_grad()
    def f(t):
        return t * 2

    assert not f(x).requires_grad and rb.is_grad_enabled()


def test_needs_input_grad_skips_unneeded_gradients():
    calls = []

    class Spy(rb.autograd.Function):
        @staticmethod
        def forward(ctx, a, b):
            return a * b

        @staticmethod
        def backward(ctx, gy):
            calls.append(ctx.needs_input_grad)
            a, b = ctx.inputs
            return (gy * b if ctx.needs_input_grad[0] else None), (gy * a if ctx.needs_input_grad[1] else None)

    w = rb.ones(3, requires_grad=True)
    data = rb.ones(3)
    Spy.apply(w, data).sum().backward()
    assert calls == [(True, False)]


def test_custom_function_with_saved_arrays_and_double_backward():
    class Cube(rb.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x**3

        @staticmethod
        def backward(ctx, gy):
            (x,) = ctx.inputs
            return 3 * x * x * gy

    x = rb.tensor([2.0], dtype=rb.float64, requires_grad=True)
    (g,) = rb.grad(Cube.apply(x).sum(), x, create_graph=True)
    (gg,) = rb.grad(g.sum(), x)
    assert g.item() == 12.0 and gg.item() == 12.0
    assert rb.autograd.gradcheck(Cube.apply, (rb.randn(4, dtype=rb.float64, requires_grad=True),))


class _FusedProduct(rb.autograd.Function):
    """``x * y`` written as a fused op: array gradients, and the composite's gradient under create_graph."""

    @staticmethod
    def forward(ctx, x, y):
        return x * y

    @staticmethod
    def backward(ctx, gy):
        return composite_backward(lambda a, b: a * b, ctx.inputs, ctx.needs_input_grad, [gy])

    @staticmethod
    def backward_arrays(ctx, gy):
        x, y = ctx.inputs
        return gy * y.data, gy * x.data


def test_fused_op_with_the_same_tensor_twice_counts_its_gradient_once():
    # f(x, x) = x * x: d/dx = 2x and d2/dx2 = 2 (each position's partial derivative, added once)
    x = rb.tensor([1.5, -2.0], dtype=rb.float64, requires_grad=True)
    (g,) = rb.grad(_FusedProduct.apply(x, x).sum(), x, create_graph=True)
    assert g.tolist() == [3.0, -4.0]
    (gg,) = rb.grad(g.sum(), x)
    assert gg.tolist() == [2.0, 2.0]
    assert rb.autograd.gradgradcheck(lambda t: _FusedProduct.apply(t, t), (x,))


@requires_torch
def test_self_attention_second_derivatives_match_torch():
    # q = k = v = x: the fused attention's create_graph backward sees one tensor at three positions
    rng = np.random.default_rng(0)
    a = rng.standard_normal((2, 4, 3))
    x = rb.tensor(a, requires_grad=True)
    tx = torch.tensor(a, requires_grad=True)
    (g,) = rb.grad(rb.nn.functional.scaled_dot_product_attention(x, x, x).pow(2).sum(), x, create_graph=True)
    (tg,) = torch.autograd.grad(torch.nn.functional.scaled_dot_product_attention(tx, tx, tx).pow(2).sum(), tx,
                                create_graph=True)
    np.testing.assert_allclose(g.numpy(), tg.detach().numpy(), rtol=1e-10, atol=1e-12)
    (gg,) = rb.grad((g * g).sum(), x)
    (tgg,) = torch.autograd.grad((tg * tg).sum(), tx)
    np.testing.assert_allclose(gg.numpy(), tgg.numpy(), rtol=1e-8, atol=1e-10)


def test_create_graph_through_a_once_differentiable_op_names_it():
    class Twice(rb.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return 2 * x

        @staticmethod
        def backward_arrays(ctx, gy):
            return 2 * gy

    x = rb.ones(3, requires_grad=True)
    Twice.apply(x).sum().backward()  # first order: the array gradient
    assert x.grad.tolist() == [2.0, 2.0, 2.0]
    with pytest.raises(RuntimeError, match="Twice: .*cannot be differentiated twice"):
        rb.grad(Twice.apply(x).sum(), x, create_graph=True)


def test_grad_does_not_touch_dot_grad_and_supports_non_leaf_inputs():
    x = rb.tensor([1.0, 2.0], requires_grad=True)
    h = x * 3
    y = (h * h).sum()
    gx, gh = rb.grad(y, [x, h])
    assert x.grad is None
    assert gh.tolist() == [6.0, 12.0] and gx.tolist() == [18.0, 36.0]


def test_grad_unused_input():
    x = rb.ones(2, requires_grad=True)
    z = rb.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="not used"):
        rb.grad((x * 2).sum(), [x, z])
    assert rb.grad((x * 2).sum(), [x, z], allow_unused=True)[1] is None


def test_retain_grad_on_intermediate():
    x = rb.ones(2, requires_grad=True)
    h = (x * 2).retain_grad()
    (h * h).sum().backward()
    assert h.grad.tolist() == [4.0, 4.0]


def test_detach_cuts_the_graph():
    x = rb.ones(2, requires_grad=True)
    y = (x * 2).detach() * x
    y.sum().backward()
    assert x.grad.tolist() == [2.0, 2.0]


def test_inplace_rules():
    w = rb.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="no_grad"):
        w.add_(1)
    with rb.no_grad():
        w.add_(1).mul_(2)
    assert w.tolist() == [4.0, 4.0, 4.0]
    # modifying a tensor that a recorded op saved is detected at backward time
    a = rb.ones(3)
    y = (w * a).sum()
    a[0] = 5.0
    with pytest.raises(RuntimeError, match="modified in place"):
        y.backward()
    b = rb.zeros(4)
    b[1:3] = rb.tensor([1.0, 2.0])
    b.fill_(0.5).zero_()
    assert b.tolist() == [0.0] * 4
    c = rb.zeros(2, 2)
    c.copy_(rb.ones(2))
    assert c.tolist() == [[1.0, 1.0], [1.0, 1.0]]


def test_backward_needs_scalar_or_gradient():
    x = rb.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="one-element"):
        (x * 2).backward()
    (x * 2).backward(rb.tensor([1.0, 0.0, 2.0]))
    assert x.grad.tolist() == [2.0, 0.0, 4.0]
    with pytest.raises(RuntimeError, match="does not require grad"):
        rb.ones(2).sum().backward()


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(1, 3), min_size=0, max_size=3),
    st.lists(st.booleans(), min_size=3, max_size=3),
    st.sampled_from(["add", "sub", "mul", "div", "maximum", "where"]),
)
def test_broadcasting_gradients_property(shape, squash, op):
    """Broadcasting any operand shapes: gradients have the operand's shape and equal finite differences."""
    a_shape = tuple(shape)
    b_shape = tuple(1 if s else n for n, s in zip(shape, squash))[-max(len(shape) - 1, 0):] if shape else ()
    rng = np.random.default_rng(len(shape) + 10 * sum(squash))
    a = rb.tensor(rng.uniform(0.5, 2.0, a_shape), dtype=rb.float64, requires_grad=True)
    b = rb.tensor(rng.uniform(0.5, 2.0, b_shape), dtype=rb.float64, requires_grad=True)
    funcs = {"add": rb.add, "sub": rb.sub, "mul": rb.mul, "div": rb.div, "maximum": rb.maximum,
             "where": lambda u, v: rb.where(u.data > 1.0, u, v)}
    out = funcs[op](a, b)
    ga, gb = rb.grad(out.sum(), [a, b], allow_unused=True)
    assert ga.shape == a.shape and (gb is None or gb.shape == b.shape)
    assert rb.autograd.gradcheck(funcs[op], (a, b))


def test_save_load_roundtrip_and_interop(tmp_path):
    path = tmp_path / "t.safetensors"
    data = {"w": rb.randn(3, 4), "i": rb.arange(5), "d": rb.ones(2, dtype=rb.float64), "b": rb.tensor([True, False])}
    rb.save(data, path)
    back = rb.load(path)
    assert list(back) == list(data)
    for k in data:
        assert back[k].dtype == data[k].dtype and np.array_equal(back[k].numpy(), data[k].numpy())
    safetensors = pytest.importorskip("safetensors.numpy")
    theirs = safetensors.load_file(str(path))
    assert np.array_equal(theirs["w"], data["w"].numpy())
    safetensors.save_file({"x": np.arange(6, dtype=np.float32).reshape(2, 3)}, str(tmp_path / "s.safetensors"))
    assert rb.load(tmp_path / "s.safetensors")["x"].tolist() == [[0, 1, 2], [3, 4, 5]]


def test_load_rejects_non_safetensors_files(tmp_path):
    import pickle

    bad = tmp_path / "model.pt"
    bad.write_bytes(pickle.dumps({"w": [1, 2, 3]}))
    with pytest.raises(ValueError, match="not a safetensors file"):
        rb.load(bad)
    (tmp_path / "empty").write_bytes(b"")
    with pytest.raises(ValueError, match="not a safetensors file"):
        rb.load(tmp_path / "empty")


def test_backend_seam_without_cupy():
    from rosenblatt.backend import get_array_module

    assert get_array_module(np.ones(2)) is np
    assert isinstance(rb.cuda.is_available(), bool)
    assert rb.cuda.device_count() >= 0
    assert str(rb.device("cuda:1")) == "cuda:1" and rb.ones(2).device == "cpu"
    if not rb.cuda.is_available():
        with pytest.raises(RuntimeError, match="CuPy"):
            rb.ones(2).to("cuda")
    with pytest.raises(ValueError, match="device"):
        rb.device("tpu")


def test_import_is_cheap():
    import subprocess
    import sys

    code = ("import sys, rosenblatt; heavy = [m for m in ('matplotlib', 'torch', 'scipy', 'sklearn', 'cupy', "
            "'onnx', 'optuna', 'mpi4py', 'tqdm') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_composite_backward_with_an_input_computed_from_another():
    """A fused node's ``create_graph`` gradient when one input is computed from another (a residual
    block's shortcut from its input): each input's own partial derivative, nothing counted twice."""
    x = rb.tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    (g,) = rb.autograd.grad(_FusedProduct.apply(x, x * 2.0).sum(), [x], create_graph=True)
    np.testing.assert_allclose(g.numpy(), 4.0 * x.numpy())  # d/dx (2 x^2) = 4x
    (gg,) = rb.autograd.grad(g.sum(), [x])
    np.testing.assert_allclose(gg.numpy(), [4.0, 4.0, 4.0])


@pytest.mark.parametrize("case", ["matmul", "matmul-broadcast", "matmul-vector", "sum", "sum-keepdims", "mean",
                                  "mean-all", "softmax", "log_softmax"])
def test_array_gradients_equal_the_differentiable_backward(case):
    # A plain backward() runs an op's backward_arrays; create_graph=True runs its differentiable
    # backward. Both must give the same gradients, for every input and broadcast.
    rng = np.random.default_rng(3)
    a = rng.standard_normal((2, 3, 4))
    b = rng.standard_normal((4, 5)) if case != "matmul-broadcast" else rng.standard_normal((1, 4, 5))
    fns = {
        "matmul": lambda x, y: x @ y,
        "matmul-broadcast": lambda x, y: x @ y,
        "matmul-vector": lambda x, y: x @ y[:, 0],
        "sum": lambda x, y: x.sum(axis=(0, 2)) * y.sum(),
        "sum-keepdims": lambda x, y: x.sum(axis=1, keepdims=True) * y.mean(),
        "mean": lambda x, y: x.mean(axis=-1) * y.sum(),
        "mean-all": lambda x, y: x.mean() * y,
        "softmax": lambda x, y: rb.softmax(x, axis=1) * y.sum(),
        "log_softmax": lambda x, y: rb.log_softmax(x, axis=-1) * y.sum(),
    }
    weights = None
    grads = []
    for create_graph in (False, True):
        x, y = rb.tensor(a, requires_grad=True), rb.tensor(b, requires_grad=True)
        out = fns[case](x, y)
        if weights is None:
            weights = rng.standard_normal(out.shape)
        gx, gy = rb.grad((out * rb.tensor(weights)).sum(), [x, y], create_graph=create_graph)
        grads.append((gx.numpy(), gy.numpy()))
    for plain, recorded in zip(*grads):
        np.testing.assert_allclose(plain, recorded, rtol=1e-12, atol=1e-12)
    x = rb.tensor(a, requires_grad=True)
    fns[case](x, rb.tensor(b)).sum().backward()
    assert x.grad.numpy().flags.writeable  # a leaf's gradient is its own array, not a broadcast view


def test_a_leaf_takes_a_private_view_gradient_without_a_copy_and_copies_a_shared_one():
    """A gradient that is a view of a whole buffer nothing else holds (a channels-last gradient, an
    NCHW view of NHWC memory) becomes ``.grad`` as it is; a view of memory that something else
    holds (here: the op's own saved buffer) is copied, so writing into ``.grad`` changes nothing else."""
    kept = {}

    class ViewGradient(rb.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 1.0

        @staticmethod
        def backward_arrays(ctx, gy):
            buffer = np.ascontiguousarray(gy.transpose(0, 2, 3, 1))  # NHWC memory
            view = buffer.transpose(0, 3, 1, 2)
            if kept.get("share"):
                kept["buffer"] = buffer
            kept["view"] = view
            return view

    a = np.arange(2 * 3 * 4 * 5, dtype=np.float64).reshape(2, 3, 4, 5)
    for share in (False, True):
        kept.clear()
        kept["share"] = share
        x = rb.tensor(a, requires_grad=True)
        ViewGradient.apply(x).backward(rb.tensor(a))
        np.testing.assert_array_equal(x.grad.numpy(), a)
        assert x.grad.numpy().strides == kept["view"].strides  # the layout is kept either way
        assert (x.grad.numpy() is kept["view"]) is not share
        x.grad.data[0, 0, 0, 0] = -1.0
        if share:
            assert kept["buffer"][0, 0, 0, 0] == 0.0


@requires_torch
@pytest.mark.parametrize("symbol", ["+=", "-=", "*=", "/="])
def test_augmented_assignment_changes_the_tensor_itself_as_in_pytorch(symbol):
    """``x op= y`` writes into ``x`` (other names for it see the change) wherever nothing is recorded,
    with PyTorch's values; the manual update ``p -= lr * p.grad`` under no_grad trains the model's
    own parameter; a leaf that requires grad raises outside no_grad; a tensor inside a recorded
    graph gets a new tensor with the right gradient; a shape change is refused."""
    rng = np.random.default_rng(5)
    a, b = rng.standard_normal((2, 3)) + 3, rng.standard_normal(3) + 3
    results = {}
    for lib in (rb, torch):
        x = lib.tensor(a)
        alias = x
        exec(f"x {symbol} lib.tensor(b)", {"lib": lib, "b": b, "x": x})
        results[lib.__name__] = alias.numpy().copy()
    np.testing.assert_allclose(results["rosenblatt"], results["torch"], rtol=1e-12)

    w = rb.nn.Parameter(rb.tensor(a))
    w.grad = rb.tensor(b * np.ones_like(a))
    params = [w]
    with rb.no_grad():
        for p in params:
            exec(f"p {symbol} 0.5 * p.grad", {"p": p})
    assert params[0] is w
    np.testing.assert_allclose(w.numpy(), eval(f"a {symbol[0]} (0.5 * b * np.ones_like(a))"), rtol=1e-12)

    leaf = rb.tensor(a, requires_grad=True)
    with pytest.raises(RuntimeError, match=f"x \\{symbol[0]}= y: a leaf tensor that requires grad"):
        exec(f"leaf {symbol} 2.0", {"leaf": leaf})

    x = rb.tensor(a, requires_grad=True)
    tx = torch.tensor(a, requires_grad=True)
    for lib, t in ((rb, x), (torch, tx)):
        h = t * 2.0
        scope = {"h": h, "y": lib.tensor(b)}
        exec(f"h {symbol} y", scope)
        (scope["h"] * scope["h"]).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-12)

    with pytest.raises(ValueError, match=f"x \\{symbol[0]}= y: in place, the result must keep x's shape"):
        exec(f"z {symbol} rb.tensor(a)", {"z": rb.tensor(b), "rb": rb, "a": a})
