"""Convolutions: ``conv1d``, ``conv2d`` and ``conv_transpose2d`` (NCHW data, PyTorch weight layouts).

The array work is done by kernels (:mod:`rosenblatt.kernels`): oneDNN's when that kernel set is
active and the arrays are float32 NumPy arrays (:mod:`rosenblatt.kernels.onednn.conv`), else the
NumPy/CuPy im2col + GEMM kernels of :mod:`rosenblatt.kernels.conv`, which also take whatever a
oneDNN kernel declines (float64 gradient checks, for one).

The Functions here make the convolution differentiable: ``backward_arrays`` calls the gradient
kernels on arrays (the usual first-order backward), and the differentiable ``backward`` is built
from the other convolution Functions - the transposed convolution
(:class:`ConvTranspose2dFunction`, also :func:`conv_transpose2d`'s node) and the weight gradient
(:class:`Conv2dWeightGradFunction`) - so ``create_graph=True`` gives exact second derivatives
(gradient penalties, gradgradcheck).

:func:`conv2d_reference` is the readable composite (pad, slice, einsum) kept as the test oracle.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rosenblatt import kernels
from rosenblatt.core import Function, Tensor
from rosenblatt.kernels.conv import (
    ConvGeometry,
    _output_size,
    add_channel_bias_,
    channel_sums,
    conv2d_array,
    conv2d_grad_input_array,
    conv2d_grad_weight_array,
    im2col,
)
from rosenblatt.kernels.workspace import clear_workspace, workspace
from rosenblatt.nn.functional._geometry import GeometryCache, plain
from rosenblatt.ops import cat, einsum, reshape
from rosenblatt.ops import pad as pad_op
from rosenblatt.ops import sum as sum_op

# --------------------------------------------------------------------------------------------
# Argument normalisation
# --------------------------------------------------------------------------------------------


def _int_tuple(op: str, name: str, value: Any, n: int, minimum: int = 1) -> tuple[int, ...]:
    """``3`` -> ``(3, 3)``; a tuple must have ``n`` ints, each at least ``minimum``."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        values = (int(value),) * n
    elif isinstance(value, (tuple, list)) and len(value) == n and all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value):
        values = tuple(int(v) for v in value)
    else:
        raise ValueError(f"{op}: {name} must be an int or a tuple of {n} ints, got {value!r}")
    if any(v < minimum for v in values):
        raise ValueError(f"{op}: {name} must be >= {minimum}, got {value!r}")
    return values


def _padding_pairs(op: str, padding: Any, kernel: tuple[int, ...], stride: tuple[int, ...],
                   dilation: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
    """Per-side padding. ``"same"`` pads ``d*(k-1)`` in total, the extra one at the end (PyTorch)."""
    n = len(kernel)
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0),) * n
        if padding == "same":
            if any(s != 1 for s in stride):
                raise ValueError(f"{op}: padding='same' needs stride 1, got stride {stride}")
            pairs = []
            for k, d in zip(kernel, dilation):
                total = d * (k - 1)
                pairs.append((total // 2, total - total // 2))
            return tuple(pairs)
        raise ValueError(f"{op}: padding must be an int, a tuple, 'same' or 'valid', got {padding!r}")
    return tuple((p, p) for p in _int_tuple(op, "padding", padding, n, minimum=0))


def _check_float(op: str, *arrays: Any) -> None:
    dtype = arrays[0].dtype
    if dtype.kind != "f":
        raise TypeError(f"{op}: expected a floating input, got dtype {dtype}")
    for a in arrays[1:]:
        if a is not None and a.dtype != dtype:
            raise TypeError(f"{op}: input dtype {dtype} and parameter dtype {a.dtype} differ")


# --------------------------------------------------------------------------------------------
# Functions (autograd nodes)
# --------------------------------------------------------------------------------------------


# -- oneDNN dispatch (shared with conv3d): each returns None when the oneDNN kernel declines ------


def _onednn_geometry(geom: Any) -> tuple:
    """A 2-d or 3-d geometry as the oneDNN kernels take it: stride, padding before, padding after,
    dilation, groups."""
    return (geom.stride, tuple(p[0] for p in geom.padding), tuple(p[1] for p in geom.padding), geom.dilation,
            geom.groups)


# (input shape, weight shape, geometry) of convolutions oneDNN declined as too small, with the
# size limit then in force: the next call with them goes straight to the NumPy kernel (a batch-1
# layer saves ~5 us of checks)
_too_small: dict = {}
_dnn_conv: Any = None  # rosenblatt.kernels.onednn.conv, imported on first use


def onednn_forward(x: Any, w: Any, b: Any, geom: Any) -> Any:
    """``conv(x, w) + b`` in oneDNN, or ``None``."""
    global _dnn_conv
    if not kernels.use_onednn(x, w, b):
        return None
    if _dnn_conv is None:
        from rosenblatt.kernels.onednn import conv

        _dnn_conv = conv
    dnn = _dnn_conv
    key = (x.shape, w.shape, geom)
    if _too_small.get(key) == dnn.MIN_MACS:
        return None
    args = _onednn_geometry(geom)
    y = dnn.conv_forward(x, w, b, *args)
    if y is None and not dnn.worthwhile(x.shape, w.shape, *args[:4]):
        if len(_too_small) > 4096:
            _too_small.clear()
        _too_small[key] = dnn.MIN_MACS
    return y


def onednn_grad_input(gy: Any, w: Any, x_shape: tuple[int, ...], geom: Any) -> Any:
    """The input gradient (a transposed convolution) in oneDNN, or ``None``."""
    if not kernels.use_onednn(gy, w):
        return None
    from rosenblatt.kernels.onednn import conv as dnn

    return dnn.conv_backward_data(gy, w, tuple(x_shape), *_onednn_geometry(geom))


def onednn_grad_weight(x: Any, gy: Any, w_shape: tuple[int, ...], geom: Any) -> Any:
    """The weight gradient in oneDNN, or ``None``. ``x`` may be a copy a forward pass kept
    (:func:`rosenblatt.kernels.onednn.conv.conv_forward_keeping_input`)."""
    if not kernels.use_onednn(getattr(x, "plain", x), gy):
        return None
    from rosenblatt.kernels.onednn import conv as dnn

    grads = dnn.conv_backward_weights(x, gy, tuple(w_shape), False, *_onednn_geometry(geom))
    return None if grads is None else grads[0]


def onednn_backward(x: Any, w: Any, gy: Any, geom: Any, need_x: bool, need_b: bool) -> tuple | None:
    """``(gx or None, gw, gb or None)`` of a convolution in one oneDNN call, or ``None``.

    For a node whose weight needs a gradient: the output gradient is reordered once for the data
    and the weights passes, and the bias gradient comes with the weights pass. ``x`` may be the copy
    :meth:`ConvKernels.conv` kept (``ctx.x_relaid``).
    """
    if not kernels.use_onednn(getattr(x, "plain", x), w, gy):
        return None
    from rosenblatt.kernels.onednn import conv as dnn

    args = _onednn_geometry(geom)
    if need_x:
        return dnn.conv_backward(x, w, gy, need_b, *args)
    grads = dnn.conv_backward_weights(x, gy, w.shape, need_b, *args)
    return None if grads is None else (None,) + grads


class ConvKernels:
    """One dimensionality's NumPy array kernels and the three Functions that use them.

    ``conv2d`` and ``conv3d`` share the Functions' logic (oneDNN first, then the NumPy kernel);
    each Function class finds its family here, so the gradient of a 3-D convolution is a 3-D
    convolution. The three are the convolution, the transposed convolution (the convolution's
    input gradient) and the weight gradient (bilinear in the input and the output gradient): the
    differentiable ``backward`` of each is built from the other two, so ``create_graph=True``
    gives exact second derivatives (gradient penalties, gradgradcheck); ``backward_arrays`` calls
    the array kernels directly.
    """

    def __init__(self, forward: Any, grad_input: Any, grad_weight: Any) -> None:
        self.forward, self.grad_input, self.grad_weight = forward, grad_input, grad_weight
        self.function: Any = None
        self.transpose_function: Any = None
        self.weight_grad_function: Any = None

    def bind(self, function: Any, transpose_function: Any, weight_grad_function: Any) -> None:
        """Attach the family's three Function classes (and the family to each of them)."""
        self.function, self.transpose_function, self.weight_grad_function = (
            function, transpose_function, weight_grad_function)
        for cls in (function, transpose_function, weight_grad_function):
            cls.family = self

    # -- array kernels: oneDNN when it takes the call, else the NumPy (CuPy) kernel ----------------

    def conv(self, x: Any, w: Any, b: Any, geom: Any, ctx: Any = None) -> Any:
        """``conv(x, w) + b``. Given the node ``ctx`` of a convolution whose weight needs a gradient,
        oneDNN's forward keeps its copy of ``x`` in the primitive's layout as ``ctx.x_relaid`` for
        the weights pass of backward."""
        if ctx is not None and ctx.needs_input_grad[1] and kernels.use_onednn(x, w, b):
            from rosenblatt.kernels.onednn import conv as dnn

            kept = dnn.conv_forward_keeping_input(x, w, b, *_onednn_geometry(geom))
            if kept is not None:
                if kept[1] is not None:
                    ctx.x_relaid = kept[1]
                return kept[0]
        y = onednn_forward(x, w, b, geom)
        if y is not None:
            return y
        y = self.forward(x, w, geom)
        if b is not None:
            y += b.reshape((1, -1) + (1,) * (y.ndim - 2))
        return y

    def conv_and_weight_grad(self, g: Any, w: Any, x: Any, w_shape: tuple[int, ...], geom: Any,
                             need_conv: bool, need_w: bool) -> tuple[Any, Any]:
        """``(conv(g, w) or None, weight_grad(g, x) or None)``: the gradients of a transposed
        convolution of ``x`` (``g`` its output gradient). With oneDNN, when both are needed, ``g`` is
        reordered once into the convolution's layout and that copy serves the weights pass too
        (64x64x8x8 into 64x32x16x16, 4x4 stride 2: 0.18 ms of a 4.6 ms forward and backward)."""
        if need_conv and need_w and kernels.use_onednn(g, w, x):
            from rosenblatt.kernels.onednn import conv as dnn

            kept = dnn.conv_forward_keeping_input(g, w, None, *_onednn_geometry(geom))
            if kept is not None:
                gw = None if kept[1] is None else onednn_grad_weight(kept[1], x, w_shape, geom)
                return kept[0], gw if gw is not None else self.weight_grad(g, x, w_shape, geom)
        return (self.conv(g, w, None, geom) if need_conv else None,
                self.weight_grad(g, x, w_shape, geom) if need_w else None)

    def transpose(self, gy: Any, w: Any, x_shape: tuple[int, ...], geom: Any) -> Any:
        """The transposed convolution of ``gy`` (the convolution's input gradient)."""
        gx = onednn_grad_input(gy, w, x_shape, geom)
        return gx if gx is not None else self.grad_input(gy, w, tuple(x_shape), geom)

    def weight_grad(self, x: Any, gy: Any, w_shape: tuple[int, ...], geom: Any) -> Any:
        """The convolution's weight gradient."""
        gw = onednn_grad_weight(x, gy, w_shape, geom)
        return gw if gw is not None else self.grad_weight(x, gy, tuple(w_shape), geom)


class Conv2dFunction(Function):
    """``y = conv2d(x, w) + b``; its differentiable backward is a :class:`ConvTranspose2dFunction`
    and a :class:`Conv2dWeightGradFunction`."""

    family: ConvKernels

    @staticmethod
    def forward(ctx, x, w, b, geom):
        return type(ctx).family.conv(x, w, b, geom, ctx)

    @staticmethod
    def backward(ctx, gy):
        family = type(ctx).family
        x, w, b, geom = ctx.inputs
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        gx = family.transpose_function.apply(gy, w, x.shape, geom) if need_x else None
        gw = family.weight_grad_function.apply(x, gy, w.shape, geom) if need_w else None
        gb = sum_op(gy, axis=(0,) + tuple(range(2, gy.ndim))) if need_b else None
        return gx, gw, gb, None

    @staticmethod
    def backward_arrays(ctx, gy):
        x, w, b, geom = ctx.inputs
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        if need_w:  # x as the forward pass reordered it, when it kept that copy
            grads = onednn_backward(getattr(ctx, "x_relaid", None) or x.data, w.data, gy, geom, need_x, need_b)
            if grads is not None:
                return grads[0], grads[1], grads[2] if need_b else None, None
        family = type(ctx).family
        gx = family.transpose(gy, w.data, x.shape, geom) if need_x else None
        gw = family.weight_grad(x.data, gy, w.shape, geom) if need_w else None
        gb = gy.sum(axis=(0,) + tuple(range(2, gy.ndim))) if need_b else None
        return gx, gw, gb, None


class ConvTranspose2dFunction(Function):
    """``conv_transpose2d(gy, w)``, the input gradient of ``conv2d``: linear in ``gy`` and in ``w``;
    its own gradients are a convolution (for ``gy``) and a weight gradient (for ``w``)."""

    family: ConvKernels

    @staticmethod
    def forward(ctx, gy, w, x_shape, geom):
        return type(ctx).family.transpose(gy, w, x_shape, geom)

    @staticmethod
    def backward(ctx, ggx):
        family = type(ctx).family
        gy, w, _, geom = ctx.inputs
        need_gy, need_w = ctx.needs_input_grad[:2]
        d_gy = family.function.apply(ggx, w, None, geom) if need_gy else None
        d_w = family.weight_grad_function.apply(ggx, gy, w.shape, geom) if need_w else None
        return d_gy, d_w, None, None

    @staticmethod
    def backward_arrays(ctx, ggx):
        family = type(ctx).family
        gy, w, _, geom = ctx.inputs
        need_gy, need_w = ctx.needs_input_grad[:2]
        d_gy, d_w = family.conv_and_weight_grad(ggx, w.data, gy.data, w.shape, geom, need_gy, need_w)
        return d_gy, d_w, None, None


class ConvTranspose2dBiasFunction(Function):
    """``conv_transpose2d(x, w) + b`` in one node: the bias is added into the transposed
    convolution's fresh output (one threaded pass) and its gradient is a per-channel sum
    (:func:`rosenblatt.kernels.conv.channel_sums`), not a separate broadcast node (1.15 ms of a
    64x16x32x32 output's 3.6 ms forward and backward went to the bias that way). The other
    gradients are :class:`ConvTranspose2dFunction`'s."""

    @staticmethod
    def forward(ctx, x, w, b, out_shape, geom):
        return add_channel_bias_(CONV2D_KERNELS.transpose(x, w, out_shape, geom), b)

    @staticmethod
    def backward(ctx, gy):
        x, w, b, out_shape, geom = ctx.inputs
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        gx = Conv2dFunction.apply(gy, w, None, geom) if need_x else None
        gw = Conv2dWeightGradFunction.apply(gy, x, w.shape, geom) if need_w else None
        gb = sum_op(gy, axis=(0, 2, 3)) if need_b else None
        return gx, gw, gb, None, None

    @staticmethod
    def backward_arrays(ctx, gy):
        x, w, b, out_shape, geom = ctx.inputs
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        gx, gw = CONV2D_KERNELS.conv_and_weight_grad(gy, w.data, x.data, w.shape, geom, need_x, need_w)
        gb = channel_sums(gy) if need_b else None
        return gx, gw, gb, None, None


class Conv2dWeightGradFunction(Function):
    """``conv2d_weight(x, gy)``, the weight gradient of ``conv2d``: bilinear; its gradients are a
    transposed convolution (for ``x``) and a convolution (for ``gy``)."""

    family: ConvKernels

    @staticmethod
    def forward(ctx, x, gy, w_shape, geom):
        return type(ctx).family.weight_grad(x, gy, w_shape, geom)

    @staticmethod
    def backward(ctx, ggw):
        family = type(ctx).family
        x, gy, _, geom = ctx.inputs
        need_x, need_gy = ctx.needs_input_grad[:2]
        d_x = family.transpose_function.apply(gy, ggw, x.shape, geom) if need_x else None
        d_gy = family.function.apply(x, ggw, None, geom) if need_gy else None
        return d_x, d_gy, None, None

    @staticmethod
    def backward_arrays(ctx, ggw):
        family = type(ctx).family
        x, gy, _, geom = ctx.inputs
        need_x, need_gy = ctx.needs_input_grad[:2]
        d_x = family.transpose(gy.data, ggw, x.shape, geom) if need_x else None
        d_gy = family.conv(x.data, ggw, None, geom) if need_gy else None
        return d_x, d_gy, None, None


CONV2D_KERNELS = ConvKernels(conv2d_array, conv2d_grad_input_array, conv2d_grad_weight_array)
CONV2D_KERNELS.bind(Conv2dFunction, ConvTranspose2dFunction, Conv2dWeightGradFunction)


# --------------------------------------------------------------------------------------------
# Public functions
# --------------------------------------------------------------------------------------------


def _check_weight(op: str, x: Tensor, weight: Tensor, bias: Tensor | None, groups: int,
                  spatial: int, transposed: bool = False) -> None:
    if not isinstance(x, Tensor) or not isinstance(weight, Tensor):
        raise TypeError(f"{op}: expected tensors for input and weight, got {type(x).__name__} and "
                        f"{type(weight).__name__}")
    names = "(N, C, L)" if spatial == 1 else "(N, C, H, W)"
    if x.ndim != spatial + 2:
        raise ValueError(f"{op}: expected a {spatial + 2}-D input {names}, got shape {x.shape}")
    if weight.ndim != spatial + 2:
        raise ValueError(f"{op}: expected a {spatial + 2}-D weight, got shape {weight.shape}")
    if not isinstance(groups, (int, np.integer)) or groups < 1:
        raise ValueError(f"{op}: groups must be a positive int, got {groups!r}")
    _check_float(op, x.data, weight.data, None if bias is None else bias.data)
    c = x.shape[1]
    if transposed:
        if weight.shape[0] != c:
            raise ValueError(f"{op}: expected input with {weight.shape[0]} channels (weight shape "
                             f"{weight.shape}), got {c} channels (input shape {x.shape})")
        if c % groups:
            raise ValueError(f"{op}: groups={groups} must divide the {c} input channels")
        out_channels = weight.shape[1] * groups
    else:
        if weight.shape[0] % groups:
            raise ValueError(f"{op}: groups={groups} must divide the {weight.shape[0]} output channels")
        if weight.shape[1] * groups != c:
            raise ValueError(f"{op}: expected input with {weight.shape[1] * groups} channels (weight shape "
                             f"{weight.shape}, groups={groups}), got {c} channels (input shape {x.shape})")
        out_channels = weight.shape[0]
    if bias is not None:
        if not isinstance(bias, Tensor):
            raise TypeError(f"{op}: bias must be a tensor or None, got {type(bias).__name__}")
        if bias.shape != (out_channels,):
            raise ValueError(f"{op}: expected bias of shape ({out_channels},), got {bias.shape}")


def _conv_geometry(op: str, in_hw: tuple[int, int], kernel: tuple[int, int], stride: Any, padding: Any,
                   dilation: Any, groups: int) -> ConvGeometry:
    """The checked geometry; remembered for arguments that are plain ints, tuples of them or strings
    (a layer's own attributes), so a layer called again skips the checks' cost, not the checks."""
    key = (op, in_hw, kernel, stride, padding, dilation, groups)
    return _geometries.get(key, all(map(plain, key)),
                           lambda: _check_geometry(op, in_hw, kernel, stride, padding, dilation, groups))


_geometries = GeometryCache()


def _check_geometry(op: str, in_hw: tuple[int, int], kernel: tuple[int, int], stride: Any, padding: Any,
                    dilation: Any, groups: int) -> ConvGeometry:
    stride = _int_tuple(op, "stride", stride, 2)
    dilation = _int_tuple(op, "dilation", dilation, 2)
    pads = _padding_pairs(op, padding, kernel, stride, dilation)
    for size, k, p, d, axis in zip(in_hw, kernel, pads, dilation, "HW"):
        extent = d * (k - 1) + 1
        if size + p[0] + p[1] < extent:
            raise ValueError(f"{op}: kernel extent {extent} (kernel {k}, dilation {d}) is larger than the "
                             f"padded input {size + p[0] + p[1]} along {axis}")
    return ConvGeometry(stride, pads, dilation, int(groups))


def conv2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride: int | tuple[int, int] = 1,
           padding: int | tuple[int, int] | str = 0, dilation: int | tuple[int, int] = 1,
           groups: int = 1) -> Tensor:
    """2-D convolution (cross-correlation, as in PyTorch) of an ``(N, C, H, W)`` input.

    ``weight`` is ``(O, C/groups, kh, kw)``, ``bias`` ``(O,)``. ``padding`` is an int, a pair, or
    ``"same"``/``"valid"`` (``"same"`` with an even kernel pads one more at the bottom/right, like
    PyTorch). ``groups=C`` with ``O = m*C`` is a depthwise convolution. A 3-D ``(C, H, W)`` input is
    treated as a batch of one. Output ``(N, O, OH, OW)`` with
    ``OH = (H + pad_top + pad_bottom - dilation*(kh-1) - 1) // stride + 1``.
    """
    if isinstance(input, Tensor) and input.ndim == 3:
        return _unbatched(conv2d, input, weight, bias, stride, padding, dilation, groups)
    _check_weight("conv2d", input, weight, bias, groups, 2)
    geom = _conv_geometry("conv2d", input.shape[2:], weight.shape[2:], stride, padding, dilation, groups)
    return Conv2dFunction.apply(input, weight, bias, geom)


def _unbatched(fn: Any, input: Tensor, *args: Any) -> Tensor:
    out = fn(reshape(input, (1,) + input.shape), *args)
    return reshape(out, out.shape[1:])


def conv1d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride: int | tuple[int] = 1,
           padding: int | tuple[int] | str = 0, dilation: int | tuple[int] = 1, groups: int = 1) -> Tensor:
    """1-D convolution of an ``(N, C, L)`` input with an ``(O, C/groups, k)`` weight.

    Same arguments as :func:`conv2d` with one spatial axis; computed as a 2-D convolution of
    height 1 (the reshapes are free views). A 2-D ``(C, L)`` input is a batch of one.
    """
    if isinstance(input, Tensor) and input.ndim == 2:
        return _unbatched(conv1d, input, weight, bias, stride, padding, dilation, groups)
    _check_weight("conv1d", input, weight, bias, groups, 1)
    (s,) = _int_tuple("conv1d", "stride", stride, 1)
    (d,) = _int_tuple("conv1d", "dilation", dilation, 1)
    pads = _padding_pairs("conv1d", padding, weight.shape[2:], (s,), (d,))
    length, k = input.shape[2], weight.shape[2]
    if length + sum(pads[0]) < d * (k - 1) + 1:
        raise ValueError(f"conv1d: kernel extent {d * (k - 1) + 1} (kernel {k}, dilation {d}) is larger than "
                         f"the padded input {length + sum(pads[0])}")
    geom = ConvGeometry((1, s), ((0, 0), pads[0]), (1, d), int(groups))
    x4 = reshape(input, (input.shape[0], input.shape[1], 1, length))
    w4 = reshape(weight, (weight.shape[0], weight.shape[1], 1, k))
    y = Conv2dFunction.apply(x4, w4, bias, geom)
    return reshape(y, (y.shape[0], y.shape[1], y.shape[3]))


def conv_transpose2d(input: Tensor, weight: Tensor, bias: Tensor | None = None,
                     stride: int | tuple[int, int] = 1, padding: int | tuple[int, int] = 0,
                     output_padding: int | tuple[int, int] = 0, groups: int = 1,
                     dilation: int | tuple[int, int] = 1) -> Tensor:
    """Transposed convolution (the gradient of ``conv2d`` with respect to its input).

    ``weight`` is ``(C_in, C_out/groups, kh, kw)`` as in PyTorch. Output size
    ``(H - 1)*stride - 2*padding + dilation*(kh - 1) + output_padding + 1``; ``output_padding``
    (smaller than the stride or the dilation) picks among the input sizes a strided convolution
    maps to the same output size.
    """
    op = "conv_transpose2d"
    if isinstance(input, Tensor) and input.ndim == 3:
        return _unbatched(conv_transpose2d, input, weight, bias, stride, padding, output_padding, groups,
                          dilation)
    _check_weight(op, input, weight, bias, groups, 2, transposed=True)
    stride = _int_tuple(op, "stride", stride, 2)
    dilation = _int_tuple(op, "dilation", dilation, 2)
    if isinstance(padding, str):
        raise ValueError(f"{op}: padding must be an int or a pair of ints, got {padding!r}")
    pads = _padding_pairs(op, padding, weight.shape[2:], stride, dilation)
    out_pad = _int_tuple(op, "output_padding", output_padding, 2, minimum=0)
    for op_, s, d in zip(out_pad, stride, dilation):
        if op_ >= max(s, d):
            raise ValueError(f"{op}: output_padding {out_pad} must be smaller than stride {stride} or "
                             f"dilation {dilation}")
    n, _, h, w = input.shape
    kh, kw = weight.shape[2:]
    out_h = (h - 1) * stride[0] - sum(pads[0]) + dilation[0] * (kh - 1) + out_pad[0] + 1
    out_w = (w - 1) * stride[1] - sum(pads[1]) + dilation[1] * (kw - 1) + out_pad[1] + 1
    if out_h < 1 or out_w < 1:
        raise ValueError(f"{op}: the padding {padding} leaves an empty output ({out_h}, {out_w}) for input "
                         f"shape {input.shape}")
    geom = ConvGeometry(stride, pads, dilation, int(groups))
    out_shape = (n, weight.shape[1] * groups, out_h, out_w)
    if bias is not None:
        return ConvTranspose2dBiasFunction.apply(input, weight, bias, out_shape, geom)
    return ConvTranspose2dFunction.apply(input, weight, out_shape, geom)


def conv2d_reference(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride: Any = 1,
                     padding: Any = 0, dilation: Any = 1, groups: int = 1) -> Tensor:
    """The textbook convolution from primitive ops (pad, strided slices, einsum): slow, readable.

    Kept as the oracle of :func:`conv2d`'s fused path: every output is the sum, over kernel
    offsets ``(i, j)``, of the input window shifted by that offset times ``weight[:, :, i, j]``.
    """
    geom = _conv_geometry("conv2d_reference", input.shape[2:], weight.shape[2:], stride, padding, dilation,
                          groups)
    (sh, sw), ((pt, pb), (pl, pr)), (dh, dw) = geom.stride, geom.padding, geom.dilation
    x = pad_op(input, (pl, pr, pt, pb))
    o, cg, kh, kw = weight.shape
    oh = _output_size(input.shape[2], kh, sh, (pt, pb), dh)
    ow = _output_size(input.shape[3], kw, sw, (pl, pr), dw)
    og = o // groups
    outputs = []
    for g in range(groups):
        xg = x[:, g * cg:(g + 1) * cg]
        wg = weight[g * og:(g + 1) * og]
        acc = None
        for i in range(kh):
            for j in range(kw):
                window = xg[:, :, i * dh: i * dh + sh * (oh - 1) + 1: sh, j * dw: j * dw + sw * (ow - 1) + 1: sw]
                term = einsum("nchw,oc->nohw", window, wg[:, :, i, j])
                acc = term if acc is None else acc + term
        outputs.append(acc)
    y = outputs[0] if groups == 1 else cat(outputs, axis=1)
    if bias is not None:
        y = y + reshape(bias, (1, -1, 1, 1))
    return y


__all__ = ["conv1d", "conv2d", "conv2d_reference", "conv_transpose2d", "clear_workspace", "im2col",
           "Conv2dFunction", "Conv2dWeightGradFunction", "ConvGeometry", "ConvTranspose2dFunction", "workspace"]
