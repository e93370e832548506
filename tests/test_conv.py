"""Convolutions against PyTorch (forward, input/weight/bias gradients, second derivatives) and
against the readable composite ``conv2d_reference``; float64 finite-difference gradchecks; the
layers' initialisation, repr, frozen filters and error messages."""

from __future__ import annotations

import math

import numpy as np
import pytest

import rosenblatt as rb
from rosenblatt.nn import functional as F
from rosenblatt.nn.functional.conv import clear_workspace, conv2d_reference, workspace
from tests.parity import (
    HAVE_TORCH,
    assert_close,
    check_grad,
    check_op,
    check_second_order,
    rb_tensor,
    requires_torch,
    to_numpy,
    tol,
)

if HAVE_TORCH:
    import torch
    import torch.nn.functional as TF
else:
    torch = TF = None

# PyTorch warns that it copies the input for "same" padding with even kernels; irrelevant here.
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same'")

DTYPES = [np.float32, np.float64]
rng = np.random.default_rng(3)


def r(*shape):
    return rng.standard_normal(shape)


# (input shape, weight shape, keyword arguments)
CONV2D_CASES = [
    ((2, 3, 7, 8), (4, 3, 3, 3), {}),
    ((2, 3, 9, 7), (5, 3, 3, 2), dict(stride=2, padding=1)),
    ((1, 4, 10, 9), (6, 2, 3, 3), dict(stride=(2, 3), padding=(2, 1), dilation=2, groups=2)),
    ((2, 4, 7, 6), (8, 1, 3, 3), dict(padding="same", groups=4)),  # depthwise, channel multiplier 2
    ((2, 4, 7, 6), (4, 1, 3, 3), dict(padding=1, stride=2, groups=4)),  # depthwise, strided col2im
    ((2, 3, 7, 8), (4, 3, 4, 2), dict(padding="same", dilation=(1, 2))),  # even kernel: asymmetric pad
    ((2, 3, 7, 8), (4, 3, 2, 2), dict(padding="same")),
    ((2, 3, 6, 6), (4, 3, 3, 3), dict(padding="valid", stride=3)),
    ((2, 5, 6, 7), (3, 5, 1, 1), {}),  # 1x1: no im2col copy
    ((2, 5, 6, 7), (3, 5, 1, 1), dict(padding=1)),  # padded 1x1: wide columns, zero border outputs
    ((2, 3, 9, 8), (4, 3, 3, 3), dict(padding=(1, 3), dilation=(2, 3))),  # wide rows reach 6 past OW
    ((2, 5, 6, 7), (3, 5, 1, 1), dict(stride=2)),
    ((2, 3, 5, 5), (2, 3, 3, 3), dict(padding=3)),  # padding wider than the kernel reach
    ((1, 2, 5, 6), (3, 2, 5, 6), {}),  # kernel as large as the input: 1x1 output
]


def _conv2d_pair(kw, bias=True):
    if bias:
        return (lambda x, w, b: F.conv2d(x, w, b, **kw)), (lambda x, w, b: TF.conv2d(x, w, b, **kw))
    return (lambda x, w: F.conv2d(x, w, **kw)), (lambda x, w: TF.conv2d(x, w, **kw))


@requires_torch
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("x_shape,w_shape,kw", CONV2D_CASES)
def test_conv2d_matches_torch(x_shape, w_shape, kw, dtype):
    rb_fn, torch_fn = _conv2d_pair(kw)
    check_op(rb_fn, torch_fn, [r(*x_shape), r(*w_shape), r(w_shape[0])], dtype)


@requires_torch
def test_conv2d_without_bias_and_unbatched():
    rb_fn, torch_fn = _conv2d_pair(dict(padding=1), bias=False)
    check_op(rb_fn, torch_fn, [r(2, 3, 5, 6), r(4, 3, 3, 3)], np.float64)
    check_op(rb_fn, torch_fn, [r(3, 5, 6), r(4, 3, 3, 3)], np.float64)  # (C, H, W)


@pytest.mark.parametrize("x_shape,w_shape,kw", CONV2D_CASES[:7])
def test_conv2d_matches_reference_composite(x_shape, w_shape, kw):
    x, w, b = (rb_tensor(a, requires_grad=True) for a in (r(*x_shape), r(*w_shape), r(w_shape[0])))
    fast = F.conv2d(x, w, b, **kw)
    slow = conv2d_reference(x, w, b, **kw)
    assert_close(fast, slow, "forward", **tol(np.float64))
    upstream = rb_tensor(r(*fast.shape))
    for g_fast, g_slow in zip(rb.grad(fast, [x, w, b], upstream), rb.grad(slow, [x, w, b], upstream)):
        assert_close(g_fast, g_slow, "gradient", **tol(np.float64))


@pytest.mark.parametrize("kw", [dict(padding=1), dict(stride=2, groups=2, dilation=(1, 2))])
def test_conv2d_gradcheck(kw):
    check_grad(lambda x, w, b: F.conv2d(x, w, b, **kw), [r(1, 2, 5, 6), r(2, 2 // kw.get("groups", 1), 3, 3), r(2)])


@requires_torch
@pytest.mark.parametrize("kw", [dict(padding=1), dict(stride=2, padding=1, groups=2), dict(dilation=2, padding="same"),
                                dict(stride=2, padding=1, groups=4)])  # the last one depthwise
def test_conv2d_second_order_matches_torch(kw):
    groups = kw.get("groups", 1)
    rb_fn, torch_fn = _conv2d_pair(kw)
    check_second_order(rb_fn, torch_fn, [r(2, 4, 6, 5), r(4, 4 // groups, 3, 3), r(4)])


def test_conv2d_gradgradcheck():
    check_grad(lambda x, w: F.conv2d(x, w, stride=2, padding=1), [r(1, 2, 5, 5), r(2, 2, 3, 3)], second_order=True)


CONV1D_CASES = [
    ((2, 3, 11), (4, 3, 3), {}),
    ((2, 4, 12), (6, 2, 4), dict(stride=2, padding=2, dilation=2, groups=2)),
    ((2, 3, 10), (5, 3, 4), dict(padding="same")),
    ((3, 9), (2, 3, 3), dict(padding=1)),  # unbatched (C, L)
]


@requires_torch
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("x_shape,w_shape,kw", CONV1D_CASES)
def test_conv1d_matches_torch(x_shape, w_shape, kw, dtype):
    check_op(lambda x, w, b: F.conv1d(x, w, b, **kw), lambda x, w, b: TF.conv1d(x, w, b, **kw),
             [r(*x_shape), r(*w_shape), r(w_shape[0])], dtype)


# (input shape, weight shape (C_in, C_out/groups, kh, kw), keyword arguments)
CONV_TRANSPOSE_CASES = [
    ((2, 3, 4, 5), (3, 2, 3, 3), {}),
    ((2, 3, 4, 5), (3, 4, 3, 3), dict(stride=2, padding=1, output_padding=1)),
    ((1, 4, 3, 4), (4, 3, 2, 3), dict(stride=(2, 3), padding=(0, 1), output_padding=(1, 2), groups=2)),
    ((2, 2, 4, 4), (2, 3, 3, 3), dict(stride=2, dilation=2, output_padding=1)),
    ((2, 4, 5, 5), (4, 1, 4, 4), dict(stride=2, padding=1, groups=4)),  # U-Net style 2x upsampling, depthwise
]


@requires_torch
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("x_shape,w_shape,kw", CONV_TRANSPOSE_CASES)
def test_conv_transpose2d_matches_torch(x_shape, w_shape, kw, dtype):
    c_out = w_shape[1] * kw.get("groups", 1)
    check_op(lambda x, w, b: F.conv_transpose2d(x, w, b, **kw), lambda x, w, b: TF.conv_transpose2d(x, w, b, **kw),
             [r(*x_shape), r(*w_shape), r(c_out)], dtype)


@requires_torch
def test_conv_transpose2d_second_order_matches_torch():
    kw = dict(stride=2, padding=1, output_padding=1)
    check_second_order(lambda x, w: F.conv_transpose2d(x, w, **kw), lambda x, w: TF.conv_transpose2d(x, w, **kw),
                       [r(1, 3, 3, 4), r(3, 2, 3, 3)])


@requires_torch
@pytest.mark.parametrize("kw", [dict(stride=2), dict(stride=2, padding=1)])
def test_conv_transpose2d_bias_on_big_outputs_matches_torch(kernel_set, monkeypatch, kw):
    """From CHANNEL_BIAS_ONEDNN_MIN output elements the bias is added in place by oneDNN and its
    gradient is a threaded product (channels-last or plain output, depending on the kernel)."""
    from rosenblatt.kernels import conv as conv_kernels

    sums = []
    real = conv_kernels.channel_sums
    monkeypatch.setattr("rosenblatt.nn.functional.conv.channel_sums", lambda g: sums.append(g.shape) or real(g))
    k = 2 if kw.get("padding", 0) == 0 else 4
    x_shape, w_shape = (16, 32, 16, 16), (32, 16, k, k)
    arrays = [r(*x_shape).astype(np.float32), r(*w_shape).astype(np.float32), r(16).astype(np.float32)]
    ours = [rb_tensor(a, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    y, ty = F.conv_transpose2d(*ours, **kw), TF.conv_transpose2d(*theirs, **kw)
    g = r(*ty.shape).astype(np.float32)
    y.backward(rb_tensor(g))
    ty.backward(torch.tensor(g))
    for a, b in [(y, ty)] + [(o.grad, t.grad) for o, t in zip(ours, theirs)]:
        a, b = to_numpy(a), b.detach().numpy()  # sums of thousands of terms: float32 rounding of the largest
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * float(np.abs(b).max()))
    assert sums and all(s[0] * s[2] * s[3] * s[1] >= conv_kernels.CHANNEL_BIAS_ONEDNN_MIN for s in sums)


@pytest.mark.parametrize("channels_last", [False, True])
def test_channel_bias_kernels(kernel_set, channels_last):
    from rosenblatt.kernels import conv as conv_kernels
    from rosenblatt.kernels.onednn import library as L

    a = r(8, 16, 32, 32).astype(np.float32)
    y = np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2) if channels_last else a.copy()
    b = r(16).astype(np.float32)
    out = conv_kernels.add_channel_bias_(y, b)
    assert out is y and (not channels_last or L.channels_last(y) is not None)
    np.testing.assert_array_equal(y, a + b.reshape(1, -1, 1, 1))  # the same IEEE sums, in place
    np.testing.assert_allclose(conv_kernels.channel_sums(y), y.astype(np.float64).sum(axis=(0, 2, 3)),
                               rtol=1e-5, atol=1e-3)


@requires_torch
def test_conv_transpose2d_with_bias_second_order_matches_torch():
    kw = dict(stride=2, padding=1, output_padding=1)
    check_second_order(lambda x, w, b: F.conv_transpose2d(x, w, b, **kw) ** 2,
                       lambda x, w, b: TF.conv_transpose2d(x, w, b, **kw) ** 2, [r(1, 3, 3, 4), r(3, 2, 3, 3), r(2)])


def test_conv_transpose2d_gradcheck():
    check_grad(lambda x, w, b: F.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1),
               [r(1, 2, 3, 3), r(2, 2, 3, 3), r(2)])


# -- the fast path's bookkeeping -------------------------------------------------------------------


@pytest.mark.parametrize("batch", [1, 2])  # batch 1: a transposed view would already be contiguous
def test_outputs_never_alias_reused_buffers(batch):
    """Workspace buffers are reused between calls: results must not live in them."""
    w = rb_tensor(r(3, 2, 3, 3))
    x1, x2 = rb_tensor(r(batch, 2, 6, 6)), rb_tensor(r(batch, 2, 6, 6))
    y1 = F.conv2d(x1, w, padding=1, stride=2)
    expected = y1.numpy().copy()
    F.conv2d(x2, w, padding=1, stride=2)
    np.testing.assert_array_equal(y1.numpy(), expected)
    for key, buffer in list(rb.kernels.workspace._workspace.buffers.items()):
        assert not np.shares_memory(buffer, y1.data), key


def test_no_grad_records_nothing():
    x = rb_tensor(r(2, 2, 5, 5), requires_grad=True)
    w = rb_tensor(r(3, 2, 3, 3), requires_grad=True)
    with rb.no_grad():
        y = F.conv2d(x, w, padding=1)
        p = F.max_pool2d(y, 2)
    assert y.grad_fn is None and not y.requires_grad
    assert p.grad_fn is None and not p.requires_grad


def test_only_needed_gradients_are_computed():
    x = rb_tensor(r(2, 2, 5, 5))  # data: no gradient wanted
    w = rb_tensor(r(3, 2, 3, 3), requires_grad=True)
    y = F.conv2d(x, w, padding=1)
    y.sum().backward()
    assert x.grad is None and w.grad is not None


def test_workspace_is_bounded_and_clearable():
    clear_workspace()
    a = workspace("test", (4, 4), np.float32)
    assert workspace("test", (4, 4), np.float32) is a
    assert workspace("test", (4, 4), np.float64) is not a
    clear_workspace()
    assert workspace("test", (4, 4), np.float32) is not a


# -- layers ----------------------------------------------------------------------------------------


def test_conv2d_layer_default_init_bounds_and_shapes():
    rb.manual_seed(0)
    layer = rb.nn.Conv2d(4, 8, 3, groups=2)
    fan_in = 2 * 9
    bound = 1 / math.sqrt(fan_in)
    assert layer.weight.shape == (8, 2, 3, 3) and layer.bias.shape == (8,)
    w = layer.weight.numpy()
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.8 * bound
    assert np.abs(layer.bias.numpy()).max() <= bound
    assert layer.weight.dtype == np.float32
    t = rb.nn.ConvTranspose2d(4, 6, 3, groups=2)
    assert t.weight.shape == (4, 3, 3, 3)
    assert np.abs(t.weight.numpy()).max() <= 1 / math.sqrt(3 * 9)


@requires_torch
@pytest.mark.parametrize("make", [
    lambda m: m.Conv2d(3, 4, 3, stride=2, padding=1, bias=False),
    lambda m: m.Conv2d(4, 4, (3, 2), padding="same", dilation=2, groups=2),
    lambda m: m.Conv2d(3, 4, 3, padding=2, padding_mode="reflect"),
    lambda m: m.Conv2d(3, 4, 3, padding=1, padding_mode="circular"),
    lambda m: m.Conv2d(3, 4, 3, padding=(1, 2), padding_mode="replicate"),
    lambda m: m.Conv1d(3, 4, 3, stride=2, padding=1),
    lambda m: m.ConvTranspose2d(4, 2, 3, stride=2, padding=1, output_padding=1),
])
def test_conv_layers_match_torch(make):
    layer, t_layer = make(rb.nn), make(torch.nn).double()
    assert repr(layer) == repr(t_layer)
    layer.load_state_dict({k: v.detach().numpy() for k, v in t_layer.state_dict().items()})
    layer.double()
    shape = (2, t_layer.in_channels, 9) if isinstance(t_layer, torch.nn.Conv1d) else (2, t_layer.in_channels, 7, 8)
    x = r(*shape)
    xr, xt = rb_tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    y, yt = layer(xr), t_layer(xt)
    assert_close(y, yt, "forward", **tol(np.float64))
    g = r(*yt.shape)
    y.backward(g)
    yt.backward(torch.tensor(g))
    assert_close(xr.grad, xt.grad, "input gradient", **tol(np.float64))
    for (name, p), (_, tp) in zip(layer.named_parameters(), t_layer.named_parameters()):
        assert_close(p.grad, tp.grad, name, **tol(np.float64))


def test_sobel_filters_as_a_frozen_conv():
    sobel = rb.nn.Conv2d.from_weights(rb.nn.filters.sobel_filters(), padding=1)
    assert all(not p.requires_grad for p in sobel.parameters())
    ramp = np.tile(np.arange(6.0), (6, 1))[None, None].astype(np.float32)  # brightness grows along x
    edges = sobel(rb.tensor(ramp)).numpy()
    np.testing.assert_allclose(edges[0, 0, 1:-1, 1:-1], 8.0)  # d/dx of a unit ramp, Sobel weights sum to 8
    np.testing.assert_allclose(edges[0, 1, 1:-1, 1:-1], 0.0)
    trainable = rb.nn.Conv2d.from_weights(rb.nn.filters.sobel_filters(3), bias=np.zeros(2), trainable=True)
    assert trainable.in_channels == 3 and trainable.weight.requires_grad and trainable.bias is not None


def test_frozen_conv_by_assignment_still_passes_input_gradient():
    conv = rb.nn.Conv2d(1, 2, 3, padding=1, bias=False)
    conv.weight.data[...] = rb.nn.filters.sobel_filters()
    conv.requires_grad_(False)
    x = rb.tensor(np.ones((1, 1, 5, 5), np.float32), requires_grad=True)
    conv(x).sum().backward()
    assert conv.weight.grad is None and x.grad is not None


def test_conv_learns_an_edge_detector():
    """A trainable 3x3 conv recovers the Sobel x kernel from input/output pairs (a wrong weight
    gradient cannot reach the threshold)."""
    rb.manual_seed(1)
    target = rb.nn.Conv2d.from_weights(rb.nn.filters.sobel_filters()[:1], padding=1)
    model = rb.nn.Conv2d(1, 1, 3, padding=1, bias=False)
    x = rb.tensor(rng.standard_normal((8, 1, 10, 10)).astype(np.float32))
    y = target(x)
    lr = 0.05
    for _ in range(150):
        loss = ((model(x) - y) ** 2).mean()
        model.zero_grad()
        loss.backward()
        with rb.no_grad():
            model.weight.data -= lr * model.weight.grad.data
    np.testing.assert_allclose(model.weight.numpy()[0, 0], rb.nn.filters.sobel_filters()[0, 0], atol=0.05)


# -- errors ----------------------------------------------------------------------------------------


def test_errors_are_clear():
    conv = rb.nn.Conv2d(3, 4, 3)
    with pytest.raises(ValueError, match=r"Conv2d\(3, 4.*expected input with 3 channels, got 5"):
        conv(rb.zeros(1, 5, 8, 8))
    with pytest.raises(ValueError, match="4-D input"):
        conv(rb.zeros(8, 8))
    with pytest.raises(ValueError, match="larger than the padded input"):
        F.conv2d(rb.zeros(1, 3, 2, 8), rb.zeros(4, 3, 3, 3))
    with pytest.raises(ValueError, match="groups=2 must divide"):
        rb.nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="groups=2 must divide the 3 output"):
        F.conv2d(rb.zeros(1, 4, 5, 5), rb.zeros(3, 2, 3, 3), groups=2)
    with pytest.raises(ValueError, match="padding='same' needs stride 1"):
        F.conv2d(rb.zeros(1, 3, 5, 5), rb.zeros(4, 3, 3, 3), stride=2, padding="same")
    with pytest.raises(ValueError, match="stride must be"):
        F.conv2d(rb.zeros(1, 3, 5, 5), rb.zeros(4, 3, 3, 3), stride=0)
    with pytest.raises(ValueError, match="bias of shape"):
        F.conv2d(rb.zeros(1, 3, 5, 5), rb.zeros(4, 3, 3, 3), rb.zeros(3))
    with pytest.raises(TypeError, match="dtype"):
        F.conv2d(rb.zeros(1, 3, 5, 5), rb.zeros(4, 3, 3, 3, dtype=rb.float64))
    with pytest.raises(ValueError, match="output_padding"):
        rb.nn.ConvTranspose2d(3, 4, 3, stride=2, output_padding=2)
    with pytest.raises(ValueError, match=r"ConvTranspose2d\(3, 4.*expected input with 3 channels"):
        rb.nn.ConvTranspose2d(3, 4, 3)(rb.zeros(1, 4, 5, 5))
    with pytest.raises(ValueError, match="padding_mode"):
        rb.nn.Conv2d(3, 4, 3, padding_mode="mirror")


@requires_torch
@pytest.mark.parametrize("kw", [dict(padding=1), dict(padding=2, dilation=2, groups=2),
                                dict(stride=2, padding=1, groups=2), dict(kernel=1)])
def test_large_batches_are_processed_in_chunks(monkeypatch, kw):
    """Columns over the size limit are built a few samples at a time (a last, shorter chunk too)."""
    kw = dict(kw)
    k = kw.pop("kernel", 3)
    monkeypatch.setattr(rb.kernels.conv, "COLUMNS_MAX_BYTES", 2 * 4 * 9 * 36 * 8)  # ~2 samples
    groups = kw.get("groups", 1)
    rb_fn, torch_fn = _conv2d_pair(kw)
    check_op(rb_fn, torch_fn, [r(5, 4, 6, 6), r(6, 4 // groups, k, k), r(6)], np.float64)


@requires_torch
def test_conv_transpose2d_output_size_and_empty_batch():
    layer, t_layer = rb.nn.ConvTranspose2d(3, 2, 3, stride=2, padding=1), torch.nn.ConvTranspose2d(3, 2, 3, stride=2, padding=1)
    layer.load_state_dict({k: v.detach().numpy() for k, v in t_layer.state_dict().items()})
    x = r(1, 3, 4, 5).astype(np.float32)
    y = layer(rb.tensor(x), output_size=(8, 10))
    assert_close(y, t_layer(torch.tensor(x), output_size=[8, 10]), **tol(np.float32))
    with pytest.raises(ValueError, match="not reachable"):
        layer(rb.tensor(x), output_size=(12, 10))
    empty = rb_tensor(np.zeros((0, 3, 5, 5), np.float32), requires_grad=True)
    w = rb_tensor(r(4, 3, 3, 3).astype(np.float32), requires_grad=True)
    out = F.conv2d(empty, w, padding=1)
    assert out.shape == (0, 4, 5, 5)
    out.sum().backward()
    assert w.grad.shape == w.shape and not w.grad.numpy().any()
