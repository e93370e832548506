"""Instance normalisation layers ``InstanceNorm1d``, ``InstanceNorm2d`` and ``InstanceNorm3d``
(Ulyanov, Vedaldi & Lempitsky, "Instance Normalization: The Missing Ingredient for Fast
Stylization", 2016), with PyTorch's arguments, defaults, ``state_dict`` keys and semantics."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from rosenblatt.core import Tensor
from rosenblatt.nn.functional.instance_norm import instance_norm
from rosenblatt.nn.normalization import _NormBase


class _InstanceNorm(_NormBase):
    """Shared machinery of the instance-norm layers: parameters, buffers, input checks, forward.

    ``_spatial_dims`` is the number of position axes; an input has ``_spatial_dims + 1`` axes
    unbatched ``(C, *)`` or ``_spatial_dims + 2`` batched ``(N, C, *)``.
    """

    _spatial_dims = 0
    _shape_text = ""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = False, track_running_stats: bool = False, dtype: Any = None, *,
                 bias: bool = True) -> None:
        name = type(self).__name__
        if not isinstance(num_features, (int, np.integer)) or isinstance(num_features, bool) or num_features < 1:
            raise ValueError(f"{name}: num_features must be a positive int, got {num_features!r}")
        if isinstance(eps, bool) or not isinstance(eps, (int, float, np.floating, np.integer)) or eps < 0:
            raise ValueError(f"{name}: eps must be a non-negative float, got {eps!r}")
        if momentum is not None and (isinstance(momentum, bool)
                                     or not isinstance(momentum, (int, float, np.floating, np.integer))):
            raise TypeError(f"{name}: momentum must be a float or None, got {momentum!r}")
        super().__init__(num_features, eps, momentum, affine, track_running_stats, dtype, bias)

    def _check_input(self, x: Any) -> None:
        name = f"{type(self).__name__}({self.num_features})"
        if not isinstance(x, Tensor):
            raise TypeError(f"{name}: expected a Tensor, got {type(x).__name__}")
        unbatched = self._spatial_dims + 1
        if x.ndim not in (unbatched, unbatched + 1):
            raise ValueError(f"{name}: expected {unbatched}-D or {unbatched + 1}-D input of shape {self._shape_text}, "
                             f"got {x.ndim}-D input of shape {x.shape}")
        channel_axis = x.ndim - unbatched
        channels = x.shape[channel_axis]
        if channels == self.num_features:
            return
        if self.affine or self.track_running_stats:
            holder = "weight and bias" if self.affine else "running_mean and running_var"
            raise ValueError(f"{name}: expected {self.num_features} channels in dimension {channel_axis} (the size of "
                             f"{holder}), got {channels} (input shape {x.shape})")
        warnings.warn(f"{name}: input's size at dim={channel_axis} ({channels}) does not match num_features "
                      f"({self.num_features}); num_features is not used because affine=False and "
                      "track_running_stats=False", UserWarning, stacklevel=3)

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x)
        unbatched = x.ndim == self._spatial_dims + 1
        if unbatched:
            x = x.unsqueeze(0)
        # PyTorch's rule: momentum=None leaves the running statistics as they are, and
        # num_batches_tracked is not counted by instance normalisation.
        momentum = 0.0 if self.momentum is None else float(self.momentum)
        y = instance_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                          self.training or not self.track_running_stats, momentum, self.eps)
        return y.squeeze(0) if unbatched else y

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"bias={self.bias is not None}, track_running_stats={self.track_running_stats}")


class InstanceNorm1d(_InstanceNorm):
    """Instance normalisation of sequences (Ulyanov, Vedaldi & Lempitsky, "Instance Normalization:
    The Missing Ingredient for Fast Stylization", 2016): each channel of each sample is normalised
    over its ``L`` positions with the biased variance, then scaled by ``weight`` (ones) and shifted
    by ``bias`` (zeros) per channel when ``affine``.

    With ``track_running_stats`` the buffers ``running_mean``, ``running_var`` and
    ``num_batches_tracked`` (BatchNorm's keys, so a PyTorch ``state_dict`` loads) are kept: training
    moves them towards the batch average of the per-instance mean and unbiased variance
    (``momentum=None`` leaves them unchanged, as in PyTorch) and evaluation normalises with them.
    Without it the input's statistics are used in training and evaluation alike. A ``num_features``
    that does not match the channels is an error with ``affine`` or running statistics, otherwise a
    warning.

    Args:
        num_features: the number of channels ``C``.
        eps: added to the variance before the square root.
        momentum: the weight of each new batch in the running statistics, or None.
        affine: learn a per-channel ``weight`` and ``bias``.
        track_running_stats: keep running statistics and use them in evaluation mode.
        dtype: the floating dtype of the parameters and buffers (the default dtype if None).
        bias: with ``affine``, also learn the ``bias`` (keyword only).

    Shape:
        input: ``(N, C, L)`` or unbatched ``(C, L)``; output: the input's shape.
    """

    _spatial_dims = 1
    _shape_text = "(N, C, L) or (C, L)"


class InstanceNorm2d(_InstanceNorm):
    """Instance normalisation of images (Ulyanov, Vedaldi & Lempitsky, "Instance Normalization: The
    Missing Ingredient for Fast Stylization", 2016): each channel of each sample is normalised over
    its ``H x W`` positions with the biased variance, then scaled and shifted per channel when
    ``affine``. Arguments, buffers and modes as :class:`InstanceNorm1d`.

    Shape:
        input: ``(N, C, H, W)`` or unbatched ``(C, H, W)``; output: the input's shape.
    """

    _spatial_dims = 2
    _shape_text = "(N, C, H, W) or (C, H, W)"


class InstanceNorm3d(_InstanceNorm):
    """Instance normalisation of volumes (Ulyanov, Vedaldi & Lempitsky, "Instance Normalization: The
    Missing Ingredient for Fast Stylization", 2016): each channel of each sample is normalised over
    its ``D x H x W`` positions with the biased variance, then scaled and shifted per channel when
    ``affine``. Arguments, buffers and modes as :class:`InstanceNorm1d`.

    Shape:
        input: ``(N, C, D, H, W)`` or unbatched ``(C, D, H, W)``; output: the input's shape.
    """

    _spatial_dims = 3
    _shape_text = "(N, C, D, H, W) or (C, D, H, W)"


__all__ = ["InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d"]
