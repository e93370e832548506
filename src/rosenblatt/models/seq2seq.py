"""Sequence to sequence: an encoder RNN reads the source, its final state starts a decoder RNN that
writes the target one token at a time.

I. Sutskever, O. Vinyals and Q. V. Le, "Sequence to sequence learning with neural networks",
NeurIPS 2014 (stacked LSTM encoder-decoder). K. Cho et al., "Learning phrase representations using
RNN encoder-decoder for statistical machine translation", EMNLP 2014 (the GRU encoder-decoder).
Teacher forcing with a ratio follows S. Bengio et al., "Scheduled sampling for sequence prediction
with recurrent neural networks", NeurIPS 2015.

Attention lets the decoder look back at every encoder output instead of only the final state:
D. Bahdanau, K. Cho and Y. Bengio, "Neural machine translation by jointly learning to align and
translate", ICLR 2015 (the additive score ``v^T tanh(W_q h_t + W_k h_s)``); M.-T. Luong, H. Pham and
C. D. Manning, "Effective approaches to attention-based neural machine translation", EMNLP 2015 (the
``dot`` and ``general`` scores, and the attentional state ``tanh(W_c [c_t; h_t])`` that feeds the
output layer). Here every score is used in Luong's arrangement: attention reads the decoder's
*output* at step t, so with teacher forcing the decoder RNN still runs as one fused pass.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rosenblatt import ops
from rosenblatt import random as _random
from rosenblatt.backend import get_array_module
from rosenblatt.core import Tensor, constant, no_grad
from rosenblatt.nn import functional as F
from rosenblatt.nn.embedding import Embedding
from rosenblatt.nn.linear import Linear
from rosenblatt.nn.module import Module
from rosenblatt.nn.rnn import GRU, LSTM, RNN

_CELLS = {"lstm": LSTM, "gru": GRU, "rnn": RNN}


def _tokens(x: Any, what: str) -> Tensor:
    x = x if isinstance(x, Tensor) else Tensor(np.asarray(x))
    if x.ndim != 2 or x.dtype.kind not in "iu":
        raise ValueError(f"Seq2Seq: expected {what} as integer token ids of shape (N, T), got shape "
                         f"{tuple(x.shape)} and dtype {x.dtype}")
    return x


class Encoder(Module):
    """``Embedding -> RNN``: reads token ids and returns the outputs and the final state.

    Args:
        vocab_size, embedding_dim, hidden_size, num_layers, dropout: the layer sizes.
        cell: ``"lstm"``, ``"gru"`` or ``"rnn"``.
        padding_idx: a padding token whose embedding stays zero.

    Shape:
        tokens ``(N, S)`` -> outputs ``(N, S, H)``, state ``(num_layers, N, H)`` (a pair for LSTM).
    """

    def __init__(self, vocab_size: int, embedding_dim: int, hidden_size: int, num_layers: int = 1,
                 cell: str = "lstm", dropout: float = 0.0, padding_idx: int | None = None) -> None:
        super().__init__()
        if cell not in _CELLS:
            raise ValueError(f"Encoder: cell must be one of {sorted(_CELLS)}, got {cell!r}")
        self.cell = cell
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.embedding = Embedding(vocab_size, embedding_dim, padding_idx=padding_idx)
        self.rnn = _CELLS[cell](embedding_dim, hidden_size, num_layers, batch_first=True, dropout=dropout)

    def forward(self, tokens: Any, lengths: Any = None) -> tuple[Tensor, Any]:
        tokens = _tokens(tokens, "source tokens")
        return self.rnn(self.embedding(tokens), lengths=lengths)


class Decoder(Module):
    """``Embedding -> RNN -> Linear``: given the previous tokens and a state, scores the next token.

    Shape:
        tokens ``(N, T)``, state as the encoder's -> logits ``(N, T, vocab_size)``, new state.
    """

    def __init__(self, vocab_size: int, embedding_dim: int, hidden_size: int, num_layers: int = 1,
                 cell: str = "lstm", dropout: float = 0.0, padding_idx: int | None = None) -> None:
        super().__init__()
        if cell not in _CELLS:
            raise ValueError(f"Decoder: cell must be one of {sorted(_CELLS)}, got {cell!r}")
        self.cell = cell
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.vocab_size = vocab_size
        self.embedding = Embedding(vocab_size, embedding_dim, padding_idx=padding_idx)
        self.rnn = _CELLS[cell](embedding_dim, hidden_size, num_layers, batch_first=True, dropout=dropout)
        self.out = Linear(hidden_size, vocab_size)

    def forward(self, tokens: Any, state: Any) -> tuple[Tensor, Any]:
        tokens = _tokens(tokens, "decoder tokens")
        outputs, state = self.rnn(self.embedding(tokens), state)
        return self.out(outputs), state


ATTENTION_SCORES = ("dot", "general", "additive")


class Attention(Module):
    """Attention of decoder outputs over encoder outputs, and Luong's attentional state.

    ``score`` is ``"dot"`` (``h_t . h_s``, Luong), ``"general"`` (``h_t . W_a h_s``, Luong) or
    ``"additive"`` (``v^T tanh(W_q h_t + W_k h_s)``, Bahdanau). The context ``c_t`` (the
    attention-weighted encoder outputs) and ``h_t`` give ``tanh(W_c [c_t; h_t])``.

    Shape:
        queries ``(N, T, H)``, keys ``(N, S, H)``, mask ``(N, S)`` (True for real source tokens) ->
        attentional states ``(N, T, H)`` and weights ``(N, T, S)``.
    """

    def __init__(self, hidden_size: int, score: str = "dot") -> None:
        super().__init__()
        if score not in ATTENTION_SCORES:
            raise ValueError(f"Attention: score must be one of {ATTENTION_SCORES}, got {score!r}")
        self.score = score
        if score == "general":
            self.key_proj = Linear(hidden_size, hidden_size, bias=False)
        elif score == "additive":
            self.query_proj = Linear(hidden_size, hidden_size, bias=False)
            self.key_proj = Linear(hidden_size, hidden_size)
            self.v = Linear(hidden_size, 1, bias=False)
        self.combine = Linear(2 * hidden_size, hidden_size, bias=False)

    def forward(self, queries: Tensor, keys: Tensor, mask: Any = None) -> tuple[Tensor, Tensor]:
        if self.score == "additive":
            # (N, T, 1, H) + (N, 1, S, H) -> scores (N, T, S)
            hidden = ops.tanh(ops.unsqueeze(self.query_proj(queries), 2) + ops.unsqueeze(self.key_proj(keys), 1))
            scores = ops.squeeze(self.v(hidden), -1)
            if mask is not None:
                blocked = np.where(np.asarray(mask)[:, None, :], 0.0, -np.inf).astype(scores.dtype)
                scores = scores + constant(get_array_module(scores.data).asarray(blocked))
            weights = F.softmax(scores, -1)
            context = ops.matmul(weights, keys)
        else:
            projected = self.key_proj(keys) if self.score == "general" else keys
            allowed = None if mask is None else np.asarray(mask)[:, None, :]
            # Luong's scores are not scaled; the fused attention returns the context in one node.
            context = F.scaled_dot_product_attention(queries, projected, keys, attn_mask=allowed, scale=1.0)
            with no_grad():  # the weights are for inspection only
                scores = ops.matmul(queries, ops.swapaxes(projected, -1, -2))
                if allowed is not None:
                    scores = scores + constant(np.where(allowed, 0.0, -np.inf).astype(scores.dtype))
                weights = F.softmax(scores, -1)
        return ops.tanh(self.combine(ops.cat([context, queries], axis=-1))), weights


class Seq2Seq(Module):
    """An encoder-decoder RNN (Sutskever et al. 2014; Cho et al. 2014).

    The encoder's final state (at each source's last real token when ``src_lengths`` is given) is
    the decoder's initial state, so the two must use the same cell, hidden size and depth.

    ``forward(src, tgt, teacher_forcing_ratio=1.0, src_lengths=None)``: ``tgt`` is the decoder's
    input, starting with the start token; ``logits[:, t]`` scores the token that follows
    ``tgt[:, t]`` (train with cross-entropy against ``tgt`` shifted left by one). With ratio 1 the
    decoder reads the whole ground truth in one fused pass (teacher forcing); below 1, at each step
    the ground-truth token is fed with that probability and the model's own previous prediction
    otherwise (the coin is drawn per step from rosenblatt's seeded generator).

    ``greedy_decode(src, max_len, start_token, end_token=None)`` (alias ``generate``) feeds back the
    most likely token at each step.

    ``attention`` (``None``, ``"dot"``, ``"general"`` or ``"additive"``, see :class:`Attention`)
    lets every decoder step attend over all encoder outputs (Bahdanau et al. 2015; Luong et al.
    2015); padded source positions (``src_lengths``) are masked. After each forward pass or decode,
    ``attention_weights`` holds the weights as a NumPy array ``(N, T, S)`` (``rb.viz.plot_attention``
    draws them).

    Shape:
        src ``(N, S)``, tgt ``(N, T)`` int token ids -> logits ``(N, T, vocab_size)``.
    """

    def __init__(self, encoder: Encoder, decoder: Decoder, attention: str | None = None) -> None:
        super().__init__()
        for attr in ("cell", "hidden_size", "num_layers"):
            a, b = getattr(encoder, attr, None), getattr(decoder, attr, None)
            if a != b:
                raise ValueError(f"Seq2Seq: the encoder's {attr} ({a!r}) must equal the decoder's ({b!r}), "
                                 "because the encoder's final state starts the decoder")
        self.encoder = encoder
        self.decoder = decoder
        if attention is not None and attention not in ATTENTION_SCORES:
            raise ValueError(f"Seq2Seq: attention must be None or one of {ATTENTION_SCORES}, got {attention!r}")
        self.attention = None if attention is None else Attention(decoder.hidden_size, attention)
        self.attention_weights: np.ndarray | None = None

    def _decode(self, tokens: Tensor, state: Any, memory: Tensor | None, mask: Any) -> tuple[Tensor, Any, Any]:
        """Decoder logits for ``tokens``, the new state and the attention weights (or None)."""
        if self.attention is None:
            logits, state = self.decoder(tokens, state)
            return logits, state, None
        outputs, state = self.decoder.rnn(self.decoder.embedding(_tokens(tokens, "decoder tokens")), state)
        attended, weights = self.attention(outputs, memory, mask)
        return self.decoder.out(attended), state, weights

    def _encode(self, src: Any, src_lengths: Any) -> tuple[Tensor, Any, Any]:
        memory, state = self.encoder(src, src_lengths)
        mask = None
        if src_lengths is not None and self.attention is not None:
            lengths = np.asarray(src_lengths.numpy() if isinstance(src_lengths, Tensor) else src_lengths)
            mask = np.arange(memory.shape[1])[None, :] < lengths[:, None]
        return memory, state, mask

    def forward(self, src: Any, tgt: Any, teacher_forcing_ratio: float = 1.0, src_lengths: Any = None) -> Tensor:
        if not 0.0 <= teacher_forcing_ratio <= 1.0:
            raise ValueError(f"Seq2Seq: teacher_forcing_ratio must be in [0, 1], got {teacher_forcing_ratio}")
        tgt = _tokens(tgt, "target tokens")
        memory, state, mask = self._encode(src, src_lengths)
        if teacher_forcing_ratio >= 1.0:
            logits, _, weights = self._decode(tgt, state, memory, mask)
            self.attention_weights = None if weights is None else weights.numpy()
            return logits
        steps, maps = [], []
        token = tgt[:, :1]
        for t in range(tgt.shape[1]):
            logits, state, weights = self._decode(token, state, memory, mask)
            steps.append(logits)
            if weights is not None:
                maps.append(weights.numpy())
            if t + 1 < tgt.shape[1]:
                use_truth = _random.generator().random() < teacher_forcing_ratio
                token = tgt[:, t + 1:t + 2] if use_truth else constant(logits.data.argmax(axis=-1))
        self.attention_weights = np.concatenate(maps, axis=1) if maps else None
        return ops.cat(steps, axis=1)

    def greedy_decode(self, src: Any, max_len: int, start_token: int, end_token: int | None = None,
                      src_lengths: Any = None) -> np.ndarray:
        """Decode by feeding back the arg-max token; returns int64 ids ``(N, <= max_len)`` (without the
        start token). Stops early once every sequence has produced ``end_token``; positions after a
        sequence's end token are filled with ``end_token``."""
        with no_grad():
            src = _tokens(src, "source tokens")
            memory, state, mask = self._encode(src, src_lengths)
            batch = src.shape[0]
            maps = []
            token = np.full((batch, 1), start_token, dtype=np.int64)
            finished = np.zeros(batch, dtype=bool)
            generated = []
            for _ in range(max_len):
                # the fed-back tokens live where the model's weights do (NumPy or CuPy)
                xp = get_array_module(self.decoder.embedding.weight.data)
                logits, state, weights = self._decode(constant(xp.asarray(token)), state, memory, mask)
                if weights is not None:
                    maps.append(weights.numpy())
                token = np.asarray(logits.numpy().argmax(axis=-1), dtype=np.int64)
                if end_token is not None:
                    token[finished, 0] = end_token
                    finished |= token[:, 0] == end_token
                generated.append(token)
                if end_token is not None and finished.all():
                    break
            self.attention_weights = np.concatenate(maps, axis=1) if maps else None
            return np.concatenate(generated, axis=1)

    generate = greedy_decode


def seq2seq(src_vocab: int = 16, tgt_vocab: int | None = None, embedding_dim: int = 32, hidden_size: int = 64,
            num_layers: int = 1, cell: str = "lstm", dropout: float = 0.0, attention: str | None = None) -> Seq2Seq:
    """A ``Seq2Seq`` with a matching encoder and decoder (the models registry's factory)."""
    encoder = Encoder(src_vocab, embedding_dim, hidden_size, num_layers, cell, dropout)
    decoder = Decoder(tgt_vocab or src_vocab, embedding_dim, hidden_size, num_layers, cell, dropout)
    return Seq2Seq(encoder, decoder, attention=attention)


__all__ = ["Attention", "Decoder", "Encoder", "Seq2Seq", "seq2seq"]
