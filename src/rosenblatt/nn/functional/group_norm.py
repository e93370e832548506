"""Group normalisation ``group_norm`` (Wu & He, "Group Normalization", ECCV 2018).

The channels of each sample are split into groups, and each group is normalised over its channels
and positions with the biased variance; a per-channel affine map follows. It does not depend on
the batch, so it works with batches of one (3-D volumes rarely fit many to a batch). The input is
viewed as ``(N, G, C/G * positions)`` and normalised by the fused ``layer_norm`` over the last
axis (one node, closed-form backward, the composite for second derivatives), then scaled.
"""

from __future__ import annotations

import numpy as np

from rosenblatt.core import Tensor
from rosenblatt.nn.functional.normalization import layer_norm
from rosenblatt.ops import reshape


def group_norm(input: Tensor, num_groups: int, weight: Tensor | None = None, bias: Tensor | None = None,
               eps: float = 1e-5) -> Tensor:
    """Normalise each group of ``C / num_groups`` channels of every sample, then scale and shift.

    Shape:
        input: ``(N, C, *)``; weight, bias: ``(C,)``; output: the input's shape.
    """
    if not isinstance(input, Tensor):
        raise TypeError(f"group_norm: expected a Tensor, got {type(input).__name__}")
    if input.ndim < 2:
        raise ValueError(f"group_norm: expected an input of shape (N, C, *), got shape {input.shape}")
    if not isinstance(num_groups, (int, np.integer)) or isinstance(num_groups, bool) or num_groups < 1:
        raise ValueError(f"group_norm: num_groups must be a positive int, got {num_groups!r}")
    n, c = input.shape[:2]
    if c % num_groups:
        raise ValueError(f"group_norm: num_groups={num_groups} must divide the {c} channels of input shape "
                         f"{input.shape}")
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None and tuple(p.shape) != (c,):
            raise ValueError(f"group_norm: expected {name} of shape ({c},), got {p.shape}")
    per_group = (c // num_groups) * int(np.prod(input.shape[2:], dtype=np.int64))
    grouped = reshape(input, (n, num_groups, per_group))
    y = reshape(layer_norm(grouped, (per_group,), None, None, eps), input.shape)
    shape = (1, c) + (1,) * (input.ndim - 2)
    if weight is not None:
        y = y * reshape(weight, shape)
    if bias is not None:
        y = y + reshape(bias, shape)
    return y


__all__ = ["group_norm"]
