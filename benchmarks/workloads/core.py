"""Core autodiff workloads: per-op overhead on tiny tensors, throughput on large ones, and an MLP
training step written with core ops only (no nn layers)."""

from __future__ import annotations

import numpy as np
from common import Workload

import rosenblatt as rb


def _forward_chain_setup():
    """The forward pass alone (graph recorded): the per-op cost of building the graph."""
    import torch

    def setup():
        data = np.random.default_rng(0).standard_normal((8, 8)).astype(np.float32)
        x = rb.tensor(data, requires_grad=True)
        tx = torch.tensor(data, requires_grad=True)

        def rb_step():
            y = x
            for _ in range(100):
                y = y * 0.999
            return y

        def torch_step():
            y = tx
            for _ in range(100):
                y = y * 0.999
            return y

        return rb_step, torch_step

    def numpy_setup():
        data = np.random.default_rng(0).standard_normal((8, 8)).astype(np.float32)

        def step():
            y = data
            for _ in range(100):
                y = y * 0.999
            return y

        return step

    return setup, numpy_setup


def _chain_setup(n: int):
    import torch

    def setup():
        data = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
        x = rb.tensor(data, requires_grad=True)
        tx = torch.tensor(data, requires_grad=True)

        def rb_step():
            y = x
            for _ in range(50):
                y = (y * 0.9).tanh()
            y.sum().backward()
            x.grad = None

        def torch_step():
            y = tx
            for _ in range(50):
                y = (y * 0.9).tanh()
            y.sum().backward()
            tx.grad = None

        return rb_step, torch_step

    def numpy_setup():
        data = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)

        def step():  # the same arithmetic by hand: forward, then backward
            ys = [data]
            for _ in range(50):
                ys.append(np.tanh(ys[-1] * 0.9))
            g = np.ones_like(data)
            for y in reversed(ys[1:]):
                g = g * (1 - y * y) * 0.9
            return g

        return step

    return setup, numpy_setup


def _mlp_setup():
    import torch

    rng = np.random.default_rng(0)
    sizes = [784, 512, 256, 10]
    weights = [rng.standard_normal((i, o)).astype(np.float32) * float(np.sqrt(2 / i)) for i, o in zip(sizes, sizes[1:])]
    x = rng.standard_normal((128, 784)).astype(np.float32)
    y = rng.integers(0, 10, 128)

    params = [rb.tensor(w, requires_grad=True) for w in weights] + [rb.zeros(o, requires_grad=True) for o in sizes[1:]]
    tparams = [torch.tensor(w, requires_grad=True) for w in weights] + [torch.zeros(o, requires_grad=True) for o in sizes[1:]]
    rx, tx = rb.tensor(x), torch.tensor(x)
    ry, ty = rb.tensor(y), torch.tensor(y)
    rows = np.arange(128)

    def rb_step():
        w1, w2, w3, b1, b2, b3 = params
        h = rb.relu(rx @ w1 + b1)
        h = rb.relu(h @ w2 + b2)
        logp = rb.log_softmax(h @ w3 + b3, axis=1)
        loss = -logp[rows, ry.data].mean()
        loss.backward()
        with rb.no_grad():
            for p in params:
                p.sub_(p.grad, alpha=0.01)
                p.grad = None

    def torch_step():
        w1, w2, w3, b1, b2, b3 = tparams
        h = torch.relu(tx @ w1 + b1)
        h = torch.relu(h @ w2 + b2)
        logp = torch.log_softmax(h @ w3 + b3, dim=1)
        loss = -logp[torch.arange(128), ty].mean()
        loss.backward()
        with torch.no_grad():
            for p in tparams:
                p.sub_(p.grad, alpha=0.01)
                p.grad = None

    return rb_step, torch_step


_forward, _forward_np = _forward_chain_setup()
_small, _small_np = _chain_setup(8)
_large, _large_np = _chain_setup(512)

WORKLOADS = [
    Workload("100-op elementwise chain, 8x8, forward+backward", "core", _small, target=None,
             extra={"numpy_setup": _small_np, "ops": 100}),
    Workload("100-op chain, 8x8, forward only (graph recorded)", "core", _forward, target=None,
             extra={"numpy_setup": _forward_np, "ops": 100}),
    Workload("100-op elementwise chain, 512x512, forward+backward", "core", _large, target=None),
    Workload("MLP 784-512-256-10 train step (core ops), batch 128", "core", _mlp_setup, target=1.0),
]
