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


def _ran(cell: str, projection: bool | None = None, peephole: bool | None = None, stage: str | None = None) -> bool:
    """True when a oneDNN RNN primitive of ``cell`` ("lstm", "gru", "rnn_tanh", "rnn_relu") was built;
    given, ``projection``/``peephole`` (an LSTM with or without them) and ``stage`` ("training",
    "inference" or "backward") narrow it down."""
    from rosenblatt.kernels.onednn.library import C

    # a primitive's key: ("rnn", cell, T, N, inputs, H, reverse, P, peephole, rows, part, "forward",
    # prop) or (..., "backward")
    stages = {"training": ("forward", C.forward_training), "inference": ("forward", C.forward_inference),
              "backward": ("backward",)}
    for k, _ in L.cache_items():
        if not (isinstance(k, tuple) and k[:2] == ("rnn", cell)):
            continue
        if projection is not None and bool(k[7]) != projection:
            continue
        if peephole is not None and k[8] != peephole:
            continue
        if stage is not None and k[11:] != stages[stage]:
            continue
        return True
    return False


def _kernel_of(output: rb.Tensor) -> str:
    """``"onednn"`` or ``"numpy"``: which kernels computed a fused layer's output."""
    return "onednn" if output.grad_fn.kernel.__name__.endswith("onednn.recurrent") else "numpy"


def _config_id(config: dict) -> str:
    return "L{num_layers}-bi{bidirectional:d}-bf{batch_first:d}-h{init:d}-b{bias:d}".format(**config)


CONFIGS = [
    dict(num_layers=1, bidirectional=False, batch_first=False, init=False, bias=True),
    dict(num_layers=2, bidirectional=True, batch_first=True, init=True, bias=True),
    dict(num_layers=1, bidirectional=True, batch_first=False, init=True, bias=False),
]


@requires_torch
@pytest.mark.parametrize("config", CONFIGS, ids=_config_id)
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


# -- LSTM with a projection (proj_size) and with peepholes ------------------------------------------

PROJ_CONFIGS = [
    dict(num_layers=1, bidirectional=False, batch_first=False, init=False, bias=True),
    dict(num_layers=1, bidirectional=False, batch_first=True, init=True, bias=True),
    dict(num_layers=2, bidirectional=False, batch_first=False, init=True, bias=False),
    dict(num_layers=1, bidirectional=True, batch_first=True, init=False, bias=True),
    dict(num_layers=2, bidirectional=True, batch_first=True, init=True, bias=True),
]


@requires_torch
@pytest.mark.parametrize("config", PROJ_CONFIGS, ids=_config_id)
def test_projection_lstm_matches_torch_under_both_kernel_sets(kernel_set, config):
    """``proj_size``: outputs, final states and the gradients of the input, h0, c0 and every weight
    (``weight_hr`` included) against PyTorch; under oneDNN its projection primitives ran."""
    rng = np.random.default_rng(7)
    T, N, C, H, P = 6, 3, 5, 7, 4
    layer, t_layer = _make_pair("lstm", np.float32, input_size=C, hidden_size=H, num_layers=config["num_layers"],
                                bidirectional=config["bidirectional"], batch_first=config["batch_first"],
                                bias=config["bias"], proj_size=P)
    x = rng.standard_normal((N, T, C) if config["batch_first"] else (T, N, C)).astype(np.float32)
    num_states = config["num_layers"] * (2 if config["bidirectional"] else 1)
    states = _initial_states("lstm", num_states, N, H, P, np.float32, rng) if config["init"] else ()
    _compare(layer, t_layer, x, states, np.float32)
    onednn = kernel_set == "onednn"
    assert _ran("lstm", projection=True, stage="training") == onednn, "the oneDNN projection forward did not run"
    assert _ran("lstm", projection=True, stage="backward") == onednn, "the oneDNN projection backward did not run"
    assert not _ran("lstm", projection=False)


@requires_torch
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("param", ["weight_hr_l0", "weight_hr_l1_reverse", "weight_ih_l1", "bias_hh_l0_reverse"])
def test_projection_inference_matches_torch_after_raw_weight_writes(kernel_set, param, batch):
    """Inference twice with a parameter scaled in between by a raw write into its array (which moves
    no version counter): the second call sees the new weights (the weight cache checks its sources'
    bits, the projection weights included)."""
    import torch

    layer, t_layer = _make_pair("lstm", np.float32, input_size=4, hidden_size=9, num_layers=2, bidirectional=True,
                                proj_size=5)
    layer.eval()
    rng = np.random.default_rng(8)
    x = rng.standard_normal((12, batch, 4)).astype(np.float32)
    h0, c0 = _initial_states("lstm", 4, batch, 9, 5, np.float32, rng)
    for write in range(3):
        if write == 1:  # the third call runs unchanged weights again (from the cache under oneDNN)
            getattr(layer, param).data[...] *= 2
            with torch.no_grad():
                getattr(t_layer, param).mul_(2)
        with rb.no_grad():
            out, (h_n, c_n) = layer(rb.tensor(x), (rb.tensor(h0), rb.tensor(c0)))
        with torch.no_grad():
            t_out, (t_h, t_c) = t_layer(torch.tensor(x), (torch.tensor(h0), torch.tensor(c0)))
        assert_close(out, t_out, f"output after {write} writes", rtol=1e-5, atol=1e-5)
        assert_close(h_n, t_h, "h_n", rtol=1e-5, atol=1e-5)
        assert_close(c_n, t_c, "c_n", rtol=1e-5, atol=1e-5)
    assert _ran("lstm", projection=True, stage="inference") == (kernel_set == "onednn")


def _peephole_run(layer, x, states, upstream):
    """Outputs and the gradients of input, states and every parameter of a peephole LSTM."""
    rx = rb_tensor(x, requires_grad=True)
    rs = [rb_tensor(s, requires_grad=True) for s in states]
    out, (h_n, c_n) = layer(rx, tuple(rs))
    wrt = [rx, *rs, *[p for _, p in layer.named_parameters()]]
    grads = rb.grad([out, h_n, c_n], wrt, [rb_tensor(u) for u in upstream])
    return [out.numpy(), h_n.numpy(), c_n.numpy()], [g.numpy() for g in grads]


@pytest.mark.parametrize("proj_size", [0, 3])
@pytest.mark.parametrize("batch_first", [False, True])
def test_peephole_lstm_onednn_matches_numpy_kernels(onednn, proj_size, batch_first):
    """Peepholes (with and without a projection), training and inference: the oneDNN kernels give
    the NumPy kernels' outputs and gradients (oneDNN's peephole formula is theirs: ``i``, ``f`` read
    ``c_{t-1}``, ``o`` reads ``c_t``), and inference sees a raw write into the peephole weights."""
    rng = np.random.default_rng(9)
    T, N, C, H = 6, 3, 4, 5
    layer = rb.nn.LSTM(C, H, num_layers=2, bidirectional=True, batch_first=batch_first, peephole=True,
                       proj_size=proj_size)
    for name, p in layer.named_parameters():
        if "peephole" in name:
            p.data[...] = rng.uniform(-0.5, 0.5, p.shape)
    S = proj_size or H
    x = rng.standard_normal((N, T, C) if batch_first else (T, N, C)).astype(np.float32)
    states = [rng.standard_normal((4, N, S)).astype(np.float32), rng.standard_normal((4, N, H)).astype(np.float32)]
    upstream = [rng.standard_normal(s).astype(np.float32) for s in [x.shape[:2] + (2 * S,), (4, N, S), (4, N, H)]]
    L.clear_cache()
    outs, grads = _peephole_run(layer, x, states, upstream)
    assert _ran("lstm", projection=bool(proj_size), peephole=True, stage="training")
    assert _ran("lstm", projection=bool(proj_size), peephole=True, stage="backward")
    rb.kernels.set_kernels("numpy")
    ref_outs, ref_grads = _peephole_run(layer, x, states, upstream)
    rb.kernels.set_kernels("onednn")
    for i, (a, b) in enumerate(zip(outs, ref_outs)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5, err_msg=f"output {i}")
    names = ["input", "h0", "c0", *[n for n, _ in layer.named_parameters()]]
    for name, a, b in zip(names, grads, ref_grads):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5, err_msg=f"gradient of {name}")

    def infer(kernels):
        rb.kernels.set_kernels(kernels)
        with rb.no_grad():
            out, (h_n, c_n) = layer(rb.tensor(x), tuple(rb.tensor(s) for s in states))
        rb.kernels.set_kernels("onednn")
        return [out.numpy(), h_n.numpy(), c_n.numpy()]

    for write in range(2):
        if write:
            layer.weight_peephole_l1_reverse.data[...] *= 2
        for a, b in zip(infer("onednn"), infer("numpy")):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5, err_msg=f"inference after {write} writes")
    assert _ran("lstm", projection=bool(proj_size), peephole=True, stage="inference")


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


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("proj_size, peephole", [(3, False), (0, True), (3, True)])
def test_onednn_lstm_projection_and_peephole_kernels_match_numpy_kernels(onednn, proj_size, peephole, reverse):
    """The kernel pair with ``w_hr`` and/or ``w_peep``: outputs and gradients (all, the weights' only,
    the projection's or peepholes' alone) as the NumPy kernels give them."""
    from rosenblatt.kernels.onednn import recurrent as onednn_kernels

    rng = np.random.default_rng(10)
    T, N, C, H = 7, 4, 5, 6
    S = proj_size or H
    f32 = np.float32
    args = [rng.standard_normal((T, N, C)).astype(f32), rng.standard_normal((N, S)).astype(f32),
            rng.standard_normal((N, H)).astype(f32), (rng.standard_normal((4 * H, C)) * 0.4).astype(f32),
            (rng.standard_normal((4 * H, S)) * 0.4).astype(f32), (rng.standard_normal(4 * H) * 0.4).astype(f32),
            (rng.standard_normal(4 * H) * 0.4).astype(f32),
            (rng.standard_normal((proj_size, H)) * 0.4).astype(f32) if proj_size else None,
            (rng.standard_normal((3, H)) * 0.4).astype(f32) if peephole else None]
    present = [a is not None for a in args]
    upstream = [rng.standard_normal(s).astype(f32) for s in [(T, N, S), (N, S), (N, H)]]
    all_needs = tuple(present)
    weights_only = tuple(p and i >= 3 for i, p in enumerate(present))
    extra_only = tuple(p and i >= 7 for i, p in enumerate(present))
    for needs in (all_needs, weights_only, extra_only):
        results = []
        for module in (onednn_kernels, numpy_kernels):
            output, h_n, c_n, saved = module.lstm_forward(*args, reverse=reverse)
            results.append(([output, h_n, c_n], module.lstm_backward(saved, *upstream, needs)))
        (outs, grads), (ref_outs, ref_grads) = results
        for i, (a, b) in enumerate(zip(outs, ref_outs)):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5, err_msg=f"output {i}")
        for i, (a, b, needed) in enumerate(zip(grads, ref_grads, needs)):
            assert (a is None) == (not needed), f"gradient {i} computed={a is not None}"
            if needed:
                assert a.shape == b.shape and a.dtype == np.float32 and a.flags.c_contiguous
                np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5, err_msg=f"gradient {i}")
        inference = onednn_kernels.lstm_forward(*args, reverse=reverse, training=False, weights_version=(0,))
        for i, (a, b) in enumerate(zip(inference[:3], ref_outs)):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5, err_msg=f"inference output {i}")


@pytest.fixture
def in_parts(onednn, monkeypatch):
    """Every batch of two or more sequences runs in three parts at once (the count of threads that
    :func:`rosenblatt.kernels.onednn.recurrent._parts` sees), whatever its size and this machine's
    cores; returns a function that tells whether a parts primitive of a cell ran."""
    from rosenblatt.kernels.onednn import recurrent as onednn_kernels

    monkeypatch.setattr(onednn_kernels, "MIN_PART", 1)
    monkeypatch.setattr(onednn_kernels, "_SMALL_STEP", 0)
    monkeypatch.setattr(L, "get_num_threads", lambda: 3)
    L.clear_cache()

    def ran_parts(cell: str, stage: str) -> bool:  # key: (..., rows, part, stage...)
        return any(isinstance(k, tuple) and k[:2] == ("rnn", cell) and k[10] is not None and k[11] == stage
                   for k, _ in L.cache_items())

    return ran_parts


@pytest.mark.parametrize("layouts", ["shared", "per part"])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("cell", list(CELLS) + ["lstm projection", "lstm peephole"])
def test_batch_in_parts_matches_numpy_kernels(in_parts, monkeypatch, cell, reverse, layouts):
    """A batch split into parts of 2, 2 and 3 sequences, each its own primitive on its own thread:
    outputs, every gradient (the weights' summed over the parts) and inference as the NumPy
    kernels give them. ``per part``: as if each part's primitive picked its own weight layouts
    (the weights prepared for each part)."""
    from rosenblatt.kernels.onednn import recurrent as onednn_kernels

    if layouts == "per part":
        monkeypatch.setattr(onednn_kernels._Weights, "fit", lambda self, primitive: False)

    rng = np.random.default_rng(11)
    base = cell.split()[0]
    T, N, H = 7, 7, 6
    args = _kernel_args(base, rng, T=T, N=N, H=H)
    if base == "lstm":
        P = 3 if cell.endswith("projection") else 0
        if P:
            args["h0"] = rng.standard_normal((N, P)).astype(np.float32)
            args["w_hh"] = (rng.standard_normal((4 * H, P)) * 0.4).astype(np.float32)
        args["w_hr"] = (rng.standard_normal((P, H)) * 0.4).astype(np.float32) if P else None
        args["w_peep"] = (rng.standard_normal((3, H)) * 0.4).astype(np.float32) if cell.endswith("peephole") else None
    S = args["h0"].shape[1]
    upstream = [rng.standard_normal(s).astype(np.float32) for s in [(T, N, S), (N, S), (N, H)]]
    needs = tuple(a is not None for a in args.values())
    results = []
    for module in (onednn_kernels, numpy_kernels):
        if base == "lstm":
            output, h_n, c_n, saved = module.lstm_forward(*args.values(), reverse=reverse)
            results.append(([output, h_n, c_n], module.lstm_backward(saved, *upstream, needs)))
            inference = module.lstm_forward(*args.values(), reverse=reverse, training=False)[:3]
        else:
            kw = {"nonlinearity": base[4:]} if base.startswith("rnn") else {}
            forward = module.rnn_forward if base.startswith("rnn") else module.gru_forward
            backward = module.rnn_backward if base.startswith("rnn") else module.gru_backward
            output, h_n, saved = forward(*args.values(), reverse=reverse, **kw)
            results.append(([output, h_n], backward(saved, *upstream[:2], needs)))
            inference = forward(*args.values(), reverse=reverse, training=False, **kw)[:2]
        results[-1] += (inference,)
    (outs, grads, inferred), (ref_outs, ref_grads, _) = results
    assert in_parts(base, "forward") and in_parts(base, "backward"), "the batch did not run in parts"
    for i, (a, b, c) in enumerate(zip(outs, ref_outs, inferred)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5, err_msg=f"{cell} output {i}")
        np.testing.assert_allclose(c, b, rtol=1e-5, atol=1e-5, err_msg=f"{cell} inference output {i}")
    for name, a, b in zip(args, grads, ref_grads):
        assert (a is None) == (b is None), f"{cell}: gradient of {name}"
        if a is not None:
            assert a.shape == b.shape and a.dtype == np.float32
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5, err_msg=f"{cell} gradient of {name}")


@requires_torch
@pytest.mark.parametrize("mode", ["lstm", "gru"])
def test_stacked_bidirectional_layer_in_parts_matches_torch(in_parts, mode):
    """A 2-layer bidirectional, batch-first layer whose every direction runs in parts: outputs, states
    and all gradients against PyTorch."""
    rng = np.random.default_rng(12)
    T, N, C, H = 6, 8, 5, 7
    layer, t_layer = _make_pair(mode, np.float32, input_size=C, hidden_size=H, num_layers=2, bidirectional=True,
                                batch_first=True)
    x = rng.standard_normal((N, T, C)).astype(np.float32)
    _compare(layer, t_layer, x, _initial_states(mode, 4, N, H, 0, np.float32, rng), np.float32)
    assert in_parts(mode, "backward")


def test_run_concurrently_runs_every_task_and_raises_the_first_error(onednn):
    """Each task runs once, on its own thread; an error is raised after all tasks are done."""
    import threading
    import time

    threads, done = [], []

    def task(i, fail=False):
        def run():
            threads.append(threading.get_ident())
            time.sleep(0.01 * (3 - i))
            done.append(i)
            if fail:
                raise ValueError(f"task {i} failed")
        return run

    L.run_concurrently([task(0), task(1), task(2)])
    assert sorted(done) == [0, 1, 2]
    assert len(set(threads)) == 3 and threading.get_ident() in threads
    done.clear()
    with pytest.raises(ValueError, match="task 1 failed"):
        L.run_concurrently([task(0), task(1, fail=True), task(2)])
    assert sorted(done) == [0, 1, 2]


def test_declined_calls_run_the_numpy_kernels(onednn):
    """Lengths and float64 are not covered: NumPy runs them (peepholes and a projection are covered)."""
    x = rb.randn(4, 2, 3, requires_grad=True)
    assert _kernel_of(rb.nn.LSTM(3, 5)(x)[0]) == "onednn"
    assert _kernel_of(rb.nn.LSTM(3, 5, peephole=True)(x)[0]) == "onednn"
    assert _kernel_of(rb.nn.LSTM(3, 5, proj_size=2)(x)[0]) == "onednn"
    assert _kernel_of(rb.nn.LSTM(3, 5, proj_size=2, peephole=True)(x)[0]) == "onednn"
    assert _kernel_of(rb.nn.LSTM(3, 5, proj_size=2)(x, lengths=[4, 2])[0]) == "numpy"
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
