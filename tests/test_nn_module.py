"""Module-level behaviour of the layers: state_dict round trips with PyTorch in both directions,
load_state_dict errors, ``summary`` parameter counts, and ``repr`` of whole models."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest

import rosenblatt as rb
from tests.parity import HAVE_TORCH, assert_close, on_device, rb_tensor, requires_torch

if HAVE_TORCH:
    import torch
else:
    torch = None


def rb_model():
    return rb.nn.Sequential(
        rb.nn.Linear(6, 8), rb.nn.BatchNorm1d(8), rb.nn.ReLU(), rb.nn.Dropout(0.2),
        rb.nn.Linear(8, 5), rb.nn.LayerNorm(5), rb.nn.Tanh(), rb.nn.Linear(5, 3),
    )


def torch_model():
    return torch.nn.Sequential(
        torch.nn.Linear(6, 8), torch.nn.BatchNorm1d(8), torch.nn.ReLU(), torch.nn.Dropout(0.2),
        torch.nn.Linear(8, 5), torch.nn.LayerNorm(5), torch.nn.Tanh(), torch.nn.Linear(5, 3),
    )


def _train_torch_a_little(model):
    """Non-default weights and running statistics, so a round trip is a real test."""
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    gen = torch.Generator().manual_seed(0)
    for _ in range(3):
        x = torch.randn(16, 6, generator=gen) * 2 + 1
        loss = model(x).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


@requires_torch
def test_torch_state_dict_loads_and_gives_the_same_outputs():
    t_model = _train_torch_a_little(torch_model()).eval()
    model = rb_model()
    result = model.load_state_dict({k: v.detach().numpy() for k, v in t_model.state_dict().items()})
    assert result.missing_keys == [] and result.unexpected_keys == []
    on_device(model).eval()
    x = np.random.default_rng(0).standard_normal((7, 6)).astype(np.float32)
    assert_close(model(rb_tensor(x)), t_model(torch.tensor(x)), rtol=1e-5, atol=1e-6)
    assert model[1].num_batches_tracked.item() == 3


@requires_torch
def test_our_state_dict_loads_into_torch():
    model = on_device(rb_model())
    model.train()
    for step in range(2):  # move the running statistics
        model(rb_tensor(np.random.default_rng(step).standard_normal((10, 6)).astype(np.float32) * 3))
    t_model = torch_model()
    t_model.load_state_dict({k: torch.tensor(v.numpy()) for k, v in model.state_dict().items()})
    assert list(model.state_dict()) == list(t_model.state_dict())
    model.eval()
    t_model.eval()
    x = np.random.default_rng(1).standard_normal((4, 6)).astype(np.float32)
    assert_close(model(rb_tensor(x)), t_model(torch.tensor(x)), rtol=1e-5, atol=1e-6)


@requires_torch
def test_mlp_state_dict_matches_equivalent_torch_model():
    model = rb.models.MLP([6, 8, 3], batch_norm=True)
    t_model = torch.nn.Module()
    t_model.hidden = torch.nn.ModuleList([torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.BatchNorm1d(8),
                                                              torch.nn.ReLU())])
    t_model.output = torch.nn.Linear(8, 3)
    t_state = t_model.state_dict()
    assert list(model.state_dict()) == list(t_state)
    for key, value in model.state_dict().items():
        assert value.shape == tuple(t_state[key].shape), key


def test_load_state_dict_lists_every_bad_key_with_shapes():
    model = rb_model()
    state = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    state["0.weight"] = np.zeros((8, 7), np.float32)
    state["4.bias"] = np.zeros(6, np.float32)
    del state["7.weight"]
    state["extra.weight"] = np.zeros(2)
    with pytest.raises(ValueError) as info:
        model.load_state_dict(state)
    message = str(info.value)
    for expected in ["0.weight: expected shape (8, 6), got (8, 7)", "4.bias: expected shape (5,), got (6,)",
                     "missing keys: 7.weight", "unexpected keys: extra.weight"]:
        assert expected in message


def test_state_dict_round_trip_through_safetensors(tmp_path):
    model = rb_model()
    model(rb.randn(5, 6))
    path = tmp_path / "model.safetensors"
    rb.save(model.state_dict(), path)
    other = rb_model()
    other.load_state_dict(rb.load(path))
    model.eval()
    other.eval()
    x = rb.randn(3, 6)
    np.testing.assert_array_equal(model(x).numpy(), other(x).numpy())


@requires_torch
def test_summary_counts_equal_torch_parameter_counts():
    model = rb_model()
    text = model.summary((2, 6), print_fn=None)
    total = sum(p.numel() for p in torch_model().parameters())
    assert sum(p.numel() for p in model.parameters()) == total
    assert f"Total params: {total:,}" in text
    assert f"Trainable params: {total:,}" in text
    assert "Non-trainable params: 0" in text
    assert "0 (Linear)" in text and "(2, 8)" in text and "(2, 3)" in text


def test_summary_frozen_layers_restores_modes_and_keeps_running_stats():
    model = rb.models.MLP([10, 16, 4], batch_norm=True, dropout=0.5)
    model.hidden[0][0].requires_grad_(False)
    model.train()
    model.hidden[0][3].eval()  # a mixed state must survive
    before = model.hidden[0][1].running_mean.numpy().copy()
    text = model.summary((1, 10), print_fn=None)
    frozen = 10 * 16 + 16
    total = sum(p.numel() for p in model.parameters())
    assert f"Total params: {total:,}" in text
    assert f"Trainable params: {total - frozen:,}" in text
    assert f"Non-trainable params: {frozen:,}" in text
    assert model.training and model.hidden[0][1].training and not model.hidden[0][3].training
    np.testing.assert_array_equal(model.hidden[0][1].running_mean.numpy(), before)
    assert model.hidden[0][1].num_batches_tracked.item() == 0


def test_summary_counts_shared_parameters_once_and_handles_integer_inputs():
    shared = rb.nn.Linear(4, 4)
    model = rb.nn.Sequential(OrderedDict(embed=rb.nn.Embedding(10, 4), a=shared, b=shared))
    text = model.summary((2, 3), dtype=np.int64, print_fn=None)
    assert f"Total params: {10 * 4 + 4 * 4 + 4:,}" in text
    assert "(2, 3, 4)" in text


@requires_torch
def test_model_repr_matches_torch():
    assert repr(rb_model()).replace("Dropout(p=0.2)", "Dropout(p=0.2, inplace=False)") == repr(torch_model())
