"""Automatic differentiation: custom ``Function``s, ``grad``, grad mode and gradient checking.

The engine itself lives in :mod:`rosenblatt.core`; this package is its public face.
"""

from typing import Any

from rosenblatt.autograd.gradcheck import GradcheckError, gradcheck, gradgradcheck
from rosenblatt.core import (
    Function,
    enable_grad,
    grad,
    is_grad_enabled,
    no_grad,
    run_backward,
    set_grad_enabled,
)


def backward(tensors: Any, grad_tensors: Any = None, retain_graph: bool = False,
             create_graph: bool = False) -> None:
    """Backpropagate from several tensors at once (``torch.autograd.backward``)."""
    from rosenblatt.core import Tensor, constant

    tensors = [tensors] if isinstance(tensors, Tensor) else list(tensors)
    if grad_tensors is None:
        grad_tensors = [None] * len(tensors)
    roots, grads = [], []
    for t, g in zip(tensors, grad_tensors):
        if g is None:
            if t.data.size != 1:
                raise RuntimeError(f"backward: grad_tensors needed for an output of shape {t.shape}")
            g = constant(t.data * 0 + 1)
        elif not isinstance(g, Tensor):
            g = Tensor(g, dtype=t.dtype)
        roots.append(t)
        grads.append(g)
    run_backward(roots, grads, retain_graph or create_graph, create_graph)


__all__ = ["Function", "GradcheckError", "backward", "enable_grad", "grad", "gradcheck", "gradgradcheck",
           "is_grad_enabled", "no_grad", "set_grad_enabled"]
