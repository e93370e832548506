"""oneDNN optimiser updates: Adagrad and RMSprop on large float32 arrays in a few threaded passes
(and, built the same way at the end of this module, SGD with Nesterov momentum or weight decay,
Adam / AdamW and Adadelta).

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

_BINARY_ADD, _BINARY_MUL = 0x1FFF0, 0x1FFF1  # dnnl_binary_add, dnnl_binary_mul
_ELTWISE_SQRT, _ELTWISE_LINEAR, _ELTWISE_POW = 0x25, 0x26, 0x30  # dnnl_eltwise_sqrt, _linear, _pow
_ARG_ATTR_SCALES = 4096  # DNNL_ARG_ATTR_SCALES
_SCALE_SRC_0, _SCALE_SRC_1 = _ARG_ATTR_SCALES | C.ARG_SRC, _ARG_ATTR_SCALES | C.ARG_SRC_1


_post_op_src = L.post_op_src


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


# -- SGD with momentum (Nesterov or weight decay), Adam / AdamW, Adadelta ---------------------------
# The same building blocks: binary primitives whose changing scalars (learning rate, momentum,
# weight decay, Adam's bias corrections, the sign of ``maximize``) are run-time scales or one-element
# post-op inputs; the decay rates of the running averages (``beta1``, ``beta2``, ``rho``: a sum
# post-op's scale) are fixed and key the cache, except Adam's ``beta1``, which OneCycleLR cycles as
# a momentum: a one-element post-op input too. Every step keeps the
# operands and the order of the NumPy kernels of rosenblatt.kernels.optim.

_BINARY_MAX, _BINARY_DIV, _BINARY_SUB = 0x1FFF2, 0x1FFF4, 0x1FFF5  # dnnl_binary_max, _div, _sub

Scratches = Callable[[int], list[np.ndarray]]  # ``k`` distinct flat float32 arrays of the parameter's size


class _Common:
    """The scaled sum and the scaling of one array size, shared by the updates below."""

    def __init__(self, size: int) -> None:
        # out = a * x + b * y
        self.axpby = _binary("optimiser scaled sum", _BINARY_ADD, size, False, (), [C.ARG_SRC, C.ARG_SRC_1])
        # x = a * x
        self.scale = _binary("optimiser scaling", _BINARY_MUL, size, True)

    def scaled_sum(self, out: np.ndarray, x: np.ndarray, a: float, y: np.ndarray, b: float) -> None:
        """``out = a * x + b * y`` (``out`` may be ``x``)."""
        self.axpby.execute([(C.ARG_SRC, x), (C.ARG_SRC_1, y), (C.ARG_DST, out),
                            (_SCALE_SRC_0, _scalar(a)), (_SCALE_SRC_1, _scalar(b))])

    def scale_(self, x: np.ndarray, a: float) -> None:
        """``x *= a``."""
        self.scale.execute([(C.ARG_SRC, x), (C.ARG_SRC_1, _scalar(a)), (C.ARG_DST, x)])

    def decayed(self, d: np.ndarray, p: np.ndarray, g: np.ndarray, weight_decay: float, sign: float) -> None:
        """``d = weight_decay * p + sign * g``, the gradient of the NumPy kernels' ``effective_grad``."""
        self.scaled_sum(d, p, weight_decay, g, sign)


def _common(size: int) -> _Common | None:
    return L.cached_or_none(("optimiser common", size), lambda: _Common(size))


def _second_moment(size: int, beta: float) -> L.Primitive:
    """``acc = beta * acc + (scale * x) * x``, ``scale`` given at run time (see :func:`_run_second_moment`)."""
    return _binary("optimiser second moment", _BINARY_MUL, size, False, [("sum", beta)], [C.ARG_SRC])


def _run_second_moment(primitive: L.Primitive, acc: np.ndarray, x: np.ndarray, scale: float) -> None:
    primitive.execute([(C.ARG_SRC, x), (C.ARG_SRC_1, x), (C.ARG_DST, acc), (_SCALE_SRC_0, _scalar(scale))])


class _SgdPlans:
    """SGD with momentum of one array size: the scaled sums of :class:`_Common` and the Nesterov step
    ``param = param + c * (a * d + b * buf)``."""

    def __init__(self, size: int) -> None:
        scalar = L.MemoryDesc.with_tag((1,), C.a)
        self.nesterov = _binary("optimiser Nesterov step", _BINARY_ADD, size, False,
                                [("binary", _BINARY_MUL, scalar), ("sum", 1.0)], [C.ARG_SRC, C.ARG_SRC_1])

    def nesterov_step(self, p: np.ndarray, d: np.ndarray, a: float, buf: np.ndarray, momentum: float,
                      lr: float) -> None:
        """``p -= lr * (momentum * buf + a * d)`` (``a``: 1 or the sign of ``maximize``)."""
        self.nesterov.execute([(C.ARG_SRC, d), (C.ARG_SRC_1, buf), (C.ARG_DST, p), (_SCALE_SRC_0, _scalar(a)),
                               (_SCALE_SRC_1, _scalar(momentum)), (_post_op_src(0), _scalar(-lr))])


def sgd_momentum(param: np.ndarray, grad: np.ndarray, buf: np.ndarray, scratch: Scratches, lr: float,
                 momentum: float, dampening: float, nesterov: bool, weight_decay: float, sign: float,
                 first: bool) -> bool:
    """SGD's momentum update in place, with ``d = weight_decay * param + sign * grad``::

        buf = d                                        # first step
        buf = momentum * buf + (1 - dampening) * d     # later steps
        param -= lr * (momentum * buf + d)   if nesterov  else  param -= lr * buf

    ``d`` is written into ``scratch(1)`` with weight decay after the first step (the buffer holds it
    on the first). Two passes (Nesterov without weight decay) or three. False, touching nothing,
    when declined."""
    if not _usable(grad, (param, buf)):
        return False
    common = _common(param.size)
    plans = L.cached_or_none(("optimiser sgd", param.size), lambda: _SgdPlans(param.size)) if nesterov else None
    if common is None or (nesterov and plans is None):
        return False
    p, g, b = param.reshape(-1), grad.reshape(-1), buf.reshape(-1)
    d, a = g, sign  # d = a * g without weight decay
    if first:
        if weight_decay:
            common.decayed(b, p, g, weight_decay, sign)
            d, a = b, 1.0
        elif sign > 0:
            np.copyto(b, g)
        else:
            np.negative(g, out=b)
    else:
        if weight_decay:
            d, a = scratch(1)[0], 1.0
            common.decayed(d, p, g, weight_decay, sign)
        common.scaled_sum(b, b, momentum, d, a * (1.0 - dampening))
    if plans is not None:
        plans.nesterov_step(p, d, a, b, momentum, lr)
    else:
        common.scaled_sum(p, p, 1.0, b, -lr)
    return True


class _AdamPlans:
    """Adam's primitives of one array size, ``beta2`` and gradient sign (+1 for a weight-decayed
    gradient, which is written out whatever the sign)."""

    def __init__(self, size: int, beta2: float, sign: float) -> None:
        md, scalar = L.MemoryDesc.with_tag((size,), C.a), L.MemoryDesc.with_tag((1,), C.a)
        self.size = size
        # m = beta1 * (m - d) + d, from m and x (d = sign * x; the scale of x is -sign and beta1 come
        # at run time)
        last = ("binary", _BINARY_ADD if sign > 0 else _BINARY_SUB, md)
        self.first_moment = _binary("optimiser first moment", _BINARY_ADD, size, False,
                                    [("binary", _BINARY_MUL, scalar), last], [C.ARG_SRC_1])
        # v = beta2 * v + ((1 - beta2) * d) * d
        self.second_moment = _second_moment(size, beta2)
        # v_max = max(v_max, v)
        self.maximum = _binary("optimiser running maximum", _BINARY_MAX, size, False)
        self.steps: dict[float, L.Primitive] = {1.0: self._step(1.0)}
        # The first decay other than 1 this plan is asked for (AdamW), fixed in a step of its own:
        # None: not yet; False: oneDNN refused it.
        self.fixed_decay: float | bool | None = None

    def _step(self, sum_scale: float) -> L.Primitive:
        """``p = sum_scale * p + c * m / (sqrt(v) + eps)`` (``eps`` and ``c`` at run time)."""
        md, scalar = L.MemoryDesc.with_tag((self.size,), C.a), L.MemoryDesc.with_tag((1,), C.a)
        post_ops: list[PostOp] = [("eltwise", _ELTWISE_SQRT, 0.0, 0.0), ("binary", _BINARY_ADD, scalar),
                                  ("eltwise", _ELTWISE_POW, 1.0, -1.0), ("binary", _BINARY_MUL, md),
                                  ("binary", _BINARY_MUL, scalar), ("sum", sum_scale)]
        return _binary("optimiser Adam step", _BINARY_MUL, self.size, True, post_ops)

    def step_for(self, decay: float) -> L.Primitive | None:
        """The step primitive that also scales the parameter by ``decay``, if there is one (1, or the
        first other decay asked for); None: scale the parameter in a pass of its own first."""
        if decay in self.steps:
            return self.steps[decay]
        if self.fixed_decay is None:
            try:
                self.steps[decay] = self._step(decay)
                self.fixed_decay = decay
                return self.steps[decay]
            except L.DnnlError:
                self.fixed_decay = False
        return None


def adam(param: np.ndarray, grad: np.ndarray, exp_avg: np.ndarray, exp_avg_sq: np.ndarray,
         max_exp_avg_sq: np.ndarray | None, scratch: Scratches, beta1: float, beta2: float, step_size: float,
         eps: float, decay: float, l2: float, sign: float) -> bool:
    """Adam's update in place (``max_exp_avg_sq``: AMSGrad), with ``d = sign * grad + l2 * param``
    (written into ``scratch(1)`` with ``l2``)::

        param = decay * param                                  # AdamW's decoupled decay
        exp_avg = beta1 * (exp_avg - d) + d
        exp_avg_sq = beta2 * exp_avg_sq + (1 - beta2) * d * d
        max_exp_avg_sq = max(max_exp_avg_sq, exp_avg_sq)       # AMSGrad, then used as exp_avg_sq
        param -= step_size * exp_avg / (sqrt(exp_avg_sq) + eps)

    Three passes, one more each for ``l2``, AMSGrad and a decay other than the first one seen (the
    decay of AdamW changes with the learning rate). False, touching nothing, when declined."""
    if not _usable(grad, (param, exp_avg, exp_avg_sq, max_exp_avg_sq)):
        return False
    x_sign = 1.0 if l2 else sign
    common = _common(param.size)
    key = ("optimiser adam", param.size, float(beta2), x_sign)
    plans = L.cached_or_none(key, lambda: _AdamPlans(param.size, beta2, x_sign))
    if common is None or plans is None:
        return False
    step = plans.step_for(decay)  # built before any pass runs
    p, g, m, v = param.reshape(-1), grad.reshape(-1), exp_avg.reshape(-1), exp_avg_sq.reshape(-1)
    if step is None:
        common.scale_(p, decay)
        step = plans.steps[1.0]
    x = g
    if l2:
        x = scratch(1)[0]
        common.decayed(x, p, g, l2, sign)
    plans.first_moment.execute([(C.ARG_SRC, m), (C.ARG_SRC_1, x), (C.ARG_DST, m), (_SCALE_SRC_1, _scalar(-x_sign)),
                                (_post_op_src(0), _scalar(beta1)), (_post_op_src(1), x)])
    _run_second_moment(plans.second_moment, v, x, 1.0 - beta2)
    if max_exp_avg_sq is not None:
        vmax = max_exp_avg_sq.reshape(-1)
        plans.maximum.execute([(C.ARG_SRC, vmax), (C.ARG_SRC_1, v), (C.ARG_DST, vmax)])
        v = vmax
    step.execute([(C.ARG_SRC, v), (C.ARG_SRC_1, _ONE), (C.ARG_DST, p), (_post_op_src(1), _scalar(eps)),
                  (_post_op_src(3), m), (_post_op_src(4), _scalar(-step_size))])
    return True


class _AdadeltaPlans:
    """Adadelta's primitives of one array size and ``rho``."""

    def __init__(self, size: int, rho: float) -> None:
        md, scalar = L.MemoryDesc.with_tag((size,), C.a), L.MemoryDesc.with_tag((1,), C.a)
        # acc = rho * acc + ((1 - rho) * x) * x
        self.second_moment = _second_moment(size, rho)
        # std = sqrt(square_avg + eps)
        self.std = _binary("optimiser Adadelta root", _BINARY_ADD, size, True, [("eltwise", _ELTWISE_SQRT, 0.0, 0.0)])
        # delta = sqrt(acc_delta + eps) / std * x * sign
        self.delta = _binary("optimiser Adadelta delta", _BINARY_ADD, size, True,
                             [("eltwise", _ELTWISE_SQRT, 0.0, 0.0), ("binary", _BINARY_DIV, md),
                              ("binary", _BINARY_MUL, md), ("binary", _BINARY_MUL, scalar)])


def adadelta(param: np.ndarray, grad: np.ndarray, square_avg: np.ndarray, acc_delta: np.ndarray,
             scratch: Scratches, lr: float, rho: float, eps: float, weight_decay: float, sign: float) -> bool:
    """Adadelta's update in place, with ``d = sign * grad + weight_decay * param``::

        square_avg = rho * square_avg + (1 - rho) * d * d
        delta = sqrt(acc_delta + eps) / sqrt(square_avg + eps) * d
        acc_delta = rho * acc_delta + (1 - rho) * delta * delta
        param -= lr * delta

    Five passes (six with weight decay), the root and ``delta`` (and ``d``) written into
    ``scratch``. False, touching nothing, when declined."""
    if not _usable(grad, (param, square_avg, acc_delta)):
        return False
    common = _common(param.size)
    plans = L.cached_or_none(("optimiser adadelta", param.size, float(rho)), lambda: _AdadeltaPlans(param.size, rho))
    if common is None or plans is None:
        return False
    p, g, sq, acc = param.reshape(-1), grad.reshape(-1), square_avg.reshape(-1), acc_delta.reshape(-1)
    buffers = scratch(3 if weight_decay else 2)
    std, delta = buffers[0], buffers[1]
    x, x_sign = g, sign
    if weight_decay:
        x, x_sign = buffers[2], 1.0
        common.decayed(x, p, g, weight_decay, sign)
    _run_second_moment(plans.second_moment, sq, x, 1.0 - rho)
    e = _scalar(eps)
    plans.std.execute([(C.ARG_SRC, sq), (C.ARG_SRC_1, e), (C.ARG_DST, std)])
    plans.delta.execute([(C.ARG_SRC, acc), (C.ARG_SRC_1, e), (C.ARG_DST, delta), (_post_op_src(1), std),
                         (_post_op_src(2), x), (_post_op_src(3), _scalar(x_sign))])
    _run_second_moment(plans.second_moment, acc, delta, 1.0 - rho)
    common.scaled_sum(p, p, 1.0, delta, -lr)
    return True
