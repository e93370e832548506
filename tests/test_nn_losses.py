"""Every loss of ``rb.nn`` against PyTorch: value and gradients for every reduction, float32 and
float64, class weights, ``ignore_index``, label smoothing, extra dimensions, probability targets;
float64 gradchecks (first and second order) of the fused losses; clear errors for bad targets."""

from __future__ import annotations

import numpy as np
import pytest

import rosenblatt as rb
from rosenblatt.nn import functional as F
from rosenblatt.nn.functional.loss import (
    binary_cross_entropy_composite,
    binary_cross_entropy_with_logits_composite,
    cross_entropy_composite,
)
from tests.parity import HAVE_TORCH, assert_close, check_grad, check_op, rb_tensor, requires_torch

if HAVE_TORCH:
    import torch
    import torch.nn.functional as TF
else:
    torch = TF = None

DTYPES = [np.float32, np.float64]
REDUCTIONS = ["mean", "sum", "none"]
rng = np.random.default_rng(11)


def r(*shape):
    return rng.standard_normal(shape)


def probs(*shape):
    return rng.uniform(0.05, 0.95, shape)


def distribution(*shape, axis=1):
    e = np.exp(rng.standard_normal(shape))
    return e / e.sum(axis=axis, keepdims=True)


# -- regression and binary losses ------------------------------------------------------------------

ELEMENTWISE = [
    ("mse", F.mse_loss, TF and TF.mse_loss, {}),
    ("l1", F.l1_loss, TF and TF.l1_loss, {}),
    ("huber", F.huber_loss, TF and TF.huber_loss, dict(delta=0.7)),
    ("smooth_l1", F.smooth_l1_loss, TF and TF.smooth_l1_loss, dict(beta=0.5)),
    ("smooth_l1_beta0", F.smooth_l1_loss, TF and TF.smooth_l1_loss, dict(beta=0.0)),
    ("bce_logits", F.binary_cross_entropy_with_logits, TF and TF.binary_cross_entropy_with_logits, {}),
    ("kl_div", F.kl_div, TF and TF.kl_div, {}),
    ("kl_div_log_target", F.kl_div, TF and TF.kl_div, dict(log_target=True)),
]


@requires_torch
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name,fn,tfn,kw", ELEMENTWISE, ids=[c[0] for c in ELEMENTWISE])
def test_elementwise_losses_match_torch(name, fn, tfn, kw, reduction, dtype):
    x, t = r(4, 5), r(4, 5)
    if name.startswith("kl_div"):
        x = np.log(distribution(4, 5))
        t = np.log(distribution(4, 5)) if kw.get("log_target") else distribution(4, 5)
    if name == "bce_logits":
        t = probs(4, 5)
    check_op(lambda a, b: fn(a, b, reduction=reduction, **kw), lambda a, b: tfn(a, b, reduction=reduction, **kw),
             [x, t], dtype)


@pytest.mark.parametrize("name,fn,tfn,kw", ELEMENTWISE, ids=[c[0] for c in ELEMENTWISE])
def test_elementwise_losses_gradcheck(name, fn, tfn, kw):
    x, t = r(3, 4), r(3, 4)
    if name == "bce_logits":
        t = probs(3, 4)
    if name == "kl_div":
        t = distribution(3, 4)
    # kinks (|d| = delta, d = 0) are avoided by the random draw with probability one
    check_grad(lambda a, b: fn(a, b, **kw), [x, t], second_order=name not in ("l1", "smooth_l1_beta0"))


@requires_torch
@pytest.mark.parametrize("reduction", REDUCTIONS + ["batchmean"])
def test_kl_div_batchmean_and_zero_targets(reduction):
    t = distribution(4, 5)
    t[0, 1] = 0.0  # 0 log 0 = 0 (the target is a constant: PyTorch's gradient for it is NaN at 0)
    check_op(lambda a: F.kl_div(a, t, reduction=reduction),
             lambda a: TF.kl_div(a, torch.tensor(t), reduction=reduction), [np.log(distribution(4, 5))], np.float64)


@requires_torch
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_binary_cross_entropy_matches_torch(dtype, reduction):
    w = rng.uniform(0.5, 2, (1, 5))
    check_op(lambda p, t: F.binary_cross_entropy(p, t, reduction=reduction),
             lambda p, t: TF.binary_cross_entropy(p, t, reduction=reduction), [probs(4, 5), probs(4, 5)], dtype)
    check_op(lambda p, t: F.binary_cross_entropy(p, t, weight=w.astype(dtype), reduction=reduction),
             lambda p, t: TF.binary_cross_entropy(p, t, weight=torch.tensor(w.astype(dtype)), reduction=reduction),
             [probs(4, 5), probs(4, 5)], dtype)


@requires_torch
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_binary_cross_entropy_at_exactly_zero_and_one_matches_torch(dtype, reduction):
    # Saturated probabilities: PyTorch's gradient is finite (zero when the prediction is right).
    p = np.array([[0.0, 1.0, 0.0, 1.0], [0.3, 1e-7, 1.0 - 1e-7, 0.5]], dtype=dtype)
    t = np.array([[0.0, 1.0, 1.0, 0.0], [0.6, 0.0, 1.0, 0.25]], dtype=dtype)
    w = np.array([[1.0, 2.0, 0.5, 1.0]], dtype=dtype)
    ours_p, ours_t = rb_tensor(p, requires_grad=True), rb_tensor(t, requires_grad=True)
    theirs_p, theirs_t = torch.tensor(p, requires_grad=True), torch.tensor(t, requires_grad=True)
    ours = F.binary_cross_entropy(ours_p, ours_t, weight=w, reduction=reduction)
    theirs = TF.binary_cross_entropy(theirs_p, theirs_t, weight=torch.tensor(w), reduction=reduction)
    np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=1e-5)
    seed = np.linspace(0.5, 1.5, ours.size).reshape(ours.shape).astype(dtype)
    ours.backward(rb_tensor(seed))
    theirs.backward(torch.tensor(seed))
    assert np.all(np.isfinite(ours_p.grad.numpy()))
    np.testing.assert_allclose(ours_p.grad.numpy(), theirs_p.grad.numpy(), rtol=1e-5)
    np.testing.assert_allclose(ours_t.grad.numpy(), theirs_t.grad.numpy(), rtol=1e-5)  # +-inf where torch's are


def test_binary_cross_entropy_fused_equals_composite_and_gradcheck():
    w = rng.uniform(0.5, 2, (1, 4))
    p, t = rb_tensor(probs(3, 4), requires_grad=True), rb_tensor(probs(3, 4), requires_grad=True)
    fused, composite = F.binary_cross_entropy(p, t, weight=w), binary_cross_entropy_composite(p, t, weight=w)
    assert_close(fused, composite, rtol=1e-12)
    for a, b in zip(rb.grad(fused, [p, t]), rb.grad(composite, [p, t])):
        assert_close(a, b, rtol=1e-10, atol=1e-12)
    check_grad(lambda a, b: F.binary_cross_entropy(a, b, weight=w), [probs(3, 4), probs(3, 4)], second_order=True)


def test_saturated_sigmoid_bce_model_keeps_finite_weights():
    layer = rb.nn.Linear(2, 1)
    with rb.no_grad():
        layer.weight.fill_(30.0)  # sigmoid rounds to exactly 1.0 in float32
    x, y = rb.tensor([[1.0, 1.0], [2.0, 1.0]]), rb.tensor([[1.0], [1.0]])
    opt = rb.optim.SGD(layer.parameters(), lr=0.1)
    for _ in range(3):
        opt.zero_grad()
        rb.nn.BCELoss()(rb.nn.Sigmoid()(layer(x)), y).backward()
        opt.step()
    assert np.all(np.isfinite(layer.weight.numpy())) and np.all(layer.weight.numpy() == 30.0)


def test_binary_cross_entropy_checks_the_target_range():
    with pytest.raises(ValueError, match=r"binary_cross_entropy: all elements of target should be between 0 and 1"):
        F.binary_cross_entropy(rb.tensor([0.5, 0.5]), rb.tensor([0.0, 2.0]))
    with pytest.raises(ValueError, match="target"):
        rb.nn.BCELoss()(rb.tensor([0.5]), rb.tensor([-0.5]))


@requires_torch
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce_with_logits_weights_match_torch(dtype, reduction):
    pw = rng.uniform(0.5, 3, 5).astype(dtype)
    w = rng.uniform(0.5, 2, (4, 5)).astype(dtype)
    check_op(lambda x, t: F.binary_cross_entropy_with_logits(x, t, weight=w, pos_weight=pw, reduction=reduction),
             lambda x, t: TF.binary_cross_entropy_with_logits(x, t, weight=torch.tensor(w),
                                                              pos_weight=torch.tensor(pw), reduction=reduction),
             [r(4, 5) * 3, probs(4, 5)], dtype)


def test_bce_with_logits_fused_equals_composite_and_gradcheck():
    pw, w = rng.uniform(0.5, 3, 4), rng.uniform(0.5, 2, (3, 4))
    x, t = rb_tensor(r(3, 4) * 3, requires_grad=True), rb_tensor(probs(3, 4), requires_grad=True)
    fused = F.binary_cross_entropy_with_logits(x, t, weight=w, pos_weight=pw)
    composite = binary_cross_entropy_with_logits_composite(x, t, weight=w, pos_weight=pw)
    assert_close(fused, composite, rtol=1e-12)
    for a, b in zip(rb.grad(fused, [x, t]), rb.grad(composite, [x, t])):
        assert_close(a, b, rtol=1e-10, atol=1e-12)
    check_grad(lambda a, b: F.binary_cross_entropy_with_logits(a, b, weight=w, pos_weight=pw), [r(3, 4), probs(3, 4)],
               second_order=True)


@requires_torch
def test_bce_with_logits_is_stable_for_huge_logits():
    x = np.array([-1000.0, -100.0, -30.0, 0.0, 30.0, 100.0, 1000.0], dtype=np.float32)
    t = np.array([1.0, 0.0, 1.0, 0.5, 0.0, 1.0, 0.0], dtype=np.float32)
    check_op(lambda a, b: F.binary_cross_entropy_with_logits(a, b, reduction="none"),
             lambda a, b: TF.binary_cross_entropy_with_logits(a, b, reduction="none"), [x, t], np.float32)
    loss = F.binary_cross_entropy_with_logits(rb_tensor(x), rb_tensor(t), reduction="none").numpy()
    assert np.all(np.isfinite(loss)) and loss[0] == pytest.approx(1000.0)


# -- cross-entropy --------------------------------------------------------------------------------

CE_OPTIONS = [
    dict(),
    dict(weight=True),
    dict(ignore_index=2),
    dict(label_smoothing=0.2),
    dict(weight=True, ignore_index=1, label_smoothing=0.1),
]


def _ce_kwargs(opts, classes, dtype):
    kw = dict(opts)
    if kw.pop("weight", False):
        w = np.linspace(0.5, 2.0, classes).astype(dtype)
        return {**kw, "weight": rb_tensor(w)}, {**kw, "weight": torch.tensor(w)}
    return kw, dict(kw)


@requires_torch
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("opts", CE_OPTIONS, ids=lambda o: "-".join(o) or "plain")
@pytest.mark.parametrize("shape", [(6, 4), (3, 4, 2, 3), (4,)], ids=["NC", "NCHW", "C"])
def test_cross_entropy_index_targets_match_torch(shape, opts, reduction, dtype):
    classes = shape[1] if len(shape) > 1 else shape[0]
    target_shape = (shape[0],) + shape[2:] if len(shape) > 1 else ()
    target = rng.integers(0, classes, target_shape)
    if len(shape) > 1:
        target.reshape(-1)[0] = 1  # at least one sample not ignored
    kw, tkw = _ce_kwargs(opts, classes, dtype)
    check_op(lambda z: F.cross_entropy(z, target, reduction=reduction, **kw),
             lambda z: TF.cross_entropy(z, torch.tensor(target), reduction=reduction, **tkw), [r(*shape) * 2], dtype)


@requires_torch
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("targets, ignore_index", [
    ([0, 3, 1, 2, 3, 0], -100),      # every entry a class: the short path
    ([0, 3, -100, 2, -100, 0], -100),  # ignored entries below the classes
    ([0, 3, 1, 3, 3, 0], 2),        # ignore_index among the classes, absent: the short path
    ([0, 3, 2, 3, 2, 0], 2),        # ... present
    ([0, 3, 9, 1, 9, 0], 9),        # ignored entries above the classes
    ([-100, -100, -100, -100, -100, -100], -100),  # all ignored
], ids=["classes", "ignored-below", "ignore-absent", "ignore-present", "ignored-above", "all-ignored"])
@pytest.mark.filterwarnings("ignore:.*(divide|invalid value):RuntimeWarning")  # the all-ignored mean: 0 / 0
def test_cross_entropy_index_targets_with_and_without_ignored_entries(targets, ignore_index, reduction):
    """The loss takes a shorter path when every target is a class index; each case against PyTorch
    (the all-ignored mean is NaN on both sides)."""
    target = np.array(targets)
    z = r(6, 4) * 2
    check_op(lambda z: F.cross_entropy(z, target, ignore_index=ignore_index, reduction=reduction),
             lambda z: TF.cross_entropy(z, torch.tensor(target), ignore_index=ignore_index, reduction=reduction),
             [z], np.float64)


@requires_torch
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("opts", [dict(), dict(weight=True), dict(label_smoothing=0.3),
                                  dict(weight=True, label_smoothing=0.1)], ids=lambda o: "-".join(o) or "plain")
@pytest.mark.parametrize("shape", [(5, 4), (2, 4, 3)], ids=["NC", "NCL"])
def test_cross_entropy_probability_targets_match_torch(shape, opts, reduction, dtype):
    kw, tkw = _ce_kwargs(opts, shape[1], dtype)
    check_op(lambda z, t: F.cross_entropy(z, t, reduction=reduction, **kw),
             lambda z, t: TF.cross_entropy(z, t, reduction=reduction, **tkw),
             [r(*shape) * 2, distribution(*shape)], dtype)


@requires_torch
def test_cross_entropy_one_hot_equals_index_targets():
    z = rb_tensor(r(6, 5), requires_grad=True)
    y = rng.integers(0, 5, 6)
    one_hot = F.one_hot(rb_tensor(y), 5).numpy().astype(np.float64)
    a = F.cross_entropy(z, y)
    b = F.cross_entropy(z, one_hot)
    assert_close(a, b, rtol=1e-12)
    assert_close(rb.grad(a, [z])[0], rb.grad(b, [z])[0], rtol=1e-12)


@pytest.mark.parametrize("opts", CE_OPTIONS, ids=lambda o: "-".join(o) or "plain")
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_fused_equals_composite(opts, reduction):
    kw = dict(opts)
    if kw.pop("weight", False):
        kw["weight"] = np.linspace(0.5, 2.0, 4)
    target = rng.integers(0, 4, (3, 2))
    z = rb_tensor(r(3, 4, 2), requires_grad=True)
    fused = F.cross_entropy(z, target, reduction=reduction, **kw)
    composite = cross_entropy_composite(z, target, reduction=reduction, **kw)
    assert_close(fused, composite, rtol=1e-12, atol=1e-14)
    gy = rb_tensor(r(*fused.shape))
    assert_close(rb.grad(fused, [z], gy)[0], rb.grad(composite, [z], gy)[0], rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("opts", CE_OPTIONS, ids=lambda o: "-".join(o) or "plain")
def test_cross_entropy_gradcheck_first_and_second_order(opts):
    kw = dict(opts)
    if kw.pop("weight", False):
        kw["weight"] = np.linspace(0.5, 2.0, 4)
    target = np.array([0, 1, 3, 2, 1])
    check_grad(lambda z: F.cross_entropy(z, target, **kw), [r(5, 4)], second_order=True)
    check_grad(lambda z, t: F.cross_entropy(z, t, label_smoothing=0.1), [r(3, 4), distribution(3, 4)],
               second_order=True)


@requires_torch
def test_cross_entropy_second_derivatives_match_torch():
    target = np.array([0, 2, 1])
    z = rb_tensor(r(3, 4), requires_grad=True)
    tz = torch.tensor(z.numpy(), requires_grad=True)
    (g,) = rb.grad(F.cross_entropy(z, target, label_smoothing=0.1), [z], create_graph=True)
    (tg,) = torch.autograd.grad(TF.cross_entropy(tz, torch.tensor(target), label_smoothing=0.1), [tz],
                                create_graph=True)
    (gg,) = rb.grad((g * g).sum(), [z])
    (tgg,) = torch.autograd.grad((tg * tg).sum(), [tz])
    assert_close(gg, tgg, rtol=1e-8, atol=1e-12)


@requires_torch
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(6, 4), (3, 4, 2)])
def test_nll_loss_matches_torch(shape, reduction):
    target = rng.integers(0, 4, (shape[0],) + shape[2:])
    target.reshape(-1)[-1] = 3
    w = np.linspace(0.5, 2.0, 4)
    for kw, tkw in [({}, {}), (dict(weight=w, ignore_index=3), dict(weight=torch.tensor(w), ignore_index=3))]:
        check_op(lambda x, kw=kw: F.nll_loss(x, target, reduction=reduction, **kw),
                 lambda x, tkw=tkw: TF.nll_loss(x, torch.tensor(target), reduction=reduction, **tkw),
                 [np.log(distribution(*shape))], np.float64)


# -- loss modules --------------------------------------------------------------------------------


@requires_torch
def test_loss_modules_match_torch_and_state_dicts():
    w = np.linspace(0.5, 2.0, 4)
    z, y = r(5, 4), rng.integers(0, 4, 5)
    pairs = [
        (rb.nn.CrossEntropyLoss(weight=rb_tensor(w), label_smoothing=0.1),
         torch.nn.CrossEntropyLoss(weight=torch.tensor(w), label_smoothing=0.1), z, y),
        (rb.nn.NLLLoss(reduction="sum"), torch.nn.NLLLoss(reduction="sum"), np.log(distribution(5, 4)), y),
        (rb.nn.MSELoss(), torch.nn.MSELoss(), z, r(5, 4)),
        (rb.nn.L1Loss(reduction="sum"), torch.nn.L1Loss(reduction="sum"), z, r(5, 4)),
        (rb.nn.HuberLoss(delta=0.5), torch.nn.HuberLoss(delta=0.5), z, r(5, 4)),
        (rb.nn.SmoothL1Loss(beta=2.0), torch.nn.SmoothL1Loss(beta=2.0), z, r(5, 4)),
        (rb.nn.BCELoss(), torch.nn.BCELoss(), probs(5, 4), probs(5, 4)),
        (rb.nn.BCEWithLogitsLoss(pos_weight=rb_tensor(w)), torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(w)),
         z, probs(5, 4)),
        (rb.nn.KLDivLoss(reduction="batchmean"), torch.nn.KLDivLoss(reduction="batchmean"),
         np.log(distribution(5, 4)), distribution(5, 4)),
    ]
    for loss, t_loss, x, target in pairs:
        assert_close(loss(rb_tensor(x), target), t_loss(torch.tensor(x), torch.tensor(target)),
                     type(loss).__name__, rtol=1e-10)
        assert set(loss.state_dict()) == set(t_loss.state_dict()), type(loss).__name__
    assert repr(rb.nn.CrossEntropyLoss()) == repr(torch.nn.CrossEntropyLoss())


# -- bad input ------------------------------------------------------------------------------------


def test_cross_entropy_bad_targets():
    z = rb.randn(4, 3)
    with pytest.raises(ValueError, match=r"CrossEntropyLoss: expected class-index target of shape \(4,\).*got \(5,\)"):
        rb.nn.CrossEntropyLoss()(z, rb.tensor([0, 1, 2, 0, 1]))
    with pytest.raises(IndexError, match=r"cross_entropy.*\[0, 3\).*got values in \[0, 3\]"):
        F.cross_entropy(z, rb.tensor([0, 1, 2, 3]))
    with pytest.raises(IndexError, match="cross_entropy"):
        F.cross_entropy(z, rb.tensor([0, -1, 2, 1]))
    assert np.isfinite(F.cross_entropy(z, rb.tensor([0, -100, 2, 1])).item())  # ignore_index is allowed
    with pytest.raises(TypeError, match="integers"):
        F.cross_entropy(z, rb.tensor([0.0, 1.0, 2.0, 1.0]))
    bad = distribution(4, 3)
    bad[1, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        F.cross_entropy(z, bad.astype(np.float32))
    with pytest.raises(ValueError, match="weight must have shape"):
        F.cross_entropy(z, rb.tensor([0, 1, 2, 0]), weight=np.ones(4))
    with pytest.raises(ValueError, match="reduction"):
        F.cross_entropy(z, rb.tensor([0, 1, 2, 0]), reduction="average")


def test_regression_and_binary_losses_bad_input():
    with pytest.raises(ValueError, match=r"MSELoss: input and target must have the same shape.*\(4, 1\).*\(3, 1\)"):
        rb.nn.MSELoss()(rb.randn(4, 1), rb.randn(3, 1))
    with pytest.raises(ValueError, match=r"mse_loss.*\(4, 1\).*\(4,\)"):
        F.mse_loss(rb.randn(4, 1), rb.randn(4))
    with pytest.raises(ValueError, match="between 0 and 1"):
        F.binary_cross_entropy(rb.tensor([0.5, 1.5]), rb.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="NaN"):
        F.binary_cross_entropy_with_logits(rb.tensor([0.5, 1.5]), rb.tensor([np.nan, 1.0]))
    with pytest.raises(ValueError, match="pos_weight"):
        F.binary_cross_entropy_with_logits(rb.randn(4, 3), rb.rand(4, 3), pos_weight=np.ones(5))
    with pytest.raises(IndexError, match="nll_loss"):
        F.nll_loss(rb.randn(2, 3), rb.tensor([0, 5]))


# -- fused regression losses, large inputs (the BLAS-reduced path) ------------------------------------

REGRESSION = [case for case in ELEMENTWISE if case[0] in ("mse", "l1", "huber", "smooth_l1", "smooth_l1_beta0")]


def _regression_pair(shape, kw):
    """Input and target with exact ties (d = 0: l1's sign) and differences of exactly +-delta (the
    huber kink: its value and gradient are continuous there)."""
    x, t = r(*shape) * 2, r(*shape)
    flat_x, flat_t = x.reshape(-1), t.reshape(-1)
    flat_x[:40] = flat_t[:40]
    edge = kw.get("delta", kw.get("beta", 1.0))
    flat_x[40:60] = flat_t[40:60] + edge
    flat_x[60:80] = flat_t[60:80] - edge
    return x, t


@requires_torch
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(37, 129), (3, 5, 7, 41)], ids=["2d-tail", "4d"])
@pytest.mark.parametrize("name,fn,tfn,kw", REGRESSION, ids=[c[0] for c in REGRESSION])
def test_fused_regression_losses_match_torch_on_large_inputs(name, fn, tfn, kw, shape, reduction):
    """Thousands of elements (not a multiple of the 1,024-element BLAS rows): value and both
    gradients against PyTorch in float32, every reduction."""
    check_op(lambda a, b: fn(a, b, reduction=reduction, **kw), lambda a, b: tfn(a, b, reduction=reduction, **kw),
             list(_regression_pair(shape, kw)), np.float32)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name,fn,tfn,kw", REGRESSION, ids=[c[0] for c in REGRESSION])
def test_fused_regression_losses_equal_composite_and_gradcheck(name, fn, tfn, kw, reduction):
    from rosenblatt.nn.functional.loss import _regression_composite

    kind = {"smooth_l1_beta0": "l1"}.get(name, name)
    param = kw.get("delta", kw.get("beta", 0.0))
    x, t = (rb_tensor(a, requires_grad=True) for a in _regression_pair((45, 61), kw))
    fused = fn(x, t, reduction=reduction, **kw)
    composite = _regression_composite(kind, x, t, reduction, param)
    assert type(fused.grad_fn).__name__ == "RegressionLossFn"
    assert_close(fused, composite, rtol=1e-12, atol=1e-12)
    gy = rb_tensor(r(*fused.shape))
    for a, b in zip(rb.grad(fused, [x, t], gy), rb.grad(composite, [x, t], gy)):
        assert_close(a, b, rtol=1e-12, atol=1e-15)
    # float64 finite differences, away from the kinks; second order through the composite backward
    check_grad(lambda a, b: fn(a, b, reduction=reduction, **kw), [r(3, 4), r(3, 4)],
               second_order=name not in ("l1", "smooth_l1_beta0"))


def test_fused_regression_losses_accumulate_accurately():
    """The BLAS row sums are added in float64: the float32 loss of 300,000 elements is the float64
    loss rounded once (a naive float32 running sum is off by about 1e-4 relative)."""
    x, t = (r(300, 1000) * 3 + 1).astype(np.float32), r(300, 1000).astype(np.float32)
    d = x.astype(np.float64) - t.astype(np.float64)
    for fn, exact in [(F.mse_loss, (d * d).mean()), (F.l1_loss, np.abs(d).mean()),
                      (F.huber_loss, np.where(np.abs(d) < 1, 0.5 * d * d, np.abs(d) - 0.5).mean())]:
        got = fn(rb_tensor(x), rb_tensor(t)).item()
        assert abs(got - exact) <= 4e-7 * abs(exact), fn.__name__
        assert fn(rb_tensor(x), rb_tensor(t), reduction="sum").item() == pytest.approx(exact * d.size, rel=4e-7)


def test_regression_losses_integer_target_and_empty_input():
    """An integer target is taken in the input's dtype (PyTorch's float32 result); the mean of no
    elements is NaN, their sum 0, as PyTorch."""
    x = rb_tensor(r(3, 4).astype(np.float32), requires_grad=True)
    target = np.arange(12).reshape(3, 4)
    for fn in (F.mse_loss, F.l1_loss, F.huber_loss, F.smooth_l1_loss):
        loss = fn(x, target)
        assert loss.dtype == np.float32
        expected = fn(x, target.astype(np.float32))
        assert_close(loss, expected, rtol=1e-6)
        (g,) = rb.grad(loss, [x])
        assert g.dtype == np.float32
    empty = rb_tensor(np.zeros((0, 3), np.float32), requires_grad=True)
    assert np.isnan(F.mse_loss(empty, empty).item())
    assert F.l1_loss(empty, empty, reduction="sum").item() == 0.0
    F.mse_loss(empty, empty, reduction="sum").backward()
    assert empty.grad.shape == (0, 3)


def test_regression_loss_errors_name_the_op():
    x = rb.randn(4, 3)
    with pytest.raises(ValueError, match=r"huber_loss: delta must be positive, got -1"):
        F.huber_loss(x, x, delta=-1.0)
    with pytest.raises(ValueError, match=r"smooth_l1_loss: beta must be non-negative, got -0.5"):
        F.smooth_l1_loss(x, x, beta=-0.5)
    with pytest.raises(ValueError, match=r"l1_loss: reduction must be one of"):
        F.l1_loss(x, x, reduction="avg")
    with pytest.raises(ValueError, match=r"HuberLoss: input and target must have the same shape"):
        rb.nn.HuberLoss()(x, rb.randn(4, 2))
    with pytest.raises(TypeError, match=r"mse_loss: expected a floating input"):
        F.mse_loss(rb.tensor([1, 2]), rb.tensor([1.0, 2.0]))


# -- fused binary cross-entropy with logits ----------------------------------------------------------


@requires_torch
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weights", ["none", "weight", "pos_weight", "both"])
def test_bce_with_logits_large_inputs_match_torch(weights, reduction):
    x, t = r(53, 97) * 4, (rng.random((53, 97)) > 0.5).astype(np.float64)
    t[:, :10] = probs(53, 10)  # soft targets too
    kw, tkw = {}, {}
    if weights in ("weight", "both"):
        w = rng.uniform(0.5, 2, (53, 1)).astype(np.float32)
        kw["weight"], tkw["weight"] = w, torch.tensor(w)
    if weights in ("pos_weight", "both"):
        pw = rng.uniform(0.5, 3, 97).astype(np.float32)
        kw["pos_weight"], tkw["pos_weight"] = pw, torch.tensor(pw)
    check_op(lambda a, b: F.binary_cross_entropy_with_logits(a, b, reduction=reduction, **kw),
             lambda a, b: TF.binary_cross_entropy_with_logits(a, b, reduction=reduction, **tkw), [x, t], np.float32)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce_with_logits_fused_reduction_equals_composite_and_gradcheck(reduction):
    x, t = rb_tensor(r(41, 53) * 3, requires_grad=True), rb_tensor(probs(41, 53), requires_grad=True)
    for kw in ({}, dict(weight=rng.uniform(0.5, 2, 53)), dict(pos_weight=rng.uniform(0.5, 3, 53))):
        fused = F.binary_cross_entropy_with_logits(x, t, reduction=reduction, **kw)
        assert type(fused.grad_fn).__name__ == "BCEWithLogitsFn"
        composite = binary_cross_entropy_with_logits_composite(x, t, reduction=reduction, **kw)
        assert_close(fused, composite, rtol=1e-12, atol=1e-13)
        gy = rb_tensor(r(*fused.shape))
        for a, b in zip(rb.grad(fused, [x, t], gy), rb.grad(composite, [x, t], gy)):
            assert_close(a, b, rtol=1e-10, atol=1e-13)
        check_grad(lambda a, b, kw=kw: F.binary_cross_entropy_with_logits(a, b, reduction=reduction, **kw),
                   [r(3, 53), probs(3, 53)], second_order=True)


def test_bce_with_logits_keeps_the_small_loss_of_confident_right_predictions():
    """A right prediction with a large margin has loss softplus(-|x|) ~ exp(-|x|): kept for both
    signs in float32 (PyTorch's (1 - t) x - log_sigmoid(x) rounds it to 0 for negative x), and its
    gradient sigmoid(x) - t is accurate to the last bits for very negative x."""
    x = np.array([-30.0, -20.0, -12.0, 12.0, 20.0, 30.0, -200.0, 200.0], dtype=np.float32)
    t = (x > 0).astype(np.float32)
    xt = rb_tensor(x, requires_grad=True)
    loss = F.binary_cross_entropy_with_logits(xt, t, reduction="none")
    exact = np.log1p(np.exp(-np.abs(x.astype(np.float64))))  # (0 in float32 at |x| = 200)
    np.testing.assert_allclose(loss.numpy(), exact.astype(np.float32), rtol=1e-6, atol=0)
    total = F.binary_cross_entropy_with_logits(xt, t, reduction="sum")
    assert total.item() == pytest.approx(exact.sum(), rel=1e-6)
    loss.sum().backward()
    sig = 1 / (1 + np.exp(-x.astype(np.float64)))
    negative = x < 0  # sigmoid(x) - 1 for large positive x cancels in float32 (PyTorch's too): absolute accuracy
    np.testing.assert_allclose(xt.grad.numpy()[negative], (sig - t).astype(np.float32)[negative], rtol=1e-5, atol=0)
    np.testing.assert_allclose(xt.grad.numpy(), sig - t, rtol=0, atol=1e-7)


def test_bce_with_logits_weight_that_broadcasts_the_loss_up_is_refused():
    with pytest.raises(ValueError, match=r"binary_cross_entropy_with_logits: weight changes the loss shape"):
        F.binary_cross_entropy_with_logits(rb.randn(4, 3), rb.rand(4, 3), weight=np.ones((2, 4, 3)))
    with pytest.raises(ValueError, match=r"binary_cross_entropy_with_logits: weight changes the loss shape"):
        F.binary_cross_entropy_with_logits(rb.randn(4, 3), rb.rand(4, 3), pos_weight=np.ones((2, 1, 3)))


# -- cross-entropy and nll_loss: the short paths ------------------------------------------------------


@requires_torch
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(128, 10), (9, 200), (1, 7), (4, 10, 3)], ids=["few", "many", "one-row", "NCL"])
def test_cross_entropy_index_targets_short_path_matches_torch(shape, reduction):
    """The path of plain class indices (row maximum from the transposed copy below 64 classes, the
    row sums as a matrix-vector product, the flat pick of the targets) against PyTorch, float32."""
    target = rng.integers(0, shape[1], (shape[0],) + shape[2:])
    for dtype in (np.int64, np.int32, np.int8) if shape[1] < 128 else (np.int64, np.int16):
        check_op(lambda z, dtype=dtype: F.cross_entropy(z, target.astype(dtype), reduction=reduction),
                 lambda z: TF.cross_entropy(z, torch.tensor(target), reduction=reduction), [r(*shape) * 3], np.float32)


def test_cross_entropy_short_path_row_max_and_sums():
    from rosenblatt.nn.functional.loss import _row_max, _row_sum

    for shape in [(128, 10), (3, 64), (5, 65), (1, 4), (0, 5)]:
        z = r(*shape).astype(np.float32)
        np.testing.assert_array_equal(_row_max(z), z.max(axis=1))
        np.testing.assert_allclose(_row_sum(z), z.sum(axis=1), rtol=1e-6, atol=1e-6)
    z = r(6, 5).astype(np.float32)
    z[2, 3] = np.nan
    assert np.isnan(_row_max(z)[2]) and not np.isnan(_row_max(z)[[0, 1, 3, 4, 5]]).any()


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.int16, np.int8])
def test_index_target_checks_for_every_integer_dtype(dtype):
    z = rb.randn(4, 3)
    with pytest.raises(IndexError, match=r"cross_entropy.*\[0, 3\).*got values in \[0, 3\]"):
        F.cross_entropy(z, np.array([0, 1, 2, 3], dtype=dtype))
    with pytest.raises(IndexError, match=r"nll_loss.*got values in \[-1, 2\]"):
        F.nll_loss(z, np.array([0, -1, 2, 1], dtype=dtype))
    assert np.isfinite(F.cross_entropy(z, np.array([0, -100 if dtype != np.int8 else -128, 2, 1], dtype=dtype),
                                       ignore_index=-100 if dtype != np.int8 else -128).item())
    assert np.isfinite(F.nll_loss(z, np.array([0, 1, 2, 1], dtype=dtype), ignore_index=1).item())


@requires_torch
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(128, 10), (6, 4), (3, 4, 2, 3), (4,)], ids=["NC", "small", "NCHW", "C"])
@pytest.mark.parametrize("opts", [{}, dict(weight=True), dict(ignore_index=2), dict(weight=True, ignore_index=0)],
                         ids=["plain", "weight", "ignore", "weight-ignore"])
def test_nll_loss_fused_matches_torch_float32(opts, shape, reduction):
    classes = shape[1] if len(shape) > 1 else shape[0]
    target = rng.integers(0, classes, (shape[0],) + shape[2:] if len(shape) > 1 else ())
    if target.ndim:
        target.reshape(-1)[0] = 1  # at least one sample counted
    kw, tkw = _ce_kwargs(opts, classes, np.float32)
    check_op(lambda x: F.nll_loss(x, target, reduction=reduction, **kw),
             lambda x: TF.nll_loss(x, torch.tensor(target), reduction=reduction, **tkw),
             [np.log(distribution(*shape, axis=1 if len(shape) > 1 else 0))], np.float32)


@requires_torch
@pytest.mark.filterwarnings("ignore:.*(divide|invalid value):RuntimeWarning")  # the all-ignored mean: 0 / 0
def test_nll_loss_all_ignored_mean_is_nan_with_zero_gradient():
    x = rb_tensor(np.log(distribution(4, 3)), requires_grad=True)
    loss = F.nll_loss(x, np.full(4, -100))
    tx = torch.tensor(x.numpy(), requires_grad=True)
    t_loss = TF.nll_loss(tx, torch.full((4,), -100))
    assert np.isnan(loss.item()) and np.isnan(t_loss.item())
    loss.backward()
    t_loss.backward()
    np.testing.assert_array_equal(x.grad.numpy(), tx.grad.numpy())


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_nll_loss_fused_gradcheck_and_composite(reduction):
    from rosenblatt.nn.functional.loss import _nll_loss_composite

    w = np.linspace(0.5, 2.0, 4)
    target = np.array([0, 1, 3, 2, 1, 3])
    for kw in ({}, dict(weight=w), dict(weight=w, ignore_index=3)):
        check_grad(lambda x, kw=kw: F.nll_loss(x, target, reduction=reduction, **kw), [r(6, 4)], second_order=True)
        x = rb_tensor(r(6, 4), requires_grad=True)
        fused = F.nll_loss(x, target, reduction=reduction, **kw)
        assert type(fused.grad_fn).__name__ == "NLLLossFn"
        composite = _nll_loss_composite(x, target, kw.get("weight"), kw.get("ignore_index", -100), reduction)
        assert_close(fused, composite, rtol=1e-12)
        gy = rb_tensor(r(*fused.shape))
        assert_close(rb.grad(fused, [x], gy)[0], rb.grad(composite, [x], gy)[0], rtol=1e-12)
