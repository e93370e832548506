"""Single convolution and pooling ops against PyTorch: the hot layers of a CIFAR ResNet
(3x3 convolution, 16 -> 16 channels, 32x32, batch 64) forward + backward, and max pooling."""

from __future__ import annotations

import numpy as np
from common import Workload

import rosenblatt as rb
from rosenblatt.nn import functional as F


def _conv_setup(stride: int = 1, groups: int = 1, channels: int = 16, size: int = 32, batch: int = 64):
    def setup():
        import torch

        rng = np.random.default_rng(0)
        x = rng.standard_normal((batch, channels, size, size)).astype(np.float32)
        w = (0.1 * rng.standard_normal((channels, channels // groups, 3, 3))).astype(np.float32)
        out = size // stride
        gy = rng.standard_normal((batch, channels, out, out)).astype(np.float32)
        rx, rw, rg = rb.tensor(x, requires_grad=True), rb.tensor(w, requires_grad=True), rb.tensor(gy)
        tx, tw, tg = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True), torch.tensor(gy)

        def rb_step():
            rx.grad = rw.grad = None
            F.conv2d(rx, rw, stride=stride, padding=1, groups=groups).backward(rg)

        def torch_step():
            tx.grad = tw.grad = None
            torch.nn.functional.conv2d(tx, tw, stride=stride, padding=1, groups=groups).backward(tg)

        return rb_step, torch_step

    return setup


def _conv_forward_setup():
    def setup():
        import torch

        rng = np.random.default_rng(0)
        x = rng.standard_normal((64, 16, 32, 32)).astype(np.float32)
        w = (0.1 * rng.standard_normal((16, 16, 3, 3))).astype(np.float32)
        rx, rw, tx, tw = rb.tensor(x), rb.tensor(w), torch.tensor(x), torch.tensor(w)

        def rb_step():
            with rb.no_grad():
                return F.conv2d(rx, rw, padding=1)

        def torch_step():
            with torch.no_grad():
                return torch.nn.functional.conv2d(tx, tw, padding=1)

        return rb_step, torch_step

    return setup


def _pool_setup(kernel: int, stride: int, padding: int = 0, mode: str = "max"):
    def setup():
        import torch

        x = np.random.default_rng(0).standard_normal((64, 16, 32, 32)).astype(np.float32)
        rx, tx = rb.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        rb_pool = F.max_pool2d if mode == "max" else F.avg_pool2d
        t_pool = torch.nn.functional.max_pool2d if mode == "max" else torch.nn.functional.avg_pool2d

        def rb_step():
            rx.grad = None
            rb_pool(rx, kernel, stride, padding).sum().backward()

        def torch_step():
            tx.grad = None
            t_pool(tx, kernel, stride, padding).sum().backward()

        return rb_step, torch_step

    return setup


WORKLOADS = [
    Workload("conv2d 3x3 16->16, 32x32, batch 64: forward + backward", "cnn", _conv_setup()),
    Workload("conv2d 3x3 16->16, 32x32, batch 64: forward only (no_grad)", "cnn", _conv_forward_setup()),
    Workload("conv2d 3x3 16->16 stride 2, 32x32, batch 64: forward + backward", "cnn", _conv_setup(stride=2)),
    Workload("depthwise conv2d 3x3, 16 channels, 32x32, batch 64: forward + backward", "cnn",
             _conv_setup(groups=16)),
    Workload("max_pool2d 2x2, 64x16x32x32: forward + backward", "cnn", _pool_setup(2, 2)),
    Workload("max_pool2d 3x3 stride 2 pad 1 (overlapping), 64x16x32x32: forward + backward", "cnn",
             _pool_setup(3, 2, 1)),
    Workload("avg_pool2d 2x2, 64x16x32x32: forward + backward", "cnn", _pool_setup(2, 2, mode="avg")),
]
