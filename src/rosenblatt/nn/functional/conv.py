"""Convolutions: ``conv1d``, ``conv2d`` and ``conv_transpose2d`` (NCHW data, PyTorch weight layouts).

How the fast path works (``conv2d`` of an ``(N, C, H, W)`` input with an ``(O, C/g, kh, kw)`` weight):

1. **im2col in one copy.** The (zero-padded) input is viewed, without copying, as an
   ``(N, C, kh, kw, OH, OW)`` array of sliding windows (``as_strided``); one copy turns the view
   into the ``(C*kh*kw, N*OH*OW)`` column matrix. The copy walks the input in memory order, and
   its destination is a workspace buffer reused between calls, so a training step does not fault
   in a fresh array for every layer. The batch is processed in chunks of a few MB of columns, so
   they are still in cache when the GEMM reads them. Stride-1 convolutions use *wide* columns
   (:func:`wide_columns`): each output row spans the padded width, so the copy moves whole
   padded images instead of short rows; the few extra outputs per row are dropped.
2. **One GEMM.** ``weight (O, C*kh*kw) @ columns`` gives the ``(N, O, OH*OW)`` output directly in
   NCHW order (BLAS, in the input's dtype: float32 for training, float64 for gradient checks).
3. **Backward without scatter-adds.** The weight gradient is one GEMM against the columns
   (recomputed rather than kept: the columns are ``kh*kw`` times the input's size). The input
   gradient of a stride-1 convolution is itself a convolution of the output gradient with the
   flipped, transposed weight; for larger strides it is ``col2im``: one strided slice-add per
   kernel offset (``kh*kw`` of them) into a padded buffer. ``np.add.at`` is never used.
4. **Differentiable gradients.** The two gradients are themselves :class:`Function` s
   (:class:`Conv2dGradInput`, :class:`Conv2dGradWeight`) whose backward passes are convolutions,
   so ``create_graph=True`` gives exact second derivatives (gradient penalties, gradgradcheck).

:func:`conv2d_reference` is the readable composite (pad, slice, einsum) kept as the test oracle.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, NamedTuple

import numpy as np

from rosenblatt.backend import get_array_module
from rosenblatt.core import Function, Tensor
from rosenblatt.ops import cat, einsum, reshape
from rosenblatt.ops import pad as pad_op
from rosenblatt.ops import sum as sum_op

# --------------------------------------------------------------------------------------------
# Workspace: large scratch arrays reused between calls
# --------------------------------------------------------------------------------------------

_WORKSPACE_MAX_BYTES = 512 * 2**20
_WORKSPACE_MAX_ENTRIES = 48


class _Workspace(threading.local):
    """Per-thread LRU cache of scratch arrays keyed by (purpose, shape, dtype, backend)."""

    def __init__(self) -> None:
        self.buffers: OrderedDict[tuple, Any] = OrderedDict()
        self.nbytes = 0


_workspace = _Workspace()


def workspace(tag: str, shape: tuple[int, ...], dtype: Any, xp: Any = np) -> Any:
    """A scratch array of ``shape``/``dtype`` reused between calls; its contents are undefined.

    A fresh 100 MB array costs tens of thousands of page faults each time it is touched; reusing
    the same memory from one training step to the next avoids that. Callers must not let the
    array escape (return it, save it for backward): the next call with the same ``tag`` and
    shape gets the same memory.
    """
    key = (tag, shape, np.dtype(dtype).str, xp.__name__)
    buffers = _workspace.buffers
    buffer = buffers.get(key)
    if buffer is not None:
        buffers.move_to_end(key)
        return buffer
    buffer = xp.empty(shape, dtype=dtype)
    if buffer.nbytes > _WORKSPACE_MAX_BYTES // 2:
        return buffer  # too large to keep around
    buffers[key] = buffer
    _workspace.nbytes += buffer.nbytes
    while _workspace.nbytes > _WORKSPACE_MAX_BYTES or len(buffers) > _WORKSPACE_MAX_ENTRIES:
        _, old = buffers.popitem(last=False)
        _workspace.nbytes -= old.nbytes
    return buffer


def clear_workspace() -> None:
    """Release the scratch buffers that convolution and pooling keep between calls."""
    _workspace.buffers.clear()
    _workspace.nbytes = 0


def _as_strided(xp: Any, array: Any, shape: tuple[int, ...], strides: tuple[int, ...]) -> Any:
    return xp.lib.stride_tricks.as_strided(array, shape=shape, strides=strides)


def gemm_workspace(tag: str, rows: int, cols: int, dtype: Any, xp: Any = np) -> Any:
    """A ``(rows, cols)`` workspace matrix whose rows are padded by 64 elements.

    Column matrices are wide (``N*OH*OW`` columns). When a row is a power-of-two multiple of
    4 KiB long, every row maps to the same cache sets and BLAS's packing of the operand thrashes
    (measured: a third slower); a padded leading dimension avoids that. The result is a view.
    """
    buffer = workspace(tag, (rows, cols + 64), dtype, xp)
    return buffer[:, :cols]


# --------------------------------------------------------------------------------------------
# Argument normalisation
# --------------------------------------------------------------------------------------------


class ConvGeometry(NamedTuple):
    """Stride, per-side padding ``((top, bottom), (left, right))``, dilation and groups."""

    stride: tuple[int, int]
    padding: tuple[tuple[int, int], tuple[int, int]]
    dilation: tuple[int, int]
    groups: int


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


def _output_size(size: int, kernel: int, stride: int, pads: tuple[int, int], dilation: int) -> int:
    return (size + pads[0] + pads[1] - dilation * (kernel - 1) - 1) // stride + 1


def _check_float(op: str, *arrays: Any) -> None:
    dtype = arrays[0].dtype
    if dtype.kind != "f":
        raise TypeError(f"{op}: expected a floating input, got dtype {dtype}")
    for a in arrays[1:]:
        if a is not None and a.dtype != dtype:
            raise TypeError(f"{op}: input dtype {dtype} and parameter dtype {a.dtype} differ")


# --------------------------------------------------------------------------------------------
# Array kernels (raw NumPy/CuPy arrays in, arrays out)
# --------------------------------------------------------------------------------------------


# The column matrix is kh*kw times the input's size; a batch is processed in chunks whose
# columns stay under this size. A few MB keeps each chunk's columns in cache between the copy
# that writes them and the GEMM that reads them (measured: a whole-batch 40 MB column matrix
# makes a ResNet-20 convolution ~1.6x slower); the GEMMs stay thousands of columns wide.
COLUMNS_MAX_BYTES = 4 * 2**20


def _batch_chunks(n: int, bytes_per_sample: int) -> tuple[int, list[tuple[int, int]]]:
    """Split a batch of ``n`` into near-equal chunks; returns the chunk capacity and the ranges."""
    if n == 0:
        return 1, []
    capacity = max(1, min(n, COLUMNS_MAX_BYTES // max(bytes_per_sample, 1)))
    count = -(-n // capacity)
    capacity = -(-n // count)
    return capacity, [(start, min(start + capacity, n)) for start in range(0, n, capacity)]


def _channel_major(x: Any, pads: tuple[tuple[int, int], tuple[int, int]], xp: Any, capacity: int) -> Any:
    """``x`` as ``(C, N, H, W)``, zero-padded on H and W, in a workspace buffer.

    Channel-major order lets the column matrix be ``(C*kh*kw, N*OH*OW)``, so the whole batch is
    one large GEMM instead of N small ones (small GEMMs waste BLAS threads), while the im2col
    copy still reads this buffer in memory order.
    """
    (top, bottom), (left, right) = pads
    n, c, h, w = x.shape
    hp, wp = h + top + bottom, w + left + right
    out = workspace("conv.input", (c, capacity, hp, wp), x.dtype, xp)[:, :n]
    # Only the border needs zeros: the interior is overwritten right after.
    if top:
        out[:, :, :top] = 0
    if bottom:
        out[:, :, hp - bottom:] = 0
    if left:
        out[:, :, :, :left] = 0
    if right:
        out[:, :, :, wp - right:] = 0
    out[:, :, top:top + h, left:left + w] = x.transpose(1, 0, 2, 3)
    return out


def _conv_output_hw(x_shape: tuple[int, ...], kernel: tuple[int, int], geom: ConvGeometry) -> tuple[int, int]:
    return (_output_size(x_shape[2], kernel[0], geom.stride[0], geom.padding[0], geom.dilation[0]),
            _output_size(x_shape[3], kernel[1], geom.stride[1], geom.padding[1], geom.dilation[1]))


def im2col(x: Any, kernel: tuple[int, int], geom: ConvGeometry, capacity: int | None = None) -> Any:
    """Columns ``(C*kh*kw, N*OH*OW)`` of ``x`` (a workspace view: use it before the next call).

    Row ``c*kh*kw + i*kw + j`` holds the input pixels that kernel offset ``(i, j)`` of channel
    ``c`` meets at every output position of every sample. ``capacity`` (at least ``N``) sizes
    the reused buffer, so that every chunk of a batch shares it.
    """
    xp = get_array_module(x)
    n, c, h, w = x.shape
    capacity = capacity or n
    kh, kw = kernel
    (sh, sw), (dh, dw) = geom.stride, geom.dilation
    oh, ow = _conv_output_hw(x.shape, kernel, geom)
    padded = _channel_major(x, geom.padding, xp, capacity)
    if kh == 1 and kw == 1 and (sh, sw) == (1, 1) and geom.padding == ((0, 0), (0, 0)):
        return padded.reshape(c, n * h * w)  # a 1x1 convolution needs no second copy
    s_c, s_n, s_h, s_w = padded.strides
    windows = _as_strided(xp, padded, (c, kh, kw, n, oh, ow),
                          (s_c, dh * s_h, dw * s_w, s_n, sh * s_h, sw * s_w))
    cols = gemm_workspace("conv.cols", c * kh * kw, capacity * oh * ow, x.dtype, xp)[:, :n * oh * ow]
    xp.copyto(cols.reshape(c, kh, kw, n, oh, ow), windows)  # a view: the rows stay padded
    return cols


def _uses_wide_columns(kernel: tuple[int, int], geom: ConvGeometry) -> bool:
    """Stride-1 convolutions (but not the copy-free unpadded 1x1) take the wide-column path."""
    if geom.stride != (1, 1):
        return False
    return not (kernel == (1, 1) and geom.padding == ((0, 0), (0, 0)))


def wide_columns(x: Any, kernel: tuple[int, int], geom: ConvGeometry, capacity: int) -> Any:
    """Columns ``(C*kh*kw, N*OH*Wp)`` of a stride-1 convolution, ``Wp`` the padded width.

    Each output row is computed over the full padded width ``Wp`` instead of ``OW``: the last
    ``Wp - OW`` outputs of every row are garbage and dropped. In exchange, the ``OH*Wp``
    window positions of one sample, channel and kernel offset are consecutive in the padded
    input, so the im2col copy moves rows of ``OH*Wp`` elements instead of ``OW`` (a 32x32 image:
    1,088 instead of 32), which makes it several times cheaper. The padded input is
    ``(N, C, Hp, Wp)`` in a flat workspace with ``(kw-1)*dw`` zeros of slack after it: the
    windows of the last garbage columns reach that far.
    """
    xp = get_array_module(x)
    n, c, h, w = x.shape
    kh, kw = kernel
    dh, dw = geom.dilation
    (top, bottom), (left, right) = geom.padding
    hp, wp = h + top + bottom, w + left + right
    oh = hp - dh * (kh - 1)
    slack = dw * (kw - 1)
    flat = workspace("conv.wide_input", (capacity * c * hp * wp + slack,), x.dtype, xp)
    flat[n * c * hp * wp:n * c * hp * wp + slack] = 0
    padded = flat[:n * c * hp * wp].reshape(n, c, hp, wp)
    # Only the border needs zeros: the interior is overwritten right after.
    if top:
        padded[:, :, :top] = 0
    if bottom:
        padded[:, :, hp - bottom:] = 0
    if left:
        padded[:, :, :, :left] = 0
    if right:
        padded[:, :, :, wp - right:] = 0
    padded[:, :, top:top + h, left:left + w] = x
    item = flat.itemsize
    windows = _as_strided(xp, flat, (c, kh, kw, n, oh * wp),
                          (hp * wp * item, dh * wp * item, dw * item, c * hp * wp * item, item))
    cols = gemm_workspace("conv.cols", c * kh * kw, capacity * oh * wp, x.dtype, xp)[:, :n * oh * wp]
    xp.copyto(cols.reshape(c, kh, kw, n, oh * wp), windows)
    return cols


def _channel_major_grad(gy: Any, groups: int, capacity: int, row: int | None = None) -> Any:
    """The output gradient as ``(G, O/G, N*OH*row)`` (one copy; the GEMMs need it channel-major).

    ``row`` (default ``OW``) wider than ``OW`` pads every output row with zeros, to match
    :func:`wide_columns`.
    """
    xp = get_array_module(gy)
    n, o, oh, ow = gy.shape
    row = ow if row is None else row
    out = gemm_workspace("conv.grad_output", o, capacity * oh * row, gy.dtype, xp)[:, :n * oh * row]
    rows = out.reshape(o, n, oh, row)
    if row > ow:
        rows[:, :, :, ow:] = 0
    xp.copyto(rows[:, :, :, :ow], gy.transpose(1, 0, 2, 3))
    return out.reshape(groups, o // groups, n * oh * row)


def _columns_per_sample(x_shape: tuple[int, ...], kernel: tuple[int, int], geom: ConvGeometry,
                        itemsize: int, row: int) -> int:
    oh, _ = _conv_output_hw(x_shape, kernel, geom)
    return x_shape[1] * kernel[0] * kernel[1] * oh * row * itemsize


def conv2d_array(x: Any, w: Any, geom: ConvGeometry) -> Any:
    """The convolution itself on raw arrays: im2col, one GEMM per group, back to NCHW."""
    xp = get_array_module(x)
    n = x.shape[0]
    o, cg, kh, kw = w.shape
    g = geom.groups
    k = cg * kh * kw
    oh, ow = _conv_output_hw(x.shape, (kh, kw), geom)
    wide = _uses_wide_columns((kh, kw), geom)
    # wide columns: every output row spans the padded width, its last columns dropped below
    row = x.shape[3] + sum(geom.padding[1]) if wide else ow
    capacity, chunks = _batch_chunks(n, _columns_per_sample(x.shape, (kh, kw), geom, x.dtype.itemsize, row))
    y = xp.empty((n, o, oh, ow), dtype=x.dtype)  # fresh memory: the result never lives in the workspace
    for start, stop in chunks:
        b = stop - start
        if wide:
            cols = wide_columns(x[start:stop], (kh, kw), geom, capacity)
        else:
            cols = im2col(x[start:stop], (kh, kw), geom, capacity)
        out = gemm_workspace("conv.output", o, capacity * oh * row, x.dtype, xp)[:, :b * oh * row]
        if g == 1:
            xp.matmul(w.reshape(o, k), cols, out=out)
        else:
            xp.matmul(w.reshape(g, o // g, k), cols.reshape(g, k, b * oh * row),
                      out=out.reshape(g, o // g, b * oh * row))
        xp.copyto(y[start:stop], out.reshape(o, b, oh, row)[:, :, :, :ow].transpose(1, 0, 2, 3))
    return y


def conv2d_grad_weight_array(x: Any, gy: Any, w_shape: tuple[int, ...], geom: ConvGeometry) -> Any:
    """d(loss)/d(weight): the output gradient times the columns of ``x`` (one GEMM per group)."""
    xp = get_array_module(x)
    o, cg, kh, kw = w_shape
    g = geom.groups
    k = cg * kh * kw
    ow = gy.shape[3]
    wide = _uses_wide_columns((kh, kw), geom)
    row = x.shape[3] + sum(geom.padding[1]) if wide else ow
    capacity, chunks = _batch_chunks(x.shape[0], _columns_per_sample(x.shape, (kh, kw), geom, x.dtype.itemsize, row))
    gw = None
    for start, stop in chunks:
        if wide:
            # zeros in the dropped columns make the garbage windows add nothing
            gy_cm = _channel_major_grad(gy[start:stop], g, capacity, row)
            cols = wide_columns(x[start:stop], (kh, kw), geom, capacity)
        else:
            gy_cm = _channel_major_grad(gy[start:stop], g, capacity)
            cols = im2col(x[start:stop], (kh, kw), geom, capacity)
        # columns @ gy^T, transposed back: BLAS handles the long inner dimension (N*OH*OW)
        # better with the wide column matrix as the left operand (measured ~1.5x faster)
        if g == 1:
            part = xp.matmul(cols, gy_cm[0].T).T
        else:
            part = xp.matmul(cols.reshape(g, k, -1), gy_cm.transpose(0, 2, 1)).transpose(0, 2, 1)
        gw = part if gw is None else gw + part
    if gw is None:  # an empty batch
        return xp.zeros(w_shape, dtype=x.dtype)
    return gw.reshape(w_shape)


def _transposed_weight(w: Any, groups: int) -> Any:
    """The weight of the convolution that maps output gradients back to inputs: ``(C, O/g, kh, kw)``
    with channels swapped per group and the kernel rotated by 180 degrees."""
    xp = get_array_module(w)
    o, cg, kh, kw = w.shape
    wt = w.reshape(groups, o // groups, cg, kh, kw).transpose(0, 2, 1, 3, 4)[..., ::-1, ::-1]
    return xp.ascontiguousarray(wt).reshape(groups * cg, o // groups, kh, kw)


def conv2d_grad_input_array(gy: Any, w: Any, x_shape: tuple[int, ...], geom: ConvGeometry) -> Any:
    """d(loss)/d(input) of a convolution (also the forward of a transposed convolution)."""
    xp = get_array_module(gy)
    n, c, h, w_in = x_shape
    o, cg, kh, kw = w.shape
    g = geom.groups
    (sh, sw), (dh, dw) = geom.stride, geom.dilation
    (pt, pb), (pl, pr) = geom.padding
    oh, ow = gy.shape[2], gy.shape[3]
    # Stride 1: the input gradient is a plain convolution of the output gradient with the
    # flipped, transposed weight (padding d*(k-1) - p); it reuses the fast forward path.
    top, left = dh * (kh - 1) - pt, dw * (kw - 1) - pl
    bottom, right = h - oh + pt, w_in - ow + pl
    if sh == 1 and sw == 1 and min(top, left, bottom, right) >= 0:
        geom_t = ConvGeometry((1, 1), ((top, bottom), (left, right)), (dh, dw), g)
        return conv2d_array(gy, _transposed_weight(w, g), geom_t)
    # Otherwise col2im: gradient columns by one GEMM per group, then one strided slice-add per
    # kernel offset into a channel-major padded buffer.
    k = cg * kh * kw
    hp, wp = h + pt + pb, w_in + pl + pr
    gx = xp.empty(x_shape, dtype=gy.dtype)
    capacity, chunks = _batch_chunks(n, c * kh * kw * oh * ow * gy.dtype.itemsize)
    for start, stop in chunks:
        b = stop - start
        gy_cm = _channel_major_grad(gy[start:stop], g, capacity)
        gcols = gemm_workspace("conv.grad_cols", g * k, capacity * oh * ow, gy.dtype, xp)[:, :b * oh * ow]
        gcols = gcols.reshape(g, k, b * oh * ow)
        xp.matmul(w.reshape(g, o // g, k).transpose(0, 2, 1), gy_cm, out=gcols)
        gcols = gcols.reshape(c, kh, kw, b, oh, ow)
        target = workspace("conv.grad_input", (c, capacity, hp, wp), gy.dtype, xp)[:, :b]
        target.fill(0)
        for i in range(kh):
            rows = slice(i * dh, i * dh + sh * (oh - 1) + 1, sh)
            for j in range(kw):
                target[:, :, rows, j * dw: j * dw + sw * (ow - 1) + 1: sw] += gcols[:, i, j]
        xp.copyto(gx[start:stop], target[:, :, pt:pt + h, pl:pl + w_in].transpose(1, 0, 2, 3))
    return gx


# --------------------------------------------------------------------------------------------
# Functions (autograd nodes)
# --------------------------------------------------------------------------------------------


class Conv2dFunction(Function):
    """``y = conv2d(x, w) + b``; backward through :class:`Conv2dGradInput` / :class:`Conv2dGradWeight`."""

    @staticmethod
    def forward(ctx, x, w, b, geom):
        y = conv2d_array(x, w, geom)
        if b is not None:
            y += b.reshape(1, -1, 1, 1)
        return y

    @staticmethod
    def backward(ctx, gy):
        x, w, b, geom = ctx.inputs
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        gx = Conv2dGradInput.apply(gy, w, x.shape, geom) if need_x else None
        gw = Conv2dGradWeight.apply(x, gy, w.shape, geom) if need_w else None
        gb = sum_op(gy, axis=(0, 2, 3)) if need_b else None
        return gx, gw, gb, None


class Conv2dGradInput(Function):
    """``gx = conv2d_grad_input(gy, w)``: linear in ``gy`` and in ``w``; its own gradients are a
    convolution (for ``gy``) and a weight gradient (for ``w``). Also the transposed convolution."""

    @staticmethod
    def forward(ctx, gy, w, x_shape, geom):
        return conv2d_grad_input_array(gy, w, tuple(x_shape), geom)

    @staticmethod
    def backward(ctx, ggx):
        gy, w, _, geom = ctx.inputs
        need_gy, need_w = ctx.needs_input_grad[:2]
        d_gy = Conv2dFunction.apply(ggx, w, None, geom) if need_gy else None
        d_w = Conv2dGradWeight.apply(ggx, gy, w.shape, geom) if need_w else None
        return d_gy, d_w, None, None


class Conv2dGradWeight(Function):
    """``gw = conv2d_grad_weight(x, gy)``: bilinear; its gradients are a transposed convolution
    (for ``x``) and a convolution (for ``gy``)."""

    @staticmethod
    def forward(ctx, x, gy, w_shape, geom):
        return conv2d_grad_weight_array(x, gy, tuple(w_shape), geom)

    @staticmethod
    def backward(ctx, ggw):
        x, gy, _, geom = ctx.inputs
        need_x, need_gy = ctx.needs_input_grad[:2]
        d_x = Conv2dGradInput.apply(gy, ggw, x.shape, geom) if need_x else None
        d_gy = Conv2dFunction.apply(x, ggw, None, geom) if need_gy else None
        return d_x, d_gy, None, None


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
    y = Conv2dGradInput.apply(input, weight, out_shape, geom)
    if bias is not None:
        y = y + reshape(bias, (1, -1, 1, 1))
    return y


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
           "Conv2dFunction", "Conv2dGradInput", "Conv2dGradWeight", "ConvGeometry", "workspace"]
