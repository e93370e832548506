"""Layer norm over the last axis under both kernel sets, and the allocator policy.

Float32 layer norm over one trailing axis runs oneDNN's kernel when the oneDNN kernel set is
active; the tests compare it (and its NumPy fallback in backward) with PyTorch and check that
the oneDNN primitive really ran.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

import rosenblatt as rb
from rosenblatt.kernels import memory
from rosenblatt.kernels.onednn import library as L
from rosenblatt.nn import functional as F
from tests.parity import check_grad, check_op, requires_torch

if True:  # the oracle, imported lazily by tests.parity
    from tests.parity import torch

ONEDNN_OK, ONEDNN_WHY = L.load()
rng = np.random.default_rng(11)


def _ran() -> bool:
    return any(isinstance(k, tuple) and k and k[0] == "layer_norm" and v for k, v in L.cache_items())


@requires_torch
@pytest.mark.parametrize("shape", [(4, 7), (3, 5, 16), (2, 3, 4, 8)])
@pytest.mark.parametrize("affine", [True, False])
def test_layer_norm_matches_torch(kernel_set, shape, affine):
    e = shape[-1]
    x = rng.standard_normal(shape) * 3 + 1
    w, b = rng.standard_normal(e), rng.standard_normal(e)
    if affine:
        check_op(lambda x_, w_, b_: F.layer_norm(x_, e, w_, b_), lambda x_, w_, b_: torch.nn.functional.layer_norm(
            x_, (e,), w_, b_), [x, w, b])
    else:
        check_op(lambda x_: F.layer_norm(x_, e), lambda x_: torch.nn.functional.layer_norm(x_, (e,)), [x])
    assert _ran() == (kernel_set == "onednn")


@requires_torch
def test_layer_norm_numpy_backward_fallback(monkeypatch):
    """When oneDNN declines the backward pass, the NumPy formulas give the same gradients."""
    if not ONEDNN_OK:
        pytest.skip(f"oneDNN unavailable: {ONEDNN_WHY}")
    from rosenblatt.kernels.onednn import layer_norm as dnn

    before = rb.kernels.active()
    rb.kernels.set_kernels("onednn")
    monkeypatch.setattr(dnn, "layer_norm_backward", lambda *args: None)
    try:
        x, w, b = rng.standard_normal((3, 6, 10)), rng.standard_normal(10), rng.standard_normal(10)
        check_op(lambda x_, w_, b_: F.layer_norm(x_, 10, w_, b_),
                 lambda x_, w_, b_: torch.nn.functional.layer_norm(x_, (10,), w_, b_), [x, w, b])
    finally:
        rb.kernels.set_kernels(before)


def test_layer_norm_gradcheck_and_second_order(kernel_set):
    x, w, b = rng.standard_normal((2, 3, 5)), rng.standard_normal(5), rng.standard_normal(5)
    check_grad(lambda x_, w_, b_: F.layer_norm(x_, 5, w_, b_), [x, w, b])
    # Float32 through the fused kernel, then a second derivative through the composite.
    xt = rb.tensor(x.astype(np.float32), requires_grad=True)
    (g,) = rb.autograd.grad(F.layer_norm(xt, 5).pow(3).sum(), [xt], create_graph=True)
    (gg,) = rb.autograd.grad(g.sum(), [xt])
    x64 = rb.tensor(x, requires_grad=True)
    (g64,) = rb.autograd.grad(F.layer_norm(x64, 5).pow(3).sum(), [x64], create_graph=True)
    (gg64,) = rb.autograd.grad(g64.sum(), [x64])
    np.testing.assert_allclose(gg.numpy(), gg64.numpy(), rtol=1e-3, atol=1e-3)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the allocator policy is for glibc")
def test_allocator_policy_keeps_step_memory():
    """After the policy, a repeated step of megabyte arrays takes (almost) no page faults."""
    resource = pytest.importorskip("resource")
    if not memory.applied():
        pytest.skip("allocator policy not in effect (not glibc, or switched off)")

    def step():
        a = np.ones((2048, 512), np.float32)
        b = a * 2
        c = b + a
        return float(c[0, 0])

    for _ in range(3):
        step()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        step()
    assert resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before < 200
