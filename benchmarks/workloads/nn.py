"""``rb.nn`` workloads: a 784-512-256-10 MLP built from layers (Linear, ReLU, BatchNorm1d, Dropout)
and ``F.cross_entropy``, a training step and batch-1 inference, against the same PyTorch model.

A training step is what a training loop runs: ``zero_grad``, forward, ``backward``, and each
framework's own ``optim.SGD(lr=0.01)`` step (gradients reset to None on both sides). The hand-written
update ``p.sub_(p.grad, alpha=lr)`` is the core group's MLP row."""

from __future__ import annotations

import numpy as np
from common import Workload

import rosenblatt as rb

SIZES = [784, 512, 256, 10]
LR = 0.01


def _models(batch_norm: bool, dropout: float):
    import torch

    rb_layers, torch_layers = [], []
    for i, (n_in, n_out) in enumerate(zip(SIZES, SIZES[1:])):
        rb_layers.append(rb.nn.Linear(n_in, n_out))
        torch_layers.append(torch.nn.Linear(n_in, n_out))
        if i < len(SIZES) - 2:
            if batch_norm:
                rb_layers.append(rb.nn.BatchNorm1d(n_out))
                torch_layers.append(torch.nn.BatchNorm1d(n_out))
            rb_layers.append(rb.nn.ReLU())
            torch_layers.append(torch.nn.ReLU())
            if dropout:
                rb_layers.append(rb.nn.Dropout(dropout))
                torch_layers.append(torch.nn.Dropout(dropout))
    model, t_model = rb.nn.Sequential(*rb_layers), torch.nn.Sequential(*torch_layers)
    t_model.load_state_dict({k: torch.tensor(v.numpy()) for k, v in model.state_dict().items()})
    return model, t_model


def _train_setup(batch_norm: bool = False, dropout: float = 0.0, batch: int = 128):
    def setup():
        import torch

        model, t_model = _models(batch_norm, dropout)
        rng = np.random.default_rng(0)
        x = rng.standard_normal((batch, SIZES[0])).astype(np.float32)
        y = rng.integers(0, SIZES[-1], batch)
        rx, ry = rb.tensor(x), rb.tensor(y)
        tx, ty = torch.tensor(x), torch.tensor(y)
        optimizer = rb.optim.SGD(model.parameters(), lr=LR)
        t_optimizer = torch.optim.SGD(t_model.parameters(), lr=LR)
        model.train()
        t_model.train()

        def rb_step():
            optimizer.zero_grad()
            loss = rb.nn.functional.cross_entropy(model(rx), ry)
            loss.backward()
            optimizer.step()

        def torch_step():
            t_optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(t_model(tx), ty)
            loss.backward()
            t_optimizer.step()

        return rb_step, torch_step

    return setup


def _inference_setup(batch: int = 1):
    def setup():
        import torch

        model, t_model = _models(False, 0.0)
        model.eval()
        t_model.eval()
        x = np.random.default_rng(0).standard_normal((batch, SIZES[0])).astype(np.float32)
        rx, tx = rb.tensor(x), torch.tensor(x)

        def rb_step():
            with rb.no_grad():
                return model(rx)

        def torch_step():
            with torch.no_grad():
                return t_model(tx)

        return rb_step, torch_step

    return setup


WORKLOADS = [
    Workload("MLP 784-512-256-10 train step (nn layers, optim.SGD), batch 128", "nn", _train_setup(), target=1.0),
    Workload("MLP 784-512-256-10 inference, batch 1", "nn", _inference_setup(), target=0.8),
    Workload("MLP 784-512-256-10 + BatchNorm1d + Dropout train step (optim.SGD), batch 128", "nn",
             _train_setup(batch_norm=True, dropout=0.2), target=0.9),
]
