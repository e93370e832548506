"""Recurrent layers against PyTorch's CPU kernels: a training step (forward, MSE on a linear read-out
of the last state, backward) of LSTM/GRU/stacked bidirectional LSTM, and batch-1 LSTM and GRU
inference. Both sides start from the same weights (our ``state_dict`` is loaded into the PyTorch
twin). The kernel set is the runner's (``ROSENBLATT_KERNELS=numpy`` times the NumPy kernels)."""

from __future__ import annotations

import numpy as np
from common import Workload

import rosenblatt as rb

INPUT, HIDDEN, STEPS, BATCH = 32, 128, 50, 64


def _pair(kind: str, **kw):
    import torch

    layer = {"lstm": rb.nn.LSTM, "gru": rb.nn.GRU}[kind](INPUT, HIDDEN, **kw)
    twin = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[kind](INPUT, HIDDEN, **kw)
    twin.load_state_dict({k: torch.from_numpy(np.array(v.numpy())) for k, v in layer.state_dict().items()})
    return layer, twin


def _train_setup(kind: str, **kw):
    def setup():
        import torch

        layer, twin = _pair(kind, **kw)
        directions = 2 if kw.get("bidirectional") else 1
        head = rb.nn.Linear(HIDDEN * directions, 1)
        t_head = torch.nn.Linear(HIDDEN * directions, 1)
        t_head.load_state_dict({k: torch.from_numpy(np.array(v.numpy())) for k, v in head.state_dict().items()})
        rng = np.random.default_rng(0)
        x = rng.standard_normal((STEPS, BATCH, INPUT)).astype(np.float32)
        y = rng.standard_normal((BATCH, 1)).astype(np.float32)
        rx, ry, tx, ty = rb.tensor(x), rb.tensor(y), torch.tensor(x), torch.tensor(y)
        params = list(layer.parameters()) + list(head.parameters())
        t_params = list(twin.parameters()) + list(t_head.parameters())

        def rb_step():
            for p in params:
                p.grad = None
            out, _ = layer(rx)
            loss = ((head(out[-1]) - ry) ** 2).mean()
            loss.backward()

        def torch_step():
            for p in t_params:
                p.grad = None
            out, _ = twin(tx)
            loss = ((t_head(out[-1]) - ty) ** 2).mean()
            loss.backward()

        return rb_step, torch_step

    return setup


def _inference_setup(kind: str = "lstm"):
    import torch

    layer, twin = _pair(kind)
    layer.eval()
    twin.eval()
    x = np.random.default_rng(0).standard_normal((STEPS, 1, INPUT)).astype(np.float32)
    rx, tx = rb.tensor(x), torch.tensor(x)

    def rb_step():
        with rb.no_grad():
            return layer(rx)

    def torch_step():
        with torch.no_grad():
            return twin(tx)

    return rb_step, torch_step


WORKLOADS = [
    Workload(f"LSTM {INPUT}->{HIDDEN}, {STEPS} steps, batch {BATCH}: train step (last output -> Linear, MSE)",
             "rnn", _train_setup("lstm"), target=1.2),
    Workload(f"GRU {INPUT}->{HIDDEN}, {STEPS} steps, batch {BATCH}: train step (last output -> Linear, MSE)",
             "rnn", _train_setup("gru"), target=1.2),
    Workload(f"2-layer bidirectional LSTM {INPUT}->{HIDDEN}, {STEPS} steps, batch {BATCH}: train step",
             "rnn", _train_setup("lstm", num_layers=2, bidirectional=True)),
    Workload(f"LSTM {INPUT}->{HIDDEN}, {STEPS} steps, inference at batch 1", "rnn", _inference_setup, target=1.0),
    Workload(f"GRU {INPUT}->{HIDDEN}, {STEPS} steps, inference at batch 1", "rnn", lambda: _inference_setup("gru")),
]
