"""oneDNN pooling kernels: max and average pooling, forward and backward, N-d.

Arrays in, arrays out, like :mod:`rosenblatt.kernels.pooling`, on plain ``(N, C, *spatial)``
float32 arrays. Max pooling in training returns oneDNN's workspace (the position of every
maximum), which the caller keeps from forward to backward; the backward pass scatters through it.
Ties go to the first position in the window, as in PyTorch.

Padding: oneDNN's max pooling never picks a padded position (PyTorch's ``-inf`` padding); the
extra right/bottom padding of ``ceil_mode`` is passed as a larger right padding.

Declined calls (the caller runs the NumPy kernel): anything but float32 NumPy arrays, inputs
smaller than :data:`MIN_ELEMENTS` (the fixed cost of a oneDNN call, ~40 us, loses there: LeNet-5's
batch-1 pools took 46 us per call against ~20 us in NumPy; at 64x16x32x32 a max pool forward +
backward took 4.3 ms against 7.5 ms), average pooling whose ``ceil_mode`` window hangs over the padded input (PyTorch divides
such windows by a count oneDNN cannot express) or with ``divisor_override``, and any combination
oneDNN refuses.
"""

from __future__ import annotations

import numpy as np

from rosenblatt.kernels.onednn import library as L

C = L.C
MIN_ELEMENTS = 65536  # smaller inputs pool faster in the NumPy kernel (module docstring)
ALGORITHMS = {"max": C.pooling_max, "avg_include": C.pooling_avg_include_padding,
              "avg_exclude": C.pooling_avg_exclude_padding}
_PLAIN = {3: C.abc, 4: C.abcd, 5: C.abcde}


class _Plan:
    """The forward and backward primitives of one pooling geometry."""

    def __init__(self, key: tuple, x_shape: tuple[int, ...], y_shape: tuple[int, ...], alg: int,
                 kernel: tuple[int, ...], stride: tuple[int, ...], pad_l: tuple[int, ...],
                 pad_r: tuple[int, ...], dilation: tuple[int, ...], channels_last: bool = False) -> None:
        self.key, self.x_shape, self.y_shape, self.alg = key, x_shape, y_shape, alg
        self.channels_last = channels_last
        if channels_last:  # (N, C, H, W) views of (N, H, W, C) memory, in and out
            self.x_md, self.y_md = L.channels_last_md(x_shape), L.channels_last_md(y_shape)
        else:
            self.x_md = L.MemoryDesc.with_tag(x_shape, _PLAIN[len(x_shape)])
            self.y_md = L.MemoryDesc.with_tag(y_shape, _PLAIN[len(y_shape)])
        self.geometry = (L.dims(stride), L.dims(kernel), L.dims([d - 1 for d in dilation]), L.dims(pad_l),
                         L.dims(pad_r))
        self._primitives: dict[str, L.Primitive] = {}

    def primitive(self, kind: str) -> L.Primitive:
        p = self._primitives.get(kind)
        if p is None:
            if kind in ("train", "infer"):
                prop = C.forward_training if kind == "train" else C.forward_inference
                pd = L.create_pd("pooling_forward", prop, self.alg, self.x_md, self.y_md, *self.geometry, None,
                                 op="pooling")
                p = L.Primitive(pd, "pooling forward")
            else:
                hint = self.primitive("train")
                pd = L.create_pd("pooling_backward", self.alg, self.x_md, self.y_md, *self.geometry, hint.pd, None,
                                 op="pooling backward")
                p = L.Primitive(pd, "pooling backward")
            self._primitives[kind] = p
        return p


def _plan(x_shape: tuple[int, ...], y_shape: tuple[int, ...], alg: int, kernel: tuple[int, ...],
          stride: tuple[int, ...], pad_l: tuple[int, ...], pad_r: tuple[int, ...],
          dilation: tuple[int, ...], channels_last: bool = False) -> _Plan | None:
    key = ("pool", x_shape, y_shape, alg, kernel, stride, pad_l, pad_r, dilation, channels_last)

    def build() -> _Plan | bool:
        try:
            plan = _Plan(key, x_shape, y_shape, alg, kernel, stride, pad_l, pad_r, dilation, channels_last)
            plan.primitive("train")
            return plan
        except L.DnnlError:
            return False  # remembered: this geometry stays with the NumPy kernel

    plan = L.cached(key, build)
    return plan or None


def pool_forward(x: np.ndarray, y_shape: tuple[int, ...], alg: str, kernel: tuple[int, ...],
                 stride: tuple[int, ...], pad_l: tuple[int, ...], pad_r: tuple[int, ...],
                 dilation: tuple[int, ...], training: bool) -> tuple[np.ndarray, np.ndarray | None] | None:
    """``(y, workspace)`` of a pooling (``workspace`` only for max pooling in training), or ``None``.

    ``alg`` is ``"max"``, ``"avg_include"`` (padding counts in the average) or ``"avg_exclude"``.
    """
    if x.size < max(MIN_ELEMENTS, 1):
        return None
    x_cl = L.strided_channels_last(x)
    plan = _plan(tuple(x.shape), tuple(y_shape), ALGORITHMS[alg], kernel, stride, pad_l, pad_r, dilation,
                 x_cl is not None)
    if plan is None:
        return None
    prim = plan.primitive("train" if training else "infer")
    if x_cl is not None:  # pooled as it lies: the output channels-last too
        y = L.empty_channels_last(y_shape)
        args = [(C.ARG_SRC, x_cl), (C.ARG_DST, y.transpose(0, 2, 3, 1))]
    else:
        y = L.empty(y_shape)
        args = [(C.ARG_SRC, L.contiguous(x)), (C.ARG_DST, y)]
    ws = None
    if training and alg == "max":
        ws = np.empty(prim.md(C.ARG_WORKSPACE).nbytes, np.uint8)
        args.append((C.ARG_WORKSPACE, ws))
        ws = Workspace(ws, x_cl is not None)
    prim.execute(args)
    return y, ws


class Workspace:
    """Max pooling's forward workspace, with the layout it was written in (its backward's layout)."""

    __slots__ = ("array", "channels_last")

    def __init__(self, array: np.ndarray, channels_last: bool) -> None:
        self.array, self.channels_last = array, channels_last


def pool_backward(gy: np.ndarray, workspace: Workspace | None, x_shape: tuple[int, ...], alg: str,
                  kernel: tuple[int, ...], stride: tuple[int, ...], pad_l: tuple[int, ...],
                  pad_r: tuple[int, ...], dilation: tuple[int, ...]) -> np.ndarray | None:
    """d(loss)/d(input) of a pooling (max pooling needs its forward ``workspace``), or ``None``."""
    if gy.size == 0 or (alg != "max" and np.prod(x_shape) < MIN_ELEMENTS):  # max: forward decided
        return None
    # max pooling: the forward's layout (its workspace's); average pooling: the gradient's
    channels_last = workspace.channels_last if workspace is not None else L.strided_channels_last(gy) is not None
    plan = _plan(tuple(x_shape), tuple(gy.shape), ALGORITHMS[alg], kernel, stride, pad_l, pad_r, dilation,
                 channels_last)
    if plan is None:
        return None
    if channels_last:
        g = L.as_channels_last_memory(gy)  # a plain gradient: into the forward's layout
        gx = L.empty_channels_last(x_shape)
        args = [(C.ARG_DIFF_DST, g), (C.ARG_DIFF_SRC, gx.transpose(0, 2, 3, 1))]
    else:
        gx = L.empty(x_shape)
        args = [(C.ARG_DIFF_DST, L.contiguous(gy)), (C.ARG_DIFF_SRC, gx)]
    if alg == "max":
        args.append((C.ARG_WORKSPACE, workspace.array))
    plan.primitive("bwd").execute(args)
    return gx


__all__ = ["pool_backward", "pool_forward"]
