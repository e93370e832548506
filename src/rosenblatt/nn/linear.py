"""Core layers: ``Identity``, ``Linear``, ``Flatten`` and ``Unflatten``."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from rosenblatt.core import Tensor, _GradMode, get_default_dtype
from rosenblatt.kernels import gemm
from rosenblatt.nn import init
from rosenblatt.nn.functional.linear import LinearFn
from rosenblatt.nn.module import Module
from rosenblatt.nn.parameter import Parameter
from rosenblatt.ops import flatten, reshape

# False: Linear records its op even without a gradient (the ONNX tracer watches the ops)
ENABLED = True


class Identity(Module):
    """Returns its input unchanged (a placeholder, e.g. to remove a layer from a model).

    Shape:
        any; the output is the input.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    def forward(self, x: Any) -> Any:
        return x


class Linear(Module):
    """Fully connected layer ``y = x W^T + b``.

    The weight has PyTorch's layout ``(out_features, in_features)`` and its default initialisation:
    ``kaiming_uniform_(a=sqrt(5))`` for the weight (U(-1/sqrt(in), 1/sqrt(in))) and
    U(-1/sqrt(in), 1/sqrt(in)) for the bias.

    Shape:
        input: ``(*, in_features)``; output: ``(*, out_features)``.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, dtype: Any = None) -> None:
        super().__init__()
        if in_features < 0 or out_features < 0:
            raise ValueError(f"Linear: feature counts must be non-negative, got ({in_features}, {out_features})")
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        dtype = dtype or get_default_dtype()
        self.weight = Parameter(Tensor(np.empty((out_features, in_features), dtype=dtype)))
        if bias:
            self.bias = Parameter(Tensor(np.empty((out_features,), dtype=dtype)))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-draw the parameters with PyTorch's default scheme."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1.0 / math.sqrt(self.in_features) if self.in_features > 0 else 0.0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor):
            raise TypeError(f"Linear: expected a Tensor input, got {type(x).__name__}")
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"Linear({self.in_features}, {self.out_features}): expected input of shape "
                f"(*, {self.in_features}), got {x.shape}"
            )
        # The input is checked above and the parameters by construction: skip F.linear's checks.
        if not _GradMode.enabled and x.ndim == 2 and ENABLED:
            return self._inference(x)
        return LinearFn.apply(x, self.weight, self.bias)

    def _inference(self, x: Tensor, relu: bool = False, tanh: bool = False) -> Tensor:
        """The layer on a checked 2-D input with no gradient recorded (then ``max(., 0)`` with
        ``relu=True``, ``tanh`` with ``tanh=True``): the kernel on the arrays, without a graph node
        to build (batch-1 inference spends most of its time in such per-layer costs)."""
        bias = self.bias
        return Tensor._make(gemm.linear(x.data, self.weight.data, None if bias is None else bias.data, relu=relu,
                                        tanh=tanh))

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Flatten(Module):
    """Flattens dimensions ``start_dim`` .. ``end_dim`` into one (by default all but the batch).

    Shape:
        input: ``(N, *dims)``; output: ``(N, prod(dims))`` with the defaults.
    """

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim = start_dim
        self.end_dim = end_dim

    def forward(self, x: Tensor) -> Tensor:
        return flatten(x, self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Unflatten(Module):
    """Expands dimension ``dim`` into ``unflattened_size`` (the inverse of ``Flatten``).

    Shape:
        input: ``(*, S, *)`` with ``S = prod(unflattened_size)`` at ``dim``; output:
        ``(*, *unflattened_size, *)``.
    """

    def __init__(self, dim: int, unflattened_size: Sequence[int]) -> None:
        super().__init__()
        self.dim = int(dim)
        self.unflattened_size = tuple(int(s) for s in unflattened_size)

    def forward(self, x: Tensor) -> Tensor:
        dim = self.dim % x.ndim if x.ndim else 0
        size = x.shape[dim]
        known = [s for s in self.unflattened_size if s != -1]
        product = 1
        for s in known:
            product *= s
        if (-1 not in self.unflattened_size and product != size) or (product and size % product):
            raise ValueError(
                f"Unflatten: cannot unflatten dimension {self.dim} of size {size} into {self.unflattened_size} "
                f"(input shape {x.shape})"
            )
        return reshape(x, x.shape[:dim] + self.unflattened_size + x.shape[dim + 1:])

    def extra_repr(self) -> str:
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"
