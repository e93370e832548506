"""Recurrent layers and cells: the fused whole-sequence layers and the readable composite cells.

Two families live here.

**Cells** (:func:`rnn_cell`, :func:`lstm_cell`, :func:`gru_cell`) compute one time step with
ordinary differentiable ops. They are short, they follow the textbook formulas line by line, they
support double backward, and they are the oracle the fused layers are tested against.

**Fused layers** (:func:`rnn_layer`, :func:`lstm_layer`, :func:`gru_layer`) run one direction of
one layer over a whole sequence as a single :class:`~rosenblatt.core.Function`:

- the input projection of every time step is one GEMM, ``(T*N, in) @ (in, G*H)``, done up front;
- each step then costs one recurrent GEMM plus gate non-linearities computed in place on
  preallocated buffers (no graph nodes, no temporaries per step);
- backward is hand-written backpropagation through time on raw arrays: the per-step loop only
  carries the state gradients, and the weight gradients are accumulated at the end with one GEMM
  over all time steps (``dW_ih = dA^T X``, ``dW_hh = dA^T H_prev``).

Recording one node per sequence instead of ~15 per step is what makes a NumPy LSTM competitive:
the per-op overhead of an autodiff graph (a few microseconds) would otherwise dominate.
The fused layers compute their gradient directly, so they set ``once_differentiable`` (use the
cells for second derivatives).

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

from rosenblatt import ops
from rosenblatt.backend import get_array_module
from rosenblatt.core import Function, Tensor

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
# Helpers of the fused layers (raw arrays, in place)
# --------------------------------------------------------------------------------------------


def _sigmoid_(a: Any, xp: Any) -> None:
    # sigmoid(a) = (1 + tanh(a / 2)) / 2: one transcendental call, in place, and no overflow
    # warning for large |a| (1 / (1 + exp(-a)) overflows exp for a < -88 in float32).
    a *= 0.5
    xp.tanh(a, out=a)
    a *= 0.5
    a += 0.5


def _sigmoid_grad_(grad: Any, s: Any, scratch: Any, xp: Any) -> None:
    # grad *= s * (1 - s), with s = sigmoid(a) already computed
    xp.subtract(1.0, s, out=scratch)
    scratch *= s
    grad *= scratch


def _tanh_grad_(grad: Any, t: Any, scratch: Any, xp: Any) -> None:
    # grad *= 1 - t^2, with t = tanh(a) already computed
    xp.multiply(t, t, out=scratch)
    xp.subtract(1.0, scratch, out=scratch)
    grad *= scratch


def _step_masks(lengths: Any, steps: int, batch: int, dtype: Any, xp: Any, op: str) -> Any:
    """``(T, N, 1)`` array: 1 where step t is inside sequence n (t < lengths[n]), else 0."""
    if lengths is None:
        return None
    lengths = np.asarray(lengths.get() if hasattr(lengths, "get") else lengths)
    if lengths.ndim != 1 or lengths.shape[0] != batch:
        raise ValueError(f"{op}: lengths must be a 1-D array of {batch} sequence lengths, got shape {lengths.shape}")
    if lengths.dtype.kind not in "iu":
        raise TypeError(f"{op}: lengths must be integers, got dtype {lengths.dtype}")
    if lengths.size and (lengths.min() < 1 or lengths.max() > steps):
        raise ValueError(f"{op}: every length must be in [1, {steps}] (the number of time steps), "
                         f"got min {lengths.min()}, max {lengths.max()}")
    mask = (np.arange(steps)[:, None] < lengths[None, :]).astype(dtype)[:, :, None]
    return xp.asarray(mask)


def _time_order(steps: int, reverse: bool) -> range:
    return range(steps - 1, -1, -1) if reverse else range(steps)


def _previous_states(states: Any, initial: Any, reverse: bool, xp: Any) -> Any:
    """The state *entering* each time step, in time order: ``(T, N, X)``."""
    if reverse:
        return xp.concatenate([states[1:], initial[None]], axis=0)
    return xp.concatenate([initial[None], states[:-1]], axis=0)


def _blend_(new: Any, old: Any, mask: Any) -> None:
    # new = mask * new + (1 - mask) * old, in place: masked rows keep the old state
    new -= old
    new *= mask
    new += old


def _gemm_t(a: Any, b: Any) -> Any:
    """``sum_t a[t]^T b[t]`` as one GEMM: a ``(T, N, A)``, b ``(T, N, B)`` -> ``(A, B)``."""
    return a.reshape(-1, a.shape[-1]).T @ b.reshape(-1, b.shape[-1])


def _input_projection(x: Any, w_ih: Any, bias: Any) -> Any:
    """``x W_ih^T + bias`` for every time step at once: ``(T, N, in)`` -> ``(T, N, G)``."""
    T, N, _ = x.shape
    out = x.reshape(T * N, -1) @ w_ih.T
    if bias is not None:
        out += bias
    return out.reshape(T, N, -1)


# --------------------------------------------------------------------------------------------
# Fused LSTM layer
# --------------------------------------------------------------------------------------------


class LSTMLayer(Function):
    """One direction of one LSTM layer over a whole sequence (see the module docstring).

    Inputs ``(x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh, weight_hr, weight_peephole)``;
    the last four may be None. Outputs ``(output, h_n, c_n)``.
    """

    once_differentiable = True

    @staticmethod
    def forward(ctx, x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, w_peep, reverse=False, lengths=None):
        xp = get_array_module(x)
        T, N, _ = x.shape
        H = w_hh.shape[0] // 4
        P = w_hh.shape[1]  # hidden size, or proj_size with a projection
        dtype = x.dtype
        bias = None if b_ih is None else b_ih + b_hh
        # gates[t] first holds the pre-activations, then (in place) the activations i, f, g, o
        gates = _input_projection(x, w_ih, bias)
        masks = _step_masks(lengths, T, N, dtype, xp, "LSTM")
        h_states = xp.empty((T, N, P), dtype=dtype)  # state after step t (time order)
        c_states = xp.empty((T, N, H), dtype=dtype)
        tanh_c = xp.empty((T, N, H), dtype=dtype)
        m_states = xp.empty((T, N, H), dtype=dtype) if w_hr is not None else None
        recurrent = xp.empty((N, 4 * H), dtype=dtype)
        scratch = xp.empty((N, H), dtype=dtype)
        w_hh_t = w_hh.T
        h, c = h0, c0
        for t in _time_order(T, reverse):
            a = gates[t]
            xp.matmul(h, w_hh_t, out=recurrent)
            a += recurrent
            a_i, a_f, a_g, a_o = a[:, :H], a[:, H:2 * H], a[:, 2 * H:3 * H], a[:, 3 * H:]
            if w_peep is not None:
                xp.multiply(w_peep[0], c, out=scratch)
                a_i += scratch
                xp.multiply(w_peep[1], c, out=scratch)
                a_f += scratch
            _sigmoid_(a[:, :2 * H], xp)
            xp.tanh(a_g, out=a_g)
            c_new = c_states[t]
            xp.multiply(a_f, c, out=c_new)
            xp.multiply(a_i, a_g, out=scratch)
            c_new += scratch
            if w_peep is not None:
                xp.multiply(w_peep[2], c_new, out=scratch)
                a_o += scratch
            _sigmoid_(a_o, xp)
            xp.tanh(c_new, out=tanh_c[t])
            if w_hr is None:
                h_new = h_states[t]
                xp.multiply(a_o, tanh_c[t], out=h_new)
            else:
                xp.multiply(a_o, tanh_c[t], out=m_states[t])
                h_new = h_states[t]
                xp.matmul(m_states[t], w_hr.T, out=h_new)
            if masks is not None:
                _blend_(c_new, c, masks[t])
                _blend_(h_new, h, masks[t])
            h, c = h_new, c_new
        output = h_states if masks is None else h_states * masks
        if any(ctx.needs_input_grad):
            ctx.reverse = reverse
            ctx.masks = masks
            ctx.save_for_backward(x, h0, c0, w_ih, w_hh, w_hr, w_peep, gates, h_states, c_states, tanh_c,
                                  m_states)
        return output, h.copy(), c.copy()

    @staticmethod
    def backward(ctx, grad_output, grad_h_n, grad_c_n):
        (x, h0, c0, w_ih, w_hh, w_hr, w_peep, gates, h_states, c_states, tanh_c,
         m_states) = ctx.saved_arrays
        xp = get_array_module(x)
        masks, reverse = ctx.masks, ctx.reverse
        T, N, _ = x.shape
        H = c0.shape[1]
        dtype = x.dtype
        dy = grad_output.data
        if masks is not None:
            dy = dy * masks  # the output is zero past each sequence's end
        dh = grad_h_n.data.astype(dtype, copy=True)
        dc = grad_c_n.data.astype(dtype, copy=True)
        d_gates = xp.empty((T, N, 4 * H), dtype=dtype)
        d_h_candidate = xp.empty((T, N, dh.shape[1]), dtype=dtype) if w_hr is not None else None
        c_prev_all = _previous_states(c_states, c0, reverse, xp)
        g_total = xp.empty_like(dh)
        d_c_total = xp.empty((N, H), dtype=dtype)
        scratch = xp.empty((N, H), dtype=dtype)
        scratch2 = xp.empty((N, H), dtype=dtype)
        for t in reversed(_time_order(T, reverse)):
            mask = None if masks is None else masks[t]
            a = gates[t]
            i, f, g, o = a[:, :H], a[:, H:2 * H], a[:, 2 * H:3 * H], a[:, 3 * H:]
            da = d_gates[t]
            da_i, da_f, da_g, da_o = da[:, :H], da[:, H:2 * H], da[:, 2 * H:3 * H], da[:, 3 * H:]
            c_prev = c_prev_all[t]
            # gradient reaching this step's (candidate) h and c
            xp.add(dh, dy[t], out=g_total)
            if mask is not None:
                carry_h = g_total * (1.0 - mask)
                carry_c = dc * (1.0 - mask)
                g_total *= mask
                dc *= mask
            if w_hr is not None:
                d_h_candidate[t] = g_total
                d_m = g_total @ w_hr
            else:
                d_m = g_total
            tc = tanh_c[t]
            # do = dm * tanh(c);  dc += dm * o * (1 - tanh(c)^2)
            xp.multiply(d_m, tc, out=da_o)
            _sigmoid_grad_(da_o, o, scratch, xp)
            xp.multiply(d_m, o, out=d_c_total)
            _tanh_grad_(d_c_total, tc, scratch, xp)
            d_c_total += dc
            if w_peep is not None:
                xp.multiply(da_o, w_peep[2], out=scratch)
                d_c_total += scratch
            xp.multiply(d_c_total, g, out=da_i)
            _sigmoid_grad_(da_i, i, scratch, xp)
            xp.multiply(d_c_total, i, out=da_g)
            _tanh_grad_(da_g, g, scratch, xp)
            xp.multiply(d_c_total, c_prev, out=da_f)
            _sigmoid_grad_(da_f, f, scratch, xp)
            dc = d_c_total * f
            if w_peep is not None:
                xp.multiply(da_i, w_peep[0], out=scratch2)
                dc += scratch2
                xp.multiply(da_f, w_peep[1], out=scratch2)
                dc += scratch2
            dh = da @ w_hh
            if mask is not None:
                dh += carry_h
                dc += carry_c
        needs = ctx.needs_input_grad
        h_prev_all = _previous_states(h_states, h0, reverse, xp)
        grads: list[Any] = [None] * 9
        if needs[0]:
            grads[0] = (d_gates.reshape(T * N, -1) @ w_ih).reshape(x.shape)
        if needs[1]:
            grads[1] = dh
        if needs[2]:
            grads[2] = dc
        if needs[3]:
            grads[3] = _gemm_t(d_gates, x)
        if needs[4]:
            grads[4] = _gemm_t(d_gates, h_prev_all)
        if needs[5] or needs[6]:
            d_bias = d_gates.sum(axis=(0, 1))
            grads[5] = d_bias if needs[5] else None
            grads[6] = d_bias if needs[6] else None
        if needs[7]:
            grads[7] = _gemm_t(d_h_candidate, m_states)
        if needs[8]:
            grads[8] = xp.stack([
                (d_gates[:, :, :H] * c_prev_all).sum(axis=(0, 1)),
                (d_gates[:, :, H:2 * H] * c_prev_all).sum(axis=(0, 1)),
                (d_gates[:, :, 3 * H:] * c_states).sum(axis=(0, 1)),
            ])
        return tuple(grads)


# --------------------------------------------------------------------------------------------
# Fused GRU layer
# --------------------------------------------------------------------------------------------


class GRULayer(Function):
    """One direction of one GRU layer over a whole sequence (see the module docstring).

    Inputs ``(x, h0, weight_ih, weight_hh, bias_ih, bias_hh)`` (biases may be None).
    Outputs ``(output, h_n)``.
    """

    once_differentiable = True

    @staticmethod
    def forward(ctx, x, h0, w_ih, w_hh, b_ih, b_hh, reverse=False, lengths=None):
        xp = get_array_module(x)
        T, N, _ = x.shape
        H = w_hh.shape[1]
        dtype = x.dtype
        # the r and z biases of both projections add up front; b_hn stays inside r * (.)
        bias = None
        if b_ih is not None:
            bias = b_ih.copy()
            bias[:2 * H] += b_hh[:2 * H]
        gates = _input_projection(x, w_ih, bias)  # becomes r, z, n in place
        masks = _step_masks(lengths, T, N, dtype, xp, "GRU")
        h_states = xp.empty((T, N, H), dtype=dtype)
        hidden_n = xp.empty((T, N, H), dtype=dtype)  # W_hn h + b_hn of each step
        recurrent = xp.empty((N, 3 * H), dtype=dtype)
        scratch = xp.empty((N, H), dtype=dtype)
        w_hh_t = w_hh.T
        h = h0
        for t in _time_order(T, reverse):
            a = gates[t]
            xp.matmul(h, w_hh_t, out=recurrent)
            a[:, :2 * H] += recurrent[:, :2 * H]
            _sigmoid_(a[:, :2 * H], xp)
            r, z, n = a[:, :H], a[:, H:2 * H], a[:, 2 * H:]
            hn = hidden_n[t]
            if b_hh is not None:
                xp.add(recurrent[:, 2 * H:], b_hh[2 * H:], out=hn)
            else:
                hn[...] = recurrent[:, 2 * H:]
            xp.multiply(r, hn, out=scratch)
            n += scratch
            xp.tanh(n, out=n)
            h_new = h_states[t]  # h' = n + z * (h - n)
            xp.subtract(h, n, out=h_new)
            h_new *= z
            h_new += n
            if masks is not None:
                _blend_(h_new, h, masks[t])
            h = h_new
        output = h_states if masks is None else h_states * masks
        if any(ctx.needs_input_grad):
            ctx.reverse = reverse
            ctx.masks = masks
            ctx.save_for_backward(x, h0, w_ih, w_hh, gates, hidden_n, h_states)
        return output, h.copy()

    @staticmethod
    def backward(ctx, grad_output, grad_h_n):
        x, h0, w_ih, w_hh, gates, hidden_n, h_states = ctx.saved_arrays
        xp = get_array_module(x)
        masks, reverse = ctx.masks, ctx.reverse
        T, N, _ = x.shape
        H = h0.shape[1]
        dtype = x.dtype
        dy = grad_output.data
        if masks is not None:
            dy = dy * masks
        dh = grad_h_n.data.astype(dtype, copy=True)
        h_prev_all = _previous_states(h_states, h0, reverse, xp)
        d_input_gates = xp.empty((T, N, 3 * H), dtype=dtype)
        d_hidden_gates = xp.empty((T, N, 3 * H), dtype=dtype)
        g_total = xp.empty_like(dh)
        scratch = xp.empty((N, H), dtype=dtype)
        for t in reversed(_time_order(T, reverse)):
            mask = None if masks is None else masks[t]
            a = gates[t]
            r, z, n = a[:, :H], a[:, H:2 * H], a[:, 2 * H:]
            h_prev = h_prev_all[t]
            xp.add(dh, dy[t], out=g_total)
            if mask is not None:
                carry = g_total * (1.0 - mask)
                g_total *= mask
            dgi = d_input_gates[t]
            dgh = d_hidden_gates[t]
            dgi_r, dgi_z, dgi_n = dgi[:, :H], dgi[:, H:2 * H], dgi[:, 2 * H:]
            # n-gate pre-activation: dn * (1 - n^2), with dn = g * (1 - z)
            xp.subtract(1.0, z, out=dgi_n)
            dgi_n *= g_total
            _tanh_grad_(dgi_n, n, scratch, xp)
            # z-gate: dz = g * (h - n)
            xp.subtract(h_prev, n, out=dgi_z)
            dgi_z *= g_total
            _sigmoid_grad_(dgi_z, z, scratch, xp)
            # r-gate: dr = d(pre_n) * (W_hn h + b_hn)
            xp.multiply(dgi_n, hidden_n[t], out=dgi_r)
            _sigmoid_grad_(dgi_r, r, scratch, xp)
            dgh[:, :2 * H] = dgi[:, :2 * H]
            xp.multiply(dgi_n, r, out=dgh[:, 2 * H:])
            dh = dgh @ w_hh
            xp.multiply(g_total, z, out=scratch)
            dh += scratch
            if mask is not None:
                dh += carry
        needs = ctx.needs_input_grad
        grads: list[Any] = [None] * 6
        if needs[0]:
            grads[0] = (d_input_gates.reshape(T * N, -1) @ w_ih).reshape(x.shape)
        if needs[1]:
            grads[1] = dh
        if needs[2]:
            grads[2] = _gemm_t(d_input_gates, x)
        if needs[3]:
            grads[3] = _gemm_t(d_hidden_gates, h_prev_all)
        if needs[4]:
            grads[4] = d_input_gates.sum(axis=(0, 1))
        if needs[5]:
            grads[5] = d_hidden_gates.sum(axis=(0, 1))
        return tuple(grads)


# --------------------------------------------------------------------------------------------
# Fused Elman RNN layer
# --------------------------------------------------------------------------------------------


class RNNLayer(Function):
    """One direction of one Elman RNN layer (tanh or relu) over a whole sequence.

    Inputs ``(x, h0, weight_ih, weight_hh, bias_ih, bias_hh)``; outputs ``(output, h_n)``.
    """

    once_differentiable = True

    @staticmethod
    def forward(ctx, x, h0, w_ih, w_hh, b_ih, b_hh, nonlinearity="tanh", reverse=False, lengths=None):
        xp = get_array_module(x)
        T, N, _ = x.shape
        dtype = x.dtype
        bias = None if b_ih is None else b_ih + b_hh
        activations = _input_projection(x, w_ih, bias)  # pre-activations, then h_hat in place
        masks = _step_masks(lengths, T, N, dtype, xp, "RNN")
        # without masks the state after each step is the activation itself: no copy
        h_states = activations if masks is None else xp.empty_like(activations)
        recurrent = xp.empty_like(h0)
        w_hh_t = w_hh.T
        h = h0
        for t in _time_order(T, reverse):
            a = activations[t]
            xp.matmul(h, w_hh_t, out=recurrent)
            a += recurrent
            if nonlinearity == "tanh":
                xp.tanh(a, out=a)
            else:
                xp.maximum(a, 0, out=a)
            if masks is not None:
                h_new = h_states[t]
                xp.subtract(a, h, out=h_new)
                h_new *= masks[t]
                h_new += h
                h = h_new
            else:
                h = a
        output = h_states if masks is None else activations * masks
        if any(ctx.needs_input_grad):
            ctx.reverse = reverse
            ctx.masks = masks
            ctx.nonlinearity = nonlinearity
            ctx.save_for_backward(x, h0, w_ih, w_hh, activations, h_states)
        return output, h.copy()

    @staticmethod
    def backward(ctx, grad_output, grad_h_n):
        x, h0, w_ih, w_hh, activations, h_states = ctx.saved_arrays
        xp = get_array_module(x)
        masks, reverse = ctx.masks, ctx.reverse
        T, N, _ = x.shape
        dtype = x.dtype
        dy = grad_output.data
        if masks is not None:
            dy = dy * masks
        dh = grad_h_n.data.astype(dtype, copy=True)
        d_pre = xp.empty_like(activations)
        scratch = xp.empty_like(dh)
        for t in reversed(_time_order(T, reverse)):
            da = d_pre[t]
            xp.add(dh, dy[t], out=da)
            if masks is not None:
                carry = da * (1.0 - masks[t])
                da *= masks[t]
            if ctx.nonlinearity == "tanh":
                _tanh_grad_(da, activations[t], scratch, xp)
            else:
                da *= activations[t] > 0
            dh = da @ w_hh
            if masks is not None:
                dh += carry
        needs = ctx.needs_input_grad
        grads: list[Any] = [None] * 6
        if needs[0]:
            grads[0] = (d_pre.reshape(T * N, -1) @ w_ih).reshape(x.shape)
        if needs[1]:
            grads[1] = dh
        if needs[2]:
            grads[2] = _gemm_t(d_pre, x)
        if needs[3]:
            grads[3] = _gemm_t(d_pre, _previous_states(h_states, h0, reverse, xp))
        if needs[4] or needs[5]:
            d_bias = d_pre.sum(axis=(0, 1))
            grads[4] = d_bias if needs[4] else None
            grads[5] = d_bias if needs[5] else None
        return tuple(grads)


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
                          reverse=reverse, lengths=_lengths_array(lengths))


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
                                       weight_peephole, reverse=reverse, lengths=_lengths_array(lengths))
    return output, (h_n, c_n)


def gru_layer(input: Tensor, hx: Tensor, weight_ih: Tensor, weight_hh: Tensor, bias_ih: Tensor | None = None,
              bias_hh: Tensor | None = None, reverse: bool = False, lengths: Any = None) -> tuple[Tensor, Tensor]:
    """Run one direction of a GRU layer over a time-major sequence, fused.

    Shape:
        input ``(T, N, in)``, hx ``(N, H)`` -> output ``(T, N, H)``, h_n ``(N, H)``.
    """
    return GRULayer.apply(input, hx, weight_ih, weight_hh, bias_ih, bias_hh, reverse=reverse,
                          lengths=_lengths_array(lengths))


__all__ = ["GRULayer", "LSTMLayer", "RNNLayer", "gru_cell", "gru_layer", "lstm_cell", "lstm_layer", "rnn_cell",
           "rnn_layer"]
