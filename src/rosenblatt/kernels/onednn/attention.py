"""oneDNN kernels for scaled dot-product attention: batched matrix products and the softmax.

The same algorithm as the NumPy kernel (:mod:`rosenblatt.kernels.attention`; its docstring derives
the gradients), with the work split over oneDNN's threads:

- the five batched products (``Q K^T``, ``P V`` forward; ``dO V^T``, ``dS K``, ``dS^T Q``,
  ``PM^T dO`` backward) are oneDNN *matmul* primitives over every (batch, head) pair at once. Their
  operands are described with their own strides, so the head-split views of an ``(N, L, H*E)``
  projection and the transposes are read in place, and the outputs can be written straight into
  the merged ``(N, L, H*E)`` layout (the ``out`` arguments), saving the copy that merges heads;
- ``scale`` rides on the score product as an eltwise post-op;
- the softmax is oneDNN's softmax primitive, in place, and its backward computes
  ``dS = P * (dP - sum_j P_ij dP_ij)`` from ``P`` and ``dP`` in one threaded pass.

Declined (``None``; the NumPy kernel runs): other dtypes, operands whose leading (batch, head)
axes differ, and masks that block every key of some query (the NumPy kernel gives such rows a
zero output, as PyTorch does; oneDNN's softmax would give NaN).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rosenblatt.kernels.onednn import library as L
from rosenblatt.kernels.onednn import matmul
from rosenblatt.kernels.onednn import softmax as softmax_kernels

C = L.C
ENABLED = True  # False: never used (the NumPy kernel runs)


def _matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray, scale: float = 1.0) -> bool:
    return matmul.matmul(a, b, out, scale)


def _softmax(shape: tuple[int, ...]) -> softmax_kernels.Plan | None:
    return softmax_kernels.plan(shape, len(shape) - 1)


def _swap(a: np.ndarray) -> np.ndarray:
    return np.swapaxes(a, -1, -2)


def _usable(*arrays: Any) -> bool:
    if not ENABLED:
        return False
    batch = arrays[0].shape[:-2]
    return all(a.ndim >= 3 and a.shape[:-2] == batch and a.size for a in arrays)


def _blocks_a_whole_row(bias: Any) -> bool:
    blocked = np.isneginf(bias)
    return bool(blocked.any() and blocked.all(axis=-1).any())


def attention_forward(q: np.ndarray, k: np.ndarray, v: np.ndarray, scale: float, bias: Any = None,
                      dropout_mask: Any = None, out: Any = None) -> tuple[Any, Any, Any] | None:
    """``(O, P, PM)`` as :func:`rosenblatt.kernels.attention.attention_forward`, or ``None`` when declined."""
    if not _usable(q, k, v) or (bias is not None and _blocks_a_whole_row(bias)):
        return None
    shape = q.shape[:-1] + (k.shape[-2],)
    softmax = _softmax(shape)
    if softmax is None:
        return None
    s = np.empty(shape, np.float32)
    if not _matmul(q, _swap(k), s, float(scale)):
        return None
    if bias is not None:
        s += bias
    softmax.fwd.execute([(C.ARG_SRC, s), (C.ARG_DST, s)])
    pm = s if dropout_mask is None else s * dropout_mask
    if out is None:
        out = np.empty(q.shape[:-1] + (v.shape[-1],), np.float32)
    if not _matmul(pm, v, out):
        np.matmul(pm, v, out=out)
    return out, s, pm


def attention_backward(grad_out: np.ndarray, q: np.ndarray, k: np.ndarray, v: np.ndarray, p: np.ndarray,
                       pm: np.ndarray, scale: float, dropout_mask: Any = None, grad_weights: Any = None,
                       needs: tuple[bool, bool, bool, bool] = (True, True, True, False),
                       outs: tuple[Any, Any, Any] = (None, None, None)) -> tuple[Any, Any, Any, Any] | None:
    """``(dq, dk, dv, dbias)`` as :func:`rosenblatt.kernels.attention.attention_backward`, or ``None``.

    ``outs`` may give arrays (views of the merged layout) to write ``dq, dk, dv`` into.
    """
    if not _usable(grad_out, q, k, v, p) or grad_out.dtype != np.float32:
        return None
    softmax = _softmax(p.shape)
    if softmax is None:
        return None
    need_q, need_k, need_v, need_bias = needs
    dq_out, dk_out, dv_out = outs
    dv = None
    if need_v:
        dv = dv_out if dv_out is not None else np.empty(v.shape, np.float32)
        if not _matmul(_swap(pm), grad_out, dv):
            return None
    if not (need_q or need_k or need_bias):
        return None, None, dv, None
    dp = np.empty(p.shape, np.float32)
    if not _matmul(grad_out, _swap(v), dp):
        return None
    if grad_weights is not None:
        dp += grad_weights
    if dropout_mask is not None:
        dp *= dropout_mask
    ds = np.empty(p.shape, np.float32)
    softmax.bwd.execute([(C.ARG_DST, p), (C.ARG_DIFF_DST, dp), (C.ARG_DIFF_SRC, ds)])
    dq = dk = None
    if need_q:
        dq = dq_out if dq_out is not None else np.empty(q.shape, np.float32)
        if not _matmul(ds, k, dq, float(scale)):
            np.multiply(np.matmul(ds, k), np.float32(scale), out=dq)
    if need_k:
        dk = dk_out if dk_out is not None else np.empty(k.shape, np.float32)
        if not _matmul(_swap(ds), q, dk, float(scale)):
            np.multiply(np.matmul(_swap(ds), q), np.float32(scale), out=dk)
    return dq, dk, dv, (ds if need_bias else None)


__all__ = ["attention_backward", "attention_forward"]
