"""Concatenation of float32 arrays (``rb.cat``) on oneDNN's concat primitive: one threaded pass
that writes the output, where ``numpy.concatenate`` copies on one thread.

The skip connections of a UNet and the dense blocks of a DenseNet join large activations along
the channels. Measured, two 64x16x32x32 arrays along axis 1 (two threads): NumPy 641 us, oneDNN
359 us, PyTorch's ``cat`` 373 us. Channels-last activations are joined in their own memory.

A primitive is made for one list of shapes and one axis (about 0.4 ms to build). A
program that joins ever-new shapes (an output grown by one step at a time in a loop) would build
one per call, so a list of shapes gets its primitive only the second time it is seen: a shape
seen once runs on NumPy.
"""

from __future__ import annotations

from collections import OrderedDict
from ctypes import c_void_p
from typing import Any

import numpy as np

from rosenblatt.kernels.onednn import library as L

C = L.C
ENABLED = True  # False: never used (NumPy runs)
# From this many output elements: two 16x16x16x16 arrays (131,072 elements) took 15 us on oneDNN
# and 12 us in NumPy, two 32x16x16x16 (262,144) 23 us against 42 us.
MIN_ELEMENTS = 1 << 18
_ARG_MULTIPLE_SRC = 1024  # DNNL_ARG_MULTIPLE_SRC: the i-th input is this + i

L.bind("concat_primitive_desc_create", [L._PP, L._P, L._P, L._I, L._I, L._P, L._P])

# Lists of shapes seen once (bounded): the second call with the same shapes builds the primitive.
_SEEN_MAX = 256
_seen: OrderedDict[tuple, None] = OrderedDict()


class _Plan:
    def __init__(self, shapes: tuple[tuple[int, ...], ...], axis: int, out_shape: tuple[int, ...]) -> None:
        sources = [L.MemoryDesc.contiguous(s) for s in shapes]
        handles = (c_void_p * len(sources))(*[md.handle for md in sources])
        pd = L.create_pd("concat", L.MemoryDesc.contiguous(out_shape), len(sources), axis, handles, None,
                         op="cat")
        self.op = L.Primitive(pd, "cat")


# The axis of an (N, C, H, W) array in its channels-last (N, H, W, C) memory.
_NHWC_AXIS = (0, 3, 1, 2)


def concatenate(arrays: Any, axis: int) -> np.ndarray | None:
    """``numpy.concatenate(arrays, axis)`` of float32 NumPy arrays, or None when declined (other
    dtypes or layouts, small outputs, shapes seen for the first time).

    The arrays are C-contiguous, or all channels-last 4-D arrays (``(N, C, H, W)`` views of
    ``(N, H, W, C)`` memory, what the convolutions hand each other): those are joined in that memory
    and the result is channels-last too, ready for the next convolution.
    """
    if not ENABLED:
        return None
    total, nhwc = 0, False
    for a in arrays:
        if type(a) is not np.ndarray or a.dtype != np.float32 or a.size == 0:
            return None
        if not a.flags.c_contiguous:
            if L.strided_channels_last(a) is None:
                return None
            nhwc = True
        total += a.size
    if total < MIN_ELEMENTS:
        return None
    if nhwc:
        memories = [L.channels_last(a) for a in arrays]
        if any(m is None for m in memories):  # plain and channels-last arrays mixed: NumPy
            return None
        arrays, axis = memories, _NHWC_AXIS[axis]
    shapes = tuple(a.shape for a in arrays)
    key = ("cat", shapes, axis)
    if key not in _seen:
        _seen[key] = None
        if len(_seen) > _SEEN_MAX:
            _seen.popitem(last=False)
        return None
    out_shape = list(shapes[0])
    out_shape[axis] = sum(s[axis] for s in shapes)
    out_shape = tuple(out_shape)
    plan = L.cached_or_none(key, lambda: _Plan(shapes, axis, out_shape))
    if plan is None:
        return None
    out = L.empty(out_shape)
    plan.op.execute([(_ARG_MULTIPLE_SRC + i, a) for i, a in enumerate(arrays)] + [(C.ARG_DST, out)])
    return out.transpose(0, 3, 1, 2) if nhwc else out


__all__ = ["concatenate"]
