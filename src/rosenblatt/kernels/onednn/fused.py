"""oneDNN convolution -> training-mode batch norm (-> ReLU) in one pass, kept in the blocked layout.

Arrays in, arrays out. The convolution's output stays in the layout oneDNN picked for it (e.g.
``nChw8c``): batch norm reads it there (in a blocked layout it is fast on every feature-map size,
unlike on plain arrays, see :mod:`rosenblatt.kernels.onednn.normalization`), applies the ReLU with
its ``fuse_norm_relu`` flag (a bit mask workspace remembers where it clipped), and only the final
output is reordered to plain NCHW. Backward reorders the plain output gradient in once, runs batch
norm's backward (ReLU included) in the blocked layout and hands its result straight to the
convolution's data and weights passes.

Saved between forward and backward: the blocked convolution output and the ReLU mask (the
unfused chain keeps the convolution output, batch norm's normalised input and its output). The
forward input is taken back as the plain array the caller keeps anyway.

Declined (``None``; the caller runs the unfused chain): whatever :mod:`.conv` declines, and
geometries for which oneDNN has no batch-norm primitive on the convolution's output layout.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rosenblatt.kernels.onednn import conv as dconv
from rosenblatt.kernels.onednn import library as L
from rosenblatt.kernels.workspace import workspace

C = L.C


class _Plan:
    """The convolution plan plus batch-norm primitives on the convolution's output layout."""

    def __init__(self, conv: dconv._Plan, bias: bool, eps: float, relu: bool) -> None:
        self.conv = conv
        self.fwd_kind = "fwd_bias" if bias else "fwd"
        self.w_kind = "bwd_weights_bias" if bias else "bwd_weights"
        self.md = conv.primitive(self.fwd_kind).md(C.ARG_DST)
        flags = C.use_scale | C.use_shift | (C.fuse_norm_relu if relu else 0)
        self.bn_fwd = L.Primitive(L.create_pd("batch_normalization_forward", C.forward_training, self.md, self.md,
                                              eps, flags, None, op="conv_bn"), "conv_bn batch_norm forward")
        self.bn_bwd = L.Primitive(L.create_pd("batch_normalization_backward", C.backward, self.md, self.md, self.md,
                                              eps, flags, self.bn_fwd.pd, None, op="conv_bn backward"),
                                  "conv_bn batch_norm backward")
        self.ws_bytes = self.bn_fwd.md(C.ARG_WORKSPACE).nbytes if relu else 0
        self.size = self.md.nbytes // 4
        self.plain_out = self.md == conv.y_md
        # does each convolution backward pass take the output gradient in batch norm's layout?
        self.same_w = conv.primitive(self.w_kind).md(C.ARG_DIFF_DST) == self.md
        self.same_data = conv.primitive("bwd_data").md(C.ARG_DIFF_DST) == self.md


def _plan(x_shape: tuple[int, ...], w_shape: tuple[int, ...], bias: bool, geometry: tuple, eps: float,
          relu: bool) -> _Plan | None:
    conv = dconv._plan(x_shape, w_shape, *geometry)

    def build() -> _Plan | bool:
        try:
            return _Plan(conv, bias, eps, relu)
        except L.DnnlError:
            return False

    return L.cached(("conv_bn", conv.key, bias, eps, relu), build) or None


def conv_bn_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, gamma: np.ndarray, beta: np.ndarray,
                    eps: float, relu: bool, stride: tuple[int, ...], pad_l: tuple[int, ...], pad_r: tuple[int, ...],
                    dilation: tuple[int, ...], groups: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, Any] | None:
    """``(y, batch_mean, batch_var, saved)`` of ``relu?(batch_norm(conv(x, w) + b))``, or ``None``.

    ``batch_var`` is biased; ``saved`` goes back to :func:`conv_bn_backward`.
    """
    geometry = (stride, pad_l, pad_r, dilation, groups)
    if not dconv._supported(x, w) or not dconv._worthwhile(x.shape, w.shape, stride, pad_l, pad_r, dilation):
        return None
    try:
        plan = _plan(x.shape, w.shape, b is not None, geometry, float(eps), relu)
        if plan is None:
            return None
        cp = plan.conv
        kind = plan.fwd_kind
        prim = cp.primitive(kind)
        args = [(C.ARG_SRC, dconv._into(cp, kind, C.ARG_SRC, np.ascontiguousarray(x), cp.x_md, "onednn.in")),
                (C.ARG_WEIGHTS, dconv._into(cp, kind, C.ARG_WEIGHTS, np.ascontiguousarray(w), cp.w_md,
                                            "onednn.weights"))]
        if b is not None:
            args.append((C.ARG_BIAS, np.ascontiguousarray(b)))
        conv_out = np.empty(plan.size, np.float32)  # kept for backward
        prim.execute(args + [(C.ARG_DST, conv_out)])
        c = cp.y_shape[1]
        mean, var = np.empty(c, np.float32), np.empty(c, np.float32)
        y = np.empty(cp.y_shape, np.float32)
        bn_out = y if plan.plain_out else workspace("onednn.in", (plan.size,), np.float32)
        mask = np.empty(plan.ws_bytes, np.uint8) if relu else None
        bn_args = [(C.ARG_SRC, conv_out), (C.ARG_DST, bn_out), (C.ARG_SCALE, np.ascontiguousarray(gamma)),
                   (C.ARG_SHIFT, np.ascontiguousarray(beta)), (C.ARG_MEAN, mean), (C.ARG_VARIANCE, var)]
        if relu:
            bn_args.append((C.ARG_WORKSPACE, mask))
        plan.bn_fwd.execute(bn_args)
        if not plan.plain_out:
            L.reorder(plan.md, cp.y_md, (cp.key, "conv_bn", "out")).execute([(C.ARG_FROM, bn_out), (C.ARG_TO, y)])
    except L.DnnlError:
        return None
    return y, mean, var, (plan, conv_out, mask)


def conv_bn_backward(gy: np.ndarray, x: np.ndarray, w: np.ndarray, gamma: np.ndarray, mean: np.ndarray,
                     var: np.ndarray, saved: Any, need_x: bool) -> tuple[np.ndarray | None, ...]:
    """``(gx or None, gw, gb or None, ggamma, gbeta)`` from the output gradient ``gy`` (plain)."""
    plan, conv_out, mask = saved
    cp = plan.conv
    c = cp.y_shape[1]
    gy = np.ascontiguousarray(gy)
    if plan.plain_out:
        gy_blocked = gy
    else:
        gy_blocked = workspace("onednn.out", (plan.size,), np.float32)
        L.reorder(cp.y_md, plan.md, (cp.key, "conv_bn", "in")).execute([(C.ARG_FROM, gy), (C.ARG_TO, gy_blocked)])
    gc = workspace("onednn.in", (plan.size,), np.float32)  # read by both passes
    ggamma, gbeta = np.empty(c, np.float32), np.empty(c, np.float32)
    bn_args = [(C.ARG_SRC, conv_out), (C.ARG_MEAN, mean), (C.ARG_VARIANCE, var), (C.ARG_DIFF_DST, gy_blocked),
               (C.ARG_SCALE, np.ascontiguousarray(gamma)), (C.ARG_DIFF_SRC, gc), (C.ARG_DIFF_SCALE, ggamma),
               (C.ARG_DIFF_SHIFT, gbeta)]
    if mask is not None:
        bn_args.append((C.ARG_WORKSPACE, mask))
    plan.bn_bwd.execute(bn_args)
    if plan.plain_out:
        gc_arg: Any = gc.reshape(cp.y_shape)
    elif plan.same_w and (plan.same_data or not need_x):
        gc_arg = dconv._Relaid(None, gc, plan.md)  # type: ignore[arg-type]
    else:  # a layout the passes do not share: through the plain layout
        plain = np.empty(cp.y_shape, np.float32)
        L.reorder(plan.md, cp.y_md, (cp.key, "conv_bn", "out")).execute([(C.ARG_FROM, gc), (C.ARG_TO, plain)])
        gc_arg = plain
    outputs = [(C.ARG_DIFF_WEIGHTS, cp.w_shape, cp.w_md, "onednn.diff_weights")]
    with_bias = plan.w_kind == "bwd_weights_bias"
    if with_bias:
        outputs.append((C.ARG_DIFF_BIAS, (cp.w_shape[0],), cp.b_md, "onednn.diff_bias"))
    grads = dconv._run(cp, plan.w_kind, [(C.ARG_SRC, np.ascontiguousarray(x), cp.x_md, "onednn.in2"),
                                         (C.ARG_DIFF_DST, gc_arg, cp.y_md, "onednn.in")], outputs)
    gx = None
    if need_x:
        (gx,) = dconv._run(cp, "bwd_data", [(C.ARG_DIFF_DST, gc_arg, cp.y_md, "onednn.in3"),
                                            (C.ARG_WEIGHTS, np.ascontiguousarray(w), cp.w_md, "onednn.weights")],
                           [(C.ARG_DIFF_SRC, cp.x_shape, cp.x_md, "onednn.out")])
    return gx, grads[0], (grads[1] if with_bias else None), ggamma, gbeta


__all__ = ["conv_bn_backward", "conv_bn_forward"]
