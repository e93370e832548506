"""Recurrent kernels on oneDNN's RNN primitives: Elman RNN (tanh, relu), LSTM and GRU, forward
(training and inference) and backward, one direction of one layer per call.

Same signatures as the NumPy kernels of :mod:`rosenblatt.kernels.recurrent`; the Functions of
:mod:`rosenblatt.nn.functional.recurrent` call these when the oneDNN kernel set is active and the
call is float32 NumPy without ``lengths`` (those run the NumPy kernels). LSTMs with a projection
(``proj_size``), with peepholes, or with both run here too.
Stacked and bidirectional layers are one call per layer and direction, as with the NumPy
kernels: the input projection of a layer is already one GEMM over all time steps inside the
primitive, and the two directions of a bidirectional layer read different weights, so a whole-stack
primitive would mainly add weight copies into oneDNN's ``(layers, directions, ...)`` tensors.

What oneDNN 3.2 accepts (measured; anything else is "unimplemented"):

- forward weights in ``ldigo`` (``(in, gates, H)``: PyTorch's ``(G*H, in)`` matrix transposed),
  so each forward copies the weights once into that layout (a oneDNN reorder);
- backward weights in ``ldgoi`` (PyTorch's own layout, no copy) and weight gradients in
  ``ldigo`` (transposed back into PyTorch's layout);
- weight gradients accumulate into their buffers unless ``rnn_flags_diff_weights_overwrite`` is
  set; it is set here, so the buffers need no zeroing;
- sequences time-major (``tnc``): with batch-major input (``ntc``) the backward primitive returns
  a wrong input-weight gradient, so ``batch_first`` input is copied;
- no bias-free primitives: a layer without bias passes a zero bias;
- projection weights (``(1, 1, H, P)``) read in any layout: forward takes the layout oneDNN picks
  (``format_tag_any``, a reorder from PyTorch's ``(P, H)`` ``weight_hr``, kept by the inference
  weight cache like the others), backward reads PyTorch's matrix as it is (``ldoi``) and writes its
  gradient in the layout it picks (reordered back to ``(P, H)``);
- peephole weights and their gradient as ``(1, 1, 3, H)`` ``ldgo``: rosenblatt's ``(3, H)``
  ``weight_peephole`` (rows ``w_ci, w_cf, w_co``) as it is.

Projection: oneDNN's LSTMP is PyTorch's, ``h_t = W_hr (o_t * tanh(c_t))``: the recurrent state,
``src_iter``, ``dst_iter`` and ``dst_layer`` have ``P`` channels and ``weights_iter`` is
``(P, 4, H)``; the cell state keeps ``H``. Peepholes: oneDNN's formula is the one of the NumPy kernels (Gers &
Schmidhuber), ``i`` and ``f`` read ``w_ci * c_{t-1}`` and ``w_cf * c_{t-1}``, ``o`` reads
``w_co * c_t`` (the new cell state); the two kernel sets agree to float32 rounding on outputs and
all gradients, with a projection as well.

Gates: LSTM is ``i, f, g, o`` in both libraries. PyTorch's GRU is oneDNN's *linear-before-reset*
GRU (``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``), whose gate order is ``u, r, o`` (update,
reset, output) against PyTorch's ``r, z, n``: the first two row blocks of every weight and bias are
swapped on the way in and on the way out. Its bias has four gates, ``[b_z, b_r, b_in, b_hn]``
with ``b_z = b_iz + b_hz`` and ``b_r = b_ir + b_hr``; the others use ``b_ih + b_hh``.

The forward primitive in training mode fills a workspace (gate activations and states of every
step) that backward reads; it lives in ``saved`` from forward to backward. Workspaces are large
(31 MB for an LSTM 32->128 over 50 steps at batch 64), so a workspace goes back to a small pool
once backward is done with it, and the next forward takes it from there: a fresh buffer of that
size costs thousands of page faults per training step. Primitives are built once per shape (about
10 ms each) and cached. Time steps too small to share run on one OpenMP thread (see ``_SMALL_STEP``), and
so do the weight copies (a 512 x 128 reorder is 20 us of work).

Against the NumPy kernels (one thread each, same process, interleaved; LSTM/GRU 32->128 over 50
steps) these win on every measured case: training at batch 64 1.6x (LSTM and GRU), a 2-layer
bidirectional LSTM 1.4x, inference at batch 1 2x - so no case is left to NumPy for speed. The
projection LSTM (32->128, ``proj_size=64``, 50 steps): training at batch 64 21.7 -> 11.4 ms (1.9x),
inference at batch 1 0.67 -> 0.22 ms (3x); with peepholes as well 25.2 -> 15.2 ms and 0.84 ->
0.23 ms. Against PyTorch they tie on the LSTM (PyTorch runs the same primitive; the results are
bit-identical) and win on GRU (PyTorch's GRU is not on oneDNN; neither is its projection LSTM, not
timed against these).
"""

from __future__ import annotations

import contextlib
import functools
from collections import OrderedDict
from ctypes import POINTER, c_float, c_int, c_uint, c_void_p
from typing import Any

import numpy as np

from rosenblatt.kernels import recurrent as numpy_kernels
from rosenblatt.kernels.onednn import library as L
from rosenblatt.kernels.snapshot import Snapshot
from rosenblatt.kernels.workspace import workspace

C = L.C

# -- bindings -----------------------------------------------------------------------------------

_P, _I, _U, _F = c_void_p, c_int, c_uint, c_float
_PP = POINTER(c_void_p)

# (primitive_desc*, engine, prop_kind, [activation,] direction, memory descriptors..., flags,
#  [alpha, beta,] [hint_fwd_pd,] attr), as in dnnl.h
_SIGNATURES = {
    "lstm_forward": [_PP, _P, _I, _I] + [_P] * 11 + [_U, _P],
    "lstm_backward": [_PP, _P, _I, _I] + [_P] * 22 + [_U, _P, _P],
    "lbr_gru_forward": [_PP, _P, _I, _I] + [_P] * 7 + [_U, _P],
    "lbr_gru_backward": [_PP, _P, _I, _I] + [_P] * 14 + [_U, _P, _P],
    "vanilla_rnn_forward": [_PP, _P, _I, _I, _I] + [_P] * 7 + [_U, _F, _F, _P],
    "vanilla_rnn_backward": [_PP, _P, _I, _I, _I] + [_P] * 14 + [_U, _F, _F, _P, _P],
}
_bound = False


def _bind() -> None:
    global _bound
    if not _bound:
        for kind, argtypes in _SIGNATURES.items():
            L.bind(f"{kind}_primitive_desc_create", argtypes)
        _bound = True


# -- memory descriptors -------------------------------------------------------------------------


def _data_md(T: int, N: int, C_: int, rows: int = 0) -> L.MemoryDesc:
    """``(T, N, C)`` time-major sequence data (``tnc``); ``rows``: the batch of the array it is a
    slice of (a part of the batch, see :func:`_parts`), if not ``N``.

    oneDNN also reads batch-major data (``ntc``, what ``batch_first`` gives) in forward, but its
    backward then computes a wrong input-weight gradient (it treats the input as ``tnc``), so
    sequences are always passed time-major.
    """
    return L.MemoryDesc.with_strides((T, N, C_), ((rows or N) * C_, C_, 1))


def _state_md(N: int, H: int) -> L.MemoryDesc:
    """``(1, 1, N, H)`` recurrent state (``ldnc``)."""
    return L.MemoryDesc.with_strides((1, 1, N, H), (N * H, N * H, H, 1))


def _weights_md(inputs: int, G: int, H: int, pytorch_layout: bool) -> L.MemoryDesc:
    """``(1, 1, in, G, H)`` weights: ``ldgoi`` (PyTorch's ``(G*H, in)``) or ``ldigo`` (transposed)."""
    size = inputs * G * H
    if pytorch_layout:
        return L.MemoryDesc.with_strides((1, 1, inputs, G, H), (size, size, 1, H * inputs, inputs))
    return L.MemoryDesc.with_strides((1, 1, inputs, G, H), (size, size, G * H, H, 1))


def _bias_md(G: int, H: int) -> L.MemoryDesc:
    """``(1, 1, G, H)`` bias (``ldgo``); also the ``(3, H)`` peephole weights (rows ``i, f, o``)."""
    return L.MemoryDesc.with_strides((1, 1, G, H), (G * H, G * H, H, 1))


def _projection_md(H: int, P: int, pytorch_layout: bool) -> L.MemoryDesc:
    """``(1, 1, H, P)`` projection weights: ``ldoi`` (PyTorch's ``(P, H)`` ``weight_hr``) or ``ldio``."""
    if pytorch_layout:
        return L.MemoryDesc.with_strides((1, 1, H, P), (H * P, H * P, 1, H))
    return L.MemoryDesc.with_strides((1, 1, H, P), (H * P, H * P, P, 1))


# -- primitives ---------------------------------------------------------------------------------

_DIRECTION = {False: C.unidirectional_left2right, True: C.unidirectional_right2left}
_GATES = {"lstm": 4, "gru": 3, "rnn_tanh": 1, "rnn_relu": 1}
_BIAS_GATES = {"lstm": 4, "gru": 4, "rnn_tanh": 1, "rnn_relu": 1}
_OP = {"lstm": "LSTM", "gru": "GRU", "rnn_tanh": "RNN", "rnn_relu": "RNN"}


class _Shape:
    """Everything a primitive depends on; ``key`` indexes the cache.

    ``H`` is the cell's hidden size; ``P`` the LSTM's projection size (0 without a projection), so
    the recurrent state and the output have ``P or H`` channels while the cell state keeps ``H``;
    ``peephole`` says whether the LSTM has peephole weights. A part of a batch (:func:`_parts`) has
    ``N`` sequences of the ``rows`` in the arrays it reads and writes, and its ``part`` number (each
    part runs its own primitive, made for one thread).
    """

    __slots__ = ("cell", "T", "N", "inputs", "H", "reverse", "P", "peephole", "rows", "part", "key")

    def __init__(self, cell: str, T: int, N: int, inputs: int, H: int, reverse: bool, P: int = 0,
                 peephole: bool = False, rows: int = 0, part: int | None = None) -> None:
        self.cell, self.T, self.N, self.inputs, self.H, self.reverse = cell, T, N, inputs, H, reverse
        self.P, self.peephole, self.rows, self.part = P, peephole, rows or N, part
        self.key = ("rnn", cell, T, N, inputs, H, reverse, P, peephole, self.rows, part)

    def split(self, sizes: list[int]) -> list[_Shape]:
        """The shapes of the parts of this batch with ``sizes`` sequences each."""
        return [_Shape(self.cell, self.T, n, self.inputs, self.H, self.reverse, self.P, self.peephole, self.N, i)
                for i, n in enumerate(sizes)]

    @property
    def state_size(self) -> int:
        """Channels of the recurrent state and of the output: the projection size, or ``H``."""
        return self.P or self.H

    def descriptors(self, training_layout: bool) -> dict[str, Any]:
        G, H, N, S = _GATES[self.cell], self.H, self.N, self.state_size
        state = _state_md(N, S)
        return {
            "src": _data_md(self.T, N, self.inputs, self.rows),
            "state": state,
            "c_state": _state_md(N, H) if self.cell == "lstm" else None,
            "w_layer": _weights_md(self.inputs, G, H, training_layout),
            "w_iter": _weights_md(S, G, H, training_layout),
            "w_peephole": _bias_md(3, H) if self.peephole else None,
            "w_projection": _projection_md(H, self.P, training_layout) if self.P else None,
            "bias": _bias_md(_BIAS_GATES[self.cell], H),
            "dst": _data_md(self.T, N, S, self.rows),
        }


def _any_weights(d: dict[str, Any], shape: _Shape) -> None:
    """Let oneDNN choose the weights' layout (``d``'s ``w_layer``/``w_iter`` replaced). For training
    it picks ``ldigo`` with padded rows (a leading dimension of 528 floats instead of 512 for an
    LSTM of 128 hidden units: no cache-set conflicts between rows). Measured, LSTM 32->128, 50
    steps, batch 64: forward 2.5 -> 2.2 ms, backward 5.2 -> 4.5 ms. For inference it picks a packed
    layout that its brgemm kernels read: at batch 1, 225 -> 155 us."""
    G = _GATES[shape.cell]
    d["w_layer"] = L.MemoryDesc.with_tag((1, 1, shape.inputs, G, shape.H), C.format_tag_any)
    d["w_iter"] = L.MemoryDesc.with_tag((1, 1, shape.state_size, G, shape.H), C.format_tag_any)
    if shape.P:
        d["w_projection"] = L.MemoryDesc.with_tag((1, 1, shape.H, shape.P), C.format_tag_any)


def _attr(shape: _Shape) -> L.Attr | None:
    """A part of a batch brings its own scratchpad (:func:`_scratchpad`): the library's is shared by
    the primitives of every thread, and the parts run at once."""
    return L.Attr(user_scratchpad=True) if shape.part is not None else None


def _scratchpad(primitive: L.Primitive, shape: _Shape, backward: bool) -> list[tuple[int, np.ndarray]]:
    """The scratchpad argument of a part's primitive (none for a whole batch)."""
    if shape.part is None:
        return []
    nbytes = primitive.md(C.ARG_SCRATCHPAD).nbytes
    return [(C.ARG_SCRATCHPAD, workspace(f"rnn scratchpad {shape.part} {backward}", (nbytes,), np.uint8))]


def _create_forward(shape: _Shape, prop: int) -> L.Primitive:
    _bind()
    d = shape.descriptors(training_layout=False)
    _any_weights(d, shape)  # training: padded ldigo; inference: a packed layout for brgemm kernels
    direction = _DIRECTION[shape.reverse]
    op = _OP[shape.cell]
    attr = _attr(shape)
    if shape.cell == "lstm":
        pd = L.create_pd("lstm_forward", prop, direction, d["src"], d["state"], d["c_state"], d["w_layer"],
                         d["w_iter"], d["w_peephole"], d["w_projection"], d["bias"], d["dst"], d["state"],
                         d["c_state"], 0, attr, op=op)
    elif shape.cell == "gru":
        pd = L.create_pd("lbr_gru_forward", prop, direction, d["src"], d["state"], d["w_layer"], d["w_iter"],
                         d["bias"], d["dst"], d["state"], 0, attr, op=op)
    else:
        activation = C.eltwise_tanh if shape.cell == "rnn_tanh" else C.eltwise_relu
        pd = L.create_pd("vanilla_rnn_forward", prop, activation, direction, d["src"], d["state"], d["w_layer"],
                         d["w_iter"], d["bias"], d["dst"], d["state"], 0, 0.0, 0.0, attr, op=op)
    return L.Primitive(pd, op)


def _create_backward(shape: _Shape, forward: L.Primitive) -> L.Primitive:
    _bind()
    d = shape.descriptors(training_layout=True)  # weights read in PyTorch's layout
    g = shape.descriptors(training_layout=False)
    _any_weights(g, shape)  # weight gradients written where oneDNN likes them (padded ldigo)
    direction = _DIRECTION[shape.reverse]
    flags = C.rnn_flags_diff_weights_overwrite
    op = _OP[shape.cell]
    attr = _attr(shape)
    if shape.cell == "lstm":
        pd = L.create_pd(
            "lstm_backward", C.backward, direction,
            d["src"], d["state"], d["c_state"], d["w_layer"], d["w_iter"], d["w_peephole"], d["w_projection"],
            d["bias"], d["dst"], d["state"], d["c_state"],
            g["src"], g["state"], g["c_state"], g["w_layer"], g["w_iter"], g["w_peephole"], g["w_projection"],
            g["bias"], g["dst"], g["state"], g["c_state"], flags, forward.pd, attr, op=op)  # fmt: skip
    elif shape.cell == "gru":
        pd = L.create_pd(
            "lbr_gru_backward", C.backward, direction,
            d["src"], d["state"], d["w_layer"], d["w_iter"], d["bias"], d["dst"], d["state"],
            g["src"], g["state"], g["w_layer"], g["w_iter"], g["bias"], g["dst"], g["state"],
            flags, forward.pd, attr, op=op)  # fmt: skip
    else:
        activation = C.eltwise_tanh if shape.cell == "rnn_tanh" else C.eltwise_relu
        pd = L.create_pd(
            "vanilla_rnn_backward", C.backward, activation, direction,
            d["src"], d["state"], d["w_layer"], d["w_iter"], d["bias"], d["dst"], d["state"],
            g["src"], g["state"], g["w_layer"], g["w_iter"], g["bias"], g["dst"], g["state"],
            flags, 0.0, 0.0, forward.pd, attr, op=op)  # fmt: skip
    return L.Primitive(pd, op + " backward")


def _forward_primitive(shape: _Shape, training: bool) -> L.Primitive:
    prop = C.forward_training if training else C.forward_inference
    return L.cached(shape.key + ("forward", prop), lambda: _create_forward(shape, prop))


def _backward_primitive(shape: _Shape) -> L.Primitive:
    return L.cached(shape.key + ("backward",),
                    lambda: _create_backward(shape, _forward_primitive(shape, training=True)))


# -- threads ------------------------------------------------------------------------------------

# Below this many multiply-adds in one step's recurrent GEMM (N x H by H x G*H; N x P by P x 4H with
# an LSTM's projection of size P), a step is a few microseconds of work and waking a second OpenMP
# thread for each of its parallel regions costs more than it saves; on a busy machine each wake-up
# can wait for a scheduler slice (measured, LSTM 32->128 over 50 steps at batch 1 with 2 threads
# under load: 70 ms against 0.6 ms on one thread).
_SMALL_STEP = 2**18


def _small(shape: _Shape) -> bool:
    return shape.N * _GATES[shape.cell] * shape.H * shape.state_size < _SMALL_STEP


# A batch of at least MIN_PART sequences per thread, in a layer whose weights take at most
# MAX_PART_WEIGHT_BYTES, is split into one part per thread, each run by its own primitive on one
# thread, all at once (L.run_concurrently). See _parts.
MIN_PART = 8
MAX_PART_WEIGHT_BYTES = 512 * 1024


def _parts(shape: _Shape) -> list[tuple[int, int]] | None:
    """``[(start, stop), ...]``: the slices of the batch that run as parts, or None for one primitive.

    Every time step of an RNN primitive is a few small parallel regions, and a team of threads pays
    a barrier for each; a part on one thread pays none. Measured on two threads (2-core Xeon,
    forward and backward from the last output, 50 steps, median ms, one primitive -> two parts):
    LSTM 32->128 at batch 64 8.9 -> 7.3, at batch 32 5.1 -> 4.7, at batch 16 3.3 -> 3.3; GRU 32->128
    at batch 64 8.0 -> 6.3, at batch 8 2.8 -> 2.3; LSTM 32->64 at batch 64 4.3 -> 3.6. Inference
    gains about as much (LSTM 32->128 at batch 64: 2.7 -> 2.2).

    Larger weights are shared worse: the two parts each read all of them at every step, where a team
    splits them. LSTM 32->192 and 256->128 (0.7-0.8 MB of weights) tie, and LSTM 32->256 (1.2 MB)
    trains slower in parts (batch 8: 5.2 -> 8.9 ms), so those run as one primitive.
    """
    threads = L.get_num_threads() or 1
    count = min(threads, shape.N // MIN_PART)
    weight_bytes = 4 * _GATES[shape.cell] * shape.H * (shape.inputs + shape.state_size)
    if count < 2 or _small(shape) or weight_bytes > MAX_PART_WEIGHT_BYTES:
        return None
    edges = [shape.N * i // count for i in range(count + 1)]
    return list(zip(edges, edges[1:]))


def _team(shape: _Shape, parts: int) -> Any:
    """The thread count a call's primitives are made and run with (oneDNN fixes it when it makes
    them): one per part for parts (on this thread; the others run on workers), one for a small
    step, else the configured team."""
    if parts > 1:
        return L.single_thread_here()
    return L.one_thread() if _small(shape) else contextlib.nullcontext()


# -- workspace pool -----------------------------------------------------------------------------

# At most this many free buffers of one size (a 2-layer bidirectional step holds four), and this
# many bytes in all: sequences of changing length would otherwise keep one set per length.
_POOL_MAX_PER_SIZE = 4
_POOL_MAX_BYTES = 256 * 2**20
_pool: OrderedDict[int, list[np.ndarray]] = OrderedDict()  # by size, least recently used first
_pool_bytes = 0


def _take_workspace(nbytes: int) -> np.ndarray:
    """A workspace buffer of ``nbytes``: one that a finished backward gave back, or a new one."""
    global _pool_bytes
    free = _pool.get(nbytes)
    if free:
        _pool_bytes -= nbytes
        return free.pop()
    return np.empty(nbytes, dtype=np.uint8)


def _give_workspace(buffer: np.ndarray) -> None:
    global _pool_bytes
    nbytes = buffer.nbytes
    free = _pool.setdefault(nbytes, [])
    _pool.move_to_end(nbytes)
    if len(free) >= _POOL_MAX_PER_SIZE or nbytes > _POOL_MAX_BYTES:
        return
    free.append(buffer)
    _pool_bytes += nbytes
    while _pool_bytes > _POOL_MAX_BYTES:
        size, oldest = next(iter(_pool.items()))
        if oldest:
            oldest.pop()
            _pool_bytes -= size
        else:
            del _pool[size]


def clear_pool() -> None:
    """Release the workspace buffers kept for the next forward passes."""
    global _pool_bytes
    _pool.clear()
    _pool_bytes = 0


# -- layouts ------------------------------------------------------------------------------------


def _gate_rows(w: np.ndarray, cell: str, H: int) -> np.ndarray:
    """PyTorch's gate blocks (rows of ``(G*H, ...)``) in oneDNN's order: GRU ``r, z, n`` -> ``z, r, n``."""
    if cell != "gru":
        return w
    return np.concatenate((w[H:2 * H], w[:H], w[2 * H:]))


def _to_primitive_layout(w: np.ndarray, cell: str, H: int, md: L.MemoryDesc, key: tuple) -> np.ndarray:
    """``(G*H, in)`` weights (PyTorch's layout) in the layout ``md`` a primitive chose, oneDNN's gate
    order (``key``: the primitive's and the argument's, for the cached reorder)."""
    G = _GATES[cell]
    inputs = w.shape[1]
    out = np.empty(md.nbytes // 4, dtype=np.float32)
    with L.one_thread():
        L.reorder(_weights_md(inputs, G, H, True), md, key).execute(
            [(C.ARG_FROM, np.ascontiguousarray(_gate_rows(w, cell, H))), (C.ARG_TO, out)])
    return out


def _from_primitive_layout(dw: np.ndarray, cell: str, H: int, inputs: int, md: L.MemoryDesc,
                           key: tuple) -> np.ndarray:
    """A weight gradient written in layout ``md`` as PyTorch's ``(G*H, in)`` in its gate order."""
    G = _GATES[cell]
    out = np.empty((G * H, inputs), dtype=np.float32)
    with L.one_thread():
        L.reorder(md, _weights_md(inputs, G, H, True), key).execute(
            [(C.ARG_FROM, dw), (C.ARG_TO, out)])
    return _gate_rows(out, cell, H)


def _projection_to_layout(w_hr: np.ndarray, md: L.MemoryDesc, key: tuple) -> np.ndarray:
    """PyTorch's ``(P, H)`` projection weights in the layout ``md`` a primitive chose."""
    P, H = w_hr.shape
    out = np.empty(md.nbytes // 4, dtype=np.float32)
    with L.one_thread():
        L.reorder(_projection_md(H, P, True), md, key).execute(
            [(C.ARG_FROM, np.ascontiguousarray(w_hr)), (C.ARG_TO, out)])
    return out


def _projection_from_layout(dw: np.ndarray, H: int, P: int, md: L.MemoryDesc, key: tuple) -> np.ndarray:
    """A projection-weight gradient written in layout ``md`` as PyTorch's ``(P, H)``."""
    out = np.empty((P, H), dtype=np.float32)
    with L.one_thread():
        L.reorder(md, _projection_md(H, P, True), key).execute([(C.ARG_FROM, dw), (C.ARG_TO, out)])
    return out


def _backward_weights(w: np.ndarray, cell: str, H: int) -> np.ndarray:
    """``(G*H, in)`` weights -> ``ldgoi`` (the same matrix) in oneDNN's gate order."""
    return np.ascontiguousarray(_gate_rows(w, cell, H))


def _bias(b_ih: Any, b_hh: Any, cell: str, H: int) -> Any:
    if b_ih is None:  # oneDNN 3.2 leaves the bias-free primitives unimplemented: a zero bias
        return np.zeros(_BIAS_GATES[cell] * H, dtype=np.float32)
    if cell == "gru":  # [b_z, b_r, b_in, b_hn]
        out = np.empty(4 * H, dtype=np.float32)
        np.add(b_ih[H:2 * H], b_hh[H:2 * H], out=out[:H])
        np.add(b_ih[:H], b_hh[:H], out=out[H:2 * H])
        out[2 * H:3 * H] = b_ih[2 * H:]
        out[3 * H:] = b_hh[2 * H:]
        return out
    return b_ih + b_hh


# -- kernels ------------------------------------------------------------------------------------


class _Saved:
    """What backward needs: the forward's arrays (in oneDNN's layouts) and the workspace.

    The workspace goes back to the pool when this is freed (after backward, unless the graph is
    retained for a second backward, or when the graph is dropped without one).
    """

    __slots__ = ("shape", "x", "h0", "c0", "w_ih", "w_hh", "bias", "w_hr", "w_peep", "output", "h_n", "c_n",
                 "work")

    def __init__(self, shape, x, h0, c0, w_ih, w_hh, bias, w_hr, w_peep, output, h_n, c_n, work) -> None:
        self.shape, self.x, self.h0, self.c0, self.w_ih, self.w_hh = shape, x, h0, c0, w_ih, w_hh
        self.bias, self.w_hr, self.w_peep = bias, w_hr, w_peep
        self.output, self.h_n, self.c_n, self.work = output, h_n, c_n, work

    def __del__(self) -> None:
        if self.work is not None and _give_workspace is not None:  # (None at interpreter exit)
            _give_workspace(self.work)
            self.work = None


def _empty(x: Any) -> bool:
    return x.shape[0] == 0 or x.shape[1] == 0  # no steps or no sequences: NumPy's kernels


# Inference: the weights in oneDNN's layouts, by the arrays they came from (kept alive here, so their
# ids stay theirs) and the caller's version stamp for them (their tensors' version counters).
_PREPARED_MAX = 32
_prepared: OrderedDict[tuple, tuple] = OrderedDict()


class _Weights:
    """A layer's weights as one primitive reads them: ``w_layer``, ``w_iter`` and ``bias`` always,
    ``w_peephole`` (``(3, H)``, ``ldgo``) and ``w_projection`` only for an LSTM that has them."""

    __slots__ = ("w_layer", "w_iter", "bias", "w_peephole", "w_projection", "layouts")

    def __init__(self, w_layer: np.ndarray, w_iter: np.ndarray, bias: np.ndarray, w_peephole: Any,
                 w_projection: Any, layouts: tuple) -> None:
        self.w_layer, self.w_iter, self.bias = w_layer, w_iter, bias
        self.w_peephole, self.w_projection = w_peephole, w_projection
        self.layouts = layouts  # the memory descriptors of w_layer, w_iter and w_projection

    def fit(self, primitive: L.Primitive) -> bool:
        """True when ``primitive`` reads the weights in these layouts."""
        md_layer, md_iter, md_projection = self.layouts
        return (primitive.md(C.ARG_WEIGHTS_LAYER) == md_layer and primitive.md(C.ARG_WEIGHTS_ITER) == md_iter
                and (md_projection is None or primitive.md(C.ARG_WEIGHTS_PROJECTION) == md_projection))


def _prepared_weights(cell: str, H: int, w_ih: np.ndarray, w_hh: np.ndarray, b_ih: Any, b_hh: Any, w_hr: Any,
                      w_peep: Any, version: Any, primitive: L.Primitive, key: tuple) -> _Weights:
    """The weights in the layouts ``primitive`` chose and oneDNN's gate order; with a ``version``
    stamp, remembered and reused while the same arrays (projection and peephole weights included),
    holding the same values (:class:`~rosenblatt.kernels.snapshot.Snapshot`: a write into an array
    moves no stamp), come with the same stamp for the same layouts."""
    md_layer, md_iter = primitive.md(C.ARG_WEIGHTS_LAYER), primitive.md(C.ARG_WEIGHTS_ITER)
    md_projection = primitive.md(C.ARG_WEIGHTS_PROJECTION) if w_hr is not None else None

    def prepare() -> _Weights:
        return _Weights(_to_primitive_layout(w_ih, cell, H, md_layer, key + ("w_layer",)),
                        _to_primitive_layout(w_hh, cell, H, md_iter, key + ("w_iter",)), _bias(b_ih, b_hh, cell, H),
                        None if w_peep is None else np.ascontiguousarray(w_peep),
                        None if w_hr is None else _projection_to_layout(w_hr, md_projection, key + ("w_projection",)),
                        (md_layer, md_iter, md_projection))

    if version is None:
        return prepare()
    sources = (w_ih, w_hh, b_ih, b_hh, w_hr, w_peep)
    key = (cell, H) + tuple(map(id, sources))
    hit = _prepared.get(key)
    if (hit is not None and hit[1] == version and hit[3] == md_layer and hit[4] == md_iter
            and hit[5] == md_projection and hit[0].holds(sources)):
        _prepared.move_to_end(key)
        return hit[2]
    prepared = prepare()
    _prepared[key] = (Snapshot(sources), version, prepared, md_layer, md_iter, md_projection)
    _prepared.move_to_end(key)
    while len(_prepared) > _PREPARED_MAX:
        _prepared.popitem(last=False)
    return prepared


def _forward(cell: str, x: np.ndarray, h0: np.ndarray, c0: Any, w_ih: np.ndarray, w_hh: np.ndarray, b_ih: Any,
             b_hh: Any, reverse: bool, training: bool, weights_version: Any = None, w_hr: Any = None,
             w_peep: Any = None) -> tuple[np.ndarray, np.ndarray, Any, Any]:
    T, N, inputs = x.shape
    H = w_hh.shape[0] // _GATES[cell]
    P = 0 if w_hr is None else w_hr.shape[0]
    shape = _Shape(cell, T, N, inputs, H, reverse, P, w_peep is not None)
    x, h0 = np.ascontiguousarray(x), np.ascontiguousarray(h0)
    c0 = None if c0 is None else np.ascontiguousarray(c0)
    S = shape.state_size
    output = np.empty((T, N, S), dtype=np.float32)
    h_n = np.empty((N, S), dtype=np.float32)
    c_n = np.empty((N, H), dtype=np.float32) if cell == "lstm" else None
    parts = _parts(shape)
    shapes = shape.split([b - a for a, b in parts]) if parts else [shape]
    parts = parts or [(0, N)]
    # the primitives are made for the thread count they run with (oneDNN fixes it when it makes them)
    with _team(shape, len(parts)):
        primitives = [_forward_primitive(s, training) for s in shapes]
        # the weights in the layouts the primitives chose (kept between inference calls)
        weights = _prepared_weights(cell, H, w_ih, w_hh, b_ih, b_hh, w_hr, w_peep,
                                    None if training else weights_version, primitives[0], shape.key + (training,))
        runs, saved_parts = [], []
        for (a, b), part, primitive in zip(parts, shapes, primitives):
            if part.part and not weights.fit(primitive):  # (a part of another size may pick other layouts)
                weights = _prepared_weights(cell, H, w_ih, w_hh, b_ih, b_hh, w_hr, w_peep, None, primitive,
                                            part.key + (training,))
            views = (x, h0, c0, output, h_n, c_n) if len(parts) == 1 else (
                x[:, a:b], h0[a:b], None if c0 is None else c0[a:b], output[:, a:b], h_n[a:b],
                None if c_n is None else c_n[a:b])
            args = _forward_args(cell, weights, *views) + _scratchpad(primitive, part, False)
            work = None
            if training:
                work = _take_workspace(primitive.md(C.ARG_WORKSPACE).nbytes)
                args.append((C.ARG_WORKSPACE, work))
                saved_parts.append(_Saved(part, views[0], views[1], views[2], w_ih, w_hh, weights.bias, w_hr,
                                          weights.w_peephole, views[3], views[4], views[5], work))
            runs.append((primitive, args))
        if len(runs) == 1:
            runs[0][0].execute(runs[0][1])
    if len(runs) > 1:
        L.run_concurrently([functools.partial(primitive.execute, args, True) for primitive, args in runs])
    saved = None
    if training:
        saved = saved_parts[0] if len(saved_parts) == 1 else _Parts(shape, parts, saved_parts)
    return output, h_n, c_n, saved


def _forward_args(cell: str, weights: _Weights, x: np.ndarray, h0: np.ndarray, c0: Any, output: np.ndarray,
                  h_n: np.ndarray, c_n: Any) -> list[tuple[int, np.ndarray]]:
    args = [(C.ARG_SRC_LAYER, x), (C.ARG_SRC_ITER, h0), (C.ARG_WEIGHTS_LAYER, weights.w_layer),
            (C.ARG_WEIGHTS_ITER, weights.w_iter), (C.ARG_DST_LAYER, output), (C.ARG_DST_ITER, h_n),
            (C.ARG_BIAS, weights.bias)]
    if cell == "lstm":
        args += [(C.ARG_SRC_ITER_C, c0), (C.ARG_DST_ITER_C, c_n)]
        if weights.w_peephole is not None:
            args.append((C.ARG_WEIGHTS_PEEPHOLE, weights.w_peephole))
        if weights.w_projection is not None:
            args.append((C.ARG_WEIGHTS_PROJECTION, weights.w_projection))
    return args


class _Parts:
    """What backward needs of a forward that ran in parts: one :class:`_Saved` per part."""

    __slots__ = ("shape", "bounds", "saved")

    def __init__(self, shape: _Shape, bounds: list[tuple[int, int]], saved: list[_Saved]) -> None:
        self.shape, self.bounds, self.saved = shape, bounds, saved


class _Gradients:
    """The weight gradients one backward primitive wrote, in the layouts it chose."""

    __slots__ = ("shape", "w_ih", "w_hh", "bias", "w_proj", "w_peep", "md_ih", "md_hh", "md_proj")

    def __init__(self, primitive: L.Primitive, shape: _Shape) -> None:
        self.shape = shape
        self.md_ih, self.md_hh = primitive.md(C.ARG_DIFF_WEIGHTS_LAYER), primitive.md(C.ARG_DIFF_WEIGHTS_ITER)
        self.w_ih = np.empty(self.md_ih.nbytes // 4, dtype=np.float32)
        self.w_hh = np.empty(self.md_hh.nbytes // 4, dtype=np.float32)
        self.bias = np.empty(_BIAS_GATES[shape.cell] * shape.H, dtype=np.float32)
        self.w_peep = np.empty((3, shape.H), dtype=np.float32) if shape.peephole else None
        self.md_proj = primitive.md(C.ARG_DIFF_WEIGHTS_PROJECTION) if shape.P else None
        self.w_proj = np.empty(self.md_proj.nbytes // 4, dtype=np.float32) if shape.P else None


def _backward(saved: _Saved | _Parts, grad_output: np.ndarray, grad_h_n: np.ndarray, grad_c_n: Any,
              needs: tuple[bool, ...]) -> tuple[Any, ...]:
    """Gradients ``(dx, dh0, dc0, dW_ih, dW_hh, d_bias, dW_hr, dW_peep)`` in PyTorch's layouts (oneDNN's
    bias gradient, split by the caller; the last two None unless the LSTM has those weights and
    ``needs`` asks for them, the ``needs`` of an LSTM being its kernel's nine)."""
    shape = saved.shape
    cell, T, N, H, S = shape.cell, shape.T, shape.N, shape.H, shape.state_size
    lstm = cell == "lstm"
    needs_x, needs_h0 = needs[0], needs[1]
    needs_c0 = lstm and needs[2]
    # gradients nobody asked for still have to be written somewhere: scratch memory
    x_shape = (T, N, shape.inputs)
    d_x = np.empty(x_shape, dtype=np.float32) if needs_x else workspace("rnn_dx", x_shape, np.float32)
    d_h0 = np.empty((N, S), dtype=np.float32) if needs_h0 else workspace("rnn_dh0", (N, S), np.float32)
    d_c0 = None
    if lstm:
        d_c0 = np.empty((N, H), dtype=np.float32) if needs_c0 else workspace("rnn_dc0", (N, H), np.float32)
    grad_output = np.ascontiguousarray(grad_output, dtype=np.float32)
    grad_h_n = np.ascontiguousarray(grad_h_n, dtype=np.float32)
    grad_c_n = None if grad_c_n is None else np.ascontiguousarray(grad_c_n, dtype=np.float32)
    parts = saved.saved if isinstance(saved, _Parts) else [saved]
    w_ih, w_hh = _backward_weights(parts[0].w_ih, cell, H), _backward_weights(parts[0].w_hh, cell, H)
    bounds = saved.bounds if isinstance(saved, _Parts) else [(0, N)]
    with _team(shape, len(parts)):
        runs, grads = [], []
        for (a, b), part in zip(bounds, parts):
            primitive = _backward_primitive(part.shape)
            g = _Gradients(primitive, part.shape)
            args = [(C.ARG_SRC_LAYER, part.x), (C.ARG_SRC_ITER, part.h0), (C.ARG_WEIGHTS_LAYER, w_ih),
                    (C.ARG_WEIGHTS_ITER, w_hh), (C.ARG_DST_LAYER, part.output), (C.ARG_DST_ITER, part.h_n),
                    (C.ARG_WORKSPACE, part.work), (C.ARG_DIFF_SRC_LAYER, d_x[:, a:b]),
                    (C.ARG_DIFF_SRC_ITER, d_h0[a:b]), (C.ARG_DIFF_WEIGHTS_LAYER, g.w_ih),
                    (C.ARG_DIFF_WEIGHTS_ITER, g.w_hh), (C.ARG_DIFF_DST_LAYER, grad_output[:, a:b]),
                    (C.ARG_DIFF_DST_ITER, grad_h_n[a:b]), (C.ARG_BIAS, part.bias), (C.ARG_DIFF_BIAS, g.bias)]
            if lstm:
                args += [(C.ARG_SRC_ITER_C, part.c0), (C.ARG_DST_ITER_C, part.c_n), (C.ARG_DIFF_SRC_ITER_C, d_c0[a:b]),
                         (C.ARG_DIFF_DST_ITER_C, grad_c_n[a:b])]
                if shape.peephole:  # read and written as (3, H), ldgo
                    args += [(C.ARG_WEIGHTS_PEEPHOLE, part.w_peep), (C.ARG_DIFF_WEIGHTS_PEEPHOLE, g.w_peep)]
                if shape.P:  # read in PyTorch's (P, H) layout (ldoi), written where oneDNN likes
                    args += [(C.ARG_WEIGHTS_PROJECTION, np.ascontiguousarray(part.w_hr)),
                             (C.ARG_DIFF_WEIGHTS_PROJECTION, g.w_proj)]
            runs.append((primitive, args + _scratchpad(primitive, part.shape, True)))
            grads.append(g)
        if len(runs) == 1:
            runs[0][0].execute(runs[0][1])
    if len(runs) > 1:
        L.run_concurrently([functools.partial(primitive.execute, args, True) for primitive, args in runs])
    # the parts' weight gradients are added in PyTorch's layouts (oneDNN's padded ones hold
    # unwritten padding)
    d_w_ih, d_w_hh, d_w_hr = _weight_gradients(grads[0], needs)
    d_bias, d_w_peep = grads[0].bias, grads[0].w_peep
    for g in grads[1:]:
        d_w_ih, d_w_hh, d_w_hr = (None if m is None else m + o
                                  for m, o in zip((d_w_ih, d_w_hh, d_w_hr), _weight_gradients(g, needs)))
        d_bias += g.bias
        if d_w_peep is not None:
            d_w_peep += g.w_peep
    return (d_x if needs_x else None, d_h0 if needs_h0 else None, d_c0 if needs_c0 else None, d_w_ih, d_w_hh,
            d_bias, d_w_hr, d_w_peep if d_w_peep is not None and needs[8] else None)


def _weight_gradients(g: _Gradients, needs: tuple[bool, ...]) -> tuple[Any, Any, Any]:
    """``(dW_ih, dW_hh, dW_hr)`` in PyTorch's layouts from ``g`` (each None unless ``needs`` asks)."""
    shape = g.shape
    cell, H, key = shape.cell, shape.H, shape.key
    offset = 1 if cell == "lstm" else 0
    d_w_ih = d_w_hh = d_w_hr = None
    if needs[2 + offset]:
        d_w_ih = _from_primitive_layout(g.w_ih, cell, H, shape.inputs, g.md_ih, key + ("dw_layer",))
    if needs[3 + offset]:
        d_w_hh = _from_primitive_layout(g.w_hh, cell, H, shape.state_size, g.md_hh, key + ("dw_iter",))
    if g.w_proj is not None and needs[7]:
        d_w_hr = _projection_from_layout(g.w_proj, H, shape.P, g.md_proj, key + ("dw_projection",))
    return d_w_ih, d_w_hh, d_w_hr


def lstm_forward(x: Any, h0: Any, c0: Any, w_ih: Any, w_hh: Any, b_ih: Any, b_hh: Any, w_hr: Any = None,
                 w_peep: Any = None, reverse: bool = False, lengths: Any = None, training: bool = True,
                 weights_version: Any = None) -> tuple[Any, Any, Any, Any]:
    """LSTM layer forward, as :func:`rosenblatt.kernels.recurrent.lstm_forward` (which runs the
    calls with ``lengths``), projection (``w_hr``) and peepholes (``w_peep``) included. In inference
    a ``weights_version`` stamp (the weights' version counters) lets the weights' oneDNN layouts be
    reused while it stays."""
    if lengths is not None or _empty(x):
        return numpy_kernels.lstm_forward(x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, w_peep, reverse, lengths,
                                          training)
    output, h_n, c_n, saved = _forward("lstm", x, h0, c0, w_ih, w_hh, b_ih, b_hh, reverse, training,
                                       weights_version, w_hr, w_peep)
    return output, h_n, c_n, saved


def lstm_backward(saved: Any, grad_output: Any, grad_h_n: Any, grad_c_n: Any,
                  needs: tuple[bool, ...]) -> tuple[Any, ...]:
    """LSTM layer backward: gradients of ``(x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, w_peep)``."""
    if not isinstance(saved, (_Saved, _Parts)):
        return numpy_kernels.lstm_backward(saved, grad_output, grad_h_n, grad_c_n, needs)
    d_x, d_h0, d_c0, d_w_ih, d_w_hh, d_bias, d_w_hr, d_w_peep = _backward(saved, grad_output, grad_h_n,
                                                                          grad_c_n, needs)
    return (d_x, d_h0, d_c0, d_w_ih, d_w_hh, d_bias if needs[5] else None, d_bias if needs[6] else None,
            d_w_hr, d_w_peep)


def gru_forward(x: Any, h0: Any, w_ih: Any, w_hh: Any, b_ih: Any, b_hh: Any, reverse: bool = False,
                lengths: Any = None, training: bool = True, weights_version: Any = None) -> tuple[Any, Any, Any]:
    """GRU layer forward, as :func:`rosenblatt.kernels.recurrent.gru_forward` (``weights_version``:
    as in :func:`lstm_forward`)."""
    if lengths is not None or _empty(x):
        return numpy_kernels.gru_forward(x, h0, w_ih, w_hh, b_ih, b_hh, reverse, lengths, training)
    output, h_n, _, saved = _forward("gru", x, h0, None, w_ih, w_hh, b_ih, b_hh, reverse, training,
                                     weights_version)
    return output, h_n, saved


def gru_backward(saved: Any, grad_output: Any, grad_h_n: Any, needs: tuple[bool, ...]) -> tuple[Any, ...]:
    """GRU layer backward: gradients of ``(x, h0, w_ih, w_hh, b_ih, b_hh)``."""
    if not isinstance(saved, (_Saved, _Parts)):
        return numpy_kernels.gru_backward(saved, grad_output, grad_h_n, needs)
    d_x, d_h0, _, d_w_ih, d_w_hh, d_bias, _, _ = _backward(saved, grad_output, grad_h_n, None, needs)
    H = saved.shape.H
    d_r, d_z = d_bias[H:2 * H], d_bias[:H]  # oneDNN's order is z, r, n (input), n (hidden)
    d_b_ih = np.concatenate((d_r, d_z, d_bias[2 * H:3 * H])) if needs[4] else None
    d_b_hh = np.concatenate((d_r, d_z, d_bias[3 * H:])) if needs[5] else None
    return d_x, d_h0, d_w_ih, d_w_hh, d_b_ih, d_b_hh


def rnn_forward(x: Any, h0: Any, w_ih: Any, w_hh: Any, b_ih: Any, b_hh: Any, nonlinearity: str = "tanh",
                reverse: bool = False, lengths: Any = None, training: bool = True,
                weights_version: Any = None) -> tuple[Any, Any, Any]:
    """Elman RNN layer forward, as :func:`rosenblatt.kernels.recurrent.rnn_forward` (``weights_version``:
    as in :func:`lstm_forward`)."""
    if lengths is not None or _empty(x):
        return numpy_kernels.rnn_forward(x, h0, w_ih, w_hh, b_ih, b_hh, nonlinearity, reverse, lengths, training)
    output, h_n, _, saved = _forward("rnn_" + nonlinearity, x, h0, None, w_ih, w_hh, b_ih, b_hh, reverse,
                                     training, weights_version)
    return output, h_n, saved


def rnn_backward(saved: Any, grad_output: Any, grad_h_n: Any, needs: tuple[bool, ...]) -> tuple[Any, ...]:
    """Elman RNN layer backward: gradients of ``(x, h0, w_ih, w_hh, b_ih, b_hh)``."""
    if not isinstance(saved, (_Saved, _Parts)):
        return numpy_kernels.rnn_backward(saved, grad_output, grad_h_n, needs)
    d_x, d_h0, _, d_w_ih, d_w_hh, d_bias, _, _ = _backward(saved, grad_output, grad_h_n, None, needs)
    return (d_x, d_h0, d_w_ih, d_w_hh, d_bias if needs[4] else None, d_bias if needs[5] else None)


__all__ = ["clear_pool", "gru_backward", "gru_forward", "lstm_backward", "lstm_forward", "rnn_backward",
           "rnn_forward"]
