"""Recurrent layers (``RNN``, ``LSTM``, ``GRU``) and cells (``RNNCell``, ``LSTMCell``, ``GRUCell``).

Parameter names, shapes, gate orders and the default initialisation are PyTorch's, so a PyTorch
``state_dict`` loads unchanged: ``weight_ih_l{k}`` ``(G*H, in)``, ``weight_hh_l{k}`` ``(G*H, H)``,
``bias_ih_l{k}``, ``bias_hh_l{k}``, ``weight_hr_l{k}`` (LSTM projection), each with a ``_reverse``
suffix for the backward direction; ``G`` is 1 (RNN), 4 (LSTM: i, f, g, o) or 3 (GRU: r, z, n).
Every parameter starts as U(-1/sqrt(H), 1/sqrt(H)).

The layers run each direction of each layer as one fused op
(:mod:`rosenblatt.nn.functional.recurrent`); the cells are composite ops, readable and twice
differentiable.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from rosenblatt import ops
from rosenblatt import random as _random
from rosenblatt.backend import get_array_module
from rosenblatt.core import Tensor, constant, is_grad_enabled
from rosenblatt.nn import init
from rosenblatt.nn.functional import recurrent as R
from rosenblatt.nn.module import Module
from rosenblatt.nn.parameter import Parameter
from rosenblatt.nn.utils.rnn import PackedSequence

_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


def _zeros(shape: tuple[int, ...], like: Tensor) -> Any:
    return get_array_module(like.data).zeros(shape, dtype=like.dtype)


class RNNBase(Module):
    """Shared machinery of :class:`RNN`, :class:`LSTM` and :class:`GRU` (parameters, checks, the
    loop over layers and directions). Use the subclasses."""

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 proj_size: int = 0, peephole: bool = False) -> None:
        super().__init__()
        name = type(self).__name__
        for arg, value in (("input_size", input_size), ("hidden_size", hidden_size), ("num_layers", num_layers)):
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name}: {arg} must be a positive integer, got {value!r}")
        if not isinstance(dropout, (int, float)) or not 0 <= dropout <= 1:
            raise ValueError(f"{name}: dropout must be a probability in [0, 1], got {dropout!r}")
        if proj_size < 0 or (proj_size and proj_size >= hidden_size):
            raise ValueError(f"{name}: proj_size must be 0 or in [1, hidden_size={hidden_size}), got {proj_size}")
        if proj_size and mode != "LSTM":
            raise ValueError(f"{name}: proj_size is only supported by LSTM")
        self.mode = mode
        self.input_size = int(input_size)
        self.hidden_size = int(hidden_size)
        self.num_layers = int(num_layers)
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.dropout = float(dropout)
        self.bidirectional = bool(bidirectional)
        self.proj_size = int(proj_size)
        self.peephole = bool(peephole)
        gate_size = _GATES[mode] * hidden_size
        real_hidden = proj_size or hidden_size
        directions = 2 if bidirectional else 1
        self._layer_names: list[list[dict[str, str | None]]] = []
        for layer in range(num_layers):
            layer_in = input_size if layer == 0 else real_hidden * directions
            names = []
            for direction in range(directions):
                suffix = f"_l{layer}" + ("_reverse" if direction == 1 else "")
                entry: dict[str, str | None] = {}
                self._add(entry, "weight_ih", suffix, (gate_size, layer_in))
                self._add(entry, "weight_hh", suffix, (gate_size, real_hidden))
                self._add(entry, "bias_ih", suffix, (gate_size,) if bias else None)
                self._add(entry, "bias_hh", suffix, (gate_size,) if bias else None)
                self._add(entry, "weight_hr", suffix, (proj_size, hidden_size) if proj_size else None)
                self._add(entry, "weight_peephole", suffix, (3, hidden_size) if peephole else None)
                names.append(entry)
            self._layer_names.append(names)
        self.reset_parameters()

    def _add(self, entry: dict[str, str | None], kind: str, suffix: str, shape: tuple[int, ...] | None) -> None:
        if shape is None:
            entry[kind] = None
            return
        entry[kind] = kind + suffix
        setattr(self, kind + suffix, Parameter(np.zeros(shape, dtype=np.float32)))

    def reset_parameters(self) -> None:
        """PyTorch's default: every parameter U(-1/sqrt(hidden_size), 1/sqrt(hidden_size))."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            init.uniform_(p, -bound, bound)

    def flatten_parameters(self) -> None:
        """Accepted for PyTorch compatibility; the weights are always used in place."""

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size:
            s += f", proj_size={self.proj_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.mode == "RNN_RELU":
            s += ", nonlinearity='relu'"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        if self.peephole:
            s += ", peephole=True"
        return s

    # -- forward ---------------------------------------------------------------------------------
    def _params(self, layer: int, direction: int) -> dict[str, Parameter | None]:
        names = self._layer_names[layer][direction]
        return {kind: (getattr(self, name) if name is not None else None) for kind, name in names.items()}

    def _check_state(self, state: Any, what: str, shape: tuple[int, ...], dtype: Any) -> Tensor:
        name = type(self).__name__
        if not isinstance(state, Tensor):
            state = Tensor(state, dtype=dtype)
        if state.shape != shape:
            raise ValueError(f"{name}: expected {what} of shape {shape} (num_layers * num_directions, batch, "
                             f"size), got {state.shape}")
        if state.dtype != dtype:
            raise TypeError(f"{name}: {what} has dtype {state.dtype}, the input has {dtype}")
        return state

    def forward(self, input: Any, hx: Any = None, lengths: Any = None) -> tuple[Any, Any]:
        name = type(self).__name__
        packed = isinstance(input, PackedSequence)
        if packed:
            if lengths is not None:
                raise ValueError(f"{name}: pass lengths= or a PackedSequence, not both")
            x, lengths = input.padded, input.lengths
            batch_first = False
        else:
            x = input if isinstance(input, Tensor) else Tensor(input)
            batch_first = self.batch_first
        if x.dtype.kind != "f":
            raise TypeError(f"{name}: expected a floating input, got dtype {x.dtype}")
        unbatched = x.ndim == 2 and not packed
        if unbatched:
            x = ops.unsqueeze(x, 1)
            batch_first = False
        if x.ndim != 3:
            raise ValueError(f"{name}: expected input of shape (T, N, {self.input_size})"
                             f"{' / (N, T, ...) with batch_first' if self.batch_first else ''} or unbatched "
                             f"(T, {self.input_size}), got shape {tuple(x.shape)}")
        if x.shape[-1] != self.input_size:
            raise ValueError(f"{name}: expected input with {self.input_size} features (last axis), "
                             f"got shape {tuple(x.shape)}")
        weight_dtype = self.weight_ih_l0.dtype
        if x.dtype != weight_dtype:
            raise TypeError(f"{name}: input dtype {x.dtype} does not match the parameters' dtype {weight_dtype}; "
                            "cast the input or call .to(dtype) on the layer")
        if batch_first:
            x = ops.swapaxes(x, 0, 1)
        steps, batch = x.shape[0], x.shape[1]
        if steps == 0:
            raise ValueError(f"{name}: the input has no time steps (shape {tuple(x.shape)})")
        if lengths is not None:
            lengths = R._lengths_array(lengths)
            if lengths.shape != (batch,):
                raise ValueError(f"{name}: lengths must be a 1-D array of {batch} sequence lengths, "
                                 f"got shape {lengths.shape}")
            if lengths.min() < 1 or lengths.max() > steps:
                raise ValueError(f"{name}: every length must be in [1, {steps}], got {lengths.tolist()}")

        directions = 2 if self.bidirectional else 1
        h_size = self.proj_size or self.hidden_size
        h_shape = (self.num_layers * directions, batch, h_size)
        c_shape = (self.num_layers * directions, batch, self.hidden_size)
        h0 = c0 = None
        if hx is not None:
            if self.mode == "LSTM":
                if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                    raise TypeError(f"{name}: hx must be a tuple (h_0, c_0), got {type(hx).__name__}")
                h0, c0 = hx
                if unbatched:
                    h0, c0 = ops.unsqueeze(_as_tensor(h0), 1), ops.unsqueeze(_as_tensor(c0), 1)
                h0 = self._check_state(h0, "h_0", h_shape, x.dtype)
                c0 = self._check_state(c0, "c_0", c_shape, x.dtype)
            else:
                if isinstance(hx, (tuple, list)):
                    raise TypeError(f"{name}: hx must be a tensor, got a {type(hx).__name__}")
                h0 = ops.unsqueeze(_as_tensor(hx), 1) if unbatched else hx
                h0 = self._check_state(h0, "h_0", h_shape, x.dtype)

        final_h, final_c = [], []
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(directions):
                index = layer * directions + direction
                p = self._params(layer, direction)
                h_init = h0[index] if h0 is not None else constant(_zeros((batch, h_size), x))
                reverse = direction == 1
                if self.mode == "LSTM":
                    c_init = c0[index] if c0 is not None else constant(_zeros((batch, self.hidden_size), x))
                    out, (h_n, c_n) = R.lstm_layer(x, (h_init, c_init), p["weight_ih"], p["weight_hh"],
                                                   p["bias_ih"], p["bias_hh"], p["weight_hr"],
                                                   p["weight_peephole"], reverse=reverse, lengths=lengths)
                    final_c.append(c_n)
                elif self.mode == "GRU":
                    out, h_n = R.gru_layer(x, h_init, p["weight_ih"], p["weight_hh"], p["bias_ih"], p["bias_hh"],
                                           reverse=reverse, lengths=lengths)
                else:
                    out, h_n = R.rnn_layer(x, h_init, p["weight_ih"], p["weight_hh"], p["bias_ih"], p["bias_hh"],
                                           nonlinearity="tanh" if self.mode == "RNN_TANH" else "relu",
                                           reverse=reverse, lengths=lengths)
                outputs.append(out)
                final_h.append(h_n)
            x = outputs[0] if directions == 1 else ops.cat(outputs, axis=2)
            if self.dropout > 0 and self.training and layer < self.num_layers - 1:
                x = _dropout(x, self.dropout)

        output = x
        h_n = _stacked(final_h)
        c_n = _stacked(final_c) if self.mode == "LSTM" else None
        if packed:
            output = PackedSequence(output, lengths, input.sorted_indices, input.unsorted_indices)
        elif unbatched:
            output = ops.squeeze(output, 1)
            h_n = ops.squeeze(h_n, 1)
            c_n = ops.squeeze(c_n, 1) if c_n is not None else None
        elif batch_first:
            output = ops.swapaxes(output, 0, 1)
        if self.mode == "LSTM":
            return output, (h_n, c_n)
        return output, h_n


def _stacked(states: list[Tensor]) -> Tensor:
    """The final states of every layer and direction stacked on a new leading axis. One layer and
    direction (the common case): a view with a new leading axis, no copy (without a graph node
    where none is recorded: at batch 1 the node cost 3.4 us of an LSTM's 260)."""
    if len(states) > 1:
        return ops.stack(states, axis=0)
    state = states[0]
    if is_grad_enabled() and state.requires_grad:
        return ops.unsqueeze(state, 0)
    return constant(state.data[None])


def _as_tensor(x: Any) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(x)


def _dropout(x: Tensor, p: float) -> Tensor:
    # inverted dropout between layers, with rosenblatt's seeded generator
    if p >= 1:
        return x * 0.0
    keep = 1.0 - p
    mask = _random.bernoulli_mask(keep, x.shape, x.dtype) / np.asarray(keep, dtype=x.dtype)
    return x * constant(get_array_module(x.data).asarray(mask))


class RNN(RNNBase):
    """Elman recurrent network: ``h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)``.

    Args:
        input_size, hidden_size: feature sizes of ``x_t`` and ``h_t``.
        num_layers: stacked layers; each layer's output is the next one's input.
        nonlinearity: ``"tanh"`` or ``"relu"``.
        bias: use ``bias_ih``/``bias_hh``.
        batch_first: input and output are ``(N, T, F)`` instead of ``(T, N, F)``.
        dropout: dropout on the outputs of every layer but the last (training only).
        bidirectional: add a layer reading the sequence backwards; outputs are concatenated.

    ``forward(input, hx=None, lengths=None)`` returns ``(output, h_n)``. ``lengths`` (one int per
    sequence) or a ``PackedSequence`` input handles padded batches: outputs past a sequence's end
    are zero and ``h_n`` is taken at its last real step.

    Shape:
        input ``(T, N, in)`` (``(N, T, in)`` with batch_first, or unbatched ``(T, in)``);
        hx ``(num_layers * D, N, H)``; output ``(T, N, D * H)``; h_n ``(num_layers * D, N, H)``
        with ``D = 2`` if bidirectional else 1.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        super().__init__("RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU", input_size, hidden_size,
                         num_layers, bias, batch_first, dropout, bidirectional)
        self.nonlinearity = nonlinearity


class LSTM(RNNBase):
    """Long short-term memory (Hochreiter & Schmidhuber 1997; forget gate: Gers et al. 2000)::

        i = sigmoid(W_ii x + b_ii + W_hi h + b_hi)      f = sigmoid(W_if x + b_if + W_hf h + b_hf)
        g = tanh(W_ig x + b_ig + W_hg h + b_hg)         o = sigmoid(W_io x + b_io + W_ho h + b_ho)
        c' = f * c + i * g                              h' = o * tanh(c')

    ``proj_size > 0`` adds PyTorch's projection ``h' = (o * tanh(c')) W_hr^T`` (Sak et al. 2014).

    ``peephole=True`` adds the peephole connections of Gers & Schmidhuber (2000): the gates also
    look at the cell state, ``i`` and ``f`` at ``c`` and ``o`` at ``c'``, through elementwise
    weights. They are stored per layer and direction as ``weight_peephole_l{k}[_reverse]`` of shape
    ``(3, H)``, rows ``(w_ci, w_cf, w_co)``::

        i = sigmoid(... + w_ci * c)    f = sigmoid(... + w_cf * c)    o = sigmoid(... + w_co * c')

    Without peepholes (the default) the ``state_dict`` is exactly PyTorch's.

    ``forward(input, hx=None, lengths=None)`` returns ``(output, (h_n, c_n))``; arguments as in
    :class:`RNN`.

    Shape:
        input ``(T, N, in)``; h_0 ``(num_layers * D, N, P)``, c_0 ``(num_layers * D, N, H)``;
        output ``(T, N, D * P)`` with ``P = proj_size or H``.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 proj_size: int = 0, peephole: bool = False) -> None:
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         proj_size, peephole)


class GRU(RNNBase):
    """Gated recurrent unit (Cho et al. 2014), in PyTorch's form::

        r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)      z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
        n = tanh(W_in x + b_in + r * (W_hn h + b_hn))   h' = (1 - z) * n + z * h

    ``forward(input, hx=None, lengths=None)`` returns ``(output, h_n)``; arguments as in :class:`RNN`.

    Shape:
        input ``(T, N, in)``; hx ``(num_layers * D, N, H)``; output ``(T, N, D * H)``.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False) -> None:
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional)


# --------------------------------------------------------------------------------------------
# Cells
# --------------------------------------------------------------------------------------------


class RNNCellBase(Module):
    """Parameters and input checks shared by the cells."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool, gates: int) -> None:
        super().__init__()
        name = type(self).__name__
        for arg, value in (("input_size", input_size), ("hidden_size", hidden_size)):
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name}: {arg} must be a positive integer, got {value!r}")
        self.input_size = int(input_size)
        self.hidden_size = int(hidden_size)
        self.bias = bool(bias)
        self.weight_ih = Parameter(np.zeros((gates * hidden_size, input_size), dtype=np.float32))
        self.weight_hh = Parameter(np.zeros((gates * hidden_size, hidden_size), dtype=np.float32))
        if bias:
            self.bias_ih = Parameter(np.zeros(gates * hidden_size, dtype=np.float32))
            self.bias_hh = Parameter(np.zeros(gates * hidden_size, dtype=np.float32))
        else:
            self.bias_ih = None
            self.bias_hh = None

    def reset_parameters(self) -> None:
        """PyTorch's default: every parameter U(-1/sqrt(hidden_size), 1/sqrt(hidden_size))."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            init.uniform_(p, -bound, bound)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if not self.bias:
            s += ", bias=False"
        return s

    def _check_input(self, input: Any) -> tuple[Tensor, bool]:
        name = type(self).__name__
        x = input if isinstance(input, Tensor) else Tensor(input)
        if x.ndim not in (1, 2) or x.shape[-1] != self.input_size:
            raise ValueError(f"{name}: expected input of shape (N, {self.input_size}) or ({self.input_size},), "
                             f"got {tuple(x.shape)}")
        if x.dtype != self.weight_ih.dtype:
            raise TypeError(f"{name}: input dtype {x.dtype} does not match the parameters' dtype "
                            f"{self.weight_ih.dtype}")
        unbatched = x.ndim == 1
        return (ops.unsqueeze(x, 0) if unbatched else x), unbatched

    def _check_state(self, state: Any, what: str, batch: int, size: int, unbatched: bool, like: Tensor) -> Tensor:
        if state is None:
            return constant(_zeros((batch, size), like))
        state = _as_tensor(state)
        if unbatched:
            state = ops.unsqueeze(state, 0)
        if state.shape != (batch, size):
            raise ValueError(f"{type(self).__name__}: expected {what} of shape {(batch, size)}, got {tuple(state.shape)}")
        return state


class RNNCell(RNNCellBase):
    """One step of an Elman RNN: ``h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh)``.

    ``forward(input, hx=None)`` returns ``h'`` (``hx`` defaults to zeros).

    Shape:
        input ``(N, in)`` or ``(in,)``; hx and output ``(N, H)`` or ``(H,)``.
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh") -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNNCell: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        super().__init__(input_size, hidden_size, bias, 1)
        self.nonlinearity = nonlinearity
        self.reset_parameters()

    def extra_repr(self) -> str:
        s = super().extra_repr()
        return s + (", nonlinearity='relu'" if self.nonlinearity == "relu" else "")

    def forward(self, input: Any, hx: Any = None) -> Tensor:
        x, unbatched = self._check_input(input)
        h = self._check_state(hx, "hx", x.shape[0], self.hidden_size, unbatched, x)
        h = R.rnn_cell(x, h, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh, self.nonlinearity)
        return ops.squeeze(h, 0) if unbatched else h


class LSTMCell(RNNCellBase):
    """One LSTM step (see :class:`LSTM`); ``peephole=True`` adds ``weight_peephole`` ``(3, H)``,
    rows ``(w_ci, w_cf, w_co)`` (Gers & Schmidhuber 2000).

    ``forward(input, hx=None)`` takes ``hx = (h, c)`` (zeros by default) and returns ``(h', c')``.

    Shape:
        input ``(N, in)`` or ``(in,)``; h, c, h', c' ``(N, H)`` or ``(H,)``.
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, peephole: bool = False) -> None:
        super().__init__(input_size, hidden_size, bias, 4)
        self.peephole = bool(peephole)
        if peephole:
            self.weight_peephole = Parameter(np.zeros((3, hidden_size), dtype=np.float32))
        self.reset_parameters()

    def extra_repr(self) -> str:
        return super().extra_repr() + (", peephole=True" if self.peephole else "")

    def forward(self, input: Any, hx: Any = None) -> tuple[Tensor, Tensor]:
        x, unbatched = self._check_input(input)
        if hx is None:
            hx = (None, None)
        elif not isinstance(hx, (tuple, list)) or len(hx) != 2:
            raise TypeError(f"LSTMCell: hx must be a tuple (h, c), got {type(hx).__name__}")
        h = self._check_state(hx[0], "h", x.shape[0], self.hidden_size, unbatched, x)
        c = self._check_state(hx[1], "c", x.shape[0], self.hidden_size, unbatched, x)
        h, c = R.lstm_cell(x, (h, c), self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh,
                           self.weight_peephole if self.peephole else None)
        if unbatched:
            return ops.squeeze(h, 0), ops.squeeze(c, 0)
        return h, c


class GRUCell(RNNCellBase):
    """One GRU step (see :class:`GRU`). ``forward(input, hx=None)`` returns ``h'``.

    Shape:
        input ``(N, in)`` or ``(in,)``; hx and output ``(N, H)`` or ``(H,)``.
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True) -> None:
        super().__init__(input_size, hidden_size, bias, 3)
        self.reset_parameters()

    def forward(self, input: Any, hx: Any = None) -> Tensor:
        x, unbatched = self._check_input(input)
        h = self._check_state(hx, "hx", x.shape[0], self.hidden_size, unbatched, x)
        h = R.gru_cell(x, h, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        return ops.squeeze(h, 0) if unbatched else h


__all__ = ["GRU", "GRUCell", "LSTM", "LSTMCell", "RNN", "RNNBase", "RNNCell", "RNNCellBase"]
