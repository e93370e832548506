"""``embedding``: look up rows of a weight matrix by integer index.

The gradient scatters the upstream rows back into the table, summing repeated indices. On the
CPU it is computed by sorting the indices and summing runs with ``add.reduceat`` (vectorised, no
``add.at``), on a GPU with CuPy's atomic ``scatter_add``; the row of ``padding_idx`` gets no
gradient.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rosenblatt.backend import device_of, get_array_module, to_device
from rosenblatt.core import Function, Tensor, constant
from rosenblatt.ops._util import raw


def _scatter_rows(grad_rows: Any, indices: Any, num_rows: int, padding_idx: int | None) -> Any:
    """``out[indices[i]] += grad_rows[i]`` for all i, as a dense ``(num_rows, dim)`` array."""
    xp = get_array_module(grad_rows)
    out = xp.zeros((num_rows, grad_rows.shape[-1]), dtype=grad_rows.dtype)
    if indices.size == 0:
        return out
    if xp is not np:  # CuPy: an atomic scatter-add kernel is the fast way on a GPU
        import cupyx

        cupyx.scatter_add(out, indices, grad_rows)
        if padding_idx is not None:
            out[padding_idx] = 0
        return out
    order = xp.argsort(indices, kind="stable")
    sorted_idx = indices[order]
    starts = xp.flatnonzero(xp.concatenate([xp.ones(1, dtype=bool), sorted_idx[1:] != sorted_idx[:-1]]))
    sums = xp.add.reduceat(grad_rows[order], starts, axis=0)
    out[sorted_idx[starts]] = sums
    if padding_idx is not None:
        out[padding_idx] = 0
    return out


class EmbeddingFn(Function):
    @staticmethod
    def forward(ctx, weight, indices, padding_idx):
        return weight[indices]

    @staticmethod
    def backward(ctx, gy):
        weight, indices, padding_idx = ctx.inputs
        return EmbeddingScatter.apply(gy, indices, weight.shape[0], padding_idx), None, None

    @staticmethod
    def backward_arrays(ctx, gy):
        weight, indices, padding_idx = ctx.inputs
        return _embedding_scatter(gy, indices, weight.shape[0], padding_idx), None, None


def _embedding_scatter(gy: Any, indices: Any, num_rows: int, padding_idx: int | None) -> Any:
    """The table's gradient: the rows of ``gy`` added into the rows ``indices`` pick."""
    flat = indices.reshape(-1)
    return _scatter_rows(gy.reshape(flat.size, gy.shape[-1]), flat, num_rows, padding_idx)


def _without_padding_row(ggw: Any, padding_idx: int | None) -> Any:
    """``ggw`` with its padding row zeroed (that row gets no gradient), as an array."""
    if padding_idx is None:
        return ggw
    ggw = ggw.copy()
    ggw[padding_idx] = 0
    return ggw


class EmbeddingScatter(Function):
    """:func:`_embedding_scatter`, the gradient of :class:`EmbeddingFn`; its own gradient is a lookup."""

    @staticmethod
    def forward(ctx, gy, indices, num_rows, padding_idx):
        return _embedding_scatter(gy, indices, num_rows, padding_idx)

    @staticmethod
    def backward(ctx, ggw):
        _, indices, _, padding_idx = ctx.inputs
        gg = ggw
        if padding_idx is not None:
            xp = get_array_module(ggw.data)
            keep = xp.ones((ggw.shape[0], 1), dtype=ggw.dtype)
            keep[padding_idx] = 0
            gg = ggw * constant(keep)
        return EmbeddingFn.apply(gg, indices, None), None, None, None

    @staticmethod
    def backward_arrays(ctx, ggw):
        _, indices, _, padding_idx = ctx.inputs
        return _without_padding_row(ggw, padding_idx)[indices], None, None, None


def embedding(indices: Any, weight: Tensor, padding_idx: int | None = None) -> Tensor:
    """Rows of ``weight`` selected by the integer tensor ``indices``.

    Shape:
        indices: any shape ``(*)`` of integers in ``[0, num_embeddings)``; weight:
        ``(num_embeddings, embedding_dim)``; output: ``(*, embedding_dim)``.
    """
    idx = raw(indices)
    # The indices follow the table to its device (NumPy indices with a table on the GPU, say).
    xp = get_array_module(weight.data)
    idx = xp.asarray(to_device(idx, device_of(weight.data)) if hasattr(idx, "shape") else idx)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"embedding: expected integer indices, got dtype {idx.dtype}")
    if weight.ndim != 2:
        raise ValueError(f"embedding: weight must be 2-D (num_embeddings, embedding_dim), got {weight.shape}")
    num = weight.shape[0]
    if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= num):
        raise IndexError(
            f"embedding: indices must lie in [0, {num}) for a table of {num} rows, "
            f"got values in [{int(idx.min())}, {int(idx.max())}]"
        )
    if padding_idx is not None:
        padding_idx = int(padding_idx) % num
    return EmbeddingFn.apply(weight, idx.astype(np.int64, copy=False), padding_idx)


__all__ = ["embedding"]
