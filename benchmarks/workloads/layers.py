"""The other layers users build models from, one op at a time, forward + backward, against PyTorch:
transposed and 1-D convolutions (UNets, autoencoders, time series), resizing and concatenation
(UNet decoders), softmax and attention, normalisation, activations and reconstruction losses.

Each step runs the op on tensors that require gradients and backpropagates a fixed random upstream
gradient of the output's shape (a loss's own scalar gradient for the losses), so both frameworks do
the same work: no ``.sum()`` whose broadcast gradient one side might treat specially.
"""

from __future__ import annotations

import numpy as np
from common import Workload

import rosenblatt as rb
from rosenblatt.nn import functional as F


def _op_setup(shapes: list[tuple[int, ...]], rb_op, torch_op, grad_inputs: int | None = None, scale: float = 1.0):
    """Inputs of ``shapes`` (the first ``grad_inputs`` require gradients; all by default)."""

    def setup():
        import torch

        rng = np.random.default_rng(0)
        arrays = [(scale * rng.standard_normal(s)).astype(np.float32) for s in shapes]
        n = len(arrays) if grad_inputs is None else grad_inputs
        rt = [rb.tensor(a, requires_grad=i < n) for i, a in enumerate(arrays)]
        tt = [torch.tensor(a, requires_grad=i < n) for i, a in enumerate(arrays)]
        out_shape = tuple(torch_op(*tt).shape)
        g = rng.standard_normal(out_shape).astype(np.float32) if out_shape else np.float32(1.0)
        rg, tg = rb.tensor(g), torch.tensor(g)

        def rb_step():
            for t in rt:
                t.grad = None
            rb_op(*rt).backward(rg)

        def torch_step():
            for t in tt:
                t.grad = None
            torch_op(*tt).backward(tg)

        return rb_step, torch_step

    return setup


def _torch_f():
    import torch

    return torch.nn.functional


def _w(name: str, shapes, rb_op, torch_op, **kw) -> Workload:
    return Workload(name + ": forward + backward", "layers", _op_setup(shapes, rb_op, torch_op, **kw))


WORKLOADS = [
    _w("conv_transpose2d 32->16, 2x2 stride 2, 64x32x16x16", [(64, 32, 16, 16), (32, 16, 2, 2), (16,)],
       lambda x, w, b: F.conv_transpose2d(x, w, b, stride=2),
       lambda x, w, b: _torch_f().conv_transpose2d(x, w, b, stride=2)),
    _w("conv_transpose2d 64->32, 4x4 stride 2 pad 1, 64x64x8x8", [(64, 64, 8, 8), (64, 32, 4, 4), (32,)],
       lambda x, w, b: F.conv_transpose2d(x, w, b, stride=2, padding=1),
       lambda x, w, b: _torch_f().conv_transpose2d(x, w, b, stride=2, padding=1)),
    _w("conv1d 16->32, kernel 5 pad 2, 64x16x256", [(64, 16, 256), (32, 16, 5), (32,)],
       lambda x, w, b: F.conv1d(x, w, b, padding=2), lambda x, w, b: _torch_f().conv1d(x, w, b, padding=2)),
    _w("max_pool1d 2, 64x32x256", [(64, 32, 256)], lambda x: F.max_pool1d(x, 2), lambda x: _torch_f().max_pool1d(x, 2)),
    _w("adaptive_avg_pool2d to 1x1, 64x64x8x8", [(64, 64, 8, 8)], lambda x: F.adaptive_avg_pool2d(x, 1),
       lambda x: _torch_f().adaptive_avg_pool2d(x, 1)),
    _w("interpolate nearest x2, 64x16x16x16", [(64, 16, 16, 16)], lambda x: F.interpolate(x, scale_factor=2),
       lambda x: _torch_f().interpolate(x, scale_factor=2)),
    _w("interpolate bilinear x2, 64x16x16x16", [(64, 16, 16, 16)],
       lambda x: F.interpolate(x, scale_factor=2, mode="bilinear"),
       lambda x: _torch_f().interpolate(x, scale_factor=2, mode="bilinear")),
    _w("cat of two 64x16x32x32 along channels", [(64, 16, 32, 32), (64, 16, 32, 32)],
       lambda a, b: rb.cat([a, b], 1), lambda a, b: __import__("torch").cat([a, b], 1)),
    _w("softmax over the last axis, 32x4x64x64", [(32, 4, 64, 64)], lambda x: F.softmax(x, dim=-1),
       lambda x: _torch_f().softmax(x, dim=-1)),
    _w("scaled_dot_product_attention, 32x4 heads x 64 tokens x 32", [(32, 4, 64, 32)] * 3,
       lambda q, k, v: F.scaled_dot_product_attention(q, k, v),
       lambda q, k, v: _torch_f().scaled_dot_product_attention(q, k, v)),
    _w("layer_norm over 128 features, 32x64x128", [(32, 64, 128), (128,), (128,)],
       lambda x, g, b: F.layer_norm(x, (128,), g, b), lambda x, g, b: _torch_f().layer_norm(x, (128,), g, b)),
    _w("batch_norm (training) of 128x512 features", [(128, 512), (512,), (512,)],
       lambda x, g, b: F.batch_norm(x, None, None, g, b, training=True),
       lambda x, g, b: _torch_f().batch_norm(x, None, None, g, b, training=True)),
    _w("gelu, 32x64x512", [(32, 64, 512)], F.gelu, lambda x: _torch_f().gelu(x)),
    _w("gelu, 128x256 (an MLP layer)", [(128, 256)], F.gelu, lambda x: _torch_f().gelu(x)),
    _w("silu, 32x64x512", [(32, 64, 512)], F.silu, lambda x: _torch_f().silu(x)),
    Workload("mse_loss (mean), 128x784: forward + backward", "layers", lambda: _loss_setup("mse")),
    Workload("binary_cross_entropy_with_logits (mean), 128x784: forward + backward", "layers",
             lambda: _loss_setup("bce")),
    Workload("cross_entropy (mean), 128x10 logits, class indices: forward + backward", "layers",
             lambda: _loss_setup("ce")),
]


def _loss_setup(kind: str):
    """A loss of predictions that require gradients against fixed targets: reconstructions against
    images (MSE), logits against probabilities (BCE), 10-class logits against class indices."""
    import torch

    rng = np.random.default_rng(0)
    shape = (128, 10) if kind == "ce" else (128, 784)
    x = rng.standard_normal(shape).astype(np.float32)
    if kind == "ce":
        t = rng.integers(0, 10, 128)
    else:
        t = rng.random(shape).astype(np.float32)
    rx, tx = rb.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    rt, tt = rb.tensor(t), torch.tensor(t)
    rb_loss = {"mse": F.mse_loss, "bce": F.binary_cross_entropy_with_logits, "ce": F.cross_entropy}[kind]
    tf = torch.nn.functional
    torch_loss = {"mse": tf.mse_loss, "bce": tf.binary_cross_entropy_with_logits, "ce": tf.cross_entropy}[kind]

    def rb_step():
        rx.grad = None
        rb_loss(rx, rt).backward()

    def torch_step():
        tx.grad = None
        torch_loss(tx, tt).backward()

    return rb_step, torch_step
