"""Attention layers: ``MultiheadAttention``, ``TransformerEncoderLayer`` and ``TransformerEncoder``.

The Transformer encoder of Vaswani et al. (2017), "Attention Is All You Need", with PyTorch's
parameter names and layouts, so a PyTorch ``state_dict`` loads unchanged: ``self_attn.in_proj_weight``
(the query, key and value projections stacked, ``(3*E, E)``), ``self_attn.in_proj_bias``,
``self_attn.out_proj.*``, ``linear1.*``, ``linear2.*``, ``norm1.*``, ``norm2.*``.

Self-attention projects ``q``, ``k`` and ``v`` with one matmul against the stacked weight and hands
the packed result to the fused attention (``F.multi_head_attention``), which splits the heads as
strided views.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np

from rosenblatt.core import Tensor, get_default_dtype
from rosenblatt.kernels.attention import causal_bias
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
from rosenblatt.ops import squeeze, unsqueeze


class MultiheadAttention(Module):
    """Multi-head attention: ``concat(head_1, ..., head_H) W_o`` with
    ``head_i = softmax(Q_i K_i^T / sqrt(E/H) + mask) V_i`` (Vaswani et al., 2017).

    Parameters as in PyTorch: ``in_proj_weight`` ``(3*E, E)`` stacks the query, key and value
    projections (Xavier-uniform), ``in_proj_bias`` ``(3*E,)`` (zeros), and ``out_proj``, a
    ``Linear(E, E)`` with a zero bias.

    ``forward(query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
    average_attn_weights=True)`` returns ``(output, weights)``. Boolean masks mark with True the
    positions that may *not* be attended; float masks are added to the scores. ``weights`` (None
    unless ``need_weights``) are the attention probabilities after dropout, averaged over the heads
    unless ``average_attn_weights=False``.

    Shape:
        query: ``(L, N, E)`` (``(N, L, E)`` with ``batch_first``, or ``(L, E)`` unbatched); key, value:
        ``(S, N, E)`` (``(N, S, E)``, ``(S, E)``); key_padding_mask: ``(N, S)``; attn_mask: ``(L, S)`` or
        ``(N*H, L, S)``; output: the query's shape; weights: ``(N, L, S)`` or ``(N, H, L, S)``.
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 batch_first: bool = False, dtype: Any = None) -> None:
        super().__init__()
        if embed_dim <= 0 or num_heads <= 0:
            raise ValueError(f"MultiheadAttention: embed_dim and num_heads must be positive, got "
                             f"({embed_dim}, {num_heads})")
        if embed_dim % num_heads:
            raise ValueError(f"MultiheadAttention: embed_dim ({embed_dim}) must be divisible by num_heads "
                             f"({num_heads})")
        if not 0.0 <= float(dropout) <= 1.0:
            raise ValueError(f"MultiheadAttention: dropout must be in [0, 1], got {dropout}")
        self.embed_dim = int(embed_dim)
        self.num_heads = int(num_heads)
        self.head_dim = self.embed_dim // self.num_heads
        self.dropout = float(dropout)
        self.batch_first = bool(batch_first)
        dtype = np.dtype(dtype or get_default_dtype())
        self.in_proj_weight = Parameter(Tensor(np.empty((3 * embed_dim, embed_dim), dtype=dtype)))
        if bias:
            self.in_proj_bias = Parameter(Tensor(np.zeros(3 * embed_dim, dtype=dtype)))
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias, dtype=dtype)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's initialisation: Xavier-uniform projections, zero biases."""
        init.xavier_uniform_(self.in_proj_weight)
        if self.in_proj_bias is not None:
            init.zeros_(self.in_proj_bias)
            init.zeros_(self.out_proj.bias)

    def _check(self, what: str, x: Any, batched: bool) -> None:
        if not isinstance(x, Tensor):
            raise TypeError(f"MultiheadAttention: expected {what} to be a Tensor, got {type(x).__name__}")
        if x.ndim != (3 if batched else 2) or x.shape[-1] != self.embed_dim:
            layout = "(N, L, E)" if self.batch_first else "(L, N, E)"
            raise ValueError(f"MultiheadAttention(embed_dim={self.embed_dim}): expected {what} of shape "
                             f"{layout if batched else '(L, E)'} with E = {self.embed_dim}, got {x.shape}")

    def forward(self, query: Tensor, key: Tensor, value: Tensor, key_padding_mask: Tensor | None = None,
                need_weights: bool = True, attn_mask: Tensor | None = None,
                average_attn_weights: bool = True) -> tuple[Tensor, Tensor | None]:
        batched = isinstance(query, Tensor) and query.ndim == 3
        for what, x in (("query", query), ("key", key), ("value", value)):
            self._check(what, x, batched)
        if not batched:  # one sequence: a batch of one, batch first
            result = self._attend(unsqueeze(query, 0), unsqueeze(key, 0), unsqueeze(value, 0),
                                  None if key_padding_mask is None else _unsqueeze_mask(key_padding_mask),
                                  need_weights, attn_mask, average_attn_weights, True)
            out, weights = result
            return squeeze(out, 0), (None if weights is None else squeeze(weights, 0))
        return self._attend(query, key, value, key_padding_mask, need_weights, attn_mask,
                            average_attn_weights, self.batch_first)

    def _attend(self, query, key, value, key_padding_mask, need_weights, attn_mask, average_attn_weights,
                batch_first):
        e = self.embed_dim
        w, b = self.in_proj_weight, self.in_proj_bias
        if query is key and key is value:
            q, k, v = LinearFn.apply(query, w, b), None, None  # one matmul, packed q|k|v
        else:
            q = LinearFn.apply(query, w[:e], None if b is None else b[:e])
            k = LinearFn.apply(key, w[e:2 * e], None if b is None else b[e:2 * e])
            v = LinearFn.apply(value, w[2 * e:], None if b is None else b[2 * e:])
        if key is not None and not (query is key and key is value):
            n_q = query.shape[0] if batch_first else query.shape[1]
            n_k = key.shape[0] if batch_first else key.shape[1]
            if n_q != n_k or key.shape[:2] != value.shape[:2]:
                raise ValueError(f"MultiheadAttention: query, key and value must share the batch size and "
                                 f"key and value the length, got {query.shape}, {key.shape}, {value.shape}")
        out, weights = multi_head_attention(
            q, k, v, self.num_heads, key_padding_mask, attn_mask, need_weights, average_attn_weights,
            self.dropout if self.training else 0.0, batch_first, name="MultiheadAttention")
        return self.out_proj(out), weights

    def extra_repr(self) -> str:
        return (f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, dropout={self.dropout}, "
                f"batch_first={self.batch_first}")


def _unsqueeze_mask(mask: Any) -> Any:
    return unsqueeze(mask, 0) if isinstance(mask, Tensor) else np.asarray(mask)[None]


_ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {"relu": F.relu, "gelu": F.gelu}


class TransformerEncoderLayer(Module):
    """One Transformer encoder block: self-attention, then a two-layer feed-forward network, each
    with dropout, a residual connection and layer normalisation (Vaswani et al., 2017).

    Post-norm (the paper, PyTorch's default): ``x = norm1(x + sa(x)); x = norm2(x + ff(x))``.
    With ``norm_first`` (pre-norm, Xiong et al., 2020): ``x = x + sa(norm1(x)); x = x + ff(norm2(x))``.
    ``activation`` is ``"relu"``, ``"gelu"`` or a callable. Submodule names match PyTorch's.

    Shape:
        src: ``(S, N, E)`` (``(N, S, E)`` with ``batch_first``); src_mask: ``(S, S)`` or ``(N*H, S, S)``;
        src_key_padding_mask: ``(N, S)`` (True marks padding); output: the shape of ``src``.
    """

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048, dropout: float = 0.1,
                 activation: str | Callable[[Tensor], Tensor] = "relu", layer_norm_eps: float = 1e-5,
                 batch_first: bool = False, norm_first: bool = False, bias: bool = True,
                 dtype: Any = None) -> None:
        super().__init__()
        if isinstance(activation, str):
            if activation not in _ACTIVATIONS:
                raise ValueError(f"TransformerEncoderLayer: activation should be 'relu' or 'gelu', "
                                 f"got {activation!r}")
            self.activation_name = activation
            activation = _ACTIVATIONS[activation]
        elif callable(activation):
            self.activation_name = getattr(activation, "__name__", type(activation).__name__)
        else:
            raise TypeError(f"TransformerEncoderLayer: activation must be a name or a callable, got "
                            f"{type(activation).__name__}")
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias,
                                            batch_first=batch_first, dtype=dtype)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, dtype=dtype)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, dtype=dtype)
        self.norm_first = bool(norm_first)
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.activation = activation
        self.batch_first = bool(batch_first)

    def forward(self, src: Tensor, src_mask: Tensor | None = None, src_key_padding_mask: Tensor | None = None,
                is_causal: bool = False) -> Tensor:
        if is_causal and src_mask is None:
            src_mask = causal_mask(src.shape[1] if self.batch_first and src.ndim == 3 else src.shape[0],
                                   src.dtype)
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
        linear1 = self.linear1
        if self.activation is F.relu and type(linear1) is Linear and not _hooked(linear1):
            hidden = linear_relu(x, linear1.weight, linear1.bias)  # one node, the ReLU fused
        else:
            hidden = self.activation(linear1(x))
        return self.dropout2(self.linear2(self.dropout(hidden)))

    def extra_repr(self) -> str:
        return f"activation={self.activation_name}, norm_first={self.norm_first}"


def causal_mask(size: int, dtype: Any = None) -> Tensor:
    """``(size, size)`` float mask with ``-inf`` above the diagonal (PyTorch's
    ``Transformer.generate_square_subsequent_mask``)."""
    return Tensor(causal_bias(np, size, size, np.dtype(dtype or get_default_dtype())))


class TransformerEncoder(Module):
    """A stack of ``num_layers`` copies of ``encoder_layer`` (each with its own parameters),
    optionally followed by ``norm`` (as in PyTorch; state-dict keys ``layers.0.*``, ``norm.*``).

    Shape:
        as :class:`TransformerEncoderLayer`.
    """

    def __init__(self, encoder_layer: TransformerEncoderLayer, num_layers: int, norm: Module | None = None
                 ) -> None:
        super().__init__()
        if not isinstance(encoder_layer, Module):
            raise TypeError(f"TransformerEncoder: expected an encoder layer (a Module), got "
                            f"{type(encoder_layer).__name__}")
        if int(num_layers) < 1:
            raise ValueError(f"TransformerEncoder: num_layers must be at least 1, got {num_layers}")
        self.layers = ModuleList([copy.deepcopy(encoder_layer) for _ in range(int(num_layers))])
        self.num_layers = int(num_layers)
        self.norm = norm

    def forward(self, src: Tensor, mask: Tensor | None = None, src_key_padding_mask: Tensor | None = None,
                is_causal: bool = False) -> Tensor:
        x = src
        for layer in self.layers:
            x = layer(x, src_mask=mask, src_key_padding_mask=src_key_padding_mask, is_causal=is_causal)
        return self.norm(x) if self.norm is not None else x


__all__ = ["MultiheadAttention", "TransformerEncoder", "TransformerEncoderLayer", "causal_mask"]
