"""oneDNN optimiser updates: Adagrad and RMSprop on large float32 arrays in a few threaded passes.

The NumPy kernels of :mod:`rosenblatt.kernels.optim` make about ten ufunc passes per update over
cache-sized blocks; here an update is two to five binary primitives, each one pass over its arrays
on oneDNN's team, with the rest of the arithmetic in post-ops:

- the second moment, ``acc = beta * acc + (scale * g) * g``: a binary ``mul(g, g)`` with a run-time
  scale on its first input and a sum post-op of scale ``beta`` into ``acc`` (Adagrad: ``scale =
  beta = 1``; RMSprop: ``scale = 1 - alpha``, ``beta = alpha``);
- the normalised step, ``dst = dst + c * g * (1 / (sqrt(v) + eps))``: a binary ``mul(v, 1)`` (``v``
  times a one-element 1, only there to start the chain) with the post-ops sqrt, ``linear(1, eps)``,
  ``pow(1, -1)``, ``mul(g)``, ``mul(c)`` and ``sum(1)``; centered RMSprop starts from ``mul(m, m)``
  with ``linear(-1, 0)`` and ``add(square_avg)`` instead, for ``v = square_avg - m * m``;
- scaled sums ``out = a * x + b * y`` and scalings ``x = a * x`` (RMSprop's gradient average and
  momentum buffer, the step ``param -= lr * buf``, the weight-decayed gradient).

The scalars that may change from step to step (learning rate, momentum, weight decay, the sign of
``maximize``) reach the primitives at run time, as a one-element tensor of a binary post-op or a
scale, so a learning-rate or momentum schedule builds no primitive. ``alpha`` (a sum post-op's
scale) and ``eps`` are fixed in the primitives, which are cached by their values: a new value builds
new ones, once (a plan's four primitives took 0.15-0.2 ms to build). The first momentum a plan sees
is fixed in one more primitive, which saves a pass while the momentum stays constant (see
:meth:`_Plans.fixed_momentum`).

The reciprocal then product ``g * (1 / d)`` is within 1.5 ulp of NumPy's ``g / d``; the other steps
round as the NumPy kernels do except where oneDNN contracts a sum post-op into a fused multiply-add.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from rosenblatt.kernels.onednn import library as L

C = L.C
ENABLED = True  # False: always declined (the NumPy kernels run)
# Arrays from this many elements on (see rosenblatt.kernels.optim for the measurements).
MIN_ELEMENTS = 1 << 17

L.bind("binary_primitive_desc_create", [L._PP, L._P, L._I, L._P, L._P, L._P, L._P])
L.bind("primitive_attr_set_scales_mask", [L._P, L._I, L._I])
L.bind("post_ops_append_binary", [L._P, L._I, L._P])

_BINARY_ADD, _BINARY_MUL = 0x1FFF0, 0x1FFF1  # dnnl_binary_add, dnnl_binary_mul
_ELTWISE_SQRT, _ELTWISE_LINEAR, _ELTWISE_POW = 0x25, 0x26, 0x30  # dnnl_eltwise_sqrt, _linear, _pow
_ARG_ATTR_SCALES = 4096  # DNNL_ARG_ATTR_SCALES
_SCALE_SRC_0, _SCALE_SRC_1 = _ARG_ATTR_SCALES | C.ARG_SRC, _ARG_ATTR_SCALES | C.ARG_SRC_1
_POST_OP_BASE = 32768  # DNNL_ARG_ATTR_MULTIPLE_POST_OP_BASE


def _post_op_src(index: int) -> int:
    """The execution argument of the second input of post-op ``index`` (a binary post-op)."""
    return _POST_OP_BASE * (index + 1) | C.ARG_SRC_1


# A post-op: ("sum", scale), ("eltwise", alg, alpha, beta) or ("binary", alg, memory descriptor).
PostOp = tuple[Any, ...]


def _attr(post_ops: Sequence[PostOp] = (), scaled: Sequence[int] = ()) -> L.Attr:
    """Attributes with ``post_ops`` and a run-time scale (one value, mask 0) on each input in ``scaled``
    (``C.ARG_SRC``, ``C.ARG_SRC_1``)."""
    attr = L.Attr()
    for arg in scaled:
        L.call("primitive_attr_set_scales_mask", attr.handle, arg, 0, op="optimiser update")
    if post_ops:
        po = ctypes.c_void_p()
        L.call("post_ops_create", ctypes.byref(po), op="optimiser update")
        try:
            for kind, *params in post_ops:
                if kind == "sum":
                    L.call("post_ops_append_sum", po, params[0], 0, C.data_type_undef, op="optimiser update")
                elif kind == "eltwise":
                    L.call("post_ops_append_eltwise", po, *params, op="optimiser update")
                else:
                    L.call("post_ops_append_binary", po, params[0], params[1].handle, op="optimiser update")
            L.call("primitive_attr_set_post_ops", attr.handle, po, op="optimiser update")
        finally:
            L._lib.dnnl_post_ops_destroy(po)
    return attr


def _binary(name: str, alg: int, size: int, scalar_src1: bool, post_ops: Sequence[PostOp] = (),
            scaled: Sequence[int] = ()) -> L.Primitive:
    """A binary primitive over flat arrays of ``size`` elements (``src1`` a one-element tensor with
    ``scalar_src1``), its scale arguments declared as one-element tensors."""
    md = L.MemoryDesc.with_tag((size,), C.a)
    scalar = L.MemoryDesc.with_tag((1,), C.a)
    pd = L.create_pd("binary", alg, md, scalar if scalar_src1 else md, md, _attr(post_ops, scaled), op=name)
    primitive = L.Primitive(pd, name)
    for arg in scaled:
        primitive._mds[_ARG_ATTR_SCALES | arg] = scalar
    return primitive


def _scalar(value: float) -> np.ndarray:
    # A fresh array per call: two threads running the same plan never share a run-time value.
    return np.array([value], np.float32)


_ONE = np.ones(1, np.float32)  # the one-element 1 that starts the chain of a normalised step


class _Plans:
    """The primitives of one array size (and ``alpha``, ``eps``): built together, so that an update
    either runs all of its passes or none."""

    def __init__(self, size: int, beta: float, eps: float, centered: bool) -> None:
        self.size, self.eps, self.centered = size, eps, centered
        # acc = beta * acc + (scale * g) * g
        self.square = _binary("optimiser second moment", _BINARY_MUL, size, False, [("sum", beta)], [C.ARG_SRC])
        # dst = dst + c * g / (sqrt(v) + eps), from v (or from m and square_avg when centered)
        self.step = self._step(1.0)
        first_tail = 2 if centered else 0  # the index of the sqrt post-op
        self.step_g = _post_op_src(first_tail + 3)
        self.step_c = _post_op_src(first_tail + 4)
        # out = a * x + b * y
        self.axpby = _binary("optimiser scaled sum", _BINARY_ADD, size, False, (), [C.ARG_SRC, C.ARG_SRC_1])
        # x = a * x
        self.scale = _binary("optimiser scaling", _BINARY_MUL, size, True)
        # (momentum, the normalised step with a sum post-op of that scale): for the first momentum
        # requested, built once (None: not yet; False: oneDNN refused it).
        self.momentum_step: tuple[float, L.Primitive] | bool | None = None

    def _step(self, sum_scale: float) -> L.Primitive:
        """The normalised step, ``dst = sum_scale * dst + c * g / (sqrt(v) + eps)``."""
        md = L.MemoryDesc.with_tag((self.size,), C.a)
        tail: list[PostOp] = [("eltwise", _ELTWISE_SQRT, 0.0, 0.0), ("eltwise", _ELTWISE_LINEAR, 1.0, self.eps),
                              ("eltwise", _ELTWISE_POW, 1.0, -1.0), ("binary", _BINARY_MUL, md),
                              ("binary", _BINARY_MUL, L.MemoryDesc.with_tag((1,), C.a)), ("sum", sum_scale)]
        if self.centered:
            head: list[PostOp] = [("eltwise", _ELTWISE_LINEAR, -1.0, 0.0), ("binary", _BINARY_ADD, md)]
            return _binary("optimiser normalised step", _BINARY_MUL, self.size, False, head + tail)
        return _binary("optimiser normalised step", _BINARY_MUL, self.size, True, tail)

    def fixed_momentum(self, momentum: float) -> L.Primitive | None:
        """The normalised step that also scales ``dst`` by ``momentum`` (its sum post-op's scale), when
        ``momentum`` is the first value this plan was asked for; else None.

        The sum post-op's scale is fixed when a primitive is built, and building one per value would
        build one per step under a schedule that cycles the momentum (OneCycleLR). Other values take
        a separate scaling pass over the buffer instead (see :func:`rmsprop`)."""
        if self.momentum_step is None:
            try:
                self.momentum_step = (momentum, self._step(momentum))
            except L.DnnlError:
                self.momentum_step = False
        if self.momentum_step and self.momentum_step[0] == momentum:
            return self.momentum_step[1]
        return None

    def second_moment(self, acc: np.ndarray, g: np.ndarray, scale: float) -> None:
        """``acc = beta * acc + (scale * g) * g``."""
        self.square.execute([(C.ARG_SRC, g), (C.ARG_SRC_1, g), (C.ARG_DST, acc), (_SCALE_SRC_0, _scalar(scale))])

    def normalised_step(self, dst: np.ndarray, v: np.ndarray, g: np.ndarray, c: float,
                        square_avg: np.ndarray | None = None, step: L.Primitive | None = None) -> None:
        """``dst += c * g / (sqrt(v) + eps)``; centered: ``v`` is the mean ``m`` and the root is of
        ``square_avg - m * m``. ``step``: a primitive of :meth:`fixed_momentum` to run instead,
        ``dst = momentum * dst + ...``."""
        if self.centered:
            args = [(C.ARG_SRC, v), (C.ARG_SRC_1, v), (_post_op_src(1), square_avg)]
        else:
            args = [(C.ARG_SRC, v), (C.ARG_SRC_1, _ONE)]
        args += [(C.ARG_DST, dst), (self.step_g, g), (self.step_c, _scalar(c))]
        (step or self.step).execute(args)

    def scaled_sum(self, out: np.ndarray, x: np.ndarray, a: float, y: np.ndarray, b: float) -> None:
        """``out = a * x + b * y`` (``out`` may be ``x``)."""
        self.axpby.execute([(C.ARG_SRC, x), (C.ARG_SRC_1, y), (C.ARG_DST, out),
                            (_SCALE_SRC_0, _scalar(a)), (_SCALE_SRC_1, _scalar(b))])

    def scale_(self, x: np.ndarray, a: float) -> None:
        """``x *= a``."""
        self.scale.execute([(C.ARG_SRC, x), (C.ARG_SRC_1, _scalar(a)), (C.ARG_DST, x)])


def _plans(size: int, beta: float, eps: float, centered: bool) -> _Plans | None:
    key = ("optimiser update", size, float(beta), float(eps), centered)
    return L.cached_or_none(key, lambda: _Plans(size, beta, eps, centered))


def _usable(grad: np.ndarray, written: Sequence[np.ndarray | None]) -> bool:
    """``grad`` and the arrays ``written`` (parameter first; None: absent) are same-shaped
    C-contiguous float32 NumPy arrays of at least MIN_ELEMENTS elements, the written ones writeable,
    none overlapping another."""
    present = [a for a in written if a is not None]
    first = present[0]
    if not ENABLED or first.size < MIN_ELEMENTS:
        return False
    for a in present:
        if (type(a) is not np.ndarray or a.dtype != np.float32 or a.shape != first.shape
                or not a.flags.c_contiguous or not a.flags.writeable):
            return False
    if (type(grad) is not np.ndarray or grad.dtype != np.float32 or grad.shape != first.shape
            or not grad.flags.c_contiguous):
        return False
    present.append(grad)
    for i, a in enumerate(present):
        for b in present[i + 1:]:
            if np.may_share_memory(a, b):
                return False
    return True


Scratch = Callable[[], np.ndarray]  # returns a C-contiguous float32 array shaped like the parameter


def _gradient(plans: _Plans, param: np.ndarray, grad: np.ndarray, scratch: Scratch, weight_decay: float,
              sign: float) -> tuple[np.ndarray, float]:
    """The flat gradient to use and its sign: ``(grad, sign)``, or with weight decay ``(d, 1)`` where
    ``d = weight_decay * param + sign * grad`` is written into ``scratch()`` (as NumPy's kernels do)."""
    if not weight_decay:
        return grad, sign
    d = scratch().reshape(-1)
    plans.scaled_sum(d, param, weight_decay, grad, sign)
    return d, 1.0


def adagrad(param: np.ndarray, grad: np.ndarray, state_sum: np.ndarray, scratch: Scratch, clr: float, eps: float,
            weight_decay: float, sign: float) -> bool:
    """Adagrad's update in place: with ``d = sign * grad + weight_decay * param``, ``state_sum += d * d``
    then ``param -= clr * d / (sqrt(state_sum) + eps)``; two passes (three with weight decay, which
    writes ``d`` into ``scratch()``). False, touching nothing, when declined."""
    if not _usable(grad, (param, state_sum)):
        return False
    plans = _plans(param.size, 1.0, eps, False)
    if plans is None:
        return False
    p, g, acc = param.reshape(-1), grad.reshape(-1), state_sum.reshape(-1)
    d, sign = _gradient(plans, p, g, scratch, weight_decay, sign)
    plans.second_moment(acc, d, 1.0)
    plans.normalised_step(p, acc, d, -clr * sign)
    return True


def rmsprop(param: np.ndarray, grad: np.ndarray, square_avg: np.ndarray, grad_avg: np.ndarray | None,
            buf: np.ndarray | None, scratch: Scratch, lr: float, alpha: float, eps: float,
            weight_decay: float, momentum: float, sign: float) -> bool:
    """RMSprop's update in place (``grad_avg``: centered; ``buf``: with momentum), with ``d = sign *
    grad + weight_decay * param`` (written into ``scratch()`` with weight decay)::

        square_avg = alpha * square_avg + (1 - alpha) * d * d
        grad_avg = alpha * grad_avg + (1 - alpha) * d                      # centered
        x = d / (sqrt(square_avg - grad_avg**2 or square_avg) + eps)
        buf = momentum * buf + x;  param -= lr * buf     # with momentum, else param -= lr * x

    Two passes (plain) to five (centered with momentum), one more with weight decay. False,
    touching nothing, when declined."""
    if not _usable(grad, (param, square_avg, grad_avg, buf)):
        return False
    plans = _plans(param.size, alpha, eps, grad_avg is not None)
    if plans is None:
        return False
    fixed = plans.fixed_momentum(momentum) if buf is not None else None  # built before any pass runs
    p, g, sq = param.reshape(-1), grad.reshape(-1), square_avg.reshape(-1)
    d, sign = _gradient(plans, p, g, scratch, weight_decay, sign)
    plans.second_moment(sq, d, 1.0 - alpha)
    v = sq
    if grad_avg is not None:
        v = grad_avg.reshape(-1)
        plans.scaled_sum(v, v, alpha, d, (1.0 - alpha) * sign)
    if buf is None:
        plans.normalised_step(p, v, d, -lr * sign, sq)
        return True
    b = buf.reshape(-1)
    # A constant momentum is the normalised step's sum post-op; one that changes (a schedule) is a
    # pass of its own over the buffer, which cost 0.30 ms more per 4M-element step (1.13 against
    # 1.46 ms, two threads) but builds nothing.
    if fixed is None:
        plans.scale_(b, momentum)
    plans.normalised_step(b, v, d, sign, sq, fixed)
    plans.scaled_sum(p, p, 1.0, b, -lr)
    return True
