"""oneDNN element-wise kernels: ``tanh`` and its gradient from the output.

Arrays in, arrays out, on contiguous float32 arrays of any shape (seen as one flat vector). NumPy
computes ``tanh`` on one thread and its gradient ``gy * (1 - y²)`` in three passes over the
arrays; oneDNN's kernels make one pass each, split over the library's threads. For the
activations of a small CNN (64x6x28x28) that was 94 -> 68 us forward and 142 -> 51 us backward.
The callers (:mod:`rosenblatt.kernels.activation`) choose from which size on; below
:data:`MIN_ELEMENTS` a call is always declined.
"""

from __future__ import annotations

import numpy as np

from rosenblatt.kernels.onednn import library as L

C = L.C
ENABLED = True  # False: never used (the NumPy kernel runs)
MIN_ELEMENTS = 1 << 16


class _Plan:
    def __init__(self, size: int, alg: int) -> None:
        md = L.MemoryDesc.with_tag((size,), C.a)
        self.fwd = L.Primitive(L.create_pd("eltwise_forward", C.forward_training, alg, md, md, 0.0, 0.0, None,
                                           op="eltwise"), "eltwise forward")
        self.bwd = L.Primitive(L.create_pd("eltwise_backward", alg, md, md, md, 0.0, 0.0, self.fwd.pd, None,
                                           op="eltwise backward"), "eltwise backward")


def _memory(a: np.ndarray) -> np.ndarray | None:
    """``a``'s elements in memory order as a C-contiguous array: ``a`` itself, or the ``(N, H, W, C)``
    memory of a channels-last array; ``None`` for other layouts. The element-wise kernels run on that
    memory, and an output made by ``np.empty_like`` lies the same way."""
    return a if a.flags.c_contiguous else L.channels_last(a)


def _plan(x: np.ndarray, alg: int) -> _Plan | None:
    if not ENABLED or x.size < MIN_ELEMENTS or x.dtype != np.float32 or _memory(x) is None:
        return None
    return L.cached_or_none(("eltwise", x.size, alg), lambda: _Plan(x.size, alg))


def tanh(x: np.ndarray) -> np.ndarray | None:
    """``tanh(x)``, or ``None`` when declined."""
    plan = _plan(x, C.eltwise_tanh_use_dst_for_bwd)
    if plan is None:
        return None
    y = np.empty_like(x)
    plan.fwd.execute([(C.ARG_SRC, _memory(x)), (C.ARG_DST, _memory(y))])
    return y


def _backward(gy: np.ndarray, y: np.ndarray, alg: int) -> np.ndarray | None:
    """The input gradient of eltwise ``alg`` (a ``*_use_dst_for_bwd`` one) from its output ``y``."""
    if gy.shape != y.shape or gy.dtype != np.float32:
        return None
    plan = _plan(y, alg)
    if plan is None:
        return None
    gy = L.same_layout(gy, y)  # a plain gradient of a channels-last activation: reordered (or declined)
    if gy is None:
        return None
    gx = np.empty_like(y)
    plan.bwd.execute([(C.ARG_DST, _memory(y)), (C.ARG_DIFF_DST, _memory(gy)), (C.ARG_DIFF_SRC, _memory(gx))])
    return gx


def tanh_grad(gy: np.ndarray, y: np.ndarray) -> np.ndarray | None:
    """``gy * (1 - y²)`` from the output ``y`` of :func:`tanh`, or ``None`` when declined."""
    return _backward(gy, y, C.eltwise_tanh_use_dst_for_bwd)


# -- the residual sum and the ReLU gradient ------------------------------------------------------

L.bind("binary_primitive_desc_create", [L._PP, L._P, L._I, L._P, L._P, L._P, L._P])
_BINARY_ADD = 0x1FFF0  # dnnl_binary_add


class _SumPlan:
    def __init__(self, size: int, relu: bool) -> None:
        md = L.MemoryDesc.with_tag((size,), C.a)
        attr = L.Attr(post_ops=[(C.eltwise_relu, 0.0, 0.0)]) if relu else None
        self.add = L.Primitive(L.create_pd("binary", _BINARY_ADD, md, md, md, attr, op="residual sum"),
                               "residual sum")


def add_(y: np.ndarray, r: np.ndarray, relu: bool = False) -> bool:
    """``y += r`` (then ``max(y, 0)`` with ``relu=True``) in place, in one threaded pass; False
    when declined (``y`` is unchanged then)."""
    if (not ENABLED or y.size < MIN_ELEMENTS or y.shape != r.shape or y.dtype != np.float32
            or r.dtype != np.float32 or y.strides != r.strides or _memory(y) is None
            or np.may_share_memory(y, r)):
        return False
    plan = L.cached_or_none(("residual sum", y.size, relu), lambda: _SumPlan(y.size, relu))
    if plan is None:
        return False
    plan.add.execute([(C.ARG_SRC, _memory(y)), (C.ARG_SRC_1, _memory(r)), (C.ARG_DST, _memory(y))])
    return True


def add(y: np.ndarray, r: np.ndarray, relu: bool = False) -> None:
    """``y += r`` (then ``max(y, 0)`` with ``relu=True``) in place: :func:`add_` where it runs, NumPy
    otherwise."""
    if not add_(y, r, relu):
        y += r
        if relu:
            np.maximum(y, 0, out=y)


def relu_grad(gy: np.ndarray, y: np.ndarray) -> np.ndarray | None:
    """``gy`` where the ReLU output ``y`` is positive, else 0, or ``None`` when declined."""
    return _backward(gy, y, C.eltwise_relu_use_dst_for_bwd)


# -- the scaled sum of the optimisers: p = beta * p + alpha * x ----------------------------------

L.bind("primitive_attr_set_scales_mask", [L._P, L._I, L._I])
_ARG_ATTR_SCALES = 4096  # DNNL_ARG_ATTR_SCALES: OR-ed with the argument the scale applies to
_SCALE_SRC_0 = _ARG_ATTR_SCALES | 1
_SCALE_SRC_1 = _ARG_ATTR_SCALES | 2
# From this many elements an update runs on oneDNN's team (see :func:`axpby`).
AXPBY_MIN_ELEMENTS = 1 << 17


class _AxpbyPlan:
    def __init__(self, size: int, scaled_p: bool) -> None:
        md = L.MemoryDesc.with_tag((size,), C.a)
        attr = L.Attr()
        if scaled_p:
            L.call("primitive_attr_set_scales_mask", attr.handle, 1, 0, op="scaled sum")
        L.call("primitive_attr_set_scales_mask", attr.handle, 2, 0, op="scaled sum")
        self.add = L.Primitive(L.create_pd("binary", _BINARY_ADD, md, md, md, attr, op="scaled sum"),
                               "scaled sum")
        scale_md = L.MemoryDesc.with_tag((1,), C.a)
        if scaled_p:
            self.add._mds[_SCALE_SRC_0] = scale_md
        self.add._mds[_SCALE_SRC_1] = scale_md
        self.scales = np.empty(2, np.float32)


def axpby(p: np.ndarray, x: np.ndarray, alpha: float, beta: float = 1.0) -> bool:
    """``p = beta * p + alpha * x`` in place, in one pass on oneDNN's threads; False when declined
    (``p`` is unchanged then).

    The optimisers' one-pass updates of large parameters (``param -= lr * grad``, a momentum
    buffer) run here with the oneDNN kernels. BLAS's ``axpy`` would run them on OpenBLAS's threads,
    which then spin next to oneDNN's team through the next forward pass (an MLP's first layer at
    batch 128 measured 0.48 ms after such an update against 0.39 ms without). The scales are
    arguments at run time, so a learning-rate schedule does not build new primitives.
    """
    if (not ENABLED or p.size < AXPBY_MIN_ELEMENTS or p.shape != x.shape or p.dtype != np.float32
            or x.dtype != np.float32 or not p.flags.c_contiguous or not x.flags.c_contiguous
            or np.may_share_memory(p, x)):
        return False
    scaled_p = beta != 1.0
    plan = L.cached_or_none(("scaled sum", p.size, scaled_p), lambda: _AxpbyPlan(p.size, scaled_p))
    if plan is None:
        return False
    scales = plan.scales
    scales[0], scales[1] = beta, alpha
    args = [(C.ARG_SRC, p), (C.ARG_SRC_1, x), (C.ARG_DST, p), (_SCALE_SRC_1, scales[1:2])]
    if scaled_p:
        args.append((_SCALE_SRC_0, scales[0:1]))
    plan.add.execute(args)
    return True


# -- arithmetic: a + b, a - b, a * b, a / b of one shape, or with a scalar ---------------------------

BINARY_ALGS = {"add": 0x1FFF0, "mul": 0x1FFF1, "div": 0x1FFF4, "sub": 0x1FFF5}
_FLOAT32_MAX = float(np.finfo(np.float32).max)


class _BinaryPlan:
    """``dst = src0 (op) src1`` over ``size`` elements; with ``scalar=True`` ``src1`` is one element,
    broadcast (its value is an argument at run time, so a new scalar builds no new primitive)."""

    def __init__(self, size: int, alg: int, scalar: bool) -> None:
        md = L.MemoryDesc.with_tag((size,), C.a)
        md1 = L.MemoryDesc.with_tag((1,), C.a) if scalar else md
        self.op = L.Primitive(L.create_pd("binary", alg, md, md1, md, None, op="arithmetic"), "arithmetic")


class _BroadcastPlan:
    """``dst = src0 (op) src1`` for a C-contiguous ``src0`` of ``shape`` and a C-contiguous ``src1``
    of ``shape1`` (the same number of axes, each 1 or ``shape``'s), broadcast."""

    def __init__(self, shape: tuple[int, ...], shape1: tuple[int, ...], alg: int) -> None:
        md = L.MemoryDesc.contiguous(shape)
        md1 = L.MemoryDesc.contiguous(shape1)
        self.op = L.Primitive(L.create_pd("binary", alg, md, md1, md, None, op="arithmetic"), "arithmetic")


def _broadcast_to(shape1: tuple[int, ...], shape: tuple[int, ...]) -> tuple[int, ...] | None:
    """``shape1`` with leading 1s up to ``shape``'s axes when it broadcasts to ``shape`` (without
    changing ``shape``), else None."""
    if len(shape1) > len(shape):
        return None
    full = (1,) * (len(shape) - len(shape1)) + tuple(shape1)
    return full if all(m == n or m == 1 for m, n in zip(full, shape)) else None


def binary(op: str, a: np.ndarray, b: object, in_place: bool = False) -> np.ndarray | None:
    """``a (op) b`` into a new float32 array (into ``a`` itself with ``in_place=True``, which is
    returned then), for ``op`` in ``add``, ``sub``, ``mul``, ``div``; ``a`` a
    float32 array (contiguous or channels-last) and ``b`` a float32 array of the same shape, a
    C-contiguous float32 array that broadcasts to ``a``'s shape (with a C-contiguous ``a``), or a
    Python number (NumPy's weak scalar: taken as float32). One threaded pass, the same IEEE
    operation per element as NumPy's. ``None`` when declined: other dtypes, layouts or shapes
    (``b`` bigger than ``a``), numbers out of float32's range, or arrays below
    :data:`MIN_ELEMENTS`."""
    if not ENABLED or type(a) is not np.ndarray or a.dtype != np.float32 or a.size < MIN_ELEMENTS:
        return None
    src = _memory(a)
    if src is None or in_place and (not a.flags.writeable or type(b) is np.ndarray and np.may_share_memory(a, b)):
        return None
    scalar = type(b) in (float, int)
    if scalar:
        value = float(b)
        if not abs(value) <= _FLOAT32_MAX:  # inf, nan or out of range: NumPy's own rules
            return None
    elif type(b) is not np.ndarray or b.dtype != np.float32:
        return None
    elif b.shape != a.shape:  # a broadcast second operand: plain C-contiguous layouts only
        shape1 = _broadcast_to(b.shape, a.shape)
        if shape1 is None or not a.flags.c_contiguous or not b.flags.c_contiguous or not b.size:
            return None
        alg = BINARY_ALGS[op]
        plan = L.cached_or_none(("arithmetic broadcast", a.shape, shape1, alg),
                                lambda: _BroadcastPlan(a.shape, shape1, alg))
        if plan is None:
            return None
        out = a if in_place else np.empty_like(a)
        plan.op.execute([(C.ARG_SRC, a), (C.ARG_SRC_1, b), (C.ARG_DST, out)])
        return out
    else:
        b = L.same_layout(b, a, copy=False)  # (other layouts: NumPy's one pass beats a copy and a pass)
        if b is None:
            return None
    alg = BINARY_ALGS[op]
    plan = L.cached_or_none(("arithmetic", a.size, alg, scalar), lambda: _BinaryPlan(a.size, alg, scalar))
    if plan is None:
        return None
    src1 = np.array((value,), np.float32) if scalar else _memory(b)  # (a scalar: its own buffer per call)
    out = a if in_place else np.empty_like(a)
    plan.op.execute([(C.ARG_SRC, src), (C.ARG_SRC_1, src1), (C.ARG_DST, _memory(out))])
    return out


# -- any eltwise algorithm: forward and gradient, keyed by size, algorithm, alpha and beta --------

# dnnl_alg_kind_t values (oneDNN 3.x) of the algorithms used below
ELTWISE_RELU = 0x20  # alpha * s where s <= 0: leaky ReLU
ELTWISE_ELU = 0x22  # s > 0 ? s : alpha * (exp(s) - 1)
ELTWISE_LINEAR = 0x26  # alpha * s + beta
ELTWISE_SOFT_RELU = 0x27  # log(1 + exp(alpha * s)) / alpha
ELTWISE_HARDSIGMOID = 0x28  # max(0, min(1, alpha * s + beta))
ELTWISE_LOGISTIC = 0x29
ELTWISE_GELU_TANH = 0x2B
ELTWISE_SWISH = 0x2C  # s * logistic(alpha * s)
ELTWISE_CLIP = 0x2E  # clip(s, alpha, beta); gradient where alpha < s <= beta
ELTWISE_CLIP_V2 = 0x2F  # clip(s, alpha, beta); gradient where alpha < s < beta
ELTWISE_GELU_ERF = 0x31
ELTWISE_MISH = 0x33
ELTWISE_HARDSWISH = 0x34  # s * max(0, min(1, alpha * s + beta))
ELTWISE_LOGISTIC_USE_DST_FOR_BWD = 0x104


class _EltwisePlan:
    """A forward primitive of one algorithm at one size (``scale``: a ``linear`` post-op that
    multiplies the result), and its backward primitive built on first use."""

    def __init__(self, size: int, alg: int, alpha: float, beta: float, scale: float) -> None:
        self.size, self.alg, self.alpha, self.beta = size, alg, alpha, beta
        md = L.MemoryDesc.with_tag((size,), C.a)
        attr = L.Attr(post_ops=[(ELTWISE_LINEAR, scale, 0.0)]) if scale != 1.0 else None
        self.fwd = L.Primitive(L.create_pd("eltwise_forward", C.forward_training, alg, md, md, alpha, beta,
                                           attr, op="eltwise"), "eltwise forward")
        self._bwd: L.Primitive | bool | None = None  # False: the library does not build it

    def backward(self) -> L.Primitive | None:
        """The backward primitive (from the source, or the output for a ``*_use_dst_for_bwd`` one),
        or ``None`` when the library does not build it."""
        if self._bwd is None:
            md = L.MemoryDesc.with_tag((self.size,), C.a)
            try:
                self._bwd = L.Primitive(L.create_pd("eltwise_backward", self.alg, md, md, md, self.alpha,
                                                    self.beta, self.fwd.pd, None, op="eltwise backward"),
                                        "eltwise backward")
            except L.DnnlError:
                self._bwd = False
        return self._bwd or None


# The smallest array the activations' algorithms (:func:`forward`, :func:`backward`) take: their
# callers set their own sizes above it (rosenblatt.kernels.activation), from 1,024 elements for
# the GELU, whose NumPy form (an erf) is slow at any size.
ALG_MIN_ELEMENTS = 1 << 10


def _eltwise_plan(x: np.ndarray, alg: int, alpha: float, beta: float, scale: float = 1.0) -> _EltwisePlan | None:
    if not ENABLED or x.size < ALG_MIN_ELEMENTS or x.dtype != np.float32 or _memory(x) is None:
        return None
    alpha, beta, scale = float(alpha), float(beta), float(scale)
    key = ("eltwise alg", x.size, alg, alpha, beta, scale)
    return L.cached_or_none(key, lambda: _EltwisePlan(x.size, alg, alpha, beta, scale))


def forward(x: np.ndarray, alg: int, alpha: float = 0.0, beta: float = 0.0, scale: float = 1.0) -> np.ndarray | None:
    """``scale * f(x)`` for eltwise algorithm ``alg`` with its ``alpha`` and ``beta`` into a new
    float32 array, or ``None`` when declined (not float32, not contiguous, too small, or an
    algorithm/parameter combination the library does not build)."""
    plan = _eltwise_plan(x, alg, alpha, beta, scale)
    if plan is None:
        return None
    y = np.empty_like(x)
    plan.fwd.execute([(C.ARG_SRC, _memory(x)), (C.ARG_DST, _memory(y))])
    return y


def backward(gy: np.ndarray, data: np.ndarray, alg: int, alpha: float = 0.0, beta: float = 0.0) -> np.ndarray | None:
    """``gy * f'(x)`` for eltwise algorithm ``alg``, from ``data``: the input ``x``, or the output
    for a ``*_use_dst_for_bwd`` algorithm; ``None`` when declined."""
    if type(gy) is not np.ndarray or gy.shape != data.shape or gy.dtype != np.float32:
        return None
    plan = _eltwise_plan(data, alg, alpha, beta)
    if plan is None:
        return None
    gy = L.same_layout(gy, data)
    if gy is None:
        return None
    bwd = plan.backward()
    if bwd is None:
        return None
    gx = np.empty_like(data)
    arg = C.ARG_DST if alg & 0x100 else C.ARG_SRC
    bwd.execute([(arg, _memory(data)), (C.ARG_DIFF_DST, _memory(gy)), (C.ARG_DIFF_SRC, _memory(gx))])
    return gx
