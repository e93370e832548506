"""Inference fast path of ``TransformerEncoderLayer``: the whole layer on arrays, in oneDNN calls.

In evaluation mode with no gradient recorded, a layer's work is fixed: project ``q|k|v`` in one
product, attend, project back, add the residual, normalise, then the feed-forward block and its
residual and norm. Run as modules and ops that is some forty Python-level calls and two NumPy
passes for the residual sums; here it is nine oneDNN calls on arrays:

- the ``q|k|v`` projection and the feed-forward products are matmul primitives that add the bias
  (and apply the ReLU or GELU) as they write;
- attention reads the heads in place from the packed projection and writes its output straight
  into the merged layout (:mod:`rosenblatt.kernels.onednn.attention`); the masks become one
  additive bias, as in ``MultiheadAttention``;
- each residual sum rides on the product before it: the output buffer starts as a copy of the
  residual and the product is added to it (a ``sum`` post-op), so ``x + out_proj(...)`` and
  ``x + linear2(...)`` are one call each;
- layer norm is oneDNN's kernel.

The results equal the module path's up to float32 rounding (tests compare them). The path is
taken only when nothing it skips could matter: float32 NumPy arrays with the oneDNN kernels,
a batched input, masks that need no gradient, the ReLU or (exact) GELU activation, the stock submodules without hooks, and one
self-attention with packed projections (PyTorch's own fast path has similar conditions). Otherwise
:func:`encoder_layer` returns ``None`` and the layer runs module by module.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rosenblatt import kernels
from rosenblatt.core import Tensor, is_grad_enabled
from rosenblatt.kernels import gemm
from rosenblatt.kernels.attention import attention_forward
from rosenblatt.nn import functional as F
from rosenblatt.nn._fusion import _hooked
from rosenblatt.nn.dropout import Dropout
from rosenblatt.nn.functional.attention import _Heads, attention_bias
from rosenblatt.nn.linear import Linear
from rosenblatt.nn.normalization import LayerNorm

ENABLED = True  # False: every layer runs module by module


def _eligible(layer: Any, x: Any) -> bool:
    from rosenblatt.nn.transformer import MultiheadAttention

    attn = layer.self_attn
    modules = (attn, attn.out_proj, layer.linear1, layer.linear2, layer.norm1, layer.norm2, layer.dropout,
               layer.dropout1, layer.dropout2)
    if (type(attn) is not MultiheadAttention or not attn._qkv_same_embed_dim or attn.bias_k is not None
            or attn.add_zero_attn or attn.batch_first != layer.batch_first
            or layer.activation not in (F.relu, F.gelu)):
        return False
    types = (MultiheadAttention, Linear, Linear, Linear, LayerNorm, LayerNorm, Dropout, Dropout, Dropout)
    if any(type(m) is not t or _hooked(m) for m, t in zip(modules, types)):
        return False
    if not (layer.norm1.elementwise_affine and layer.norm2.elementwise_affine
            and len(layer.norm1.normalized_shape) == 1 and len(layer.norm2.normalized_shape) == 1):
        return False
    arrays = [x, attn.in_proj_weight.data, attn.out_proj.weight.data, layer.linear1.weight.data,
              layer.linear2.weight.data]
    for p in (attn.in_proj_bias, attn.out_proj.bias, layer.linear1.bias, layer.linear2.bias, layer.norm1.weight,
              layer.norm1.bias, layer.norm2.weight, layer.norm2.bias):
        if p is not None:
            arrays.append(p.data)
    return kernels.use_onednn(*arrays)


def _data(p: Any) -> Any:
    return None if p is None else p.data


def _plus_product(residual: np.ndarray, a: np.ndarray, linear: Any, in_place: bool = False) -> np.ndarray:
    """``residual + a @ W^T + b`` with the sum done by the product's own write (into ``residual``
    itself with ``in_place``: an array of this path's own that is not needed any more; else into a
    new array, the residual read as a second input of the product)."""
    from rosenblatt.kernels.onednn import matmul

    bias = _data(linear.bias)
    bias = None if bias is None else np.ascontiguousarray(bias)
    if in_place:
        if matmul.matmul(a, linear.weight.data.T, residual, bias=bias, accumulate=True):
            return residual
    else:  # the residual read as the product is written: no copy of it, one pass
        out = np.empty((a.shape[0], linear.weight.shape[0]), np.float32)
        if matmul.matmul(a, linear.weight.data.T, out, bias=bias, residual=residual):
            return out
    return residual + gemm.linear(a, linear.weight.data, bias)


def _norm(x: np.ndarray, norm: Any) -> np.ndarray:
    from rosenblatt.kernels.onednn import layer_norm

    result = layer_norm.layer_norm_forward(x, _data(norm.weight), _data(norm.bias), float(norm.eps))
    if result is not None:
        return result[0]
    mean = x.mean(axis=-1, keepdims=True)
    centred = x - mean
    y = centred / np.sqrt((centred * centred).mean(axis=-1, keepdims=True) + np.float32(norm.eps))
    if norm.weight is not None:
        y *= norm.weight.data
    if norm.bias is not None:
        y += norm.bias.data
    return y


def _self_attention(layer: Any, h: np.ndarray, shape: tuple[int, ...], bias: Any) -> np.ndarray:
    attn = layer.self_attn
    qkv = gemm.linear(h, attn.in_proj_weight.data, _data(attn.in_proj_bias))
    heads = _Heads(attn.num_heads, layer.batch_first, packed=True)
    qh, kh, vh = heads.unpack(qkv.reshape(shape[0], shape[1], -1), None, None)
    merged = heads.empty(qh, vh.shape[-1])
    view = heads.split(merged)
    out, _, _ = attention_forward(qh, kh, vh, 1.0 / float(np.sqrt(attn.head_dim)), bias, out=view)
    if out is not view:  # a kernel that did not write into the merged layout
        heads.merge(out, merged)
    return merged.reshape(-1, shape[-1])


def _hidden(layer: Any, h: np.ndarray) -> np.ndarray:
    """The feed-forward block's activation, applied as the first product writes its output."""
    relu = layer.activation is F.relu
    return gemm.linear(h, layer.linear1.weight.data, _data(layer.linear1.bias), relu=relu, gelu=not relu)


def encoder_layer(layer: Any, src: Tensor, src_mask: Any = None, src_key_padding_mask: Any = None
                  ) -> Tensor | None:
    """The layer's output for ``src`` (masks as ``TransformerEncoderLayer.forward`` takes them), or
    ``None`` when the fast path does not apply."""
    if not ENABLED or is_grad_enabled() or layer.training:
        return None
    x = src.data
    if x.ndim != 3 or x.size == 0 or not _eligible(layer, x):
        return None
    shape = x.shape
    n, length = (shape[0], shape[1]) if layer.batch_first else (shape[1], shape[0])
    bias = attention_bias(src_key_padding_mask, src_mask, n, layer.self_attn.num_heads, length, length, x.dtype,
                          "TransformerEncoderLayer")
    if isinstance(bias, Tensor):  # a mask that wants its gradient
        return None
    x2 = np.ascontiguousarray(x).reshape(-1, shape[-1])
    if layer.norm_first:
        x1 = _plus_product(x2, _self_attention(layer, _norm(x2, layer.norm1), shape, bias),
                           layer.self_attn.out_proj)
        hidden = _hidden(layer, _norm(x1, layer.norm2))
        y = _plus_product(x1, hidden, layer.linear2, in_place=True)
    else:
        x1 = _norm(_plus_product(x2, _self_attention(layer, x2, shape, bias), layer.self_attn.out_proj),
                   layer.norm1)
        hidden = _hidden(layer, x1)
        y = _norm(_plus_product(x1, hidden, layer.linear2, in_place=True), layer.norm2)
    return Tensor(y.reshape(shape))
