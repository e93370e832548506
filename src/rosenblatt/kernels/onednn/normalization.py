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

Evaluation mode (running statistics) stays a per-channel affine map of NumPy element-wise ops:
it is memory-bound either way, and those ops keep it differentiable.
"""

from __future__ import annotations

import numpy as np

from rosenblatt.kernels.onednn import library as L

C = L.C
ENABLED = True  # False: never used (the NumPy kernel runs)
MIN_SPATIAL = 1024  # smallest feature map (H*W) where the kernel beats the NumPy one
_PLAIN = {2: C.ab, 3: C.abc, 4: C.abcd, 5: C.abcde}
_FLAGS = C.use_scale | C.use_shift


class _Plan:
    def __init__(self, shape: tuple[int, ...], eps: float) -> None:
        self.md = L.MemoryDesc.with_tag(shape, _PLAIN[len(shape)])
        self.fwd = L.Primitive(L.create_pd("batch_normalization_forward", C.forward_training, self.md, self.md,
                                           eps, _FLAGS, None, op="batch_norm"), "batch_norm forward")
        self.bwd = L.Primitive(L.create_pd("batch_normalization_backward", C.backward, self.md, self.md, self.md,
                                           eps, _FLAGS, self.fwd.pd, None, op="batch_norm backward"),
                               "batch_norm backward")


def worthwhile(shape: tuple[int, ...]) -> bool:
    """True when the kernel is enabled and measured faster than the NumPy one for ``shape``."""
    spatial = 1
    for n in shape[2:]:
        spatial *= n
    return ENABLED and spatial >= MIN_SPATIAL


def _plan(shape: tuple[int, ...], eps: float) -> _Plan | None:
    return L.cached_or_none(("batch_norm", shape, eps), lambda: _Plan(shape, eps))


_param = L.float32_parameter


def batch_norm_train_forward(x: np.ndarray, weight: np.ndarray | None, bias: np.ndarray | None,
                             eps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """``(y, batch_mean, batch_var)`` (biased variance) of training-mode batch norm, or ``None``."""
    if x.ndim not in _PLAIN or x.size == 0:
        return None
    plan = _plan(tuple(x.shape), float(eps))
    if plan is None:
        return None
    c = x.shape[1]
    y = np.empty(x.shape, np.float32)
    mean, var = np.empty(c, np.float32), np.empty(c, np.float32)
    plan.fwd.execute([(C.ARG_SRC, np.ascontiguousarray(x)), (C.ARG_DST, y), (C.ARG_SCALE, _param(weight, c, 1.0)),
                      (C.ARG_SHIFT, _param(bias, c, 0.0)), (C.ARG_MEAN, mean), (C.ARG_VARIANCE, var)])
    return y, mean, var


def batch_norm_train_backward(gy: np.ndarray, x: np.ndarray, weight: np.ndarray | None, mean: np.ndarray,
                              var: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """``(gx, gweight, gbias)`` of training-mode batch norm, or ``None`` when declined."""
    plan = _plan(tuple(x.shape), float(eps))
    if plan is None:
        return None
    c = x.shape[1]
    gx = np.empty(x.shape, np.float32)
    gw, gb = np.empty(c, np.float32), np.empty(c, np.float32)
    plan.bwd.execute([(C.ARG_SRC, np.ascontiguousarray(x)), (C.ARG_MEAN, mean), (C.ARG_VARIANCE, var),
                      (C.ARG_DIFF_DST, np.ascontiguousarray(gy)), (C.ARG_SCALE, _param(weight, c, 1.0)),
                      (C.ARG_DIFF_SRC, gx), (C.ARG_DIFF_SCALE, gw), (C.ARG_DIFF_SHIFT, gb)])
    return gx, gw, gb


__all__ = ["batch_norm_train_backward", "batch_norm_train_forward"]
