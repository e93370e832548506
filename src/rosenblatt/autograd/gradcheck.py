"""Finite-difference gradient checks (float64), the ground truth for every op's backward.

``gradcheck`` compares the analytic vector-Jacobian product ``vᵀJ`` for random ``v`` with central
differences of ``<v, f(x)>``, one input element at a time. A wrong gradient fails it with
probability one, and it costs two forward passes per input element instead of a full Jacobian.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from rosenblatt.core import Tensor, grad


class GradcheckError(AssertionError):
    """Raised when analytic and numerical gradients disagree."""


def _as_tuple(x: Any) -> tuple[Any, ...]:
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def _float_outputs(outputs: Any) -> list[Tensor]:
    return [o for o in _as_tuple(outputs) if isinstance(o, Tensor) and o.dtype.kind == "f"]


def _check_inputs(inputs: Sequence[Any], name: str) -> list[Tensor]:
    checked = [x for x in inputs if isinstance(x, Tensor) and x.requires_grad]
    if not checked:
        raise ValueError(f"{name}: no input requires grad")
    for x in checked:
        if x.dtype != np.float64:
            raise ValueError(f"{name}: inputs must be float64 for finite differences, got {x.dtype}")
    return checked


def gradcheck(
    fn: Callable[..., Any],
    inputs: Any,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    n_projections: int = 2,
    seed: int = 0,
    raise_exception: bool = True,
) -> bool:
    """Check the gradients of ``fn`` at ``inputs`` against central finite differences.

    ``inputs`` is a tensor or a tuple of them; those with ``requires_grad=True`` (float64) are
    checked. Returns True, or raises :class:`GradcheckError` naming the input and the largest error.
    """
    inputs = _as_tuple(inputs)
    checked = _check_inputs(inputs, "gradcheck")
    rng = np.random.default_rng(seed)
    outputs = _float_outputs(fn(*inputs))
    if not outputs:
        raise ValueError("gradcheck: fn returned no floating tensor")
    for _ in range(n_projections):
        vs = [rng.standard_normal(o.shape) for o in outputs]
        # analytic vᵀJ, one backward pass
        outputs = _float_outputs(fn(*inputs))
        live = [(o, v) for o, v in zip(outputs, vs) if o.requires_grad]
        if live:
            analytic = grad([o for o, _ in live], checked, [Tensor(v) for _, v in live], allow_unused=True)
        else:
            analytic = [None] * len(checked)
        for k, x in enumerate(checked):
            got = np.zeros(x.shape) if analytic[k] is None else np.asarray(analytic[k].data, dtype=np.float64)
            expected = np.zeros(x.shape)
            if not x.data.flags.c_contiguous:
                x.data = np.ascontiguousarray(x.data)
            flat = x.data.reshape(-1)  # a view: perturbing it perturbs x
            # grad mode stays on: fn may itself differentiate (gradgradcheck)
            for i in range(flat.size):
                old = flat[i]
                flat[i] = old + eps
                plus = sum(float(np.sum(np.asarray(o.data) * v)) for o, v in zip(_float_outputs(fn(*inputs)), vs))
                flat[i] = old - eps
                minus = sum(float(np.sum(np.asarray(o.data) * v)) for o, v in zip(_float_outputs(fn(*inputs)), vs))
                flat[i] = old
                expected.reshape(-1)[i] = (plus - minus) / (2 * eps)
            if not np.allclose(got, expected, atol=atol, rtol=rtol):
                err = np.abs(got - expected)
                where = np.unravel_index(np.argmax(err), err.shape) if err.size else ()
                message = (
                    f"gradcheck: gradient of input {next(i for i, t in enumerate(inputs) if t is x)} (shape {x.shape}) "
                    f"disagrees with finite differences: max abs error {err.max():.3g} at {where} "
                    f"(analytic {got[where]:.6g}, numerical {expected[where]:.6g})"
                )
                if raise_exception:
                    raise GradcheckError(message)
                return False
    return True


def gradgradcheck(
    fn: Callable[..., Any],
    inputs: Any,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    seed: int = 0,
    raise_exception: bool = True,
) -> bool:
    """Check second derivatives: the gradients computed with ``create_graph=True`` are themselves
    checked by :func:`gradcheck`, both with respect to the inputs and to the output weights."""
    inputs = _as_tuple(inputs)
    _check_inputs(inputs, "gradgradcheck")
    rng = np.random.default_rng(seed + 1)
    outputs = _float_outputs(fn(*inputs))
    vs = [Tensor(rng.standard_normal(o.shape), requires_grad=True) for o in outputs]

    def first_grads(*args: Tensor) -> tuple[Tensor, ...]:
        xs, weights = args[: len(inputs)], args[len(inputs):]
        outs = _float_outputs(fn(*xs))
        wrt = [x for x in xs if isinstance(x, Tensor) and x.requires_grad]
        grads = grad(outs, wrt, list(weights), create_graph=True, allow_unused=True)
        return tuple(g for g in grads if g is not None)

    return gradcheck(first_grads, tuple(inputs) + tuple(vs), eps=eps, atol=atol, rtol=rtol,
                     seed=seed, raise_exception=raise_exception)
