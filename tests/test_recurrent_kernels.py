"""Recurrent kernels under both kernel sets: the layers against PyTorch, the oneDNN kernels against
the NumPy reference kernels, and what the oneDNN kernels hand back to the NumPy ones.

Every layer case runs with the NumPy kernels and with the oneDNN kernels (skipped where the
library is not installed); under oneDNN the test also checks that the oneDNN kernel really ran.
"""

from __future__ import annotations

import numpy as np
import pytest

import rosenblatt as rb
from rosenblatt.kernels import recurrent as numpy_kernels
from rosenblatt.kernels.onednn import library as L
from tests.parity import assert_close, rb_tensor, requires_torch
from tests.test_rnn import MODES, _compare, _initial_states, _make_pair

ONEDNN_OK, ONEDNN_WHY = L.load()
requires_onednn = pytest.mark.skipif(not ONEDNN_OK, reason=f"oneDNN unavailable: {ONEDNN_WHY}")


def _ran(cell: str) -> bool:
    """True when a oneDNN RNN primitive of ``cell`` ("lstm", "gru", "rnn_tanh", "rnn_relu") was built."""
    return any(isinstance(k, tuple) and k[:2] == ("rnn", cell) for k, _ in L.cache_items())


def _kernel_of(output: rb.Tensor) -> str:
    """``"onednn"`` or ``"numpy"``: which kernels computed a fused layer's output."""
    return "onednn" if output.grad_fn.kernel.__name__.endswith("onednn.recurrent") else "numpy"


CONFIGS = [
    dict(num_layers=1, bidirectional=False, batch_first=False, init=False, bias=True),
    dict(num_layers=2, bidirectional=True, batch_first=True, init=True, bias=True),
    dict(num_layers=1, bidirectional=True, batch_first=False, init=True, bias=False),
]


@requires_torch
@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "L{num_layers}-bi{bidirectional:d}-bf{batch_first:d}"
                         "-h{init:d}-b{bias:d}".format(**c))
@pytest.mark.parametrize("mode", list(MODES))
def test_layer_matches_torch_under_both_kernel_sets(kernel_set, mode, config):
    """Outputs, final states and the gradients of the input, the states and every parameter."""
    rng = np.random.default_rng(3)
    T, N, C, H = 6, 3, 5, 7
    layer, t_layer = _make_pair(mode, np.float32, input_size=C, hidden_size=H, num_layers=config["num_layers"],
                                bidirectional=config["bidirectional"], batch_first=config["batch_first"],
                                bias=config["bias"])
    x = rng.standard_normal((N, T, C) if config["batch_first"] else (T, N, C)).astype(np.float32)
    num_states = config["num_layers"] * (2 if config["bidirectional"] else 1)
    states = _initial_states(mode, num_states, N, H, 0, np.float32, rng) if config["init"] else ()
    _compare(layer, t_layer, x, states, np.float32)
    assert _ran(mode) == (kernel_set == "onednn"), f"the {mode} kernel of {kernel_set} did not run"


@requires_torch
@pytest.mark.parametrize("mode", ["lstm", "gru"])
def test_batch_one_inference_matches_torch(kernel_set, mode):
    import torch

    layer, t_layer = _make_pair(mode, np.float32, input_size=4, hidden_size=9, num_layers=2)
    layer.eval()
    x = np.random.default_rng(4).standard_normal((12, 1, 4)).astype(np.float32)
    with rb.no_grad():
        out, state = layer(rb.tensor(x))
    with torch.no_grad():
        t_out, t_state = t_layer(torch.tensor(x))
    assert _ran(mode) == (kernel_set == "onednn"), f"the {mode} kernel of {kernel_set} did not run"
    assert_close(out, t_out, "output", rtol=1e-5, atol=1e-6)
    for a, b in zip(state if mode == "lstm" else [state], t_state if mode == "lstm" else [t_state]):
        assert_close(a, b, "final state", rtol=1e-5, atol=1e-6)


# -- the oneDNN kernels against the NumPy reference kernels ---------------------------------------

CELLS = {"lstm": 4, "gru": 3, "rnn_tanh": 1, "rnn_relu": 1}


def _kernel_args(cell, rng, T=7, N=4, C=5, H=6, bias=True):
    G = CELLS[cell]
    f32 = np.float32
    args = {"x": rng.standard_normal((T, N, C)).astype(f32), "h0": rng.standard_normal((N, H)).astype(f32)}
    if cell == "lstm":
        args["c0"] = rng.standard_normal((N, H)).astype(f32)
    args["w_ih"] = (rng.standard_normal((G * H, C)) * 0.4).astype(f32)
    args["w_hh"] = (rng.standard_normal((G * H, H)) * 0.4).astype(f32)
    args["b_ih"] = (rng.standard_normal(G * H) * 0.4).astype(f32) if bias else None
    args["b_hh"] = (rng.standard_normal(G * H) * 0.4).astype(f32) if bias else None
    return args


def _run(module, cell, args, reverse, needs, upstream):
    if cell == "lstm":
        output, h_n, c_n, saved = module.lstm_forward(*args.values(), None, None, reverse=reverse)
        grads = module.lstm_backward(saved, *upstream, needs + (False, False))
        return [output, h_n, c_n], list(grads[:7])
    kw = {"nonlinearity": cell[4:]} if cell.startswith("rnn") else {}
    forward = module.rnn_forward if cell.startswith("rnn") else module.gru_forward
    backward = module.rnn_backward if cell.startswith("rnn") else module.gru_backward
    output, h_n, saved = forward(*args.values(), reverse=reverse, **kw)
    return [output, h_n], list(backward(saved, *upstream[:2], needs))


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("cell", list(CELLS))
def test_onednn_kernels_match_numpy_kernels(onednn, cell, reverse, bias):
    from rosenblatt.kernels.onednn import recurrent as onednn_kernels

    rng = np.random.default_rng(5)
    args = _kernel_args(cell, rng, bias=bias)
    n_inputs = len(args)
    upstream = [rng.standard_normal(s).astype(np.float32) for s in
                [(7, 4, 6), (4, 6)] + ([(4, 6)] if cell == "lstm" else [])]
    for needs in [(True,) * n_inputs, tuple(i >= n_inputs - 4 for i in range(n_inputs))]:  # all / weights only
        if not bias:
            needs = needs[:-2] + (False, False)
        outs, grads = _run(onednn_kernels, cell, args, reverse, needs, upstream)
        ref_outs, ref_grads = _run(numpy_kernels, cell, args, reverse, needs, upstream)
        for i, (a, b) in enumerate(zip(outs, ref_outs)):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5, err_msg=f"{cell} output {i}")
        for name, a, b, needed in zip(args, grads, ref_grads, needs):
            assert (a is None) == (not needed), f"{cell}: gradient of {name} computed={a is not None}"
            if needed:
                assert a.shape == b.shape and a.dtype == np.float32 and a.flags.c_contiguous
                np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5, err_msg=f"{cell} gradient of {name}")


def test_declined_calls_run_the_numpy_kernels(onednn):
    """Peepholes, a projection, lengths and float64 are not covered: NumPy runs them."""
    x = rb.randn(4, 2, 3, requires_grad=True)
    assert _kernel_of(rb.nn.LSTM(3, 5)(x)[0]) == "onednn"
    assert _kernel_of(rb.nn.LSTM(3, 5, peephole=True)(x)[0]) == "numpy"
    assert _kernel_of(rb.nn.LSTM(3, 5, proj_size=2)(x)[0]) == "numpy"
    assert _kernel_of(rb.nn.GRU(3, 5)(x, lengths=[4, 2])[0]) == "numpy"
    x64 = rb.randn(4, 2, 3, dtype=rb.float64, requires_grad=True)
    assert _kernel_of(rb.nn.RNN(3, 5).to(rb.float64)(x64)[0]) == "numpy"


def test_workspace_outlives_other_forwards_and_retained_graphs(onednn):
    """Each forward's workspace stays its own until its backward (also a second, retained one)."""
    layer = rb.nn.LSTM(3, 8)
    rng = np.random.default_rng(6)
    xs = [rb_tensor(rng.standard_normal((5, 4, 3)).astype(np.float32), requires_grad=True) for _ in range(3)]
    expected = []
    for x in xs:
        out, _ = layer(x)
        (g,) = rb.grad((out * out).sum(), [x])
        expected.append(g.numpy())
    outs = [layer(x)[0] for x in xs]  # three graphs alive at once
    for i in (2, 0, 1):
        loss = (outs[i] * outs[i]).sum()
        (g1,) = rb.grad(loss, [xs[i]], retain_graph=True)
        (g2,) = rb.grad(loss, [xs[i]])
        np.testing.assert_array_equal(g1.numpy(), expected[i])
        np.testing.assert_array_equal(g2.numpy(), expected[i])


def test_small_steps_run_on_one_thread_and_restore_the_count(onednn):
    before = L.get_num_threads()
    layer = rb.nn.GRU(3, 4)
    with rb.no_grad():
        layer(rb.randn(6, 1, 3))
    assert L.get_num_threads() == before


def test_workspace_pool_is_bounded(monkeypatch):
    from rosenblatt.kernels.onednn import recurrent as onednn_kernels

    onednn_kernels.clear_pool()
    monkeypatch.setattr(onednn_kernels, "_POOL_MAX_BYTES", 1000)
    for nbytes in (100, 200, 300, 400, 100, 100, 100, 100, 100):  # the oldest sizes go first
        onednn_kernels._give_workspace(np.empty(nbytes, np.uint8))
    assert onednn_kernels._pool_bytes == 800
    assert len(onednn_kernels._pool[100]) == onednn_kernels._POOL_MAX_PER_SIZE
    assert onednn_kernels._take_workspace(100).nbytes == 100 and onednn_kernels._pool_bytes == 700
    assert onednn_kernels._take_workspace(200).nbytes == 200 and onednn_kernels._pool_bytes == 700  # a new one
    onednn_kernels.clear_pool()
    assert onednn_kernels._pool_bytes == 0
