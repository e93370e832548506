"""Recurrent layers and cells: every output, final state and gradient against PyTorch, the peephole
LSTM against a composite reference, float64 gradchecks, packing, and a learning test."""

from __future__ import annotations

import numpy as np
import pytest

import rosenblatt as rb
from rosenblatt.nn.functional import recurrent as R
from rosenblatt.nn.utils import rnn as rnn_utils
from tests.parity import HAVE_TORCH, assert_close, on_device, rb_tensor, requires_torch, tol

if HAVE_TORCH:
    import torch

MODES = {
    "rnn_tanh": lambda **kw: (rb.nn.RNN(**kw), torch.nn.RNN(**kw)),
    "rnn_relu": lambda **kw: (rb.nn.RNN(nonlinearity="relu", **kw), torch.nn.RNN(nonlinearity="relu", **kw)),
    "lstm": lambda **kw: (rb.nn.LSTM(**kw), torch.nn.LSTM(**kw)),
    "gru": lambda **kw: (rb.nn.GRU(**kw), torch.nn.GRU(**kw)),
}


def _make_pair(mode: str, dtype, **kw):
    """The same layer in both frameworks: PyTorch's weights loaded into rosenblatt's layer."""
    layer, t_layer = MODES[mode](**kw)
    t_layer = t_layer.to(torch.float64 if dtype == np.float64 else torch.float32)
    layer = layer.to(rb.float64 if dtype == np.float64 else rb.float32)
    state = {k: v.detach().numpy().copy() for k, v in t_layer.state_dict().items()}
    assert list(state) == list(layer.state_dict()), "state_dict keys differ from PyTorch's"
    layer.load_state_dict(state)
    return on_device(layer), t_layer


def _initial_states(mode, num_states, batch, hidden, proj, dtype, rng):
    h0 = rng.standard_normal((num_states, batch, proj or hidden)).astype(dtype)
    if mode == "lstm":
        return h0, rng.standard_normal((num_states, batch, hidden)).astype(dtype)
    return (h0,)


def _flat(out):
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in _flat(o)]
    return [out]


def _compare(layer, t_layer, x, states, dtype, lengths=None, batch_first=False, seed=0):
    """Forward outputs, final states and gradients of input, states and every parameter."""
    rx = rb_tensor(x, requires_grad=True)
    tx = torch.tensor(x, requires_grad=True)
    rs = [rb_tensor(s, requires_grad=True) for s in states]
    ts = [torch.tensor(s, requires_grad=True) for s in states]
    lstm = isinstance(layer, rb.nn.LSTM)
    r_hx = None if not rs else (tuple(rs) if lstm else rs[0])
    t_hx = None if not ts else (tuple(ts) if lstm else ts[0])
    if lengths is None:
        r_out = layer(rx, r_hx)
        t_out = t_layer(tx, t_hx)
    else:
        r_out = layer(rx, r_hx, lengths=lengths)
        packed = torch.nn.utils.rnn.pack_padded_sequence(tx, torch.tensor(lengths), batch_first=batch_first,
                                                         enforce_sorted=False)
        t_packed, t_state = t_layer(packed, t_hx)
        total = x.shape[1] if batch_first else x.shape[0]
        t_y, _ = torch.nn.utils.rnn.pad_packed_sequence(t_packed, batch_first=batch_first, total_length=total)
        t_out = (t_y, t_state)
    r_flat, t_flat = _flat(r_out), _flat(t_out)
    assert len(r_flat) == len(t_flat)
    for i, (a, b) in enumerate(zip(r_flat, t_flat)):
        assert_close(a, b, f"output {i}", **tol(dtype, 10))
    rng = np.random.default_rng(seed)
    upstream = [rng.standard_normal(a.shape).astype(dtype) for a in r_flat]
    r_wrt = [rx, *rs, *[p for _, p in layer.named_parameters()]]
    t_wrt = [tx, *ts, *[p for _, p in t_layer.named_parameters()]]
    names = ["input", *[f"state {i}" for i in range(len(rs))], *[n for n, _ in layer.named_parameters()]]
    r_grads = rb.grad(r_flat, r_wrt, [rb_tensor(u) for u in upstream])
    t_grads = torch.autograd.grad(t_flat, t_wrt, [torch.tensor(u) for u in upstream])
    for name, a, b in zip(names, r_grads, t_grads):
        assert_close(a, b, f"gradient of {name}", **tol(dtype, 100))


CONFIGS = [
    dict(num_layers=1, bidirectional=False, batch_first=False, init=False),
    dict(num_layers=2, bidirectional=False, batch_first=True, init=True),
    dict(num_layers=1, bidirectional=True, batch_first=True, init=False),
    dict(num_layers=2, bidirectional=True, batch_first=False, init=True),
]


@requires_torch
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "L{num_layers}-bi{bidirectional:d}-bf{batch_first:d}-h{init:d}".format(**c))
@pytest.mark.parametrize("mode", list(MODES))
def test_layer_matches_torch(mode, config, dtype):
    rng = np.random.default_rng(1)
    T, N, C, H = 5, 3, 4, 6
    layer, t_layer = _make_pair(mode, dtype, input_size=C, hidden_size=H, num_layers=config["num_layers"],
                                bidirectional=config["bidirectional"], batch_first=config["batch_first"])
    x = rng.standard_normal((N, T, C) if config["batch_first"] else (T, N, C)).astype(dtype)
    num_states = config["num_layers"] * (2 if config["bidirectional"] else 1)
    states = _initial_states(mode, num_states, N, H, 0, dtype, rng) if config["init"] else ()
    _compare(layer, t_layer, x, states, dtype)


@requires_torch
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("mode", list(MODES))
def test_lengths_match_packed_torch(mode, batch_first):
    """Outputs zero past each end, final states at the last real step, also backwards."""
    dtype = np.float64
    rng = np.random.default_rng(2)
    T, N, C, H = 6, 4, 3, 5
    layer, t_layer = _make_pair(mode, dtype, input_size=C, hidden_size=H, num_layers=2, bidirectional=True,
                                batch_first=batch_first)
    x = rng.standard_normal((N, T, C) if batch_first else (T, N, C)).astype(dtype)
    lengths = np.array([3, 6, 1, 4])  # unsorted on purpose
    states = _initial_states(mode, 4, N, H, 0, dtype, rng)
    _compare(layer, t_layer, x, states, dtype, lengths=lengths, batch_first=batch_first)


@requires_torch
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "L{num_layers}-bi{bidirectional:d}-bf{batch_first:d}-h{init:d}".format(**c))
def test_lstm_projection_matches_torch(config, dtype):
    """``proj_size``: outputs, final states and the gradients of input, h0, c0 and every weight
    (``weight_hr`` included)."""
    rng = np.random.default_rng(3)
    T, N, C, H, P = 5, 2, 4, 6, 3
    layer, t_layer = _make_pair("lstm", dtype, input_size=C, hidden_size=H, num_layers=config["num_layers"],
                                bidirectional=config["bidirectional"], batch_first=config["batch_first"],
                                proj_size=P)
    x = rng.standard_normal((N, T, C) if config["batch_first"] else (T, N, C)).astype(dtype)
    num_states = config["num_layers"] * (2 if config["bidirectional"] else 1)
    states = _initial_states("lstm", num_states, N, H, P, dtype, rng) if config["init"] else ()
    _compare(layer, t_layer, x, states, dtype)


@requires_torch
def test_lstm_projection_with_lengths_matches_torch():
    rng = np.random.default_rng(4)
    layer, t_layer = _make_pair("lstm", np.float64, input_size=3, hidden_size=5, bidirectional=True, proj_size=2)
    x = rng.standard_normal((4, 3, 3))
    _compare(layer, t_layer, x, (), np.float64, lengths=np.array([2, 4, 1]))


@requires_torch
def test_packed_sequence_round_trip_matches_torch():
    rng = np.random.default_rng(5)
    layer, t_layer = _make_pair("gru", np.float64, input_size=3, hidden_size=4, bidirectional=True, batch_first=True)
    x = rng.standard_normal((3, 5, 3))
    lengths = [5, 3, 2]
    rx = rb_tensor(x, requires_grad=True)
    tx = torch.tensor(x, requires_grad=True)
    packed = rnn_utils.pack_padded_sequence(rx, lengths, batch_first=True)
    t_packed = torch.nn.utils.rnn.pack_padded_sequence(tx, torch.tensor(lengths), batch_first=True)
    assert_close(packed.data, t_packed.data, "packed data")
    assert packed.batch_sizes.tolist() == t_packed.batch_sizes.tolist()
    out, h_n = layer(packed)
    t_out, t_h = t_layer(t_packed)
    assert isinstance(out, rnn_utils.PackedSequence)
    assert_close(out.data, t_out.data, "packed output data")
    y, lens = rnn_utils.pad_packed_sequence(out, batch_first=True)
    t_y, t_lens = torch.nn.utils.rnn.pad_packed_sequence(t_out, batch_first=True)
    assert_close(y, t_y, "unpacked output")
    assert_close(h_n, t_h, "h_n")
    assert lens.tolist() == t_lens.tolist()
    (y.sum() + (h_n * h_n).sum()).backward()
    (t_y.sum() + (t_h * t_h).sum()).backward()
    assert_close(rx.grad, tx.grad, "input gradient through packing", rtol=1e-7, atol=1e-9)


def test_pack_padded_sequence_checks_and_padding_value():
    x = rb.tensor(np.arange(12.0).reshape(4, 3, 1))
    with pytest.raises(ValueError, match="decreasing"):
        rnn_utils.pack_padded_sequence(x, [2, 4, 1])
    with pytest.raises(ValueError, match="in \\[1, 4\\]"):
        rnn_utils.pack_padded_sequence(x, [5, 2, 1])
    packed = rnn_utils.pack_padded_sequence(x, [2, 4, 1], enforce_sorted=False)
    assert packed.sorted_indices.tolist() == [1, 0, 2]
    y, lengths = rnn_utils.pad_packed_sequence(packed, padding_value=-1.0, total_length=5)
    assert y.shape == (5, 3, 1) and lengths.tolist() == [2, 4, 1]
    expected = np.where(np.arange(5)[:, None] < np.array([2, 4, 1])[None, :], np.pad(np.arange(12.0).reshape(4, 3),
                        ((0, 1), (0, 0))), -1.0)
    np.testing.assert_array_equal(y.numpy()[..., 0], expected)


@requires_torch
def test_pad_sequence_matches_torch():
    rng = np.random.default_rng(6)
    seqs = [rng.standard_normal((n, 2)) for n in (3, 1, 4)]
    for batch_first in (False, True):
        for side in ("right", "left"):
            a = rnn_utils.pad_sequence([rb_tensor(s) for s in seqs], batch_first=batch_first, padding_value=7.0,
                                       padding_side=side)
            b = torch.nn.utils.rnn.pad_sequence([torch.tensor(s) for s in seqs], batch_first=batch_first,
                                                padding_value=7.0, padding_side=side)
            assert_close(a, b, f"pad_sequence batch_first={batch_first} side={side}")


# -- cells -----------------------------------------------------------------------------------------

CELLS = {
    "rnn_tanh": (lambda: rb.nn.RNNCell(4, 5), lambda: torch.nn.RNNCell(4, 5)),
    "rnn_relu": (lambda: rb.nn.RNNCell(4, 5, nonlinearity="relu"), lambda: torch.nn.RNNCell(4, 5, nonlinearity="relu")),
    "lstm": (lambda: rb.nn.LSTMCell(4, 5), lambda: torch.nn.LSTMCell(4, 5)),
    "gru": (lambda: rb.nn.GRUCell(4, 5), lambda: torch.nn.GRUCell(4, 5)),
}


@requires_torch
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode", list(CELLS))
def test_cell_matches_torch(mode, dtype):
    rng = np.random.default_rng(7)
    make_rb, make_torch = CELLS[mode]
    t_cell = make_torch().to(torch.float64 if dtype == np.float64 else torch.float32)
    cell = make_rb().to(rb.float64 if dtype == np.float64 else rb.float32)
    cell.load_state_dict({k: v.detach().numpy().copy() for k, v in t_cell.state_dict().items()})
    on_device(cell)
    x = rng.standard_normal((3, 4)).astype(dtype)
    states = [rng.standard_normal((3, 5)).astype(dtype) for _ in range(2 if mode == "lstm" else 1)]
    rx, tx = rb_tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    rs = [rb_tensor(s, requires_grad=True) for s in states]
    ts = [torch.tensor(s, requires_grad=True) for s in states]
    r_out = _flat(cell(rx, tuple(rs) if mode == "lstm" else rs[0]))
    t_out = _flat(t_cell(tx, tuple(ts) if mode == "lstm" else ts[0]))
    for a, b in zip(r_out, t_out):
        assert_close(a, b, "cell output", **tol(dtype, 10))
    up = [rng.standard_normal(a.shape).astype(dtype) for a in r_out]
    r_wrt = [rx, *rs, *cell.parameters()]
    t_wrt = [tx, *ts, *t_cell.parameters()]
    for a, b in zip(rb.grad(r_out, r_wrt, [rb_tensor(u) for u in up]),
                    torch.autograd.grad(t_out, t_wrt, [torch.tensor(u) for u in up])):
        assert_close(a, b, "cell gradient", **tol(dtype, 100))
    # unbatched input and default zero state
    assert_close(_flat(cell(rx[0]))[0], _flat(t_cell(tx[0]))[0], "unbatched cell", **tol(dtype, 10))


@pytest.mark.parametrize("mode", ["rnn", "lstm", "lstm_peephole", "gru"])
def test_cell_gradcheck(mode):
    rng = np.random.default_rng(8)
    H = 3
    gates = {"rnn": 1, "lstm": 4, "lstm_peephole": 4, "gru": 3}[mode]
    arrays = [rng.standard_normal((2, 2)), rng.standard_normal((2, H)), rng.standard_normal((2, H)),
              rng.standard_normal((gates * H, 2)) * 0.5, rng.standard_normal((gates * H, H)) * 0.5,
              rng.standard_normal(gates * H) * 0.5, rng.standard_normal(gates * H) * 0.5,
              rng.standard_normal((3, H)) * 0.5]
    inputs = tuple(rb_tensor(a, requires_grad=True) for a in arrays)
    x, h, c, w_ih, w_hh, b_ih, b_hh, w_p = inputs
    if mode == "rnn":
        assert rb.autograd.gradcheck(lambda *a: R.rnn_cell(*a), (x, h, w_ih, w_hh, b_ih, b_hh))
    elif mode == "gru":
        assert rb.autograd.gradcheck(lambda *a: R.gru_cell(*a), (x, h, w_ih, w_hh, b_ih, b_hh))
    elif mode == "lstm":
        assert rb.autograd.gradcheck(lambda x, h, c, *w: R.lstm_cell(x, (h, c), *w), (x, h, c, w_ih, w_hh, b_ih, b_hh))
    else:
        assert rb.autograd.gradcheck(lambda x, h, c, *w: R.lstm_cell(x, (h, c), *w),
                                     (x, h, c, w_ih, w_hh, b_ih, b_hh, w_p))
        # the composite cells are twice differentiable (the fused layers are not)
        assert rb.autograd.gradgradcheck(lambda x, h, c, *w: R.lstm_cell(x, (h, c), *w),
                                         (x, h, c, w_ih, w_hh, b_ih, b_hh, w_p))


# -- fused layers: gradcheck, peephole reference --------------------------------------------------

def _fused_args(mode, rng, T=3, N=2, C=2, H=2, proj=0, peephole=False):
    gates = {"rnn": 1, "lstm": 4, "gru": 3}[mode]
    P = proj or H
    arrays = {"x": rng.standard_normal((T, N, C)), "h0": rng.standard_normal((N, P)),
              "w_ih": rng.standard_normal((gates * H, C)) * 0.5, "w_hh": rng.standard_normal((gates * H, P)) * 0.5,
              "b_ih": rng.standard_normal(gates * H) * 0.5, "b_hh": rng.standard_normal(gates * H) * 0.5}
    if mode == "lstm":
        arrays["c0"] = rng.standard_normal((N, H))
        if proj:
            arrays["w_hr"] = rng.standard_normal((P, H)) * 0.5
        if peephole:
            arrays["w_p"] = rng.standard_normal((3, H)) * 0.5
    return {k: rb_tensor(v, requires_grad=True) for k, v in arrays.items()}


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("lengths", [None, (3, 1)])
@pytest.mark.parametrize("variant", ["rnn_tanh", "rnn_relu", "gru", "lstm", "lstm_proj_peephole"])
def test_fused_layer_gradcheck(variant, lengths, reverse):
    rng = np.random.default_rng(9)
    mode = variant.split("_")[0]
    a = _fused_args(mode, rng, proj=1 if "proj" in variant else 0, peephole="peephole" in variant)
    names = list(a)

    def fn(*tensors):
        t = dict(zip(names, tensors))
        if mode == "lstm":
            out, (h, c) = R.lstm_layer(t["x"], (t["h0"], t["c0"]), t["w_ih"], t["w_hh"], t["b_ih"], t["b_hh"],
                                       t.get("w_hr"), t.get("w_p"), reverse=reverse, lengths=lengths)
            return out, h, c
        if mode == "gru":
            return R.gru_layer(t["x"], t["h0"], t["w_ih"], t["w_hh"], t["b_ih"], t["b_hh"], reverse=reverse,
                               lengths=lengths)
        return R.rnn_layer(t["x"], t["h0"], t["w_ih"], t["w_hh"], t["b_ih"], t["b_hh"],
                           nonlinearity=variant.split("_")[1], reverse=reverse, lengths=lengths)

    assert rb.autograd.gradcheck(fn, tuple(a[n] for n in names))


def _peephole_reference(layer, x, lengths):
    """A composite bidirectional peephole LSTM built from rb ops, one sequence at a time (so the
    lengths are honoured by slicing, not masking)."""
    H = layer.hidden_size
    outputs, finals_h, finals_c = [], [], []
    for n in range(x.shape[1]):
        seq = x[: lengths[n], n : n + 1]
        layer_in = seq
        hs, cs = [], []
        for k in range(layer.num_layers):
            direction_outputs = []
            for d, suffix in enumerate(["", "_reverse"][: 2 if layer.bidirectional else 1]):
                p = {name: getattr(layer, f"{name}_l{k}{suffix}") for name in
                     ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_peephole")}
                h = rb.zeros(1, H, dtype=x.dtype, device=x.device)
                c = rb.zeros(1, H, dtype=x.dtype, device=x.device)
                steps = range(layer_in.shape[0])
                ys = [None] * layer_in.shape[0]
                for t in (reversed(steps) if d else steps):
                    gates = layer_in[t] @ p["weight_ih"].T + p["bias_ih"] + h @ p["weight_hh"].T + p["bias_hh"]
                    i = rb.sigmoid(gates[:, :H] + p["weight_peephole"][0] * c)
                    f = rb.sigmoid(gates[:, H:2 * H] + p["weight_peephole"][1] * c)
                    g = rb.tanh(gates[:, 2 * H:3 * H])
                    c = f * c + i * g
                    o = rb.sigmoid(gates[:, 3 * H:] + p["weight_peephole"][2] * c)
                    h = o * rb.tanh(c)
                    ys[t] = h
                direction_outputs.append(rb.stack(ys, axis=0))
                hs.append(h)
                cs.append(c)
            layer_in = rb.cat(direction_outputs, axis=2)
        pad = x.shape[0] - lengths[n]
        outputs.append(rb.pad(layer_in, (0, 0, 0, 0, 0, pad)) if pad else layer_in)
        finals_h.append(rb.stack(hs, axis=0))
        finals_c.append(rb.stack(cs, axis=0))
    return rb.cat(outputs, axis=1), rb.cat(finals_h, axis=1), rb.cat(finals_c, axis=1)


@pytest.mark.parametrize("lengths", [None, (4, 2, 3)])
def test_peephole_lstm_matches_composite_reference(lengths):
    layer = on_device(rb.nn.LSTM(3, 4, num_layers=2, bidirectional=True, peephole=True).to(rb.float64))
    assert [n for n in layer.state_dict() if "peephole" in n] == [
        "weight_peephole_l0", "weight_peephole_l0_reverse", "weight_peephole_l1", "weight_peephole_l1_reverse"]
    assert layer.weight_peephole_l0.shape == (3, 4)
    rng = np.random.default_rng(10)
    x = rb_tensor(rng.standard_normal((4, 3, 3)), requires_grad=True)
    out, (h_n, c_n) = layer(x, lengths=lengths)
    ref = _peephole_reference(layer, x, lengths or (4, 4, 4))
    for a, b, name in zip((out, h_n, c_n), ref, ("output", "h_n", "c_n")):
        assert_close(a, b, name, rtol=1e-10, atol=1e-12)
    params = list(layer.parameters())
    up = [rb_tensor(rng.standard_normal(a.shape)) for a in (out, h_n, c_n)]
    g1 = rb.grad([out, h_n, c_n], [x, *params], up)
    g2 = rb.grad(list(ref), [x, *params], up)
    for i, (a, b) in enumerate(zip(g1, g2)):
        assert_close(a, b, f"gradient {i}", rtol=1e-9, atol=1e-11)


def test_peephole_absent_by_default_and_cell_peephole():
    assert not any("peephole" in k for k in rb.nn.LSTM(2, 3).state_dict())
    cell = rb.nn.LSTMCell(2, 3, peephole=True)
    assert list(cell.state_dict()) == ["weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_peephole"]
    # a peephole LSTM layer of one step equals its cell with the same weights
    layer = rb.nn.LSTM(2, 3, peephole=True)
    cell.load_state_dict({k.replace("_l0", ""): v.numpy() for k, v in layer.state_dict().items()})
    x = rb.randn(1, 4, 2)
    out, (h, c) = layer(x)
    h2, c2 = cell(x[0])
    assert_close(h[0], h2, "h", rtol=1e-5, atol=1e-6)
    assert_close(c[0], c2, "c", rtol=1e-5, atol=1e-6)


# -- behaviour -------------------------------------------------------------------------------------

def test_default_init_is_pytorch_uniform():
    layer = rb.nn.LSTM(10, 64, num_layers=2)
    bound = 1 / np.sqrt(64)
    values = np.concatenate([p.numpy().ravel() for p in layer.parameters()])
    assert values.min() >= -bound and values.max() <= bound
    assert abs(values.std() - bound / np.sqrt(3)) < 0.01 * bound * 10  # std of U(-b, b) is b / sqrt(3)


def test_double_backward_is_refused_clearly():
    layer = rb.nn.GRU(2, 3).to(rb.float64)
    x = rb.randn(3, 2, 2, dtype=rb.float64, requires_grad=True)
    out, _ = layer(x)
    with pytest.raises(RuntimeError, match="GRULayer: .*differentiated twice"):
        (g,) = rb.grad(out.sum(), [x], create_graph=True)
        rb.grad(g.sum(), [x])


def test_truncated_bptt_with_detach():
    """Gradients stop at the detached state; the carried state still shapes the second chunk."""
    layer = rb.nn.LSTM(2, 3).to(rb.float64)
    x = rb.randn(8, 2, 2, dtype=rb.float64, requires_grad=True)
    _, (h, c) = layer(x[:4])
    out2, _ = layer(x[4:], (h.detach(), c.detach()))
    out2.sum().backward()
    assert np.all(x.grad.numpy()[:4] == 0) and np.any(x.grad.numpy()[4:] != 0)
    full, _ = layer(x)
    assert_close(out2, full[4:], "chunked forward equals the full forward", rtol=1e-12, atol=1e-12)


def test_dropout_between_layers_only_in_training():
    layer = rb.nn.LSTM(3, 4, num_layers=2, dropout=0.5)
    x = rb.randn(5, 2, 3)
    layer.eval()
    a, _ = layer(x)
    b, _ = layer(x)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    layer.train()
    rb.manual_seed(1)
    c, _ = layer(x)
    rb.manual_seed(2)
    d, _ = layer(x)
    assert not np.allclose(c.numpy(), d.numpy())
    one_layer = rb.nn.LSTM(3, 4, dropout=0.5)  # dropout after the last layer: never
    e, _ = one_layer(x)
    f, _ = one_layer(x)
    np.testing.assert_array_equal(e.numpy(), f.numpy())


@requires_torch
def test_unbatched_input_matches_torch():
    layer, t_layer = _make_pair("lstm", np.float64, input_size=3, hidden_size=4, num_layers=2)
    x = np.random.default_rng(11).standard_normal((5, 3))
    out, (h, c) = layer(rb_tensor(x))
    t_out, (t_h, t_c) = t_layer(torch.tensor(x))
    assert_close(out, t_out, "output")
    assert_close(h, t_h, "h_n")
    assert out.shape == (5, 4) and h.shape == (2, 4)


def test_bad_inputs_raise_clear_errors():
    layer = rb.nn.LSTM(3, 4, num_layers=2)
    with pytest.raises(ValueError, match="LSTM: expected input with 3 features"):
        layer(rb.randn(5, 2, 7))
    with pytest.raises(ValueError, match="LSTM: expected h_0 of shape \\(2, 2, 4\\)"):
        layer(rb.randn(5, 2, 3), (rb.zeros(1, 2, 4), rb.zeros(2, 2, 4)))
    with pytest.raises(TypeError, match="LSTM: hx must be a tuple"):
        layer(rb.randn(5, 2, 3), rb.zeros(2, 2, 4))
    with pytest.raises(ValueError, match="GRU: every length"):
        rb.nn.GRU(3, 4)(rb.randn(5, 2, 3), lengths=[6, 2])
    with pytest.raises(TypeError, match="RNN: input dtype"):
        rb.nn.RNN(3, 4)(rb.randn(5, 2, 3, dtype=rb.float64))
    with pytest.raises(ValueError, match="GRUCell: expected input of shape"):
        rb.nn.GRUCell(3, 4)(rb.randn(2, 5))
    with pytest.raises(ValueError, match="proj_size"):
        rb.nn.LSTM(3, 4, proj_size=4)


# -- learning ------------------------------------------------------------------------------------

def _adding_problem(n, T, rng):
    """Hochreiter & Schmidhuber (1997): sum the two values whose marker is 1."""
    values = rng.uniform(0, 1, (n, T))
    markers = np.zeros((n, T))
    for i in range(n):
        a, b = rng.choice(T, size=2, replace=False)
        markers[i, [a, b]] = 1
    x = np.stack([values, markers], axis=-1).astype(np.float32)
    y = (values * markers).sum(axis=1, keepdims=True).astype(np.float32)
    return x, y


def _adding_mse(lstm, head, x, y):
    with rb.no_grad():
        _, (h, _) = lstm(rb.tensor(x))
        return float(((head(h[0]).numpy() - y) ** 2).mean())


def test_lstm_learns_the_adding_problem():
    """An LSTM gets far below the predict-the-mean MSE (~0.167) within a few hundred steps;
    a wrong gradient keeps it on that plateau. Usually ~2 s."""
    rb.manual_seed(0)
    rng = np.random.default_rng(0)
    T = 20
    x_train, y_train = _adding_problem(4096, T, rng)
    x_test, y_test = _adding_problem(512, T, rng)
    lstm = rb.nn.LSTM(2, 32, batch_first=True)
    head = rb.nn.Linear(32, 1)
    optimizer = rb.optim.Adam(list(lstm.parameters()) + list(head.parameters()), lr=0.01)
    mse = _adding_mse(lstm, head, x_test, y_test)
    for step in range(1, 1201):
        idx = rng.integers(0, len(x_train), 64)
        _, (h, _) = lstm(rb.tensor(x_train[idx]))
        loss = ((head(h[0]) - rb.tensor(y_train[idx])) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 100 == 0:
            mse = _adding_mse(lstm, head, x_test, y_test)
            if mse < 0.02:
                break
    assert mse < 0.05, f"test MSE {mse:.4f} after {step} steps (the predict-the-mean baseline is ~0.167)"
