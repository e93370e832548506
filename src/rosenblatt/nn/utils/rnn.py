"""Variable-length batches for recurrent layers: ``PackedSequence`` and its helpers.

PyTorch stores a packed batch as one flat array of the real time steps. rosenblatt keeps the
padded, time-major array plus the lengths instead: the fused recurrent layers mask the steps past
each sequence's end, which gives exactly PyTorch's results (zero outputs past the end, final
states taken at each sequence's last real step, the backward direction starting at each
sequence's own end) without gathering and scattering rows at every step. The flat PyTorch layout
is still available as ``PackedSequence.data``.

Unlike PyTorch, rosenblatt never reorders the batch, so ``h_n`` and the unpacked output are in the
caller's order whether or not the lengths were sorted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from rosenblatt import ops
from rosenblatt.core import Tensor


def _lengths_to_numpy(lengths: Any, op: str) -> np.ndarray:
    if isinstance(lengths, Tensor):
        lengths = lengths.data
    if hasattr(lengths, "get") and not isinstance(lengths, np.ndarray):  # CuPy
        lengths = lengths.get()
    lengths = np.asarray(lengths)
    if lengths.ndim != 1:
        raise ValueError(f"{op}: lengths must be 1-D (one length per sequence), got shape {lengths.shape}")
    if lengths.size and lengths.dtype.kind not in "iu":
        raise TypeError(f"{op}: lengths must be integers, got dtype {lengths.dtype}")
    return lengths.astype(np.int64)


class PackedSequence:
    """A batch of sequences of different lengths, as produced by :func:`pack_padded_sequence`.

    Attributes:
        padded: the time-major padded data ``(T_max, N, *)`` (``T_max = max(lengths)``).
        lengths: int64 NumPy array ``(N,)``, in the batch's order.
        batch_sizes: how many sequences are still running at each step (PyTorch's field).
        sorted_indices / unsorted_indices: the permutation PyTorch would apply (None when the
            lengths were already sorted); kept for information, rosenblatt never reorders.

    Pass it to ``RNN``/``LSTM``/``GRU`` instead of a tensor: the output is a ``PackedSequence``
    too; :func:`pad_packed_sequence` turns it back into a padded tensor.
    """

    def __init__(self, padded: Tensor, lengths: Any, sorted_indices: np.ndarray | None = None,
                 unsorted_indices: np.ndarray | None = None) -> None:
        self.padded = padded
        self.lengths = _lengths_to_numpy(lengths, "PackedSequence")
        self.sorted_indices = sorted_indices
        self.unsorted_indices = unsorted_indices

    @property
    def batch_sizes(self) -> np.ndarray:
        """How many sequences are still running at each time step: int64 ``(T_max,)``."""
        steps = self.padded.shape[0]
        return (self.lengths[None, :] > np.arange(steps)[:, None]).sum(axis=1).astype(np.int64)

    @property
    def data(self) -> Tensor:
        """The real time steps as one flat ``(sum(lengths), *)`` tensor, in PyTorch's order
        (step by step, longest sequence first within a step). Differentiable."""
        order = np.argsort(-self.lengths, kind="stable")
        steps = self.padded.shape[0]
        time_index, batch_index = [], []
        for t in range(steps):
            running = order[self.lengths[order] > t]
            time_index.append(np.full(running.shape, t, dtype=np.int64))
            batch_index.append(running)
        return self.padded[np.concatenate(time_index), np.concatenate(batch_index)]

    def to(self, target: Any) -> PackedSequence:
        """The same batch with its data moved or cast (``Tensor.to``)."""
        return PackedSequence(self.padded.to(target), self.lengths, self.sorted_indices, self.unsorted_indices)

    def __repr__(self) -> str:
        return (f"PackedSequence(padded shape={tuple(self.padded.shape)}, lengths={self.lengths.tolist()}, "
                f"batch_sizes={self.batch_sizes.tolist()})")


def pack_padded_sequence(input: Tensor, lengths: Any, batch_first: bool = False,
                         enforce_sorted: bool = True) -> PackedSequence:
    """Pack a padded batch of sequences (``torch.nn.utils.rnn.pack_padded_sequence``).

    Args:
        input: ``(T, N, *)`` padded sequences, or ``(N, T, *)`` with ``batch_first=True``.
        lengths: the length of each sequence (list, array or tensor of ints, each in ``[1, T]``).
        enforce_sorted: require lengths in decreasing order (as PyTorch does, for ONNX export);
            pass False for any order.

    Shape:
        input ``(T, N, *)`` -> ``PackedSequence`` with ``padded`` of shape ``(max(lengths), N, *)``.
    """
    if not isinstance(input, Tensor):
        input = Tensor(input)
    if input.ndim < 2:
        raise ValueError(f"pack_padded_sequence: expected input of at least 2 dimensions (T, N, *), got shape {input.shape}")
    lengths = _lengths_to_numpy(lengths, "pack_padded_sequence")
    padded = ops.swapaxes(input, 0, 1) if batch_first else input
    steps, batch = padded.shape[0], padded.shape[1]
    if lengths.shape[0] != batch:
        raise ValueError(f"pack_padded_sequence: expected {batch} lengths (one per sequence), got {lengths.shape[0]}")
    if batch and (lengths.min() < 1 or lengths.max() > steps):
        raise ValueError(f"pack_padded_sequence: every length must be in [1, {steps}], got {lengths.tolist()}")
    sorted_indices = unsorted_indices = None
    if enforce_sorted:
        if np.any(np.diff(lengths) > 0):
            raise ValueError(
                f"pack_padded_sequence: lengths must be sorted in decreasing order when enforce_sorted=True, "
                f"got {lengths.tolist()}; sort the batch or pass enforce_sorted=False"
            )
    else:
        sorted_indices = np.argsort(-lengths, kind="stable")
        unsorted_indices = np.argsort(sorted_indices)
    max_length = int(lengths.max()) if batch else 0
    if max_length < steps:
        padded = padded[:max_length]
    return PackedSequence(padded, lengths, sorted_indices, unsorted_indices)


def pad_packed_sequence(sequence: PackedSequence, batch_first: bool = False, padding_value: float = 0.0,
                        total_length: int | None = None) -> tuple[Tensor, Tensor]:
    """Undo :func:`pack_padded_sequence`: a padded tensor and the lengths (int64 tensor).

    Positions past each sequence's end hold ``padding_value``. ``total_length`` pads the time axis
    further (it must be at least ``max(lengths)``).

    Shape:
        ``(T, N, *)``, or ``(N, T, *)`` with ``batch_first=True``; ``T = total_length or max(lengths)``.
    """
    if not isinstance(sequence, PackedSequence):
        raise TypeError(f"pad_packed_sequence: expected a PackedSequence, got {type(sequence).__name__}")
    padded, lengths = sequence.padded, sequence.lengths
    steps = padded.shape[0]
    if total_length is not None:
        if total_length < steps:
            raise ValueError(f"pad_packed_sequence: total_length={total_length} is smaller than the longest "
                             f"sequence ({steps})")
    inside = np.arange(steps)[:, None] < lengths[None, :]
    inside = inside.reshape(inside.shape + (1,) * (padded.ndim - 2))
    out = ops.where(inside, padded, padding_value) if padding_value != 0 else padded * inside.astype(padded.dtype)
    if total_length is not None and total_length > steps:
        widths = [0, 0] * (padded.ndim - 1) + [0, total_length - steps]
        out = ops.pad(out, widths, value=padding_value)
    if batch_first:
        out = ops.swapaxes(out, 0, 1)
    return out, Tensor(lengths.copy())


def pad_sequence(sequences: Sequence[Tensor], batch_first: bool = False, padding_value: float = 0.0,
                 padding_side: str = "right") -> Tensor:
    """Stack tensors of shapes ``(L_i, *)`` into one padded tensor (differentiable).

    Shape:
        ``(max L_i, N, *)``, or ``(N, max L_i, *)`` with ``batch_first=True``.
    """
    if padding_side not in ("right", "left"):
        raise ValueError(f"pad_sequence: padding_side must be 'right' or 'left', got {padding_side!r}")
    sequences = [s if isinstance(s, Tensor) else Tensor(s) for s in sequences]
    if not sequences:
        raise ValueError("pad_sequence: expected at least one sequence")
    trailing = sequences[0].shape[1:]
    for i, s in enumerate(sequences):
        if s.ndim < 1 or s.shape[1:] != trailing:
            raise ValueError(f"pad_sequence: every sequence must have shape (L, *{trailing}), "
                             f"sequence {i} has shape {s.shape}")
    longest = max(s.shape[0] for s in sequences)
    padded = []
    for s in sequences:
        extra = longest - s.shape[0]
        widths = [0, 0] * len(trailing) + ([0, extra] if padding_side == "right" else [extra, 0])
        padded.append(ops.pad(s, widths, value=padding_value) if extra else s)
    return ops.stack(padded, axis=0 if batch_first else 1)


def pack_sequence(sequences: Sequence[Tensor], enforce_sorted: bool = True) -> PackedSequence:
    """Pack a list of tensors of shapes ``(L_i, *)`` (``torch.nn.utils.rnn.pack_sequence``)."""
    lengths = [s.shape[0] for s in sequences]
    return pack_padded_sequence(pad_sequence(sequences), lengths, enforce_sorted=enforce_sorted)


__all__ = ["PackedSequence", "pack_padded_sequence", "pack_sequence", "pad_packed_sequence", "pad_sequence"]
