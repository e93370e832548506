"""Instance normalisation ``instance_norm`` (Ulyanov, Vedaldi & Lempitsky, "Instance Normalization:
The Missing Ingredient for Fast Stylization", 2016).

Every (sample, channel) pair is normalised over its own positions with the biased variance, then a
per-channel affine map follows: group normalisation with one channel per group. The input is
viewed as ``(N, C, positions)`` and normalised by the fused ``layer_norm`` over the last axis (one
node, closed-form backward, the composite for second derivatives), then scaled and shifted.

Running statistics, when given, follow PyTorch's rule: in training they move towards the batch
average of the per-instance means and *unbiased* variances,
``running = (1 - momentum) * running + momentum * mean_over_batch(instance_stat)``; with
``use_input_stats=False`` they normalise the input instead (a fixed per-channel affine map).
"""

from __future__ import annotations

import numbers

import numpy as np

from rosenblatt.backend import get_array_module
from rosenblatt.core import Tensor, constant, mark_modified, no_grad
from rosenblatt.nn.functional.normalization import layer_norm
from rosenblatt.ops import reshape


def _check_arguments(input: Tensor, running_mean: Tensor | None, running_var: Tensor | None,
                     weight: Tensor | None, bias: Tensor | None, use_input_stats: bool, momentum: float,
                     eps: float) -> None:
    if not isinstance(input, Tensor):
        raise TypeError(f"instance_norm: expected a Tensor, got {type(input).__name__}")
    if input.dtype.kind != "f":
        raise TypeError(f"instance_norm: expected a floating-point input, got dtype {input.dtype}")
    if input.ndim < 2:
        raise ValueError(f"instance_norm: expected an input of shape (N, C, *), got shape {input.shape}")
    if (running_mean is None) != (running_var is None):
        raise ValueError("instance_norm: running_mean and running_var must both be given or both be None, got "
                         f"running_mean={'None' if running_mean is None else 'a Tensor'} and "
                         f"running_var={'None' if running_var is None else 'a Tensor'}")
    c = input.shape[1]
    for name, p in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight),
                    ("bias", bias)):
        if p is None:
            continue
        if not isinstance(p, Tensor):
            raise TypeError(f"instance_norm: expected {name} to be a Tensor or None, got {type(p).__name__}")
        if tuple(p.shape) != (c,):
            raise ValueError(f"instance_norm: expected {name} of shape ({c},) for the {c} channels of input "
                             f"shape {input.shape}, got shape {p.shape}")
    if not use_input_stats and running_mean is None:
        raise ValueError("instance_norm: use_input_stats=False needs running_mean and running_var, got None")
    if isinstance(momentum, bool) or not isinstance(momentum, numbers.Real):
        raise TypeError(f"instance_norm: momentum must be a float, got {momentum!r}")
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real):
        raise TypeError(f"instance_norm: eps must be a float, got {eps!r}")
    if use_input_stats and int(np.prod(input.shape[2:], dtype=np.int64)) == 1:
        raise ValueError("instance_norm: expected more than 1 spatial element when training, got input of shape "
                         f"{input.shape}")


def _update_running_stats(running_mean: Tensor, running_var: Tensor, xd, momentum: float) -> None:
    """Move the running statistics towards the batch average of the per-instance mean and unbiased
    variance (``xd`` is the input's array viewed as ``(N, C, positions)``), in place."""
    xp = get_array_module(xd)
    count = xd.shape[2]
    with np.errstate(invalid="ignore", divide="ignore"):
        mu = xd.sum(axis=2, keepdims=True) / count
        centered = xd - mu
        var = (centered * centered).sum(axis=2) / (count - 1)
        batch_mean, batch_var = mu[..., 0].mean(axis=0), var.mean(axis=0)
    m = float(momentum)
    with no_grad():
        running_mean.data *= 1.0 - m
        running_mean.data += xp.asarray(m * batch_mean).astype(running_mean.dtype, copy=False)
        running_var.data *= 1.0 - m
        running_var.data += xp.asarray(m * batch_var).astype(running_var.dtype, copy=False)
    mark_modified(running_mean, running_var)


def instance_norm(input: Tensor, running_mean: Tensor | None = None, running_var: Tensor | None = None,
                  weight: Tensor | None = None, bias: Tensor | None = None, use_input_stats: bool = True,
                  momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Instance normalisation (Ulyanov, Vedaldi & Lempitsky, "Instance Normalization: The Missing
    Ingredient for Fast Stylization", 2016): normalise each channel of each sample over its
    positions, then scale by ``weight`` and shift by ``bias`` per channel.

    With ``use_input_stats`` (the default) every ``(n, c)`` slice is normalised with its own mean
    and biased variance, ``y = (x - mean) / sqrt(var + eps) * weight + bias``; if running statistics
    are given they are updated in place, ``running = (1 - momentum) * running + momentum * batch``,
    where ``batch`` is the average over the samples of the per-instance mean and *unbiased*
    variance. With ``use_input_stats=False`` the running statistics normalise instead (evaluation
    of a layer that tracks them); they are not differentiated.

    Args:
        input: the batch, channels on axis 1.
        running_mean, running_var: per-channel running statistics (both or neither), or None.
        weight, bias: per-channel scale and shift, or None.
        use_input_stats: normalise with each instance's statistics (True) or the running ones.
        momentum: the weight of the new batch in the running statistics.
        eps: added to the variance before the square root.

    Shape:
        input: ``(N, C, *)`` with more than one position per channel when ``use_input_stats``;
        running_mean, running_var, weight, bias: ``(C,)``; output: the input's shape.
    """
    _check_arguments(input, running_mean, running_var, weight, bias, use_input_stats, momentum, eps)
    n, c = input.shape[:2]
    shape = (1, c) + (1,) * (input.ndim - 2)
    if use_input_stats:
        positions = int(np.prod(input.shape[2:], dtype=np.int64))
        if running_mean is not None:
            _update_running_stats(running_mean, running_var, input.data.reshape(n, c, positions), momentum)
        flat = reshape(input, (n, c, positions))
        y = reshape(layer_norm(flat, (positions,), None, None, float(eps)), input.shape)
        if weight is not None:
            y = y * reshape(weight, shape)
        if bias is not None:
            y = y + reshape(bias, shape)
        return y
    # The running statistics: a fixed per-channel affine map of the input.
    xp = get_array_module(input.data)
    dtype = input.dtype
    invstd = constant((1.0 / xp.sqrt(running_var.data.astype(np.float64) + float(eps))).astype(dtype))
    scale = invstd if weight is None else weight * invstd
    shift = constant(-running_mean.data.astype(dtype)) * scale
    if bias is not None:
        shift = shift + bias
    return input * reshape(scale, shape) + reshape(shift, shape)


__all__ = ["instance_norm"]
