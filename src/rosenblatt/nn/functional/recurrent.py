"""Recurrent layers and cells: the fused whole-sequence layers and the readable composite cells.

Two families live here.

**Cells** (:func:`rnn_cell`, :func:`lstm_cell`, :func:`gru_cell`) compute one time step with
ordinary differentiable ops. They are short, they follow the textbook formulas line by line, they
support double backward, and they are the oracle the fused layers are tested against.

**Fused layers** (:func:`rnn_layer`, :func:`lstm_layer`, :func:`gru_layer`) run one direction of
one layer over a whole sequence as a single :class:`~rosenblatt.core.Function`, whose forward and
hand-written backpropagation through time are array kernels:

- :mod:`rosenblatt.kernels.recurrent`, the NumPy (and CuPy) reference: one GEMM for the input
  projection of all time steps, then one recurrent GEMM per step with the gate non-linearities
  computed in place, and the weight gradients as one GEMM over all steps;
- :mod:`rosenblatt.kernels.onednn.recurrent`, oneDNN's RNN primitives, used when the oneDNN kernel
  set is active and the call is float32 NumPy without ``lengths`` (LSTM projection and peepholes
  included).

Recording one node per sequence instead of ~15 per step is what makes a NumPy LSTM competitive:
the per-op overhead of an autodiff graph (a few microseconds) would otherwise dominate.
The fused layers compute their gradient on arrays only (``backward_arrays``), so they are
differentiable once (use the cells for second derivatives).

Variable-length batches: ``lengths`` (one int per sequence) masks the steps past each sequence's
end. At a masked step the state is carried through unchanged and the output is zero, so the
forward direction's final state is the state at the last real step, and the backward direction
(``reverse=True``) starts from the initial state at each sequence's own last step - exactly what
PyTorch computes on a ``PackedSequence``.

Gate layouts are PyTorch's: LSTM ``(4H, in)`` rows ``i, f, g, o``; GRU ``(3H, in)`` rows ``r, z, n``
with ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rosenblatt import kernels, ops
from rosenblatt.core import Function, Tensor
from rosenblatt.kernels import recurrent as K

# --------------------------------------------------------------------------------------------
# Composite cells (the readable reference)
# --------------------------------------------------------------------------------------------


def _affine(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    y = ops.matmul(x, weight.T)
    return y if bias is None else y + bias


def rnn_cell(input: Tensor, hx: Tensor, weight_ih: Tensor, weight_hh: Tensor, bias_ih: Tensor | None = None,
             bias_hh: Tensor | None = None, nonlinearity: str = "tanh") -> Tensor:
    """One Elman step: ``h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh)`` (``act`` is tanh or relu).

    Shape:
        input ``(N, in)``, hx ``(N, H)`` -> ``(N, H)``.
    """
    pre = _affine(input, weight_ih, bias_ih) + _affine(hx, weight_hh, bias_hh)
    if nonlinearity == "tanh":
        return ops.tanh(pre)
    if nonlinearity == "relu":
        return ops.relu(pre)
    raise ValueError(f"rnn_cell: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")


def lstm_cell(input: Tensor, hx: tuple[Tensor, Tensor], weight_ih: Tensor, weight_hh: Tensor,
              bias_ih: Tensor | None = None, bias_hh: Tensor | None = None,
              weight_peephole: Tensor | None = None, weight_hr: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """One LSTM step (Hochreiter & Schmidhuber 1997, with the forget gate of Gers et al. 2000).

    ``i, f, g, o`` are the four row blocks of ``x W_ih^T + b_ih + h W_hh^T + b_hh``::

        i = sigmoid(a_i [+ w_ci * c]),  f = sigmoid(a_f [+ w_cf * c]),  g = tanh(a_g)
        c' = f * c + i * g
        o = sigmoid(a_o [+ w_co * c']),  h' = o * tanh(c')   [then h' = h' W_hr^T with a projection]

    The bracketed peephole terms (Gers & Schmidhuber 2000) are used when ``weight_peephole`` - the
    rows ``(w_ci, w_cf, w_co)``, shape ``(3, H)`` - is given.

    Shape:
        input ``(N, in)``, h ``(N, P)``, c ``(N, H)`` -> ``(h', c')`` of the same shapes
        (``P = H`` without a projection).
    """
    h, c = hx
    gates = _affine(input, weight_ih, bias_ih) + _affine(h, weight_hh, bias_hh)
    a_i, a_f, a_g, a_o = ops.chunk(gates, 4, axis=-1)
    if weight_peephole is not None:
        a_i = a_i + weight_peephole[0] * c
        a_f = a_f + weight_peephole[1] * c
    i, f, g = ops.sigmoid(a_i), ops.sigmoid(a_f), ops.tanh(a_g)
    c_next = f * c + i * g
    if weight_peephole is not None:
        a_o = a_o + weight_peephole[2] * c_next
    o = ops.sigmoid(a_o)
    h_next = o * ops.tanh(c_next)
    if weight_hr is not None:
        h_next = ops.matmul(h_next, weight_hr.T)
    return h_next, c_next


def gru_cell(input: Tensor, hx: Tensor, weight_ih: Tensor, weight_hh: Tensor, bias_ih: Tensor | None = None,
             bias_hh: Tensor | None = None) -> Tensor:
    """One GRU step (Cho et al. 2014) in PyTorch's form::

        r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)
        z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
        n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
        h' = (1 - z) * n + z * h

    Shape:
        input ``(N, in)``, hx ``(N, H)`` -> ``(N, H)``.
    """
    gi_r, gi_z, gi_n = ops.chunk(_affine(input, weight_ih, bias_ih), 3, axis=-1)
    gh_r, gh_z, gh_n = ops.chunk(_affine(hx, weight_hh, bias_hh), 3, axis=-1)
    r = ops.sigmoid(gi_r + gh_r)
    z = ops.sigmoid(gi_z + gh_z)
    n = ops.tanh(gi_n + r * gh_n)
    return (1 - z) * n + z * hx


# --------------------------------------------------------------------------------------------
# Fused layers: Functions around the kernels of rosenblatt.kernels.recurrent
# --------------------------------------------------------------------------------------------


def _kernel_module(covered: bool, *arrays: Any) -> Any:
    """The kernels for one fused-layer call: oneDNN's when active and covering the call (float32
    NumPy arrays, no lengths), else the NumPy reference kernels."""
    if covered and kernels.use_onednn(*arrays):
        from rosenblatt.kernels.onednn import recurrent as onednn_recurrent

        return onednn_recurrent
    return K


def _weights_version(*params: Any) -> tuple | None:
    """The parameters' version counters: a stamp under which the oneDNN kernels reuse the weights'
    layouts in inference (every in-place change of a parameter moves it). ``None`` (no reuse) when
    a parameter is not a tensor."""
    if not all(p is None or isinstance(p, Tensor) for p in params):
        return None
    return tuple(-1 if p is None else p._version for p in params)


def _stamp(kernel: Any, weights_version: Any) -> dict:
    """The keyword the oneDNN kernels take for ``weights_version`` (the NumPy kernels take none)."""
    return {} if kernel is K or weights_version is None else {"weights_version": weights_version}


class LSTMLayer(Function):
    """One direction of one LSTM layer over a whole sequence (see the module docstring).

    Inputs ``(x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh, weight_hr, weight_peephole)``;
    the last four may be None. Outputs ``(output, h_n, c_n)``.
    """

    @staticmethod
    def forward(ctx, x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, w_peep, reverse=False, lengths=None,
                weights_version=None):
        training = any(ctx.needs_input_grad)
        kernel = _kernel_module(lengths is None, x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, w_peep)
        output, h_n, c_n, saved = kernel.lstm_forward(x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, w_peep,
                                                      reverse=reverse, lengths=lengths, training=training,
                                                      **_stamp(kernel, weights_version))
        if training:
            ctx.kernel = kernel
            ctx.save_for_backward(saved)
        return output, h_n, c_n

    @staticmethod
    def backward_arrays(ctx, grad_output, grad_h_n, grad_c_n):
        (saved,) = ctx.saved_arrays
        return ctx.kernel.lstm_backward(saved, grad_output, grad_h_n, grad_c_n, ctx.needs_input_grad)


class GRULayer(Function):
    """One direction of one GRU layer over a whole sequence (see the module docstring).

    Inputs ``(x, h0, weight_ih, weight_hh, bias_ih, bias_hh)`` (biases may be None).
    Outputs ``(output, h_n)``.
    """

    @staticmethod
    def forward(ctx, x, h0, w_ih, w_hh, b_ih, b_hh, reverse=False, lengths=None, weights_version=None):
        training = any(ctx.needs_input_grad)
        kernel = _kernel_module(lengths is None, x, h0, w_ih, w_hh, b_ih, b_hh)
        output, h_n, saved = kernel.gru_forward(x, h0, w_ih, w_hh, b_ih, b_hh, reverse=reverse, lengths=lengths,
                                                training=training, **_stamp(kernel, weights_version))
        if training:
            ctx.kernel = kernel
            ctx.save_for_backward(saved)
        return output, h_n

    @staticmethod
    def backward_arrays(ctx, grad_output, grad_h_n):
        (saved,) = ctx.saved_arrays
        return ctx.kernel.gru_backward(saved, grad_output, grad_h_n, ctx.needs_input_grad)


class RNNLayer(Function):
    """One direction of one Elman RNN layer (tanh or relu) over a whole sequence.

    Inputs ``(x, h0, weight_ih, weight_hh, bias_ih, bias_hh)``; outputs ``(output, h_n)``.
    """

    @staticmethod
    def forward(ctx, x, h0, w_ih, w_hh, b_ih, b_hh, nonlinearity="tanh", reverse=False, lengths=None,
                weights_version=None):
        training = any(ctx.needs_input_grad)
        kernel = _kernel_module(lengths is None, x, h0, w_ih, w_hh, b_ih, b_hh)
        output, h_n, saved = kernel.rnn_forward(x, h0, w_ih, w_hh, b_ih, b_hh, nonlinearity=nonlinearity,
                                                reverse=reverse, lengths=lengths, training=training,
                                                **_stamp(kernel, weights_version))
        if training:
            ctx.kernel = kernel
            ctx.save_for_backward(saved)
        return output, h_n

    @staticmethod
    def backward_arrays(ctx, grad_output, grad_h_n):
        (saved,) = ctx.saved_arrays
        return ctx.kernel.rnn_backward(saved, grad_output, grad_h_n, ctx.needs_input_grad)


# --------------------------------------------------------------------------------------------
# Functional entry points of the fused layers
# --------------------------------------------------------------------------------------------


def _lengths_array(lengths: Any) -> Any:
    if lengths is None:
        return None
    if isinstance(lengths, Tensor):
        lengths = lengths.data
    lengths = np.asarray(lengths.get() if hasattr(lengths, "get") else lengths)
    if lengths.dtype.kind not in "iu":
        raise TypeError(f"lengths must be an array of integers, got dtype {lengths.dtype}")
    return lengths.astype(np.int64)


def rnn_layer(input: Tensor, hx: Tensor, weight_ih: Tensor, weight_hh: Tensor, bias_ih: Tensor | None = None,
              bias_hh: Tensor | None = None, nonlinearity: str = "tanh", reverse: bool = False,
              lengths: Any = None) -> tuple[Tensor, Tensor]:
    """Run one direction of an Elman RNN layer over a time-major sequence, fused.

    ``reverse=True`` reads the sequence from its end (each sequence's own end with ``lengths``).

    Shape:
        input ``(T, N, in)``, hx ``(N, H)`` -> output ``(T, N, H)`` (zero past each length), h_n ``(N, H)``.
    """
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"rnn_layer: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
    return RNNLayer.apply(input, hx, weight_ih, weight_hh, bias_ih, bias_hh, nonlinearity=nonlinearity,
                          reverse=reverse, lengths=_lengths_array(lengths),
                          weights_version=_weights_version(weight_ih, weight_hh, bias_ih, bias_hh))


def lstm_layer(input: Tensor, hx: tuple[Tensor, Tensor], weight_ih: Tensor, weight_hh: Tensor,
               bias_ih: Tensor | None = None, bias_hh: Tensor | None = None, weight_hr: Tensor | None = None,
               weight_peephole: Tensor | None = None, reverse: bool = False,
               lengths: Any = None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    """Run one direction of an LSTM layer over a time-major sequence, fused.

    Shape:
        input ``(T, N, in)``, h0 ``(N, P)``, c0 ``(N, H)`` -> output ``(T, N, P)``, ``(h_n, c_n)``
        (``P`` is the projection size, or ``H``).
    """
    h0, c0 = hx
    output, h_n, c_n = LSTMLayer.apply(input, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh, weight_hr,
                                       weight_peephole, reverse=reverse, lengths=_lengths_array(lengths),
                                       weights_version=_weights_version(weight_ih, weight_hh, bias_ih, bias_hh,
                                                                        weight_hr, weight_peephole))
    return output, (h_n, c_n)


def gru_layer(input: Tensor, hx: Tensor, weight_ih: Tensor, weight_hh: Tensor, bias_ih: Tensor | None = None,
              bias_hh: Tensor | None = None, reverse: bool = False, lengths: Any = None) -> tuple[Tensor, Tensor]:
    """Run one direction of a GRU layer over a time-major sequence, fused.

    Shape:
        input ``(T, N, in)``, hx ``(N, H)`` -> output ``(T, N, H)``, h_n ``(N, H)``.
    """
    return GRULayer.apply(input, hx, weight_ih, weight_hh, bias_ih, bias_hh, reverse=reverse,
                          lengths=_lengths_array(lengths),
                          weights_version=_weights_version(weight_ih, weight_hh, bias_ih, bias_hh))


__all__ = ["GRULayer", "LSTMLayer", "RNNLayer", "gru_cell", "gru_layer", "lstm_cell", "lstm_layer", "rnn_cell",
           "rnn_layer"]
