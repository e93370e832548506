"""oneDNN element-wise kernels: ``tanh`` and its gradient from the output.

Arrays in, arrays out, on contiguous float32 arrays of any shape (seen as one flat vector). NumPy
computes ``tanh`` on one thread and its gradient ``gy * (1 - y²)`` in three passes over the
arrays; oneDNN's kernels make one pass each, split over the library's threads. For the
activations of a small CNN (64x6x28x28) that was 94 -> 68 us forward and 142 -> 51 us backward.
The callers (:mod:`rosenblatt.kernels.activation`) choose from which size on; below
:data:`MIN_ELEMENTS` a call is always declined.
"""

from __future__ import annotations

import numpy as np

from rosenblatt.kernels.onednn import library as L

C = L.C
ENABLED = True  # False: never used (the NumPy kernel runs)
MIN_ELEMENTS = 1 << 16


class _Plan:
    def __init__(self, size: int, alg: int) -> None:
        md = L.MemoryDesc.with_tag((size,), C.a)
        self.fwd = L.Primitive(L.create_pd("eltwise_forward", C.forward_training, alg, md, md, 0.0, 0.0, None,
                                           op="eltwise"), "eltwise forward")
        self.bwd = L.Primitive(L.create_pd("eltwise_backward", alg, md, md, md, 0.0, 0.0, self.fwd.pd, None,
                                           op="eltwise backward"), "eltwise backward")


def _plan(x: np.ndarray, alg: int) -> _Plan | None:
    if not ENABLED or x.size < MIN_ELEMENTS or x.dtype != np.float32 or not x.flags.c_contiguous:
        return None
    return L.cached_or_none(("eltwise", x.size, alg), lambda: _Plan(x.size, alg))


def tanh(x: np.ndarray) -> np.ndarray | None:
    """``tanh(x)``, or ``None`` when declined."""
    plan = _plan(x, C.eltwise_tanh_use_dst_for_bwd)
    if plan is None:
        return None
    y = np.empty(x.shape, np.float32)
    plan.fwd.execute([(C.ARG_SRC, x), (C.ARG_DST, y)])
    return y


def tanh_grad(gy: np.ndarray, y: np.ndarray) -> np.ndarray | None:
    """``gy * (1 - y²)`` from the output ``y`` of :func:`tanh`, or ``None`` when declined."""
    if gy.shape != y.shape or gy.dtype != np.float32 or not gy.flags.c_contiguous:
        return None
    plan = _plan(y, C.eltwise_tanh_use_dst_for_bwd)
    if plan is None:
        return None
    gx = np.empty(y.shape, np.float32)
    plan.bwd.execute([(C.ARG_DST, y), (C.ARG_DIFF_DST, gy), (C.ARG_DIFF_SRC, gx)])
    return gx
