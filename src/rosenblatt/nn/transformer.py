"""Attention layers: ``MultiheadAttention``, the Transformer encoder and decoder layers and stacks,
and the encoder-decoder ``Transformer``.

The Transformer of Vaswani et al. (2017), "Attention Is All You Need", with PyTorch's parameter
names and layouts, so a PyTorch ``state_dict`` loads unchanged: ``self_attn.in_proj_weight`` (the
query, key and value projections stacked, ``(3*E, E)``), ``self_attn.in_proj_bias``,
``self_attn.out_proj.*``, ``multihead_attn.*`` (decoder), ``linear1.*``, ``linear2.*``, ``norm1.*`` to
``norm3.*``.

Self-attention projects ``q``, ``k`` and ``v`` with one matmul against the stacked weight and hands
the packed result to the fused attention (``F.multi_head_attention``), which splits the heads as
strided views.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np

from rosenblatt.backend import get_array_module
from rosenblatt.core import Tensor, broadcast_to, get_default_dtype
from rosenblatt.kernels.attention import causal_bias
from rosenblatt.nn import _transformer_inference as _inference
from rosenblatt.nn import functional as F
from rosenblatt.nn import init
from rosenblatt.nn._fusion import _hooked
from rosenblatt.nn.dropout import Dropout
from rosenblatt.nn.functional.attention import multi_head_attention
from rosenblatt.nn.functional.linear import LinearFn, linear_relu
from rosenblatt.nn.linear import Linear
from rosenblatt.nn.module import Module, ModuleList
from rosenblatt.nn.normalization import LayerNorm
from rosenblatt.nn.parameter import Parameter
from rosenblatt.ops import cat, squeeze, unsqueeze


class MultiheadAttention(Module):
    """Multi-head attention: ``concat(head_1, ..., head_H) W_o`` with
    ``head_i = softmax(Q_i K_i^T / sqrt(E/H) + mask) V_i`` (Vaswani et al., 2017, "Attention Is All
    You Need").

    Parameters as in PyTorch: ``in_proj_weight`` ``(3*E, E)`` stacks the query, key and value
    projections (Xavier-uniform), ``in_proj_bias`` ``(3*E,)`` (zeros), and ``out_proj``, a
    ``Linear(E, E)`` with a zero bias. With ``kdim`` or ``vdim`` different from ``embed_dim`` the
    projections are separate, ``q_proj_weight`` ``(E, E)``, ``k_proj_weight`` ``(E, kdim)`` and
    ``v_proj_weight`` ``(E, vdim)``, and there is no ``in_proj_weight`` (``in_proj_bias`` stays).
    ``add_bias_kv`` appends one learnt key and value (``bias_k``, ``bias_v``, ``(1, 1, E)``) to the
    projected sequence, ``add_zero_attn`` a key and value of zeros; masks are padded to match.

    ``forward(query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
    average_attn_weights=True, is_causal=False)`` returns ``(output, weights)``. Boolean masks mark
    with True the positions that may *not* be attended; float masks are added to the scores.
    ``is_causal`` says that ``attn_mask`` is the causal mask; without an ``attn_mask`` it builds one
    (PyTorch requires the mask). ``weights`` (None unless ``need_weights``) are the attention
    probabilities after dropout, averaged over the heads unless ``average_attn_weights=False``.

    Shape:
        query: ``(L, N, E)`` (``(N, L, E)`` with ``batch_first``, or ``(L, E)`` unbatched); key:
        ``(S, N, kdim)`` (``(N, S, kdim)``, ``(S, kdim)``); value: ``(S, N, vdim)`` (likewise);
        key_padding_mask: ``(N, S)`` (``(S,)`` unbatched); attn_mask: ``(L, S)`` or ``(N*H, L, S)``;
        output: ``(L, N, E)`` (the query's layout); weights: ``(N, L, S')`` or ``(N, H, L, S')``, where
        ``S' = S`` plus one for each of ``add_bias_kv`` and ``add_zero_attn``.
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 add_bias_kv: bool = False, add_zero_attn: bool = False, kdim: int | None = None,
                 vdim: int | None = None, batch_first: bool = False, dtype: Any = None) -> None:
        super().__init__()
        if embed_dim <= 0 or num_heads <= 0:
            raise ValueError(f"MultiheadAttention: embed_dim and num_heads must be positive, got "
                             f"({embed_dim}, {num_heads})")
        if embed_dim % num_heads:
            raise ValueError(f"MultiheadAttention: embed_dim ({embed_dim}) must be divisible by num_heads "
                             f"({num_heads})")
        if not 0.0 <= float(dropout) <= 1.0:
            raise ValueError(f"MultiheadAttention: dropout must be in [0, 1], got {dropout}")
        for what, size in (("kdim", kdim), ("vdim", vdim)):
            if size is not None and int(size) <= 0:
                raise ValueError(f"MultiheadAttention: {what} must be positive, got {size}")
        self.embed_dim = int(embed_dim)
        self.kdim = self.embed_dim if kdim is None else int(kdim)
        self.vdim = self.embed_dim if vdim is None else int(vdim)
        self._qkv_same_embed_dim = self.kdim == self.embed_dim and self.vdim == self.embed_dim
        self.num_heads = int(num_heads)
        self.head_dim = self.embed_dim // self.num_heads
        self.dropout = float(dropout)
        self.batch_first = bool(batch_first)
        dtype = np.dtype(dtype or get_default_dtype())

        def empty(*shape: int) -> Parameter:
            return Parameter(Tensor(np.empty(shape, dtype=dtype)))

        if self._qkv_same_embed_dim:
            self.in_proj_weight = empty(3 * embed_dim, embed_dim)
            for name in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):
                self.register_parameter(name, None)
        else:
            self.q_proj_weight = empty(embed_dim, embed_dim)
            self.k_proj_weight = empty(embed_dim, self.kdim)
            self.v_proj_weight = empty(embed_dim, self.vdim)
            self.register_parameter("in_proj_weight", None)
        if bias:
            self.in_proj_bias = Parameter(Tensor(np.zeros(3 * embed_dim, dtype=dtype)))
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias, dtype=dtype)
        if add_bias_kv:
            self.bias_k = empty(1, 1, embed_dim)
            self.bias_v = empty(1, 1, embed_dim)
        else:
            self.bias_k = self.bias_v = None
        self.add_zero_attn = bool(add_zero_attn)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's initialisation: Xavier-uniform projections, zero biases, Xavier-normal
        ``bias_k`` and ``bias_v``."""
        if self._qkv_same_embed_dim:
            init.xavier_uniform_(self.in_proj_weight)
        else:
            for weight in (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight):
                init.xavier_uniform_(weight)
        if self.in_proj_bias is not None:
            init.zeros_(self.in_proj_bias)
            init.zeros_(self.out_proj.bias)
        if self.bias_k is not None:
            init.xavier_normal_(self.bias_k)
            init.xavier_normal_(self.bias_v)

    def _check(self, what: str, x: Any, batched: bool, size: int) -> None:
        if not isinstance(x, Tensor):
            raise TypeError(f"MultiheadAttention: expected {what} to be a Tensor, got {type(x).__name__}")
        if x.ndim != (3 if batched else 2) or x.shape[-1] != size:
            letter = {"query": "L", "key": "S", "value": "S"}[what]
            dim = {"query": "E", "key": "kdim", "value": "vdim"}[what]
            layout = f"(N, {letter}, {dim})" if self.batch_first else f"({letter}, N, {dim})"
            raise ValueError(f"MultiheadAttention(embed_dim={self.embed_dim}): expected {what} of shape "
                             f"{layout if batched else f'({letter}, {dim})'} with {dim} = {size}, got {x.shape}")

    def forward(self, query: Tensor, key: Tensor, value: Tensor, key_padding_mask: Tensor | None = None,
                need_weights: bool = True, attn_mask: Tensor | None = None,
                average_attn_weights: bool = True, is_causal: bool = False) -> tuple[Tensor, Tensor | None]:
        batched = isinstance(query, Tensor) and query.ndim == 3
        for what, x, size in (("query", query, self.embed_dim), ("key", key, self.kdim),
                              ("value", value, self.vdim)):
            self._check(what, x, batched, size)
        if is_causal and attn_mask is None:
            length, source = (query.shape[-2], key.shape[-2]) if self.batch_first or not batched else \
                (query.shape[0], key.shape[0])
            attn_mask = causal_bias(get_array_module(query.data), length, source, query.dtype)
        if not batched:  # one sequence: a batch of one, batch first
            result = self._attend(unsqueeze(query, 0), unsqueeze(key, 0), unsqueeze(value, 0),
                                  None if key_padding_mask is None else _unsqueeze_mask(key_padding_mask),
                                  need_weights, attn_mask, average_attn_weights, True)
            out, weights = result
            return squeeze(out, 0), (None if weights is None else squeeze(weights, 0))
        return self._attend(query, key, value, key_padding_mask, need_weights, attn_mask,
                            average_attn_weights, self.batch_first)

    def _projection_weights(self) -> tuple[Tensor, Tensor, Tensor]:
        if self._qkv_same_embed_dim:
            e, w = self.embed_dim, self.in_proj_weight
            return w[:e], w[e:2 * e], w[2 * e:]
        return self.q_proj_weight, self.k_proj_weight, self.v_proj_weight

    def _attend(self, query, key, value, key_padding_mask, need_weights, attn_mask, average_attn_weights,
                batch_first):
        e = self.embed_dim
        b = self.in_proj_bias
        extra_keys = self.bias_k is not None or self.add_zero_attn
        if query is key and key is value and self._qkv_same_embed_dim and not extra_keys:
            q, k, v = LinearFn.apply(query, self.in_proj_weight, b), None, None  # one matmul, packed q|k|v
        else:
            wq, wk, wv = self._projection_weights()
            q = LinearFn.apply(query, wq, None if b is None else b[:e])
            k = LinearFn.apply(key, wk, None if b is None else b[e:2 * e])
            v = LinearFn.apply(value, wv, None if b is None else b[2 * e:])
        if k is not None:
            n_q = query.shape[0] if batch_first else query.shape[1]
            n_k = key.shape[0] if batch_first else key.shape[1]
            if n_q != n_k or key.shape[:2] != value.shape[:2]:
                raise ValueError(f"MultiheadAttention: query, key and value must share the batch size and "
                                 f"key and value the length, got {query.shape}, {key.shape}, {value.shape}")
        if extra_keys:
            k, v, key_padding_mask, attn_mask = self._extra_keys(k, v, key_padding_mask, attn_mask, batch_first,
                                                                  query.shape[1 if batch_first else 0])
        out, weights = multi_head_attention(
            q, k, v, self.num_heads, key_padding_mask, attn_mask, need_weights, average_attn_weights,
            self.dropout if self.training else 0.0, batch_first, name="MultiheadAttention")
        return self.out_proj(out), weights

    def _extra_keys(self, k: Tensor, v: Tensor, key_padding_mask: Any, attn_mask: Any, batch_first: bool,
                    length: int) -> tuple[Tensor, Tensor, Any, Any]:
        """Append ``bias_k``/``bias_v`` and then a zero key and value along the source axis, padding
        the masks with a column that lets every query attend to them (as PyTorch does)."""
        axis = 1 if batch_first else 0
        n, source = (k.shape[0], k.shape[1]) if batch_first else (k.shape[1], k.shape[0])
        if key_padding_mask is not None and tuple(key_padding_mask.shape) != (n, source):
            raise ValueError(f"MultiheadAttention: expected key_padding_mask of shape ({n}, {source}) "
                             f"(batch, source length), got {tuple(key_padding_mask.shape)}")
        if attn_mask is not None and tuple(attn_mask.shape) not in ((length, source),
                                                                    (n * self.num_heads, length, source)):
            raise ValueError(f"MultiheadAttention: expected attn_mask of shape ({length}, {source}) or "
                             f"({n * self.num_heads}, {length}, {source}), got {tuple(attn_mask.shape)}")
        one = (n, 1, self.embed_dim) if batch_first else (1, n, self.embed_dim)
        added = 0
        if self.bias_k is not None:
            k = cat([k, broadcast_to(self.bias_k, one)], axis=axis)
            v = cat([v, broadcast_to(self.bias_v, one)], axis=axis)
            added += 1
        if self.add_zero_attn:
            zeros = Tensor(get_array_module(k.data).zeros(one, dtype=k.dtype))
            k, v = cat([k, zeros], axis=axis), cat([v, zeros], axis=axis)
            added += 1
        return k, v, _pad_mask(key_padding_mask, added), _pad_mask(attn_mask, added)

    def extra_repr(self) -> str:
        extra = ""
        if not self._qkv_same_embed_dim:
            extra += f", kdim={self.kdim}, vdim={self.vdim}"
        if self.bias_k is not None:
            extra += ", add_bias_kv=True"
        if self.add_zero_attn:
            extra += ", add_zero_attn=True"
        return (f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, dropout={self.dropout}, "
                f"batch_first={self.batch_first}{extra}")


def _unsqueeze_mask(mask: Any) -> Any:
    return unsqueeze(mask, 0) if isinstance(mask, Tensor) else np.asarray(mask)[None]


def _pad_mask(mask: Any, count: int) -> Any:
    """``mask`` with ``count`` columns appended on its last axis that block nothing (False, or 0)."""
    if mask is None or count == 0:
        return mask
    if isinstance(mask, Tensor) and mask.requires_grad:  # a learnt float mask keeps its gradient
        xp = get_array_module(mask.data)
        return cat([mask, Tensor(xp.zeros(mask.shape[:-1] + (count,), dtype=mask.dtype))], axis=-1)
    array = mask.data if isinstance(mask, Tensor) else np.asarray(mask)
    xp = get_array_module(array)
    return xp.pad(array, [(0, 0)] * (array.ndim - 1) + [(0, count)])


_ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {"relu": F.relu, "gelu": F.gelu}


def _activation(layer: str, activation: Any) -> tuple[Callable[[Tensor], Tensor], str]:
    """The activation function and its name, from ``"relu"``, ``"gelu"`` or a callable (a Module
    becomes a submodule, as in PyTorch)."""
    if isinstance(activation, str):
        if activation not in _ACTIVATIONS:
            raise ValueError(f"{layer}: activation should be 'relu' or 'gelu', got {activation!r}")
        return _ACTIVATIONS[activation], activation
    if callable(activation):
        return activation, getattr(activation, "__name__", type(activation).__name__)
    raise TypeError(f"{layer}: activation must be a name or a callable, got {type(activation).__name__}")


def _build_layer(layer: Module, name: str, attentions: tuple[str, ...], norms: int, d_model: int, nhead: int,
                 dim_feedforward: int, dropout: float, activation: Any, layer_norm_eps: float, batch_first: bool,
                 norm_first: bool, bias: bool, dtype: Any) -> None:
    """The submodules of an encoder or decoder layer, registered in PyTorch's order (its state_dict
    order): the attentions, ``linear1, dropout, linear2``, ``norm1..``, ``dropout1..``."""
    activation, layer.activation_name = _activation(name, activation)
    for attention in attentions:
        setattr(layer, attention, MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias,
                                                     batch_first=batch_first, dtype=dtype))
    layer.linear1 = Linear(d_model, dim_feedforward, bias=bias, dtype=dtype)
    layer.dropout = Dropout(dropout)
    layer.linear2 = Linear(dim_feedforward, d_model, bias=bias, dtype=dtype)
    layer.norm_first = bool(norm_first)
    for i in range(1, norms + 1):
        setattr(layer, f"norm{i}", LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype))
    for i in range(1, norms + 1):
        setattr(layer, f"dropout{i}", Dropout(dropout))
    layer.activation = activation
    layer.batch_first = bool(batch_first)


def _check_sequence(layer: str, what: str, x: Any, d_model: int, batch_first: bool, letter: str) -> None:
    """``x`` is a batched ``(L, N, E)`` / ``(N, L, E)`` or an unbatched ``(L, E)`` sequence of width ``d_model``."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{layer}: expected {what} to be a Tensor, got {type(x).__name__}")
    if x.ndim not in (2, 3) or x.shape[-1] != d_model:
        layout = f"(N, {letter}, E)" if batch_first else f"({letter}, N, E)"
        raise ValueError(f"{layer}(d_model={d_model}): expected {what} of shape {layout} or ({letter}, E) "
                         f"with E = {d_model}, got {x.shape}")


def _check_pair(layer: str, names: tuple[str, str], a: Tensor, b: Tensor, batch_first: bool) -> None:
    """Two sequences (``tgt`` and ``memory``, or ``src`` and ``tgt``) agree on batching and batch size."""
    if a.ndim != b.ndim:
        raise ValueError(f"{layer}: {names[0]} and {names[1]} must both be batched or both unbatched, got "
                         f"shapes {a.shape} and {b.shape}")
    axis = 0 if batch_first else 1
    if a.ndim == 3 and a.shape[axis] != b.shape[axis]:
        raise ValueError(f"{layer}: {names[0]} and {names[1]} must have the same batch size (dimension {axis}), "
                         f"got shapes {a.shape} and {b.shape}")


def _length(x: Tensor, batch_first: bool) -> int:
    return x.shape[1] if batch_first and x.ndim == 3 else x.shape[0]


def _activated(layer: Module, x: Tensor) -> Tensor:
    """``activation(linear1(x))`` of a feed-forward block; ReLU after a plain, unhooked ``Linear``
    runs as one fused node (same values and gradients)."""
    linear1 = layer.linear1
    if layer.activation is F.relu and type(linear1) is Linear and not _hooked(linear1):
        return linear_relu(x, linear1.weight, linear1.bias)
    return layer.activation(linear1(x))


class TransformerEncoderLayer(Module):
    """One Transformer encoder block: self-attention, then a two-layer feed-forward network, each
    with dropout, a residual connection and layer normalisation (Vaswani et al., 2017).

    Post-norm (the paper, PyTorch's default): ``x = norm1(x + sa(x)); x = norm2(x + ff(x))``.
    With ``norm_first`` (pre-norm, Xiong et al., 2020): ``x = x + sa(norm1(x)); x = x + ff(norm2(x))``.
    ``activation`` is ``"relu"``, ``"gelu"`` or a callable. Submodule names match PyTorch's.

    Shape:
        src: ``(S, N, E)`` (``(N, S, E)`` with ``batch_first``, ``(S, E)`` unbatched); src_mask: ``(S, S)``
        or ``(N*H, S, S)``; src_key_padding_mask: ``(N, S)`` (True marks padding); output: the shape of
        ``src``.
    """

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048, dropout: float = 0.1,
                 activation: str | Callable[[Tensor], Tensor] = "relu", layer_norm_eps: float = 1e-5,
                 batch_first: bool = False, norm_first: bool = False, bias: bool = True,
                 dtype: Any = None) -> None:
        super().__init__()
        _build_layer(self, "TransformerEncoderLayer", ("self_attn",), 2, d_model, nhead, dim_feedforward, dropout,
                     activation, layer_norm_eps, batch_first, norm_first, bias, dtype)

    def forward(self, src: Tensor, src_mask: Tensor | None = None, src_key_padding_mask: Tensor | None = None,
                is_causal: bool = False) -> Tensor:
        _check_sequence("TransformerEncoderLayer", "src", src, self.self_attn.embed_dim, self.batch_first, "S")
        if is_causal and src_mask is None:
            src_mask = causal_mask(_length(src, self.batch_first), src.dtype)
        fast = _inference.encoder_layer(self, src, src_mask, src_key_padding_mask)  # eval + no_grad
        if fast is not None:
            return fast
        x = src
        if self.norm_first:
            x = x + self._self_attention(self.norm1(x), src_mask, src_key_padding_mask)
            x = x + self._feed_forward(self.norm2(x))
        else:
            x = self.norm1(x + self._self_attention(x, src_mask, src_key_padding_mask))
            x = self.norm2(x + self._feed_forward(x))
        return x

    def _self_attention(self, x: Tensor, attn_mask: Any, key_padding_mask: Any) -> Tensor:
        out, _ = self.self_attn(x, x, x, key_padding_mask=key_padding_mask, need_weights=False,
                                attn_mask=attn_mask)
        return self.dropout1(out)

    def _feed_forward(self, x: Tensor) -> Tensor:
        return self.dropout2(self.linear2(self.dropout(_activated(self, x))))

    def extra_repr(self) -> str:
        return f"activation={self.activation_name}, norm_first={self.norm_first}"


class TransformerDecoderLayer(Module):
    """One Transformer decoder block: masked self-attention over the target, attention from the
    target to the encoder's output (``memory``), then a two-layer feed-forward network, each with
    dropout, a residual connection and layer normalisation (Vaswani et al., 2017, "Attention Is All
    You Need").

    Post-norm (the paper, PyTorch's default): ``x = norm1(x + sa(x)); x = norm2(x + mha(x, memory));
    x = norm3(x + ff(x))``. With ``norm_first`` (pre-norm): ``x = x + sa(norm1(x));
    x = x + mha(norm2(x), memory); x = x + ff(norm3(x))``. ``activation`` is ``"relu"``, ``"gelu"`` or
    a callable. Submodule names match PyTorch's (``self_attn``, ``multihead_attn``, ``linear1``,
    ``linear2``, ``norm1``-``norm3``), so a PyTorch ``state_dict`` loads unchanged.

    ``tgt_is_causal=True`` without a ``tgt_mask`` builds the causal mask (each position attends to
    itself and the positions before it); with a ``tgt_mask`` it is a hint and the mask is used
    (likewise ``memory_is_causal`` and ``memory_mask``).

    Shape:
        tgt: ``(T, N, E)`` (``(N, T, E)`` with ``batch_first``, ``(T, E)`` unbatched); memory: ``(S, N, E)``
        (``(N, S, E)``, ``(S, E)``); tgt_mask: ``(T, T)`` or ``(N*H, T, T)``; memory_mask: ``(T, S)`` or
        ``(N*H, T, S)``; tgt_key_padding_mask: ``(N, T)``; memory_key_padding_mask: ``(N, S)`` (True
        marks padding); output: the shape of ``tgt``.
    """

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048, dropout: float = 0.1,
                 activation: str | Callable[[Tensor], Tensor] = "relu", layer_norm_eps: float = 1e-5,
                 batch_first: bool = False, norm_first: bool = False, bias: bool = True,
                 dtype: Any = None) -> None:
        super().__init__()
        _build_layer(self, "TransformerDecoderLayer", ("self_attn", "multihead_attn"), 3, d_model, nhead,
                     dim_feedforward, dropout, activation, layer_norm_eps, batch_first, norm_first, bias, dtype)

    def forward(self, tgt: Tensor, memory: Tensor, tgt_mask: Tensor | None = None,
                memory_mask: Tensor | None = None, tgt_key_padding_mask: Tensor | None = None,
                memory_key_padding_mask: Tensor | None = None, tgt_is_causal: bool = False,
                memory_is_causal: bool = False) -> Tensor:
        name, d_model = "TransformerDecoderLayer", self.self_attn.embed_dim
        _check_sequence(name, "tgt", tgt, d_model, self.batch_first, "T")
        _check_sequence(name, "memory", memory, d_model, self.batch_first, "S")
        _check_pair(name, ("tgt", "memory"), tgt, memory, self.batch_first)
        length = _length(tgt, self.batch_first)
        if tgt_is_causal and tgt_mask is None:
            tgt_mask = causal_mask(length, tgt.dtype)
        if memory_is_causal and memory_mask is None:
            memory_mask = Tensor(causal_bias(np, length, _length(memory, self.batch_first), tgt.dtype))
        x = tgt
        if self.norm_first:
            x = x + self._self_attention(self.norm1(x), tgt_mask, tgt_key_padding_mask)
            x = x + self._cross_attention(self.norm2(x), memory, memory_mask, memory_key_padding_mask)
            x = x + self._feed_forward(self.norm3(x))
        else:
            x = self.norm1(x + self._self_attention(x, tgt_mask, tgt_key_padding_mask))
            x = self.norm2(x + self._cross_attention(x, memory, memory_mask, memory_key_padding_mask))
            x = self.norm3(x + self._feed_forward(x))
        return x

    def _self_attention(self, x: Tensor, attn_mask: Any, key_padding_mask: Any) -> Tensor:
        out, _ = self.self_attn(x, x, x, key_padding_mask=key_padding_mask, need_weights=False,
                                attn_mask=attn_mask)
        return self.dropout1(out)

    def _cross_attention(self, x: Tensor, memory: Tensor, attn_mask: Any, key_padding_mask: Any) -> Tensor:
        out, _ = self.multihead_attn(x, memory, memory, key_padding_mask=key_padding_mask, need_weights=False,
                                     attn_mask=attn_mask)
        return self.dropout2(out)

    def _feed_forward(self, x: Tensor) -> Tensor:
        return self.dropout3(self.linear2(self.dropout(_activated(self, x))))

    def extra_repr(self) -> str:
        return f"activation={self.activation_name}, norm_first={self.norm_first}"


def causal_mask(size: int, dtype: Any = None) -> Tensor:
    """``(size, size)`` float mask with ``-inf`` above the diagonal (PyTorch's
    ``Transformer.generate_square_subsequent_mask``)."""
    return Tensor(causal_bias(np, size, size, np.dtype(dtype or get_default_dtype())))


def _clones(layer: Module, num_layers: int, name: str) -> ModuleList:
    if not isinstance(layer, Module):
        raise TypeError(f"{name}: expected a layer (a Module), got {type(layer).__name__}")
    if int(num_layers) < 1:
        raise ValueError(f"{name}: num_layers must be at least 1, got {num_layers}")
    return ModuleList([copy.deepcopy(layer) for _ in range(int(num_layers))])


class TransformerEncoder(Module):
    """A stack of ``num_layers`` copies of ``encoder_layer`` (each with its own parameters),
    optionally followed by ``norm`` (as in PyTorch; state-dict keys ``layers.0.*``, ``norm.*``).

    ``enable_nested_tensor`` and ``mask_check`` are accepted for PyTorch's signature and change
    nothing: there is no nested-tensor path (padded positions are computed like the others).

    Shape:
        as :class:`TransformerEncoderLayer`.
    """

    def __init__(self, encoder_layer: TransformerEncoderLayer, num_layers: int, norm: Module | None = None,
                 enable_nested_tensor: bool = True, mask_check: bool = True) -> None:
        super().__init__()
        self.layers = _clones(encoder_layer, num_layers, "TransformerEncoder")
        self.num_layers = int(num_layers)
        self.norm = norm
        self.enable_nested_tensor = bool(enable_nested_tensor)
        self.mask_check = bool(mask_check)

    def forward(self, src: Tensor, mask: Tensor | None = None, src_key_padding_mask: Tensor | None = None,
                is_causal: bool | None = None) -> Tensor:
        x = src
        for layer in self.layers:
            x = layer(x, src_mask=mask, src_key_padding_mask=src_key_padding_mask, is_causal=bool(is_causal))
        return self.norm(x) if self.norm is not None else x


class TransformerDecoder(Module):
    """A stack of ``num_layers`` copies of ``decoder_layer`` (each with its own parameters),
    optionally followed by ``norm`` (as in PyTorch; state-dict keys ``layers.0.*``, ``norm.*``).
    Every layer attends to the same ``memory``.

    Shape:
        as :class:`TransformerDecoderLayer`.
    """

    def __init__(self, decoder_layer: TransformerDecoderLayer, num_layers: int, norm: Module | None = None
                 ) -> None:
        super().__init__()
        self.layers = _clones(decoder_layer, num_layers, "TransformerDecoder")
        self.num_layers = int(num_layers)
        self.norm = norm

    def forward(self, tgt: Tensor, memory: Tensor, tgt_mask: Tensor | None = None,
                memory_mask: Tensor | None = None, tgt_key_padding_mask: Tensor | None = None,
                memory_key_padding_mask: Tensor | None = None, tgt_is_causal: bool | None = None,
                memory_is_causal: bool = False) -> Tensor:
        x = tgt
        for layer in self.layers:
            x = layer(x, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                      tgt_key_padding_mask=tgt_key_padding_mask, memory_key_padding_mask=memory_key_padding_mask,
                      tgt_is_causal=bool(tgt_is_causal), memory_is_causal=bool(memory_is_causal))
        return self.norm(x) if self.norm is not None else x


class Transformer(Module):
    """The encoder-decoder Transformer of Vaswani et al. (2017), "Attention Is All You Need":
    ``decoder(tgt, encoder(src))``, with PyTorch's structure and parameter names (``encoder.layers.*``,
    ``encoder.norm.*``, ``decoder.layers.*``, ``decoder.norm.*``), so a PyTorch ``state_dict`` loads
    unchanged.

    The encoder is ``num_encoder_layers`` :class:`TransformerEncoderLayer` and a final ``LayerNorm``,
    the decoder ``num_decoder_layers`` :class:`TransformerDecoderLayer` and a final ``LayerNorm``
    (or ``custom_encoder`` / ``custom_decoder``). Every parameter with more than one dimension is
    re-initialised Xavier-uniform, as PyTorch does. There is no embedding or output projection:
    inputs are already ``d_model`` wide. :meth:`generate_square_subsequent_mask` gives the causal
    ``tgt_mask``.

    Shape:
        src: ``(S, N, E)`` (``(N, S, E)`` with ``batch_first``, ``(S, E)`` unbatched); tgt: ``(T, N, E)``
        (``(N, T, E)``, ``(T, E)``); src_mask: ``(S, S)`` or ``(N*H, S, S)``; tgt_mask: ``(T, T)`` or
        ``(N*H, T, T)``; memory_mask: ``(T, S)`` or ``(N*H, T, S)``; src_key_padding_mask and
        memory_key_padding_mask: ``(N, S)``; tgt_key_padding_mask: ``(N, T)``; output: the shape of
        ``tgt``.
    """

    def __init__(self, d_model: int = 512, nhead: int = 8, num_encoder_layers: int = 6,
                 num_decoder_layers: int = 6, dim_feedforward: int = 2048, dropout: float = 0.1,
                 activation: str | Callable[[Tensor], Tensor] = "relu", custom_encoder: Module | None = None,
                 custom_decoder: Module | None = None, layer_norm_eps: float = 1e-5, batch_first: bool = False,
                 norm_first: bool = False, bias: bool = True, dtype: Any = None) -> None:
        super().__init__()
        layer_args = (d_model, nhead, dim_feedforward, dropout, activation, layer_norm_eps, batch_first,
                      norm_first, bias, dtype)
        if custom_encoder is not None:
            self.encoder = custom_encoder
        else:
            self.encoder = TransformerEncoder(TransformerEncoderLayer(*layer_args), num_encoder_layers,
                                              LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype))
        if custom_decoder is not None:
            self.decoder = custom_decoder
        else:
            self.decoder = TransformerDecoder(TransformerDecoderLayer(*layer_args), num_decoder_layers,
                                              LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype))
        self._reset_parameters()
        self.d_model = int(d_model)
        self.nhead = int(nhead)
        self.batch_first = bool(batch_first)

    def _reset_parameters(self) -> None:
        for p in self.parameters():
            if p.ndim > 1:
                init.xavier_uniform_(p)

    def forward(self, src: Tensor, tgt: Tensor, src_mask: Tensor | None = None, tgt_mask: Tensor | None = None,
                memory_mask: Tensor | None = None, src_key_padding_mask: Tensor | None = None,
                tgt_key_padding_mask: Tensor | None = None, memory_key_padding_mask: Tensor | None = None,
                src_is_causal: bool | None = None, tgt_is_causal: bool | None = None,
                memory_is_causal: bool = False) -> Tensor:
        for what, x, letter in (("src", src, "S"), ("tgt", tgt, "T")):
            _check_sequence("Transformer", what, x, self.d_model, self.batch_first, letter)
        _check_pair("Transformer", ("src", "tgt"), src, tgt, self.batch_first)
        memory = self.encoder(src, mask=src_mask, src_key_padding_mask=src_key_padding_mask,
                              is_causal=src_is_causal)
        return self.decoder(tgt, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                            tgt_key_padding_mask=tgt_key_padding_mask,
                            memory_key_padding_mask=memory_key_padding_mask, tgt_is_causal=tgt_is_causal,
                            memory_is_causal=memory_is_causal)

    @staticmethod
    def generate_square_subsequent_mask(sz: int, device: Any = None, dtype: Any = None) -> Tensor:
        """The ``(sz, sz)`` causal mask: ``-inf`` above the diagonal (a position may not attend to
        later ones), 0 elsewhere."""
        mask = causal_mask(int(sz), dtype)
        return mask.to(device) if device is not None else mask


__all__ = ["MultiheadAttention", "Transformer", "TransformerDecoder", "TransformerDecoderLayer", "TransformerEncoder",
           "TransformerEncoderLayer", "causal_mask"]
