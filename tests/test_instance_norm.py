"""Instance normalisation against PyTorch: ``instance_norm`` and ``InstanceNorm1d/2d/3d`` (forward,
input and parameter gradients, running statistics over several training steps, evaluation,
unbatched inputs, ``state_dict`` keys and loading a PyTorch ``state_dict``), float64
finite-difference gradchecks, second derivatives, and every error message."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import rosenblatt as rb
from rosenblatt.nn.functional.instance_norm import instance_norm
from rosenblatt.nn.instance_norm import InstanceNorm1d, InstanceNorm2d, InstanceNorm3d
from tests.parity import (
    TF,
    assert_close,
    check_grad,
    check_op,
    check_second_order,
    on_device,
    rb_tensor,
    requires_torch,
    tol,
    torch,
)

DTYPES = [np.float32, np.float64]
CLASSES = {1: InstanceNorm1d, 2: InstanceNorm2d, 3: InstanceNorm3d}
rng = np.random.default_rng(11)


def r(*shape):
    return rng.standard_normal(shape)


def data(*shape):
    """Random data with a different non-zero mean and scale per channel (axis 1)."""
    shift = np.arange(1, shape[1] + 1).reshape((1, -1) + (1,) * (len(shape) - 2))
    return r(*shape) * (0.5 + shift) + 2.0 * shift - 3.0


def torch_dtype(dtype):
    return torch.float64 if dtype == np.float64 else torch.float32


def torch_class(spatial):
    return {1: torch.nn.InstanceNorm1d, 2: torch.nn.InstanceNorm2d, 3: torch.nn.InstanceNorm3d}[spatial]


SHAPES = [(2, 3, 7), (3, 4, 5, 6), (2, 3, 3, 4, 2), (1, 2, 9), (4, 2, 2)]


# -- functional -----------------------------------------------------------------------------------


@requires_torch
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_instance_norm_matches_torch(shape, dtype):
    c = shape[1]
    check_op(lambda x, w, b: instance_norm(x, weight=w, bias=b), lambda x, w, b: TF.instance_norm(x, weight=w, bias=b),
             [data(*shape), r(c) + 1, r(c)], dtype)
    check_op(lambda x: instance_norm(x, eps=1e-2), lambda x: TF.instance_norm(x, eps=1e-2), [data(*shape)], dtype)
    check_op(lambda x, w: instance_norm(x, weight=w), lambda x, w: TF.instance_norm(x, weight=w),
             [data(*shape), r(c)], dtype)
    check_op(lambda x, b: instance_norm(x, bias=b), lambda x, b: TF.instance_norm(x, bias=b),
             [data(*shape), r(c)], dtype)


@requires_torch
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(3, 4, 6), (2, 3, 4, 5), (3, 2, 2, 3, 2)])
def test_instance_norm_updates_running_stats_like_torch(shape, dtype):
    c = shape[1]
    x, w, b = data(*shape).astype(dtype), (r(c) + 1).astype(dtype), r(c).astype(dtype)
    mean0, var0 = r(c).astype(dtype), (np.abs(r(c)) + 0.5).astype(dtype)
    rm, rv = rb_tensor(mean0.copy()), rb_tensor(var0.copy())
    tm, tv = torch.tensor(mean0.copy()), torch.tensor(var0.copy())
    xr, wr, br = (rb_tensor(a, requires_grad=True) for a in (x, w, b))
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    out = instance_norm(xr, rm, rv, wr, br, True, 0.3, 1e-4)
    expected = TF.instance_norm(xt, tm, tv, wt, bt, True, 0.3, 1e-4)
    assert_close(out, expected, "forward", **tol(dtype))
    assert_close(rm, tm, "running_mean", **tol(dtype))
    assert_close(rv, tv, "running_var", **tol(dtype))
    # The variance is the unbiased one, averaged over the batch.
    n_pos = int(np.prod(shape[2:]))
    flat = x.reshape(shape[0], c, n_pos).astype(np.float64)
    assert_close(rv, 0.7 * var0 + 0.3 * flat.var(axis=2, ddof=1).mean(axis=0), "unbiased variance", **tol(dtype))
    upstream = r(*shape).astype(dtype)
    out.backward(rb_tensor(upstream))
    expected.backward(torch.tensor(upstream))
    for what, a, e in [("input", xr.grad, xt.grad), ("weight", wr.grad, wt.grad), ("bias", br.grad, bt.grad)]:
        assert_close(a, e, what, **tol(dtype, 10))
    assert rm.grad is None and not rm.requires_grad


@requires_torch
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(2, 3, 7), (2, 3, 4, 5), (1, 2, 3, 2, 2), (3, 4, 1)])
def test_instance_norm_with_running_stats_matches_torch(shape, dtype):
    c = shape[1]
    mean, var = r(c).astype(dtype), (np.abs(r(c)) + 0.2).astype(dtype)

    def rb_fn(x, w, b):
        return instance_norm(x, rb_tensor(mean), rb_tensor(var), w, b, use_input_stats=False, eps=1e-3)

    def torch_fn(x, w, b):
        return TF.instance_norm(x, torch.tensor(mean), torch.tensor(var), w, b, use_input_stats=False, eps=1e-3)

    check_op(rb_fn, torch_fn, [data(*shape), r(c) + 1, r(c)], dtype)
    check_op(lambda x: instance_norm(x, rb_tensor(mean), rb_tensor(var), use_input_stats=False),
             lambda x: TF.instance_norm(x, torch.tensor(mean), torch.tensor(var), use_input_stats=False),
             [data(*shape)], dtype)
    rm, rv = rb_tensor(mean.copy()), rb_tensor(var.copy())
    instance_norm(rb_tensor(data(*shape).astype(dtype)), rm, rv, use_input_stats=False)
    assert np.array_equal(rm.numpy(), mean) and np.array_equal(rv.numpy(), var), "running stats must not change"


@requires_torch
def test_instance_norm_float64_input_with_float32_running_stats():
    mean, var = r(3).astype(np.float32), (np.abs(r(3)) + 0.5).astype(np.float32)
    x = data(2, 3, 5)
    rm, rv, tm, tv = rb_tensor(mean.copy()), rb_tensor(var.copy()), torch.tensor(mean), torch.tensor(var)
    out = instance_norm(rb_tensor(x), rm, rv, momentum=0.2)
    expected = TF.instance_norm(torch.tensor(x), tm, tv, momentum=0.2)
    assert out.dtype == np.float64 and rm.dtype == np.float32
    assert_close(out, expected, "forward", **tol(np.float64))
    assert_close(rm, tm, "running_mean", **tol(np.float32))
    assert_close(rv, tv, "running_var", **tol(np.float32))
    out = instance_norm(rb_tensor(x), rm, rv, use_input_stats=False)
    assert out.dtype == np.float64
    assert_close(out, TF.instance_norm(torch.tensor(x), tm, tv, use_input_stats=False), "eval", **tol(np.float32))


def test_instance_norm_gradcheck():
    check_grad(lambda x, w, b: instance_norm(x, weight=w, bias=b), [data(2, 3, 4), r(3) + 1, r(3)],
               second_order=True)
    check_grad(lambda x, w, b: instance_norm(x, weight=w, bias=b, eps=0.1), [data(2, 2, 3, 2, 2), r(2), r(2)])
    mean, var = r(3), np.abs(r(3)) + 0.5
    check_grad(lambda x, w, b: instance_norm(x, rb_tensor(mean), rb_tensor(var), w, b, use_input_stats=False),
               [data(2, 3, 2, 3), r(3), r(3)], second_order=True)


@requires_torch
def test_instance_norm_second_order_matches_torch():
    check_second_order(lambda x, w, b: instance_norm(x, weight=w, bias=b),
                       lambda x, w, b: TF.instance_norm(x, weight=w, bias=b), [data(2, 3, 5), r(3) + 1, r(3)])


def test_instance_norm_errors():
    x = rb.randn(2, 3, 4)
    with pytest.raises(TypeError, match=r"instance_norm: expected a Tensor, got ndarray"):
        instance_norm(np.zeros((2, 3, 4)))
    with pytest.raises(TypeError, match=r"instance_norm: expected a floating-point input, got dtype int64"):
        instance_norm(rb.tensor(np.zeros((2, 3, 4), dtype=np.int64)))
    with pytest.raises(ValueError, match=r"instance_norm: expected an input of shape \(N, C, \*\), got shape \(4,\)"):
        instance_norm(rb.randn(4))
    with pytest.raises(ValueError, match=r"instance_norm: running_mean and running_var must both be given or both "
                                         r"be None, got running_mean=a Tensor and running_var=None"):
        instance_norm(x, rb.zeros(3))
    with pytest.raises(ValueError, match=r"instance_norm: expected weight of shape \(3,\) for the 3 channels of "
                                         r"input shape \(2, 3, 4\), got shape \(4,\)"):
        instance_norm(x, weight=rb.ones(4))
    with pytest.raises(ValueError, match=r"instance_norm: expected bias of shape \(3,\)"):
        instance_norm(x, bias=rb.ones(3, 1))
    with pytest.raises(ValueError, match=r"instance_norm: expected running_var of shape \(3,\)"):
        instance_norm(x, rb.zeros(3), rb.ones(2))
    with pytest.raises(TypeError, match=r"instance_norm: expected weight to be a Tensor or None, got ndarray"):
        instance_norm(x, weight=np.ones(3))
    with pytest.raises(ValueError, match=r"instance_norm: use_input_stats=False needs running_mean and running_var"):
        instance_norm(x, use_input_stats=False)
    with pytest.raises(TypeError, match=r"instance_norm: momentum must be a float, got None"):
        instance_norm(x, rb.zeros(3), rb.ones(3), momentum=None)
    with pytest.raises(TypeError, match=r"instance_norm: eps must be a float, got '1'"):
        instance_norm(x, eps="1")
    with pytest.raises(ValueError, match=r"instance_norm: expected more than 1 spatial element when training, "
                                         r"got input of shape \(2, 3, 1, 1\)"):
        instance_norm(rb.randn(2, 3, 1, 1))
    with pytest.raises(ValueError, match=r"instance_norm: expected more than 1 spatial element when training, "
                                         r"got input of shape \(2, 3\)"):
        instance_norm(rb.randn(2, 3))


# -- modules --------------------------------------------------------------------------------------


def _make_pair(spatial, dtype, randomise=True, **kw):
    """A rosenblatt layer and its PyTorch twin, with the same random parameters and buffers."""
    layer = CLASSES[spatial](4, dtype=dtype, **kw)
    twin = torch_class(spatial)(4, **kw).to(torch_dtype(dtype))
    if randomise:
        with rb.no_grad():
            if layer.weight is not None:
                layer.weight.data[...] = r(4) + 1
            if layer.bias is not None:
                layer.bias.data[...] = r(4)
            if layer.running_mean is not None:
                layer.running_mean.data[...] = r(4)
                layer.running_var.data[...] = np.abs(r(4)) + 0.5
    state = {k: torch.tensor(np.asarray(v.numpy())) for k, v in layer.state_dict().items()}
    twin.load_state_dict(state)
    return on_device(layer), twin


def _compare_step(layer, twin, x, dtype, what):
    """Same output, input gradient and parameter gradients for one forward and backward."""
    layer.zero_grad()
    twin.zero_grad()
    xr, xt = rb_tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    out, expected = layer(xr), twin(xt)
    assert_close(out, expected, f"{what}: output", **tol(dtype))
    upstream = r(*x.shape).astype(dtype)
    out.backward(rb_tensor(upstream))
    expected.backward(torch.tensor(upstream))
    assert_close(xr.grad, xt.grad, f"{what}: input gradient", **tol(dtype, 10))
    if layer.weight is not None:
        assert_close(layer.weight.grad, twin.weight.grad, f"{what}: weight gradient", **tol(dtype, 10))
    if layer.bias is not None:
        assert_close(layer.bias.grad, twin.bias.grad, f"{what}: bias gradient", **tol(dtype, 10))


def _compare_buffers(layer, twin, dtype, what):
    assert set(layer.state_dict()) == set(twin.state_dict())
    for key, value in twin.state_dict().items():
        assert_close(layer.state_dict()[key], value, f"{what}: {key}", **tol(dtype))


@requires_torch
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("track", [False, True])
@pytest.mark.parametrize("affine", [False, True])
@pytest.mark.parametrize("spatial", [1, 2, 3])
def test_module_trains_and_evaluates_like_torch(spatial, affine, track, dtype):
    layer, twin = _make_pair(spatial, dtype, affine=affine, track_running_stats=track, momentum=0.25)
    batched = (3, 4) + (5, 3, 4)[:spatial]
    for step in range(3):
        layer.train()
        twin.train()
        shape = batched if step != 1 else batched[1:]  # an unbatched step in the middle
        _compare_step(layer, twin, data(*shape).astype(dtype), dtype, f"training step {step}")
        _compare_buffers(layer, twin, dtype, f"after training step {step}")
    if track:
        assert int(layer.num_batches_tracked.numpy()) == int(twin.num_batches_tracked) == 0
        assert not np.allclose(layer.running_mean.numpy(), 0.0)
    layer.eval()
    twin.eval()
    for shape in (batched, batched[1:]):
        _compare_step(layer, twin, data(*shape).astype(dtype), dtype, f"evaluation of {shape}")
    _compare_buffers(layer, twin, dtype, "after evaluation")


@requires_torch
@pytest.mark.parametrize("spatial", [1, 2, 3])
def test_module_momentum_none_keeps_running_stats_like_torch(spatial):
    layer, twin = _make_pair(spatial, np.float32, momentum=None, track_running_stats=True, affine=True)
    before = {k: v.numpy().copy() for k, v in layer.state_dict().items()}
    x = data(2, 4, *(5, 3, 4)[:spatial]).astype(np.float32)
    for _ in range(2):
        _compare_step(layer, twin, x, np.float32, "momentum=None")
    _compare_buffers(layer, twin, np.float32, "momentum=None")
    for key in ("running_mean", "running_var", "num_batches_tracked"):
        assert np.array_equal(layer.state_dict()[key].numpy(), before[key])
    layer.eval()
    twin.eval()
    _compare_step(layer, twin, x, np.float32, "momentum=None, evaluation")


@requires_torch
@pytest.mark.parametrize("kw", [{}, dict(affine=True), dict(track_running_stats=True),
                                dict(affine=True, track_running_stats=True), dict(affine=True, bias=False),
                                dict(eps=1e-3, momentum=None)])
@pytest.mark.parametrize("spatial", [1, 2, 3])
def test_module_state_dict_and_repr_match_torch(spatial, kw):
    layer, twin = CLASSES[spatial](6, **kw), torch_class(spatial)(6, **kw)
    assert list(layer.state_dict()) == list(twin.state_dict())
    assert [n for n, _ in layer.named_parameters()] == [n for n, _ in twin.named_parameters()]
    assert [n for n, _ in layer.named_buffers()] == [n for n, _ in twin.named_buffers()]
    for key, value in twin.state_dict().items():
        assert_close(layer.state_dict()[key], value, key)
        assert layer.state_dict()[key].dtype == value.numpy().dtype
    assert repr(layer) == repr(twin)


@requires_torch
@pytest.mark.parametrize("spatial", [1, 2, 3])
def test_module_loads_torch_state_dict(spatial):
    twin = torch_class(spatial)(4, affine=True, track_running_stats=True, momentum=0.2)
    with torch.no_grad():
        twin.weight.copy_(torch.randn(4) + 1)
        twin.bias.copy_(torch.randn(4))
    for _ in range(2):
        twin(torch.tensor(data(3, 4, *(5, 4, 3)[:spatial]), dtype=torch.float32))
    twin.num_batches_tracked.fill_(7)
    layer = CLASSES[spatial](4, affine=True, track_running_stats=True, momentum=0.2)
    result = layer.load_state_dict({k: v.numpy() for k, v in twin.state_dict().items()})
    assert not result.missing_keys and not result.unexpected_keys
    assert int(layer.num_batches_tracked.numpy()) == 7
    on_device(layer)
    x = data(2, 4, *(5, 4, 3)[:spatial]).astype(np.float32)
    twin.eval()
    layer.eval()
    _compare_step(layer, twin, x, np.float32, "evaluation after loading")
    twin.train()
    layer.train()
    _compare_step(layer, twin, x, np.float32, "training after loading")
    _compare_buffers(layer, twin, np.float32, "training after loading")


@requires_torch
def test_module_float64_and_default_dtype():
    layer = InstanceNorm2d(3, affine=True, track_running_stats=True)
    assert all(p.dtype == np.float32 for p in layer.parameters())
    assert layer.running_mean.dtype == np.float32 and layer.num_batches_tracked.dtype == np.int64
    layer = InstanceNorm2d(3, affine=True, track_running_stats=True, dtype=np.float64)
    assert layer.weight.dtype == np.float64 and layer.running_var.dtype == np.float64


def test_module_gradcheck():
    layer = InstanceNorm2d(3, affine=True, track_running_stats=True, dtype=np.float64)
    with rb.no_grad():
        layer.weight.data[...] = r(3)
        layer.bias.data[...] = r(3)
        layer.running_mean.data[...] = r(3)
        layer.running_var.data[...] = np.abs(r(3)) + 0.5
    layer.eval()
    check_grad(layer, [data(2, 3, 3, 2)])
    check_grad(layer, [data(3, 3, 2)])  # unbatched
    layer = InstanceNorm1d(3, affine=True, momentum=0.0, track_running_stats=True, dtype=np.float64)
    with rb.no_grad():
        layer.weight.data[...] = r(3)
    check_grad(layer, [data(2, 3, 4)])
    check_grad(layer, [data(3, 4)])  # unbatched


def test_module_reset():
    layer = InstanceNorm1d(3, affine=True, track_running_stats=True)
    layer(rb.tensor(data(2, 3, 5).astype(np.float32)))
    with rb.no_grad():
        layer.weight.data[...] = 2.0
        layer.bias.data[...] = 1.0
        layer.num_batches_tracked.data[...] = 5
    layer.reset_running_stats()
    assert np.all(layer.running_mean.numpy() == 0) and np.all(layer.running_var.numpy() == 1)
    assert int(layer.num_batches_tracked.numpy()) == 0 and np.all(layer.weight.numpy() == 2)
    layer.reset_parameters()
    assert np.all(layer.weight.numpy() == 1) and np.all(layer.bias.numpy() == 0)
    InstanceNorm1d(3).reset_parameters()  # nothing to reset


@requires_torch
@pytest.mark.parametrize("spatial", [1, 2, 3])
def test_module_warns_on_channel_mismatch_without_affine_like_torch(spatial):
    layer, twin = CLASSES[spatial](3), torch_class(spatial)(3)
    for shape in ((2, 5) + (4, 3, 2)[:spatial], (5,) + (4, 3, 2)[:spatial]):
        x = data(*shape).astype(np.float32)
        axis = len(shape) - spatial - 1
        with pytest.warns(UserWarning, match=rf"{type(layer).__name__}\(3\): input's size at dim={axis} \(5\) does not "
                                             r"match num_features \(3\)"):
            out = layer(rb_tensor(x))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = twin(torch.tensor(x))
        assert_close(out, expected, "output", **tol(np.float32))


@pytest.mark.parametrize("spatial", [1, 2, 3])
def test_module_errors(spatial):
    cls = CLASSES[spatial]
    name = cls.__name__
    dims = (4, 3, 2)[:spatial]
    shape_text = {1: r"\(N, C, L\) or \(C, L\)", 2: r"\(N, C, H, W\) or \(C, H, W\)",
                  3: r"\(N, C, D, H, W\) or \(C, D, H, W\)"}[spatial]
    for bad in (0, -2, 2.5, True, "3"):
        with pytest.raises(ValueError, match=rf"{name}: num_features must be a positive int, got {bad!r}"):
            cls(bad)
    with pytest.raises(ValueError, match=rf"{name}: eps must be a non-negative float, got -1"):
        cls(3, eps=-1)
    with pytest.raises(TypeError, match=rf"{name}: momentum must be a float or None, got '0.1'"):
        cls(3, momentum="0.1")
    with pytest.raises(TypeError, match=rf"{name}: dtype must be a floating-point type, got int32"):
        cls(3, affine=True, dtype=np.int32)
    layer = cls(3, affine=True)
    with pytest.raises(TypeError, match=rf"{name}\(3\): expected a Tensor, got ndarray"):
        layer(np.zeros((2, 3) + dims))
    for ndim in (spatial, spatial + 3):
        x = rb.randn(*((3,) * ndim))
        with pytest.raises(ValueError, match=rf"{name}\(3\): expected {spatial + 1}-D or {spatial + 2}-D input of "
                                             rf"shape {shape_text}, got {ndim}-D input of shape"):
            layer(x)
    with pytest.raises(ValueError, match=rf"{name}\(3\): expected 3 channels in dimension 1 \(the size of weight and "
                                         rf"bias\), got 5 \(input shape \(2, 5"):
        layer(rb.randn(2, 5, *dims))
    with pytest.raises(ValueError, match=rf"{name}\(3\): expected 3 channels in dimension 0 \(the size of weight and "
                                         rf"bias\), got 4 \(input shape \(4,"):
        layer(rb.randn(4, *dims))
    tracking = cls(3, track_running_stats=True).eval()
    with pytest.raises(ValueError, match=rf"{name}\(3\): expected 3 channels in dimension 1 \(the size of "
                                         r"running_mean and running_var\), got 2"):
        tracking(rb.randn(2, 2, *dims))
    with pytest.raises(ValueError, match=r"instance_norm: expected more than 1 spatial element when training"):
        layer(rb.randn(2, 3, *((1,) * spatial)))
    # Evaluation with running statistics needs no spatial extent.
    out = tracking(rb.randn(2, 3, *((1,) * spatial)))
    assert out.shape == (2, 3) + (1,) * spatial
