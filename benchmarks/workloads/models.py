"""Whole training steps of the models the lecture's users build beyond classifiers, written once as
users write them and built from ``rb.nn`` and ``torch.nn`` (the same code: the APIs share names),
with the same weights (PyTorch loads rosenblatt's ``state_dict``):

- a small UNet (Ronneberger et al., 2015) segmenting 1x32x32 calorimeter-like images: two levels,
  batch norm, transposed-convolution upsampling and concatenated skips, per-pixel BCE-with-logits;
- a convolutional autoencoder on 1x28x28 images: strided convolutions down, transposed
  convolutions up, MSE, Adam;
- a 1-D CNN classifying time series of 512 samples: Conv1d, max pooling, global average pooling;
- an MLP for tabular detector features with LayerNorm and GELU, cross-entropy, AdamW.
"""

from __future__ import annotations

import numpy as np
from common import Workload

import rosenblatt as rb


def _unet(nn, cat):
    def block(c_in: int, c_out: int):
        return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(),
                             nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU())

    class UNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.down1, self.down2, self.bottom = block(1, 16), block(16, 32), block(32, 64)
            self.pool = nn.MaxPool2d(2)
            self.up2, self.dec2 = nn.ConvTranspose2d(64, 32, 2, stride=2), block(64, 32)
            self.up1, self.dec1 = nn.ConvTranspose2d(32, 16, 2, stride=2), block(32, 16)
            self.head = nn.Conv2d(16, 1, 1)

        def forward(self, x):
            s1 = self.down1(x)
            s2 = self.down2(self.pool(s1))
            h = self.bottom(self.pool(s2))
            h = self.dec2(cat([self.up2(h), s2], 1))
            h = self.dec1(cat([self.up1(h), s1], 1))
            return self.head(h)

    return UNet()


def _autoencoder(nn):
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
        nn.ConvTranspose2d(32, 16, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),
        nn.ConvTranspose2d(16, 1, 3, stride=2, padding=1, output_padding=1), nn.Sigmoid())


def _cnn1d(nn):
    return nn.Sequential(
        nn.Conv1d(1, 16, 7, padding=3), nn.ReLU(), nn.MaxPool1d(2),
        nn.Conv1d(16, 32, 5, padding=2), nn.ReLU(), nn.MaxPool1d(2),
        nn.Conv1d(32, 64, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool1d(1), nn.Flatten(),
        nn.Linear(64, 10))


def _tabular_mlp(nn):
    return nn.Sequential(
        nn.Linear(64, 256), nn.LayerNorm(256), nn.GELU(),
        nn.Linear(256, 256), nn.LayerNorm(256), nn.GELU(),
        nn.Linear(256, 2))


def _setup(kind: str):
    def setup():
        import torch

        rng = np.random.default_rng(0)
        if kind == "unet":
            model, t_model = _unet(rb.nn, rb.cat), _unet(torch.nn, torch.cat)
            x = rng.standard_normal((32, 1, 32, 32)).astype(np.float32)
            y = (rng.random((32, 1, 32, 32)) < 0.2).astype(np.float32)
            loss, t_loss = rb.nn.functional.binary_cross_entropy_with_logits, torch.nn.functional.binary_cross_entropy_with_logits
        elif kind == "autoencoder":
            model, t_model = _autoencoder(rb.nn), _autoencoder(torch.nn)
            x = rng.random((64, 1, 28, 28)).astype(np.float32)
            y = x
            loss, t_loss = rb.nn.functional.mse_loss, torch.nn.functional.mse_loss
        elif kind == "cnn1d":
            model, t_model = _cnn1d(rb.nn), _cnn1d(torch.nn)
            x = rng.standard_normal((64, 1, 512)).astype(np.float32)
            y = rng.integers(0, 10, 64)
            loss, t_loss = rb.nn.functional.cross_entropy, torch.nn.functional.cross_entropy
        else:
            model, t_model = _tabular_mlp(rb.nn), _tabular_mlp(torch.nn)
            x = rng.standard_normal((256, 64)).astype(np.float32)
            y = rng.integers(0, 2, 256)
            loss, t_loss = rb.nn.functional.cross_entropy, torch.nn.functional.cross_entropy
        t_model.load_state_dict({k: torch.tensor(v.numpy()) for k, v in model.state_dict().items()})
        model.train()
        t_model.train()
        if kind == "autoencoder":
            opt, t_opt = rb.optim.Adam(model.parameters(), lr=1e-3), torch.optim.Adam(t_model.parameters(), lr=1e-3)
        elif kind == "mlp":
            opt = rb.optim.AdamW(model.parameters(), lr=1e-3)
            t_opt = torch.optim.AdamW(t_model.parameters(), lr=1e-3)
        else:
            opt = rb.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
            t_opt = torch.optim.SGD(t_model.parameters(), lr=0.01, momentum=0.9)
        rx, ry, tx, ty = rb.tensor(x), rb.tensor(y), torch.tensor(x), torch.tensor(y)

        def rb_step():
            opt.zero_grad()
            loss(model(rx), ry).backward()
            opt.step()

        def torch_step():
            t_opt.zero_grad()
            t_loss(t_model(tx), ty).backward()
            t_opt.step()

        return rb_step, torch_step

    return setup


WORKLOADS = [
    Workload("UNet (2 levels, 16-64 channels) train step (SGD momentum, BCE-with-logits), batch 32, 1x32x32",
             "models", _setup("unet")),
    Workload("convolutional autoencoder train step (Adam, MSE), batch 64, 1x28x28", "models", _setup("autoencoder")),
    Workload("1-D CNN on time series train step (SGD momentum), batch 64, 1x512", "models", _setup("cnn1d")),
    Workload("MLP 64-256-256-2 with LayerNorm and GELU train step (AdamW), batch 256", "models", _setup("mlp")),
]
