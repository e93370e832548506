"""``rb.nn.utils.prune`` against ``torch.nn.utils.prune``: the same masks for the same weights,
the same ``state_dict`` keys, masks composing over repeated pruning, and gradients through the mask."""

from __future__ import annotations

import numpy as np
import pytest

import rosenblatt as rb
from rosenblatt.nn.utils import prune
from tests.parity import HAVE_TORCH, assert_close, requires_torch, tol

if HAVE_TORCH:
    import torch
    import torch.nn.utils.prune as tprune
else:
    torch = tprune = None


def _pair_linear(seed: int = 0, shape=(6, 10)):
    rb.manual_seed(seed)
    m = rb.nn.Linear(shape[1], shape[0])
    t = torch.nn.Linear(shape[1], shape[0])
    with torch.no_grad():
        t.weight.copy_(torch.from_numpy(m.weight.numpy()))
        t.bias.copy_(torch.from_numpy(m.bias.numpy()))
    return m, t


def _pair_conv(seed: int = 0):
    rb.manual_seed(seed)
    m = rb.nn.Conv2d(3, 8, 3)
    t = torch.nn.Conv2d(3, 8, 3)
    with torch.no_grad():
        t.weight.copy_(torch.from_numpy(m.weight.numpy()))
        t.bias.copy_(torch.from_numpy(m.bias.numpy()))
    return m, t


def _same_state(m, t):
    sd, tsd = m.state_dict(), t.state_dict()
    assert list(sd.keys()) == list(tsd.keys())
    for k in sd:
        np.testing.assert_array_equal(sd[k].numpy(), tsd[k].detach().numpy(), err_msg=k)


@requires_torch
@pytest.mark.parametrize("amount", [0.0, 0.3, 0.5, 17, 1.0])
def test_l1_unstructured_matches_torch(amount):
    m, t = _pair_linear()
    prune.l1_unstructured(m, "weight", amount)
    tprune.l1_unstructured(t, "weight", amount)
    _same_state(m, t)
    assert isinstance(m.weight_orig, rb.nn.Parameter) and "weight" not in m._parameters
    np.testing.assert_array_equal(m.weight.numpy(), t.weight.detach().numpy())
    assert prune.is_pruned(m) and tprune.is_pruned(t)


@requires_torch
@pytest.mark.parametrize("n,dim,amount", [(1, 0, 0.5), (2, 0, 3), (2, 1, 0.34), (float("inf"), 0, 0.25),
                                          (2, -1, 0.5)])
def test_ln_structured_matches_torch(n, dim, amount):
    m, t = _pair_conv()
    prune.ln_structured(m, "weight", amount, n=n, dim=dim)
    tprune.ln_structured(t, "weight", amount, n=n, dim=dim)
    _same_state(m, t)


@requires_torch
def test_repeated_pruning_composes_like_pruning_container():
    m, t = _pair_conv(1)
    for mod in (prune, tprune):
        target = m if mod is prune else t
        mod.l1_unstructured(target, "weight", 0.3)
        mod.ln_structured(target, "weight", 0.25, n=2, dim=0)
        mod.l1_unstructured(target, "weight", 10)
        mod.ln_structured(target, "weight", 2, n=1, dim=0)
    _same_state(m, t)
    container = [h for h in m._forward_pre_hooks.values()]
    assert len(container) == 1 and isinstance(container[0], prune.PruningContainer) and len(container[0]) == 4
    # unstructured pruning on top of a mask chooses among the survivors: exactly 10 more zeros
    m2, _ = _pair_linear(2)
    prune.l1_unstructured(m2, "weight", 0.5)
    before = int((m2.weight_mask.numpy() == 0).sum())
    prune.l1_unstructured(m2, "weight", 10)
    assert int((m2.weight_mask.numpy() == 0).sum()) == before + 10


@requires_torch
@pytest.mark.parametrize("amount", [0.2, 0.6, 50])
def test_global_unstructured_matches_torch(amount):
    (m1, t1), (m2, t2) = _pair_linear(3, (5, 7)), _pair_conv(4)
    m1.weight.data[...] *= 3.0  # layers of different scales: global pruning takes more from the smaller one
    with torch.no_grad():
        t1.weight.mul_(3.0)
    prune.global_unstructured([(m1, "weight"), (m2, "weight"), (m2, "bias")], prune.L1Unstructured, amount=amount)
    tprune.global_unstructured([(t1, "weight"), (t2, "weight"), (t2, "bias")], tprune.L1Unstructured, amount=amount)
    _same_state(m1, t1)
    _same_state(m2, t2)
    # again, on top of the first masks
    prune.global_unstructured([(m1, "weight"), (m2, "weight")], prune.L1Unstructured, amount=0.3)
    tprune.global_unstructured([(t1, "weight"), (t2, "weight")], tprune.L1Unstructured, amount=0.3)
    _same_state(m1, t1)
    _same_state(m2, t2)


@requires_torch
def test_forward_backward_and_remove_match_torch():
    m, t = _pair_conv(5)
    prune.l1_unstructured(m, "weight", 0.6)
    tprune.l1_unstructured(t, "weight", 0.6)
    x = np.random.default_rng(0).standard_normal((2, 3, 7, 7)).astype(np.float32)
    for _ in range(2):  # the pre-hook refreshes the weight after an optimiser step on weight_orig
        y = m(rb.tensor(x))
        ty = t(torch.from_numpy(x))
        assert_close(y, ty, **tol(np.float32))
        (y * y).sum().backward()
        (ty * ty).sum().backward()
        assert_close(m.weight_orig.grad, t.weight_orig.grad, **tol(np.float32))
        assert np.all(m.weight_orig.grad.numpy()[m.weight_mask.numpy() == 0] == 0)
        with torch.no_grad():
            t.weight_orig.sub_(0.1 * t.weight_orig.grad)
        m.weight_orig.data[...] -= 0.1 * m.weight_orig.grad.data
        m.zero_grad()
        t.zero_grad()
    prune.remove(m, "weight")
    tprune.remove(t, "weight")
    assert list(m.state_dict()) == list(t.state_dict()) == ["bias", "weight"]
    assert_close(m.weight, t.weight, **tol(np.float32))
    assert isinstance(m.weight, rb.nn.Parameter) and not prune.is_pruned(m)
    assert_close(m(rb.tensor(x)), t(torch.from_numpy(x)), **tol(np.float32))


@requires_torch
def test_pruned_state_dict_loads_across_frameworks():
    m, t = _pair_linear(6)
    tprune.l1_unstructured(t, "weight", 0.4)
    fresh = rb.nn.Linear(10, 6)
    prune.identity(fresh, "weight")
    fresh.load_state_dict({k: v.detach().numpy() for k, v in t.state_dict().items()})
    x = np.ones((3, 10), np.float32)
    assert_close(fresh(rb.tensor(x)), t(torch.from_numpy(x)), **tol(np.float32))


def test_random_unstructured_counts_and_seed():
    m = rb.nn.Linear(10, 10)
    rb.manual_seed(0)
    prune.random_unstructured(m, "weight", 0.3)
    assert int((m.weight_mask.numpy() == 0).sum()) == 30
    first = m.weight_mask.numpy().copy()
    m2 = rb.nn.Linear(10, 10)
    rb.manual_seed(0)
    prune.random_unstructured(m2, "weight", 0.3)
    np.testing.assert_array_equal(first, m2.weight_mask.numpy())
    prune.random_unstructured(m, "bias", 4)
    assert int((m.bias_mask.numpy() == 0).sum()) == 4
    assert [k for k in m.state_dict()] == ["weight_orig", "bias_orig", "weight_mask", "bias_mask"]


def test_pruned_model_trains_and_gradcheck():
    model = rb.nn.Sequential(rb.nn.Linear(4, 6), rb.nn.Tanh(), rb.nn.Linear(6, 1)).double()
    prune.l1_unstructured(model[0], "weight", 0.5)
    x = rb.tensor(np.random.default_rng(1).standard_normal((5, 4)))
    orig = model[0].weight_orig
    assert rb.autograd.gradcheck(lambda w: model[2](model[0].bias + (x @ (w * model[0].weight_mask).T).tanh()), (orig,))


def test_bad_inputs_raise_clearly():
    m = rb.nn.Linear(3, 2)
    with pytest.raises(ValueError, match="no parameter named 'wieght'"):
        prune.l1_unstructured(m, "wieght", 0.5)
    with pytest.raises(ValueError, match=r"fraction must be in \[0, 1\]"):
        prune.l1_unstructured(m, "weight", 1.5)
    with pytest.raises(ValueError, match="more than the 6"):
        prune.l1_unstructured(m, "weight", 7)
    with pytest.raises(TypeError, match="amount must be"):
        prune.l1_unstructured(m, "weight", "half")
    with pytest.raises(ValueError, match="is not pruned"):
        prune.remove(m, "weight")
    with pytest.raises(TypeError, match="pruning method class"):
        prune.global_unstructured([(m, "weight")], "l1", amount=0.5)
    with pytest.raises(TypeError, match="structured"):
        prune.global_unstructured([(m, "weight")], prune.LnStructured, amount=0.5, n=2, dim=0)


def test_failed_repruning_leaves_the_module_unchanged():
    m = rb.nn.Linear(4, 3)
    prune.l1_unstructured(m, "weight", 0.5)
    mask = m.weight_mask.numpy().copy()
    with pytest.raises(ValueError, match="more than the 6"):
        prune.l1_unstructured(m, "weight", 7)  # only 6 weights are left unpruned
    np.testing.assert_array_equal(m.weight_mask.numpy(), mask)
    assert len(m._forward_pre_hooks) == 1
    prune.l1_unstructured(m, "weight", 6)
    assert m.weight_mask.numpy().sum() == 0
