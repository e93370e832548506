"""Optimisers: every update equals PyTorch's step by step, state saves and restores exactly, each
optimiser trains a real classifier, a step allocates no parameter-sized arrays, bad settings fail."""

from __future__ import annotations

import json
import tracemalloc

import numpy as np
import pytest

import rosenblatt as rb
from rosenblatt.nn import Parameter
from rosenblatt.optim import flatten_state_dict, unflatten_state_dict
from rosenblatt.serialization import load_arrays
from tests.parity import DEVICE, HAVE_TORCH, requires_torch

if HAVE_TORCH:
    import torch

# A 2-layer tanh MLP, small so that both frameworks run it in microseconds. The update block is
# shrunk to 32 float64 values for these tests (fixture below), so the first weight (384 values) is
# updated in 12 blocks, the second (72) in three with a partial last block, and the first bias (24)
# whole: both code paths of Optimizer._apply, compared against PyTorch.
IN, HIDDEN, OUT, BATCH = 16, 24, 3, 16


@pytest.fixture(scope="module", autouse=True)
def _torch_single_thread():
    """The oracle's tensors here are tiny: one thread avoids thread hand-offs that, on a busy
    machine, cost far more than the arithmetic. Restored for the modules that follow."""
    if not HAVE_TORCH:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def small_blocks(monkeypatch):
    import rosenblatt.kernels.optim as kernels_module

    monkeypatch.setattr(kernels_module, "BLOCK_BYTES", 256)


def make_problem(seed: int = 0):
    rng = np.random.default_rng(seed)
    weights = [rng.normal(0, 0.2, (IN, HIDDEN)), rng.normal(0, 0.1, HIDDEN),
               rng.normal(0, 0.2, (HIDDEN, OUT)), rng.normal(0, 0.1, OUT)]
    x = rng.normal(size=(BATCH, IN))
    y = rng.normal(size=(BATCH, OUT))
    return weights, x, y


def rb_params(weights):
    params = [Parameter(w.copy()) for w in weights]
    if DEVICE != "cpu":
        for p in params:
            p.data = p.to(DEVICE).data
    return params


def rb_loss(params, x, y):
    w1, b1, w2, b2 = params
    hidden = rb.tanh(rb.matmul(x, w1) + b1)
    out = rb.matmul(hidden, w2) + b2
    return ((out - y) ** 2).mean()


def torch_loss(params, x, y):
    w1, b1, w2, b2 = params
    out = torch.tanh(x @ w1 + b1) @ w2 + b2
    return ((out - y) ** 2).mean()


def rb_data(*arrays):
    return [rb.tensor(a, device=DEVICE if DEVICE != "cpu" else None) for a in arrays]


CONFIGS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, weight_decay=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.9)),  # the lecture's v = a v + (1 - a) g
    ("SGD", dict(lr=0.02, momentum=0.9, nesterov=True, weight_decay=1e-2)),
    ("SGD", dict(lr=0.005, momentum=0.5, dampening=0.3, weight_decay=1e-2, maximize=True)),
    ("Adam", dict()),
    ("Adam", dict(lr=1e-2, amsgrad=True)),
    ("Adam", dict(lr=1e-2, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    ("Adam", dict(lr=1e-2, amsgrad=True, weight_decay=1e-2, maximize=True)),
    ("AdamW", dict(lr=1e-2)),
    ("AdamW", dict(lr=1e-2, weight_decay=0.1, amsgrad=True)),
    ("Adagrad", dict(lr=0.1)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.05, weight_decay=1e-2, initial_accumulator_value=0.1, eps=1e-8)),
    ("Adagrad", dict(lr=0.05, maximize=True)),
    ("Adadelta", dict()),
    ("Adadelta", dict(lr=0.5, rho=0.8, eps=1e-5, weight_decay=1e-2)),
    ("Adadelta", dict(lr=0.5, maximize=True)),
    ("RMSprop", dict(lr=1e-2)),
    ("RMSprop", dict(lr=1e-2, momentum=0.9)),
    ("RMSprop", dict(lr=1e-2, centered=True)),
    ("RMSprop", dict(lr=1e-2, alpha=0.9, centered=True, momentum=0.5, weight_decay=1e-2, maximize=True)),
]


def config_id(config):
    name, kwargs = config
    return name + "-" + ",".join(f"{k}={v}" for k, v in kwargs.items())


def run_parity(name, build_rb, build_torch, steps=20):
    """Take ``steps`` steps in both frameworks; parameters must agree after every step."""
    weights, x, y = make_problem()
    params = rb_params(weights)
    rx, ry = rb_data(x, y)
    tparams = [torch.tensor(w, requires_grad=True) for w in weights]
    tx, ty = torch.tensor(x), torch.tensor(y)
    opt, topt = build_rb(params), build_torch(tparams)
    for step in range(steps):
        opt.zero_grad()
        topt.zero_grad()
        loss = rb_loss(params, rx, ry)
        loss.backward()
        tloss = torch_loss(tparams, tx, ty)
        tloss.backward()
        np.testing.assert_allclose(float(loss.item()), tloss.item(), rtol=1e-6, err_msg=f"{name} loss, step {step}")
        opt.step()
        topt.step()
        for i, (p, tp) in enumerate(zip(params, tparams)):
            np.testing.assert_allclose(p.numpy(), tp.detach().numpy(), rtol=1e-6, atol=1e-12,
                                       err_msg=f"{name}: parameter {i} after step {step + 1}")
    return opt, topt


@requires_torch
@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
def test_matches_pytorch_every_step(config, small_blocks):
    name, kwargs = config
    run_parity(name, lambda ps: getattr(rb.optim, name)(ps, **kwargs),
               lambda ps: getattr(torch.optim, name)(ps, **kwargs))


@requires_torch
@pytest.mark.parametrize("name, kwargs", [
    ("SGD", dict(lr=0.1, momentum=0.9)), ("Adam", dict(lr=1e-2)), ("AdamW", dict(lr=1e-2, weight_decay=0.1)),
    ("Adagrad", dict(lr=0.1)), ("Adadelta", dict(lr=1.0)), ("RMSprop", dict(lr=1e-2, momentum=0.5)),
])
def test_param_groups_with_their_own_hyperparameters(name, kwargs, small_blocks):
    def groups(ps):
        return [{"params": ps[:2]}, {"params": ps[2:], "lr": kwargs["lr"] * 0.3, "weight_decay": 0.05}]

    opt, topt = run_parity(name, lambda ps: getattr(rb.optim, name)(groups(ps), **kwargs),
                           lambda ps: getattr(torch.optim, name)(groups(ps), **kwargs), steps=10)
    assert opt.param_groups[1]["lr"] == pytest.approx(kwargs["lr"] * 0.3)
    assert opt.param_groups[0]["weight_decay"] == topt.param_groups[0]["weight_decay"]


@requires_torch
def test_state_names_and_values_match_pytorch():
    weights, x, y = make_problem()
    opt, topt = run_parity("Adam", lambda ps: rb.optim.Adam(ps, lr=1e-2, amsgrad=True),
                           lambda ps: torch.optim.Adam(ps, lr=1e-2, amsgrad=True), steps=3)
    sd, tsd = opt.state_dict(), topt.state_dict()
    assert sd["param_groups"][0]["params"] == tsd["param_groups"][0]["params"] == [0, 1, 2, 3]
    for i in range(4):
        assert set(sd["state"][i]) == set(tsd["state"][i])
        assert sd["state"][i]["step"] == int(tsd["state"][i]["step"])
        for key in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
            np.testing.assert_allclose(rb.tensor(sd["state"][i][key]).numpy(), tsd["state"][i][key].numpy(),
                                       rtol=1e-6, atol=1e-15)
    for key in ("lr", "betas", "eps", "weight_decay", "amsgrad", "maximize"):
        assert sd["param_groups"][0][key] == tsd["param_groups"][0][key]


RESTORE_CONFIGS = [
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)),
    ("Adam", dict(lr=1e-2, amsgrad=True)),
    ("AdamW", dict(lr=1e-2)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01)),
    ("Adadelta", dict()),
    ("RMSprop", dict(lr=1e-2, momentum=0.5, centered=True)),
]


@pytest.mark.parametrize("name, kwargs", RESTORE_CONFIGS, ids=[c[0] for c in RESTORE_CONFIGS])
def test_save_and_restore_continues_exactly(name, kwargs, tmp_path, small_blocks):
    """10 steps, save to safetensors + JSON, restore into a fresh optimiser: the next 10 steps are
    bit-identical to an uninterrupted run."""
    weights, x, y = make_problem()
    rx, ry = rb_data(x, y)
    cls = getattr(rb.optim, name)

    def train(params, opt, steps):
        for _ in range(steps):
            opt.zero_grad()
            rb_loss(params, rx, ry).backward()
            opt.step()

    params = rb_params(weights)
    opt = cls(params, **kwargs)
    train(params, opt, 10)
    arrays, metadata = flatten_state_dict(opt.state_dict())
    path = tmp_path / "optimizer.safetensors"
    rb.save(arrays, path, metadata={"optimizer": json.dumps(metadata)})
    saved_params = [p.numpy().copy() for p in params]

    train(params, opt, 10)  # the uninterrupted run

    loaded = load_arrays(path)
    restored_params = rb_params(saved_params)
    restored = cls(restored_params, lr=123.0)  # the saved hyper-parameters replace these
    restored.load_state_dict(unflatten_state_dict(loaded[0], json.loads(loaded[1]["optimizer"])))
    assert restored.param_groups[0]["lr"] == opt.param_groups[0]["lr"]
    train(restored_params, restored, 10)
    for p, q in zip(params, restored_params):
        np.testing.assert_array_equal(p.numpy(), q.numpy())


def test_load_state_dict_rejects_mismatched_parameters():
    weights, _, _ = make_problem()
    opt = rb.optim.Adam(rb_params(weights))
    for p in opt.params():
        p.grad = rb.ones_like(p)
    opt.step()
    sd = opt.state_dict()
    with pytest.raises(ValueError, match="parameter groups"):
        rb.optim.Adam([{"params": rb_params(weights)[:2]}, {"params": rb_params(weights)[2:]}]).load_state_dict(sd)
    with pytest.raises(ValueError, match="has 2 parameters"):
        rb.optim.Adam(rb_params(weights)[:2]).load_state_dict(sd)
    swapped = rb_params(weights)
    swapped[0], swapped[2] = Parameter(np.zeros((2, 2))), Parameter(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="shape"):
        rb.optim.Adam(swapped).load_state_dict(sd)


def test_state_is_stored_by_index_and_reachable_by_parameter():
    weights, x, y = make_problem()
    params = rb_params(weights)
    rx, ry = rb_data(x, y)
    opt = rb.optim.SGD(params, lr=0.1, momentum=0.9)
    assert len(opt.state) == 0  # lazily created
    params[3].requires_grad_(False)  # a frozen parameter has no gradient: no state, no update
    before = params[3].numpy().copy()
    rb_loss(params, rx, ry).backward()
    opt.step()
    assert sorted(opt.state) == [0, 1, 2]
    assert opt.state[params[1]] is opt.state[1]
    assert params[3] not in opt.state
    np.testing.assert_array_equal(params[3].numpy(), before)


def test_closure_reevaluates_under_enable_grad():
    weights, x, y = make_problem()
    params = rb_params(weights)
    rx, ry = rb_data(x, y)
    opt = rb.optim.SGD(params, lr=0.1)
    calls = []

    def closure():
        opt.zero_grad()
        loss = rb_loss(params, rx, ry)
        loss.backward()
        calls.append(loss.item())
        return loss

    with rb.no_grad():  # the closure must still record its graph
        first = opt.step(closure)
        second = opt.step(closure)
    assert len(calls) == 2 and first.item() == calls[0]
    assert second.item() < first.item()


def test_zero_grad():
    weights, x, y = make_problem()
    params = rb_params(weights)
    rx, ry = rb_data(x, y)
    opt = rb.optim.SGD(params, lr=0.1)
    rb_loss(params, rx, ry).backward()
    opt.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad.numpy().any() for p in params)
    opt.zero_grad()
    assert all(p.grad is None for p in params)


def test_add_param_group_trains_the_new_parameters():
    a, b = Parameter(np.array([1.0, 2.0])), Parameter(np.array([3.0]))
    opt = rb.optim.SGD([a], lr=0.1)
    opt.add_param_group({"params": b, "lr": 0.5})
    assert opt.param_groups[1]["lr"] == 0.5 and opt.param_groups[1]["momentum"] == 0.0
    a.grad, b.grad = rb.tensor([1.0, 1.0]), rb.tensor([1.0])
    opt.step()
    np.testing.assert_allclose(a.numpy(), [0.9, 1.9])
    np.testing.assert_allclose(b.numpy(), [2.5])
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [a]})


def test_strided_gradients_take_the_whole_array_path_with_the_same_result():
    """A non-contiguous gradient cannot be blocked; the update must be the same anyway."""
    rng = np.random.default_rng(1)
    w = rng.normal(size=(200, 150))
    g = rng.normal(size=(200, 150))
    results = []
    for grad in (np.ascontiguousarray(g), np.asfortranarray(g)):
        p = Parameter(w.copy())
        opt = rb.optim.Adam([p], lr=1e-2, amsgrad=True, weight_decay=0.1)
        for _ in range(3):
            p.grad = rb.Tensor(grad)
            opt.step()
        results.append(p.numpy())
    assert not np.asfortranarray(g).flags.c_contiguous
    np.testing.assert_array_equal(results[0], results[1])


def test_a_step_invalidates_graphs_that_saved_the_parameter():
    w = Parameter(np.ones(3))
    loss = (w * w).sum()
    w.grad = rb.ones_like(w)
    rb.optim.SGD([w], lr=0.1).step()
    with pytest.raises(RuntimeError, match="modified in place"):
        loss.backward()


# -- learning ---------------------------------------------------------------------------------------
LEARNERS = [
    ("SGD", dict(lr=0.2, momentum=0.9), 100),
    ("SGD", dict(lr=0.3, momentum=0.9, dampening=0.9), 100),  # the lecture's moving-average momentum
    ("Adam", dict(lr=1e-2), 100),
    ("AdamW", dict(lr=1e-2, weight_decay=1e-2), 100),
    ("Adagrad", dict(lr=0.1), 100),
    ("Adadelta", dict(lr=5.0), 100),
    ("RMSprop", dict(lr=3e-3, momentum=0.5, centered=True), 100),
]


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order], y[order]
    return x[:1300], y[:1300], x[1300:], y[1300:]


@pytest.mark.parametrize("name, kwargs, steps", LEARNERS, ids=[config_id(c[:2]) for c in LEARNERS])
def test_trains_a_digits_classifier(name, kwargs, steps, digits):
    """Full-batch training of a 64-64-10 tanh MLP: held-out accuracy >= 0.94 (chance is 0.1)."""
    x_train, y_train, x_test, y_test = digits
    rng = np.random.default_rng(0)
    params = rb_params([rng.normal(0, 64 ** -0.5, (64, 64)).astype(np.float32), np.zeros(64, np.float32),
                        rng.normal(0, 64 ** -0.5, (64, 10)).astype(np.float32), np.zeros(10, np.float32)])
    opt = getattr(rb.optim, name)(params, **kwargs)
    x, targets = rb_data(x_train, np.eye(10, dtype=np.float32)[y_train])

    def logits(inputs):
        w1, b1, w2, b2 = params
        return rb.matmul(rb.tanh(rb.matmul(inputs, w1) + b1), w2) + b2

    for _ in range(steps):
        opt.zero_grad()
        loss = -(rb.log_softmax(logits(x), axis=1) * targets).sum(axis=1).mean()
        loss.backward()
        opt.step()
    with rb.no_grad():
        predicted = logits(rb_data(x_test)[0]).numpy().argmax(axis=1)
    accuracy = (predicted == y_test).mean()
    assert accuracy >= 0.94, f"{name} {kwargs}: test accuracy {accuracy:.3f}"


def _assert_steps_allocate_nothing_parameter_sized(name, kwargs, param):
    """After two steps (state and scratch made), four more steps of optimiser ``name`` allocate
    nothing of ``param``'s size."""
    opt = getattr(rb.optim, name)([param], **kwargs)
    for _ in range(2):  # SGD's first momentum step writes its gradient into the buffer, not the scratch
        opt.step()
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        for _ in range(4):
            opt.step()
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak - start < param.data.nbytes / 10, f"{name}: a step allocated {peak - start} bytes"
    assert current - start < 10_000


# -- memory -------------------------------------------------------------------------------------------
@pytest.mark.skipif(DEVICE != "cpu", reason="tracemalloc sees host allocations only")
@pytest.mark.parametrize("name, kwargs", [
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.1)),
    ("Adam", dict(amsgrad=True, weight_decay=0.1, maximize=True)),
    ("AdamW", dict()),
    ("Adagrad", dict(weight_decay=0.1)),
    ("Adadelta", dict(weight_decay=0.1)),
    ("RMSprop", dict(momentum=0.9, centered=True, weight_decay=0.1)),
])
@pytest.mark.parametrize("shape", [(500, 400), (400, 500)], ids=["contiguous", "strided"])
def test_steps_allocate_no_parameter_sized_arrays(name, kwargs, shape):
    """After the first step (state and scratch), further steps allocate nothing parameter-sized,
    neither in blocks (contiguous arrays) nor whole (a transposed, strided parameter)."""
    rng = np.random.default_rng(0)
    data = rng.normal(size=shape)
    param = Parameter(data.T if shape == (400, 500) else data)
    param.grad = rb.Tensor(rng.normal(size=param.shape))
    _assert_steps_allocate_nothing_parameter_sized(name, kwargs, param)


# -- validation ---------------------------------------------------------------------------------------
def one_param():
    return [Parameter(np.zeros(3))]


@pytest.mark.parametrize("build, message", [
    (lambda: rb.optim.SGD(one_param(), lr=-0.1), "learning rate"),
    (lambda: rb.optim.SGD(one_param(), lr=0.1, momentum=-0.5), "momentum"),
    (lambda: rb.optim.SGD(one_param(), lr=0.1, nesterov=True), "Nesterov"),
    (lambda: rb.optim.SGD(one_param(), lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), "Nesterov"),
    (lambda: rb.optim.SGD(one_param(), lr=0.1, weight_decay=-1), "weight_decay"),
    (lambda: rb.optim.Adam(one_param(), betas=(1.0, 0.999)), "beta parameter at index 0"),
    (lambda: rb.optim.Adam(one_param(), betas=(0.9, -0.1)), "beta parameter at index 1"),
    (lambda: rb.optim.AdamW(one_param(), eps=-1e-8), "epsilon"),
    (lambda: rb.optim.Adagrad(one_param(), lr_decay=-1), "lr_decay"),
    (lambda: rb.optim.Adagrad(one_param(), initial_accumulator_value=-1), "initial_accumulator_value"),
    (lambda: rb.optim.Adadelta(one_param(), rho=1.5), "rho"),
    (lambda: rb.optim.RMSprop(one_param(), alpha=-0.1), "alpha"),
    (lambda: rb.optim.RMSprop(one_param(), momentum=-0.1), "momentum"),
    (lambda: rb.optim.SGD([{"params": one_param(), "lr": -1.0}], lr=0.1), "learning rate"),
    (lambda: rb.optim.SGD([], lr=0.1), "empty parameter list"),
])
def test_invalid_hyperparameters_raise_value_error(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_invalid_parameters_raise():
    p = Parameter(np.zeros(3))
    with pytest.raises(ValueError, match="twice"):
        rb.optim.SGD([p, p], lr=0.1)
    with pytest.raises(ValueError, match="more than one parameter group"):
        rb.optim.SGD([{"params": [p]}, {"params": [p]}], lr=0.1)
    with pytest.raises(TypeError, match="floating-point"):
        rb.optim.SGD([rb.tensor(np.arange(3))], lr=0.1)
    with pytest.raises(TypeError, match="can only optimise tensors"):
        rb.optim.SGD([np.zeros(3)], lr=0.1)
    with pytest.raises(ValueError, match="leaf"):
        rb.optim.SGD([p * 2], lr=0.1)
    with pytest.raises(TypeError, match="single"):
        rb.optim.SGD(p, lr=0.1)
    with pytest.raises(TypeError, match="set"):
        rb.optim.SGD({p}, lr=0.1)
    p.grad = rb.zeros(4, dtype=np.float64)
    with pytest.raises(ValueError, match="gradient has shape"):
        rb.optim.SGD([p], lr=0.1).step()


# -- threads ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
def test_threaded_steps_equal_single_threaded_steps_bit_for_bit(config, monkeypatch):
    """The blocks of a step shared out between threads (cut mid-block at the shares' ends) give
    exactly the parameters and state of one thread, strided (whole-array) gradients included."""
    import threading

    import rosenblatt.kernels.optim as kernels_module

    name, kwargs = config
    rng = np.random.default_rng(3)
    weights = [rng.normal(size=(37, 29)), rng.normal(size=50), rng.normal(size=(13, 11)), rng.normal(size=7)]
    grads = [[rng.normal(size=w.shape) for w in weights] for _ in range(3)]
    monkeypatch.setattr(kernels_module, "BLOCK_BYTES", 8 * 256)
    monkeypatch.setattr(kernels_module, "PARALLEL_MIN_ELEMENTS", 0)
    monkeypatch.setattr(kernels_module, "sgd_one_pass", lambda *args: False)  # the blocked kernels here
    run_units = kernels_module.UpdateRunner.run_units
    shares_run: set[tuple[int, bool]] = set()  # (thread slot, on the calling thread)

    def recording_run_units(self, units, slot):
        if units:
            shares_run.add((slot, threading.current_thread() is threading.main_thread()))
        return run_units(self, units, slot)

    monkeypatch.setattr(kernels_module.UpdateRunner, "run_units", recording_run_units)
    results = {}
    for threads in (1, 2, 3):
        monkeypatch.setattr(kernels_module, "update_threads", lambda threads=threads: threads)
        shares_run.clear()
        params = [Parameter(w.copy()) for w in weights]
        opt = getattr(rb.optim, name)(params, **kwargs)
        for step_grads in grads:
            for i, (p, g) in enumerate(zip(params, step_grads)):
                # The third parameter's gradient is transposed data: processed whole, not in blocks.
                p.grad = rb.Tensor(np.ascontiguousarray(g.T).T if i == 2 else g.copy())
            opt.step()
        assert shares_run == {(slot, slot == 0) for slot in range(threads)}, f"{threads} threads: {shares_run}"
        state = {(i, k): np.asarray(v).copy() for i, s in opt.state.by_index.items() for k, v in s.items()}
        results[threads] = ([p.numpy().copy() for p in params], state)
    for threads in (2, 3):
        for i, (a, b) in enumerate(zip(results[1][0], results[threads][0])):
            np.testing.assert_array_equal(a, b, err_msg=f"{name}: parameter {i} with {threads} threads")
        assert results[1][1].keys() == results[threads][1].keys()
        for key, value in results[1][1].items():
            np.testing.assert_array_equal(value, results[threads][1][key], err_msg=f"{name}: state {key}")


def test_small_steps_stay_on_the_calling_thread():
    """A step over fewer than PARALLEL_MIN_ELEMENTS values hands nothing to the worker threads."""
    import threading

    import rosenblatt.kernels.optim as kernels_module

    params = [Parameter(np.ones((300, 300)))]
    params[0].grad = rb.Tensor(np.ones((300, 300)))
    opt = rb.optim.Adam(params)
    seen = []
    run_units = opt._runner.run_units
    opt._runner.run_units = lambda units, slot: (seen.append(threading.get_ident()), run_units(units, slot))
    opt.step()
    assert 300 * 300 < kernels_module.PARALLEL_MIN_ELEMENTS
    assert seen == [threading.get_ident()]


def test_a_bad_gradient_fails_the_step_before_anything_changes():
    a, b = Parameter(np.ones(3)), Parameter(np.ones(2))
    a.grad, b.grad = rb.Tensor(np.ones(3)), rb.Tensor(np.ones(5))
    opt = rb.optim.Adam([a, b], lr=0.1)
    with pytest.raises(ValueError, match="parameter 1 has shape"):
        opt.step()
    np.testing.assert_array_equal(a.numpy(), np.ones(3))
    assert len(opt.state) == 0
    b.grad = rb.Tensor(np.ones(2))
    opt.step()
    assert opt.state[a]["step"] == 1 and not np.array_equal(a.numpy(), np.ones(3))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kwargs", [dict(lr=0.1), dict(lr=0.1, weight_decay=0.01, maximize=True),
                                    dict(lr=0.1, momentum=0.9), dict(lr=0.1, momentum=0.9, dampening=0.5)],
                         ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()))
@pytest.mark.parametrize("scal_axpy", [False, True, "chunks"], ids=["axpby", "scal+axpy", "chunks"])
def test_sgd_one_pass_matches_the_blocked_kernel(dtype, kwargs, scal_axpy, monkeypatch):
    """Plain and momentum SGD run in one BLAS pass per array (nothing reaches the block runner)
    and agree with the ufunc kernels to rounding (the momentum buffer by ``axpby``, or by ``scal``
    and ``axpy`` as big arrays do, or chunk by chunk with a last partial chunk)."""
    import rosenblatt.kernels.optim as kernels_module

    if kernels_module._blas_for(np.dtype(dtype)) is None:
        pytest.skip("NumPy's BLAS is not OpenBLAS: SGD runs the ufunc kernels")
    rng = np.random.default_rng(0)
    weight = rng.normal(size=(64, 33)).astype(dtype)
    grads = [rng.normal(size=weight.shape).astype(dtype) for _ in range(3)]

    def run(one_pass: bool):
        if scal_axpy == "chunks":
            monkeypatch.setattr(kernels_module, "CHUNK", 500)  # 2112 elements: 4 chunks and 112 more
        elif scal_axpy:
            monkeypatch.setattr(kernels_module, "SCAL_AXPY_MIN", 0)
        if not one_pass:
            monkeypatch.setattr(kernels_module, "sgd_one_pass", lambda *args: False)
        p = Parameter(weight.copy())
        opt = rb.optim.SGD([p], **kwargs)
        queued = []
        run_queued = opt._runner.run
        opt._runner.run = lambda work: (queued.extend(work), run_queued(work))
        for g in grads:
            p.grad = rb.Tensor(g.copy())
            opt.step()
        monkeypatch.undo()
        return p.numpy(), queued

    fused, queued = run(True)
    assert queued == []
    blocked, queued = run(False)
    assert queued
    tolerance = 1e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(fused, blocked, rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("kwargs", [dict(lr=0.1), dict(lr=0.1, weight_decay=0.01, maximize=True),
                                    dict(lr=0.1, momentum=0.9), dict(lr=0.1, momentum=0.9, dampening=0.5),
                                    dict(lr=0.1, momentum=0.9, maximize=True)],
                         ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()))
def test_sgd_on_large_parameters_runs_on_onednn(onednn, kwargs, monkeypatch):
    """With the oneDNN kernels a large float32 parameter's SGD update is oneDNN's scaled sum (no
    OpenBLAS threads), with the ufunc kernels' values over three steps (the first momentum step
    included)."""
    import rosenblatt.kernels.optim as kernels_module
    from rosenblatt.kernels.onednn import eltwise

    rng = np.random.default_rng(1)
    weight = rng.normal(size=(400, 400)).astype(np.float32)  # 160,000 elements: over CHUNKED_MAX
    grads = [rng.normal(size=weight.shape).astype(np.float32) for _ in range(3)]
    calls = []
    real = eltwise.axpby
    monkeypatch.setattr(eltwise, "axpby", lambda *a: calls.append(a[0].shape) or real(*a))

    def run(one_pass: bool):
        if not one_pass:
            monkeypatch.setattr(kernels_module, "sgd_one_pass", lambda *args: False)
        p = Parameter(weight.copy())
        opt = rb.optim.SGD([p], **kwargs)
        for g in grads:
            p.grad = rb.Tensor(g.copy())
            opt.step()
        if not one_pass:
            monkeypatch.setattr(kernels_module, "sgd_one_pass", real_one_pass)
        return p.numpy()

    real_one_pass = kernels_module.sgd_one_pass
    fused = run(True)
    assert len(calls) == (3 if "momentum" not in kwargs else 5)  # momentum: buffer and parameter, after the first step
    blocked = run(False)
    np.testing.assert_allclose(fused, blocked, rtol=1e-5, atol=1e-6)
    assert not np.allclose(fused, weight)


# -- Adagrad and RMSprop on oneDNN ----------------------------------------------------------------------
# Large eps values, so that a wrong eps shows in the parameters.
ADAPTIVE_CONFIGS = [
    ("Adagrad", dict(lr=0.1)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.05, weight_decay=1e-2, initial_accumulator_value=0.1, eps=0.3)),
    ("Adagrad", dict(lr=0.05, eps=0.5, maximize=True)),
    ("Adagrad", dict(lr=0.05, weight_decay=0.1, maximize=True)),
    ("RMSprop", dict(lr=1e-2)),
    ("RMSprop", dict(lr=1e-2, alpha=0.9, eps=0.3, maximize=True)),
    ("RMSprop", dict(lr=1e-2, weight_decay=0.1)),
    ("RMSprop", dict(lr=1e-2, momentum=0.9)),
    ("RMSprop", dict(lr=1e-2, momentum=0.9, maximize=True)),
    ("RMSprop", dict(lr=1e-2, momentum=0.9, eps=0.2, weight_decay=1e-2, maximize=True)),
    ("RMSprop", dict(lr=1e-2, centered=True, eps=0.2)),
    ("RMSprop", dict(lr=1e-2, centered=True, momentum=0.9, maximize=True)),
    ("RMSprop", dict(lr=1e-2, alpha=0.8, centered=True, weight_decay=0.1, maximize=True)),
    ("RMSprop", dict(lr=1e-2, alpha=0.9, centered=True, momentum=0.5, weight_decay=1e-2, maximize=True, eps=0.1)),
]
ADAPTIVE_STATE = {"Adagrad": ("sum",), "RMSprop": ("square_avg", "grad_avg", "momentum_buffer"),
                  "SGD": ("momentum_buffer",), "Adam": ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"),
                  "AdamW": ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"), "Adadelta": ("square_avg", "acc_delta")}


def run_adaptive(name, kwargs, steps=4, shape=(400, 400)):
    """``steps`` steps of rosenblatt's and PyTorch's optimiser on one float32 parameter of ``shape``,
    the learning rate changed between steps as a schedule would (the momentum and Adam's beta1 from
    the third step on, the weight decay from the fourth): the starting weight, ``(parameter, state)`` after each step in each framework, and the
    updates that reached the block runner."""
    rng = np.random.default_rng(5)
    weight = rng.normal(size=shape).astype(np.float32)
    grads = [rng.normal(size=shape).astype(np.float32) for _ in range(steps)]
    p = Parameter(weight.copy())
    tp = torch.tensor(weight.copy(), requires_grad=True)
    opt, topt = getattr(rb.optim, name)([p], **kwargs), getattr(torch.optim, name)([tp], **kwargs)
    queued = []
    run_queued = opt._runner.run
    opt._runner.run = lambda work: (queued.extend(work), run_queued(work))
    history, torch_history = [], []
    for step, g in enumerate(grads):
        if step:
            for group in (*opt.param_groups, *topt.param_groups):
                group["lr"] *= 0.7
                if group.get("momentum") and step >= 2:
                    group["momentum"] = 1.0 - 0.1 * step
                if "betas" in group and step >= 2:  # Adam's beta1, as OneCycleLR cycles it
                    group["betas"] = (group["betas"][0] - 0.05 * step, group["betas"][1])
                if group.get("weight_decay") and step >= 3:
                    group["weight_decay"] *= 1.5
        p.grad = rb.Tensor(g.copy())
        tp.grad = torch.tensor(g.copy())
        opt.step()
        topt.step()
        state, tstate = opt.state[p], topt.state[tp]
        mine = {k: np.asarray(state[k]).copy() for k in ADAPTIVE_STATE[name] if k in state}
        theirs = {k: tstate[k].numpy().copy() for k in ADAPTIVE_STATE[name] if k in tstate}
        assert mine.keys() == theirs.keys()
        history.append((p.numpy().copy(), mine))
        torch_history.append((tp.detach().numpy().copy(), theirs))
    return weight, history, torch_history, queued


def assert_same_history(history, other, ulps, what, grad_avg_ulps=None):
    """Parameters and state equal step by step to ``ulps`` units in the last place of each array's
    largest value (an element that cancels to near zero keeps the rounding error of its terms), or
    ``grad_avg_ulps`` for RMSprop's gradient average and Adam's first moment."""
    for step, ((param, state), (other_param, other_state)) in enumerate(zip(history, other)):
        for key, value, expected in [("parameter", param, other_param),
                                     *((key, value, other_state[key]) for key, value in state.items())]:
            tolerance = grad_avg_ulps if key in ("grad_avg", "exp_avg") and grad_avg_ulps else ulps
            atol = tolerance * np.spacing(np.abs(expected).max())
            np.testing.assert_allclose(value, expected, rtol=1e-6, atol=atol, err_msg=f"{what}: {key}, step {step}")


@requires_torch
@pytest.mark.parametrize("config", ADAPTIVE_CONFIGS, ids=config_id)
def test_adaptive_optimisers_on_large_parameters_run_on_onednn(config, onednn, monkeypatch):
    """With the oneDNN kernels, Adagrad's and RMSprop's updates of a large float32 parameter (over
    2^17 elements) run as oneDNN primitives (nothing reaches the block runner) and equal PyTorch's
    and the ufunc kernels' to a few ulp after every step, parameter and state, while the learning
    rate and the momentum change from step to step."""
    import rosenblatt.kernels.optim as kernels_module
    from rosenblatt.kernels.onednn import library

    name, kwargs = config
    # RMSprop's first momentum (two steps) runs as its normalised step's fixed scale, the later
    # ones as a separate scaling of the buffer.
    library.clear_cache()
    weight, history, torch_history, queued = run_adaptive(name, kwargs)
    assert queued == []
    assert np.abs(history[-1][0] - weight).mean() > 1e-2  # the parameter moved
    assert_same_history(history, torch_history, 4, f"{name} against PyTorch")  # 2 ulp measured
    for dispatch in ("adagrad_onednn", "rmsprop_onednn"):
        monkeypatch.setattr(kernels_module, dispatch, lambda *args: False)
    _, blocked, _, queued = run_adaptive(name, kwargs)
    assert queued
    # The ufunc kernel's gradient average, alpha * (m - d) + d, cancels: 64 ulp from PyTorch's and
    # these with alpha = 0.99.
    assert_same_history(history, blocked, 4, f"{name} against the ufunc kernels", grad_avg_ulps=128)


@requires_torch
def test_adaptive_schedules_build_no_primitives(onednn, monkeypatch):
    """Learning rates, momentum and weight decay reach the primitives at run time: once the first
    steps have built them, steps with other values build none (one cache entry per size, alpha and
    eps)."""
    from rosenblatt.kernels.onednn import library
    from rosenblatt.kernels.onednn import optim as onednn_optim

    built = []
    build = onednn_optim._binary
    monkeypatch.setattr(onednn_optim, "_binary", lambda *args, **kwargs: built.append(args[0]) or build(*args, **kwargs))
    library.clear_cache()
    for name, kwargs in [("Adagrad", dict(lr=0.1, weight_decay=0.1)),
                         ("RMSprop", dict(lr=1e-2, momentum=0.9, centered=True, weight_decay=0.1))]:
        run_adaptive(name, kwargs, steps=2)
        assert built
        count = len(built)
        run_adaptive(name, kwargs, steps=5)  # new learning rates and momenta
        assert len(built) == count, built[count:]
    assert len([key for key, _ in library.cache_items() if key[0] == "optimiser update"]) == 2


def _declined_case(case, monkeypatch, read_only):
    """``(param, grad, state)`` for a case the oneDNN optimiser updates decline: float64, small (under
    2^17 elements), a strided gradient, the first ``read_only`` state arrays read-only, or the NumPy
    kernel set."""
    rng = np.random.default_rng(0)
    shape = (300, 300) if case == "small" else (400, 400)
    dtype = np.float64 if case == "float64" else np.float32
    param = rng.normal(size=shape).astype(dtype)
    grad = rng.normal(size=shape).astype(dtype)
    if case == "strided":
        grad = np.asfortranarray(grad)
    state = [np.ones(shape, dtype) for _ in range(3)]
    if case == "read-only state":
        for array in state[:read_only]:
            array.flags.writeable = False
    if case == "numpy kernels":
        monkeypatch.setattr(rb.kernels, "use_onednn", lambda *arrays: False)
    return param, grad, state


@pytest.mark.parametrize("case", ["float64", "small", "strided", "read-only state", "numpy kernels"])
def test_adaptive_onednn_declines_what_it_does_not_cover(case, onednn, monkeypatch):
    """float64, small (under 2^17 elements) or strided arrays, read-only state and the NumPy kernel
    set take the ufunc kernels: the oneDNN entry points decline, touching nothing."""
    import rosenblatt.kernels.optim as kernels_module

    param, grad, state = _declined_case(case, monkeypatch, read_only=1)
    before = [param.copy(), *(s.copy() for s in state)]
    runner = kernels_module.UpdateRunner()
    assert not kernels_module.adagrad_onednn(param, grad, state[0], runner, 0.1, 1e-10, 0.1, False)
    assert not kernels_module.rmsprop_onednn(param, grad, *state, runner, 0.1, 0.99, 1e-8, 0.1, 0.9, True)
    for a, b in zip([param, *state], before):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name, kwargs", [("Adagrad", dict(weight_decay=0.1)),
                                          ("RMSprop", dict(momentum=0.9, centered=True, weight_decay=0.1)),
                                          ("SGD", dict(momentum=0.9, nesterov=True, weight_decay=0.1)),
                                          ("Adam", dict(amsgrad=True, weight_decay=0.1)),
                                          ("AdamW", dict(lr=0.1)),
                                          ("Adadelta", dict(weight_decay=0.1))])
def test_adaptive_onednn_steps_allocate_no_parameter_sized_arrays(name, kwargs, onednn):
    """The weight-decayed gradient and the other intermediate arrays of the oneDNN updates are kept in
    the optimiser's scratch memory: after the first steps, steps allocate nothing parameter-sized."""
    rng = np.random.default_rng(0)
    param = Parameter(rng.normal(size=(400, 400)).astype(np.float32))
    param.grad = rb.Tensor(rng.normal(size=param.shape).astype(np.float32))
    _assert_steps_allocate_nothing_parameter_sized(name, kwargs, param)


# -- SGD with Nesterov momentum or weight decay, Adam, AdamW and Adadelta on oneDNN ----------------------
# Large eps values, so that a wrong eps shows in the parameters.
ONEDNN_CONFIGS = [
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True, maximize=True)),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.1, maximize=True)),
    ("SGD", dict(lr=0.1, momentum=0.9, weight_decay=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.5, dampening=0.3, weight_decay=0.1, maximize=True)),
    ("Adam", dict(lr=1e-2)),
    ("Adam", dict(lr=1e-2, betas=(0.8, 0.99), eps=0.1)),
    ("Adam", dict(lr=1e-2, eps=0.1, maximize=True)),
    ("Adam", dict(lr=1e-2, eps=0.1, weight_decay=0.1)),
    ("Adam", dict(lr=1e-2, eps=0.1, weight_decay=0.1, maximize=True)),
    ("Adam", dict(lr=1e-2, eps=0.1, amsgrad=True)),
    ("Adam", dict(lr=1e-2, amsgrad=True, weight_decay=0.1, maximize=True)),
    ("AdamW", dict(lr=1e-2, weight_decay=0.1)),
    ("AdamW", dict(lr=1e-2, betas=(0.8, 0.99), eps=0.1, weight_decay=0.1, amsgrad=True, maximize=True)),
    ("Adadelta", dict()),
    ("Adadelta", dict(lr=0.5, rho=0.8, eps=0.1)),
    ("Adadelta", dict(lr=0.5, eps=0.1, maximize=True)),
    ("Adadelta", dict(lr=0.5, rho=0.8, eps=1e-3, weight_decay=0.1)),
    ("Adadelta", dict(lr=0.5, eps=1e-2, weight_decay=0.1, maximize=True)),
]
ONEDNN_DISPATCH = ("sgd_momentum_onednn", "adam_onednn", "adadelta_onednn")


@requires_torch
@pytest.mark.parametrize("config", ONEDNN_CONFIGS, ids=config_id)
def test_momentum_adam_and_adadelta_on_large_parameters_run_on_onednn(config, onednn, monkeypatch):
    """With the oneDNN kernels, SGD's Nesterov and weight-decayed momentum updates, Adam's, AdamW's
    and Adadelta's of a large float32 parameter (over 2^17 elements) run as oneDNN primitives
    (nothing reaches the block runner) and equal PyTorch's and the ufunc kernels' to a few ulp after
    every step, parameter and state, while the learning rate, momentum, beta1 and weight decay change
    from step to step."""
    import rosenblatt.kernels.optim as kernels_module
    from rosenblatt.kernels.onednn import library

    name, kwargs = config
    library.clear_cache()
    weight, history, torch_history, queued = run_adaptive(name, kwargs, steps=5)
    assert queued == []
    assert np.abs(history[-1][0] - weight).mean() > 1e-3  # the parameter moved
    # Adam's first moment, beta1 * (m - d) + d (the ufunc kernel's too), and PyTorch's lerp round
    # apart where they cancel.
    assert_same_history(history, torch_history, 4, f"{name} against PyTorch", grad_avg_ulps=128)
    for dispatch in ONEDNN_DISPATCH:
        monkeypatch.setattr(kernels_module, dispatch, lambda *args: False)
    _, blocked, _, queued = run_adaptive(name, kwargs, steps=5)
    assert queued
    assert_same_history(history, blocked, 4, f"{name} against the ufunc kernels")


@requires_torch
def test_momentum_adam_and_adadelta_schedules_build_no_primitives(onednn, monkeypatch):
    """Learning rates, momentum, beta1, weight decay (and with them AdamW's decay) and Adam's bias
    corrections reach the primitives at run time: once the first steps have built them, steps with
    other values build none."""
    from rosenblatt.kernels.onednn import library
    from rosenblatt.kernels.onednn import optim as onednn_optim

    built = []
    build = onednn_optim._binary
    monkeypatch.setattr(onednn_optim, "_binary", lambda *args, **kwargs: built.append(args[0]) or build(*args, **kwargs))
    library.clear_cache()
    for name, kwargs in [("SGD", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.1)),
                         ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.1)),
                         ("Adam", dict(lr=1e-2, amsgrad=True, weight_decay=0.1)),
                         ("AdamW", dict(lr=1e-2, weight_decay=0.1, maximize=True)),
                         ("Adadelta", dict(weight_decay=0.1))]:
        run_adaptive(name, kwargs, steps=2)
        assert built
        count = len(built)
        run_adaptive(name, kwargs, steps=6)  # new learning rates, momenta, betas and weight decays
        assert len(built) == count, (name, built[count:])


@pytest.mark.parametrize("case", ["float64", "small", "strided", "read-only state", "numpy kernels"])
def test_momentum_adam_and_adadelta_onednn_decline_what_they_do_not_cover(case, onednn, monkeypatch):
    """float64, small (under 2^17 elements) or strided arrays, read-only state and the NumPy kernel
    set take the ufunc kernels: the oneDNN entry points decline, touching nothing."""
    import rosenblatt.kernels.optim as kernels_module

    param, grad, state = _declined_case(case, monkeypatch, read_only=3)
    before = [param.copy(), *(s.copy() for s in state)]
    runner = kernels_module.UpdateRunner()
    for first in (True, False):
        assert not kernels_module.sgd_momentum_onednn(param, grad, state[0], runner, 0.1, 0.9, 0.0, True, 0.1, True,
                                                      first)
    assert not kernels_module.adam_onednn(param, grad, *state, runner, 0.9, 0.999, 1e-3, 1e-8, 0.99, 0.0, True)
    assert not kernels_module.adadelta_onednn(param, grad, *state[:2], runner, 1.0, 0.9, 1e-6, 0.1, False)
    for a, b in zip([param, *state], before):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size", [(1 << 17) + 3, 1 << 19])
@pytest.mark.parametrize("alpha", [-0.01, 0.5])
def test_tensor_add_with_alpha_runs_in_one_pass(dtype, size, alpha, monkeypatch):
    """``t.add_(x, alpha=a)`` / ``t.sub_(x, alpha=a)`` (a hand-written SGD step) go through the
    one-pass ``axpy`` kernel and give NumPy's ``t += a * x`` to rounding; what it declines
    (broadcasting, other dtypes, overlap, strides, small arrays) still gives NumPy's result."""
    import rosenblatt.kernels.optim as kernels_module

    if kernels_module._blas_for(np.dtype(dtype)) is None:
        pytest.skip("NumPy's BLAS is not OpenBLAS")
    calls = []
    axpy = kernels_module.axpy
    monkeypatch.setattr(rb.core, "_axpy", lambda y, x, a: calls.append(axpy(y, x, a)) or calls[-1])
    rng = np.random.default_rng(0)
    p0 = rng.normal(size=size).astype(dtype)
    g = rng.normal(size=size).astype(dtype)
    p = rb.tensor(p0.copy())
    version = p._version
    p.add_(rb.tensor(g), alpha=alpha)
    assert calls == [True] and p._version == version + 1
    np.testing.assert_allclose(p.numpy(), p0 + alpha * g, rtol=1e-6, atol=1e-6)
    p.sub_(rb.tensor(g), alpha=alpha)
    np.testing.assert_allclose(p.numpy(), p0, rtol=1e-5, atol=1e-5)
    assert calls == [True, True]
    declined = {
        "broadcast": (p0[: size // 2 * 2].reshape(2, -1), g[: size // 2]),
        "dtype": (p0, g.astype(np.float16)),
        "strided": (p0[::2].copy(), g[::2]),  # (passed as a view: rb.tensor(g)[::2])
        "small": (p0[:5000].copy(), g[:5000]),  # below AXPY_MIN_ELEMENTS: NumPy's two passes
    }
    for name, (a, b) in declined.items():
        calls.clear()
        t = rb.tensor(a.copy())
        t.add_(rb.tensor(g)[::2] if name == "strided" else rb.tensor(b), alpha=alpha)
        np.testing.assert_allclose(t.numpy(), a + alpha * b, rtol=1e-3, atol=1e-3, err_msg=name)
        assert calls == [False], name
    # overlapping arrays (a shifted view of the same memory) are declined
    view = p0.copy()
    assert not kernels_module.axpy(view[1:], view[:-1], alpha)
