"""Optimiser workloads: one step of each optimiser on a 5-million-parameter model (float32), against
the same PyTorch optimiser with its default CPU implementation (a loop over parameters), and with
``foreach=True`` (its multi-tensor implementation) as a second reference."""

from __future__ import annotations

import numpy as np
from common import Workload

import rosenblatt as rb

# Two large weights and their biases: 4,000,000 + 1,000,000 + 3,000 = 5,003,000 parameters.
SHAPES = [(2000, 2000), (2000,), (1000, 1000), (1000,)]

CASES = [
    ("SGD", dict(lr=1e-3)),
    ("SGD", dict(lr=1e-3, momentum=0.9)),
    ("SGD", dict(lr=1e-3, momentum=0.9, nesterov=True, weight_decay=1e-4)),
    ("Adam", dict(lr=1e-3)),
    ("Adam", dict(lr=1e-3, amsgrad=True)),
    ("AdamW", dict(lr=1e-3, weight_decay=1e-2)),
    ("Adagrad", dict(lr=1e-2)),
    ("Adadelta", dict(lr=1.0)),
    ("RMSprop", dict(lr=1e-3)),
    ("RMSprop", dict(lr=1e-3, momentum=0.9, centered=True)),
]


def _setup(name: str, kwargs: dict):
    def setup():
        import torch

        torch.set_num_threads(2)
        rng = np.random.default_rng(0)
        weights = [rng.standard_normal(shape, dtype=np.float32) * 0.05 for shape in SHAPES]
        grads = [rng.standard_normal(shape, dtype=np.float32) * 0.01 for shape in SHAPES]

        params = [rb.nn.Parameter(w.copy()) for w in weights]
        for p, g in zip(params, grads):
            p.grad = rb.tensor(g.copy())
        optimizer = getattr(rb.optim, name)(params, **kwargs)

        tparams = [torch.nn.Parameter(torch.from_numpy(w.copy())) for w in weights]
        for p, g in zip(tparams, grads):
            p.grad = torch.from_numpy(g.copy())
        toptimizer = getattr(torch.optim, name)(tparams, **kwargs)

        return optimizer.step, toptimizer.step

    return setup


def _foreach_setup(name: str, kwargs: dict):
    def setup():
        import torch

        rng = np.random.default_rng(0)
        weights = [rng.standard_normal(shape, dtype=np.float32) * 0.05 for shape in SHAPES]
        grads = [rng.standard_normal(shape, dtype=np.float32) * 0.01 for shape in SHAPES]
        tparams = [torch.nn.Parameter(torch.from_numpy(w.copy())) for w in weights]
        for p, g in zip(tparams, grads):
            p.grad = torch.from_numpy(g.copy())
        return getattr(torch.optim, name)(tparams, foreach=True, **kwargs).step

    return setup


def _label(name: str, kwargs: dict) -> str:
    options = ", ".join(f"{k}={v}" for k, v in kwargs.items() if k != "lr")
    return f"{name}({options}) step, 5M params" if options else f"{name} step, 5M params"


WORKLOADS = [Workload(name=_label(name, kwargs), group="optim", setup=_setup(name, kwargs), target=1.0,
                      notes="float32; PyTorch's default (for-loop) CPU implementation",
                      extra={"foreach_setup": _foreach_setup(name, kwargs)})
             for name, kwargs in CASES]
