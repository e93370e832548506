"""``rb.nn.init`` (gains, fans, distributions) and ``rb.nn.utils`` (clipping, parameter vectors,
penalties) against PyTorch's formulas and functions."""

from __future__ import annotations

import math

import numpy as np
import pytest

import rosenblatt as rb
from rosenblatt.nn import init
from rosenblatt.nn.init import _calculate_fan_in_and_fan_out
from tests.parity import HAVE_TORCH, assert_close, on_device, rb_tensor, requires_torch

if HAVE_TORCH:
    import torch
else:
    torch = None


@requires_torch
@pytest.mark.parametrize("name,param", [("linear", None), ("conv2d", None), ("sigmoid", None), ("tanh", None),
                                        ("relu", None), ("leaky_relu", None), ("leaky_relu", 0.2), ("selu", None)])
def test_calculate_gain_matches_torch(name, param):
    assert init.calculate_gain(name, param) == pytest.approx(torch.nn.init.calculate_gain(name, param), rel=1e-12)


@requires_torch
@pytest.mark.parametrize("shape", [(7, 3), (8, 4, 3, 3), (5, 2, 9)])
def test_fans_match_torch(shape):
    assert _calculate_fan_in_and_fan_out(rb.zeros(*shape)) == \
        torch.nn.init._calculate_fan_in_and_fan_out(torch.zeros(*shape))
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        _calculate_fan_in_and_fan_out(rb.zeros(5))


SHAPE = (400, 300)  # fan_in 300, fan_out 400


@pytest.mark.parametrize("fn,kwargs,kind,expected_std", [
    (init.xavier_uniform_, {}, "uniform", math.sqrt(2.0 / 700)),
    (init.xavier_uniform_, dict(gain=2.0), "uniform", 2 * math.sqrt(2.0 / 700)),
    (init.xavier_normal_, {}, "normal", math.sqrt(2.0 / 700)),
    (init.kaiming_uniform_, dict(nonlinearity="relu"), "uniform", math.sqrt(2.0 / 300)),
    (init.kaiming_uniform_, dict(a=math.sqrt(5)), "uniform", math.sqrt(1.0 / 3) / math.sqrt(300)),
    (init.kaiming_normal_, dict(nonlinearity="relu"), "normal", math.sqrt(2.0 / 300)),
    (init.kaiming_normal_, dict(mode="fan_out", nonlinearity="tanh"), "normal", (5 / 3) / math.sqrt(400)),
    (init.normal_, dict(mean=0.0, std=0.3), "normal", 0.3),
    (init.uniform_, dict(a=-0.5, b=0.5), "uniform", 1.0 / math.sqrt(12)),
])
def test_init_distributions_have_the_formula_statistics(fn, kwargs, kind, expected_std):
    w = rb.empty(*SHAPE)
    assert fn(w, **kwargs) is w
    values = w.numpy()
    assert abs(values.mean()) < 0.02 * expected_std * 5
    assert values.std() == pytest.approx(expected_std, rel=0.01)
    if kind == "uniform":  # bounded by sqrt(3) * std, and filling the interval
        bound = math.sqrt(3) * expected_std
        assert np.abs(values).max() <= bound * (1 + 1e-6) and np.abs(values).max() > 0.99 * bound
    else:  # Gaussian: about 4.55% of the mass beyond two standard deviations
        assert abs((np.abs(values) > 2 * expected_std).mean() - 0.0455) < 0.005


def test_constant_zeros_ones_and_no_graph():
    w = rb.nn.Parameter(rb.randn(3, 4))
    assert init.constant_(w, 0.25) is w
    np.testing.assert_array_equal(w.numpy(), 0.25)
    init.zeros_(w)
    assert not w.numpy().any()
    init.ones_(w)
    assert (w.numpy() == 1).all() and w.grad_fn is None and w.requires_grad


@pytest.mark.parametrize("shape", [(6, 6), (3, 8), (8, 3), (4, 2, 3)])
def test_orthogonal_rows_or_columns_are_orthonormal(shape):
    w = init.orthogonal_(rb.empty(*shape, dtype=np.float64), gain=2.0).numpy().reshape(shape[0], -1)
    if w.shape[0] <= w.shape[1]:
        np.testing.assert_allclose(w @ w.T, 4 * np.eye(w.shape[0]), atol=1e-10)
    else:
        np.testing.assert_allclose(w.T @ w, 4 * np.eye(w.shape[1]), atol=1e-10)


def test_init_is_reproducible_and_validates_arguments():
    rb.manual_seed(5)
    a = init.kaiming_normal_(rb.empty(4, 4)).numpy().copy()
    rb.manual_seed(5)
    np.testing.assert_array_equal(a, init.kaiming_normal_(rb.empty(4, 4)).numpy())
    with pytest.raises(ValueError, match="mode"):
        init.kaiming_uniform_(rb.empty(3, 3), mode="fan_avg")
    with pytest.raises(ValueError, match="nonlinearity"):
        init.calculate_gain("swishy")


# -- utils ----------------------------------------------------------------------------------------


def _twin_models():
    model = rb.nn.Sequential(rb.nn.Linear(5, 4), rb.nn.Tanh(), rb.nn.Linear(4, 2))
    t_model = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2)).double()
    on_device(model.to(np.float64))
    t_model.load_state_dict({k: torch.tensor(v.numpy()) for k, v in model.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((6, 5)) * 3
    (model(rb_tensor(x)) ** 2).sum().backward()
    (t_model(torch.tensor(x)) ** 2).sum().backward()
    return model, t_model


# Caches keyed on a tensor's version (weights reordered for a kernel, say) must see a re-initialisation.
@pytest.mark.parametrize("make", [
    lambda: rb.nn.Linear(3, 4), lambda: rb.nn.Conv1d(2, 3, 3), lambda: rb.nn.Conv2d(2, 3, 3),
    lambda: rb.nn.ConvTranspose2d(2, 3, 3), lambda: rb.nn.Conv3d(2, 3, 3), lambda: rb.nn.BatchNorm2d(3),
    lambda: rb.nn.Embedding(5, 2, padding_idx=1), lambda: rb.nn.RNN(2, 3), lambda: rb.nn.LSTM(2, 3, num_layers=2),
    lambda: rb.nn.GRU(2, 3, bidirectional=True), lambda: rb.nn.LSTMCell(2, 3), lambda: rb.nn.GRUCell(2, 3),
    lambda: rb.nn.MultiheadAttention(4, 2),
], ids=["linear", "conv1d", "conv2d", "conv_transpose2d", "conv3d", "batch_norm", "embedding", "rnn", "lstm",
        "gru", "lstm_cell", "gru_cell", "multihead_attention"])
def test_reset_parameters_bumps_every_parameter_version(make):
    layer = make()
    # (MultiheadAttention, as PyTorch's, leaves out_proj.weight to Linear's own initialisation)
    tensors = [p for name, p in layer.named_parameters() if name != "out_proj.weight"]
    tensors += [b for b in layer.buffers() if b.dtype.kind == "f"]
    before = [t._version for t in tensors]
    layer.reset_parameters()
    assert all(t._version > v for t, v in zip(tensors, before))
    if isinstance(layer, rb.nn.Embedding):
        assert not layer.weight.numpy()[1].any()


def test_from_weights_and_clipping_bump_versions():
    layer = rb.nn.Conv2d.from_weights(np.ones((1, 1, 3, 3)), bias=[0.5])
    assert layer.weight._version > 0 and layer.bias._version > 0
    assert layer.weight.numpy().sum() == 9 and layer.bias.item() == 0.5
    p = rb.nn.Parameter(rb.ones(3))
    p.grad = rb.full((3,), 10.0)
    version = p.grad._version
    rb.nn.utils.clip_grad_norm_([p], 1.0)
    assert p.grad._version > version


@requires_torch
@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf])
@pytest.mark.parametrize("max_norm", [0.5, 1e6])
def test_clip_grad_norm_matches_torch(norm_type, max_norm):
    model, t_model = _twin_models()
    total = rb.nn.utils.clip_grad_norm_(model.parameters(), max_norm, norm_type)
    t_total = torch.nn.utils.clip_grad_norm_(t_model.parameters(), max_norm, norm_type)
    assert total.item() == pytest.approx(t_total.item(), rel=1e-10)
    for p, tp in zip(model.parameters(), t_model.parameters()):
        assert_close(p.grad, tp.grad, rtol=1e-10, atol=1e-12)


@requires_torch
def test_clip_grad_value_and_vectors_match_torch():
    model, t_model = _twin_models()
    rb.nn.utils.clip_grad_value_(model.parameters(), 0.3)
    torch.nn.utils.clip_grad_value_(t_model.parameters(), 0.3)
    for p, tp in zip(model.parameters(), t_model.parameters()):
        assert_close(p.grad, tp.grad, rtol=1e-12)
    vec = rb.nn.utils.parameters_to_vector(model.parameters())
    assert_close(vec, torch.nn.utils.parameters_to_vector(t_model.parameters()), rtol=1e-12)
    rb.nn.utils.vector_to_parameters(vec * 2.0, model.parameters())
    torch.nn.utils.vector_to_parameters(torch.nn.utils.parameters_to_vector(t_model.parameters()) * 2.0,
                                        t_model.parameters())
    for p, tp in zip(model.parameters(), t_model.parameters()):
        assert_close(p, tp, rtol=1e-12)
    with pytest.raises(ValueError, match="vector_to_parameters: expected a 1-D vector of 34"):
        rb.nn.utils.vector_to_parameters(rb.zeros(33), model.parameters())


def test_clip_grad_norm_non_finite():
    p = rb.nn.Parameter(rb.ones(3))
    p.grad = rb.tensor([1.0, np.inf, 0.0])
    with pytest.raises(RuntimeError, match="non-finite"):
        rb.nn.utils.clip_grad_norm_([p], 1.0, error_if_nonfinite=True)
    assert math.isinf(rb.nn.utils.clip_grad_norm_([p], 1.0).item())


def test_penalties_values_and_gradients():
    w1 = rb.tensor(np.array([[1.0, -2.0], [0.5, 0.0]]), requires_grad=True)
    w2 = rb.tensor(np.array([3.0, -1.0]), requires_grad=True)
    l1 = rb.nn.utils.l1_penalty([w1, w2])
    l2 = rb.nn.utils.l2_penalty([w1, w2])
    assert l1.item() == pytest.approx(1 + 2 + 0.5 + 3 + 1)
    assert l2.item() == pytest.approx(1 + 4 + 0.25 + 9 + 1)  # sum of squares, no 1/2
    g1, g2 = rb.grad(l1 + 0.5 * l2, [w1, w2])
    np.testing.assert_allclose(g1.numpy(), np.sign(w1.numpy()) + w1.numpy())
    np.testing.assert_allclose(g2.numpy(), np.sign(w2.numpy()) + w2.numpy())
    with pytest.raises(ValueError, match="no parameters"):
        rb.nn.utils.l2_penalty([])
