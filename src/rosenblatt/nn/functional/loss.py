"""Loss functions with PyTorch's formulas, argument names and ``reduction`` modes.

``cross_entropy`` is one fused node: log-softmax, the pick of the target class (or the dot product
with a target distribution), class weights, ``ignore_index`` and label smoothing in one forward,
and the closed-form gradient ``(sum(q) * softmax(z) - q) / denominator`` in backward, where ``q`` is
the weighted (smoothed) target distribution of each sample. ``binary_cross_entropy_with_logits``
is fused the same way and never forms ``log(sigmoid(x))``. The readable versions from primitives
(``cross_entropy_composite``, ``binary_cross_entropy_with_logits_composite``) are the test oracles
and provide second derivatives under ``create_graph=True``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rosenblatt.backend import get_array_module
from rosenblatt.core import Function, Tensor, constant
from rosenblatt.nn.functional._fused import composite_backward
from rosenblatt.ops import (
    abs,
    clip,
    exp,
    log,
    log1p,
    log_softmax,
    maximum,
    mean,
    reshape,
    sum,
    take_along_axis,
    where,
)
from rosenblatt.ops._util import raw

_REDUCTIONS = ("mean", "sum", "none")


# -- argument checking -----------------------------------------------------------------------


def _as_input(name: str, x: Any) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: expected the input to be a Tensor, got {type(x).__name__}")
    if x.dtype.kind != "f":
        raise TypeError(f"{name}: expected a floating input, got dtype {x.dtype}")
    return x


def _as_target(name: str, target: Any, like: Tensor) -> Tensor:
    if not isinstance(target, Tensor):
        # A NumPy (or list) target goes where the input is, so the loss also runs on the GPU.
        target = Tensor(np.asarray(target) if not hasattr(target, "dtype") else target, device=like.device)
    if target.dtype.kind in "fc" and target.dtype != like.dtype:
        target = target.astype(like.dtype)
    return target


def _check_reduction(name: str, reduction: str, allowed: tuple[str, ...] = _REDUCTIONS) -> None:
    if reduction not in allowed:
        raise ValueError(f"{name}: reduction must be one of {allowed}, got {reduction!r}")


def _check_same_shape(name: str, x: Tensor, target: Tensor) -> None:
    if x.shape != target.shape:
        raise ValueError(
            f"{name}: input and target must have the same shape, got input {x.shape} and target {target.shape}"
        )


def _check_no_nan(name: str, target: Tensor) -> None:
    if target.dtype.kind == "f" and bool(get_array_module(target.data).isnan(target.data).any()):
        raise ValueError(f"{name}: target contains NaN")


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return mean(loss)
    if reduction == "sum":
        return sum(loss)
    return loss


# -- regression losses -----------------------------------------------------------------------


def mse_loss(input: Tensor, target: Any, reduction: str = "mean") -> Tensor:  # noqa: A002
    """Mean squared error ``(input - target)^2``.

    Shape:
        input and target: the same shape ``(*)``; output: scalar, or ``(*)`` with ``reduction="none"``.
    """
    input = _as_input("mse_loss", input)  # noqa: A001
    target = _as_target("mse_loss", target, input)
    _check_same_shape("mse_loss", input, target)
    _check_reduction("mse_loss", reduction)
    diff = input - target
    return _reduce(diff * diff, reduction)


def l1_loss(input: Tensor, target: Any, reduction: str = "mean") -> Tensor:  # noqa: A002
    """Mean absolute error ``|input - target|``.

    Shape:
        input and target: the same shape ``(*)``; output: scalar, or ``(*)`` with ``reduction="none"``.
    """
    input = _as_input("l1_loss", input)  # noqa: A001
    target = _as_target("l1_loss", target, input)
    _check_same_shape("l1_loss", input, target)
    _check_reduction("l1_loss", reduction)
    return _reduce(abs(input - target), reduction)


def huber_loss(input: Tensor, target: Any, reduction: str = "mean", delta: float = 1.0) -> Tensor:  # noqa: A002
    """Huber loss: ``0.5 d^2`` where ``|d| < delta``, else ``delta * (|d| - 0.5 delta)``.

    Shape:
        input and target: the same shape ``(*)``; output: scalar, or ``(*)`` with ``reduction="none"``.
    """
    input = _as_input("huber_loss", input)  # noqa: A001
    target = _as_target("huber_loss", target, input)
    _check_same_shape("huber_loss", input, target)
    _check_reduction("huber_loss", reduction)
    if delta <= 0:
        raise ValueError(f"huber_loss: delta must be positive, got {delta}")
    d = input - target
    a = abs(d)
    small = constant(a.data < delta)
    loss = where(small, 0.5 * d * d, delta * (a - 0.5 * delta))
    return _reduce(loss, reduction)


def smooth_l1_loss(input: Tensor, target: Any, reduction: str = "mean", beta: float = 1.0) -> Tensor:  # noqa: A002
    """Smooth L1: ``0.5 d^2 / beta`` where ``|d| < beta``, else ``|d| - 0.5 beta`` (L1 when beta=0).

    Shape:
        input and target: the same shape ``(*)``; output: scalar, or ``(*)`` with ``reduction="none"``.
    """
    input = _as_input("smooth_l1_loss", input)  # noqa: A001
    target = _as_target("smooth_l1_loss", target, input)
    _check_same_shape("smooth_l1_loss", input, target)
    _check_reduction("smooth_l1_loss", reduction)
    if beta < 0:
        raise ValueError(f"smooth_l1_loss: beta must be non-negative, got {beta}")
    d = input - target
    a = abs(d)
    if beta == 0:
        return _reduce(a, reduction)
    small = constant(a.data < beta)
    loss = where(small, (0.5 / beta) * d * d, a - 0.5 * beta)
    return _reduce(loss, reduction)


# -- binary classification -------------------------------------------------------------------


_BCE_EPSILON = 1e-12  # PyTorch's floor of p (1 - p) in the gradient of binary_cross_entropy


class BCEFn(Function):
    """Element-wise ``-w [t max(log p, -100) + (1 - t) max(log1p(-p), -100)]`` (unreduced), as PyTorch.

    The gradient is PyTorch's: ``w (p - t) / max(p (1 - p), 1e-12)`` for ``p`` (finite at exactly
    0 or 1, and zero there when the prediction is right, where the chain rule through the clamped
    logs gives ``0 * inf = NaN``) and ``-w logit(p)`` for ``t``.
    """

    @staticmethod
    def forward(ctx, p, t, weight):
        xp = get_array_module(p)
        with np.errstate(divide="ignore"):
            loss = -(t * xp.maximum(xp.log(p), -100.0) + (1.0 - t) * xp.maximum(xp.log1p(-p), -100.0))
        if weight is not None:
            loss = loss * weight
        return loss.astype(p.dtype, copy=False)

    @staticmethod
    def backward(ctx, gy):
        p, t, weight = ctx.inputs
        g = gy if weight is None else gy * constant(weight)
        gp = g * (p - t) / maximum((1.0 - p) * p, _BCE_EPSILON) if ctx.needs_input_grad[0] else None
        gt = g * (log1p(-p) - log(p)) if ctx.needs_input_grad[1] else None
        return gp, gt, None

    @staticmethod
    def backward_arrays(ctx, g):
        p, t, weight = ctx.inputs
        pd, td = p.data, t.data
        xp = get_array_module(pd)
        if weight is not None:
            g = g * weight
        gp = gt = None
        if ctx.needs_input_grad[0]:
            gp = (g * (pd - td) / xp.maximum((1.0 - pd) * pd, _BCE_EPSILON)).astype(pd.dtype, copy=False)
        if ctx.needs_input_grad[1]:
            with np.errstate(divide="ignore"):
                gt = (g * (xp.log1p(-pd) - xp.log(pd))).astype(pd.dtype, copy=False)
        return gp, gt, None


def _bce_args(name: str, input: Tensor, target: Any, weight: Any, reduction: str):  # noqa: A002
    input = _as_input(name, input)  # noqa: A001
    target = _as_target(name, target, input)
    _check_same_shape(name, input, target)
    _check_reduction(name, reduction)
    _check_no_nan(name, target)
    xd, td = input.data, target.data
    xp = get_array_module(xd)
    if xd.size and (bool(xp.any(xd < 0)) or bool(xp.any(xd > 1)) or bool(xp.isnan(xd).any())):
        raise ValueError(f"{name}: all elements of input should be between 0 and 1 "
                         "(apply sigmoid, or use binary_cross_entropy_with_logits on raw scores)")
    if td.size and (bool(xp.any(td < 0)) or bool(xp.any(td > 1))):
        raise ValueError(f"{name}: all elements of target should be between 0 and 1, got values from "
                         f"{float(td.min())} to {float(td.max())}")
    w = None if weight is None else xp.asarray(raw(weight), dtype=xd.dtype)
    if w is not None:
        try:
            if np.broadcast_shapes(w.shape, xd.shape) != xd.shape:
                raise ValueError
        except ValueError:
            raise ValueError(f"{name}: weight of shape {w.shape} cannot broadcast to input shape {xd.shape}") from None
    return input, target, w


def binary_cross_entropy(input: Tensor, target: Any, weight: Any = None, reduction: str = "mean") -> Tensor:  # noqa: A002
    """``-w [t log p + (1 - t) log(1 - p)]`` for probabilities ``p`` (logs clamped at -100, as PyTorch).

    The gradient is PyTorch's, finite at ``p`` exactly 0 or 1 (zero there when the prediction is
    right). Targets must lie in [0, 1]. Prefer :func:`binary_cross_entropy_with_logits` on raw
    scores: it is exact for large scores.

    Shape:
        input and target: the same shape ``(*)``; weight broadcasts to it; output: scalar or ``(*)``.
    """
    input, target, w = _bce_args("binary_cross_entropy", input, target, weight, reduction)  # noqa: A001
    return _reduce(BCEFn.apply(input, target, w), reduction)


def binary_cross_entropy_composite(input: Tensor, target: Any, weight: Any = None,  # noqa: A002
                                   reduction: str = "mean") -> Tensor:
    """The same loss from primitives: the oracle of :func:`binary_cross_entropy` (for 0 < p < 1)."""
    input, target, w = _bce_args("binary_cross_entropy", input, target, weight, reduction)  # noqa: A001
    loss = -(target * clip(log(input), -100.0) + (1.0 - target) * clip(log(1.0 - input), -100.0))
    return _reduce(loss if w is None else loss * constant(w), reduction)


def _softplus_neg(xp: Any, x: Any) -> Any:
    """``log(1 + exp(-x))`` without overflow: ``max(-x, 0) + log1p(exp(-|x|))``."""
    return xp.maximum(-x, 0) + xp.log1p(xp.exp(-xp.abs(x)))


class BCEWithLogitsFn(Function):
    """Element-wise ``w [(1 - t) x + (1 + (pw - 1) t) softplus(-x)]`` (unreduced)."""

    @staticmethod
    def forward(ctx, x, t, weight, pos_weight):
        xp = get_array_module(x)
        sp = _softplus_neg(xp, x)
        ctx.sp = sp
        if pos_weight is None:
            loss = (1.0 - t) * x + sp
        else:
            loss = (1.0 - t) * x + (1.0 + (pos_weight - 1.0) * t) * sp
        if weight is not None:
            loss *= weight
        return loss

    @staticmethod
    def backward(ctx, gy):
        x, t, weight, pos_weight = ctx.inputs
        return composite_backward(
            lambda x_, t_, *_: _bce_logits_elementwise(x_, t_, weight, pos_weight),
            ctx.inputs, ctx.needs_input_grad, [gy],
        )

    @staticmethod
    def backward_arrays(ctx, g):
        x, t, weight, pos_weight = ctx.inputs
        xd, td = x.data, t.data
        xp = get_array_module(xd)
        if weight is not None:
            g = g * weight
        gx = gt = None
        if ctx.needs_input_grad[0]:
            sig_neg = 0.5 * (1.0 - xp.tanh(0.5 * xd))  # sigmoid(-x), overflow-free
            log_weight = 1.0 if pos_weight is None else 1.0 + (pos_weight - 1.0) * td
            gx = (g * ((1.0 - td) - log_weight * sig_neg)).astype(xd.dtype, copy=False)
        if ctx.needs_input_grad[1]:
            dt = -xd if pos_weight is None else -xd + (pos_weight - 1.0) * ctx.sp
            gt = (g * dt).astype(xd.dtype, copy=False)
        return gx, gt, None, None


def _bce_logits_elementwise(x: Tensor, t: Tensor, weight: Any, pos_weight: Any) -> Tensor:
    # softplus(-x) = max(-x, 0) + log(1 + exp(-|x|)), from primitives
    sp = maximum(-x, 0.0) + log(1.0 + exp(-abs(x)))
    if pos_weight is None:
        loss = (1.0 - t) * x + sp
    else:
        loss = (1.0 - t) * x + (1.0 + (constant(pos_weight) - 1.0) * t) * sp
    return loss if weight is None else loss * constant(weight)


def _bce_logits_args(name: str, input: Tensor, target: Any, weight: Any, pos_weight: Any, reduction: str):  # noqa: A002
    input = _as_input(name, input)  # noqa: A001
    target = _as_target(name, target, input)
    _check_same_shape(name, input, target)
    _check_reduction(name, reduction)
    _check_no_nan(name, target)
    dtype = input.data.dtype
    xp = get_array_module(input.data)
    w = None if weight is None else xp.asarray(raw(weight), dtype=dtype)
    pw = None if pos_weight is None else xp.asarray(raw(pos_weight), dtype=dtype)
    if pw is not None and pw.ndim and input.ndim and pw.shape[-1] not in (1, input.shape[-1]):
        raise ValueError(f"{name}: pos_weight of shape {pw.shape} does not match the {input.shape[-1]} "
                         f"classes of the last input dimension (input shape {input.shape})")
    for label, arr in (("weight", w), ("pos_weight", pw)):
        if arr is not None:
            try:
                np.broadcast_shapes(arr.shape, input.shape)
            except ValueError:
                raise ValueError(f"{name}: {label} of shape {arr.shape} cannot broadcast to input shape "
                                 f"{input.shape}") from None
    return input, target, w, pw


def binary_cross_entropy_with_logits(
    input: Tensor,  # noqa: A002
    target: Any,
    weight: Any = None,
    reduction: str = "mean",
    pos_weight: Any = None,
) -> Tensor:
    """Binary cross-entropy on raw scores ``x``: ``sigmoid`` and the log-loss fused, exact for any ``x``.

    ``pos_weight`` (one value per class, last dimension) multiplies the loss of positive targets,
    as PyTorch's. ``weight`` and ``pos_weight`` are constants (no gradient).

    Shape:
        input and target: the same shape ``(*)``; output: scalar, or ``(*)`` with ``reduction="none"``.
    """
    input, target, w, pw = _bce_logits_args(  # noqa: A001
        "binary_cross_entropy_with_logits", input, target, weight, pos_weight, reduction)
    loss = BCEWithLogitsFn.apply(input, target, w, pw)
    if loss.shape != input.shape:  # a weight with extra leading axes would broadcast the loss up
        raise ValueError(f"binary_cross_entropy_with_logits: weight changes the loss shape to {loss.shape}")
    return _reduce(loss, reduction)


def binary_cross_entropy_with_logits_composite(
    input: Tensor, target: Any, weight: Any = None, reduction: str = "mean", pos_weight: Any = None,  # noqa: A002
) -> Tensor:
    """The same loss from primitives: the oracle of :func:`binary_cross_entropy_with_logits`."""
    input, target, w, pw = _bce_logits_args(  # noqa: A001
        "binary_cross_entropy_with_logits", input, target, weight, pos_weight, reduction)
    return _reduce(_bce_logits_elementwise(input, target, w, pw), reduction)


# -- multi-class classification --------------------------------------------------------------


def _class_rows(x: Any) -> Any:
    """``(N, C, d1, ...)`` -> ``(N * d1 * ..., C)`` (classes last); ``(N, C)`` unchanged."""
    if x.ndim == 2:
        return x
    xp = get_array_module(x)
    return xp.ascontiguousarray(xp.moveaxis(x, 1, -1)).reshape(-1, x.shape[1])


def _class_layout(rows: Any, shape: tuple[int, ...]) -> Any:
    """Inverse of :func:`_class_rows`."""
    if len(shape) == 2:
        return rows
    xp = get_array_module(rows)
    moved = rows.reshape((shape[0],) + tuple(shape[2:]) + (shape[1],))
    return xp.moveaxis(moved, -1, 1)


def _index_target(name: str, input: Tensor, target: Tensor, ignore_index: int) -> Any:  # noqa: A002
    """Validate class-index targets; return them as an int64 array."""
    return _checked_index_target(name, input, target, ignore_index)[0]


def _checked_index_target(name: str, input: Tensor, target: Tensor, ignore_index: int) -> tuple[Any, bool]:  # noqa: A002
    """:func:`_index_target`, and whether every entry is a class index (none equals ``ignore_index``)."""
    td = target.data
    expected = (input.shape[0],) + tuple(input.shape[2:])
    if td.dtype.kind not in "iu":
        raise TypeError(
            f"{name}: class-index targets must be integers, got dtype {td.dtype} with shape {td.shape} "
            f"(probability targets must have the input's shape {input.shape})"
        )
    if tuple(td.shape) != expected:
        raise ValueError(
            f"{name}: expected class-index target of shape {expected} for input of shape {input.shape}, "
            f"got {tuple(td.shape)}"
        )
    classes = input.shape[1]
    xp = get_array_module(td)
    low, high = (int(td.min()), int(td.max())) if td.size else (0, 0)
    plain = 0 <= low and high < classes and not low <= ignore_index <= high
    if low < 0 or high >= classes:  # in range once the ignored entries are left out?
        valid = td != ignore_index
        if bool(valid.any()):
            picked = td[valid]
            low, high = int(picked.min()), int(picked.max())
            if low < 0 or high >= classes:
                raise IndexError(
                    f"{name}: target class indices must lie in [0, {classes}) for input with {classes} classes "
                    f"(or equal ignore_index={ignore_index}), got values in [{low}, {high}]"
                )
    return xp.asarray(td, dtype=np.int64), plain


def _class_weight(name: str, weight: Any, classes: int, dtype: Any, xp: Any) -> Any:
    if weight is None:
        return None
    w = xp.asarray(raw(weight), dtype=dtype)
    if w.shape != (classes,):
        raise ValueError(f"{name}: weight must have shape ({classes},), one value per class, got {w.shape}")
    return w


class CrossEntropyFn(Function):
    """Softmax cross-entropy over classes in one node (see the module docstring)."""

    @staticmethod
    def forward(ctx, logits, target, weight, ignore_index, smoothing, reduction, plain=False):
        xp = get_array_module(logits)
        shape = logits.shape
        z = _class_rows(logits)
        rows, classes = z.shape
        logp = z - z.max(axis=1, keepdims=True)
        logp -= xp.log(xp.exp(logp).sum(axis=1, keepdims=True))
        ctx.logp = logp
        if target.dtype.kind == "f":  # a target distribution per row
            q = _class_rows(target)
            if smoothing:
                q = q * (1.0 - smoothing) + smoothing / classes
            if weight is not None:
                q = q * weight
            ctx.q = q
            loss = -(q * logp).sum(axis=1)
            denominator = rows
        elif plain and weight is None and not smoothing:
            # Class indices, the common case: every target is a class index (none equals
            # ignore_index, as cross_entropy found when it checked them) and every weight is one.
            y = target.reshape(-1)
            loss = -logp[xp.arange(rows), y]
            ctx.y_safe, ctx.valid = y, None
            denominator = rows
        else:  # class indices
            y = target.reshape(-1)
            valid = y != ignore_index
            y_safe = xp.where(valid, y, 0)
            w_y = valid.astype(logp.dtype) if weight is None else weight[y_safe] * valid
            picked = logp[xp.arange(rows), y_safe]
            loss = -(1.0 - smoothing) * w_y * picked
            if smoothing:
                smooth = logp.sum(axis=1) if weight is None else logp @ weight
                loss -= (smoothing / classes) * smooth * valid
            ctx.y_safe, ctx.valid, ctx.w_y = y_safe, valid, w_y
            denominator = w_y.sum()
        ctx.denominator = denominator
        if reduction == "sum":
            return loss.sum()
        if reduction == "mean":
            return loss.sum() / denominator
        return loss.reshape((shape[0],) + tuple(shape[2:]))

    @staticmethod
    def backward(ctx, gy):
        logits, target, weight, ignore_index, smoothing, reduction = ctx.inputs
        return composite_backward(
            lambda z_, t_, *_: cross_entropy_composite(z_, t_, weight, ignore_index, reduction, smoothing),
            ctx.inputs, ctx.needs_input_grad, [gy],
        )

    @staticmethod
    def backward_arrays(ctx, g):
        logits, target, weight, ignore_index, smoothing, reduction = ctx.inputs
        xp = get_array_module(ctx.logp)
        logp = ctx.logp
        rows, classes = logp.shape
        if reduction == "none":
            scale = g.reshape(-1, 1)
        elif reduction == "mean":
            scale = g / ctx.denominator
        else:
            scale = g
        grad_logits = grad_target = None
        if target.dtype.kind == "f":
            q = ctx.q
            if ctx.needs_input_grad[0]:
                grad = xp.exp(logp)
                grad *= q.sum(axis=1, keepdims=True)
                grad -= q
                grad *= scale
                grad_logits = grad
            if ctx.needs_input_grad[1]:
                gt = -(1.0 - smoothing) * logp * scale
                if weight is not None:
                    gt = gt * weight
                grad_target = _class_layout(gt, target.shape).astype(logp.dtype, copy=False)
        elif ctx.needs_input_grad[0] and ctx.valid is None:  # index targets, none ignored, no weights
            grad = xp.exp(logp)
            grad[xp.arange(rows), ctx.y_safe] -= 1.0
            grad *= scale
            grad_logits = grad
        elif ctx.needs_input_grad[0]:
            valid, w_y = ctx.valid, ctx.w_y
            # sum_c q_c per row: (1 - eps) w_y + (eps / C) sum(w), zero on ignored rows
            q_sum = (1.0 - smoothing) * w_y
            if smoothing:
                q_sum = q_sum + (smoothing / classes) * (classes if weight is None else weight.sum()) * valid
            grad = xp.exp(logp)
            grad *= q_sum[:, None]
            grad[xp.arange(rows), ctx.y_safe] -= (1.0 - smoothing) * w_y
            if smoothing:
                grad -= (smoothing / classes) * (valid[:, None] if weight is None else valid[:, None] * weight)
            grad *= scale
            grad[~valid] = 0.0  # PyTorch's zeros for ignored samples, also where scale is 1 / 0 (all ignored)
            grad_logits = grad
        if grad_logits is not None:
            grad_logits = _class_layout(grad_logits.astype(logp.dtype, copy=False), logits.shape)
        return grad_logits, grad_target, None, None, None, None


def _cross_entropy_args(name: str, input: Tensor, target: Any, weight: Any, ignore_index: int,  # noqa: A002
                        reduction: str, label_smoothing: float):
    input = _as_input(name, input)  # noqa: A001
    _check_reduction(name, reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"{name}: label_smoothing must be in [0, 1], got {label_smoothing}")
    if input.ndim == 0:
        raise ValueError(f"{name}: expected input of shape (N, C) or (N, C, d1, ...), got a 0-d tensor")
    target = _as_target(name, target, input)
    unbatched = input.ndim == 1
    if unbatched:  # (C,) with a scalar target (or a (C,) distribution)
        input = reshape(input, (1, -1))  # noqa: A001
        target = reshape(target, (1,) + tuple(target.shape))
    plain = False
    if target.dtype.kind == "f" and target.shape == input.shape:
        _check_no_nan(name, target)
    else:
        plain = _checked_index_target(name, input, target, ignore_index)[1]
    w = _class_weight(name, weight, input.shape[1], input.data.dtype, get_array_module(input.data))
    return input, target, w, unbatched, plain


def cross_entropy(
    input: Tensor,  # noqa: A002
    target: Any,
    weight: Any = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    """Softmax cross-entropy between raw scores and targets (PyTorch's ``cross_entropy``).

    ``target`` holds class indices ("sparse categorical": integers, shape ``(N,)`` or
    ``(N, d1, ...)``) or class probabilities / one-hot rows ("categorical": floats with the input's
    shape). ``weight`` gives each class a weight (a constant); ``ignore_index`` marks index targets
    that contribute nothing; ``label_smoothing`` mixes the target with the uniform distribution.
    With ``reduction="mean"`` index targets are averaged over the summed weights of the counted
    samples, probability targets over the number of samples, exactly as PyTorch.

    Shape:
        input: ``(C,)``, ``(N, C)`` or ``(N, C, d1, ...)``; target: ``()``, ``(N,)``, ``(N, d1, ...)``
        of integers, or the input's shape of floats; output: scalar, or ``(N, d1, ...)`` with
        ``reduction="none"``.
    """
    input, target, w, unbatched, plain = _cross_entropy_args(  # noqa: A001
        "cross_entropy", input, target, weight, ignore_index, reduction, label_smoothing)
    loss = CrossEntropyFn.apply(input, target, w, int(ignore_index), float(label_smoothing), reduction,
                                plain=plain)
    return reshape(loss, ()) if unbatched and reduction == "none" else loss


def cross_entropy_composite(
    input: Tensor,  # noqa: A002
    target: Any,
    weight: Any = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    """:func:`cross_entropy` from primitives (``log_softmax`` + ``nll_loss``, PyTorch's own recipe)."""
    input, target, w, unbatched, _ = _cross_entropy_args(  # noqa: A001
        "cross_entropy", input, target, weight, ignore_index, reduction, label_smoothing)
    classes = input.shape[1]
    logp = log_softmax(input, axis=1)
    w_shape = (1, classes) + (1,) * (input.ndim - 2)
    w_t = None if w is None else constant(w.reshape(w_shape))
    eps = float(label_smoothing)
    if target.dtype.kind == "f":
        t = target * (1.0 - eps) + eps / classes if eps else target
        if w_t is not None:
            t = t * w_t
        loss = -sum(logp * t, axis=1)
        if reduction == "mean":
            return sum(loss) / float(input.data.size // classes)
        return _reduce(loss, reduction)
    nll = nll_loss(logp, target, w, ignore_index, reduction)
    if eps:
        smooth = -sum(logp if w_t is None else logp * w_t, axis=1)
        valid = constant(target.data != ignore_index)
        smooth = where(valid, smooth, 0.0)
        if reduction == "mean":
            y = target.data
            w_y = valid.data.astype(logp.dtype) if w is None else w[np.where(valid.data, y, 0)] * valid.data
            smooth = sum(smooth) / float(w_y.sum())
        else:
            smooth = _reduce(smooth, reduction)
        loss = (1.0 - eps) * nll + smooth * (eps / classes)
    else:
        loss = nll
    return reshape(loss, ()) if unbatched and reduction == "none" else loss


def nll_loss(
    input: Tensor,  # noqa: A002
    target: Any,
    weight: Any = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> Tensor:
    """Negative log-likelihood of class indices under log-probabilities ``input``.

    ``-weight[y] * input[n, y]``; ``reduction="mean"`` divides by the summed weights of the
    non-ignored targets (PyTorch's rule).

    Shape:
        input: ``(C,)``, ``(N, C)`` or ``(N, C, d1, ...)``; target: ``()``, ``(N,)`` or ``(N, d1, ...)``
        integers; output: scalar, or ``(N, d1, ...)`` with ``reduction="none"``.
    """
    name = "nll_loss"
    input = _as_input(name, input)  # noqa: A001
    _check_reduction(name, reduction)
    target = _as_target(name, target, input)
    unbatched = input.ndim == 1
    if unbatched:
        input = reshape(input, (1, -1))  # noqa: A001
        target = reshape(target, (1,))
    y = _index_target(name, input, target, ignore_index)
    xp = get_array_module(y)
    w = _class_weight(name, weight, input.shape[1], input.data.dtype, xp)
    valid = y != ignore_index
    y_safe = xp.where(valid, y, 0)
    picked = take_along_axis(input, xp.expand_dims(y_safe, 1), axis=1)
    picked = reshape(picked, y.shape)
    w_y = valid.astype(input.data.dtype) if w is None else w[y_safe] * valid
    loss = -picked * constant(w_y)
    if reduction == "mean":
        loss = sum(loss) / float(w_y.sum())
    else:
        loss = _reduce(loss, reduction)
    return reshape(loss, ()) if unbatched and reduction == "none" else loss


def kl_div(input: Tensor, target: Any, reduction: str = "mean", log_target: bool = False) -> Tensor:  # noqa: A002
    """Kullback-Leibler divergence ``sum t (log t - input)`` with ``input`` given as log-probabilities.

    With ``log_target=True`` the target is given as log-probabilities too. ``reduction="batchmean"``
    divides the sum by the batch size (the true KL divergence per sample); ``"mean"`` averages over
    all elements, as PyTorch.

    Shape:
        input and target: the same shape ``(N, *)``; output: scalar, or ``(N, *)`` with ``"none"``.
    """
    name = "kl_div"
    input = _as_input(name, input)  # noqa: A001
    target = _as_target(name, target, input)
    _check_same_shape(name, input, target)
    _check_reduction(name, reduction, _REDUCTIONS + ("batchmean",))
    if log_target:
        loss = exp(target) * (target - input)
    else:
        positive = constant(target.data > 0)
        # t log t is taken as 0 at t = 0 (its limit), as PyTorch's xlogy
        t_log_t = where(positive, target * log(where(positive, target, 1.0)), 0.0)
        loss = t_log_t - target * input
    if reduction == "batchmean":
        return sum(loss) / float(input.shape[0] if input.ndim else 1)
    return _reduce(loss, reduction)


__all__ = [
    "binary_cross_entropy", "binary_cross_entropy_with_logits", "binary_cross_entropy_with_logits_composite",
    "cross_entropy", "cross_entropy_composite", "huber_loss", "kl_div", "l1_loss", "mse_loss", "nll_loss",
    "smooth_l1_loss",
]
