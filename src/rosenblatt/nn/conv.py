"""Convolution layers: ``Conv1d``, ``Conv2d`` and ``ConvTranspose2d`` (PyTorch layouts and defaults)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from rosenblatt.core import Tensor, _GradMode, get_default_dtype, no_grad
from rosenblatt.nn import init
from rosenblatt.nn.functional.conv import (
    CONV2D_KERNELS,
    _check_weight,
    _conv_geometry,
    _int_tuple,
    _padding_pairs,
    conv1d,
    conv2d,
    conv_transpose2d,
)
from rosenblatt.nn.functional.conv3d import conv3d
from rosenblatt.nn.module import Module
from rosenblatt.nn.parameter import Parameter
from rosenblatt.ops import pad as pad_op

_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
# False: Conv2d records its op even without a gradient (the ONNX tracer watches the ops)
ENABLED = True


class _ConvNd(Module):
    """Shared parameters, initialisation, checks and ``repr`` of the convolution layers."""

    _spatial = 2
    _transposed = False
    _geometries: dict[tuple, Any] | None = None  # Conv2d inference: checked input geometries

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any, padding: Any,
                 dilation: Any, groups: int, bias: bool, padding_mode: str, output_padding: Any = 0,
                 dtype: Any = None) -> None:
        super().__init__()
        name = type(self).__name__
        n = self._spatial
        for what, value in (("in_channels", in_channels), ("out_channels", out_channels), ("groups", groups)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name}: {what} must be a positive int, got {value!r}")
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"{name}: groups={groups} must divide in_channels={in_channels} and "
                             f"out_channels={out_channels}")
        if padding_mode not in _PADDING_MODES:
            raise ValueError(f"{name}: padding_mode must be one of {_PADDING_MODES}, got {padding_mode!r}")
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.kernel_size = _int_tuple(name, "kernel_size", kernel_size, n)
        self.stride = _int_tuple(name, "stride", stride, n)
        self.dilation = _int_tuple(name, "dilation", dilation, n)
        if isinstance(padding, str):
            _padding_pairs(name, padding, self.kernel_size, self.stride, self.dilation)  # validates
            self.padding = padding
        else:
            self.padding = _int_tuple(name, "padding", padding, n, minimum=0)
        self.output_padding = _int_tuple(name, "output_padding", output_padding, n, minimum=0)
        self.groups = int(groups)
        self.padding_mode = padding_mode
        dtype = dtype or get_default_dtype()
        if self._transposed:
            shape = (self.in_channels, self.out_channels // self.groups) + self.kernel_size
        else:
            shape = (self.out_channels, self.in_channels // self.groups) + self.kernel_size
        self.weight = Parameter(Tensor(np.empty(shape, dtype=dtype)))
        if bias:
            self.bias = Parameter(Tensor(np.empty((self.out_channels,), dtype=dtype)))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-draw the parameters with PyTorch's defaults: ``kaiming_uniform_(a=sqrt(5))`` for the
        weight, ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` for the bias (``fan_in`` = ``weight.shape[1]``
        times the kernel area)."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self.weight.shape[1] * int(np.prod(self.kernel_size))
            bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
            init.uniform_(self.bias, -bound, bound)

    def _describe(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"

    def _check_input(self, x: Any) -> None:
        n = self._spatial
        if not isinstance(x, Tensor):
            raise TypeError(f"{self._describe()}: expected a Tensor input, got {type(x).__name__}")
        if x.ndim not in (n + 1, n + 2):
            dims = {1: "(N, C, L)", 2: "(N, C, H, W)", 3: "(N, C, D, H, W)"}[n]
            raise ValueError(f"{self._describe()}: expected a {n + 2}-D input {dims} (or {n + 1}-D unbatched), "
                             f"got shape {x.shape}")
        channels = x.shape[-n - 1]
        if channels != self.in_channels:
            raise ValueError(f"{self._describe()}: expected input with {self.in_channels} channels, got "
                             f"{channels} (input shape {x.shape})")

    def _pre_pad(self, x: Tensor) -> tuple[Tensor, Any]:
        """Non-zero padding modes pad explicitly (``rb.pad``) and convolve without padding."""
        if self.padding_mode == "zeros":
            return x, self.padding
        pairs = _padding_pairs(type(self).__name__, self.padding, self.kernel_size, self.stride, self.dilation)
        widths: list[int] = []
        for lo, hi in reversed(pairs):
            widths += [lo, hi]
        return pad_op(x, tuple(widths), mode=self.padding_mode), 0

    def extra_repr(self) -> str:
        n = self._spatial
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if isinstance(self.padding, str):
            s += f", padding={self.padding}"
        elif self.padding != (0,) * n:
            s += f", padding={self.padding}"
        if self.dilation != (1,) * n:
            s += f", dilation={self.dilation}"
        if self.output_padding != (0,) * n:
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s


class Conv1d(_ConvNd):
    """1-D convolution over ``(N, C_in, L)`` sequences (see :func:`rosenblatt.nn.functional.conv1d`).

    Weight ``(out_channels, in_channels/groups, kernel_size)``, bias ``(out_channels,)``; PyTorch's
    default initialisation.

    Shape:
        - Input: ``(N, C_in, L)`` or ``(C_in, L)``
        - Output: ``(N, C_out, L_out)`` with
          ``L_out = (L + 2*padding - dilation*(kernel_size-1) - 1) // stride + 1``
    """

    _spatial = 1

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int], stride: int = 1,
                 padding: int | str = 0, dilation: int = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros", dtype: Any = None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, dtype=dtype)

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x)
        x, padding = self._pre_pad(x)
        return conv1d(x, self.weight, self.bias, self.stride, padding, self.dilation, self.groups)


class Conv2d(_ConvNd):
    """2-D convolution over ``(N, C_in, H, W)`` images (see :func:`rosenblatt.nn.functional.conv2d`).

    Weight ``(out_channels, in_channels/groups, kh, kw)``, bias ``(out_channels,)``, PyTorch's
    default initialisation. ``padding`` is an int, a pair, ``"same"`` or ``"valid"``;
    ``padding_mode`` is ``"zeros"``, ``"reflect"``, ``"replicate"`` or ``"circular"``.
    ``groups=in_channels`` gives a depthwise convolution.

    A fixed filter bank (edge detectors, say) is a frozen layer::

        sobel = rb.nn.Conv2d.from_weights(rb.nn.filters.sobel_filters(), padding=1)
        # or, on an existing layer:
        with rb.no_grad(): conv.weight.copy_(kernels)
        conv.requires_grad_(False)

    Shape:
        - Input: ``(N, C_in, H, W)`` or ``(C_in, H, W)``
        - Output: ``(N, C_out, H_out, W_out)`` with
          ``H_out = (H + 2*padding[0] - dilation[0]*(kernel_size[0]-1) - 1) // stride[0] + 1``
          (likewise ``W_out``)
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] = 1, padding: int | tuple[int, int] | str = 0,
                 dilation: int | tuple[int, int] = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros", dtype: Any = None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, dtype=dtype)

    @classmethod
    def from_weights(cls, weight: Any, bias: Any = None, stride: int | tuple[int, int] = 1,
                     padding: int | tuple[int, int] | str = 0, dilation: int | tuple[int, int] = 1,
                     groups: int = 1, trainable: bool = False, padding_mode: str = "zeros") -> Conv2d:
        """A ``Conv2d`` holding the given ``(out, in/groups, kh, kw)`` weight (and bias), frozen
        unless ``trainable=True``. ``weight`` may be an array, a nested list or a Tensor."""
        w = np.asarray(weight.data if isinstance(weight, Tensor) else weight)
        if w.dtype.kind != "f":
            w = w.astype(get_default_dtype())
        if w.ndim != 4:
            raise ValueError(f"Conv2d.from_weights: expected a 4-D weight (out, in/groups, kh, kw), got shape "
                             f"{w.shape}")
        layer = cls(w.shape[1] * groups, w.shape[0], w.shape[2:], stride, padding, dilation, groups,
                    bias is not None, padding_mode, dtype=w.dtype)
        with no_grad():
            layer.weight.copy_(w)
            if bias is not None:
                b = np.asarray(bias.data if isinstance(bias, Tensor) else bias)
                if b.shape != (w.shape[0],):
                    raise ValueError(f"Conv2d.from_weights: expected a bias of shape ({w.shape[0]},), got {b.shape}")
                layer.bias.copy_(b)
        layer.requires_grad_(trainable)
        return layer

    def forward(self, x: Tensor) -> Tensor:
        if not _GradMode.enabled and ENABLED and type(x) is Tensor and x.ndim == 4 and self.padding_mode == "zeros":
            return self._inference(x)
        self._check_input(x)
        x, padding = self._pre_pad(x)
        return conv2d(x, self.weight, self.bias, self.stride, padding, self.dilation, self.groups)

    def _inference(self, x: Tensor) -> Tensor:
        """The layer with no gradient recorded: the kernel on the arrays. The checks and the geometry
        of an input shape run once and are remembered (with the arguments they depend on), and no
        graph node is made: at batch 1 these per-call costs took half of a small convolution's time."""
        w, b = self.weight, self.bias
        key = (x.shape, x.dtype, w.shape, w.dtype, None if b is None else (b.shape, b.dtype), self.stride,
               self.padding, self.dilation, self.groups)
        geom = self._geometries.get(key) if self._geometries is not None else None
        if geom is None:
            self._check_input(x)
            _check_weight("conv2d", x, w, b, self.groups, 2)
            geom = _conv_geometry("conv2d", x.shape[2:], w.shape[2:], self.stride, self.padding, self.dilation,
                                  self.groups)
            if self._geometries is None or len(self._geometries) > 16:
                self._geometries = {}
            self._geometries[key] = geom
        return Tensor._make(CONV2D_KERNELS.conv(x.data, w.data, None if b is None else b.data, geom))


class ConvTranspose2d(_ConvNd):
    """Transposed 2-D convolution ("deconvolution"), the gradient of ``Conv2d`` with respect to its
    input: upsamples by ``stride`` (U-Net decoders, convolutional autoencoders).

    Weight ``(in_channels, out_channels/groups, kh, kw)`` as in PyTorch; bias ``(out_channels,)``.

    Shape:
        - Input: ``(N, C_in, H, W)`` or ``(C_in, H, W)``
        - Output: ``(N, C_out, H_out, W_out)`` with
          ``H_out = (H-1)*stride[0] - 2*padding[0] + dilation[0]*(kernel_size[0]-1) + output_padding[0] + 1``
    """

    _transposed = True

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] = 1, padding: int | tuple[int, int] = 0,
                 output_padding: int | tuple[int, int] = 0, groups: int = 1, bias: bool = True,
                 dilation: int | tuple[int, int] = 1, padding_mode: str = "zeros", dtype: Any = None) -> None:
        if isinstance(padding, str):
            raise ValueError(f"ConvTranspose2d: padding must be an int or a pair of ints, got {padding!r}")
        if padding_mode != "zeros":
            raise ValueError(f"ConvTranspose2d: only padding_mode='zeros' is supported, got {padding_mode!r}")
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, output_padding=output_padding, dtype=dtype)
        for p, s, d in zip(self.output_padding, self.stride, self.dilation):
            if p >= max(s, d):
                raise ValueError(f"ConvTranspose2d: output_padding {self.output_padding} must be smaller than "
                                 f"stride {self.stride} or dilation {self.dilation}")

    def forward(self, x: Tensor, output_size: tuple[int, ...] | None = None) -> Tensor:
        """``output_size`` (the last two entries are used) picks the output padding, as in PyTorch:
        a strided convolution maps several input sizes to the same output size."""
        self._check_input(x)
        output_padding = self.output_padding
        if output_size is not None:
            target = tuple(output_size)[-2:]
            smallest = [(n - 1) * s - 2 * p + d * (k - 1) + 1 for n, s, p, d, k in
                        zip(x.shape[-2:], self.stride, self.padding, self.dilation, self.kernel_size)]
            output_padding = tuple(t - m for t, m in zip(target, smallest))
            if any(not 0 <= op < max(s, d) for op, s, d in zip(output_padding, self.stride, self.dilation)):
                raise ValueError(f"{self._describe()}: output_size {tuple(output_size)} is not reachable from input "
                                 f"shape {x.shape}; sizes from {tuple(smallest)} up to stride - 1 more are")
        return conv_transpose2d(x, self.weight, self.bias, self.stride, self.padding, output_padding,
                                self.groups, self.dilation)


class Conv3d(_ConvNd):
    """3-D convolution over ``(N, C_in, D, H, W)`` volumes (see :func:`rosenblatt.nn.functional.conv3d`),
    e.g. calorimeter showers or medical scans.

    Weight ``(out_channels, in_channels/groups, kd, kh, kw)``, bias ``(out_channels,)``, PyTorch's
    default initialisation. ``padding`` is an int, a triple, ``"same"`` or ``"valid"``;
    ``padding_mode`` is ``"zeros"``, ``"reflect"``, ``"replicate"`` or ``"circular"``.

    Shape:
        - Input: ``(N, C_in, D, H, W)`` or ``(C_in, D, H, W)``
        - Output: ``(N, C_out, D_out, H_out, W_out)`` with
          ``D_out = (D + 2*padding[0] - dilation[0]*(kernel_size[0]-1) - 1) // stride[0] + 1``
          (likewise ``H_out``, ``W_out``)
    """

    _spatial = 3

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int, int],
                 stride: int | tuple[int, int, int] = 1, padding: int | tuple[int, int, int] | str = 0,
                 dilation: int | tuple[int, int, int] = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros", dtype: Any = None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, dtype=dtype)

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x)
        x, padding = self._pre_pad(x)
        return conv3d(x, self.weight, self.bias, self.stride, padding, self.dilation, self.groups)


__all__ = ["Conv1d", "Conv2d", "Conv3d", "ConvTranspose2d"]
