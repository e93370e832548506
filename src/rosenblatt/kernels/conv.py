"""NumPy (and CuPy) convolution kernels: arrays in, arrays out; the reference and the fallback.

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
The autograd Functions that call these kernels live in :mod:`rosenblatt.nn.functional.conv`;
with the oneDNN kernel set active, float32 NumPy arrays go to :mod:`rosenblatt.kernels.onednn.conv`
instead.
"""

from __future__ import annotations

import threading
from typing import Any, NamedTuple

import numpy as np

from rosenblatt import kernels
from rosenblatt.backend import get_array_module
from rosenblatt.kernels import gemm
from rosenblatt.kernels.gemm import matmul as _mm
from rosenblatt.kernels.workspace import gemm_workspace, workspace


class ConvGeometry(NamedTuple):
    """Stride, per-side padding ``((top, bottom), (left, right))``, dilation and groups."""

    stride: tuple[int, int]
    padding: tuple[tuple[int, int], tuple[int, int]]
    dilation: tuple[int, int]
    groups: int


def _output_size(size: int, kernel: int, stride: int, pads: tuple[int, int], dilation: int) -> int:
    return (size + pads[0] + pads[1] - dilation * (kernel - 1) - 1) // stride + 1


def _as_strided(xp: Any, array: Any, shape: tuple[int, ...], strides: tuple[int, ...]) -> Any:
    return xp.lib.stride_tricks.as_strided(array, shape=shape, strides=strides)



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


# A stride-1 NumPy convolution whose wide column matrix has at most this many elements (batch-1
# inference, LeNet-5's layers: 25x896 and 150x140) runs on a plan of its own: private buffers whose
# padding is zeroed once and whose window view is built once, so a call is three copies and a GEMM.
# LeNet-5's second convolution at batch 1: 73 -> 37 us per call (2 threads).
SMALL_PLAN_ELEMENTS = 1 << 16
_SMALL_PLANS_MAX = 64


class _SmallPlans(threading.local):
    def __init__(self) -> None:
        self.plans: dict[tuple, _SmallPlan] = {}


_small_plans = _SmallPlans()


class _SmallPlan:
    """Buffers and views of one small stride-1 convolution (one thread's)."""

    def __init__(self, x_shape: tuple[int, ...], w_shape: tuple[int, ...], geom: ConvGeometry, dtype: Any) -> None:
        n, c, h, w = x_shape
        o, _, kh, kw = w_shape
        dh, dw = geom.dilation
        (top, bottom), (left, right) = geom.padding
        hp, wp = h + top + bottom, w + left + right
        oh, ow = _conv_output_hw(x_shape, (kh, kw), geom)
        flat = np.zeros(n * c * hp * wp + dw * (kw - 1), dtype)  # the padding stays zero
        self.interior = flat[:n * c * hp * wp].reshape(n, c, hp, wp)[:, :, top:top + h, left:left + w]
        item = flat.itemsize
        self.windows = np.lib.stride_tricks.as_strided(
            flat, (c, kh, kw, n, oh * wp), (hp * wp * item, dh * wp * item, dw * item, c * hp * wp * item, item))
        self.cols = np.empty((c * kh * kw, n * oh * wp), dtype)
        self.cols_view = self.cols.reshape(c, kh, kw, n, oh * wp)
        self.out = np.empty((o, n * oh * wp), dtype)
        self.y_view = self.out.reshape(o, n, oh, wp)[:, :, :, :ow].transpose(1, 0, 2, 3)
        self.w_shape2 = (o, c * kh * kw)
        self.y_shape = (n, o, oh, ow)
        self.halves = dtype == np.float32 and gemm._halves(o, c * kh * kw, n * oh * wp)


def _small_plan(x: Any, w: Any, geom: ConvGeometry) -> _SmallPlan | None:
    """The plan of a small stride-1, ungrouped NumPy convolution, or ``None`` (any other)."""
    key = (x.shape, w.shape, geom, x.dtype.str)
    plans = _small_plans.plans
    plan = plans.get(key)
    if plan is not None:
        return plan
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    if (type(x) is not np.ndarray or type(w) is not np.ndarray or x.dtype != w.dtype or geom.groups != 1
            or not _uses_wide_columns((kh, kw), geom) or n == 0):
        return None
    oh, _ = _conv_output_hw(x.shape, (kh, kw), geom)
    if c * kh * kw * n * oh * (wd + sum(geom.padding[1])) > SMALL_PLAN_ELEMENTS:
        return None
    if len(plans) >= _SMALL_PLANS_MAX:
        plans.clear()
    plan = plans[key] = _SmallPlan(x.shape, w.shape, geom, x.dtype)
    return plan


def _small_conv(plan: _SmallPlan, x: Any, w: Any) -> Any:
    plan.interior[...] = x
    np.copyto(plan.cols_view, plan.windows)
    w2 = w.reshape(plan.w_shape2)
    if plan.halves and kernels.use_onednn():  # next to oneDNN's threads: no OpenBLAS threads
        gemm._numpy_halves(w2, plan.cols, plan.out, 0.0)
    else:
        _mm(w2, plan.cols, out=plan.out)
    y = np.empty(plan.y_shape, plan.out.dtype)
    np.copyto(y, plan.y_view)
    return y


def conv2d_array(x: Any, w: Any, geom: ConvGeometry) -> Any:
    """The convolution itself on raw arrays: im2col, one GEMM per group, back to NCHW."""
    plan = _small_plan(x, w, geom)
    if plan is not None:
        return _small_conv(plan, x, w)
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
            _mm(w.reshape(o, k), cols, out=out)
        else:
            _mm(w.reshape(g, o // g, k), cols.reshape(g, k, b * oh * row), out=out.reshape(g, o // g, b * oh * row))
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
            part = _mm(cols, gy_cm[0].T).T
        else:
            part = _mm(cols.reshape(g, k, -1), gy_cm.transpose(0, 2, 1)).transpose(0, 2, 1)
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
        _mm(w.reshape(g, o // g, k).transpose(0, 2, 1), gy_cm, out=gcols)
        gcols = gcols.reshape(c, kh, kw, b, oh, ow)
        target = workspace("conv.grad_input", (c, capacity, hp, wp), gy.dtype, xp)[:, :b]
        target.fill(0)
        for i in range(kh):
            rows = slice(i * dh, i * dh + sh * (oh - 1) + 1, sh)
            for j in range(kw):
                target[:, :, rows, j * dw: j * dw + sw * (ow - 1) + 1: sw] += gcols[:, i, j]
        xp.copyto(gx[start:stop], target[:, :, pt:pt + h, pl:pl + w_in].transpose(1, 0, 2, 3))
    return gx


__all__ = ["CHANNEL_BIAS_ONEDNN_MIN", "COLUMNS_MAX_BYTES", "ConvGeometry", "add_channel_bias_", "channel_sums", "conv2d_array", "conv2d_grad_input_array",
           "conv2d_grad_weight_array", "im2col", "wide_columns"]


# -- a per-channel bias and its gradient (the transposed convolution's bias) ---------------------

# From this many elements the bias runs on oneDNN's binary primitive (one threaded pass) and its
# gradient is a threaded product; below, NumPy. A 64x16x32x32 transposed-convolution output
# (1M elements) took 1.15 ms for the bias forward and backward as a separate broadcast add and
# sum, against 0.2 ms in PyTorch (fused into its deconvolution).
CHANNEL_BIAS_ONEDNN_MIN = 1 << 16


def add_channel_bias_(y: Any, b: Any) -> Any:
    """``y += b`` along axis 1 of an ``(N, C, *)`` array (a layer's fresh output, written in place)."""
    from rosenblatt import kernels

    if type(y) is np.ndarray and y.size >= CHANNEL_BIAS_ONEDNN_MIN and y.ndim == 4 and kernels.use_onednn(y, b):
        from rosenblatt.kernels.onednn import eltwise
        from rosenblatt.kernels.onednn import library as L

        bias = np.ascontiguousarray(b, dtype=np.float32)
        memory = L.channels_last(y) if not y.flags.c_contiguous else None
        if memory is not None:  # (N, H, W, C) memory: the bias broadcasts along its last axis
            done = eltwise.binary("add", memory, bias, in_place=True)
        else:
            done = eltwise.binary("add", y, bias.reshape(-1, 1, 1), in_place=True)
        if done is not None:
            return y
    y += b.reshape((1, -1) + (1,) * (y.ndim - 2))
    return y


def channel_sums(g: Any) -> Any:
    """``g.sum`` over every axis but 1 of an ``(N, C, *)`` array (a per-channel bias gradient), as a
    threaded product with oneDNN for big float32 arrays: the column sums of channels-last memory,
    or the row sums of a plain one."""
    from rosenblatt import kernels

    axes = (0,) + tuple(range(2, g.ndim))
    if type(g) is np.ndarray and g.size >= CHANNEL_BIAS_ONEDNN_MIN and g.ndim == 4 and kernels.use_onednn(g):
        from rosenblatt.kernels import gemm
        from rosenblatt.kernels.onednn import library as L

        n, c = g.shape[:2]
        memory = L.channels_last(g) if not g.flags.c_contiguous else None
        if memory is not None:
            return gemm.column_sums(memory.reshape(-1, c))
        if g.flags.c_contiguous:
            rows = gemm.matmul(g.reshape(n * c, -1), np.ones((g[0, 0].size, 1), np.float32))
            return rows.reshape(n, c).sum(axis=0)
    return g.sum(axis=axes)
