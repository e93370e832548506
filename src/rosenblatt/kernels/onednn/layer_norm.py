"""oneDNN layer-norm kernels: forward (with the row statistics) and backward.

Arrays in, arrays out, on contiguous float32 arrays normalised over their last axis (the
``(N, L, E)`` activations of a Transformer; ``layer_norm`` over one trailing axis). The forward pass
returns the per-row mean and *biased* variance with the output; the backward pass takes them back
with the forward's input and gives the input, scale and shift gradients in one pass. A missing
weight or bias is passed as ones or zeros.

Layer norm is memory-bound and its rows are short (a few hundred features): NumPy runs it as
several passes over the array, each reduction over a short last axis and each on one thread.
oneDNN's kernel makes one or two passes and splits the rows over the library's threads.
"""

from __future__ import annotations

import numpy as np

from rosenblatt.kernels.onednn import library as L

C = L.C
ENABLED = True  # False: never used (the NumPy kernel runs)
_FLAGS = C.use_scale | C.use_shift
_TAGS = {2: C.ab, 3: C.abc, 4: C.abcd, 5: C.abcde}
_STAT_TAGS = {2: C.a, 3: C.ab, 4: C.abc, 5: C.abcd}

_P, _F, _U, _I = L._P, L._F, L._U, L._I
L.bind("layer_normalization_forward_primitive_desc_create", [L._PP, _P, _I, _P, _P, _P, _F, _U, _P])
L.bind("layer_normalization_backward_primitive_desc_create", [L._PP, _P, _I, _P, _P, _P, _P, _F, _U, _P, _P])


class _Plan:
    def __init__(self, shape: tuple[int, ...], eps: float) -> None:
        self.md = L.MemoryDesc.with_tag(shape, _TAGS[len(shape)])
        self.stat = L.MemoryDesc.with_tag(shape[:-1], _STAT_TAGS[len(shape)])
        self.fwd = L.Primitive(L.create_pd("layer_normalization_forward", C.forward_training, self.md, self.md,
                                           self.stat, eps, _FLAGS, None, op="layer_norm"), "layer_norm forward")
        self.bwd = L.Primitive(L.create_pd("layer_normalization_backward", C.backward, self.md, self.md, self.md,
                                           self.stat, eps, _FLAGS, self.fwd.pd, None, op="layer_norm backward"),
                               "layer_norm backward")


def _plan(shape: tuple[int, ...], eps: float) -> _Plan | None:
    return L.cached_or_none(("layer_norm", shape, eps), lambda: _Plan(shape, eps))


_param = L.float32_parameter


def _zeros(c: int) -> np.ndarray:
    # The backward primitive takes the shift as an argument (it does not read it).
    return np.zeros(c, np.float32)


def layer_norm_forward(x: np.ndarray, weight: np.ndarray | None, bias: np.ndarray | None,
                       eps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """``(y, row_mean, row_var)`` of layer norm over the last axis of ``x``, or ``None`` when declined."""
    if not ENABLED or x.ndim not in _TAGS or x.size == 0:
        return None
    plan = _plan(tuple(x.shape), float(eps))
    if plan is None:
        return None
    c = x.shape[-1]
    y = np.empty(x.shape, np.float32)
    mean, var = np.empty(x.shape[:-1], np.float32), np.empty(x.shape[:-1], np.float32)
    plan.fwd.execute([(C.ARG_SRC, np.ascontiguousarray(x)), (C.ARG_DST, y), (C.ARG_SCALE, _param(weight, c, 1.0)),
                      (C.ARG_SHIFT, _param(bias, c, 0.0)), (C.ARG_MEAN, mean), (C.ARG_VARIANCE, var)])
    return y, mean, var


def layer_norm_backward(gy: np.ndarray, x: np.ndarray, weight: np.ndarray | None, mean: np.ndarray,
                        var: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """``(gx, gweight, gbias)`` of :func:`layer_norm_forward`, or ``None`` when declined."""
    plan = _plan(tuple(x.shape), float(eps))
    if plan is None:
        return None
    c = x.shape[-1]
    gx = np.empty(x.shape, np.float32)
    gw, gb = np.empty(c, np.float32), np.empty(c, np.float32)
    plan.bwd.execute([(C.ARG_SRC, np.ascontiguousarray(x)), (C.ARG_MEAN, mean), (C.ARG_VARIANCE, var),
                      (C.ARG_DIFF_DST, np.ascontiguousarray(gy, dtype=np.float32)),
                      (C.ARG_SCALE, _param(weight, c, 1.0)), (C.ARG_SHIFT, _zeros(c)),
                      (C.ARG_DIFF_SRC, gx), (C.ARG_DIFF_SCALE, gw), (C.ARG_DIFF_SHIFT, gb)])
    return gx, gw, gb


__all__ = ["layer_norm_backward", "layer_norm_forward"]
