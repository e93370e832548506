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
from rosenblatt.kernels.onednn import eltwise
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


def _forward(plan: _Plan, x: Any, w: np.ndarray, b: np.ndarray | None, gamma: np.ndarray, beta: np.ndarray,
             out: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """Convolution then batch norm into ``out`` (batch norm's layout); ``x`` plain or ``_Relaid``.

    Returns ``(conv_out, batch_mean, batch_var, relu_mask)``, the first and last kept for backward.
    """
    cp, kind = plan.conv, plan.fwd_kind
    args = [(C.ARG_SRC, dconv._into(cp, kind, C.ARG_SRC, x, cp.x_md, "onednn.in")),
            (C.ARG_WEIGHTS, dconv._into(cp, kind, C.ARG_WEIGHTS, np.ascontiguousarray(w), cp.w_md, "onednn.weights"))]
    if b is not None:
        args.append((C.ARG_BIAS, np.ascontiguousarray(b)))
    conv_out = L.empty(plan.size)
    cp.primitive(kind).execute(args + [(C.ARG_DST, conv_out)])
    c = cp.y_shape[1]
    mean, var = np.empty(c, np.float32), np.empty(c, np.float32)
    mask = np.empty(plan.ws_bytes, np.uint8) if plan.ws_bytes else None
    bn_args = [(C.ARG_SRC, conv_out), (C.ARG_DST, out), (C.ARG_SCALE, np.ascontiguousarray(gamma)),
               (C.ARG_SHIFT, np.ascontiguousarray(beta)), (C.ARG_MEAN, mean), (C.ARG_VARIANCE, var)]
    if mask is not None:
        bn_args.append((C.ARG_WORKSPACE, mask))
    plan.bn_fwd.execute(bn_args)
    return conv_out, mean, var, mask


def _to_plain(plan: _Plan, blocked: np.ndarray, out: np.ndarray) -> np.ndarray:
    L.reorder(plan.md, plan.conv.y_md, (plan.conv.key, "conv_bn", "out")).execute(
        [(C.ARG_FROM, blocked), (C.ARG_TO, out)])
    return out


def _to_blocked(plan: _Plan, plain: np.ndarray, out: np.ndarray) -> np.ndarray:
    L.reorder(plan.conv.y_md, plan.md, (plan.conv.key, "conv_bn", "in")).execute(
        [(C.ARG_FROM, L.contiguous(plain)), (C.ARG_TO, out)])
    return out


def _bn_backward(plan: _Plan, saved: tuple, gamma: np.ndarray, gy_blocked: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Batch norm's (and its ReLU's) backward: ``(gc, ggamma, gbeta)``, ``gc`` in a workspace buffer."""
    conv_out, mean, var, mask = saved
    c = plan.conv.y_shape[1]
    gc = workspace("onednn.in", (plan.size,), np.float32)
    ggamma, gbeta = np.empty(c, np.float32), np.empty(c, np.float32)
    bn_args = [(C.ARG_SRC, conv_out), (C.ARG_MEAN, mean), (C.ARG_VARIANCE, var), (C.ARG_DIFF_DST, gy_blocked),
               (C.ARG_SCALE, np.ascontiguousarray(gamma)), (C.ARG_DIFF_SRC, gc), (C.ARG_DIFF_SCALE, ggamma),
               (C.ARG_DIFF_SHIFT, gbeta)]
    if mask is not None:
        bn_args.append((C.ARG_WORKSPACE, mask))
    plan.bn_bwd.execute(bn_args)
    return gc, ggamma, gbeta


def _weights_backward(plan: _Plan, x: Any, gc: Any) -> tuple[np.ndarray, np.ndarray | None]:
    cp = plan.conv
    outputs = [(C.ARG_DIFF_WEIGHTS, cp.w_shape, cp.w_md, "onednn.diff_weights")]
    with_bias = plan.w_kind == "bwd_weights_bias"
    if with_bias:
        outputs.append((C.ARG_DIFF_BIAS, (cp.w_shape[0],), cp.b_md, "onednn.diff_bias"))
    grads = dconv._run(cp, plan.w_kind, [(C.ARG_SRC, x, cp.x_md, "onednn.in2"),
                                         (C.ARG_DIFF_DST, gc, cp.y_md, "onednn.in")], outputs)
    return grads[0], (grads[1] if with_bias else None)


def conv_bn_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, gamma: np.ndarray, beta: np.ndarray,
                    eps: float, relu: bool, stride: tuple[int, ...], pad_l: tuple[int, ...], pad_r: tuple[int, ...],
                    dilation: tuple[int, ...], groups: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, Any] | None:
    """``(y, batch_mean, batch_var, saved)`` of ``relu?(batch_norm(conv(x, w) + b))``, or ``None``.

    ``batch_var`` is biased; ``saved`` goes back to :func:`conv_bn_backward`.
    """
    geometry = (stride, pad_l, pad_r, dilation, groups)
    if not dconv._supported(x, w) or not dconv.worthwhile(x.shape, w.shape, stride, pad_l, pad_r, dilation):
        return None
    try:
        plan = _plan(x.shape, w.shape, b is not None, geometry, float(eps), relu)
        if plan is None:
            return None
        y = L.empty(plan.conv.y_shape)
        out = y if plan.plain_out else workspace("onednn.in", (plan.size,), np.float32)
        conv_out, mean, var, mask = _forward(plan, L.contiguous(x), w, b, gamma, beta, out)
        if not plan.plain_out:
            _to_plain(plan, out, y)
    except L.DnnlError:
        return None
    return y, mean, var, (plan, (conv_out, mean, var, mask))


def _as(plan: _Plan, kind: str, gc: np.ndarray, same: bool, tag: str) -> Any:
    """Batch norm's gradient ``gc`` (its layout) as convolution pass ``kind`` takes its output gradient."""
    if same:
        return dconv._Relaid(None, gc, plan.md)  # type: ignore[arg-type]
    cp = plan.conv
    want = cp.primitive(kind).md(C.ARG_DIFF_DST)
    out = workspace(tag, (want.nbytes // 4,), np.float32)
    L.reorder(plan.md, want, (cp.key, "conv_bn", kind)).execute([(C.ARG_FROM, gc), (C.ARG_TO, out)])
    return dconv._Relaid(None, out, want)  # type: ignore[arg-type]


def _data_backward(plan: _Plan, gc: np.ndarray, w: np.ndarray, add_to: np.ndarray | None = None) -> np.ndarray:
    """The convolution's input gradient: fresh, or added into ``add_to`` (plain, ``x``'s shape)."""
    cp = plan.conv
    if add_to is None:
        gy = _as(plan, "bwd_data", gc, plan.same_data, "onednn.in3")
        (gx,) = dconv._run(cp, "bwd_data", [(C.ARG_DIFF_DST, gy, cp.y_md, "onednn.in3"),
                                            (C.ARG_WEIGHTS, np.ascontiguousarray(w), cp.w_md, "onednn.weights")],
                           [(C.ARG_DIFF_SRC, cp.x_shape, cp.x_md, "onednn.out")])
        return gx
    # the sum happens as the result is reordered out (a sum post-op): no extra pass, no extra array
    want = cp.primitive("bwd_data").md(C.ARG_DIFF_SRC)
    out = _data_backward_blocked(plan, gc, w, workspace("onednn.out", (want.nbytes // 4,), np.float32))
    if cp.is_plain("bwd_data", C.ARG_DIFF_SRC, cp.x_md):
        np.add(add_to, out[:add_to.size].reshape(add_to.shape), out=add_to)
    else:
        L.reorder(want, cp.x_md, (cp.key, "bwd_data", "accumulate"), accumulate=True).execute(
            [(C.ARG_FROM, out), (C.ARG_TO, add_to)])
    return add_to


def conv_bn_backward(gy: np.ndarray, x: np.ndarray, w: np.ndarray, gamma: np.ndarray, saved: Any,
                     need_x: bool) -> tuple[np.ndarray | None, ...]:
    """``(gx or None, gw, gb or None, ggamma, gbeta)`` from the output gradient ``gy`` (plain)."""
    plan, state = saved
    cp = plan.conv
    gy = L.contiguous(gy)
    gy_blocked = gy if plan.plain_out else _to_blocked(plan, gy, workspace("onednn.out", (plan.size,), np.float32))
    gc, ggamma, gbeta = _bn_backward(plan, state, gamma, gy_blocked)
    if plan.plain_out:
        gc = gc.reshape(cp.y_shape)
        gw, gb = _weights_backward(plan, L.contiguous(x), gc)
        gx = _data_backward(plan, gc, w) if need_x else None
        return gx, gw, gb, ggamma, gbeta
    gw, gb = _weights_backward(plan, L.contiguous(x), _as(plan, plan.w_kind, gc, plan.same_w, "conv_bn.w"))
    gx = _data_backward(plan, gc, w) if need_x else None
    return gx, gw, gb, ggamma, gbeta


# -- two in a row: a residual block's conv-bn-relu-conv-bn, the middle activation kept blocked ----


def _chains(first: _Plan, second: _Plan) -> bool:
    """True when ``second`` takes ``first``'s blocked output as it is, forward and backward."""
    md, cp = first.md, second.conv
    return (not first.plain_out and not second.plain_out and cp.primitive(second.fwd_kind).md(C.ARG_SRC) == md
            and cp.primitive(second.w_kind).md(C.ARG_SRC) == md and cp.primitive("bwd_data").md(C.ARG_DIFF_SRC) == md)


def block_forward(x: np.ndarray, w1: np.ndarray, gamma1: np.ndarray, beta1: np.ndarray, eps1: float,
                  geometry1: tuple, w2: np.ndarray, gamma2: np.ndarray, beta2: np.ndarray, eps2: float,
                  geometry2: tuple) -> tuple[np.ndarray, tuple, tuple, Any] | None:
    """``batch_norm2(conv2(relu(batch_norm1(conv1(x)))))`` without biases, or ``None`` when declined.

    Returns ``(y, (mean1, var1), (mean2, var2), saved)`` (biased variances); the middle
    activation never leaves the blocked layout.
    """
    if not dconv._supported(x, w1, w2) or not dconv.worthwhile(x.shape, w1.shape, *geometry1[:4]):
        return None
    try:
        p1 = _plan(x.shape, w1.shape, False, geometry1, float(eps1), True)
        if p1 is None:
            return None
        if not dconv.worthwhile(p1.conv.y_shape, w2.shape, *geometry2[:4]):
            return None
        p2 = _plan(p1.conv.y_shape, w2.shape, False, geometry2, float(eps2), False)
        if p2 is None or not L.cached(("conv_bn_chain", p1.conv.key, p2.conv.key, eps1, eps2),
                                      lambda: _chains(p1, p2)):
            return None
        mid = L.empty(p1.size)  # kept: the second convolution's input
        s1 = _forward(p1, L.contiguous(x), w1, None, gamma1, beta1, mid)
        out = workspace("onednn.in", (p2.size,), np.float32)
        s2 = _forward(p2, dconv._Relaid(None, mid, p1.md), w2, None, gamma2, beta2, out)  # type: ignore[arg-type]
        y = _to_plain(p2, out, L.empty(p2.conv.y_shape))
    except L.DnnlError:
        return None
    return y, s1[1:3], s2[1:3], (p1, p2, s1, s2, mid)


def _data_backward_blocked(plan: _Plan, gc: np.ndarray, w: np.ndarray, out: np.ndarray) -> np.ndarray:
    """The convolution's input gradient into ``out``, in the layout its data pass writes (the
    chain checks made sure that is the previous stage's)."""
    cp = plan.conv
    cp.primitive("bwd_data").execute([
        (C.ARG_DIFF_DST, _as(plan, "bwd_data", gc, plan.same_data, "onednn.in3").buffer),
        (C.ARG_WEIGHTS, dconv._into(cp, "bwd_data", C.ARG_WEIGHTS, np.ascontiguousarray(w), cp.w_md,
                                    "onednn.weights")),
        (C.ARG_DIFF_SRC, out)])
    return out


def block_backward(gy: np.ndarray, x: np.ndarray, w1: np.ndarray, gamma1: np.ndarray, w2: np.ndarray,
                   gamma2: np.ndarray, saved: Any, need_x: bool,
                   add_to: np.ndarray | None = None) -> tuple[np.ndarray | None, ...]:
    """``(gx or None, gw1, ggamma1, gbeta1, gw2, ggamma2, gbeta2)`` from the plain ``gy``.

    With ``add_to`` (a plain array of ``x``'s shape, which may be ``gy`` itself: it is read
    first), ``gx`` is added into it and ``add_to`` is returned as ``gx``: an identity shortcut's
    gradient and the block's own, summed as the block's result leaves the blocked layout.
    """
    p1, p2, s1, s2, mid = saved
    gy_blocked = _to_blocked(p2, gy, workspace("onednn.out", (p2.size,), np.float32))
    gc2, ggamma2, gbeta2 = _bn_backward(p2, s2, gamma2, gy_blocked)
    gw2, _ = _weights_backward(p2, dconv._Relaid(None, mid, p1.md),  # type: ignore[arg-type]
                               _as(p2, p2.w_kind, gc2, p2.same_w, "conv_bn.w"))
    gmid = _data_backward_blocked(p2, gc2, w2, workspace("onednn.out", (p1.size,), np.float32))
    gc1, ggamma1, gbeta1 = _bn_backward(p1, s1, gamma1, gmid)
    gw1, _ = _weights_backward(p1, L.contiguous(x), _as(p1, p1.w_kind, gc1, p1.same_w, "conv_bn.w"))
    gx = _data_backward(p1, gc1, w1, add_to) if need_x else None
    return gx, gw1, ggamma1, gbeta1, gw2, ggamma2, gbeta2


# -- a stage of identity blocks: every activation between them kept blocked -----------------------


def _relu_grad_blocked(g: np.ndarray, y: np.ndarray) -> np.ndarray:
    out = eltwise.relu_grad(g, y)
    return g * (y > 0) if out is None else out


class _Stage:
    """The plans of a stage's blocks and the layout each block's input is kept in."""

    def __init__(self, blocks: list[tuple[_Plan, _Plan, L.MemoryDesc]], x_md: L.MemoryDesc,
                 y_shape: tuple[int, ...], shortcut: bool) -> None:
        self.blocks, self.x_md, self.y_shape, self.shortcut = blocks, x_md, y_shape, shortcut
        self.gx_md = blocks[0][0].conv.primitive("bwd_data").md(C.ARG_DIFF_SRC)  # the first input's gradient


def _takes(plan: _Plan, md: L.MemoryDesc, gradient: bool = True) -> bool:
    """True when the convolution reads its input (forward, weights pass) and, with ``gradient``,
    writes its input gradient in layout ``md``."""
    cp = plan.conv
    return (cp.primitive(plan.fwd_kind).md(C.ARG_SRC) == md and cp.primitive(plan.w_kind).md(C.ARG_SRC) == md
            and (not gradient or cp.primitive("bwd_data").md(C.ARG_DIFF_SRC) == md))


def _build_stage(x_shape: tuple[int, ...], meta: tuple, shortcut: bool) -> _Stage | bool:
    blocks, shape, md = [], x_shape, None
    for i, (w1_shape, eps1, geometry1, w2_shape, eps2, geometry2) in enumerate(meta):
        if (not dconv.worthwhile(shape, w1_shape, *geometry1[:4])
                or w2_shape[1] * geometry2[4] != w1_shape[0]):
            return False
        p1 = _plan(shape, w1_shape, False, geometry1, float(eps1), True)
        if p1 is None or not dconv.worthwhile(p1.conv.y_shape, w2_shape, *geometry2[:4]):
            return False
        p2 = _plan(p1.conv.y_shape, w2_shape, False, geometry2, float(eps2), False)
        if p2 is None or not _chains(p1, p2):
            return False
        if md is None:
            md = p1.conv.primitive(p1.fwd_kind).md(C.ARG_SRC)
        # the first block's input gradient goes out of the stage (reordered), unless it is added to
        # an identity shortcut's gradient: then, as everywhere else, it must come in the kept layout
        if not _takes(p1, md, gradient=i > 0 or not shortcut):
            return False
        if (i > 0 or not shortcut) and (p2.conv.y_shape != shape or md != p2.md):
            return False  # an identity shortcut adds the block's input as it is kept
        blocks.append((p1, p2, md))
        shape, md = p2.conv.y_shape, p2.md
    return _Stage(blocks, blocks[0][2], shape, shortcut)


def stage_plan(x_shape: tuple[int, ...], meta: tuple, shortcut: bool) -> _Stage | None:
    """The plan of a stage (cached), or ``None`` when oneDNN's layouts do not chain for it.

    ``meta`` holds ``(w1_shape, eps1, geometry1, w2_shape, eps2, geometry2)`` per block (bias-free
    convolutions; a geometry is ``(stride, pad_l, pad_r, dilation, groups)``); ``shortcut``: the
    first block's shortcut is computed outside (a projection or a subsampling) and passed to
    :func:`stage_forward`, the others add their input.
    """
    try:
        return L.cached(("conv_bn_stage", tuple(x_shape), meta, shortcut),
                        lambda: _build_stage(tuple(x_shape), meta, shortcut)) or None
    except L.DnnlError:
        return None


def stage_forward(stage: _Stage, x: np.ndarray, params: list[tuple], residual: np.ndarray | None
                  ) -> tuple[np.ndarray, list, Any]:
    """A run of residual blocks, ``x_{i+1} = relu(bn2(conv2(relu(bn1(conv1(x_i))))) + shortcut_i)``, with
    every activation between the blocks kept in oneDNN's layout: one reorder in, one out.

    ``params`` holds ``(w1, gamma1, beta1, w2, gamma2, beta2)`` per block; ``residual`` is the
    first block's shortcut (plain, its output's shape) when the plan was made with ``shortcut``,
    else ``None`` (every shortcut is the block's input). Returns ``(y, stats, saved)``: ``stats``
    is ``[((mean1, var1), (mean2, var2)), ...]`` (biased variances) for the running statistics,
    ``saved`` goes back to :func:`stage_backward`.
    """
    p1 = stage.blocks[0][0]
    xb = L.empty(stage.x_md.nbytes // 4)  # kept: the first block's input, in its layout
    L.reorder(p1.conv.x_md, stage.x_md, (p1.conv.key, "conv_bn_stage", "in")).execute(
        [(C.ARG_FROM, L.contiguous(x)), (C.ARG_TO, xb)])
    saved, stats = [], []
    for i, ((p1, p2, md), (w1, gamma1, beta1, w2, gamma2, beta2)) in enumerate(zip(stage.blocks, params)):
        mid = L.empty(p1.size)
        s1 = _forward(p1, dconv._Relaid(None, xb, md), w1, None, gamma1, beta1, mid)  # type: ignore[arg-type]
        out = L.empty(p2.size)
        s2 = _forward(p2, dconv._Relaid(None, mid, p1.md), w2, None, gamma2, beta2, out)  # type: ignore[arg-type]
        if i == 0 and residual is not None:
            eltwise.add(out, _to_blocked(p2, residual, workspace("onednn.in", (p2.size,), np.float32)), relu=True)
        else:
            eltwise.add(out, xb, relu=True)
        saved.append((xb, mid, s1, s2))
        stats.append((s1[1:3], s2[1:3]))
        xb = out
    y = _to_plain(p2, xb, L.empty(stage.y_shape))
    return y, stats, saved


def stage_backward(g: np.ndarray, stage: _Stage, params: list[tuple], saved: Any, need_x: bool,
                   need_residual: bool) -> tuple[Any, Any, list[tuple]]:
    """``(gx or None, g_residual or None, [(gw1, ggamma1, gbeta1, gw2, ggamma2, gbeta2), ...])`` of
    :func:`stage_forward`. ``g`` is the plain gradient behind the last block's ReLU (the caller
    keeps the plain output for that mask); ``params`` as in the forward pass (the weights and the
    batch-norm scales are read); ``g_residual`` is the first block's shortcut's gradient."""
    p2 = stage.blocks[-1][1]
    g = _to_blocked(p2, g, L.empty(p2.size))
    grads, g_residual = [], None
    last = len(saved) - 1
    for i in range(last, -1, -1):
        p1, p2, md = stage.blocks[i]
        xb, mid, s1, s2 = saved[i]
        w1, gamma1, _, w2, gamma2, _ = params[i]
        if i < last:
            g = _relu_grad_blocked(g, saved[i + 1][0])  # this block's output ReLU (the next one's input)
        gc2, ggamma2, gbeta2 = _bn_backward(p2, s2, gamma2, g)
        gw2, _ = _weights_backward(p2, dconv._Relaid(None, mid, p1.md),  # type: ignore[arg-type]
                                   _as(p2, p2.w_kind, gc2, p2.same_w, "conv_bn.w"))
        gmid = _data_backward_blocked(p2, gc2, w2, workspace("onednn.out", (p1.size,), np.float32))
        gc1, ggamma1, gbeta1 = _bn_backward(p1, s1, gamma1, gmid)
        gw1, _ = _weights_backward(p1, dconv._Relaid(None, xb, md),  # type: ignore[arg-type]
                                   _as(p1, p1.w_kind, gc1, p1.same_w, "conv_bn.w"))
        grads.append((gw1, ggamma1, gbeta1, gw2, ggamma2, gbeta2))
        identity = i > 0 or not stage.shortcut  # else the first block's shortcut was computed outside
        if not identity and need_residual:
            g_residual = _to_plain(p2, g, L.empty(p2.conv.y_shape))
        if i > 0 or need_x:
            gx_md = md if i > 0 else stage.gx_md
            gx = _data_backward_blocked(p1, gc1, w1, L.empty(gx_md.nbytes // 4))
            if identity:
                eltwise.add(gx, g)
            g = gx
    grads.reverse()
    gx = None
    if need_x:
        p1 = stage.blocks[0][0]
        gx = L.empty(p1.conv.x_shape)
        L.reorder(stage.gx_md, p1.conv.x_md, (p1.conv.key, "conv_bn_stage", "gx")).execute(
            [(C.ARG_FROM, g), (C.ARG_TO, gx)])
    return gx, g_residual, grads


__all__ = ["block_backward", "block_forward", "conv_bn_backward", "conv_bn_forward", "stage_backward",
           "stage_forward", "stage_plan"]
