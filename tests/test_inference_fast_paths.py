"""Inference fast paths: what they remember between calls must never outlive a change.

The oneDNN recurrent kernels keep the weights in their own layouts between inference calls, and
convolutions remember their checked geometry. Each test changes what was remembered in every way
the framework offers and checks the next result against a run that remembered nothing (under the
NumPy kernels the same tests check that nothing else changed).
"""

from __future__ import annotations

import numpy as np
import pytest

import rosenblatt as rb
from rosenblatt.nn.functional.conv import _conv_geometry


def _grad_mode_output(layer, x):
    """The layer's output with gradients recorded: the training-path kernels, nothing reused."""
    out, _ = layer(x)
    return out.detach().numpy()


@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN"])
def test_recurrent_inference_sees_every_weight_change(kernel_set, mode):
    rb.manual_seed(0)
    rng = np.random.default_rng(0)
    layer = getattr(rb.nn, mode)(6, 8, num_layers=2)
    layer.eval()
    x = rb.tensor(rng.standard_normal((5, 1, 6)).astype(np.float32), requires_grad=True)

    def check() -> None:
        with rb.no_grad():
            first, _ = layer(x)
            again, _ = layer(x)  # a second call reuses what the first prepared
        expected = _grad_mode_output(layer, x)
        np.testing.assert_allclose(first.numpy(), expected, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(again.numpy(), first.numpy())

    check()
    opt = rb.optim.SGD(layer.parameters(), lr=0.5)
    out, _ = layer(x)
    out.sum().backward()
    opt.step()
    check()
    with rb.no_grad():
        layer.weight_hh_l0.mul_(-1.0)
    check()
    layer.load_state_dict({k: v.numpy() * 0.5 for k, v in layer.state_dict().items()})
    check()
    layer.reset_parameters()
    check()
    layer.weight_ih_l1 = rb.nn.Parameter(rng.standard_normal(layer.weight_ih_l1.shape).astype(np.float32))
    check()
    layer.bias_hh_l0.data = rng.standard_normal(layer.bias_hh_l0.shape).astype(np.float32)  # a new array
    check()
    for p in layer.parameters():  # writes into the arrays themselves move no version: compared by value
        p.data -= 0.05 * np.sign(p.data)
    check()
    layer.weight_hh_l1.data[2, 3] = 5.0
    check()


def test_snapshot_tells_written_arrays_apart():
    from rosenblatt.kernels.snapshot import Snapshot

    small = np.arange(12, dtype=np.float32)  # kept as bytes
    big = np.random.default_rng(0).standard_normal(100_000).astype(np.float32)  # kept as an array
    big[5] = np.nan
    mid = np.arange(2_000, dtype=np.float64).reshape(40, 50)  # an array too
    strided = big.reshape(400, 250)[:, ::3]  # not contiguous: bytes
    arrays = [small, None, big, mid, strided]
    snap = Snapshot(arrays)
    assert snap.holds(arrays)  # NaN equals itself bit for bit
    assert not snap.holds([small.copy()] + arrays[1:])  # another array with the same values
    assert not snap.holds([small, big, None, mid, strided]) and not snap.holds([small, None])
    for array, index in ((small, (7,)), (big, (99_999,)), (big, (0,)), (mid, (39, 49)), (mid, (0, 0)),
                         (strided, (399, 83))):
        old = array[index]
        array[index] = -0.0 if old == 0 else old * 2
        assert not snap.holds(arrays)
        array[index] = old
        assert snap.holds(arrays)
    small[0] = -0.0  # was 0.0: the same value, other bits
    assert not snap.holds(arrays)


def test_conv_geometry_is_remembered_but_still_checked():
    geom = _conv_geometry("conv2d", (8, 8), (3, 3), 1, 1, 1, 1)
    assert _conv_geometry("conv2d", (8, 8), (3, 3), 1, 1, 1, 1) is geom
    assert _conv_geometry("conv2d", (8, 8), (3, 3), (1, 1), "same", 1, 1).padding == ((1, 1), (1, 1))
    # arguments equal to remembered ones but of the wrong type still fail, with the same message
    for stride, padding in [(True, 1), (1.0, 1), ((1, True), 1), (1, (1, -1))]:
        with pytest.raises(ValueError, match="conv2d: (stride|padding)"):
            _conv_geometry("conv2d", (8, 8), (3, 3), stride, padding, 1, 1)
    assert _conv_geometry("conv2d", (8, 8), (3, 3), [1, 1], [1, 1], 1, 1) == geom  # lists: not remembered
    with pytest.raises(ValueError, match="kernel extent"):
        _conv_geometry("conv2d", (2, 2), (3, 3), 1, 0, 1, 1)


def test_pooling_geometry_is_remembered_but_still_checked():
    from rosenblatt.nn.functional.pooling import _pool_geometry

    geom = _pool_geometry("max_pool2d", (8, 8), 2, None, 0, 1, False)
    assert _pool_geometry("max_pool2d", (8, 8), 2, None, 0, 1, False) is geom
    assert _pool_geometry("max_pool2d", (8, 8), 2, None, 0, 1, True) is not geom
    assert _pool_geometry("max_pool2d", (8, 8), [2, 2], None, 0, 1, False).out_hw == geom.out_hw
    for kernel, padding in [(True, 0), (2.0, 0), ((2, True), 0), (2, 2)]:
        with pytest.raises(ValueError, match="max_pool2d: (kernel_size|padding)"):
            _pool_geometry("max_pool2d", (8, 8), kernel, None, padding, 1, False)
    x = rb.tensor(np.arange(64, dtype=np.float32).reshape(1, 1, 8, 8))
    for ceil_mode in (False, True):  # the same layer on another input size: its own geometry
        pool = rb.nn.MaxPool2d(3, 2, ceil_mode=ceil_mode)
        assert pool(x).shape == ((1, 1, 4, 4) if ceil_mode else (1, 1, 3, 3))
        assert pool(x[:, :, :7, :7]).shape == (1, 1, 3, 3)


@pytest.mark.parametrize("batch, channels, size, kernel, padding, dilation", [
    (1, 6, 14, 5, 0, 1),   # LeNet-5's second convolution
    (1, 1, 28, 5, 2, 1),   # its first
    (3, 4, 9, 3, 1, 2),    # several samples, dilation
    (2, 3, 7, (1, 3), (0, 2), 1),  # a non-square kernel and padding
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_small_convolution_plan_matches_the_general_kernel(kernel_set, monkeypatch, batch, channels, size, kernel,
                                                           padding, dilation, dtype):
    """The NumPy convolution of a small input runs on a plan of its own (buffers zero-padded once, a
    window view built once): the same values as the general kernel, call after call on new inputs,
    and an output that owns its memory."""
    from rosenblatt.kernels import conv as kconv

    rng = np.random.default_rng(5)
    k = (kernel, kernel) if isinstance(kernel, int) else kernel
    p = (padding, padding) if isinstance(padding, int) else padding
    geom = _conv_geometry("conv2d", (size, size), k, 1, p, dilation, 1)
    w = rng.standard_normal((5, channels) + k).astype(dtype)
    inputs = [rng.standard_normal((batch, channels, size, size)).astype(dtype) for _ in range(3)]
    kconv._small_plans.plans.clear()
    fast = [kconv.conv2d_array(x, w, geom) for x in inputs]
    assert len(kconv._small_plans.plans) == 1
    plan = next(iter(kconv._small_plans.plans.values()))
    assert not any(np.shares_memory(y, buf) for y in fast for buf in (plan.out, plan.cols))
    fast[0][...] = np.nan  # the caller owns its output: the next call is not disturbed
    again = kconv.conv2d_array(inputs[1], w, geom)
    monkeypatch.setattr(kconv, "SMALL_PLAN_ELEMENTS", 0)
    kconv._small_plans.plans.clear()
    general = [kconv.conv2d_array(x, w, geom) for x in inputs]
    assert not kconv._small_plans.plans
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for y, ref in zip(fast[1:] + [again], general[1:] + [general[1]]):
        np.testing.assert_allclose(y, ref, rtol=tol, atol=tol)
    assert not np.allclose(general[0], general[1])


def test_conv2d_inference_path_matches_and_sees_every_change(kernel_set):
    """Conv2d without gradients skips the functional's checks for an input geometry it has checked
    before: the same values as the recorded op, a changed weight or argument is seen, and bad input
    gets the same errors."""
    rb.manual_seed(0)
    rng = np.random.default_rng(6)
    conv = rb.nn.Conv2d(3, 4, 3, padding=1)
    x = rb.tensor(rng.standard_normal((2, 3, 8, 8)).astype(np.float32))

    def check():
        with rb.no_grad():
            fast = conv(x)
        assert fast.grad_fn is None and not fast.requires_grad
        np.testing.assert_allclose(fast.numpy(), conv(x).detach().numpy(), rtol=1e-5, atol=1e-5)
        return fast.numpy()

    first = check()
    with rb.no_grad():
        conv.weight.mul_(-1)
    assert not np.allclose(check(), first)
    conv.stride = (2, 2)
    assert check().shape == (2, 4, 4, 4)
    conv.padding = (0, 0)
    assert check().shape == (2, 4, 3, 3)
    conv.dilation = (2, 2)
    assert check().shape == (2, 4, 2, 2)
    conv.bias = None
    check()
    with rb.no_grad():
        with pytest.raises(ValueError, match=r"Conv2d\(3, 4.*expected input with 3 channels, got 5"):
            conv(rb.tensor(np.zeros((2, 5, 8, 8), np.float32)))
        with pytest.raises(ValueError, match="kernel extent"):
            conv(rb.tensor(np.zeros((2, 3, 2, 2), np.float32)))
        with pytest.raises(TypeError, match=r"Conv2d\(3, 4.*expected a Tensor"):
            conv(np.zeros((2, 3, 8, 8), np.float32))


# -- Linear without a graph node, and Linear -> ReLU in one product -------------------------------


@pytest.mark.parametrize("batch", [1, 3, 300])
def test_linear_inference_path_matches_the_recorded_op(kernel_set, batch):
    rb.manual_seed(0)
    rng = np.random.default_rng(1)
    model = rb.nn.Sequential(rb.nn.Linear(784, 512), rb.nn.ReLU(), rb.nn.Linear(512, 30), rb.nn.ReLU(),
                             rb.nn.Linear(30, 10), rb.nn.ReLU())
    x = rb.tensor(rng.standard_normal((batch, 784)).astype(np.float32))
    expected = x
    for layer in model:  # gradients recorded, layer by layer: LinearFn and ReLU nodes
        expected = layer(expected)
    assert expected.grad_fn is not None
    with rb.no_grad():
        fast = model(x)
        single = model[0](x)
    assert fast.grad_fn is None and not fast.requires_grad
    np.testing.assert_allclose(fast.numpy(), expected.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(single.numpy(), model[0](x).detach().numpy(), rtol=1e-5, atol=1e-6)
    model[2].weight.data[...] *= -2  # nothing is remembered between calls
    with rb.no_grad():
        changed = model(x).numpy()
    np.testing.assert_allclose(changed, model(x).detach().numpy(), rtol=1e-5, atol=1e-6)
    assert not np.allclose(changed, fast.numpy())


@pytest.mark.parametrize("batch", [3, 300])  # small: sgemm and NumPy's activation; big: a post-op
@pytest.mark.parametrize("act", ["ReLU", "Tanh"])
def test_linear_activation_pairs_train_as_one_node(kernel_set, batch, act):
    """In training a Sequential's Linear -> ReLU / Tanh pairs are LinearReLUFn / LinearTanhFn nodes
    with the values and gradients of the layers run one by one (every parameter, and the input)."""
    from rosenblatt.nn.functional.linear import LinearFn, LinearReLUFn, LinearTanhFn

    fused_node = LinearReLUFn if act == "ReLU" else LinearTanhFn
    rb.manual_seed(0)
    rng = np.random.default_rng(4)
    model = rb.nn.Sequential(rb.nn.Linear(20, 64), getattr(rb.nn, act)(), rb.nn.Linear(64, 32), getattr(rb.nn, act)(),
                             rb.nn.Linear(32, 5))
    x_data = rng.standard_normal((batch, 20)).astype(np.float32)
    target = rb.tensor(rng.integers(0, 5, batch))

    def run(fused: bool):
        x = rb.tensor(x_data, requires_grad=True)
        model.zero_grad()
        h = model(x) if fused else x
        if not fused:
            for layer in model:
                h = layer(h)
        nodes = (type(h.grad_fn), type(h.grad_fn.inputs[0].grad_fn))
        rb.nn.functional.cross_entropy(h, target).backward()
        return h, nodes, [x.grad.numpy()] + [p.grad.numpy() for p in model.parameters()]

    out, nodes, fused = run(True)
    assert nodes == (LinearFn, fused_node)
    out_ref, nodes, unfused = run(False)
    assert nodes[1] is not fused_node
    np.testing.assert_allclose(out.detach().numpy(), out_ref.detach().numpy(), rtol=1e-5, atol=1e-6)
    for a, b in zip(fused, unfused):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    if act == "ReLU":
        assert any((g == 0).any() for g in fused[1:])  # some ReLUs were off: the mask mattered
    with rb.no_grad():  # inference: the pairs as one product each, the same values
        np.testing.assert_allclose(model(rb.tensor(x_data)).numpy(), out_ref.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_linear_relu_pair_respects_hooks_and_errors(kernel_set):
    rng = np.random.default_rng(2)
    model = rb.nn.Sequential(rb.nn.Linear(8, 6), rb.nn.ReLU(), rb.nn.Linear(6, 4))
    x = rb.tensor(rng.standard_normal((5, 8)).astype(np.float32))
    seen = []
    handle = model[1].register_forward_hook(lambda m, inp, out: seen.append(inp[0].numpy().copy()))
    with rb.no_grad():
        model(x)
    handle.remove()
    assert len(seen) == 1 and (seen[0] < 0).any()  # the hook saw the Linear output before the ReLU
    handle = model[0].register_forward_hook(lambda m, inp, out: out * 0)
    with rb.no_grad():
        out = model[:2](x)
    handle.remove()
    assert np.all(out.numpy() == 0)
    with rb.no_grad(), pytest.raises(ValueError, match=r"Linear\(8, 6\).*expected input of shape \(\*, 8\)"):
        model(rb.tensor(np.zeros((5, 7), np.float32)))


# -- consecutive residual blocks share their output's oneDNN-layout copy ---------------------------


def test_chained_residual_blocks_match_and_see_changes_between_blocks(kernel_set):
    rb.manual_seed(0)
    model = rb.models.resnet20(num_classes=10).eval()
    x = rb.tensor(np.random.default_rng(3).standard_normal((2, 3, 32, 32)).astype(np.float32))
    with rb.no_grad():
        chained = model(x).numpy()
        blocks = []
        h = model.relu(model.bn1(model.conv1(x)))
        for block in list(model.layer1) + list(model.layer2) + list(model.layer3):
            h = block(h)
            blocks.append(h)
    expected = model.train(False)(x.detach()).numpy()  # the same again: nothing stale is reused
    np.testing.assert_allclose(chained, expected, rtol=1e-5, atol=1e-5)
    # a block whose input was changed in place (a forward hook) must not start from the old copy
    with rb.no_grad():
        reference = model.layer1[1](blocks[0] * 0.5).numpy()
        handle = model.layer1[0].register_forward_hook(lambda m, inp, out: out.mul_(0.5))
        y0 = model.layer1[0](model.relu(model.bn1(model.conv1(x))))
        handle.remove()
        np.testing.assert_allclose(y0.numpy(), blocks[0].numpy() * 0.5, rtol=1e-6)
        np.testing.assert_allclose(model.layer1[1](y0).numpy(), reference, rtol=1e-5, atol=1e-6)
