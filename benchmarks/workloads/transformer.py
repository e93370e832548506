"""A Transformer encoder against PyTorch's: 4 post-norm layers, d_model 128, 4 heads, feed-forward
512, 64 tokens, batch 32 (batch first, dropout 0). A training step (forward, MSE on the mean token,
backward) and inference; both sides start from the same weights (our ``state_dict`` is loaded into
the PyTorch twin)."""

from __future__ import annotations

import numpy as np
from common import Workload

import rosenblatt as rb

D_MODEL, HEADS, FEEDFORWARD, LAYERS, TOKENS, BATCH = 128, 4, 512, 4, 64, 32


def _pair():
    import torch

    kwargs = dict(dim_feedforward=FEEDFORWARD, dropout=0.0, batch_first=True)
    model = rb.nn.TransformerEncoder(rb.nn.TransformerEncoderLayer(D_MODEL, HEADS, **kwargs), LAYERS)
    twin = torch.nn.TransformerEncoder(torch.nn.TransformerEncoderLayer(D_MODEL, HEADS, **kwargs), LAYERS,
                                       enable_nested_tensor=False)
    twin.load_state_dict({k: torch.from_numpy(np.array(v.numpy())) for k, v in model.state_dict().items()})
    rng = np.random.default_rng(0)
    x = rng.standard_normal((BATCH, TOKENS, D_MODEL)).astype(np.float32)
    return model, twin, x


def _train_setup():
    import torch

    model, twin, x = _pair()
    y = np.random.default_rng(1).standard_normal((BATCH, D_MODEL)).astype(np.float32)
    rx, ry, tx, ty = rb.tensor(x), rb.tensor(y), torch.tensor(x), torch.tensor(y)
    params, t_params = list(model.parameters()), list(twin.parameters())

    def rb_step():
        for p in params:
            p.grad = None
        loss = ((model(rx).mean(1) - ry) ** 2).mean()
        loss.backward()

    def torch_step():
        for p in t_params:
            p.grad = None
        loss = ((twin(tx).mean(1) - ty) ** 2).mean()
        loss.backward()

    return rb_step, torch_step


def _inference_setup():
    import torch

    model, twin, x = _pair()
    model.eval()
    twin.eval()
    rx, tx = rb.tensor(x), torch.tensor(x)

    def rb_step():
        with rb.no_grad():
            return model(rx)

    def torch_step():
        with torch.no_grad():
            return twin(tx)

    return rb_step, torch_step


_SHAPE = f"{LAYERS}-layer Transformer encoder d{D_MODEL} h{HEADS} ff{FEEDFORWARD}, {TOKENS} tokens, batch {BATCH}"
WORKLOADS = [
    Workload(f"{_SHAPE}: train step (mean token -> MSE)", "attn", _train_setup, target=1.0),
    Workload(f"{_SHAPE}: inference (no_grad)", "attn", _inference_setup, target=1.0),
]
