"""oneDNN convolution kernels: forward, backward-data and backward-weights (+ bias), N-d.

Arrays in, arrays out, like :mod:`rosenblatt.kernels.conv`: an ``(N, C, *spatial)`` float32 input,
an ``(O, C/groups, *kernel)`` weight (PyTorch's layout), any number of spatial axes (1-d
convolutions arrive as 2-d of height 1; 3-d works the same way). The same primitive computes
``conv_transpose2d``: a transposed convolution is the backward-data pass of the convolution it
transposes.

Layout policy. Primitives are created with ``format_tag any`` so that oneDNN picks its fastest
(blocked, e.g. ``nChw16c``) layouts; the plain NCHW arrays are reordered into those layouts in
reused workspace buffers (no page-fault storms) by cached reorder primitives, and the results
are reordered back into fresh NCHW arrays. Where oneDNN picks the plain layout itself (a first
layer with 1-3 input channels, say) no reorder runs.

Declined calls (the caller then runs the NumPy kernel): anything but float32 NumPy arrays, an
empty batch, any shape or parameter combination oneDNN refuses to create a primitive for, and
tiny convolutions (fewer than :data:`MIN_MACS` multiply-adds): there the fixed cost of a oneDNN
call (argument setup, reorders; ~100 us) loses to im2col + GEMM. Measured at batch 1, 2 threads:
LeNet-5's 5x5 convolutions (117k and 240k multiply-adds) took 181 and 187 us in oneDNN against
107 and 108 us in NumPy, while ResNet-20's first 3x3 convolution (442k) took 47 us against 156 us.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rosenblatt.kernels.onednn import library as L
from rosenblatt.kernels.workspace import workspace

C = L.C

MIN_MACS = 300_000  # smaller convolutions run faster in the NumPy kernel (module docstring)

# plain tags by number of dimensions
_PLAIN = {1: C.a, 2: C.ab, 3: C.abc, 4: C.abcd, 5: C.abcde, 6: C.abcdef}


# inference kinds of forward primitive (all with a bias): their post-ops. "infer_relu" is
# relu(conv(x) + b); "infer_sum_relu" is relu(conv(x) + b + dst), dst holding a residual beforehand.
_RELU = (C.eltwise_relu, 0.0, 0.0)
_INFERENCE = {"infer_relu": [_RELU], "infer_sum_relu": [(L.SUM, 1.0, 0.0), _RELU]}
# training kinds with an activation post-op (the activation's backward reads the output): "fwd_relu",
# "fwd_bias_tanh", ...
_TRAINING_POST = {"relu": (C.eltwise_relu, 0.0, 0.0), "tanh": (C.eltwise_tanh, 0.0, 0.0)}


def _plain(shape: tuple[int, ...]) -> L.MemoryDesc:
    return L.MemoryDesc.with_tag(shape, _PLAIN[len(shape)])


def _any(shape: tuple[int, ...]) -> L.MemoryDesc:
    return L.MemoryDesc.with_tag(shape, C.format_tag_any)


class _Plan:
    """Everything oneDNN needs for one convolution geometry: descriptors and lazily built primitives.

    ``x_shape``/``w_shape`` are PyTorch's; the weight passes to oneDNN as ``(O, C, *k)`` or,
    grouped, ``(G, O/G, C/G, *k)`` (the same memory).
    """

    def __init__(self, key: tuple, x_shape: tuple[int, ...], w_shape: tuple[int, ...],
                 stride: tuple[int, ...], pad_l: tuple[int, ...], pad_r: tuple[int, ...],
                 dilation: tuple[int, ...], groups: int, channels_last: bool = False) -> None:
        self.key = key
        # the activations' layout: channels-last (nhwc) for the standalone kernels, else oneDNN's pick
        self.channels_last = channels_last
        self._act = L.channels_last_md if channels_last else _any
        n, c = x_shape[:2]
        o = w_shape[0]
        spatial = x_shape[2:]
        kernel = w_shape[2:]
        out = tuple((s + pl + pr - d * (k - 1) - 1) // st + 1
                    for s, k, st, pl, pr, d in zip(spatial, kernel, stride, pad_l, pad_r, dilation))
        self.x_shape, self.w_shape = x_shape, w_shape
        self.y_shape = (n, o) + out
        self.dnnl_w_shape = w_shape if groups == 1 else (groups, o // groups) + w_shape[1:]
        self.geometry = (L.dims(stride), L.dims([d - 1 for d in dilation]), L.dims(pad_l), L.dims(pad_r))
        self.x_md, self.y_md = _plain(x_shape), _plain(self.y_shape)
        self.w_md, self.b_md = _plain(self.dnnl_w_shape), _plain((o,))
        self._primitives: dict[str, L.Primitive | None] = {}
        self._plain_args: dict[tuple[str, int], bool] = {}

    def _fwd_pd(self, bias: bool, prop: int = C.forward_training, attr: L.Attr | None = None) -> Any:
        return L.create_pd(
            "convolution_forward", prop, C.convolution_direct,
            self._act(self.x_shape), _any(self.dnnl_w_shape), self.b_md if bias else None,
            self._act(self.y_shape), *self.geometry, attr, op="conv")  # fmt: skip

    def primitive(self, kind: str) -> L.Primitive:
        if kind in self._primitives:
            p = self._primitives[kind]
            if p is None:
                raise L.DnnlError(f"conv: oneDNN has no {kind} primitive for this geometry")
            return p
        self._primitives[kind] = None  # a failure below is remembered
        if kind in ("fwd", "fwd_bias"):
            p = L.Primitive(self._fwd_pd(kind == "fwd_bias"), "conv forward")
        elif kind.startswith("fwd_") and kind.rpartition("_")[2] in _TRAINING_POST:  # "fwd_relu", "fwd_bias_tanh"
            base, _, act = kind.rpartition("_")
            p = L.Primitive(self._fwd_pd(base == "fwd_bias", C.forward_training, L.Attr([_TRAINING_POST[act]])),
                            f"conv {kind}")
        elif kind in _INFERENCE:  # with bias, and post-ops: inference only
            p = L.Primitive(self._fwd_pd(True, C.forward_inference, L.Attr(_INFERENCE[kind])), f"conv {kind}")
        elif kind == "bwd_data":
            hint = self.primitive("fwd")
            p = L.Primitive(L.create_pd(
                "convolution_backward_data", C.convolution_direct, self._act(self.x_shape),
                _any(self.dnnl_w_shape), self._act(self.y_shape), *self.geometry, hint.pd, None,
                op="conv backward data"), "conv backward data")  # fmt: skip
        else:  # "bwd_weights" / "bwd_weights_bias"
            hint = self.primitive("fwd_bias" if kind == "bwd_weights_bias" else "fwd")
            p = self._weights_pass(kind, hint, self._act)
            if (NHWC_WEIGHTS_PASS and not self.channels_last and len(self.x_shape) == 4
                    and "avx512" in hint.impl() and "avx512" not in p.impl()):
                # oneDNN's pick of blocked layouts can be a kernel for an older instruction set
                # (LeNet-5's second convolution, 6 input channels padded to 8: AVX2, 0.31 ms), where its
                # channels-last kernel uses the forward's (AVX-512: 0.18 ms); the chain reorders into it.
                try:
                    q = self._weights_pass(kind, hint, L.channels_last_md)
                    if "avx512" in q.impl():
                        p = q
                except L.DnnlError:
                    pass
        self._primitives[kind] = p
        return p

    def _weights_pass(self, kind: str, hint: L.Primitive, act: Any) -> L.Primitive:
        return L.Primitive(L.create_pd(
            "convolution_backward_weights", C.convolution_direct, act(self.x_shape),
            _any(self.dnnl_w_shape), self.b_md if kind == "bwd_weights_bias" else None,
            act(self.y_shape), *self.geometry, hint.pd, None,
            op="conv backward weights"), "conv backward weights")  # fmt: skip

    def is_plain(self, kind: str, arg: int, plain: L.MemoryDesc) -> bool:
        """True when primitive ``kind`` takes argument ``arg`` in the plain layout itself."""
        key = (kind, arg)
        known = self._plain_args.get(key)
        if known is None:
            known = self._plain_args[key] = self.primitive(kind).md(arg) == plain
        return known

    def takes_channels_last(self, kind: str, arg: int, shape: tuple[int, ...]) -> bool:
        """True when primitive ``kind`` takes argument ``arg`` (of ``shape``) channels-last itself."""
        key = (kind, arg, "nhwc")
        known = self._plain_args.get(key)
        if known is None:
            known = self._plain_args[key] = self.primitive(kind).md(arg) == L.channels_last_md(shape)
        return known


# Standalone convolutions (not fused into a chain) read and write channels-last activations where
# oneDNN has fast (JIT) nhwc kernels for the geometry: forward and both backward passes ran as fast
# as in the blocked layouts (64x32x32x32, 3x3: 3.7 / 3.7 / 3.9 ms against 4.1 / 4.5 / 4.4 ms), and
# the output, an (N, C, H, W) view of (N, H, W, C) memory, goes to the next layer (batch norm,
# pooling, NumPy's element-wise ops, the next convolution) without the two reorders per layer of
# the blocked layouts. False: the blocked layouts, reordered from and to plain arrays.
CHANNELS_LAST = True
# True: a blocked plan's weights pass runs on channels-last layouts where oneDNN's blocked pick would
# be a kernel for an older instruction set than the forward's (see _Plan.primitive).
NHWC_WEIGHTS_PASS = True


def _channels_last_plan(x_shape: tuple[int, ...], w_shape: tuple[int, ...], stride: tuple[int, ...],
                        pad_l: tuple[int, ...], pad_r: tuple[int, ...], dilation: tuple[int, ...],
                        groups: int) -> _Plan | None:
    """The channels-last plan of a 2-D convolution, or ``None`` where oneDNN has no JIT kernel for
    one of its three passes in that layout (a reference or GEMM-based kernel would be slower than
    the blocked layouts and their reorders)."""
    if not CHANNELS_LAST or len(x_shape) != 4 or x_shape[2] == 1:  # (a 1-d convolution: height 1, its
        return None  # output reshaped back to (N, C, L), which a channels-last array would have to copy)
    key = ("conv nhwc", x_shape, w_shape, stride, pad_l, pad_r, dilation, groups)

    def build() -> _Plan | bool:
        plan = _Plan(key, x_shape, w_shape, stride, pad_l, pad_r, dilation, groups, channels_last=True)
        for kind in ("fwd", "bwd_data", "bwd_weights"):
            impl = plan.primitive(kind).impl()
            if "ref" in impl or "gemm" in impl:
                return False
        return plan

    return L.cached_or_none(key, build)


def _plan(x_shape: tuple[int, ...], w_shape: tuple[int, ...], stride: tuple[int, ...],
          pad_l: tuple[int, ...], pad_r: tuple[int, ...], dilation: tuple[int, ...], groups: int) -> _Plan:
    key = ("conv", x_shape, w_shape, stride, pad_l, pad_r, dilation, groups)
    return L.cached(key, lambda: _Plan(key, x_shape, w_shape, stride, pad_l, pad_r, dilation, groups))


# Workspace tags: "onednn.in" holds the first activation input of a pass (src forward, diff_dst
# backward), "onednn.in2" the second (src of the weights pass), "onednn.in3" the output gradient
# of the data pass when it wants another layout than the weights pass, "onednn.out" the activation
# output (dst, diff_src). Few tags, few buffers: the workspace keeps one per tag and size.


def _into(plan: _Plan, kind: str, arg: int, array: np.ndarray, plain: L.MemoryDesc, tag: str) -> np.ndarray:
    """``array`` in the layout primitive ``kind`` wants for ``arg``.

    An array already in that layout passes as it is: a ``_Relaid`` array from :func:`_into`, a
    channels-last array for a channels-last primitive, a plain C-contiguous one for a plain one.
    Channels-last arrays are reordered straight from their layout; other strided ones are copied.
    """
    if isinstance(array, _Relaid):
        if not plan.is_plain(kind, arg, plain) and array.md == plan.primitive(kind).md(arg):
            return array.buffer
        array = array.plain
    if not array.flags.c_contiguous:
        t = L.channels_last(array)
        if t is None:
            array = np.ascontiguousarray(array)
        else:
            shape = tuple(array.shape)
            if plan.takes_channels_last(kind, arg, shape):
                return t
            want = plan.primitive(kind).md(arg)
            out = workspace(tag, (want.nbytes // 4,), np.float32)
            L.reorder(L.channels_last_md(shape), want, (plan.key, kind, arg, "in nhwc")).execute(
                [(C.ARG_FROM, t), (C.ARG_TO, out)])
            return out
    if plan.is_plain(kind, arg, plain):
        return array
    want = plan.primitive(kind).md(arg)
    out = workspace(tag, (want.nbytes // 4,), np.float32)
    L.reorder(plain, want, (plan.key, kind, arg, "in")).execute([(C.ARG_FROM, array), (C.ARG_TO, out)])
    return out


class _Relaid:
    """A plain array together with its copy in a primitive's layout (shared by two primitives)."""

    __slots__ = ("plain", "buffer", "md")

    def __init__(self, plain: np.ndarray, buffer: np.ndarray, md: L.MemoryDesc) -> None:
        self.plain, self.buffer, self.md = plain, buffer, md


# The weights pass's outputs, allocated on a cache line of their own (kernels.workspace.aligned_empty):
# oneDNN's backward-weights kernels (AVX-512) accumulate into them, and took longer when they lay 16
# bytes off a 64-byte line. Measured, rotating aligned and misaligned buffers (2 threads, median us):
# conv1d 16->32, kernel 5, 64x16x256: 538 aligned, 741 with the bias gradient misaligned, 587 with
# the weight gradient misaligned; 3x3 16->16 over 64x16x32x32: 1605 aligned, 1780 with the weight
# gradient misaligned. The forward and backward-data passes did not care (under 2 %).
_GRADIENT_ARGS = (C.ARG_DIFF_WEIGHTS, C.ARG_DIFF_BIAS)


def _run(plan: _Plan, kind: str, inputs: list[tuple[int, np.ndarray, L.MemoryDesc, str]],
         outputs: list[tuple[int, tuple[int, ...], L.MemoryDesc, str]]) -> list[np.ndarray]:
    """Execute primitive ``kind``: plain ``inputs`` reordered in, fresh plain ``outputs`` out."""
    prim = plan.primitive(kind)
    args = [(arg, _into(plan, kind, arg, a, md, tag)) for arg, a, md, tag in inputs]
    results, copies = [], []
    for arg, shape, md, tag in outputs:
        if plan.channels_last and arg in (C.ARG_DST, C.ARG_DIFF_SRC):  # written in place, channels-last
            result = L.empty_channels_last(shape)
            results.append(result)
            args.append((arg, result.transpose(0, 2, 3, 1)))
            continue
        # the weights pass writes its gradients 64-byte aligned (see _GRADIENT_ARGS)
        result = L.empty(shape, aligned=arg in _GRADIENT_ARGS)
        results.append(result)
        if plan.is_plain(kind, arg, md):
            args.append((arg, result))
        else:
            want = prim.md(arg)
            buffer = workspace(tag, (want.nbytes // 4,), np.float32)
            args.append((arg, buffer))
            copies.append((L.reorder(want, md, (plan.key, kind, arg, "out")), buffer, result))
    prim.execute(args)
    for reorder, buffer, result in copies:
        reorder.execute([(C.ARG_FROM, buffer), (C.ARG_TO, result)])
    return results


def _kept(plan: _Plan, kind: str, x: np.ndarray) -> np.ndarray | _Relaid:
    """``x`` when primitive ``kind`` reads it as it lies in memory, else ``x`` paired with its copy, in
    memory of its own (not a reused workspace), in the layout the primitive reads."""
    shape = tuple(x.shape)
    t = None if x.flags.c_contiguous else L.channels_last(x)
    if t is not None:
        if plan.takes_channels_last(kind, C.ARG_SRC, shape):
            return x
        src_md, src, how = L.channels_last_md(shape), t, "in nhwc"
    else:
        x = np.ascontiguousarray(x)
        if plan.is_plain(kind, C.ARG_SRC, plan.x_md):
            return x
        src_md, src, how = plan.x_md, x, "in"
    want = plan.primitive(kind).md(C.ARG_SRC)
    buffer = L.empty(want.nbytes // 4)
    L.reorder(src_md, want, (plan.key, kind, C.ARG_SRC, how)).execute([(C.ARG_FROM, src), (C.ARG_TO, buffer)])
    return _Relaid(x, buffer, want)


def _supported(*arrays: np.ndarray | None) -> bool:
    return all(a is None or a.size > 0 for a in arrays)


def worthwhile(x_shape: tuple[int, ...], w_shape: tuple[int, ...], stride: tuple[int, ...],
               pad_l: tuple[int, ...], pad_r: tuple[int, ...], dilation: tuple[int, ...]) -> bool:
    """At least :data:`MIN_MACS` multiply-adds (output size times C/groups times kernel size): smaller
    convolutions are declined."""
    macs = x_shape[0] * w_shape[0]
    for n in w_shape[1:]:
        macs *= n
    for s, k, st, pl, pr, d in zip(x_shape[2:], w_shape[2:], stride, pad_l, pad_r, dilation):
        macs *= max(0, (s + pl + pr - d * (k - 1) - 1) // st + 1)
    return macs >= MIN_MACS


def _forward(x: np.ndarray, w: Any, b: np.ndarray | None, kind: str, stride: tuple[int, ...],
             pad_l: tuple[int, ...], pad_r: tuple[int, ...], dilation: tuple[int, ...],
             groups: int, keep: list | None = None) -> np.ndarray | None:
    """Forward primitive ``kind`` on ``x``, ``w`` (plain or prepared) and ``b``: a fresh plain output.

    With a ``keep`` list, ``x`` is reordered into memory of its own (not a reused workspace) and the
    ``_Relaid`` pair is appended to ``keep`` (nothing when the primitive reads ``x`` as it is)."""
    w_plain = w.plain if isinstance(w, _Relaid) else w
    if not _supported(x, w_plain) or not worthwhile(x.shape, w_plain.shape, stride, pad_l, pad_r, dilation):
        return None
    try:
        plan = None
        if kind in ("fwd", "fwd_bias"):  # a standalone convolution
            plan = _channels_last_plan(x.shape, w_plain.shape, stride, pad_l, pad_r, dilation, groups)
        if plan is None:
            plan = _plan(x.shape, w_plain.shape, stride, pad_l, pad_r, dilation, groups)
        if keep is not None:
            x = _kept(plan, kind, x)
            if isinstance(x, _Relaid):
                keep.append(x)
        inputs = [(C.ARG_SRC, x, plan.x_md, "onednn.in"),
                  (C.ARG_WEIGHTS, w if w is not w_plain else np.ascontiguousarray(w), plan.w_md, "onednn.weights")]
        if b is not None:
            inputs.append((C.ARG_BIAS, np.ascontiguousarray(b), plan.b_md, "onednn.bias"))
        (y,) = _run(plan, kind, inputs, [(C.ARG_DST, plan.y_shape, plan.y_md, "onednn.out")])
    except L.DnnlError:
        return None
    return y


def conv_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, stride: tuple[int, ...],
                 pad_l: tuple[int, ...], pad_r: tuple[int, ...], dilation: tuple[int, ...],
                 groups: int) -> np.ndarray | None:
    """``conv(x, w) + b`` as a fresh ``(N, O, *out)`` array, or ``None`` when declined.

    ``w`` may also be what :func:`prepare_weight` made of it: then it is not reordered again.
    """
    return _forward(x, w, b, "fwd" if b is None else "fwd_bias", stride, pad_l, pad_r, dilation, groups)


def conv_forward_keeping_input(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, stride: tuple[int, ...],
                               pad_l: tuple[int, ...], pad_r: tuple[int, ...], dilation: tuple[int, ...],
                               groups: int) -> tuple[np.ndarray, Any] | None:
    """:func:`conv_forward` for training: ``(y, kept)`` or ``None``. ``kept`` is ``x`` with its copy in
    the layout the forward primitive read it in (``None`` when that is the plain layout). Passed to
    :func:`conv_backward` in place of ``x``, it spares the weights pass reordering ``x`` again (for a
    64x16x32x32 input 0.16 ms of a 1.9 ms depthwise forward and backward), at the cost of keeping
    that copy until backward. The caller must pass it only while ``x`` is unchanged.
    """
    keep: list = []
    y = _forward(x, w, b, "fwd" if b is None else "fwd_bias", stride, pad_l, pad_r, dilation, groups, keep)
    return None if y is None else (y, keep[0] if keep else None)


def conv_bias_relu(x: np.ndarray, w: Any, b: np.ndarray, stride: tuple[int, ...], pad_l: tuple[int, ...],
                   pad_r: tuple[int, ...], dilation: tuple[int, ...], groups: int) -> np.ndarray | None:
    """``relu(conv(x, w) + b)`` for inference (the ReLU a post-op of the convolution), or ``None``.
    ``w`` is plain or what ``prepare_weight(..., "infer_relu", ...)`` made of it."""
    return _forward(x, w, b, "infer_relu", stride, pad_l, pad_r, dilation, groups)


def residual_block_inference(x: np.ndarray, w1: Any, b1: np.ndarray, geometry1: tuple, w2: Any, b2: np.ndarray,
                             geometry2: tuple, residual: np.ndarray,
                             x_relaid: _Relaid | None = None) -> tuple[np.ndarray, _Relaid | None] | None:
    """``relu(conv2(relu(conv1(x) + b1)) + b2 + residual)`` for inference, or ``None`` when declined.

    The middle activation stays in the layout oneDNN picked; both ReLUs and the residual sum are
    post-ops of the convolutions (the residual is reordered straight into the second one's output
    buffer). ``w1``/``w2`` are plain or prepared with :func:`prepare_weight` for kinds
    ``"infer_relu"`` and ``"infer_sum_relu"``.

    Returns ``(y, relaid)``: ``relaid`` is ``y`` together with its copy in the layout the second
    convolution wrote (``None`` when that is the plain one). Passed back as ``x_relaid`` for a next
    block whose input (and residual) is ``y``, it saves that block both reorders into oneDNN's
    layout. The caller must pass it only while ``y`` is unchanged.
    """
    w1p = w1.plain if isinstance(w1, _Relaid) else w1
    w2p = w2.plain if isinstance(w2, _Relaid) else w2
    if (not _supported(x, w1p, w2p, residual) or not worthwhile(x.shape, w1p.shape, *geometry1[:4])):
        return None
    try:
        p1 = _plan(x.shape, w1p.shape, *geometry1)
        if not worthwhile(p1.y_shape, w2p.shape, *geometry2[:4]):
            return None
        p2 = _plan(p1.y_shape, w2p.shape, *geometry2)
        k1, k2 = "infer_relu", "infer_sum_relu"
        prim1, prim2 = p1.primitive(k1), p2.primitive(k2)
        if residual.shape != p2.y_shape or not L.cached(
                ("conv_infer_chain", p1.key, p2.key), lambda: prim1.md(C.ARG_DST) == prim2.md(C.ARG_SRC)):
            return None
        mid_md = prim1.md(C.ARG_DST)
        mid = workspace("onednn.mid", (mid_md.nbytes // 4,), np.float32)
        if x_relaid is not None and (x_relaid.plain is not x or x_relaid.md != prim1.md(C.ARG_SRC)):
            x_relaid = None
        src = x_relaid.buffer if x_relaid is not None else _into(p1, k1, C.ARG_SRC, x, p1.x_md, "onednn.in")
        prim1.execute([(C.ARG_SRC, src),
                       (C.ARG_WEIGHTS, _into(p1, k1, C.ARG_WEIGHTS, w1 if w1 is not w1p else np.ascontiguousarray(w1),
                                             p1.w_md, "onednn.weights")),
                       (C.ARG_BIAS, np.ascontiguousarray(b1)), (C.ARG_DST, mid)])
        y = L.empty(p2.y_shape)
        residual = L.contiguous(residual)
        plain_out = p2.is_plain(k2, C.ARG_DST, p2.y_md)
        if plain_out:
            np.copyto(y, residual)
            out = y
        else:
            out_md = prim2.md(C.ARG_DST)
            out = L.empty(out_md.nbytes // 4)  # kept with y for a next block
            if x_relaid is not None and residual is x and x_relaid.md == out_md:
                np.copyto(out, x_relaid.buffer)  # the identity shortcut, already in this layout
            else:
                L.reorder(p2.y_md, out_md, (p2.key, k2, C.ARG_DST, "in")).execute(
                    [(C.ARG_FROM, residual), (C.ARG_TO, out)])
        prim2.execute([(C.ARG_SRC, mid),
                       (C.ARG_WEIGHTS, _into(p2, k2, C.ARG_WEIGHTS, w2 if w2 is not w2p else np.ascontiguousarray(w2),
                                             p2.w_md, "onednn.weights")),
                       (C.ARG_BIAS, np.ascontiguousarray(b2)), (C.ARG_DST, out)])
        if plain_out:
            return y, None
        L.reorder(prim2.md(C.ARG_DST), p2.y_md, (p2.key, k2, C.ARG_DST, "out")).execute(
            [(C.ARG_FROM, out), (C.ARG_TO, y)])
        return y, _Relaid(y, out, prim2.md(C.ARG_DST))
    except L.DnnlError:
        return None


def prepare_weight(x_shape: tuple[int, ...], w: np.ndarray, kind: str, stride: tuple[int, ...],
                   pad_l: tuple[int, ...], pad_r: tuple[int, ...], dilation: tuple[int, ...],
                   groups: int) -> Any:
    """``w`` (plain, C-contiguous float32) reordered once into the layout forward primitive ``kind``
    wants for this geometry (``"fwd"``, ``"fwd_bias"``: :func:`conv_forward`; ``"infer_relu"``:
    :func:`conv_bias_relu`; ...), to be passed in place of ``w`` many times (a frozen inference weight).

    Returns ``w`` itself when no reorder is needed or oneDNN declines the geometry. The prepared
    weight stays correct for any other geometry: there it is used through its plain array.
    """
    if not _supported(w) or not worthwhile(tuple(x_shape), w.shape, stride, pad_l, pad_r, dilation):
        return w
    try:
        plan = _plan(tuple(x_shape), w.shape, stride, pad_l, pad_r, dilation, groups)
        if plan.is_plain(kind, C.ARG_WEIGHTS, plan.w_md):
            return w
        want = plan.primitive(kind).md(C.ARG_WEIGHTS)
        buffer = L.empty(want.nbytes // 4)  # its own memory: not a reused workspace
        L.reorder(plan.w_md, want, (plan.key, kind, C.ARG_WEIGHTS, "in")).execute(
            [(C.ARG_FROM, w), (C.ARG_TO, buffer)])
    except L.DnnlError:
        return w
    return _Relaid(w, buffer, want)


def _backward_plan(x: Any, x_shape: tuple[int, ...], w_shape: tuple[int, ...], stride: tuple[int, ...],
                   pad_l: tuple[int, ...], pad_r: tuple[int, ...], dilation: tuple[int, ...], groups: int) -> _Plan:
    """The plan of the forward pass that made ``x`` (kept as a ``_Relaid`` pair in the blocked
    layout when that plan was the blocked one): the channels-last one where it exists."""
    if isinstance(x, _Relaid) and not x.md == L.channels_last_md(x_shape):
        return _plan(x_shape, w_shape, stride, pad_l, pad_r, dilation, groups)
    return (_channels_last_plan(x_shape, w_shape, stride, pad_l, pad_r, dilation, groups)
            or _plan(x_shape, w_shape, stride, pad_l, pad_r, dilation, groups))


def conv_backward_data(gy: np.ndarray, w: np.ndarray, x_shape: tuple[int, ...], stride: tuple[int, ...],
                       pad_l: tuple[int, ...], pad_r: tuple[int, ...], dilation: tuple[int, ...],
                       groups: int) -> np.ndarray | None:
    """d(loss)/d(input) (also a transposed convolution's forward), or ``None`` when declined."""
    if not _supported(gy, w) or not worthwhile(tuple(x_shape), w.shape, stride, pad_l, pad_r, dilation):
        return None
    try:
        plan = (_channels_last_plan(tuple(x_shape), w.shape, stride, pad_l, pad_r, dilation, groups)
                or _plan(tuple(x_shape), w.shape, stride, pad_l, pad_r, dilation, groups))
        if plan.y_shape != gy.shape:
            return None
        inputs = [(C.ARG_DIFF_DST, gy, plan.y_md, "onednn.in"),
                  (C.ARG_WEIGHTS, np.ascontiguousarray(w), plan.w_md, "onednn.weights")]
        (gx,) = _run(plan, "bwd_data", inputs, [(C.ARG_DIFF_SRC, plan.x_shape, plan.x_md, "onednn.out")])
    except L.DnnlError:
        return None
    return gx


def conv_backward_weights(x: np.ndarray, gy: np.ndarray, w_shape: tuple[int, ...], with_bias: bool,
                          stride: tuple[int, ...], pad_l: tuple[int, ...], pad_r: tuple[int, ...],
                          dilation: tuple[int, ...], groups: int) -> tuple[np.ndarray, np.ndarray | None] | None:
    """``(d(loss)/d(weight), d(loss)/d(bias) or None)``, or ``None`` when declined. ``x`` may be what
    :func:`conv_forward_keeping_input` kept of it."""
    x_plain = x.plain if isinstance(x, _Relaid) else x
    if not _supported(x_plain, gy) or not worthwhile(x_plain.shape, tuple(w_shape), stride, pad_l, pad_r, dilation):
        return None
    try:
        plan = _backward_plan(x, x_plain.shape, tuple(w_shape), stride, pad_l, pad_r, dilation, groups)
        if plan.y_shape != gy.shape:
            return None
        kind = "bwd_weights_bias" if with_bias else "bwd_weights"
        inputs = [(C.ARG_SRC, x, plan.x_md, "onednn.in2"), (C.ARG_DIFF_DST, gy, plan.y_md, "onednn.in")]
        outputs = [(C.ARG_DIFF_WEIGHTS, plan.w_shape, plan.w_md, "onednn.diff_weights")]
        if with_bias:
            outputs.append((C.ARG_DIFF_BIAS, (plan.w_shape[0],), plan.b_md, "onednn.diff_bias"))
        results = _run(plan, kind, inputs, outputs)
    except L.DnnlError:
        return None
    return results[0], (results[1] if with_bias else None)


def conv_backward(x: np.ndarray, w: np.ndarray, gy: np.ndarray, with_bias: bool, stride: tuple[int, ...],
                  pad_l: tuple[int, ...], pad_r: tuple[int, ...], dilation: tuple[int, ...],
                  groups: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None] | None:
    """``(gx, gw, gb or None)`` in one go: the output gradient is reordered once for both passes.

    ``x`` may be what :func:`conv_forward_keeping_input` kept of it."""
    x_plain = x.plain if isinstance(x, _Relaid) else x
    if not _supported(x_plain, w, gy) or not worthwhile(x_plain.shape, w.shape, stride, pad_l, pad_r, dilation):
        return None
    try:
        plan = _backward_plan(x, x_plain.shape, w.shape, stride, pad_l, pad_r, dilation, groups)
        if plan.y_shape != gy.shape:
            return None
        kind_w = "bwd_weights_bias" if with_bias else "bwd_weights"
        if not plan.is_plain(kind_w, C.ARG_DIFF_DST, plan.y_md):
            gy = _Relaid(gy, _into(plan, kind_w, C.ARG_DIFF_DST, gy, plan.y_md, "onednn.in"),
                         plan.primitive(kind_w).md(C.ARG_DIFF_DST))
        outputs = [(C.ARG_DIFF_WEIGHTS, plan.w_shape, plan.w_md, "onednn.diff_weights")]
        if with_bias:
            outputs.append((C.ARG_DIFF_BIAS, (plan.w_shape[0],), plan.b_md, "onednn.diff_bias"))
        grads = _run(plan, kind_w, [(C.ARG_SRC, x, plan.x_md, "onednn.in2"),
                                    (C.ARG_DIFF_DST, gy, plan.y_md, "onednn.in")], outputs)
        # the data pass needs its own buffer tag: the weights pass's may be the same memory
        (gx,) = _run(plan, "bwd_data", [(C.ARG_DIFF_DST, gy, plan.y_md, "onednn.in3"),
                                        (C.ARG_WEIGHTS, np.ascontiguousarray(w), plan.w_md, "onednn.weights")],
                     [(C.ARG_DIFF_SRC, plan.x_shape, plan.x_md, "onednn.out")])
    except L.DnnlError:
        return None
    return gx, grads[0], (grads[1] if with_bias else None)


__all__ = ["conv_backward", "conv_backward_data", "conv_backward_weights", "conv_bias_relu", "conv_forward",
           "conv_forward_keeping_input", "prepare_weight", "residual_block_inference"]
