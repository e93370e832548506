"""Normalisation layers: ``BatchNorm1d``, ``BatchNorm2d`` (Ioffe & Szegedy, 2015) and ``LayerNorm``
(Ba, Kiros & Hinton, 2016)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from rosenblatt.core import Tensor, get_default_dtype, mark_modified, no_grad
from rosenblatt.nn import functional as F
from rosenblatt.nn import init
from rosenblatt.nn.module import Module
from rosenblatt.nn.parameter import Parameter


class _NormBase(Module):
    """What batch and instance normalisation share (PyTorch's ``_NormBase``): the per-channel
    ``weight`` and ``bias`` with ``affine``, the ``running_mean``/``running_var``/
    ``num_batches_tracked`` buffers with ``track_running_stats``, and their resets."""

    def __init__(self, num_features: int, eps: float, momentum: float | None, affine: bool,
                 track_running_stats: bool, dtype: Any, bias: bool) -> None:
        super().__init__()
        self.num_features = int(num_features)
        self.eps = float(eps)
        self.momentum = momentum
        self.affine = bool(affine)
        self.track_running_stats = bool(track_running_stats)
        self.use_bias = bool(bias)
        dtype = np.dtype(dtype or get_default_dtype())
        if dtype.kind != "f":
            raise TypeError(f"{type(self).__name__}: dtype must be a floating-point type, got {dtype}")
        n = self.num_features
        if self.affine:
            self.weight = Parameter(Tensor(np.ones(n, dtype=dtype)))
            if self.use_bias:
                self.bias = Parameter(Tensor(np.zeros(n, dtype=dtype)))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if self.track_running_stats:
            self.register_buffer("running_mean", Tensor(np.zeros(n, dtype=dtype)))
            self.register_buffer("running_var", Tensor(np.ones(n, dtype=dtype)))
            self.register_buffer("num_batches_tracked", Tensor(np.array(0, dtype=np.int64)))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self) -> None:
        """Running mean 0, running variance 1, no batches seen (when the statistics are tracked)."""
        if self.track_running_stats:
            with no_grad():
                self.running_mean.zero_()
                self.running_var.fill_(1.0)
                self.num_batches_tracked.zero_()

    def reset_parameters(self) -> None:
        """Running statistics reset; weight 1 and bias 0."""
        self.reset_running_stats()
        if self.affine:
            init.ones_(self.weight)
            if self.bias is not None:
                init.zeros_(self.bias)


class _BatchNorm(_NormBase):
    """Shared machinery of the batch-norm layers (PyTorch's semantics, buffer for buffer)."""

    _expected_ndims: tuple[int, ...] = ()
    _shape_text = ""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True, dtype: Any = None, *,
                 bias: bool = True) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats, dtype, bias)

    def _check_input(self, x: Any) -> None:
        name = f"{type(self).__name__}({self.num_features})"
        if not isinstance(x, Tensor):
            raise TypeError(f"{name}: expected a Tensor, got {type(x).__name__}")
        if x.ndim not in self._expected_ndims:
            raise ValueError(f"{name}: expected input of shape {self._shape_text}, got {x.ndim}-D input of shape {x.shape}")
        if x.shape[1] != self.num_features:
            raise ValueError(
                f"{name}: expected {self.num_features} channels in dimension 1, got {x.shape[1]} "
                f"(input shape {x.shape})"
            )

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x)
        factor = 0.0 if self.momentum is None else float(self.momentum)
        if self.training and self.track_running_stats:
            self.num_batches_tracked.data += 1
            mark_modified(self.num_batches_tracked)
            if self.momentum is None:  # cumulative moving average over all batches seen
                factor = 1.0 / float(self.num_batches_tracked.data)
        use_batch_stats = self.training or not self.track_running_stats
        return F.batch_norm(
            x,
            self.running_mean if not self.training or self.track_running_stats else None,
            self.running_var if not self.training or self.track_running_stats else None,
            self.weight, self.bias, use_batch_stats, factor, self.eps,
        )

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"bias={self.bias is not None}, track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of features ``(N, C)`` or of channels of sequences ``(N, C, L)``.

    Training mode normalises with the batch mean and biased variance and updates the running
    statistics (``running = (1 - momentum) * running + momentum * batch``, unbiased variance;
    ``momentum=None`` gives the cumulative average); evaluation mode uses the running statistics.

    Shape:
        input: ``(N, C)`` or ``(N, C, L)``; output: same shape.
    """

    _expected_ndims = (2, 3)
    _shape_text = "(N, C) or (N, C, L)"


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of the channels of images (statistics over N, H, W per channel).

    Shape:
        input: ``(N, C, H, W)``; output: same shape.
    """

    _expected_ndims = (4,)
    _shape_text = "(N, C, H, W)"


class BatchNorm3d(_BatchNorm):
    """Batch normalisation of the channels of volumes (statistics over N, D, H, W per channel).

    Shape:
        input: ``(N, C, D, H, W)``; output: same shape.
    """

    _expected_ndims = (5,)
    _shape_text = "(N, C, D, H, W)"


class GroupNorm(Module):
    """Group normalisation (Wu & He, "Group Normalization", ECCV 2018): the channels of each sample
    are split into ``num_groups`` groups, each normalised over its channels and positions, then a
    per-channel affine map (weight 1, bias 0 at start) is applied when ``affine``.

    Independent of the batch size: the same in training and evaluation, no running statistics.
    ``GroupNorm(1, C)`` normalises whole samples; ``GroupNorm(C, C)`` is instance normalisation.

    Shape:
        input: ``(N, C, *)``; output: same shape.
    """

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5, affine: bool = True,
                 dtype: Any = None) -> None:
        super().__init__()
        for what, value in (("num_groups", num_groups), ("num_channels", num_channels)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"GroupNorm: {what} must be a positive int, got {value!r}")
        if num_channels % num_groups:
            raise ValueError(f"GroupNorm: num_groups={num_groups} must divide num_channels={num_channels}")
        self.num_groups = int(num_groups)
        self.num_channels = int(num_channels)
        self.eps = float(eps)
        self.affine = bool(affine)
        dtype = np.dtype(dtype or get_default_dtype())
        if self.affine:
            self.weight = Parameter(Tensor(np.ones(self.num_channels, dtype=dtype)))
            self.bias = Parameter(Tensor(np.zeros(self.num_channels, dtype=dtype)))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, x: Tensor) -> Tensor:
        name = f"GroupNorm({self.num_groups}, {self.num_channels})"
        if not isinstance(x, Tensor):
            raise TypeError(f"{name}: expected a Tensor, got {type(x).__name__}")
        if x.ndim < 2 or x.shape[1] != self.num_channels:
            raise ValueError(f"{name}: expected an input of shape (N, {self.num_channels}, *), got shape {x.shape}")
        return F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"


class LayerNorm(Module):
    """Normalises each sample over its trailing ``normalized_shape`` dimensions, then applies an
    element-wise affine map (weight 1, bias 0 at start) when ``elementwise_affine``.

    Shape:
        input: ``(*, *normalized_shape)``; output: same shape.
    """

    def __init__(self, normalized_shape: int | Sequence[int], eps: float = 1e-5,
                 elementwise_affine: bool = True, bias: bool = True, dtype: Any = None) -> None:
        super().__init__()
        if isinstance(normalized_shape, int):
            normalized_shape = (normalized_shape,)
        self.normalized_shape = tuple(int(n) for n in normalized_shape)
        self.eps = float(eps)
        self.elementwise_affine = bool(elementwise_affine)
        self.use_bias = bool(bias)
        dtype = np.dtype(dtype or get_default_dtype())
        if self.elementwise_affine:
            self.weight = Parameter(Tensor(np.ones(self.normalized_shape, dtype=dtype)))
            if bias:
                self.bias = Parameter(Tensor(np.zeros(self.normalized_shape, dtype=dtype)))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, x: Tensor) -> Tensor:
        k = len(self.normalized_shape)
        if not isinstance(x, Tensor) or x.ndim < k or tuple(x.shape[x.ndim - k:]) != self.normalized_shape:
            shape = getattr(x, "shape", type(x).__name__)
            raise ValueError(
                f"LayerNorm({self.normalized_shape}): expected input of shape (*, "
                f"{', '.join(map(str, self.normalized_shape))}), got {shape}"
            )
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}, "
                f"bias={self.bias is not None}")
