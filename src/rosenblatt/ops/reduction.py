"""Reductions (sum, mean, var, max, ...) and the normalising exponentials (softmax, logsumexp).

Every reduction takes NumPy's ``axis=`` (int, tuple or None) and ``keepdims=``; PyTorch's
``dim=``/``keepdim=`` are accepted too. Backward re-inserts the reduced axes and broadcasts.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from rosenblatt.backend import get_array_module
from rosenblatt.core import Function, Tensor, broadcast_to, constant
from rosenblatt.kernels import activation as _act
from rosenblatt.ops._util import axis_args, normalize_axes, normalize_axis, raw


def _keepdims_shape(shape: tuple[int, ...], axes: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


def _expand_back(gy: Tensor, in_shape: tuple[int, ...], axes: tuple[int, ...], keepdims: bool) -> Tensor:
    """Undo a reduction's shape change: reshape to keepdims form, then broadcast to the input."""
    if not keepdims:
        gy = reshape(gy, _keepdims_shape(in_shape, axes))
    return broadcast_to(gy, in_shape)


def _expand_back_array(gy: Any, in_shape: tuple[int, ...], axes: tuple[int, ...], keepdims: bool) -> Any:
    """:func:`_expand_back` on an array: a read-only broadcast view (the engine copies what it keeps)."""
    if not keepdims:
        gy = gy.reshape(_keepdims_shape(in_shape, axes))
    return get_array_module(gy).broadcast_to(gy, in_shape)


class Sum(Function):
    @staticmethod
    def forward(ctx, x, axes, keepdims):
        ctx.in_shape = x.shape
        return x.sum(axis=axes, keepdims=keepdims)

    @staticmethod
    def backward(ctx, gy):
        _, axes, keepdims = ctx.inputs
        return _expand_back(gy, ctx.in_shape, axes, keepdims), None, None

    @staticmethod
    def backward_arrays(ctx, gy):
        _, axes, keepdims = ctx.inputs
        return _expand_back_array(gy, ctx.in_shape, axes, keepdims), None, None


class Mean(Function):
    @staticmethod
    def forward(ctx, x, axes, keepdims):
        ctx.in_shape = x.shape
        return x.mean(axis=axes, keepdims=keepdims)

    @staticmethod
    def backward(ctx, gy):
        _, axes, keepdims = ctx.inputs
        count = math.prod(ctx.in_shape[a] for a in axes)
        return _expand_back(gy / count, ctx.in_shape, axes, keepdims), None, None

    @staticmethod
    def backward_arrays(ctx, gy):
        _, axes, keepdims = ctx.inputs
        count = math.prod(ctx.in_shape[a] for a in axes)
        return _expand_back_array(gy / count, ctx.in_shape, axes, keepdims), None, None


class _Extremum(Function):
    """max/min over axes; ties share the gradient evenly (``torch.amax``/``amin`` semantics)."""

    @staticmethod
    def reduce(x, axes, keepdims):
        raise NotImplementedError

    @classmethod
    def forward(cls, ctx, x, axes, keepdims):
        if x.size == 0:
            raise ValueError(f"{cls.__name__.lower()}: cannot reduce an empty tensor")
        return cls.reduce(x, axes, keepdims)

    @staticmethod
    def backward(ctx, gy):
        x, axes, keepdims = ctx.inputs
        y = ctx.output().data
        y_keep = y if keepdims else y.reshape(_keepdims_shape(x.shape, axes))
        mask = (x.data == y_keep).astype(x.dtype)
        mask /= mask.sum(axis=axes, keepdims=True)
        return _expand_back(gy, x.shape, axes, keepdims) * constant(mask), None, None


class Max(_Extremum):
    @staticmethod
    def reduce(x, axes, keepdims):
        return x.max(axis=axes, keepdims=keepdims)


class Min(_Extremum):
    @staticmethod
    def reduce(x, axes, keepdims):
        return x.min(axis=axes, keepdims=keepdims)


class Prod(Function):
    # The zero-safe gradient is computed on arrays only (no differentiable ``backward``): the
    # product is differentiable once.

    @staticmethod
    def forward(ctx, x, axes, keepdims):
        return x.prod(axis=axes, keepdims=keepdims)

    @staticmethod
    def backward_arrays(ctx, gy):
        x, axes, keepdims = ctx.inputs
        xd = x.data
        xp = get_array_module(xd)
        # Product of all *other* elements, safe when x contains zeros: move the reduced axes to the
        # end, flatten them, and multiply exclusive cumulative products from both sides.
        keep = [i for i in range(xd.ndim) if i not in axes]
        moved = xp.transpose(xd, keep + list(axes))
        flat = moved.reshape(moved.shape[: len(keep)] + (-1,))
        ones = xp.ones(flat.shape[:-1] + (1,), dtype=xd.dtype)
        left = xp.cumprod(xp.concatenate([ones, flat[..., :-1]], axis=-1), axis=-1)
        right = xp.flip(xp.cumprod(xp.concatenate([ones, xp.flip(flat, -1)[..., :-1]], axis=-1), axis=-1), -1)
        others = (left * right).reshape(moved.shape)
        others = xp.transpose(others, np.argsort(keep + list(axes)))
        if not keepdims:
            gy = gy.reshape(_keepdims_shape(xd.shape, axes))
        return gy * others, None, None


class Cumsum(Function):
    @staticmethod
    def forward(ctx, x, axis):
        return get_array_module(x).cumsum(x, axis=axis)

    @staticmethod
    def backward(ctx, gy):
        axis = ctx.inputs[1]
        return flip(cumsum(flip(gy, axis), axis), axis), None


class LogSumExp(Function):
    @staticmethod
    def forward(ctx, x, axes, keepdims):
        xp = get_array_module(x)
        m = x.max(axis=axes, keepdims=True)
        m = xp.where(xp.isfinite(m), m, 0)
        y = xp.log(xp.exp(x - m).sum(axis=axes, keepdims=True)) + m
        return y if keepdims else y.reshape([n for i, n in enumerate(x.shape) if i not in axes])

    @staticmethod
    def backward(ctx, gy):
        x, axes, keepdims = ctx.inputs
        y = ctx.output()
        y_keep = y if keepdims else reshape(y, _keepdims_shape(x.shape, axes))
        return _expand_back(gy, x.shape, axes, keepdims) * exp(x - y_keep), None, None


class Softmax(Function):
    @staticmethod
    def forward(ctx, x, axis):
        return _act.softmax(x, axis)

    @staticmethod
    def backward(ctx, gy):
        axis = ctx.inputs[1]
        y = ctx.output()
        gx = y * gy
        return gx - y * sum(gx, axis, keepdims=True), None

    @staticmethod
    def backward_arrays(ctx, gy):
        return _act.softmax_grad(gy, ctx.output().data, ctx.inputs[1]), None


class LogSoftmax(Function):
    @staticmethod
    def forward(ctx, x, axis):
        return _act.softmax(x, axis, log=True)

    @staticmethod
    def backward(ctx, gy):
        axis = ctx.inputs[1]
        y = ctx.output()
        return gy - exp(y) * sum(gy, axis, keepdims=True), None

    @staticmethod
    def backward_arrays(ctx, gy):
        return _act.softmax_grad(gy, ctx.output().data, ctx.inputs[1], log=True), None


class Norm2(Function):
    @staticmethod
    def forward(ctx, x, axes, keepdims):
        xp = get_array_module(x)
        return xp.sqrt((x * x).sum(axis=axes, keepdims=keepdims))

    @staticmethod
    def backward(ctx, gy):
        x, axes, keepdims = ctx.inputs
        y = ctx.output()
        y_keep = y if keepdims else reshape(y, _keepdims_shape(x.shape, axes))
        # d||x||/dx = x / ||x||, taken as 0 where the norm is 0 (PyTorch's subgradient)
        zero = constant(y_keep.data == 0)
        safe = where(zero, 1.0, y_keep)
        return _expand_back(gy, x.shape, axes, keepdims) * where(zero, 0.0, x / safe), None, None


# -- public functions -------------------------------------------------------------------------


def _reduce(fn_class, op_name, x, axis, keepdims, kw):
    if not isinstance(x, Tensor):
        x = Tensor(x)
    axis, keepdims = axis_args(op_name, axis, keepdims, kw)
    axes = normalize_axes(op_name, axis, x.ndim)
    return fn_class.apply(x, axes, keepdims)


def sum(x: Tensor, axis: Any = None, keepdims: bool = False, **kw: Any) -> Tensor:  # noqa: A001
    """Sum over ``axis`` (all axes when None)."""
    return _reduce(Sum, "sum", x, axis, keepdims, kw)


def mean(x: Tensor, axis: Any = None, keepdims: bool = False, **kw: Any) -> Tensor:
    """Arithmetic mean over ``axis``."""
    if isinstance(x, Tensor) and x.dtype.kind not in "fc":
        raise TypeError(f"mean: expected a floating tensor, got dtype {x.dtype}")
    return _reduce(Mean, "mean", x, axis, keepdims, kw)


class ValuesIndices(NamedTuple):
    """``(values, indices)`` returned by ``max``/``min`` with a dimension, ``sort`` and ``topk``
    (PyTorch's ``torch.return_types``): unpack it (``_, pred = out.max(1)``) or use the names."""

    values: Tensor
    indices: Tensor


def amax(x: Tensor, axis: Any = None, keepdims: bool = False, **kw: Any) -> Tensor:
    """Largest value over ``axis`` (an int, a tuple or None for all); values only, as
    ``torch.amax``/``numpy.max``. Tied maxima share the gradient evenly."""
    return _reduce(Max, "amax", x, axis, keepdims, kw)


def amin(x: Tensor, axis: Any = None, keepdims: bool = False, **kw: Any) -> Tensor:
    """Smallest value over ``axis`` (values only, as ``torch.amin``); ties share the gradient."""
    return _reduce(Min, "amin", x, axis, keepdims, kw)


def _extremum(name: str, x: Any, axis: Any, keepdims: bool, kw: dict[str, Any]) -> Any:
    if not isinstance(x, Tensor):
        x = Tensor(x)
    if isinstance(axis, Tensor):  # torch.max(a, b): the element-wise maximum
        if kw or keepdims:
            raise TypeError(f"{name}(input, other) takes no further arguments, got {sorted(kw) or ['keepdims']}")
        return maximum(x, axis) if name == "max" else minimum(x, axis)
    axis, keepdims = axis_args(name, axis, keepdims, kw)
    if axis is None:
        return _reduce(Max if name == "max" else Min, name, x, None, keepdims, {})
    if isinstance(axis, tuple) or isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"{name}: dim must be one int (the result then holds values and indices), got {axis!r}; "
                        f"use rosenblatt.a{name}(x, axis=...) to reduce several dimensions to values only")
    axis = normalize_axis(name, int(axis), x.ndim)
    if x.size == 0:
        raise ValueError(f"{name}: cannot reduce an empty tensor")
    indices = _arg_reduce("argmax" if name == "max" else "argmin", x, axis, True, {})
    # Values are gathered at the chosen index, so (as in PyTorch) the gradient goes to that element
    # only, where amax/amin share it between ties.
    values = take_along_axis(x, indices, axis)
    if not keepdims:
        values, indices = squeeze(values, axis), squeeze(indices, axis)
    return ValuesIndices(values, indices)


def max(x: Tensor, axis: Any = None, keepdims: bool = False, **kw: Any) -> Any:  # noqa: A001
    """PyTorch's ``max``.

    * ``max(x)``: the largest element, a 0-d tensor.
    * ``max(x, dim, keepdim=False)`` (``dim`` also as ``axis=``): a named tuple ``(values, indices)``,
      so ``_, pred = logits.max(1)`` gives class indices. Among equal maxima the first index is
      returned (as PyTorch on the CPU, and NumPy's ``argmax``), and the gradient of ``values``
      flows to that element only.
    * ``max(x, other)`` with a tensor ``other``: the element-wise :func:`maximum`.

    For values only over one or several axes use :func:`amax`.
    """
    return _extremum("max", x, axis, keepdims, kw)


def min(x: Tensor, axis: Any = None, keepdims: bool = False, **kw: Any) -> Any:  # noqa: A001
    """PyTorch's ``min``: the smallest element, or ``(values, indices)`` along ``dim`` (the first
    index among ties), or the element-wise :func:`minimum` of two tensors; see :func:`max`."""
    return _extremum("min", x, axis, keepdims, kw)


def prod(x: Tensor, axis: Any = None, keepdims: bool = False, **kw: Any) -> Tensor:
    """Product over ``axis``; the gradient is exact also where elements are zero."""
    return _reduce(Prod, "prod", x, axis, keepdims, kw)


def logsumexp(x: Tensor, axis: Any = None, keepdims: bool = False, **kw: Any) -> Tensor:
    """``log(sum(exp(x)))`` over ``axis``, computed without overflow."""
    return _reduce(LogSumExp, "logsumexp", x, axis, keepdims, kw)


def var(x: Tensor, axis: Any = None, keepdims: bool = False, correction: int | None = None,
        **kw: Any) -> Tensor:
    """Variance over ``axis``.

    As in PyTorch, the default is the unbiased estimate (``correction=1``, divide by ``n - 1``);
    ``correction=0`` (or NumPy's ``ddof=0``, or ``unbiased=False``) gives the population variance.
    """
    if "ddof" in kw:
        correction = kw.pop("ddof")
    if "unbiased" in kw:
        correction = 1 if kw.pop("unbiased") else 0
    correction = 1 if correction is None else correction
    axis, keepdims = axis_args("var", axis, keepdims, kw)
    axes = normalize_axes("var", axis, x.ndim)
    n = math.prod(x.shape[a] for a in axes)
    centered = x - mean(x, axes, keepdims=True)
    return sum(centered * centered, axes, keepdims) / float(np.maximum(n - correction, 0) or np.nan)


def std(x: Tensor, axis: Any = None, keepdims: bool = False, correction: int | None = None,
        **kw: Any) -> Tensor:
    """Standard deviation over ``axis`` (unbiased by default, like PyTorch; see :func:`var`)."""
    return sqrt(var(x, axis, keepdims, correction, **kw))


def _arg_reduce(name, x, axis, keepdims, kw):
    axis, keepdims = axis_args(name, axis, keepdims, kw)
    data = raw(x)
    if axis is not None:
        axis = normalize_axis(name, axis, data.ndim)
    if data.size == 0:
        raise ValueError(f"{name}: cannot reduce an empty tensor")
    xp = get_array_module(data)
    fn = xp.argmax if name == "argmax" else xp.argmin
    result = fn(data, axis=axis, keepdims=keepdims) if axis is not None else fn(data)
    if axis is None and keepdims:
        result = xp.asarray(result).reshape((1,) * data.ndim)
    return constant(xp.asarray(result).astype(np.int64))


def argmax(x: Tensor, axis: int | None = None, keepdims: bool = False, **kw: Any) -> Tensor:
    """Index of the largest value (over the flattened tensor when ``axis`` is None)."""
    return _arg_reduce("argmax", x, axis, keepdims, kw)


def argmin(x: Tensor, axis: int | None = None, keepdims: bool = False, **kw: Any) -> Tensor:
    """Index of the smallest value (over the flattened tensor when ``axis`` is None)."""
    return _arg_reduce("argmin", x, axis, keepdims, kw)


def cumsum(x: Tensor, axis: int = 0, **kw: Any) -> Tensor:
    """Cumulative sum along ``axis``."""
    axis, _ = axis_args("cumsum", axis, False, kw)
    return Cumsum.apply(x, normalize_axis("cumsum", axis, x.ndim))


def softmax(x: Tensor, axis: int = -1, **kw: Any) -> Tensor:
    """``exp(x) / sum(exp(x))`` along ``axis`` (stable: the max is subtracted first)."""
    axis, _ = axis_args("softmax", axis, False, kw)
    return Softmax.apply(x, normalize_axis("softmax", axis, x.ndim))


def log_softmax(x: Tensor, axis: int = -1, **kw: Any) -> Tensor:
    """``x - logsumexp(x)`` along ``axis``: log-probabilities without overflow or log(0)."""
    axis, _ = axis_args("log_softmax", axis, False, kw)
    return LogSoftmax.apply(x, normalize_axis("log_softmax", axis, x.ndim))


def norm(x: Tensor, ord: Any = None, axis: Any = None, keepdims: bool = False, **kw: Any) -> Tensor:  # noqa: A002
    """Vector norm over ``axis`` (all elements when None): ``ord`` = 2 (default), 1, inf, -inf or p."""
    if "p" in kw:
        ord = kw.pop("p")  # noqa: A001
    axis, keepdims = axis_args("norm", axis, keepdims, kw)
    axes = normalize_axes("norm", axis, x.ndim)
    if ord is None or ord == 2 or ord == "fro":
        return Norm2.apply(x, axes, keepdims)
    if ord == 1:
        return sum(abs(x), axes, keepdims)
    if ord == float("inf"):
        return amax(abs(x), axes, keepdims)
    if ord == float("-inf"):
        return amin(abs(x), axes, keepdims)
    if isinstance(ord, (int, float)) and ord > 0:
        return sum(abs(x) ** ord, axes, keepdims) ** (1.0 / ord)
    raise ValueError(f"norm: unsupported ord {ord!r} (use 1, 2, inf, -inf, 'fro' or a positive number)")


def all(x: Any, axis: Any = None, keepdims: bool = False, **kw: Any) -> Tensor:  # noqa: A001
    """True where every element along ``axis`` is true."""
    axis, keepdims = axis_args("all", axis, keepdims, kw)
    data = raw(x)
    return constant(get_array_module(data).asarray(data.all(axis=axis, keepdims=keepdims)))


def any(x: Any, axis: Any = None, keepdims: bool = False, **kw: Any) -> Tensor:  # noqa: A001
    """True where some element along ``axis`` is true."""
    axis, keepdims = axis_args("any", axis, keepdims, kw)
    data = raw(x)
    return constant(get_array_module(data).asarray(data.any(axis=axis, keepdims=keepdims)))


from rosenblatt.ops.arithmetic import maximum, minimum, where  # noqa: E402
from rosenblatt.ops.elementwise import abs, exp, sqrt  # noqa: E402, A004
from rosenblatt.ops.shape import flip, reshape, squeeze, take_along_axis  # noqa: E402
