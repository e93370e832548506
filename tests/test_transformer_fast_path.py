"""The inference fast path of ``TransformerEncoderLayer`` (``rosenblatt.nn._transformer_inference``).

It must give the module path's numbers (and PyTorch's), run when its conditions hold, and step
aside whenever something it skips could matter: gradients, training mode, masks, hooks, an
activation other than ReLU or exact GELU, the NumPy kernels.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import rosenblatt as rb
from rosenblatt import kernels
from rosenblatt.kernels.onednn import library as L
from rosenblatt.nn import _transformer_inference as fast
from tests.parity import requires_torch

ONEDNN_OK, ONEDNN_WHY = L.load()
pytestmark = pytest.mark.skipif(not ONEDNN_OK, reason=f"oneDNN unavailable: {ONEDNN_WHY}")


@pytest.fixture
def taken(monkeypatch):
    """Records, per layer call, whether the fast path produced the output."""
    calls: list[bool] = []
    original = fast.encoder_layer

    def spy(layer, src, *masks):
        result = original(layer, src, *masks)
        calls.append(result is not None)
        return result

    monkeypatch.setattr(fast, "encoder_layer", spy)
    return calls


def _layer(batch_first=True, norm_first=False, bias=True, **kw):
    rb.manual_seed(0)
    layer = rb.nn.TransformerEncoderLayer(32, 4, dim_feedforward=64, dropout=0.1, batch_first=batch_first,
                                          norm_first=norm_first, bias=bias, **kw)
    return layer.eval()


def _input(batch_first=True, length=70):
    shape = (3, length, 32) if batch_first else (length, 3, 32)
    return rb.tensor(np.random.default_rng(0).standard_normal(shape).astype(np.float32))


def _module_path(layer, x):
    fast.ENABLED = False
    try:
        return layer(x).numpy()
    finally:
        fast.ENABLED = True


@pytest.mark.parametrize("activation", ["relu", "gelu"])
@pytest.mark.parametrize("batch_first, norm_first, bias", list(itertools.product([True, False], repeat=3)))
def test_fast_path_equals_the_module_path(onednn, taken, batch_first, norm_first, bias, activation):
    layer = _layer(batch_first, norm_first, bias, activation=activation)
    x = _input(batch_first, length=300)  # big: the primitives
    with rb.no_grad():
        out = layer(x).numpy()
        assert taken == [True]
        np.testing.assert_allclose(out, _module_path(layer, x), rtol=1e-5, atol=1e-5)


@requires_torch
@pytest.mark.parametrize("activation", ["relu", "gelu"])
@pytest.mark.parametrize("norm_first", [False, True])
def test_fast_path_matches_torch(onednn, taken, norm_first, activation):
    from tests.parity import torch

    layer = _layer(norm_first=norm_first, activation=activation)
    twin = torch.nn.TransformerEncoderLayer(32, 4, dim_feedforward=64, dropout=0.1, batch_first=True,
                                            norm_first=norm_first, activation=activation)
    twin.load_state_dict({k: torch.from_numpy(np.array(v.numpy())) for k, v in layer.state_dict().items()})
    twin.eval()
    x = _input(length=300)
    with rb.no_grad(), torch.no_grad():
        out = layer(x).numpy()
        expected = twin(torch.from_numpy(x.numpy())).numpy()
    assert taken == [True]
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_encoder_stack_takes_it_per_layer(onednn, taken, activation):
    encoder = rb.nn.TransformerEncoder(_layer(activation=activation), 3).eval()
    x = _input()  # small: sgemm, and the activation in NumPy
    with rb.no_grad():
        out = encoder(x).numpy()
    assert taken == [True] * 3
    fast.ENABLED = False
    try:
        with rb.no_grad():
            np.testing.assert_allclose(out, encoder(x).numpy(), rtol=1e-5, atol=1e-5)
    finally:
        fast.ENABLED = True


def test_declined_when_it_could_matter(onednn, taken):
    layer, x = _layer(), _input()
    out = layer(x)  # gradients recorded
    assert taken == [False] and out.requires_grad
    with rb.no_grad():
        layer.train()
        layer(x)  # training mode (dropout)
        layer.eval()
        layer(x, src_mask=rb.tensor(np.zeros((70, 70), np.float32), requires_grad=True))  # wants its gradient
        seen = []
        handle = layer.linear1.register_forward_hook(lambda m, a, o: seen.append(True))
        layer(x)
        handle.remove()
        assert seen == [True]  # the hook ran: the module path was taken
        _layer(activation=lambda t: rb.nn.functional.gelu(t, approximate="tanh"))(x)
        layer(rb.tensor(x.numpy()[0]))  # unbatched
        layer(rb.tensor(x.numpy().astype(np.float64)))
    assert not any(taken)
    kernels.set_kernels("numpy")
    with rb.no_grad():
        layer(x)
    assert taken[-1] is False


def _masks(kind, batch=3, length=300):
    rng = np.random.default_rng(1)
    if kind == "padding":
        padding = np.zeros((batch, length), bool)
        padding[0, 200:] = True
        padding[2, 17:] = True
        return dict(src_key_padding_mask=rb.tensor(padding))
    if kind == "every key of one sequence":  # rows with no key: zeros (the NumPy kernel's case)
        padding = np.zeros((batch, length), bool)
        padding[1] = True
        return dict(src_key_padding_mask=rb.tensor(padding))
    if kind == "causal":
        return dict(is_causal=True)
    if kind == "float":
        return dict(src_mask=rb.tensor(rng.standard_normal((length, length)).astype(np.float32)))
    per_head = rng.random((batch * 4, length, length)) < 0.3
    per_head[..., 0] = False  # every query keeps a key
    return dict(src_mask=rb.tensor(per_head), src_key_padding_mask=_masks("padding")["src_key_padding_mask"])


@pytest.mark.parametrize("kind", ["padding", "every key of one sequence", "causal", "float", "per head + padding"])
@pytest.mark.parametrize("norm_first", [False, True])
def test_masks_take_the_fast_path(onednn, taken, kind, norm_first):
    layer, x = _layer(norm_first=norm_first), _input(length=300)
    with rb.no_grad():
        out = layer(x, **_masks(kind)).numpy()
        assert taken == [True]
        fast.ENABLED = False
        try:
            expected = layer(x, **_masks(kind)).numpy()
        finally:
            fast.ENABLED = True
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_weight_changes_are_seen(onednn):
    layer, x = _layer(), _input()
    with rb.no_grad():
        before = layer(x).numpy()
        layer.linear2.weight.mul_(2.0)
        after = layer(x).numpy()
    assert not np.allclose(before, after)
    np.testing.assert_allclose(after, _module_path(layer, x), rtol=1e-5, atol=1e-5)
