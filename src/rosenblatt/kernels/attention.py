"""Scaled dot-product attention on arrays (Vaswani et al., 2017, "Attention Is All You Need").

    S = scale * Q K^T + bias,    P = softmax(S) over the keys,    O = (P * M) V

with ``M`` an optional dropout mask (already scaled by ``1 / keep``). The arrays are ``(..., L, E)``
queries, ``(..., S, E)`` keys, ``(..., S, Ev)`` values; the leading axes (batch, heads) are any views
that NumPy's ``matmul`` can hand to BLAS one matrix at a time (a head split of an ``(N, L, H*E)``
projection is such a view, so no copy is made to split heads).

Memory: the ``L x S`` matrix is the big array of attention. Forward writes the scores into one
(transposed, ``S x L``) buffer and turns it into ``P`` in place (shift by the row maximum, ``exp``, divide by the row sum);
only ``P`` (and the dropout mask, when there is one) is kept for backward. Backward needs one more
``L x S`` buffer, ``dP = dO V^T``, and turns it into ``dS`` in place with the softmax gradient

    dS = P * (dP - D),    D_i = sum_j P_ij dP_ij = dO_i . O_i

where the row sums ``D`` come from the ``(L, Ev)`` arrays ``dO`` and ``O`` rather than from another
``L x S`` product (the identity FlashAttention uses; it also holds with dropout, since ``O`` is
computed from the dropped ``P``). Rows whose every key is masked give zero output and zero
gradient, not NaN (PyTorch's ``scaled_dot_product_attention`` does the same).
"""

from __future__ import annotations

from typing import Any

from rosenblatt import kernels
from rosenblatt.backend import get_array_module


def causal_bias(xp: Any, length: int, source_length: int, dtype: Any) -> Any:
    """``(L, S)`` additive mask: 0 where key ``j <= i`` (top-left aligned), ``-inf`` above."""
    allowed = xp.tril(xp.ones((length, source_length), dtype=bool))
    return bool_mask_to_bias(xp, allowed, dtype)


def bool_mask_to_bias(xp: Any, allowed: Any, dtype: Any) -> Any:
    """A boolean "may attend" mask as an additive float mask (0 where True, ``-inf`` where False)."""
    bias = xp.zeros(allowed.shape, dtype=dtype)
    bias[~allowed] = -xp.inf
    return bias


def softmax_inplace(s: Any) -> Any:
    """Softmax over the last axis of ``s``, computed in ``s`` (numerically stable).

    Rows that are ``-inf`` throughout (every key masked) become zeros.
    """
    xp = get_array_module(s)
    row_max = s.max(axis=-1, keepdims=True)
    masked_rows = xp.isneginf(row_max)
    if masked_rows.any():
        row_max[masked_rows] = 0.0
    s -= row_max
    xp.exp(s, out=s)
    # Row sums as a matrix-vector product (BLAS): about 4x faster than a reduction over a short last
    # axis. (The row maximum is such a reduction too unless ``s`` is a transposed buffer, as
    # :func:`attention_forward` makes it.)
    row_sum = xp.matmul(s, xp.ones(s.shape[-1], dtype=s.dtype))[..., None]
    if masked_rows.any():
        row_sum[masked_rows] = 1.0
    s *= xp.reciprocal(row_sum, out=row_sum)
    return s


def attention_forward(q: Any, k: Any, v: Any, scale: float, bias: Any = None, dropout_mask: Any = None,
                      out: Any = None) -> tuple[Any, Any, Any]:
    """``O = (softmax(scale * q k^T + bias) * dropout_mask) v``.

    Returns ``(O, P, PM)``: the output, the attention probabilities ``P`` and the probabilities the
    values were weighted with (``P * dropout_mask``; ``P`` itself without dropout). ``out``, if
    given, is an array (any strides) that receives ``O``.
    """
    if kernels.use_onednn(q, k, v):
        from rosenblatt.kernels.onednn import attention as dnn

        result = dnn.attention_forward(q, k, v, scale, bias, dropout_mask, out)
        if result is not None:
            return result
    xp = get_array_module(q)
    # Scaling q (L x E) is cheaper than scaling the L x S scores. The scores are computed as
    # (K Q^T)^T: an S x L buffer seen as L x S, so that the softmax's reductions over the keys run
    # across rows of memory (vectorised) instead of along short rows (about 4x slower in NumPy).
    s = xp.swapaxes(xp.matmul(k, xp.swapaxes(q * q.dtype.type(scale), -1, -2)), -1, -2)
    if bias is not None:
        s += bias
    p = softmax_inplace(s)
    pm = p if dropout_mask is None else p * dropout_mask
    return (xp.matmul(pm, v) if out is None else xp.matmul(pm, v, out=out)), p, pm


def attention_backward(grad_out: Any, q: Any, k: Any, v: Any, out: Any, p: Any, pm: Any, scale: float,
                       dropout_mask: Any = None, grad_weights: Any = None,
                       needs: tuple[bool, bool, bool, bool] = (True, True, True, False),
                       outs: tuple[Any, Any, Any] = (None, None, None)) -> tuple[Any, Any, Any, Any]:
    """Gradients ``(dq, dk, dv, dbias)`` of :func:`attention_forward` (``None`` where ``needs`` is False).

    ``needs`` says which of ``q, k, v, bias`` want a gradient; ``dbias`` is the gradient of the
    scores ``dS`` (unreduced, ``(..., L, S)``). ``grad_weights``, if given, is an upstream gradient
    for ``PM`` (the attention weights returned to the caller). ``outs`` may offer arrays for
    ``dq, dk, dv``; a kernel may use them (the returned gradient is then that array) or not.
    """
    if kernels.use_onednn(grad_out, q, k, v):
        from rosenblatt.kernels.onednn import attention as dnn

        result = dnn.attention_backward(grad_out, q, k, v, p, pm, scale, dropout_mask, grad_weights, needs, outs)
        if result is not None:
            return result
    xp = get_array_module(grad_out)
    need_q, need_k, need_v, need_bias = needs
    dv = xp.matmul(xp.swapaxes(pm, -1, -2), grad_out) if need_v else None
    if not (need_q or need_k or need_bias):
        return None, None, dv, None
    # D_i = sum_j PM_ij (dO V^T)_ij = dO_i . O_i, taken before dP is overwritten.
    row_dot = xp.einsum("...i,...i->...", grad_out, out)[..., None]
    # (V dO^T)^T: dP in the same transposed layout as P, so that dP * P runs along memory.
    dp = xp.swapaxes(xp.matmul(v, xp.swapaxes(grad_out, -1, -2)), -1, -2)
    if grad_weights is not None:
        row_dot = row_dot + (grad_weights * pm).sum(axis=-1, keepdims=True)
        dp += grad_weights
    if dropout_mask is not None:
        dp *= dropout_mask
    dp -= row_dot
    dp *= p  # dS, in the dP buffer
    dtype_scale = q.dtype.type(scale)
    dq = xp.matmul(dp, k) * dtype_scale if need_q else None
    dk = xp.matmul(xp.swapaxes(dp, -1, -2), q) * dtype_scale if need_k else None
    return dq, dk, dv, (dp if need_bias else None)


__all__ = ["attention_backward", "attention_forward", "bool_mask_to_bias", "causal_bias", "softmax_inplace"]
