"""Learning-rate schedulers: every schedule's 50-epoch sequence equals PyTorch's (rates, and the
momentum that OneCycleLR cycles), schedules compose, restore mid-run, and reject bad settings."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import rosenblatt as rb
from rosenblatt.nn import Parameter
from rosenblatt.optim import lr_scheduler
from tests.parity import HAVE_TORCH, requires_torch

if HAVE_TORCH:
    import torch

EPOCHS = 50
LRS = (0.1, 0.02)  # two parameter groups with their own rates


def build_rb(optimizer="SGD", **kwargs):
    groups = [{"params": [Parameter(np.zeros(2))], "lr": LRS[0]}, {"params": [Parameter(np.zeros(3))], "lr": LRS[1]}]
    return getattr(rb.optim, optimizer)(groups, **kwargs)


def build_torch(optimizer="SGD", **kwargs):
    groups = [{"params": [torch.zeros(2, requires_grad=True)], "lr": LRS[0]},
              {"params": [torch.zeros(3, requires_grad=True)], "lr": LRS[1]}]
    return getattr(torch.optim, optimizer)(groups, **kwargs)


def momentum_of(group):
    return group["betas"][0] if "betas" in group else group.get("momentum")


def sequence(optimizer, make_schedulers, epochs=EPOCHS, metrics=None):
    """Per epoch: (learning rates, momenta) of every group, stepping optimiser then scheduler(s)."""
    schedulers = make_schedulers(optimizer)
    history = []
    for epoch in range(epochs):
        history.append(([g["lr"] for g in optimizer.param_groups],
                        [momentum_of(g) for g in optimizer.param_groups]))
        assert schedulers[-1].get_last_lr() == history[-1][0]  # the last one to step wrote the rates
        optimizer.step()
        for s in schedulers:
            if metrics is not None:
                s.step(metrics[epoch])
            else:
                s.step()
    return history


def assert_same_sequence(ours, theirs):
    assert len(ours) == len(theirs)
    for epoch, ((lrs, moms), (tlrs, tmoms)) in enumerate(zip(ours, theirs)):
        np.testing.assert_allclose(lrs, tlrs, rtol=1e-12, atol=1e-15, err_msg=f"learning rates at epoch {epoch}")
        if tmoms[0] is not None:
            np.testing.assert_allclose(moms, tmoms, rtol=1e-12, err_msg=f"momentum at epoch {epoch}")


# Each case: (name, optimiser, optimiser kwargs, scheduler list builder taking the optim module).
CASES = [
    ("LambdaLR", "SGD", {}, lambda m, o: [m.LambdaLR(o, lambda e: 0.95 ** e)]),
    ("LambdaLR-per-group", "SGD", {},
     lambda m, o: [m.LambdaLR(o, [lambda e: 1 / (1 + e), lambda e: 0.5 + 0.5 * math.cos(e)])]),
    ("StepLR", "SGD", {}, lambda m, o: [m.StepLR(o, step_size=7, gamma=0.5)]),
    ("MultiStepLR", "SGD", {}, lambda m, o: [m.MultiStepLR(o, milestones=[5, 15, 15, 30], gamma=0.3)]),
    ("ExponentialLR", "SGD", {}, lambda m, o: [m.ExponentialLR(o, gamma=0.93)]),
    ("CosineAnnealingLR-restarts", "SGD", {}, lambda m, o: [m.CosineAnnealingLR(o, T_max=12, eta_min=1e-3)]),
    ("CosineAnnealingLR", "SGD", {}, lambda m, o: [m.CosineAnnealingLR(o, T_max=EPOCHS)]),
    ("LinearLR-warmup", "SGD", {}, lambda m, o: [m.LinearLR(o, start_factor=0.2, total_iters=10)]),
    ("LinearLR-decay", "SGD", {}, lambda m, o: [m.LinearLR(o, start_factor=1.0, end_factor=0.1, total_iters=30)]),
    ("OneCycleLR-SGD-momentum", "SGD", dict(momentum=0.9),
     lambda m, o: [m.OneCycleLR(o, max_lr=[1.0, 0.5], total_steps=EPOCHS)]),
    ("OneCycleLR-linear-three-phase", "SGD", dict(momentum=0.9),
     lambda m, o: [m.OneCycleLR(o, max_lr=0.8, epochs=5, steps_per_epoch=10, anneal_strategy="linear",
                                three_phase=True, pct_start=0.25, base_momentum=0.8, max_momentum=0.9)]),
    ("OneCycleLR-Adam-beta1", "Adam", {},
     lambda m, o: [m.OneCycleLR(o, max_lr=1e-2, total_steps=EPOCHS, div_factor=10.0, final_div_factor=100.0)]),
    ("OneCycleLR-no-momentum", "Adagrad", {},
     lambda m, o: [m.OneCycleLR(o, max_lr=0.3, total_steps=EPOCHS, cycle_momentum=False)]),
    ("LinearLR+ExponentialLR-chained", "SGD", {},
     lambda m, o: [m.LinearLR(o, start_factor=0.1, total_iters=8), m.ExponentialLR(o, gamma=0.95)]),
    ("StepLR+CosineAnnealingLR-chained", "SGD", {},
     lambda m, o: [m.StepLR(o, step_size=10, gamma=0.5), m.CosineAnnealingLR(o, T_max=20)]),
]


@requires_torch
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_schedule_matches_pytorch(case):
    _, optimizer, kwargs, make = case
    ours = sequence(build_rb(optimizer, **kwargs), lambda o: make(lr_scheduler, o))
    theirs = sequence(build_torch(optimizer, **kwargs), lambda o: make(torch.optim.lr_scheduler, o))
    assert_same_sequence(ours, theirs)
    assert len({tuple(lrs) for lrs, _ in ours}) > 1  # the schedule actually changes the rate


# A validation loss that improves, stalls, wobbles and improves again.
METRICS = [1.0 / (1 + e) if e < 12 else 0.08 + 0.01 * ((e * 7) % 5) - (0.03 if 30 < e < 34 else 0.0)
           for e in range(EPOCHS)]

PLATEAU_CASES = [
    dict(),
    dict(patience=2, factor=0.5),
    dict(mode="max", patience=1, threshold=0.01, threshold_mode="abs", cooldown=2, factor=0.5),
    dict(patience=0, cooldown=1, min_lr=[0.01, 0.015], factor=0.3),
    dict(patience=1, threshold=0.2, threshold_mode="rel", min_lr=1e-3, eps=1e-3, factor=0.7),
]


@requires_torch
@pytest.mark.parametrize("kwargs", PLATEAU_CASES, ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items()) or "default")
def test_reduce_on_plateau_matches_pytorch(kwargs):
    metrics = [-m for m in METRICS] if kwargs.get("mode") == "max" else METRICS
    ours = sequence(build_rb(), lambda o: [lr_scheduler.ReduceLROnPlateau(o, **kwargs)], metrics=metrics)
    theirs = sequence(build_torch(), lambda o: [torch.optim.lr_scheduler.ReduceLROnPlateau(o, **kwargs)],
                      metrics=metrics)
    assert_same_sequence(ours, theirs)
    assert ours[-1][0] != ours[0][0]  # at least one reduction happened


@requires_torch
@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("name, kwargs", [
    ("StepLR", dict(step_size=4, gamma=0.5)), ("MultiStepLR", dict(milestones=[3, 9, 9], gamma=0.5)),
    ("ExponentialLR", dict(gamma=0.9)), ("CosineAnnealingLR", dict(T_max=10, eta_min=0.01)),
    ("LinearLR", dict(start_factor=0.25, total_iters=6)),
])
def test_step_to_an_epoch_uses_the_closed_form(name, kwargs):
    ours, theirs = build_rb(), build_torch()
    scheduler = getattr(lr_scheduler, name)(ours, **kwargs)
    tscheduler = getattr(torch.optim.lr_scheduler, name)(theirs, **kwargs)
    for epoch in (3, 9, 4, 17, 0, 12):
        scheduler.step(epoch)
        tscheduler.step(epoch)
        np.testing.assert_allclose(scheduler.get_last_lr(), tscheduler.get_last_lr(), rtol=1e-12)


RESTORE_CASES = [
    ("StepLR", lambda o: lr_scheduler.StepLR(o, step_size=7, gamma=0.5)),
    ("MultiStepLR", lambda o: lr_scheduler.MultiStepLR(o, milestones=[5, 25, 25], gamma=0.3)),
    ("CosineAnnealingLR", lambda o: lr_scheduler.CosineAnnealingLR(o, T_max=12, eta_min=1e-3)),
    ("LinearLR", lambda o: lr_scheduler.LinearLR(o, start_factor=0.2, total_iters=30)),
    ("OneCycleLR", lambda o: lr_scheduler.OneCycleLR(o, max_lr=1.0, total_steps=EPOCHS)),
    ("ReduceLROnPlateau", lambda o: lr_scheduler.ReduceLROnPlateau(o, patience=2, factor=0.5)),
]


@pytest.mark.parametrize("name, make", RESTORE_CASES, ids=[c[0] for c in RESTORE_CASES])
def test_restore_mid_run_through_json(name, make):
    """Save optimiser and scheduler after 20 epochs (through JSON), restore into fresh objects:
    the remaining epochs match an uninterrupted run."""
    plateau = name == "ReduceLROnPlateau"

    def advance(optimizer, scheduler, epochs, start):
        lrs = []
        for epoch in range(start, start + epochs):
            lrs.append([g["lr"] for g in optimizer.param_groups] + [momentum_of(g) for g in optimizer.param_groups])
            optimizer.step()
            scheduler.step(METRICS[epoch]) if plateau else scheduler.step()
        return lrs

    optimizer = build_rb(momentum=0.9)
    scheduler = make(optimizer)
    advance(optimizer, scheduler, 20, 0)
    saved = json.loads(json.dumps({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}))
    expected = advance(optimizer, scheduler, EPOCHS - 21, 20)

    fresh = build_rb(momentum=0.9)
    fresh_scheduler = make(fresh)  # built first: construction writes the rates that the load then replaces
    fresh.load_state_dict(saved["optimizer"])
    fresh_scheduler.load_state_dict(saved["scheduler"])
    assert advance(fresh, fresh_scheduler, EPOCHS - 21, 20) == expected


def test_construction_takes_the_first_step_and_sets_initial_lr():
    optimizer = build_rb()
    scheduler = lr_scheduler.LinearLR(optimizer, start_factor=0.5, total_iters=4)
    assert scheduler.last_epoch == 0
    assert scheduler.get_last_lr() == [LRS[0] * 0.5, LRS[1] * 0.5]
    assert [g["initial_lr"] for g in optimizer.param_groups] == list(LRS)
    assert scheduler.base_lrs == list(LRS)


def test_one_cycle_refuses_to_step_past_the_cycle():
    optimizer = build_rb(momentum=0.9)
    scheduler = lr_scheduler.OneCycleLR(optimizer, max_lr=1.0, total_steps=5)
    for _ in range(5):
        scheduler.step()
    with pytest.raises(ValueError, match="total_steps=5"):
        scheduler.step()


def test_lambda_state_dict_keeps_callable_objects():
    class Warmup:
        def __init__(self):
            self.factor = 2.0

        def __call__(self, epoch):
            return self.factor * epoch

    warmup = Warmup()
    scheduler = lr_scheduler.LambdaLR(build_rb(), warmup)
    state = scheduler.state_dict()
    assert state["lr_lambdas"][0] == {"factor": 2.0}
    warmup.factor = 5.0
    scheduler.load_state_dict(state)
    assert warmup.factor == 2.0


@pytest.mark.parametrize("build, error, message", [
    (lambda o: lr_scheduler.StepLR(o, step_size=0), ValueError, "step_size"),
    (lambda o: lr_scheduler.LinearLR(o, start_factor=0.0), ValueError, "start_factor"),
    (lambda o: lr_scheduler.LinearLR(o, end_factor=1.5), ValueError, "end_factor"),
    (lambda o: lr_scheduler.CosineAnnealingLR(o, T_max=0), ValueError, "T_max"),
    (lambda o: lr_scheduler.ExponentialLR(o, gamma=0.0), ValueError, "gamma"),
    (lambda o: lr_scheduler.OneCycleLR(o, max_lr=1.0), ValueError, "total_steps"),
    (lambda o: lr_scheduler.OneCycleLR(o, max_lr=1.0, total_steps=10, anneal_strategy="cosine"), ValueError,
     "anneal_strategy"),
    (lambda o: lr_scheduler.OneCycleLR(o, max_lr=1.0, total_steps=10, pct_start=1.5), ValueError, "pct_start"),
    (lambda o: lr_scheduler.OneCycleLR(o, max_lr=[1.0], total_steps=10), ValueError, "one per parameter group"),
    (lambda o: lr_scheduler.ReduceLROnPlateau(o, factor=1.0), ValueError, "factor"),
    (lambda o: lr_scheduler.ReduceLROnPlateau(o, mode="lowest"), ValueError, "mode"),
    (lambda o: lr_scheduler.ReduceLROnPlateau(o, threshold_mode="pct"), ValueError, "threshold_mode"),
    (lambda o: lr_scheduler.ReduceLROnPlateau(o, min_lr=[0.1]), ValueError, "min_lr"),
    (lambda o: lr_scheduler.LambdaLR(o, [lambda e: 1.0]), ValueError, "lr_lambda"),
    (lambda o: lr_scheduler.StepLR(object(), step_size=2), TypeError, "Optimizer"),
])
def test_invalid_settings_raise(build, error, message):
    with pytest.raises(error, match=message):
        build(build_rb())


def test_one_cycle_needs_momentum_to_cycle_it():
    with pytest.raises(ValueError, match="cycle_momentum"):
        lr_scheduler.OneCycleLR(build_rb("Adagrad"), max_lr=1.0, total_steps=10)


def test_resuming_needs_initial_lr():
    with pytest.raises(KeyError, match="initial_lr"):
        lr_scheduler.StepLR(build_rb(), step_size=3, last_epoch=5)
