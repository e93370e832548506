"""oneDNN layer chains: consecutive convolution, batch-norm, ReLU/tanh and pooling layers run with every
activation between them in the layout oneDNN picked for it.

Arrays in, arrays out. A chain is a list of layer specs (:func:`plan`); its forward pass takes one
plain ``(N, C, H, W)`` float32 array and returns one, and the activations in between never leave
oneDNN's (blocked, e.g. ``nChw16c``) layouts: the convolutions write them, batch norm, the element-wise
functions and pooling read and write them as they are. Only the chain's input and output are
reordered, where layer-by-layer execution reorders around every convolution: for a small VGG that
was 16 reorders in and 11 out per training step, 8.8 ms of 73.

Backward runs the layers in reverse on gradients in the same layouts. What a layer's backward reads
is kept from the forward pass: a convolution's input, batch norm's input and statistics (and the
ReLU mask when the ReLU is fused into it), the output of ``relu``/``tanh``, max pooling's workspace.
Activations nobody reads again are dropped at once.

Layer specs (hashable; the arrays go separately):

- ``("conv", w_shape, has_bias, (stride, pad_l, pad_r, dilation, groups))``: PyTorch's weight layout;
- ``("bn", eps, relu)``: training-mode batch norm with scale and shift (``relu``: followed by a ReLU,
  applied by the same primitive); its batch mean and biased variance are returned for the running
  statistics;
- ``("eltwise", "relu" | "tanh")``;
- ``("pool", alg, kernel, stride, pad_l, pad_r, dilation, out_hw)``: ``alg`` as in
  :mod:`rosenblatt.kernels.onednn.pooling`.

Declined (``None``; the caller runs the layers one by one): what :mod:`.conv` declines (tiny or
unsupported convolutions), and any layer oneDNN has no primitive for on the layout it gets.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rosenblatt.kernels.onednn import conv as dconv
from rosenblatt.kernels.onednn import library as L
from rosenblatt.kernels.onednn.pooling import ALGORITHMS
from rosenblatt.kernels.workspace import workspace

C = L.C
ENABLED = True  # False: chains are always declined (the layers run one by one)
_ELTWISE = {"relu": C.eltwise_relu_use_dst_for_bwd, "tanh": C.eltwise_tanh_use_dst_for_bwd}


def _any(shape: tuple[int, ...]) -> L.MemoryDesc:
    return L.MemoryDesc.with_tag(shape, C.format_tag_any)


class _Step:
    """One layer of a chain: its primitives, the layouts it reads (``in_md``) and writes (``out_md``)."""

    def __init__(self, spec: tuple, index: int, shape: tuple[int, ...], in_md: L.MemoryDesc) -> None:
        self.kind, self.spec, self.key = spec[0], spec, (spec, index, shape)
        self.in_shape, self.in_md = shape, in_md
        getattr(self, "_build_" + self.kind)(*spec[1:])
        self.out_size = self.out_md.nbytes // 4

    # -- building --------------------------------------------------------------------------------

    def _build_conv(self, w_shape: tuple[int, ...], has_bias: bool, geometry: tuple, post: str | None = None) -> None:
        self.conv = cp = dconv._plan(self.in_shape, tuple(w_shape), *geometry)
        self.has_bias = has_bias
        self.fwd_kind = ("fwd_bias" if has_bias else "fwd") + ("" if post is None else "_" + post)
        self.w_kind = "bwd_weights_bias" if has_bias else "bwd_weights"
        fwd = cp.primitive(self.fwd_kind)
        self.src_md = fwd.md(C.ARG_SRC)  # the input is reordered here when it arrives otherwise
        self.out_md, self.out_shape = fwd.md(C.ARG_DST), cp.y_shape
        cp.primitive(self.w_kind)
        cp.primitive("bwd_data")

    def _build_bn(self, eps: float, relu: bool) -> None:
        md = self.in_md
        flags = C.use_scale | C.use_shift | (C.fuse_norm_relu if relu else 0)
        self.fwd = L.Primitive(L.create_pd("batch_normalization_forward", C.forward_training, md, md, float(eps),
                                           flags, None, op="chain batch_norm"), "chain batch_norm forward")
        self.bwd = L.Primitive(L.create_pd("batch_normalization_backward", C.backward, md, md, md, float(eps), flags,
                                           self.fwd.pd, None, op="chain batch_norm backward"),
                               "chain batch_norm backward")
        self.ws_bytes = self.fwd.md(C.ARG_WORKSPACE).nbytes if relu else 0
        self.out_md, self.out_shape = md, self.in_shape

    def _build_eltwise(self, name: str, fused: bool = False) -> None:
        # fused: the convolution before applied it as a post-op; only the backward pass runs here
        self.fused = fused
        md, alg = self.in_md, _ELTWISE[name]
        self.fwd = L.Primitive(L.create_pd("eltwise_forward", C.forward_training, alg, md, md, 0.0, 0.0, None,
                                           op="chain eltwise"), "chain eltwise forward")
        self.bwd = L.Primitive(L.create_pd("eltwise_backward", alg, md, md, md, 0.0, 0.0, self.fwd.pd, None,
                                           op="chain eltwise backward"), "chain eltwise backward")
        self.out_md, self.out_shape = md, self.in_shape

    def _build_pool(self, alg: str, kernel: tuple, stride: tuple, pad_l: tuple, pad_r: tuple, dilation: tuple,
                    out_hw: tuple) -> None:
        self.alg = alg
        self.out_shape = self.in_shape[:2] + tuple(out_hw)
        geometry = (L.dims(stride), L.dims(kernel), L.dims([d - 1 for d in dilation]), L.dims(pad_l), L.dims(pad_r))
        self.fwd = L.Primitive(L.create_pd("pooling_forward", C.forward_training, ALGORITHMS[alg], self.in_md,
                                           _any(self.out_shape), *geometry, None, op="chain pooling"),
                               "chain pooling forward")
        self.out_md = self.fwd.md(C.ARG_DST)
        self.bwd = L.Primitive(L.create_pd("pooling_backward", ALGORITHMS[alg], self.in_md, self.out_md, *geometry,
                                           self.fwd.pd, None, op="chain pooling backward"),
                               "chain pooling backward")
        self.ws_bytes = self.fwd.md(C.ARG_WORKSPACE).nbytes if alg == "max" else 0


class _Plan:
    def __init__(self, specs: tuple, x_shape: tuple[int, ...]) -> None:
        self.x_md = L.MemoryDesc.with_tag(x_shape, C.abcd)
        self.steps: list[_Step] = []
        shape, md = x_shape, self.x_md
        specs = _with_post_ops(specs)
        for i, spec in enumerate(specs):
            step = _Step(spec, i, shape, md)
            self.steps.append(step)
            shape, md = step.out_shape, step.out_md
        self.y_shape = shape
        self.y_md = L.MemoryDesc.with_tag(shape, C.abcd)
        self.out_md = md


def _with_post_ops(specs: tuple) -> tuple:
    """``specs`` with each ReLU or tanh right after a convolution applied by the convolution (a
    post-op: one pass over the activation less); the element-wise step stays for its backward."""
    out = list(specs)
    for i in range(len(out) - 1):
        if out[i][0] == "conv" and out[i + 1][0] == "eltwise" and POST_OPS:
            out[i] = out[i] + (out[i + 1][1],)
            out[i + 1] = out[i + 1] + (True,)
    return tuple(out)


POST_OPS = True  # False: convolutions and activations run as separate primitives


def _plan(specs: tuple, x_shape: tuple[int, ...]) -> _Plan | None:
    return L.cached_or_none(("chain", specs, x_shape, POST_OPS), lambda: _Plan(specs, x_shape))


def _convert(buffer: np.ndarray, src: L.MemoryDesc, dst: L.MemoryDesc, key: tuple, tag: str | None = None
             ) -> np.ndarray:
    """``buffer`` (laid out as ``src``) in layout ``dst``: itself when they agree, else a reordered
    copy (in workspace buffer ``tag`` when given: a copy used once and dropped)."""
    if src == dst:
        return buffer
    out = workspace(tag, (dst.nbytes // 4,), np.float32) if tag else L.empty(dst.nbytes // 4)
    L.reorder(src, dst, ("chain",) + key).execute([(C.ARG_FROM, buffer), (C.ARG_TO, out)])
    return out


def _plain_out(buffer: np.ndarray, md: L.MemoryDesc, plain: L.MemoryDesc, shape: tuple[int, ...],
               key: tuple) -> np.ndarray:
    """``buffer`` (laid out as ``md``) as a fresh plain array of ``shape``."""
    out = L.empty(shape)
    if md == plain:
        out.reshape(-1)[:] = buffer[:out.size]
    else:
        L.reorder(md, plain, ("chain",) + key).execute([(C.ARG_FROM, buffer), (C.ARG_TO, out)])
    return out


def forward(specs: tuple, x: np.ndarray, params: list[np.ndarray], keep: bool
            ) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]], Any] | None:
    """Run the chain on ``x``: ``(y, batch_stats, saved)``, or ``None`` when declined.

    ``params`` are the layers' arrays in order: a convolution's weight (and bias), a batch norm's
    scale and shift. ``batch_stats`` has ``(mean, biased variance)`` per batch norm. ``saved`` (with
    ``keep``; else ``None``) goes back to :func:`backward`.
    """
    if not ENABLED or x.dtype != np.float32 or x.ndim != 4 or x.size == 0:
        return None
    plan = _plan(specs, tuple(x.shape))
    if plan is None:
        return None
    cur, cur_md = L.contiguous(x).reshape(-1), plan.x_md
    stats, saved, p = [], [], 0
    for step in plan.steps:
        state: Any = None
        if step.kind == "conv":
            src = _convert(cur, cur_md, step.src_md, step.key + ("src",))
            w = params[p]
            b = params[p + 1] if step.has_bias else None
            p += 2 if b is not None else 1
            cp = step.conv
            out = L.empty(step.out_size)
            args = [(C.ARG_SRC, src),
                    (C.ARG_WEIGHTS, dconv._into(cp, step.fwd_kind, C.ARG_WEIGHTS,
                                                w if isinstance(w, dconv._Relaid) else np.ascontiguousarray(w),
                                                cp.w_md, "onednn.weights")),
                    (C.ARG_DST, out)]
            if b is not None:
                args.append((C.ARG_BIAS, np.ascontiguousarray(b)))
            cp.primitive(step.fwd_kind).execute(args)
            state = src
        elif step.kind == "bn":
            gamma, beta = params[p], params[p + 1]
            p += 2
            c = step.in_shape[1]
            mean, var = np.empty(c, np.float32), np.empty(c, np.float32)
            mask = np.empty(step.ws_bytes, np.uint8) if step.ws_bytes else None
            out = L.empty(step.out_size)
            args = [(C.ARG_SRC, cur), (C.ARG_DST, out), (C.ARG_SCALE, np.ascontiguousarray(gamma)),
                    (C.ARG_SHIFT, np.ascontiguousarray(beta)), (C.ARG_MEAN, mean), (C.ARG_VARIANCE, var)]
            if mask is not None:
                args.append((C.ARG_WORKSPACE, mask))
            step.fwd.execute(args)
            stats.append((mean, var))
            state = (cur, mean, var, mask)
        elif step.kind == "eltwise":
            if step.fused:
                out = cur  # the convolution applied it
            else:
                out = L.empty(step.out_size)
                step.fwd.execute([(C.ARG_SRC, cur), (C.ARG_DST, out)])
            state = out
        else:  # pool
            out = L.empty(step.out_size)
            ws = np.empty(step.ws_bytes, np.uint8) if step.ws_bytes else None
            args = [(C.ARG_SRC, cur), (C.ARG_DST, out)]
            if ws is not None:
                args.append((C.ARG_WORKSPACE, ws))
            step.fwd.execute(args)
            state = ws
        if keep:
            saved.append(state)
        cur, cur_md = out, step.out_md
    y = _plain_out(cur, cur_md, plan.y_md, plan.y_shape, (specs, plan.y_shape, "out"))
    return y, stats, ((plan, saved) if keep else None)


def backward(gy: np.ndarray, params: list[np.ndarray], saved: Any, need_x: bool) -> tuple[Any, list[np.ndarray]]:
    """``(gx or None, param_grads)`` of :func:`forward` from the plain output gradient ``gy``;
    ``param_grads`` follow ``params``' order."""
    plan, states = saved
    g = _convert(L.contiguous(np.asarray(gy, dtype=np.float32)).reshape(-1), plan.y_md, plan.out_md,
                 (plan.y_shape, "gy"))
    grads: list[np.ndarray] = []
    p = len(params)
    for i in range(len(plan.steps) - 1, -1, -1):
        step, state = plan.steps[i], states[i]
        last = i == 0 and not need_x
        if step.kind == "conv":
            cp = step.conv
            has_bias = step.has_bias
            p -= 2 if has_bias else 1
            w = params[p]
            prim_w = cp.primitive(step.w_kind)
            # the weights pass: its input and output gradient where it wants them
            src = _convert(state, step.src_md, prim_w.md(C.ARG_SRC), step.key + ("src_w",), "chain.src")
            gw_dst = _convert(g, step.out_md, prim_w.md(C.ARG_DIFF_DST), step.key + ("gy_w",), "chain.gy")
            gw_buf = workspace("chain.gw", (prim_w.md(C.ARG_DIFF_WEIGHTS).nbytes // 4,), np.float32)
            args = [(C.ARG_SRC, src), (C.ARG_DIFF_DST, gw_dst), (C.ARG_DIFF_WEIGHTS, gw_buf)]
            gb = None
            if has_bias:
                gb = L.empty(cp.w_shape[0], aligned=True)  # (see conv._GRADIENT_ARGS)
                args.append((C.ARG_DIFF_BIAS, gb))
            prim_w.execute(args)
            gw = _plain_out(gw_buf, prim_w.md(C.ARG_DIFF_WEIGHTS), cp.w_md, cp.w_shape, step.key + ("gw",))
            grads[:0] = [gw, gb] if has_bias else [gw]
            if last:
                break
            prim_d = cp.primitive("bwd_data")
            gd = _convert(g, step.out_md, prim_d.md(C.ARG_DIFF_DST), step.key + ("gy_d",), "chain.gy")
            gx = L.empty(prim_d.md(C.ARG_DIFF_SRC).nbytes // 4)
            prim_d.execute([(C.ARG_DIFF_DST, gd),
                            (C.ARG_WEIGHTS, dconv._into(cp, "bwd_data", C.ARG_WEIGHTS, np.ascontiguousarray(w),
                                                        cp.w_md, "onednn.weights")),
                            (C.ARG_DIFF_SRC, gx)])
            g = _convert(gx, prim_d.md(C.ARG_DIFF_SRC), step.in_md, step.key + ("gx",))
        elif step.kind == "bn":
            p -= 2
            src, mean, var, mask = state
            c = step.in_shape[1]
            gx = L.empty(step.out_size)
            ggamma, gbeta = np.empty(c, np.float32), np.empty(c, np.float32)
            args = [(C.ARG_SRC, src), (C.ARG_MEAN, mean), (C.ARG_VARIANCE, var), (C.ARG_DIFF_DST, g),
                    (C.ARG_SCALE, np.ascontiguousarray(params[p])), (C.ARG_DIFF_SRC, gx),
                    (C.ARG_DIFF_SCALE, ggamma), (C.ARG_DIFF_SHIFT, gbeta)]
            if mask is not None:
                args.append((C.ARG_WORKSPACE, mask))
            step.bwd.execute(args)
            grads[:0] = [ggamma, gbeta]
            g = gx
        elif step.kind == "eltwise":
            if last:
                break
            gx = L.empty(step.out_size)
            step.bwd.execute([(C.ARG_DST, state), (C.ARG_DIFF_DST, g), (C.ARG_DIFF_SRC, gx)])
            g = gx
        else:  # pool
            if last:
                break
            gx = L.empty(step.in_md.nbytes // 4)
            args = [(C.ARG_DIFF_DST, g), (C.ARG_DIFF_SRC, gx)]
            if state is not None:
                args.append((C.ARG_WORKSPACE, state))
            step.bwd.execute(args)
            g = gx
    if not need_x:
        return None, grads
    return g[:plan.x_md.nbytes // 4].reshape(plan.steps[0].in_shape), grads  # the first layer reads plain x


__all__ = ["backward", "forward"]
