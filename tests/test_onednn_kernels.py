"""Convolution, pooling and batch-norm kernels under both kernel sets, against PyTorch.

Every case runs with the NumPy kernels and with the oneDNN kernels (skipped where the library
is not installed); under oneDNN the test also checks that the oneDNN kernel really ran (its
primitive is in the cache) rather than silently declining to the NumPy one.
"""

from __future__ import annotations

import numpy as np
import pytest

import rosenblatt as rb
from rosenblatt.kernels.onednn import library as L
from rosenblatt.nn import functional as F
from tests.parity import check_grad, check_op, check_second_order, requires_torch

if True:  # the oracle, imported lazily by tests.parity
    from tests.parity import torch

TF = None if torch is None else torch.nn.functional
ONEDNN_OK, ONEDNN_WHY = L.load()
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same'")
rng = np.random.default_rng(7)


def r(*shape):
    return rng.standard_normal(shape)


@pytest.fixture(params=["numpy", "onednn"])
def kernel_set(request, monkeypatch):
    """Runs the test under each kernel set; the oneDNN kernels also take the tiny test shapes."""
    if request.param == "onednn":
        if not ONEDNN_OK:
            pytest.skip(f"oneDNN unavailable: {ONEDNN_WHY}")
        from rosenblatt.kernels.onednn import conv as dnn_conv
        from rosenblatt.kernels.onednn import pooling as dnn_pool

        monkeypatch.setattr(dnn_conv, "MIN_MACS", 0)
        monkeypatch.setattr(dnn_pool, "MIN_ELEMENTS", 0)
    before = rb.kernels.active()
    rb.kernels.set_kernels(request.param)
    L.clear_cache()
    yield request.param
    rb.kernels.set_kernels(before)


def _ran(kind: str) -> bool:
    """True when a oneDNN primitive of ``kind`` ("conv", "pool", "batch_norm") was built (in any layout:
    "conv nhwc" is a channels-last convolution)."""
    for key, value in L.cache_items():
        if isinstance(key, tuple) and key and key[0] in (kind, f"{kind} nhwc") and value:
            primitives = getattr(value, "_primitives", None)
            if primitives is None or any(p is not None for p in primitives.values()):
                return True
    return False


def _expect(kernel_set: str, kind: str) -> None:
    assert _ran(kind) == (kernel_set == "onednn"), f"{kind} kernel of {kernel_set} did not run"


CONV_CASES = [
    ((2, 3, 7, 8), (4, 3, 3, 3), {}),
    ((2, 3, 9, 7), (5, 3, 3, 2), dict(stride=2, padding=1)),
    ((1, 4, 10, 9), (6, 2, 3, 3), dict(stride=(2, 3), padding=(2, 1), dilation=2, groups=2)),
    ((2, 4, 7, 6), (8, 1, 3, 3), dict(padding="same", groups=4)),  # depthwise, multiplier 2
    ((2, 3, 7, 8), (4, 3, 4, 2), dict(padding="same", dilation=(1, 2))),  # asymmetric padding
    ((2, 5, 6, 7), (3, 5, 1, 1), dict(stride=2)),
    ((3, 16, 8, 8), (16, 16, 3, 3), dict(padding=1)),  # blocked layouts
]


@requires_torch
@pytest.mark.parametrize("xs, ws, kw", CONV_CASES)
def test_conv2d_matches_torch(kernel_set, xs, ws, kw):
    fn = lambda x, w, b: F.conv2d(x, w, b, **kw)  # noqa: E731
    t_fn = lambda x, w, b: TF.conv2d(x, w, b, **kw)  # noqa: E731
    check_op(fn, t_fn, [r(*xs), r(*ws), r(ws[0])], np.float32)
    _expect(kernel_set, "conv")


@requires_torch
def test_conv2d_without_bias_and_frozen_input(kernel_set):
    x, w = rb.tensor(r(2, 3, 6, 6).astype(np.float32)), rb.tensor(r(4, 3, 3, 3).astype(np.float32), requires_grad=True)
    y = F.conv2d(x, w, padding=1)
    y.backward(rb.tensor(np.ones(y.shape, np.float32)))
    tw = torch.tensor(w.numpy(), requires_grad=True)
    TF.conv2d(torch.tensor(x.numpy()), tw, padding=1).sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), tw.grad.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(y.numpy(), TF.conv2d(torch.tensor(x.numpy()), tw, padding=1).detach().numpy(),
                               rtol=1e-5, atol=1e-5)


@requires_torch
@pytest.mark.parametrize("kw", [dict(stride=2, padding=1, output_padding=1), dict(groups=2, dilation=2),
                                dict(stride=(2, 1), padding=(0, 1))])
def test_conv_transpose2d_matches_torch(kernel_set, kw):
    groups = kw.get("groups", 1)
    fn = lambda x, w, b: F.conv_transpose2d(x, w, b, **kw)  # noqa: E731
    t_fn = lambda x, w, b: TF.conv_transpose2d(x, w, b, **kw)  # noqa: E731
    check_op(fn, t_fn, [r(2, 4, 5, 6), r(4, 6 // groups, 3, 3), r(6)], np.float32)
    _expect(kernel_set, "conv")


@requires_torch
@pytest.mark.parametrize("bias", [False, True])
def test_conv_transpose2d_backward_reorders_the_output_gradient_once(kernel_set, monkeypatch, bias):
    """The input gradient of a transposed convolution is a convolution of the output gradient; under
    oneDNN it keeps its copy of that gradient in the convolution's layout, and the weight gradient
    reads the copy instead of reordering the gradient again. Both gradients match PyTorch."""
    from rosenblatt.kernels.onednn import conv as dnn_conv
    from rosenblatt.nn.functional import conv as conv_fn

    sources = []
    real = conv_fn.onednn_grad_weight
    monkeypatch.setattr(conv_fn, "onednn_grad_weight", lambda x, *a: sources.append(type(x)) or real(x, *a))
    kw = dict(stride=2, padding=1)
    arrays = [r(4, 8, 6, 6).astype(np.float32), r(8, 6, 4, 4).astype(np.float32), r(6).astype(np.float32)]
    ours = [rb.tensor(a, requires_grad=True) for a in arrays[:2 + bias]]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays[:2 + bias]]
    y, ty = F.conv_transpose2d(*ours, **kw), TF.conv_transpose2d(*theirs, **kw)
    g = r(*ty.shape).astype(np.float32)
    y.backward(rb.tensor(g))
    ty.backward(torch.tensor(g))
    for a, b in [(y, ty)] + [(o.grad, t.grad) for o, t in zip(ours, theirs)]:
        np.testing.assert_allclose(a.numpy(), b.detach().numpy(), rtol=1e-4, atol=1e-4)
    if kernel_set == "onednn":
        assert sources == [dnn_conv._Relaid]
    else:
        assert all(s is np.ndarray for s in sources)


def test_aligned_empty_starts_on_a_cache_line():
    from rosenblatt.kernels.workspace import ALIGNMENT, aligned_empty

    for shape, dtype in [((3,), np.float32), ((64, 16, 32, 32), np.float32), ((5, 7), np.float64), ((0,), np.float32),
                         ((2, 0, 3), np.uint8)]:
        for _ in range(8):  # malloc hands out 16-byte-aligned blocks: one in four is aligned by chance
            a = aligned_empty(shape, dtype)
            assert a.shape == shape and a.dtype == dtype and a.flags.c_contiguous and a.flags.writeable
            assert a.ctypes.data % ALIGNMENT == 0


@pytest.mark.skipif(not ONEDNN_OK, reason="oneDNN unavailable")
def test_onednn_outputs_are_aligned_from_the_threshold_on():
    small = L.ALIGNED_MIN_BYTES // 4 - 1
    assert all(L.empty(L.ALIGNED_MIN_BYTES // 4).ctypes.data % 64 == 0 for _ in range(8))
    assert all(L.empty((2, L.ALIGNED_MIN_BYTES // 8)).shape == (2, L.ALIGNED_MIN_BYTES // 8) for _ in range(2))
    assert all(L.empty(7, aligned=True).ctypes.data % 64 == 0 for _ in range(8))
    assert L.empty(small).base is None  # below the threshold: NumPy's own allocation
    cl = L.empty_channels_last((2, 3, 4, 5))
    assert cl.shape == (2, 3, 4, 5) and L.channels_last(cl) is not None


@requires_torch
@pytest.mark.parametrize("channels", [(16, 32), (5, 7), (8, 3), (3, 16), (32, 64), (12, 12), (4, 20), (24, 8)])
def test_conv_weight_gradients_are_aligned_and_kept_as_they_are(kernel_set, channels):
    """oneDNN's weights pass writes its weight and bias gradients 64-byte aligned (misaligned, it ran
    up to 40 % slower), and those arrays become the leaves' ``.grad`` with no copy; the values match
    PyTorch under both kernel sets."""
    c, o = channels
    arrays = [r(4, c, 9, 9).astype(np.float32), r(o, c, 3, 3).astype(np.float32), r(o).astype(np.float32)]
    ours = [rb.tensor(a, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    y, ty = F.conv2d(*ours, padding=1), TF.conv2d(*theirs, padding=1)
    g = r(*ty.shape).astype(np.float32)
    y.backward(rb.tensor(g))
    ty.backward(torch.tensor(g))
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-4, atol=1e-4)
    if kernel_set == "onednn":
        _expect(kernel_set, "conv")
        for t in ours[1:]:
            assert t.grad.data.ctypes.data % 64 == 0
            assert t.grad.data.base is not None  # the kernel's aligned allocation itself, not a copy


def test_only_whole_aligned_allocations_pass_as_a_leafs_own_gradient():
    """A leaf keeps a kernel's gradient without a copy when the array is the whole of its aligned
    allocation (plain or channels-last); a view of part of one, or one still referred to elsewhere,
    is copied."""
    from rosenblatt.core import _sole_view
    from rosenblatt.kernels.workspace import aligned_empty

    # (each array is made on a line of its own: an assert's operands stay referenced for its message)
    plain = aligned_empty((3, 5), np.float32)
    channels_last = aligned_empty((2, 4, 4, 3), np.float32).transpose(0, 3, 1, 2)
    every_other = aligned_empty((12,), np.float32)[::2]
    all_but_one = aligned_empty((12,), np.float32)[:11]
    kept = [_sole_view(plain), _sole_view(channels_last), _sole_view(every_other), _sole_view(all_but_one)]
    assert kept == [True, True, False, False]
    shared = plain.base
    referred_elsewhere = _sole_view(plain)
    assert not referred_elsewhere
    del shared


@requires_torch
@pytest.mark.parametrize("kw", [dict(padding=2), dict(stride=2, dilation=2, groups=3)])
def test_conv1d_matches_torch(kernel_set, kw):
    groups = kw.get("groups", 1)
    fn = lambda x, w, b: F.conv1d(x, w, b, **kw)  # noqa: E731
    t_fn = lambda x, w, b: TF.conv1d(x, w, b, **kw)  # noqa: E731
    check_op(fn, t_fn, [r(2, 6, 17), r(9, 6 // groups, 3), r(9)], np.float32)
    _expect(kernel_set, "conv")


@requires_torch
@pytest.mark.parametrize("kw", [dict(padding=1), dict(stride=(1, 2, 2), padding=(0, 1, 1), dilation=(2, 1, 1), groups=2)])
def test_conv3d_matches_torch(kernel_set, kw):
    groups = kw.get("groups", 1)
    fn = lambda x, w, b: F.conv3d(x, w, b, **kw)  # noqa: E731
    t_fn = lambda x, w, b: TF.conv3d(x, w, b, **kw)  # noqa: E731
    check_op(fn, t_fn, [r(2, 4, 5, 6, 7), r(6, 4 // groups, 3, 3, 3), r(6)], np.float32)
    _expect(kernel_set, "conv")


@pytest.mark.skipif(not ONEDNN_OK, reason="oneDNN unavailable")
def test_tiny_convolutions_and_pools_stay_with_numpy():
    """Below MIN_MACS multiply-adds (MIN_ELEMENTS inputs) the fixed cost of a oneDNN call loses."""
    before = rb.kernels.active()
    rb.kernels.set_kernels("onednn")
    try:
        L.clear_cache()
        x, w = rb.tensor(r(1, 1, 8, 8).astype(np.float32)), rb.tensor(r(2, 1, 3, 3).astype(np.float32))
        y = F.conv2d(x, w)
        assert y.shape == (1, 2, 6, 6) and not _ran("conv")
        assert F.max_pool2d(y, 2).shape == (1, 2, 3, 3) and not _ran("pool")
    finally:
        rb.kernels.set_kernels(before)


@requires_torch
@pytest.mark.skipif(not ONEDNN_OK, reason="oneDNN unavailable")
def test_onednn_conv_kernel_is_n_dimensional(monkeypatch):
    """The kernels take any number of spatial axes: a 3-d convolution and its gradients."""
    from rosenblatt.kernels.onednn import conv as dnn

    monkeypatch.setattr(dnn, "MIN_MACS", 0)
    x, w, b = (r(2, 4, 5, 6, 7).astype(np.float32), r(6, 2, 3, 3, 2).astype(np.float32),
               r(6).astype(np.float32))
    geom = ((1, 2, 1), (1, 0, 1), (1, 0, 0), (1, 1, 2), 2)  # stride, pad before, pad after, dilation, groups
    y = dnn.conv_forward(x, w, b, *geom)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    ty = TF.conv3d(TF.pad(tx, (1, 0, 0, 0, 1, 1)), tw, tb, stride=(1, 2, 1), dilation=(1, 1, 2), groups=2)
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-5, atol=1e-5)
    gy = r(*y.shape).astype(np.float32)
    ty.backward(torch.tensor(gy))
    gx = dnn.conv_backward_data(gy, w, x.shape, *geom)
    gw, gb = dnn.conv_backward_weights(x, gy, w.shape, True, *geom)
    for got, want in ((gx, tx.grad), (gw, tw.grad), (gb, tb.grad)):
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-4, atol=1e-4)


POOL_CASES = [
    ("max", dict(kernel_size=2)),
    ("max", dict(kernel_size=3, stride=2, padding=1)),
    ("max", dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    ("max", dict(kernel_size=2, stride=1, dilation=2)),
    ("avg", dict(kernel_size=2)),
    ("avg", dict(kernel_size=3, stride=2, padding=1)),
    ("avg", dict(kernel_size=3, stride=2, padding=1, count_include_pad=False)),
    ("avg", dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)),
]


@requires_torch
@pytest.mark.parametrize("kind, kw", POOL_CASES)
def test_pool2d_matches_torch(kernel_set, kind, kw):
    fn, t_fn = (F.max_pool2d, TF.max_pool2d) if kind == "max" else (F.avg_pool2d, TF.avg_pool2d)
    x = r(2, 3, 9, 10)
    x[0, 0, 0, :4] = 1.0  # ties: the first position wins, in both frameworks
    check_op(lambda a: fn(a, **kw), lambda a: t_fn(a, **kw), [x], np.float32)
    _expect(kernel_set, "pool")


@requires_torch
def test_avg_pool_that_onednn_cannot_express_runs_numpy(kernel_set):
    """ceil_mode overhang with count_include_pad, and divisor_override: the NumPy kernel runs."""
    for kw in (dict(kernel_size=3, stride=2, padding=1, ceil_mode=True), dict(kernel_size=2, divisor_override=3)):
        check_op(lambda a, kw=kw: F.avg_pool2d(a, **kw), lambda a, kw=kw: TF.avg_pool2d(a, **kw), [r(2, 3, 8, 8)],
                 np.float32)
    assert not _ran("pool")


@requires_torch
def test_pooling_and_conv_second_derivatives(kernel_set):
    """create_graph=True (float64: oneDNN declines) still gives exact second derivatives."""
    w = r(2, 2, 2, 2)
    check_second_order(lambda x: F.max_pool2d(F.conv2d(x * x, rb.tensor(w), padding=1), 2),
                       lambda x: TF.max_pool2d(TF.conv2d(x * x, torch.tensor(w), padding=1), 2), [r(1, 2, 5, 5)])


@requires_torch
def test_float32_double_backward_through_onednn_max_pool(kernel_set):
    """A oneDNN forward keeps no argmax; recording backward recomputes it and stays exact."""
    x = r(2, 2, 6, 6).astype(np.float32)
    rx, tx = rb.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    (g,) = rb.grad((F.max_pool2d(rx * rx, 2) ** 2).sum(), [rx], create_graph=True)
    (tg,) = torch.autograd.grad((TF.max_pool2d(tx * tx, 2) ** 2).sum(), [tx], create_graph=True)
    (gg,) = rb.grad(g.sum(), [rx])
    (tgg,) = torch.autograd.grad(tg.sum(), [tx])
    np.testing.assert_allclose(g.numpy(), tg.detach().numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gg.numpy(), tgg.numpy(), rtol=1e-5, atol=1e-5)


def test_float64_gradcheck_under_either_kernel_set(kernel_set):
    w = rb.tensor(r(3, 2, 3, 3))
    check_grad(lambda x: F.avg_pool2d(F.max_pool2d(F.conv2d(x, w, padding=1), 2, 1), 2), [r(2, 2, 6, 6)])
    assert not _ran("conv") and not _ran("pool")  # float64 always runs NumPy


@requires_torch
@pytest.mark.parametrize("shape, blocked", [((8, 4, 5, 6), False), ((16, 3), False), ((4, 5, 7), False),
                                            ((8, 4, 5, 6), True), ((6, 20, 9, 9), True)])
def test_batch_norm_kernel_matches_torch(kernel_set, monkeypatch, shape, blocked):
    """Training-mode batch norm: output, running statistics and every gradient (4-D inputs also in
    oneDNN's blocked layout, 4 and 20 channels: padded to the block)."""
    if kernel_set == "onednn":
        from rosenblatt.kernels.onednn import normalization as dnn

        monkeypatch.setattr(dnn, "MIN_SPATIAL", 1)
        monkeypatch.setattr(dnn, "MIN_BLOCKED_ELEMENTS", 1 if blocked else 1 << 40)
        assert dnn._plan(shape, 1e-5).blocked is blocked
    c = shape[1]
    x = (r(*shape) * 3 + 2).astype(np.float32)
    layer = rb.nn.BatchNorm2d(c) if len(shape) == 4 else rb.nn.BatchNorm1d(c)
    t_layer = torch.nn.BatchNorm2d(c) if len(shape) == 4 else torch.nn.BatchNorm1d(c)
    weight, bias = r(c).astype(np.float32), r(c).astype(np.float32)
    layer.weight.data[:], layer.bias.data[:] = weight, bias
    with torch.no_grad():
        t_layer.weight[:], t_layer.bias[:] = torch.tensor(weight), torch.tensor(bias)
    gy = r(*shape).astype(np.float32)
    rx, tx = rb.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    y, ty = layer(rx), t_layer(tx)
    y.backward(rb.tensor(gy))
    ty.backward(torch.tensor(gy))
    pairs = [(y, ty), (rx.grad, tx.grad), (layer.weight.grad, t_layer.weight.grad),
             (layer.bias.grad, t_layer.bias.grad), (layer.running_mean, t_layer.running_mean),
             (layer.running_var, t_layer.running_var)]
    for got, want in pairs:
        np.testing.assert_allclose(got.numpy(), want.detach().numpy(), rtol=1e-4, atol=2e-5)
    _expect(kernel_set, "batch_norm")


def test_blocked_batch_norm_backward_without_the_kept_input(onednn):
    """The backward pass reorders the input again when the forward's blocked copy is not given."""
    from rosenblatt.kernels.onednn import normalization as dnn

    x = (r(16, 24, 12, 12) * 3 + 1).astype(np.float32)
    gy = r(*x.shape).astype(np.float32)
    w, b = r(24).astype(np.float32), r(24).astype(np.float32)
    assert x.size >= dnn.MIN_BLOCKED_ELEMENTS and dnn._plan(x.shape, 1e-5).blocked
    y, mean, var, kept = dnn.batch_norm_train_forward(x, w, b, 1e-5)
    assert kept is not None
    with_kept = dnn.batch_norm_train_backward(gy, x, w, mean, var, 1e-5, kept)
    without = dnn.batch_norm_train_backward(gy, x, w, mean, var, 1e-5)
    for a, e in zip(with_kept, without):
        np.testing.assert_array_equal(a, e)
    x_hat = (x - x.mean((0, 2, 3), keepdims=True)) / np.sqrt(x.var((0, 2, 3), keepdims=True) + 1e-5)
    np.testing.assert_allclose(y, x_hat * w[:, None, None] + b[:, None, None], rtol=1e-4, atol=1e-4)


@requires_torch
@pytest.mark.parametrize("chains", [False, True], ids=["layer by layer", "chain"])
def test_small_cnn_training_steps_match_torch(kernel_set, chains, monkeypatch):
    """conv -> relu -> max pool -> conv -> avg pool -> linear, three SGD steps, same weights: layer
    by layer, and as one layer chain (activations in oneDNN's layouts)."""
    from rosenblatt.kernels.onednn import chain

    monkeypatch.setattr(chain, "ENABLED", chains)
    model = rb.nn.Sequential(rb.nn.Conv2d(3, 8, 3, padding=1), rb.nn.ReLU(), rb.nn.MaxPool2d(2),
                             rb.nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=2), rb.nn.AvgPool2d(2),
                             rb.nn.Flatten(), rb.nn.Linear(8, 4))
    twin = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                               torch.nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=2), torch.nn.AvgPool2d(2),
                               torch.nn.Flatten(), torch.nn.Linear(8, 4))
    twin.load_state_dict({k: torch.tensor(v.numpy()) for k, v in model.state_dict().items()})
    opt, t_opt = rb.optim.SGD(model.parameters(), lr=0.1), torch.optim.SGD(twin.parameters(), lr=0.1)
    x, y = r(4, 3, 8, 8).astype(np.float32), rng.integers(0, 4, 4)
    for _ in range(3):
        opt.zero_grad()
        t_opt.zero_grad()
        loss = F.cross_entropy(model(rb.tensor(x)), rb.tensor(y))
        t_loss = TF.cross_entropy(twin(torch.tensor(x)), torch.tensor(y))
        loss.backward()
        t_loss.backward()
        opt.step()
        t_opt.step()
        np.testing.assert_allclose(loss.item(), t_loss.item(), rtol=1e-5)
    for (name, p), tp in zip(model.named_parameters(), twin.parameters()):
        np.testing.assert_allclose(p.numpy(), tp.detach().numpy(), rtol=1e-4, atol=1e-5, err_msg=name)
    _expect(kernel_set, "conv")
    _expect(kernel_set, "chain" if chains else "pool")


@pytest.mark.parametrize("kw", [dict(padding=1), dict(padding=1, groups=16), dict(stride=2, padding=1)])
def test_training_convolution_keeps_its_blocked_input_for_backward(onednn, kw, monkeypatch):
    """A convolution whose weight needs a gradient keeps the forward's copy of its input in oneDNN's
    layout for the weights pass (same gradients as reordering it again); backward releases it, and
    a frozen weight keeps nothing."""
    from rosenblatt.kernels.onednn import conv as dnn

    xs = r(8, 16, 24, 24).astype(np.float32)  # big enough for oneDNN (depthwise too)
    ws = r(16, 16 // kw.get("groups", 1), 3, 3).astype(np.float32)
    gy = None

    def run():
        nonlocal gy
        x, w = rb.tensor(xs, requires_grad=True), rb.tensor(ws, requires_grad=True)
        y = F.conv2d(x, w, rb.tensor(r(16).astype(np.float32), requires_grad=True), **kw)
        node = y.grad_fn
        kept = getattr(node, "x_relaid", None)
        gy = r(*y.shape).astype(np.float32) if gy is None else gy
        y.backward(rb.tensor(gy))
        assert not hasattr(node, "x_relaid")  # released with the node
        return kept, x.grad.numpy(), w.grad.numpy()

    kept, gx, gw = run()
    assert kept is not None and kept.buffer.size >= xs.size
    monkeypatch.setattr(dnn, "conv_forward_keeping_input", lambda *a: None)
    not_kept, gx2, gw2 = run()
    assert not_kept is None
    np.testing.assert_allclose(gx, gx2, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(gw, gw2, rtol=1e-5, atol=1e-5)
    monkeypatch.undo()
    frozen = F.conv2d(rb.tensor(xs, requires_grad=True), rb.tensor(ws), **kw)
    assert not hasattr(frozen.grad_fn, "x_relaid")
