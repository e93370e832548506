"""Attention: ``scaled_dot_product_attention`` and the multi-head attention of ``nn.MultiheadAttention``.

Both are one fused ``Function`` around the array kernels of :mod:`rosenblatt.kernels.attention`:
the ``L x S`` attention matrix is built once in one buffer, turned into probabilities in place, and
kept once for backward (composed from ``matmul``, ``softmax`` and ``*``, the graph would keep the
scores, the probabilities and the dropped probabilities, and backward would build two more).

The multi-head form takes the *projected* ``(N, L, H*E)`` (or ``(L, N, H*E)``) arrays and splits the
heads as strided views, so no transpose is copied on the way in; the packed ``(.., 3*H*E)`` output
of a self-attention projection is split into ``q``, ``k`` and ``v`` the same way, and its gradient
is written into one array.

Reading order: argument checks and masks, the Function, the public functions, then the composite
versions built from differentiable primitives, which are the test oracles and give the second
derivatives under ``create_graph=True``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from rosenblatt import random as _random
from rosenblatt.backend import get_array_module
from rosenblatt.core import Function, Tensor, constant
from rosenblatt.kernels import attention as kernel
from rosenblatt.nn.functional._fused import composite_backward
from rosenblatt.ops import matmul, mean, reshape, softmax, swapaxes, transpose

# -- masks -------------------------------------------------------------------------------------


def _as_bias(mask: Any, dtype: Any, allowed_when: bool, name: str) -> Any:
    """A boolean or float mask as an additive float mask (an array, or a Tensor that needs grad).

    ``allowed_when`` is the boolean value that means "may attend": True for
    ``scaled_dot_product_attention``, False for ``MultiheadAttention``'s masks (PyTorch's two
    conventions).
    """
    if mask is None:
        return None
    if isinstance(mask, Tensor) and mask.requires_grad:
        return mask if mask.dtype == dtype else mask.astype(dtype)
    array = mask.data if isinstance(mask, Tensor) else np.asarray(mask)
    xp = get_array_module(array)
    if array.dtype == np.bool_:
        return kernel.bool_mask_to_bias(xp, array if allowed_when else ~array, dtype)
    if array.dtype.kind != "f":
        raise TypeError(f"{name}: expected a boolean or floating mask, got dtype {array.dtype}")
    return array.astype(dtype, copy=False)


def _add_bias(a: Any, b: Any) -> Any:
    if a is None:
        return b
    if b is None:
        return a
    return a + b


def _dropout_mask(shape: tuple[int, ...], dropout_p: float, dtype: Any, like: Any) -> Any:
    keep = 1.0 - dropout_p
    mask = _random.bernoulli_mask(keep, shape, dtype)
    if keep > 0:
        mask *= dtype.type(1.0 / keep)
    xp = get_array_module(like)
    return mask if xp.__name__ == "numpy" else xp.asarray(mask)


# -- head layout -------------------------------------------------------------------------------
# A projected array is (N, L, H*E) with batch_first, (L, N, H*E) otherwise. The kernels want
# (N, H, L, E): a strided view of either, which NumPy's matmul hands to BLAS without copying.


class _Heads:
    """How the projected arrays map to ``(N, H, L, E)`` views; ``None`` heads: already in that form."""

    def __init__(self, num_heads: int | None, batch_first: bool, packed: bool) -> None:
        self.num_heads, self.batch_first, self.packed = num_heads, batch_first, packed

    def split(self, x: Any) -> Any:
        if self.num_heads is None:
            return x
        a, b, width = x.shape
        x = x.reshape(a, b, self.num_heads, width // self.num_heads)
        return x.transpose(0, 2, 1, 3) if self.batch_first else x.transpose(1, 2, 0, 3)

    def empty(self, like: Any, features: int) -> Any:
        """A new array in the projected layout for ``like``'s (N, H, L) and ``features`` per head."""
        xp = get_array_module(like)
        n, h, length = like.shape[:3]
        shape = (n, length, h * features) if self.batch_first else (length, n, h * features)
        return xp.empty(shape, dtype=like.dtype)

    def merge(self, x: Any, out: Any = None) -> Any:
        """``(N, H, L, E)`` back to the projected layout (a copy, into ``out`` if given)."""
        if self.num_heads is None:
            return x
        xp = get_array_module(x)
        n, h, length, e = x.shape
        if out is None:
            shape = (n, length, h * e) if self.batch_first else (length, n, h * e)
            out = xp.empty(shape, dtype=x.dtype)
        xp.copyto(self.split(out), x)
        return out

    def unpack(self, q: Any, k: Any, v: Any) -> tuple[Any, Any, Any]:
        if not self.packed:
            return self.split(q), self.split(k), self.split(v)
        width = q.shape[-1] // 3
        return (self.split(q[..., :width]), self.split(q[..., width:2 * width]),
                self.split(q[..., 2 * width:]))


class AttentionFn(Function):
    """Scaled dot-product attention, single- or multi-head, with an optional weights output.

    Inputs: ``q, k, v`` (``k = v = None`` when ``q`` is a packed ``q|k|v`` projection), an additive
    ``bias`` (array, or a Tensor when its gradient is wanted), a scaled dropout mask, then the
    settings.
    """

    @staticmethod
    def forward(ctx, q, k, v, bias, dropout_mask, scale, heads, need_weights):
        qh, kh, vh = heads.unpack(q, k, v)
        if heads.num_heads is None:
            merged = out_view = None
        else:  # the kernel writes the heads' outputs straight into the merged layout
            merged = heads.empty(qh, vh.shape[-1])
            out_view = heads.split(merged)
        out, p, pm = kernel.attention_forward(qh, kh, vh, scale, bias, dropout_mask, out=out_view)
        ctx.p, ctx.pm, ctx.out = p, pm, out
        merged = out if merged is None else merged
        return (merged, pm) if need_weights else merged

    @staticmethod
    def backward(ctx, gy, g_weights=None):
        # Differentiable (create_graph=True): the gradient of the composite version.
        q, k, v, bias, dropout_mask, scale, heads, need_weights = ctx.inputs

        def composite(q_, k_, v_, bias_):
            return _attention_composite(q_, k_, v_, bias_, dropout_mask, scale, heads, need_weights)

        grads = composite_backward(composite, (q, k, v, bias), ctx.needs_input_grad[:4],
                                   [gy] if not need_weights else [gy, g_weights])
        return grads + (None,) * 4

    @staticmethod
    def backward_arrays(ctx, gy, g_weights=None):
        q, k, v, bias, dropout_mask, scale, heads, need_weights = ctx.inputs
        need_q, need_k, need_v, need_bias = ctx.needs_input_grad[:4]
        qh, kh, vh = heads.unpack(q.data, None if k is None else k.data, None if v is None else v.data)
        if heads.packed:
            need_q = need_k = need_v = need_q
        # Merged-layout buffers the kernel may write the gradients into (no copy to merge heads).
        if heads.num_heads is None:
            targets = (None, None, None)
        elif heads.packed:
            g = get_array_module(gy).empty(q.shape, dtype=q.dtype)
            width = q.shape[-1] // 3
            targets = (g[..., :width], g[..., width:2 * width], g[..., 2 * width:])
        else:
            targets = tuple(heads.empty(h, h.shape[-1]) if need else None
                            for h, need in ((qh, need_q), (kh, need_k), (vh, need_v)))
        views = tuple(None if t is None else heads.split(t) for t in targets)
        grads = kernel.attention_backward(
            heads.split(gy), qh, kh, vh, ctx.out, ctx.p, ctx.pm, scale, dropout_mask, g_weights,
            needs=(need_q, need_k, need_v, need_bias), outs=views)
        merged = []
        for grad, target, view in zip(grads[:3], targets, views):
            if grad is None or target is None:
                merged.append(grad)
            else:
                merged.append(target if grad is view else heads.merge(grad, target))
        ds = grads[3]
        if heads.packed:
            return g, None, None, ds, None, None, None, None
        return (*merged, ds, None, None, None, None)


# -- public functions --------------------------------------------------------------------------


def _check_tensor(name: str, what: str, x: Any) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: expected {what} to be a Tensor, got {type(x).__name__}")
    if x.dtype.kind != "f":
        raise TypeError(f"{name}: expected a floating {what}, got dtype {x.dtype}")
    return x


def _check_dropout(name: str, p: float) -> float:
    p = float(p)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{name}: dropout probability must be in [0, 1], got {p}")
    return p


def scaled_dot_product_attention(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    attn_mask: Tensor | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
) -> Tensor:
    """``softmax(query key^T * scale + mask) value``, with dropout on the attention probabilities.

    ``attn_mask`` is either boolean (True where a query *may* attend to a key, PyTorch's
    convention here) or floating (added to the scores; ``-inf`` blocks). ``is_causal`` blocks every
    key after the query (top-left aligned) and excludes ``attn_mask``. ``scale`` defaults to
    ``1 / sqrt(E)``. As in PyTorch, dropout is applied whenever ``dropout_p > 0`` (pass 0 in
    evaluation). A query whose keys are all masked gets a zero output.

    Shape:
        query: ``(*, L, E)``; key: ``(*, S, E)``; value: ``(*, S, Ev)``; attn_mask: broadcastable to
        ``(*, L, S)``; output: ``(*, L, Ev)``. The leading axes broadcast.
    """
    name = "scaled_dot_product_attention"
    for what, x in (("query", query), ("key", key), ("value", value)):
        _check_tensor(name, what, x)
        if x.ndim < 2:
            raise ValueError(f"{name}: expected {what} of shape (*, length, features), got shape {x.shape}")
    if query.shape[-1] != key.shape[-1]:
        raise ValueError(f"{name}: query and key must have the same last dimension, got shapes "
                         f"{query.shape} and {key.shape}")
    if key.shape[-2] != value.shape[-2]:
        raise ValueError(f"{name}: key and value must have the same length (dimension -2), got shapes "
                         f"{key.shape} and {value.shape}")
    if not query.dtype == key.dtype == value.dtype:
        raise TypeError(f"{name}: query, key and value must share a dtype, got {query.dtype}, {key.dtype}, "
                        f"{value.dtype}")
    dropout_p = _check_dropout(name, dropout_p)
    if is_causal and attn_mask is not None:
        raise ValueError(f"{name}: give either attn_mask or is_causal=True, not both")
    length, source_length = query.shape[-2], key.shape[-2]
    bias = _as_bias(attn_mask, query.dtype, True, name)
    if bias is not None:
        try:
            np.broadcast_shapes(bias.shape, query.shape[:-2] + (length, source_length))
        except ValueError:
            raise ValueError(f"{name}: attn_mask of shape {tuple(bias.shape)} does not broadcast to the "
                             f"scores' shape {query.shape[:-2] + (length, source_length)}") from None
    if is_causal:
        bias = kernel.causal_bias(get_array_module(query.data), length, source_length, query.dtype)
    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else float(scale)
    dropout_mask = None
    if dropout_p > 0:
        batch = np.broadcast_shapes(query.shape[:-2], key.shape[:-2])
        dropout_mask = _dropout_mask(batch + (length, source_length), dropout_p, query.dtype, query.data)
    return AttentionFn.apply(query, key, value, bias, dropout_mask, scale, _Heads(None, True, False), False)


def multi_head_attention(
    query: Tensor,
    key: Tensor | None,
    value: Tensor | None,
    num_heads: int,
    key_padding_mask: Tensor | None = None,
    attn_mask: Tensor | None = None,
    need_weights: bool = False,
    average_attn_weights: bool = True,
    dropout_p: float = 0.0,
    batch_first: bool = False,
    name: str = "multi_head_attention",
) -> tuple[Tensor, Tensor | None]:
    """The attention step of ``nn.MultiheadAttention`` on already projected, batched inputs.

    ``key`` and ``value`` of None mean that ``query`` is the packed ``q|k|v`` projection. Masks follow
    ``MultiheadAttention``: boolean True *blocks* a position, floats are added to the scores.
    Returns the merged heads (before the output projection) and the attention weights (or None).

    Shape:
        query: ``(N, L, 3*D)`` packed or ``(N, L, D)``; key, value: ``(N, S, D)`` (``(L, N, .)`` and
        ``(S, N, D)`` without ``batch_first``); key_padding_mask: ``(N, S)``; attn_mask: ``(L, S)`` or
        ``(N*H, L, S)``; output: ``(N, L, D)`` (``(L, N, D)``); weights: ``(N, L, S)`` averaged over the
        heads, else ``(N, H, L, S)``.
    """
    packed = key is None
    width = query.shape[-1] // 3 if packed else query.shape[-1]
    n = query.shape[0] if batch_first else query.shape[1]
    length = query.shape[1] if batch_first else query.shape[0]
    source = query if packed else key
    source_length = source.shape[1] if batch_first else source.shape[0]
    bias = attention_bias(key_padding_mask, attn_mask, n, num_heads, length, source_length, query.dtype, name)
    dropout_mask = None
    if dropout_p > 0:
        dropout_mask = _dropout_mask((n, num_heads, length, source_length), dropout_p, query.dtype, query.data)
    scale = 1.0 / math.sqrt(width // num_heads)
    heads = _Heads(num_heads, batch_first, packed)
    result = AttentionFn.apply(query, key, value, bias, dropout_mask, scale, heads, need_weights)
    if not need_weights:
        return result, None
    out, weights = result
    if average_attn_weights:
        weights = mean(weights, 1)
    return out, weights


def attention_bias(key_padding_mask: Any, attn_mask: Any, n: int, num_heads: int, length: int, source_length: int,
                   dtype: Any, name: str) -> Any:
    """``MultiheadAttention``'s two masks as one additive bias broadcastable to ``(N, H, L, S)``
    (an array, a Tensor when a mask needs its gradient, or None), after checking their shapes."""
    bias = None
    if key_padding_mask is not None:
        if tuple(key_padding_mask.shape) != (n, source_length):
            raise ValueError(f"{name}: expected key_padding_mask of shape ({n}, {source_length}) "
                             f"(batch, source length), got {tuple(key_padding_mask.shape)}")
        padding = _as_bias(key_padding_mask, dtype, False, name)
        bias = reshape(padding, (n, 1, 1, source_length)) if isinstance(padding, Tensor) else \
            padding.reshape(n, 1, 1, source_length)
    if attn_mask is not None:
        shape = tuple(attn_mask.shape)
        if shape == (length, source_length):
            full = (length, source_length)
        elif shape == (n * num_heads, length, source_length):
            full = (n, num_heads, length, source_length)
        else:
            raise ValueError(f"{name}: expected attn_mask of shape ({length}, {source_length}) or "
                             f"({n * num_heads}, {length}, {source_length}), got {shape}")
        mask = _as_bias(attn_mask, dtype, False, name)
        mask = reshape(mask, full) if isinstance(mask, Tensor) else mask.reshape(full)
        bias = _add_bias(bias, mask)
    return bias


# -- composite oracles -------------------------------------------------------------------------


def _split_heads_composite(x: Tensor, heads: _Heads) -> Tensor:
    if heads.num_heads is None:
        return x
    a, b, width = x.shape
    x = reshape(x, (a, b, heads.num_heads, width // heads.num_heads))
    return transpose(x, (0, 2, 1, 3) if heads.batch_first else (1, 2, 0, 3))


def _merge_heads_composite(x: Tensor, heads: _Heads) -> Tensor:
    if heads.num_heads is None:
        return x
    n, h, length, e = x.shape
    if heads.batch_first:
        return reshape(transpose(x, (0, 2, 1, 3)), (n, length, h * e))
    return reshape(transpose(x, (2, 0, 1, 3)), (length, n, h * e))


def _attention_composite(q, k, v, bias, dropout_mask, scale, heads, need_weights):
    if heads.packed:
        width = q.shape[-1] // 3
        q, k, v = q[..., :width], q[..., width:2 * width], q[..., 2 * width:]
    q, k, v = (_split_heads_composite(t, heads) for t in (q, k, v))
    scores = matmul(q, swapaxes(k, -1, -2)) * scale
    if bias is not None:
        scores = scores + bias
    weights = softmax(scores, -1)
    if dropout_mask is not None:
        weights = weights * constant(dropout_mask)
    out = _merge_heads_composite(matmul(weights, v), heads)
    return (out, weights) if need_weights else out


def scaled_dot_product_attention_composite(query: Tensor, key: Tensor, value: Tensor,
                                           attn_mask: Any = None, scale: float | None = None) -> Tensor:
    """Attention from primitives (``matmul``, ``softmax``): the oracle of the fused function.

    ``attn_mask`` here is additive only (a float array or Tensor).
    """
    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else float(scale)
    return _attention_composite(query, key, value, attn_mask, None, scale, _Heads(None, True, False), False)


__all__ = ["multi_head_attention", "scaled_dot_product_attention", "scaled_dot_product_attention_composite"]
