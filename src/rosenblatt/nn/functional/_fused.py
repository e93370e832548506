"""Helpers shared by the fused functions of ``rb.nn.functional``.

A fused ``Function`` computes its gradient in closed form on raw arrays in ``backward_arrays``:
one node, no temporary graph, BLAS where it matters (see :class:`rosenblatt.core.Function`). Its
differentiable ``backward``, used under ``create_graph=True`` (double backward), can be the
gradient of the op's readable composite version (built from differentiable primitives) through
:func:`composite_backward`, so second derivatives stay exact without a second hand-written formula.

:func:`recording_backward` and :func:`wrap` serve the older form, a ``backward`` that branches on
whether it is recorded and wraps its arrays itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from rosenblatt.core import Tensor, constant, grad, is_grad_enabled


def recording_backward() -> bool:
    """True when backward is being recorded (``create_graph=True``): take the composite path.

    Older form; new fused ops write ``backward_arrays`` instead.
    """
    return is_grad_enabled()


def composite_backward(
    composite: Callable[..., Tensor | Sequence[Tensor]],
    inputs: Sequence[Any],
    needs_input_grad: Sequence[bool],
    grad_outputs: Sequence[Tensor],
) -> tuple[Tensor | None, ...]:
    """Differentiable gradients of ``composite(*inputs)`` for the inputs that need them.

    Used by fused ops when ``create_graph=True``: the returned gradients carry a graph, so they
    can be differentiated again.
    """
    outputs = composite(*inputs)
    if isinstance(outputs, Tensor):
        outputs = [outputs]
    wanted = [x for x, need in zip(inputs, needs_input_grad) if need]
    grads = iter(grad(list(outputs), wanted, list(grad_outputs), create_graph=True, allow_unused=True))
    return tuple(next(grads) if need else None for need in needs_input_grad)


def wrap(array: Any) -> Tensor:
    """A raw gradient array as a constant tensor (the fast path of a fused backward)."""
    return constant(array)
