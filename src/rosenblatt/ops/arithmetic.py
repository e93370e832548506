"""Element-wise arithmetic with broadcasting: + - * / ** and friends, comparisons, ``where``.

Backward formulas return gradients in the broadcast shape; the engine sums them back to each
input's shape with ``sum_to`` (one place for all broadcasting ops).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rosenblatt import kernels as _kernels
from rosenblatt.backend import get_array_module
from rosenblatt.core import Function, Tensor, _to_array, constant
from rosenblatt.ops._util import broadcast_error, raw

# From this many elements, +, -, * and / of float32 arrays (of one shape, an array and one that
# broadcasts to it, or an array and a Python number) run on oneDNN's threads when its kernels are
# active (:func:`_arith`); NumPy runs them on one thread. Two threads, ms per op, an input fresh in
# the cache / out of it (a chain of ops): 262,144 elements, x * 0.9 0.054 / 0.095 -> 0.038 / 0.066,
# x + y 0.160 / 0.166 -> 0.068 / 0.095; 131,072 elements: x + y 0.021 / 0.055 -> 0.023 / 0.038 (a
# call costs 15 us or so); 512x1024 times a (1024,) row 0.230 / 0.447 -> 0.116 / 0.197.
ONEDNN_MIN = 1 << 18
_NUMPY_OPS = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.true_divide}


def _onednn(op: str, a: Any, b: Any) -> Any:
    """``a (op) b`` on oneDNN's threads, or None when it does not run there (see :func:`_arith`)."""
    if type(a) is np.ndarray and a.size >= ONEDNN_MIN:
        if _kernels.use_onednn(a):
            from rosenblatt.kernels.onednn import eltwise

            return eltwise.binary(op, a, b)
    elif (type(b) is np.ndarray and b.size >= ONEDNN_MIN and op in ("add", "mul")
          and (type(a) in (float, int) or type(a) is np.ndarray and a.ndim <= b.ndim)):
        return _onednn(op, b, a)  # 0.5 * x, bias + x: the same sum or product
    return None


def _arith(op: str, a: Any, b: Any) -> Any:
    """``a (op) b`` on arrays or numbers: oneDNN's one threaded pass for a large float32 array with an
    array of its shape, one that broadcasts to it, or a number (bit for bit NumPy's result), NumPy
    otherwise."""
    y = _onednn(op, a, b)
    return y if y is not None else _NUMPY_OPS[op](a, b)


def in_place(op: str, a: Any, b: Any) -> bool:
    """``a (op)= b`` (``Tensor.add_``, ``x += y``, ...) on oneDNN's threads for a large float32 array,
    written into ``a`` with NumPy's bits; False, touching nothing, where it does not run there."""
    if type(a) is not np.ndarray or a.size < ONEDNN_MIN or a.dtype != np.float32 or not _kernels.use_onednn(a):
        return False
    from rosenblatt.kernels.onednn import eltwise

    return eltwise.binary(op, a, b, in_place=True) is not None


def _negative(a: Any) -> Any:
    """``-a``; a large float32 array as ``a * -1`` on oneDNN's threads (the same values)."""
    y = _onednn("mul", a, -1) if type(a) is _ND and a.size >= ONEDNN_MIN and a.dtype == np.float32 else None
    return y if y is not None else -a


# The forward passes test the size inline before calling _arith: most arrays of a graph are small,
# and a function call per op was measurable (a 100-op chain of 8x8 multiplications: +20 us).
_ND = np.ndarray


class Add(Function):
    @staticmethod
    def forward(ctx, a, b):
        if type(a) is _ND and a.size >= ONEDNN_MIN or type(b) is _ND and b.size >= ONEDNN_MIN:
            return _arith("add", a, b)
        return a + b

    @staticmethod
    def backward(ctx, gy):
        return gy, gy

    backward_arrays = backward


class Sub(Function):
    @staticmethod
    def forward(ctx, a, b):
        if type(a) is _ND and a.size >= ONEDNN_MIN or type(b) is _ND and b.size >= ONEDNN_MIN:
            return _arith("sub", a, b)
        return a - b

    @staticmethod
    def backward(ctx, gy):
        return gy, (-gy if ctx.needs_input_grad[1] else None)

    @staticmethod
    def backward_arrays(ctx, gy):
        return gy, (_negative(gy) if ctx.needs_input_grad[1] else None)


class Mul(Function):
    @staticmethod
    def forward(ctx, a, b):
        if type(a) is _ND and a.size >= ONEDNN_MIN or type(b) is _ND and b.size >= ONEDNN_MIN:
            return _arith("mul", a, b)
        return a * b

    @staticmethod
    def backward(ctx, gy):
        a, b = ctx.inputs
        need_a, need_b = ctx.needs_input_grad
        return (gy * b if need_a else None), (gy * a if need_b else None)

    @staticmethod
    def backward_arrays(ctx, gy):
        a, b = (x.data if isinstance(x, Tensor) else x for x in ctx.inputs)
        need_a, need_b = ctx.needs_input_grad
        if type(gy) is not _ND or gy.size < ONEDNN_MIN:
            return (gy * b if need_a else None), (gy * a if need_b else None)
        return (_arith("mul", gy, b) if need_a else None), (_arith("mul", gy, a) if need_b else None)


class Div(Function):
    @staticmethod
    def forward(ctx, a, b):
        if type(a) is _ND and a.size >= ONEDNN_MIN or type(b) is _ND and b.size >= ONEDNN_MIN:
            return _arith("div", a, b)
        return a / b

    @staticmethod
    def backward(ctx, gy):
        a, b = ctx.inputs
        need_a, need_b = ctx.needs_input_grad
        ga = gy / b if need_a else None
        gb = -gy * a / (b * b) if need_b else None
        return ga, gb

    @staticmethod
    def backward_arrays(ctx, gy):
        a, b = (x.data if isinstance(x, Tensor) else x for x in ctx.inputs)
        need_a, need_b = ctx.needs_input_grad
        ga = (gy / b if type(gy) is not _ND or gy.size < ONEDNN_MIN else _arith("div", gy, b)) if need_a else None
        gb = -gy * a / (b * b) if need_b else None
        return ga, gb


class Neg(Function):
    @staticmethod
    def forward(ctx, a):
        return _negative(a)

    @staticmethod
    def backward(ctx, gy):
        return -gy

    @staticmethod
    def backward_arrays(ctx, gy):
        return _negative(gy)


class Pow(Function):
    @staticmethod
    def forward(ctx, a, b):
        return a**b

    @staticmethod
    def backward(ctx, gy):
        a, b = ctx.inputs
        need_a, need_b = ctx.needs_input_grad
        ga = gb = None
        if need_a:
            if isinstance(b, Tensor):
                ga = gy * b * a ** (b - 1)
            elif b == 0:
                ga = gy * 0
            else:
                ga = gy * b * a ** (b - 1) if b != 1 else gy
        if need_b:
            y = ctx.output()
            base = a if isinstance(a, Tensor) else Tensor(np.asarray(a, dtype=y.dtype), device=y.device)
            gb = gy * y * log(base)
            # PyTorch's convention: no gradient to the exponent where the base is 0 and b >= 0.
            at_zero = (base.data == 0) & (raw(b) >= 0)
            if at_zero.any():
                gb = where(constant(at_zero), 0.0, gb)
        return ga, gb


class Maximum(Function):
    @staticmethod
    def forward(ctx, a, b):
        return get_array_module(a, b).maximum(a, b)

    @staticmethod
    def backward(ctx, gy):
        return _minmax_grads(ctx, gy, greater=True)


class Minimum(Function):
    @staticmethod
    def forward(ctx, a, b):
        return get_array_module(a, b).minimum(a, b)

    @staticmethod
    def backward(ctx, gy):
        return _minmax_grads(ctx, gy, greater=False)


def _minmax_grads(ctx, gy, greater):
    # PyTorch splits the gradient evenly where both inputs are equal.
    a, b = (raw(x) for x in ctx.inputs)
    xp = get_array_module(raw(gy))
    wins_a = (a > b) if greater else (a < b)
    share_a = xp.where(wins_a, 1.0, xp.where(a == b, 0.5, 0.0)).astype(raw(gy).dtype)
    need_a, need_b = ctx.needs_input_grad
    ga = gy * constant(share_a) if need_a else None
    gb = gy * constant(1.0 - share_a) if need_b else None
    return ga, gb


class Where(Function):
    @staticmethod
    def forward(ctx, condition, a, b):
        ctx.condition = condition
        return get_array_module(a, b, condition).where(condition, a, b)

    @staticmethod
    def backward(ctx, gy):
        cond = constant(ctx.condition)
        _, need_a, need_b = ctx.needs_input_grad
        ga = where(cond, gy, 0.0) if need_a else None
        gb = where(cond, 0.0, gy) if need_b else None
        return None, ga, gb


class Clip(Function):
    @staticmethod
    def forward(ctx, x, low, high):
        return get_array_module(x).clip(x, low, high)

    @staticmethod
    def backward(ctx, gy):
        x, low, high = ctx.inputs
        xd = raw(x)
        # PyTorch passes the gradient where low <= x <= high (bounds included).
        mask = get_array_module(xd).ones(xd.shape, dtype=bool)
        if low is not None:
            mask &= xd >= raw(low)
        if high is not None:
            mask &= xd <= raw(high)
        return gy * constant(mask.astype(xd.dtype)), None, None


class Remainder(Function):
    @staticmethod
    def forward(ctx, a, b):
        return get_array_module(a, b).remainder(a, b)

    @staticmethod
    def backward(ctx, gy):
        a, b = ctx.inputs
        need_a, need_b = ctx.needs_input_grad
        gb = None
        if need_b:
            xp = get_array_module(raw(gy))
            gb = -gy * constant(xp.floor_divide(raw(a), raw(b)))
        return (gy if need_a else None), gb


def _binary(fn_class, name):
    def op(a: Any, b: Any) -> Tensor:
        try:
            return fn_class.apply(a, b)
        except ValueError:
            try:
                np.broadcast_shapes(np.shape(raw(a)), np.shape(raw(b)))
            except ValueError:
                raise broadcast_error(name, a, b) from None
            raise

    op.__name__ = name
    return op


add = _binary(Add, "add")
add.__doc__ = "``a + b`` with broadcasting."
sub = _binary(Sub, "sub")
sub.__doc__ = "``a - b`` with broadcasting."
mul = _binary(Mul, "mul")
mul.__doc__ = "``a * b`` with broadcasting."
div = _binary(Div, "div")
div.__doc__ = "``a / b`` with broadcasting (true division)."
maximum = _binary(Maximum, "maximum")
maximum.__doc__ = "Element-wise maximum; where ``a == b`` the gradient is split evenly (as PyTorch)."
minimum = _binary(Minimum, "minimum")
minimum.__doc__ = "Element-wise minimum; where ``a == b`` the gradient is split evenly (as PyTorch)."
remainder = _binary(Remainder, "remainder")
remainder.__doc__ = "``a % b`` (Python's sign convention, like NumPy and PyTorch)."
subtract, multiply, divide, true_divide = sub, mul, div, div


def neg(a: Tensor) -> Tensor:
    """``-a``."""
    return Neg.apply(a)


def pow(a: Any, b: Any) -> Tensor:  # noqa: A001 - rb.pow, like torch.pow
    """``a ** b``; differentiable in both the base and the exponent."""
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        a = Tensor(a)
    try:
        return Pow.apply(a, b)
    except ValueError:
        raise broadcast_error("pow", a, b) from None


def floor_divide(a: Any, b: Any) -> Tensor:
    """``a // b`` (not differentiable: its gradient is zero almost everywhere)."""
    xp = get_array_module(raw(a), raw(b))
    return constant(_to_array(xp.floor_divide(raw(a), raw(b))))


def where(condition: Any, a: Any, b: Any) -> Tensor:
    """Element-wise ``a if condition else b`` with broadcasting; differentiable in ``a`` and ``b``."""
    cond = raw(condition)
    if getattr(cond, "dtype", None) != np.bool_:
        cond = np.asarray(cond).astype(bool) if not hasattr(cond, "astype") else cond.astype(bool)
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        a = Tensor(a)
    try:
        return Where.apply(cond, a, b)
    except ValueError:
        raise broadcast_error("where", condition, a, b) from None


def clip(x: Tensor, min: Any = None, max: Any = None) -> Tensor:  # noqa: A002 - PyTorch's names
    """Clamp values to ``[min, max]``; the gradient passes where ``min <= x <= max``."""
    if min is None and max is None:
        raise ValueError("clip: at least one of min and max must be given")
    return Clip.apply(x, raw(min) if min is not None else None, raw(max) if max is not None else None)


clamp = clip


# -- comparisons and logic: results are bool tensors and carry no gradient -------------------


def _compare(name, ufunc):
    def op(a: Any, b: Any) -> Tensor:
        try:
            return constant(_to_array(ufunc(raw(a), raw(b))))
        except ValueError:
            raise broadcast_error(name, a, b) from None

    op.__name__ = name
    op.__doc__ = f"Element-wise ``{name}`` (a bool tensor, no gradient)."
    return op


eq = _compare("eq", np.equal)
ne = _compare("ne", np.not_equal)
lt = _compare("lt", np.less)
le = _compare("le", np.less_equal)
gt = _compare("gt", np.greater)
ge = _compare("ge", np.greater_equal)
logical_and = _compare("logical_and", np.logical_and)
logical_or = _compare("logical_or", np.logical_or)
logical_xor = _compare("logical_xor", np.logical_xor)


def logical_not(a: Any) -> Tensor:
    """Element-wise logical not (a bool tensor)."""
    return constant(_to_array(np.logical_not(raw(a))))


def allclose(a: Any, b: Any, rtol: float = 1e-5, atol: float = 1e-8, equal_nan: bool = False) -> bool:
    """True when ``|a - b| <= atol + rtol * |b|`` everywhere (NumPy's rule)."""
    xa, xb = np.asarray(a), np.asarray(b)
    return bool(np.allclose(xa, xb, rtol=rtol, atol=atol, equal_nan=equal_nan))


def isnan(a: Any) -> Tensor:
    """Element-wise NaN test."""
    return constant(_to_array(np.isnan(raw(a))))


def isfinite(a: Any) -> Tensor:
    """Element-wise finiteness test."""
    return constant(_to_array(np.isfinite(raw(a))))


from rosenblatt.ops.elementwise import log  # noqa: E402  (used by Pow.backward)
