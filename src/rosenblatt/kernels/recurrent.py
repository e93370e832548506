"""Recurrent kernels: one direction of one RNN, LSTM or GRU layer over a whole sequence, and its
backpropagation through time, on raw arrays (NumPy, or CuPy through the same code).

These are the reference kernels and the fallback of the oneDNN ones
(:mod:`rosenblatt.kernels.onednn.recurrent`); the differentiable Functions that call them are in
:mod:`rosenblatt.nn.functional.recurrent`. Every kernel pair has the same shape::

    output, *final_states, saved = <cell>_forward(x, states..., weights..., reverse, lengths, training)
    gradients = <cell>_backward(saved, grad_output, *grad_final_states, needs)

``saved`` is whatever backward needs (``None`` unless ``training``), ``needs`` says which input
gradients to compute (one bool per forward input, in order), and ``gradients`` has one array or
``None`` per input.

How the forward pass is organised:

- the input projection of every time step is one GEMM, ``(T*N, in) @ (in, G*H)``, done up front;
- each step then costs one recurrent GEMM plus gate non-linearities computed in place on
  preallocated buffers (no temporaries per step);
- backward only carries the state gradients through the per-step loop, and the weight gradients
  are accumulated at the end with one GEMM over all time steps (``dW_ih = dA^T X``,
  ``dW_hh = dA^T H_prev``).

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

from rosenblatt.backend import get_array_module
from rosenblatt.kernels.gemm import matmul as _mm

# --------------------------------------------------------------------------------------------
# Helpers (raw arrays, in place)
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


def step_masks(lengths: Any, steps: int, batch: int, dtype: Any, xp: Any, op: str) -> Any:
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
    return _mm(a.reshape(-1, a.shape[-1]).T, b.reshape(-1, b.shape[-1]))


def _layer_grads(d_input: Any, d_hidden: Any, x: Any, w_ih: Any, previous_states: Any,
                 needs: tuple[bool, bool, bool, bool, bool]) -> tuple[Any, Any, Any, Any, Any]:
    """``(dx, dW_ih, dW_hh, db_ih, db_hh)`` of a layer from the ``(T, N, G)`` gradients of its input
    and hidden pre-activations (the same array except in a GRU), ``None`` where ``needs`` (in that
    order) is False. ``previous_states()`` gives the ``(T, N, H)`` states the hidden products read."""
    need_x, need_w_ih, need_w_hh, need_b_ih, need_b_hh = needs
    dx = _mm(d_input.reshape(-1, d_input.shape[-1]), w_ih).reshape(x.shape) if need_x else None
    dw_ih = _gemm_t(d_input, x) if need_w_ih else None
    dw_hh = _gemm_t(d_hidden, previous_states()) if need_w_hh else None
    db_ih = d_input.sum(axis=(0, 1)) if need_b_ih or (need_b_hh and d_hidden is d_input) else None
    if not need_b_hh:
        db_hh = None
    else:
        db_hh = db_ih if d_hidden is d_input else d_hidden.sum(axis=(0, 1))
    return dx, dw_ih, dw_hh, db_ih if need_b_ih else None, db_hh


def _input_projection(x: Any, w_ih: Any, bias: Any) -> Any:
    """``x W_ih^T + bias`` for every time step at once: ``(T, N, in)`` -> ``(T, N, G)``."""
    T, N, _ = x.shape
    out = _mm(x.reshape(T * N, -1), w_ih.T)
    if bias is not None:
        out += bias
    return out.reshape(T, N, -1)


# --------------------------------------------------------------------------------------------
# LSTM
# --------------------------------------------------------------------------------------------


def lstm_forward(x: Any, h0: Any, c0: Any, w_ih: Any, w_hh: Any, b_ih: Any, b_hh: Any, w_hr: Any = None,
                 w_peep: Any = None, reverse: bool = False, lengths: Any = None,
                 training: bool = True) -> tuple[Any, Any, Any, Any]:
    """LSTM layer forward: ``(output (T, N, P), h_n (N, P), c_n (N, H), saved)``.

    ``w_hr`` ``(P, H)`` is the optional projection, ``w_peep`` ``(3, H)`` the optional peephole
    weights (rows ``w_ci, w_cf, w_co``); biases may be None.
    """
    xp = get_array_module(x)
    T, N, _ = x.shape
    H = w_hh.shape[0] // 4
    P = w_hh.shape[1]  # hidden size, or proj_size with a projection
    dtype = x.dtype
    bias = None if b_ih is None else b_ih + b_hh
    # gates[t] first holds the pre-activations, then (in place) the activations i, f, g, o
    gates = _input_projection(x, w_ih, bias)
    masks = step_masks(lengths, T, N, dtype, xp, "LSTM")
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
        _mm(h, w_hh_t, out=recurrent)
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
            _mm(m_states[t], w_hr.T, out=h_new)
        if masks is not None:
            _blend_(c_new, c, masks[t])
            _blend_(h_new, h, masks[t])
        h, c = h_new, c_new
    output = h_states if masks is None else h_states * masks
    saved = None
    if training:
        saved = (x, h0, c0, w_ih, w_hh, w_hr, w_peep, gates, h_states, c_states, tanh_c, m_states, masks,
                 reverse)
    return output, h.copy(), c.copy(), saved


def lstm_backward(saved: Any, grad_output: Any, grad_h_n: Any, grad_c_n: Any,
                  needs: tuple[bool, ...]) -> tuple[Any, ...]:
    """LSTM layer backward through time: gradients of ``(x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr,
    w_peep)`` (None where ``needs`` is False)."""
    (x, h0, c0, w_ih, w_hh, w_hr, w_peep, gates, h_states, c_states, tanh_c, m_states, masks,
     reverse) = saved
    xp = get_array_module(x)
    T, N, _ = x.shape
    H = c0.shape[1]
    dtype = x.dtype
    dy = grad_output
    if masks is not None:
        dy = dy * masks  # the output is zero past each sequence's end
    dh = grad_h_n.astype(dtype, copy=True)
    dc = grad_c_n.astype(dtype, copy=True)
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
            d_m = _mm(g_total, w_hr)
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
        dh = _mm(da, w_hh)
        if mask is not None:
            dh += carry_h
            dc += carry_c
    gx, gw_ih, gw_hh, gb_ih, gb_hh = _layer_grads(
        d_gates, d_gates, x, w_ih, lambda: _previous_states(h_states, h0, reverse, xp),
        (needs[0], needs[3], needs[4], needs[5], needs[6]))
    grads: list[Any] = [gx, dh if needs[1] else None, dc if needs[2] else None, gw_ih, gw_hh, gb_ih, gb_hh,
                        None, None]
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
# GRU
# --------------------------------------------------------------------------------------------


def gru_forward(x: Any, h0: Any, w_ih: Any, w_hh: Any, b_ih: Any, b_hh: Any, reverse: bool = False,
                lengths: Any = None, training: bool = True) -> tuple[Any, Any, Any]:
    """GRU layer forward: ``(output (T, N, H), h_n (N, H), saved)``; biases may be None."""
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
    masks = step_masks(lengths, T, N, dtype, xp, "GRU")
    h_states = xp.empty((T, N, H), dtype=dtype)
    hidden_n = xp.empty((T, N, H), dtype=dtype)  # W_hn h + b_hn of each step
    recurrent = xp.empty((N, 3 * H), dtype=dtype)
    scratch = xp.empty((N, H), dtype=dtype)
    w_hh_t = w_hh.T
    h = h0
    for t in _time_order(T, reverse):
        a = gates[t]
        _mm(h, w_hh_t, out=recurrent)
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
    saved = (x, h0, w_ih, w_hh, gates, hidden_n, h_states, masks, reverse) if training else None
    return output, h.copy(), saved


def gru_backward(saved: Any, grad_output: Any, grad_h_n: Any, needs: tuple[bool, ...]) -> tuple[Any, ...]:
    """GRU layer backward through time: gradients of ``(x, h0, w_ih, w_hh, b_ih, b_hh)``."""
    x, h0, w_ih, w_hh, gates, hidden_n, h_states, masks, reverse = saved
    xp = get_array_module(x)
    T, N, _ = x.shape
    H = h0.shape[1]
    dtype = x.dtype
    dy = grad_output
    if masks is not None:
        dy = dy * masks
    dh = grad_h_n.astype(dtype, copy=True)
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
        dh = _mm(dgh, w_hh)
        xp.multiply(g_total, z, out=scratch)
        dh += scratch
        if mask is not None:
            dh += carry
    gx, gw_ih, gw_hh, gb_ih, gb_hh = _layer_grads(d_input_gates, d_hidden_gates, x, w_ih, lambda: h_prev_all,
                                                  (needs[0], needs[2], needs[3], needs[4], needs[5]))
    return gx, dh if needs[1] else None, gw_ih, gw_hh, gb_ih, gb_hh


# --------------------------------------------------------------------------------------------
# Elman RNN (tanh or relu)
# --------------------------------------------------------------------------------------------


def rnn_forward(x: Any, h0: Any, w_ih: Any, w_hh: Any, b_ih: Any, b_hh: Any, nonlinearity: str = "tanh",
                reverse: bool = False, lengths: Any = None, training: bool = True) -> tuple[Any, Any, Any]:
    """Elman RNN layer forward: ``(output (T, N, H), h_n (N, H), saved)``; biases may be None."""
    xp = get_array_module(x)
    T, N, _ = x.shape
    dtype = x.dtype
    bias = None if b_ih is None else b_ih + b_hh
    activations = _input_projection(x, w_ih, bias)  # pre-activations, then h_hat in place
    masks = step_masks(lengths, T, N, dtype, xp, "RNN")
    # without masks the state after each step is the activation itself: no copy
    h_states = activations if masks is None else xp.empty_like(activations)
    recurrent = xp.empty_like(h0)
    w_hh_t = w_hh.T
    h = h0
    for t in _time_order(T, reverse):
        a = activations[t]
        _mm(h, w_hh_t, out=recurrent)
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
    saved = (x, h0, w_ih, w_hh, activations, h_states, masks, reverse, nonlinearity) if training else None
    return output, h.copy(), saved


def rnn_backward(saved: Any, grad_output: Any, grad_h_n: Any, needs: tuple[bool, ...]) -> tuple[Any, ...]:
    """Elman RNN layer backward through time: gradients of ``(x, h0, w_ih, w_hh, b_ih, b_hh)``."""
    x, h0, w_ih, w_hh, activations, h_states, masks, reverse, nonlinearity = saved
    xp = get_array_module(x)
    T, N, _ = x.shape
    dtype = x.dtype
    dy = grad_output
    if masks is not None:
        dy = dy * masks
    dh = grad_h_n.astype(dtype, copy=True)
    d_pre = xp.empty_like(activations)
    scratch = xp.empty_like(dh)
    for t in reversed(_time_order(T, reverse)):
        da = d_pre[t]
        xp.add(dh, dy[t], out=da)
        if masks is not None:
            carry = da * (1.0 - masks[t])
            da *= masks[t]
        if nonlinearity == "tanh":
            _tanh_grad_(da, activations[t], scratch, xp)
        else:
            da *= activations[t] > 0
        dh = _mm(da, w_hh)
        if masks is not None:
            dh += carry
    gx, gw_ih, gw_hh, gb_ih, gb_hh = _layer_grads(
        d_pre, d_pre, x, w_ih, lambda: _previous_states(h_states, h0, reverse, xp),
        (needs[0], needs[2], needs[3], needs[4], needs[5]))
    return gx, dh if needs[1] else None, gw_ih, gw_hh, gb_ih, gb_hh


__all__ = ["gru_backward", "gru_forward", "lstm_backward", "lstm_forward", "rnn_backward", "rnn_forward",
           "step_masks"]
