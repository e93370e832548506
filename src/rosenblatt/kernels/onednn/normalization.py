"""oneDNN batch-norm kernels: training-mode forward (batch statistics) and backward.

Arrays in, arrays out, like :mod:`rosenblatt.kernels.normalization`, on plain ``(N, C, *spatial)``
float32 arrays (2 to 5 dimensions). The forward pass returns the batch mean and the *biased*
batch variance with the output (the caller updates running statistics from them); the backward
pass takes them back with the forward's input and gives the input, scale and shift gradients
in one pass. A missing weight or bias is passed as ones or zeros.

Used where it pays (:func:`worthwhile`): on plain NCHW arrays batch norm is memory-bound, and
measured forward+backward, interleaved, against the NumPy kernel (fused BLAS reductions), oneDNN's
kernel wins on large feature maps and loses on small ones (1 and 2 threads alike, ms):

    ==================  =========  ======
    input               oneDNN     NumPy
    ==================  =========  ======
    64 x 16 x 32 x 32   18 - 21    32 - 36
    64 x 32 x 16 x 16   11 - 13    9 - 10
    64 x 64 x 8 x 8     6 - 6.4    3.5 - 5.5
    ==================  =========  ======

so it runs for feature maps of at least :data:`MIN_SPATIAL` positions. In a blocked layout it pays
everywhere: :mod:`rosenblatt.kernels.onednn.fused` runs it on a convolution's blocked output.

Four-dimensional inputs (``BatchNorm2d``) are therefore reordered into the channel-blocked layout
(``nChw16c``, else ``nChw8c``) where oneDNN has a JIT kernel for it, normalised there, and reordered
back; the forward pass keeps its blocked input for the backward pass. Forward + backward, ms, 2
threads, against the plain-layout kernel: 64x32x32x32 4.8 -> 3.3, 64x64x16x16 2.5 -> 1.5,
64x128x8x8 1.3 -> 0.74. This is the path of a model whose ``forward`` calls its layers one by one
(``F.relu(self.bn(self.conv(x)))``): a small VGG written that way took 107 ms per training step,
where the same layers in an ``nn.Sequential`` (one blocked chain) took 63 ms.

Evaluation mode (running statistics) stays a per-channel affine map of NumPy element-wise ops:
it is memory-bound either way, and those ops keep it differentiable.
"""

from __future__ import annotations

import numpy as np

from rosenblatt.kernels.onednn import library as L
from rosenblatt.kernels.workspace import workspace

C = L.C
ENABLED = True  # False: never used (the NumPy kernel runs)
BLOCKED = True  # False: 4-D inputs are normalised in their plain layout too
MIN_SPATIAL = 1024  # smallest feature map (H*W) where the plain-layout kernel beats the NumPy one
# Smallest 4-D input (elements) normalised in a blocked layout: below, the three primitive calls
# cost more than NumPy's passes.
MIN_BLOCKED_ELEMENTS = 1 << 15
_PLAIN = {2: C.ab, 3: C.abc, 4: C.abcd, 5: C.abcde}
_BLOCKED_TAGS = (78, 102)  # aBcd16b (nChw16c), aBcd8b (nChw8c)
_FLAGS = C.use_scale | C.use_shift


class _Plan:
    def __init__(self, shape: tuple[int, ...], eps: float, blocked: bool, channels_last: bool = False) -> None:
        self.plain = L.MemoryDesc.with_tag(shape, _PLAIN[len(shape)])
        self.blocked = False
        self.channels_last = False
        if channels_last:
            self._build(L.channels_last_md(shape), eps)
            if "jit" not in self.fwd.impl() or "jit" not in self.bwd.impl():
                raise L.DnnlError("batch_norm: no JIT kernel for channels-last arrays of this shape")
            self.channels_last = True
            return
        if blocked:
            for tag in _BLOCKED_TAGS:
                md = L.MemoryDesc.with_tag(shape, tag)
                try:
                    self._build(md, eps)
                except L.DnnlError:
                    continue
                if "jit" in self.fwd.impl() and "jit" in self.bwd.impl():
                    self.blocked = True
                    self.to_blocked = L.reorder(self.plain, md)
                    self.to_plain = L.reorder(md, self.plain)
                    break
        if not self.blocked:
            self._build(self.plain, eps)

    def _build(self, md: L.MemoryDesc, eps: float) -> None:
        self.md = md
        self.fwd = L.Primitive(L.create_pd("batch_normalization_forward", C.forward_training, md, md,
                                           eps, _FLAGS, None, op="batch_norm"), "batch_norm forward")
        self.bwd = L.Primitive(L.create_pd("batch_normalization_backward", C.backward, md, md, md,
                                           eps, _FLAGS, self.fwd.pd, None, op="batch_norm backward"),
                               "batch_norm backward")


def _blocked(shape: tuple[int, ...]) -> bool:
    size = 1
    for n in shape:
        size *= n
    return BLOCKED and len(shape) == 4 and size >= MIN_BLOCKED_ELEMENTS


def worthwhile(shape: tuple[int, ...]) -> bool:
    """True when the kernel is enabled and measured faster than the NumPy one for ``shape``."""
    spatial = 1
    for n in shape[2:]:
        spatial *= n
    return ENABLED and (spatial >= MIN_SPATIAL or _blocked(shape))


def _plan(shape: tuple[int, ...], eps: float, channels_last: bool = False) -> _Plan | None:
    if channels_last:  # a channels-last input (a standalone convolution's output) is normalised as it lies
        return L.cached_or_none(("batch_norm", shape, eps, "nhwc"), lambda: _Plan(shape, eps, False, True))
    blocked = _blocked(shape)
    return L.cached_or_none(("batch_norm", shape, eps, blocked), lambda: _Plan(shape, eps, blocked))


_param = L.float32_parameter


def _relaid(plan: _Plan, array: np.ndarray, tag: str) -> np.ndarray:
    """``array`` (plain) in the plan's blocked layout, in scratch memory named ``tag``."""
    out = workspace(tag, (plan.md.nbytes // 4,), np.float32)
    plan.to_blocked.execute([(C.ARG_FROM, L.contiguous(array)), (C.ARG_TO, out)])
    return out


def batch_norm_train_forward(x: np.ndarray, weight: np.ndarray | None, bias: np.ndarray | None,
                             eps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None] | None:
    """``(y, batch_mean, batch_var, kept)`` (biased variance) of training-mode batch norm, or ``None``.

    ``kept`` is what :func:`batch_norm_train_backward` takes back to skip work: the input in the
    blocked layout it was normalised in (``None`` when it ran on the plain layout).
    """
    if x.ndim not in _PLAIN or x.size == 0:
        return None
    x_cl = L.strided_channels_last(x)
    plan = _plan(tuple(x.shape), float(eps), x_cl is not None)
    if plan is None:
        return None
    c = x.shape[1]
    if plan.channels_last:  # normalised as it lies; the output channels-last too
        y = L.empty_channels_last(x.shape)
        mean, var = np.empty(c, np.float32), np.empty(c, np.float32)
        plan.fwd.execute([(C.ARG_SRC, x_cl), (C.ARG_DST, y.transpose(0, 2, 3, 1)),
                          (C.ARG_SCALE, _param(weight, c, 1.0)), (C.ARG_SHIFT, _param(bias, c, 0.0)),
                          (C.ARG_MEAN, mean), (C.ARG_VARIANCE, var)])
        return y, mean, var, None
    y = L.empty(x.shape)
    mean, var = np.empty(c, np.float32), np.empty(c, np.float32)
    kept = None
    src, dst = L.contiguous(x), y
    if plan.blocked:
        kept = src = L.empty(plan.md.nbytes // 4)  # lives until backward
        plan.to_blocked.execute([(C.ARG_FROM, L.contiguous(x)), (C.ARG_TO, src)])
        dst = workspace("batch_norm_y", src.shape, np.float32)
    plan.fwd.execute([(C.ARG_SRC, src), (C.ARG_DST, dst), (C.ARG_SCALE, _param(weight, c, 1.0)),
                      (C.ARG_SHIFT, _param(bias, c, 0.0)), (C.ARG_MEAN, mean), (C.ARG_VARIANCE, var)])
    if plan.blocked:
        plan.to_plain.execute([(C.ARG_FROM, dst), (C.ARG_TO, y)])
    return y, mean, var, kept


def batch_norm_train_backward(gy: np.ndarray, x: np.ndarray, weight: np.ndarray | None, mean: np.ndarray,
                              var: np.ndarray, eps: float, kept: np.ndarray | None = None
                              ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """``(gx, gweight, gbias)`` of training-mode batch norm, or ``None`` when declined (``kept``:
    from :func:`batch_norm_train_forward`)."""
    x_cl = L.strided_channels_last(x)
    plan = _plan(tuple(x.shape), float(eps), x_cl is not None)
    if plan is None:
        return None
    c = x.shape[1]
    if plan.channels_last:
        g = L.as_channels_last_memory(gy)  # a plain gradient: into the input's layout
        gx = L.empty_channels_last(x.shape)
        gw, gb = np.empty(c, np.float32), np.empty(c, np.float32)
        plan.bwd.execute([(C.ARG_SRC, x_cl), (C.ARG_MEAN, mean), (C.ARG_VARIANCE, var), (C.ARG_DIFF_DST, g),
                          (C.ARG_SCALE, _param(weight, c, 1.0)), (C.ARG_DIFF_SRC, gx.transpose(0, 2, 3, 1)),
                          (C.ARG_DIFF_SCALE, gw), (C.ARG_DIFF_SHIFT, gb)])
        return gx, gw, gb
    gx = L.empty(x.shape)
    gw, gb = np.empty(c, np.float32), np.empty(c, np.float32)
    src, g, gsrc = L.contiguous(x), L.contiguous(gy), gx
    if plan.blocked:
        src = kept if kept is not None and kept.nbytes == plan.md.nbytes else _relaid(plan, x, "batch_norm_x")
        g = _relaid(plan, gy, "batch_norm_gy")
        gsrc = workspace("batch_norm_gx", g.shape, np.float32)
    plan.bwd.execute([(C.ARG_SRC, src), (C.ARG_MEAN, mean), (C.ARG_VARIANCE, var),
                      (C.ARG_DIFF_DST, g), (C.ARG_SCALE, _param(weight, c, 1.0)),
                      (C.ARG_DIFF_SRC, gsrc), (C.ARG_DIFF_SCALE, gw), (C.ARG_DIFF_SHIFT, gb)])
    if plan.blocked:
        plan.to_plain.execute([(C.ARG_FROM, gsrc), (C.ARG_TO, gx)])
    return gx, gw, gb


__all__ = ["batch_norm_train_backward", "batch_norm_train_forward"]
