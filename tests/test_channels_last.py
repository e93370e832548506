"""Channels-last activations: what the standalone oneDNN kernels pass from layer to layer.

With the oneDNN kernels, a convolution that is not fused into a chain writes its output as an
``(N, C, H, W)`` view of ``(N, H, W, C)`` memory; batch norm, pooling and the element-wise kernels
take such arrays as they lie and keep the layout, and NumPy's own element-wise ops keep it too.
These tests check that this layout really flows through a model whose ``forward`` calls its
layers one by one, that every value and gradient matches PyTorch's (under both kernel sets, and
with the layout switched off), and each kernel's handling of plain, channels-last and mixed inputs.
"""

from __future__ import annotations

import numpy as np
import pytest

import rosenblatt as rb
from rosenblatt.kernels import activation as act_kernels
from rosenblatt.kernels.onednn import conv as dconv
from rosenblatt.kernels.onednn import eltwise
from rosenblatt.kernels.onednn import library as L
from rosenblatt.kernels.onednn import normalization as dnorm
from rosenblatt.kernels.onednn import pooling as dpool
from rosenblatt.ops import arithmetic
from tests.parity import HAVE_TORCH, requires_torch

if HAVE_TORCH:
    import torch

ONEDNN_OK, ONEDNN_WHY = L.load()
needs_onednn = pytest.mark.skipif(not ONEDNN_OK, reason=f"oneDNN unavailable: {ONEDNN_WHY}")


@pytest.fixture
def small_shapes_on_onednn(monkeypatch):
    """Every oneDNN kernel of this file takes the small test shapes."""
    monkeypatch.setattr(dconv, "MIN_MACS", 0)
    monkeypatch.setattr(dpool, "MIN_ELEMENTS", 0)
    monkeypatch.setattr(dnorm, "MIN_SPATIAL", 0)
    monkeypatch.setattr(dnorm, "MIN_BLOCKED_ELEMENTS", 0)
    monkeypatch.setattr(eltwise, "MIN_ELEMENTS", 0)
    monkeypatch.setattr(eltwise, "ALG_MIN_ELEMENTS", 0)
    monkeypatch.setattr(arithmetic, "ONEDNN_MIN", 0)
    for name in dir(act_kernels):
        if name.endswith("_ONEDNN_MIN"):
            monkeypatch.setattr(act_kernels, name, 0)


def is_channels_last(a: np.ndarray) -> bool:
    return not a.flags.c_contiguous and L.channels_last(a) is not None


def nhwc(a: np.ndarray) -> np.ndarray:
    """The same values, laid out channels-last."""
    out = L.empty_channels_last(a.shape) if a.dtype == np.float32 else np.empty_like(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    out[...] = a
    assert is_channels_last(out)
    return out


def f32(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


# -- a model written the way PyTorch users write it ------------------------------------------------


def _model(lib):
    nn = lib.nn
    F = nn.functional

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)
            self.conv2, self.bn2 = nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)
            self.conv3, self.bn3 = nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16)
            self.fc = nn.Linear(16, 5)

        def forward(self, x):
            x = F.relu(self.bn1(self.conv1(x)))
            x = F.relu(self.bn2(self.conv2(x)) + x)  # a residual sum of two channels-last arrays
            x = F.max_pool2d(x, 2)
            z = F.gelu(self.bn3(self.conv3(x)))
            z = z + F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, 4, 4))  # plus a plain array (the shortcut)
            z = F.avg_pool2d(z, 2)
            return self.fc(z.mean((2, 3)) if lib is not rb else z.mean(axis=(2, 3)))

    return Net()


@requires_torch
@pytest.mark.parametrize("channels_last", [True, False])
def test_model_calling_each_layer_matches_torch(kernel_set, small_shapes_on_onednn, monkeypatch, channels_last):
    """One training step of a model whose ``forward`` calls each layer: output, every parameter's
    gradient, the input's gradient and the running statistics are PyTorch's; under oneDNN the
    activations between the layers are channels-last (and plain with the layout switched off)."""
    monkeypatch.setattr(dconv, "CHANNELS_LAST", channels_last)
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    t_model = _model(torch).train()
    model = _model(rb).train()
    params = dict(model.named_parameters())
    for name, p in t_model.named_parameters():
        params[name].data[...] = p.detach().numpy()
    x = f32(rng, 4, 3, 16, 16)
    target = rng.integers(0, 5, 4)
    seen = []
    model.conv1.register_forward_hook(lambda m, i, o: seen.append(o.data))
    model.bn2.register_forward_hook(lambda m, i, o: seen.append(o.data))
    model.conv3.register_forward_hook(lambda m, i, o: seen.append(o.data))

    rx = rb.tensor(x, requires_grad=True)
    out = model(rx)
    loss = rb.nn.functional.cross_entropy(out, rb.tensor(target))
    loss.backward()
    tx = torch.tensor(x, requires_grad=True)
    t_out = t_model(tx)
    torch.nn.functional.cross_entropy(t_out, torch.tensor(target)).backward()

    expect_cl = kernel_set == "onednn" and channels_last
    assert [is_channels_last(a) for a in seen] == [expect_cl] * 3
    np.testing.assert_allclose(out.numpy(), t_out.detach().numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(rx.grad.numpy(), tx.grad.numpy(), rtol=1e-3, atol=1e-5)
    for name, p in t_model.named_parameters():
        np.testing.assert_allclose(params[name].grad.numpy(), p.grad.numpy(), rtol=1e-3, atol=1e-5, err_msg=name)
    for bn in ("bn1", "bn2", "bn3"):
        for stat in ("running_mean", "running_var"):
            np.testing.assert_allclose(getattr(getattr(model, bn), stat).numpy(),
                                       getattr(getattr(t_model, bn), stat).numpy(), rtol=1e-5, atol=1e-6)
    with rb.no_grad():  # evaluation mode: the inference paths, the same values
        model.eval()
        t_model.eval()
        np.testing.assert_allclose(model(rb.tensor(x)).numpy(), t_model(torch.tensor(x)).detach().numpy(),
                                   rtol=1e-4, atol=1e-5)


@needs_onednn
def test_channels_last_input_to_fused_chains_and_numpy_layers(onednn, small_shapes_on_onednn):
    """A channels-last tensor fed to a fused Sequential chain, to a convolution the NumPy kernel runs
    (too small for oneDNN), and to an indexing op gives the values of its plain copy."""
    rng = np.random.default_rng(1)
    rb.manual_seed(0)
    chain = rb.nn.Sequential(rb.nn.Conv2d(8, 8, 3, padding=1), rb.nn.BatchNorm2d(8), rb.nn.ReLU(),
                             rb.nn.Conv2d(8, 4, 3, padding=1), rb.nn.ReLU())
    x = f32(rng, 2, 8, 12, 12)
    for train in (True, False):
        chain.train(train)
        with rb.no_grad():
            a = chain(rb.tensor(x)).numpy()
            b = chain(rb.from_numpy(nhwc(x))).numpy()
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
    tiny = rb.nn.Conv2d(8, 2, 1)
    dconv.MIN_MACS = 10**9  # (restored by the fixture) the NumPy kernel
    with rb.no_grad():
        np.testing.assert_allclose(tiny(rb.from_numpy(nhwc(x))).numpy(), tiny(rb.tensor(x)).numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(rb.from_numpy(nhwc(x))[:, 1:3, ::2].numpy(), x[:, 1:3, ::2])


# -- the kernels ----------------------------------------------------------------------------------


@needs_onednn
def test_library_layout_helpers():
    rng = np.random.default_rng(2)
    x = f32(rng, 3, 5, 4, 6)
    cl = nhwc(x)
    assert L.channels_last(x) is None and L.channels_last(cl).flags.c_contiguous
    assert L.channels_last(x[:, :, :, ::2]) is None and L.channels_last(x.reshape(3, 5, 24)) is None
    back = L.contiguous(cl)
    assert back.flags.c_contiguous
    np.testing.assert_array_equal(back, x)
    assert L.contiguous(x) is x
    np.testing.assert_array_equal(L.contiguous(x[:, ::2]), x[:, ::2])  # another layout: NumPy's copy
    relaid = L.same_layout(x, cl)
    assert is_channels_last(relaid)
    np.testing.assert_array_equal(relaid, x)
    assert L.same_layout(cl, x).flags.c_contiguous and L.same_layout(x, x) is x
    assert L.same_layout(x[:, ::2], cl[:, ::2]) is None  # neither layout: declined
    assert L.same_layout(x.astype(np.float64), cl) is None


@needs_onednn
@pytest.mark.parametrize("x_layout", ["plain", "nhwc"])
@pytest.mark.parametrize("gy_layout", ["plain", "nhwc"])
@pytest.mark.parametrize("groups, stride", [(1, 1), (1, 2), (4, 1)])
def test_convolution_kernels_take_every_layout(small_shapes_on_onednn, x_layout, gy_layout, groups, stride):
    """Forward, the fused backward and each backward pass alone, against the NumPy kernels, for plain
    and channels-last inputs and gradients (grouped too); outputs channels-last where the
    channels-last plan runs, plain where the blocked one does."""
    from rosenblatt.kernels import conv as nconv

    rng = np.random.default_rng(3)
    x, w, b = f32(rng, 2, 8, 9, 9), f32(rng, 8, 8 // groups, 3, 3), f32(rng, 8)
    geom = nconv.ConvGeometry((stride, stride), ((1, 1), (1, 1)), (1, 1), groups)
    args = ((stride, stride), (1, 1), (1, 1), (1, 1), groups)
    y_ref = nconv.conv2d_array(x, w, geom) + b.reshape(1, -1, 1, 1)
    gy = f32(rng, *y_ref.shape)
    gx_ref = nconv.conv2d_grad_input_array(gy, w, x.shape, geom)
    gw_ref = nconv.conv2d_grad_weight_array(x, gy, w.shape, geom)
    xin = nhwc(x) if x_layout == "nhwc" else x
    gin = nhwc(gy) if gy_layout == "nhwc" else gy
    planned = dconv._channels_last_plan(x.shape, w.shape, *args) is not None
    for keep in (False, True):
        if keep:
            y, kept = dconv.conv_forward_keeping_input(xin, w, b, *args)
            src = kept if kept is not None else xin
            assert (kept is None) == (x_layout == "nhwc" and planned)
        else:
            y, src = dconv.conv_forward(xin, w, b, *args), xin
        assert is_channels_last(y) == planned
        np.testing.assert_allclose(y, y_ref, rtol=1e-4, atol=1e-4)
        gx, gw, gb = dconv.conv_backward(src, w, gin, True, *args)
        assert is_channels_last(gx) == planned and gw.flags.c_contiguous
        np.testing.assert_allclose(gx, gx_ref, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(gw, gw_ref, rtol=1e-4, atol=1e-3)
        np.testing.assert_allclose(gb, gy.sum(axis=(0, 2, 3)), rtol=1e-4, atol=1e-4)
        gw2, _ = dconv.conv_backward_weights(src, gin, w.shape, False, *args)
        np.testing.assert_allclose(gw2, gw_ref, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(dconv.conv_backward_data(gin, w, x.shape, *args), gx_ref, rtol=1e-4, atol=1e-4)


@needs_onednn
@pytest.mark.parametrize("gy_layout", ["plain", "nhwc"])
def test_batch_norm_and_pooling_kernels_keep_channels_last(small_shapes_on_onednn, gy_layout):
    rng = np.random.default_rng(4)
    x = f32(rng, 4, 16, 8, 8)
    w, b = f32(rng, 16), f32(rng, 16)
    y_plain, mean_p, var_p, kept = dnorm.batch_norm_train_forward(x, w, b, 1e-5)
    y, mean, var, kept_cl = dnorm.batch_norm_train_forward(nhwc(x), w, b, 1e-5)
    assert is_channels_last(y) and kept_cl is None and y_plain.flags.c_contiguous
    np.testing.assert_allclose(y, y_plain, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(mean, mean_p, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(var, var_p, rtol=1e-5, atol=1e-6)
    gy = f32(rng, *x.shape)
    gin = nhwc(gy) if gy_layout == "nhwc" else gy
    ref = dnorm.batch_norm_train_backward(gy, x, w, mean_p, var_p, 1e-5, kept)
    got = dnorm.batch_norm_train_backward(gin, nhwc(x), w, mean, var, 1e-5)
    assert is_channels_last(got[0])
    for a, r in zip(got, ref):
        np.testing.assert_allclose(a, r, rtol=1e-4, atol=1e-4)

    for alg in ("max", "avg_include"):
        geometry = ((2, 2), (2, 2), (0, 0), (0, 0), (1, 1))
        y_shape = (4, 16, 4, 4)
        yp, wsp = dpool.pool_forward(x, y_shape, alg, *geometry, training=True)
        yc, wsc = dpool.pool_forward(nhwc(x), y_shape, alg, *geometry, training=True)
        assert is_channels_last(yc) and yp.flags.c_contiguous
        np.testing.assert_array_equal(yc, yp)
        g = f32(rng, *y_shape)
        ref = dpool.pool_backward(g, wsp, x.shape, alg, *geometry)
        got = dpool.pool_backward(nhwc(g) if gy_layout == "nhwc" else g, wsc, x.shape, alg, *geometry)
        assert is_channels_last(got) == (alg == "max" or gy_layout == "nhwc")
        np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-6)


@needs_onednn
def test_elementwise_kernels_on_channels_last_and_mixed_layouts(onednn, small_shapes_on_onednn):
    """oneDNN's element-wise kernels run on channels-last arrays in their memory order and keep the
    layout; a plain gradient or summand next to a channels-last array is reordered first; any other
    layout is declined. Values are NumPy's."""
    rng = np.random.default_rng(5)
    x = f32(rng, 2, 6, 5, 7)
    cl = nhwc(x)
    for fn in (eltwise.tanh, lambda a: eltwise.forward(a, L.C.eltwise_logistic)):
        y = fn(cl)
        assert is_channels_last(y)
        np.testing.assert_allclose(y, fn(x), rtol=1e-6, atol=1e-7)
    y = np.maximum(cl, 0)  # NumPy's ReLU keeps the layout
    assert is_channels_last(y)
    gy = f32(rng, *x.shape)
    ref = gy * (x > 0)
    for g in (gy, nhwc(gy)):
        out = eltwise.relu_grad(g, y)
        assert out is not None and is_channels_last(out)
        np.testing.assert_array_equal(out, ref)
    flipped = gy[:, :, ::-1]  # a third layout: copied into the activation's first
    out = eltwise.relu_grad(flipped, y)
    assert is_channels_last(out)
    np.testing.assert_array_equal(out, flipped * (x > 0))
    for a, b in ((cl, x), (x, cl), (cl, nhwc(x))):
        s = eltwise.binary("add", a, b)
        assert s is not None and s.strides == a.strides
        np.testing.assert_array_equal(s, x + x)
    assert eltwise.binary("add", x[:, :, ::-1], cl) is None
    r = rb.from_numpy(cl) + rb.tensor(x)  # the Add op takes the oneDNN sum
    assert r.numpy().strides == cl.strides
    np.testing.assert_array_equal(r.numpy(), x + x)
    # the activation kernels' gradients through autograd, channels-last in, channels-last out
    t = rb.from_numpy(cl).requires_grad_(True)
    for f in (rb.nn.functional.relu, rb.tanh, rb.sigmoid, rb.nn.functional.gelu, rb.nn.functional.silu):
        t.grad = None
        out = f(t)
        (out * rb.tensor(gy)).sum().backward()
        t2 = rb.tensor(x, requires_grad=True)
        (f(t2) * rb.tensor(gy)).sum().backward()
        np.testing.assert_allclose(out.numpy(), f(rb.tensor(x)).numpy(), rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(t.grad.numpy(), t2.grad.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("layout", ["plain", "nhwc"])
def test_contiguous_clone_and_views_of_channels_last_tensors(kernel_set, layout):
    """``contiguous()`` gives a C-contiguous copy of a channels-last tensor (itself for a plain one)
    and passes the gradient through; ``clone()`` keeps the layout, as PyTorch's does; ``view``,
    ``reshape`` and ``flatten`` give the values of the plain tensor."""
    rng = np.random.default_rng(6)
    x = f32(rng, 2, 3, 4, 5)
    t = rb.from_numpy(nhwc(x) if layout == "nhwc" else x).requires_grad_(True)
    assert t.is_contiguous() == (layout == "plain")
    c = t.contiguous()
    assert c.is_contiguous() and ((c is t) == (layout == "plain"))
    np.testing.assert_array_equal(c.numpy(), x)
    k = t.clone()
    assert k.numpy().strides == t.numpy().strides
    np.testing.assert_array_equal(k.numpy(), x)
    for flat in (t.view(2, -1), t.reshape(2, -1), t.flatten(1)):
        np.testing.assert_array_equal(flat.numpy(), x.reshape(2, -1))
    g = f32(rng, *x.shape)
    ((c + k) * rb.tensor(g)).sum().backward()
    np.testing.assert_allclose(t.grad.numpy(), 2 * g, rtol=1e-6)


def test_memory_formats_as_in_pytorch(kernel_set):
    """``rb.channels_last`` / ``rb.contiguous_format`` in ``Tensor.to``, ``contiguous`` and
    ``is_contiguous``, and ``Module.to(memory_format=...)``, with PyTorch's meanings and errors."""
    rng = np.random.default_rng(7)
    x = f32(rng, 2, 3, 4, 5)
    t = rb.tensor(x, requires_grad=True)
    c = t.to(memory_format=rb.channels_last)
    assert c.is_contiguous(memory_format=rb.channels_last) and not c.is_contiguous()
    assert c.to(memory_format=rb.channels_last) is c and t.to(memory_format=rb.preserve_format) is t
    np.testing.assert_array_equal(c.numpy(), x)
    assert t.contiguous(memory_format=rb.channels_last).is_contiguous(memory_format=rb.channels_last)
    back = c.contiguous()
    assert back.is_contiguous() and c.to(memory_format=rb.contiguous_format).is_contiguous()
    d = t.to(rb.float64, memory_format=rb.channels_last)
    assert d.dtype == np.float64 and d.is_contiguous(memory_format=rb.channels_last)
    g = f32(rng, *x.shape)
    ((c + back) * rb.tensor(g)).sum().backward()
    np.testing.assert_allclose(t.grad.numpy(), 2 * g, rtol=1e-6)
    assert repr(rb.channels_last) == "rosenblatt.channels_last"
    with pytest.raises(ValueError, match=r"Tensor.to: channels_last needs a 4-D .* got shape \(2, 3\)"):
        rb.tensor(np.ones((2, 3), np.float32)).to(memory_format=rb.channels_last)
    with pytest.raises(TypeError, match="memory_format must be"):
        t.to(memory_format="channels_last")
    with pytest.raises(ValueError, match="preserve_format is not a layout"):
        t.contiguous(memory_format=rb.preserve_format)
    model = rb.nn.Sequential(rb.nn.Conv2d(3, 4, 3))
    weights = model[0].weight.data
    assert model.to(memory_format=rb.channels_last) is model and model[0].weight.data is weights
    with pytest.raises(TypeError, match="memory_format must be"):
        model.to(memory_format=True)
    if HAVE_TORCH:  # the same answers as PyTorch's
        tt = torch.tensor(x).to(memory_format=torch.channels_last)
        assert tt.is_contiguous(memory_format=torch.channels_last) and not tt.is_contiguous()
        assert tt.stride() == tuple(s // 4 for s in c.numpy().strides)


@needs_onednn
def test_blocked_plan_weights_pass_takes_the_channels_last_kernel_where_it_is_newer(monkeypatch):
    """LeNet-5's second convolution (6 input channels): oneDNN's blocked pick for the weights pass is
    an AVX2 kernel on an AVX-512 machine; the plan takes the channels-last AVX-512 one instead, and
    the gradients stay the NumPy kernel's."""
    from rosenblatt.kernels import conv as nconv

    monkeypatch.setattr(dconv, "CHANNELS_LAST", False)  # the blocked plan, as in a fused chain
    x_shape, w_shape, args = (64, 6, 14, 14), (16, 6, 5, 5), ((1, 1), (0, 0), (0, 0), (1, 1), 1)
    monkeypatch.setattr(dconv, "NHWC_WEIGHTS_PASS", False)
    L.clear_cache()
    plan = dconv._plan(x_shape, w_shape, *args)
    fwd, blocked_pick = plan.primitive("fwd_bias"), plan.primitive("bwd_weights_bias")
    if "avx512" not in fwd.impl() or "avx512" in blocked_pick.impl():
        pytest.skip(f"forward {fwd.impl()}, blocked weights pass {blocked_pick.impl()}: nothing to prefer here")
    monkeypatch.setattr(dconv, "NHWC_WEIGHTS_PASS", True)
    L.clear_cache()
    weights_pass = dconv._plan(x_shape, w_shape, *args).primitive("bwd_weights_bias")
    assert "avx512" in weights_pass.impl() and weights_pass.md(L.C.ARG_SRC) == L.channels_last_md(x_shape)
    rng = np.random.default_rng(8)
    x, w, gy = f32(rng, *x_shape), f32(rng, *w_shape), f32(rng, 64, 16, 10, 10)
    gx, gw, gb = dconv.conv_backward(x, w, gy, True, *args)
    geom = nconv.ConvGeometry((1, 1), ((0, 0), (0, 0)), (1, 1), 1)
    np.testing.assert_allclose(gw, nconv.conv2d_grad_weight_array(x, gy, w_shape, geom), rtol=1e-4, atol=1e-2)
    np.testing.assert_allclose(gb, gy.sum(axis=(0, 2, 3)), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(gx, nconv.conv2d_grad_input_array(gy, w, x_shape, geom), rtol=1e-4, atol=1e-3)
