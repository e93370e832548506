"""Helpers shared by the fused functions of ``rb.nn.functional``.

A fused ``Function`` computes its gradient in closed form on raw arrays in ``backward_arrays``:
one node, no temporary graph, BLAS where it matters (see :class:`rosenblatt.core.Function`). Its
differentiable ``backward``, used under ``create_graph=True`` (double backward), can be the
gradient of the op's readable composite version (built from differentiable primitives) through
:func:`composite_backward`, so second derivatives stay exact without a second hand-written formula.
:func:`composite_backward_arrays` gives the same gradients as arrays, for a ``backward_arrays``
whose fast kernel declines a call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from rosenblatt.core import Tensor, constant, enable_grad, grad
from rosenblatt.ops.shape import Reshape


def _distinct_inputs(inputs: Sequence[Any]) -> list[Any]:
    """``inputs`` with every tensor that records gradients replaced by its own alias (a view
    recorded as a node), so each position gets its own partial derivative: for a tensor passed
    twice (``f(x, x)``), and for one computed from another input (``f(x, g(x))``, a residual
    block's shortcut), whose derivative would otherwise also flow into the other's position and
    then again through the graph between them."""
    return [Reshape.apply(x, x.shape) if isinstance(x, Tensor) and x.requires_grad else x for x in inputs]


def composite_backward(
    composite: Callable[..., Tensor | Sequence[Tensor]],
    inputs: Sequence[Any],
    needs_input_grad: Sequence[bool],
    grad_outputs: Sequence[Tensor],
    create_graph: bool = True,
) -> tuple[Tensor | None, ...]:
    """Gradients of ``composite(*inputs)`` for the inputs that need them, one per input position.

    Used by fused ops when ``create_graph=True``: the returned gradients carry a graph, so they
    can be differentiated again. A tensor passed at several positions gets, at each one, the
    partial derivative through that position only: the engine adds them up, as for any op.
    """
    inputs = _distinct_inputs(inputs)
    outputs = composite(*inputs)
    if isinstance(outputs, Tensor):
        outputs = [outputs]
    wanted = [x for x, need in zip(inputs, needs_input_grad) if need]
    grads = iter(grad(list(outputs), wanted, list(grad_outputs), create_graph=create_graph, allow_unused=True))
    return tuple(next(grads) if need else None for need in needs_input_grad)


def composite_backward_arrays(
    composite: Callable[..., Tensor | Sequence[Tensor]],
    inputs: Sequence[Any],
    needs_input_grad: Sequence[bool],
    grad_arrays: Sequence[Any],
) -> tuple[Any, ...]:
    """:func:`composite_backward` on arrays, no graph kept: the fallback of a ``backward_arrays``
    whose fast kernel declines (the kernel set changed between forward and backward, say)."""
    with enable_grad():
        grads = composite_backward(composite, inputs, needs_input_grad, [constant(g) for g in grad_arrays],
                                   create_graph=False)
    return tuple(None if g is None else g.data for g in grads)
