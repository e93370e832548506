"""ONNX converters for rosenblatt's Functions (the ops a model's ``forward`` may call directly).

Each converter gets ``(tracer, inputs, kwargs, outputs)`` - the arguments the Function was applied
to (tensors, or raw values such as axes and shapes) and its output tensors - and returns the ONNX
name of each output.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rosenblatt.io.onnx_export import UnsupportedOperatorError, register_op_converter
from rosenblatt.ops import arithmetic, elementwise, linalg, reduction, shape

INT64_MAX = np.iinfo(np.int64).max
INT64_MIN = np.iinfo(np.int64).min


def _like(inputs: tuple[Any, ...]) -> Any:
    """The first traced tensor among the inputs: constants take its dtype."""
    for x in inputs:
        if hasattr(x, "data") and hasattr(x, "dtype"):
            return x
    return None


def _elementwise(op_type: str):
    def convert(tracer, inputs, kwargs, outputs):
        like = _like(inputs)
        return tracer.graph.add(op_type, [tracer.name(x, like) for x in inputs])

    return convert


for _cls, _op in [(arithmetic.Add, "Add"), (arithmetic.Sub, "Sub"), (arithmetic.Mul, "Mul"),
                  (arithmetic.Div, "Div"), (arithmetic.Neg, "Neg"), (arithmetic.Pow, "Pow"),
                  (arithmetic.Maximum, "Max"), (arithmetic.Minimum, "Min"), (elementwise.Exp, "Exp"),
                  (elementwise.Log, "Log"), (elementwise.Sqrt, "Sqrt"), (elementwise.Abs, "Abs"),
                  (elementwise.Sign, "Sign"), (elementwise.Sin, "Sin"), (elementwise.Cos, "Cos"),
                  (elementwise.Tanh, "Tanh"), (elementwise.Sigmoid, "Sigmoid"), (elementwise.ReLU, "Relu"),
                  (elementwise.Clone, "Identity"), (elementwise.ToDevice, "Identity"),
                  (linalg.MatMul, "MatMul")]:
    register_op_converter(_cls, _elementwise(_op))


def _where(tracer, inputs, kwargs, outputs):
    condition, a, b = inputs
    like = a if hasattr(a, "dtype") else b
    # Comparisons are not traced: a condition computed from the input reaches here as an array, and
    # the graph would hold this example's mask as a constant. One of the traced operand's shape,
    # batch axis included, is such a mask.
    cond_shape = getattr(condition, "shape", ())
    for operand in (a, b):
        if tracer.is_traced(operand) and len(cond_shape) >= 2 and tuple(cond_shape) == tuple(operand.shape):
            raise UnsupportedOperatorError(
                "export_onnx: where() got a condition of its input's shape computed outside the graph "
                "(comparisons are not traced), so the exported graph would keep this example's condition "
                "as a constant; build the result from ops that export (relu, clip, maximum, ...)")
    cond = tracer.name(condition)
    if np.asarray(condition.data if hasattr(condition, "data") else condition).dtype != np.bool_:
        cond = tracer.graph.add("Cast", [cond], to=9)
    return tracer.graph.add("Where", [cond, tracer.name(a, like), tracer.name(b, like)])


def _clip(tracer, inputs, kwargs, outputs):
    x, low, high = inputs
    names = [tracer.name(x)]
    names.append("" if low is None else tracer.name(low, x))
    names.append("" if high is None else tracer.name(high, x))
    while names[-1] == "":
        names.pop()
    return tracer.graph.add("Clip", names)


def _log1p(tracer, inputs, kwargs, outputs):
    (x,) = inputs
    return tracer.graph.add("Log", [tracer.graph.add("Add", [tracer.name(x), tracer.name(1.0, x)])])


def _cast(tracer, inputs, kwargs, outputs):
    from rosenblatt.io.onnx_export import ONNX_DTYPES

    x, dtype = inputs
    return tracer.graph.add("Cast", [tracer.name(x)], to=ONNX_DTYPES[np.dtype(dtype)])


register_op_converter(arithmetic.Where, _where)
register_op_converter(arithmetic.Clip, _clip)
register_op_converter(elementwise.Log1p, _log1p)
register_op_converter(elementwise.Cast, _cast)


# -- reductions ---------------------------------------------------------------------------------


def _reduce(op_type: str):
    def convert(tracer, inputs, kwargs, outputs):
        x, axes, keepdims = inputs[0], inputs[1], inputs[2]
        axes = list(range(x.ndim)) if axes is None else [int(a) for a in np.atleast_1d(axes)]
        g = tracer.graph
        if op_type == "ReduceSum" or g.opset >= 18:
            return g.add(op_type, [tracer.name(x), g.ints(axes, "axes")], keepdims=int(bool(keepdims)))
        return g.add(op_type, [tracer.name(x)], axes=axes, keepdims=int(bool(keepdims)))

    return convert


register_op_converter(reduction.Sum, _reduce("ReduceSum"))
register_op_converter(reduction.Mean, _reduce("ReduceMean"))
register_op_converter(reduction.Max, _reduce("ReduceMax"))
register_op_converter(reduction.Min, _reduce("ReduceMin"))


def _softmax(op_type: str):
    def convert(tracer, inputs, kwargs, outputs):
        x, axis = inputs
        return tracer.graph.add(op_type, [tracer.name(x)], axis=int(axis))

    return convert


register_op_converter(reduction.Softmax, _softmax("Softmax"))
register_op_converter(reduction.LogSoftmax, _softmax("LogSoftmax"))


# -- shapes ---------------------------------------------------------------------------------------


def _reshape(tracer, inputs, kwargs, outputs):
    x, target = inputs
    target = tracer.dynamic_shape(x.shape, tuple(target), "reshape")
    return tracer.graph.add("Reshape", [tracer.name(x), tracer.graph.ints(target)])


def _transpose(tracer, inputs, kwargs, outputs):
    x, axes = inputs
    return tracer.graph.add("Transpose", [tracer.name(x)], perm=[int(a) for a in axes])


def _concatenate(tracer, inputs, kwargs, outputs):
    like = _like(inputs)
    return tracer.graph.add("Concat", [tracer.name(x, like) for x in inputs], axis=int(kwargs["axis"]))


def _split(tracer, inputs, kwargs, outputs):
    x, bounds, axis = inputs
    n = x.shape[axis]
    edges = [0] + [int(b) for b in bounds] + [n]
    sizes = [b - a for a, b in zip(edges[:-1], edges[1:])]
    return tracer.graph.add("Split", [tracer.name(x), tracer.graph.ints(sizes, "split")], outputs=len(outputs),
                            axis=int(axis))


def _flip(tracer, inputs, kwargs, outputs):
    x, axes = inputs
    g = tracer.graph
    axes = [int(a) for a in axes]
    return g.add("Slice", [tracer.name(x), g.ints([-1] * len(axes)), g.ints([INT64_MIN] * len(axes)),
                           g.ints(axes), g.ints([-1] * len(axes))])


def _pad(tracer, inputs, kwargs, outputs):
    x, widths, value = inputs
    g = tracer.graph
    pads = [int(lo) for lo, _ in widths] + [int(hi) for _, hi in widths]
    return g.add("Pad", [tracer.name(x), g.ints(pads, "pads"), tracer.name(value, x)], mode="constant")


def _broadcast_to(tracer, inputs, kwargs, outputs):
    x, target = inputs
    target = [int(t) for t in target]
    lead = len(target) - x.ndim
    # Where the input already has the target's size, ask ONNX for 1: Expand then keeps the input's
    # size, which is what makes a batch-sized dimension follow the actual batch.
    shape_ = [1 if i >= lead and x.shape[i - lead] == t else t for i, t in enumerate(target)]
    return tracer.graph.add("Expand", [tracer.name(x), tracer.graph.ints(shape_)])


def _getitem(tracer, inputs, kwargs, outputs):
    x, index = inputs
    g = tracer.graph
    items = list(index) if isinstance(index, tuple) else [index]
    if any(item is Ellipsis for item in items):
        at = items.index(Ellipsis)
        fill = x.ndim - (len(items) - 1 - sum(item is None for item in items))
        items = items[:at] + [slice(None)] * fill + items[at + 1:]
    value = tracer.name(x)
    axis = 0  # the axis of the current result that the next item applies to
    starts, ends, axes, steps = [], [], [], []
    gathers: list[tuple[int, Any]] = []
    squeeze: list[int] = []
    unsqueeze: list[int] = []
    out_axis = 0
    for item in items:
        if item is None:
            unsqueeze.append(out_axis)
            out_axis += 1
        elif isinstance(item, slice):
            if item != slice(None):
                step = 1 if item.step is None else int(item.step)
                if step > 0:
                    start = 0 if item.start is None else int(item.start)
                    end = INT64_MAX if item.stop is None else int(item.stop)
                else:
                    start = -1 if item.start is None else int(item.start)
                    end = INT64_MIN if item.stop is None else int(item.stop)
                starts.append(start)
                ends.append(end)
                axes.append(axis)
                steps.append(step)
            axis += 1
            out_axis += 1
        elif isinstance(item, (int, np.integer)):
            starts.append(int(item))
            ends.append(int(item) + 1 if int(item) != -1 else INT64_MAX)
            axes.append(axis)
            steps.append(1)
            squeeze.append(axis)
            axis += 1
        elif hasattr(item, "dtype") and item.dtype.kind in "iu" and not gathers:
            gathers.append((axis, item))
            axis += 1
            out_axis += item.ndim
        else:
            raise UnsupportedOperatorError(
                f"export_onnx: indexing with {type(item).__name__} items (index {index!r}) has no ONNX converter; "
                "use basic slices, integers or a single integer array")
    if starts:
        value = g.add("Slice", [value, g.ints(starts), g.ints(ends), g.ints(axes), g.ints(steps)])
    if gathers:
        gather_axis, indices = gathers[0]
        gather_axis -= sum(1 for s in squeeze if s < gather_axis)
        if squeeze:
            value = g.add("Squeeze", [value, g.ints(squeeze, "axes")])
            squeeze = []
        value = g.add("Gather", [value, g.constant(np.asarray(indices, dtype=np.int64), "indices")],
                      axis=gather_axis)
    if squeeze:
        value = g.add("Squeeze", [value, g.ints(squeeze, "axes")])
    if unsqueeze:
        value = g.add("Unsqueeze", [value, g.ints(unsqueeze, "axes")])
    return value


register_op_converter(shape.Reshape, _reshape)
register_op_converter(shape.Transpose, _transpose)
register_op_converter(shape.Concatenate, _concatenate)
register_op_converter(shape.Split, _split)
register_op_converter(shape.Flip, _flip)
register_op_converter(shape.ConstantPad, _pad)
register_op_converter(shape.GetItem, _getitem)


def _register_core() -> None:
    from rosenblatt import core

    register_op_converter(core.BroadcastTo, _broadcast_to)


_register_core()


# -- rosenblatt.nn.functional ------------------------------------------------------------------


def _linear(tracer, inputs, kwargs, outputs):
    x, weight, bias = inputs
    g = tracer.graph
    if x.ndim == 2 and not tracer.is_traced(weight) and (bias is None or not tracer.is_traced(bias)):
        names = [tracer.name(x), tracer.name(weight, hint="weight")]
        if bias is not None:
            names.append(tracer.name(bias, hint="bias"))
        return g.add("Gemm", names, transB=1)
    wt = g.add("Transpose", [tracer.name(weight, hint="weight")], perm=[1, 0])
    y = g.add("MatMul", [tracer.name(x), wt])
    if bias is not None:
        y = g.add("Add", [y, tracer.name(bias, hint="bias")])
    return y


def _linear_relu(tracer, inputs, kwargs, outputs):
    return tracer.graph.add("Relu", [_linear(tracer, inputs, kwargs, outputs)])


def _conv_attributes(geom: Any) -> dict[str, Any]:
    (top, bottom), (left, right) = geom.padding
    return dict(strides=list(geom.stride), pads=[top, left, bottom, right], dilations=list(geom.dilation),
                group=int(geom.groups))


def _conv2d(tracer, inputs, kwargs, outputs):
    x, weight, bias, geom = inputs
    names = [tracer.name(x), tracer.name(weight, hint="weight")]
    if bias is not None:
        names.append(tracer.name(bias, hint="bias"))
    return tracer.graph.add("Conv", names, **_conv_attributes(geom))


def _conv_transpose2d(tracer, inputs, kwargs, outputs, bias=None):
    x, weight, out_shape, geom = inputs
    kh, kw = weight.shape[2:]
    (top, bottom), (left, right) = geom.padding
    natural = [(x.shape[2] - 1) * geom.stride[0] - top - bottom + geom.dilation[0] * (kh - 1) + 1,
               (x.shape[3] - 1) * geom.stride[1] - left - right + geom.dilation[1] * (kw - 1) + 1]
    output_padding = [int(out_shape[2]) - natural[0], int(out_shape[3]) - natural[1]]
    names = [tracer.name(x), tracer.name(weight, hint="weight")]
    if bias is not None:
        names.append(tracer.name(bias, hint="bias"))
    return tracer.graph.add("ConvTranspose", names, output_padding=output_padding, **_conv_attributes(geom))


def _conv_transpose2d_bias(tracer, inputs, kwargs, outputs):
    x, weight, bias, out_shape, geom = inputs
    return _conv_transpose2d(tracer, (x, weight, out_shape, geom), kwargs, outputs, bias=bias)


def _nearest_upsample(tracer, inputs, kwargs, outputs):
    # every pixel repeated (fh, fw) times: (N, C, H, 1, W, 1) expanded to (N, C, H, fh, W, fw)
    x, fh, fw = inputs
    g = tracer.graph
    _, _, h, w = x.shape
    six = g.add("Reshape", [tracer.name(x), g.ints([0, 0, h, 1, w, 1])])
    wide = g.add("Expand", [six, g.ints([1, 1, 1, int(fh), 1, int(fw)])])
    return g.add("Reshape", [wide, g.ints([0, 0, h * int(fh), w * int(fw)])])


def _global_avg_pool(tracer, inputs, kwargs, outputs):
    return tracer.graph.add("GlobalAveragePool", [tracer.name(inputs[0])])


def _conv3d(tracer, inputs, kwargs, outputs):
    x, weight, bias, geom = inputs
    names = [tracer.name(x), tracer.name(weight, hint="weight")]
    if bias is not None:
        names.append(tracer.name(bias, hint="bias"))
    begins, ends = zip(*geom.padding)
    return tracer.graph.add("Conv", names, strides=list(geom.stride), pads=list(begins) + list(ends),
                            dilations=list(geom.dilation), group=int(geom.groups))


def _scalar_activation(op_type: str, **fixed: Any):
    def convert(tracer, inputs, kwargs, outputs):
        return tracer.graph.add(op_type, [tracer.name(inputs[0])], **fixed)

    return convert


def _leaky_relu(tracer, inputs, kwargs, outputs):
    x, slope = inputs
    return tracer.graph.add("LeakyRelu", [tracer.name(x)], alpha=float(slope))


def _hardtanh(tracer, inputs, kwargs, outputs):
    # relu6 is hardtanh(x, 0, 6): both are a Clip
    x, min_val, max_val = inputs
    return tracer.graph.add("Clip", [tracer.name(x), tracer.name(float(min_val), x), tracer.name(float(max_val), x)])


def _hardsigmoid(tracer, inputs, kwargs, outputs):
    # ONNX's HardSigmoid is max(0, min(1, alpha x + beta)), with alpha 0.2 by default: PyTorch's is 1/6
    (x,) = inputs
    return tracer.graph.add("HardSigmoid", [tracer.name(x)], alpha=1.0 / 6.0, beta=0.5)


def _mish(tracer, inputs, kwargs, outputs):
    (x,) = inputs
    g = tracer.graph
    xn = tracer.name(x)
    if g.opset >= 18:
        return g.add("Mish", [xn])
    # Mish is an ONNX op from opset 18 on; before, x * tanh(softplus(x))
    return g.add("Mul", [xn, g.add("Tanh", [g.add("Softplus", [xn])])])


def _elu(tracer, inputs, kwargs, outputs):
    x, alpha, scale = inputs
    g = tracer.graph
    if float(scale) == 1.0:
        return g.add("Elu", [tracer.name(x)], alpha=float(alpha))
    if abs(float(scale) - 1.0507009873554805) < 1e-6 and abs(float(alpha) - 1.6732632423543772) < 1e-6:
        return g.add("Selu", [tracer.name(x)], alpha=float(alpha), gamma=float(scale))
    return g.add("Mul", [g.add("Elu", [tracer.name(x)], alpha=float(alpha)), tracer.name(float(scale), x)])


def _step(tracer, inputs, kwargs, outputs):
    x, threshold = inputs
    g = tracer.graph
    passed = g.add("GreaterOrEqual", [tracer.name(x), tracer.name(float(threshold), x)])
    from rosenblatt.io.onnx_export import ONNX_DTYPES

    return g.add("Cast", [passed], to=ONNX_DTYPES[np.dtype(x.dtype)])


def _gelu(tracer, inputs, kwargs, outputs):
    (x,) = inputs
    g = tracer.graph
    xn = tracer.name(x)
    # 0.5 x (1 + erf(x / sqrt 2)): Gelu itself is an ONNX op only from opset 20
    erf = g.add("Erf", [g.add("Div", [xn, tracer.name(float(np.sqrt(2.0)), x)])])
    return g.add("Mul", [g.add("Mul", [xn, tracer.name(0.5, x)]), g.add("Add", [erf, tracer.name(1.0, x)])])


def _gelu_tanh(tracer, inputs, kwargs, outputs):
    (x,) = inputs
    g = tracer.graph
    xn = tracer.name(x)
    cube = g.add("Mul", [g.add("Mul", [xn, xn]), xn])
    inner = g.add("Add", [xn, g.add("Mul", [cube, tracer.name(0.044715, x)])])
    t = g.add("Tanh", [g.add("Mul", [inner, tracer.name(float(np.sqrt(2.0 / np.pi)), x)])])
    return g.add("Mul", [g.add("Mul", [xn, tracer.name(0.5, x)]), g.add("Add", [t, tracer.name(1.0, x)])])


def _silu(tracer, inputs, kwargs, outputs):
    (x,) = inputs
    xn = tracer.name(x)
    return tracer.graph.add("Mul", [xn, tracer.graph.add("Sigmoid", [xn])])


def _softplus(tracer, inputs, kwargs, outputs):
    x, beta, threshold = inputs
    g = tracer.graph
    xn = tracer.name(x)
    beta = float(beta)
    bx = g.add("Mul", [xn, tracer.name(beta, x)]) if beta != 1.0 else xn
    soft = g.add("Softplus", [bx])
    if beta != 1.0:
        soft = g.add("Div", [soft, tracer.name(beta, x)])
    # above the threshold PyTorch returns x itself (numerically the same to float precision)
    linear = g.add("Greater", [bx, tracer.name(float(threshold), x)])
    return g.add("Where", [linear, xn, soft])


def _layer_norm(tracer, inputs, kwargs, outputs):
    # LayerNormFn: (x, weight, bias, num_axes, eps); LayerNormOneDnnFn: (x, weight, bias, eps), last axis
    x, weight, bias = inputs[:3]
    num_axes, eps = (inputs[3], inputs[4]) if len(inputs) == 5 else (1, inputs[3])
    g = tracer.graph
    scale = (tracer.name(weight, hint="weight") if weight is not None
             else g.constant(np.ones(x.shape[x.ndim - num_axes:], np.dtype(x.dtype)), "scale"))
    names = [tracer.name(x), scale] + ([tracer.name(bias, hint="bias")] if bias is not None else [])
    return g.add("LayerNormalization", names, axis=-int(num_axes), epsilon=float(eps))


def _block_weights(channels: int, kh: int, kw: int, dtype: Any) -> np.ndarray:
    """``(C*kh*kw, 1, kh, kw)``: output channel ``c*kh*kw + i*kw + j`` of a convolution with
    ``group=C`` picks channel ``c`` at kernel offset ``(i, j)`` (unfold's row order)."""
    picks = np.eye(kh * kw, dtype=dtype).reshape(kh * kw, 1, kh, kw)
    return np.ascontiguousarray(np.tile(picks, (channels, 1, 1, 1)))


def _block_attributes(geom: tuple) -> dict[str, Any]:
    (kh, kw), (dh, dw), (ph, pw), (sh, sw) = geom
    return dict(kernel_shape=[kh, kw], dilations=[dh, dw], pads=[ph, pw, ph, pw], strides=[sh, sw])


def _unfold(tracer, inputs, kwargs, outputs):
    # im2col as a grouped convolution with one-hot kernels, then (N, C*kh*kw, L)
    x, geom = inputs
    (kh, kw) = geom[0]
    g = tracer.graph
    c = x.shape[1]
    weights = g.constant(_block_weights(c, kh, kw, np.dtype(x.dtype)), "unfold_weights")
    y = g.add("Conv", [tracer.name(x), weights], group=c, **_block_attributes(geom))
    return g.add("Reshape", [y, g.ints([0, c * kh * kw, -1])])


def _fold(tracer, inputs, kwargs, outputs):
    # col2im: the transposed grouped convolution of the same one-hot kernels (overlaps are summed)
    cols, size, geom = inputs
    (kh, kw), (dh, dw), (ph, pw), (sh, sw) = geom
    g = tracer.graph
    rows = cols.shape[1]
    c = rows // (kh * kw)
    grid = [(n + 2 * p - d * (k - 1) - 1) // st + 1 for n, p, d, k, st in zip(size, (ph, pw), (dh, dw), (kh, kw),
                                                                                (sh, sw))]
    covered = [st * (b - 1) + d * (k - 1) + 1 for b, st, d, k in zip(grid, (sh, sw), (dh, dw), (kh, kw))]
    blocks = g.add("Reshape", [tracer.name(cols), g.ints([0, rows] + grid)])
    weights = g.constant(_block_weights(c, kh, kw, np.dtype(cols.dtype)), "fold_weights")
    return g.add("ConvTranspose", [blocks, weights], group=c,
                 output_padding=[n + 2 * p - cov for n, p, cov in zip(size, (ph, pw), covered)],
                 **_block_attributes(geom))


def _pool_attributes(geom: Any) -> dict[str, Any]:
    """ONNX pooling attributes of a pooling Function's geometry (``ceil_mode`` where the output is
    longer than floor division gives)."""
    floor = [(n + 2 * p - d * (k - 1) - 1) // s + 1 for n, p, d, k, s in
             zip(geom.in_hw, geom.padding, geom.dilation, geom.kernel, geom.stride)]
    return dict(kernel_shape=list(geom.kernel), strides=list(geom.stride), pads=list(geom.padding) * 2,
                ceil_mode=int(list(geom.out_hw) != floor))


def _max_pool2d(tracer, inputs, kwargs, outputs):
    x, geom = inputs
    attributes = _pool_attributes(geom)
    if any(d != 1 for d in geom.dilation):
        attributes["dilations"] = list(geom.dilation)
    return tracer.graph.add("MaxPool", [tracer.name(x)], **attributes)


def _avg_pool2d(tracer, inputs, kwargs, outputs):
    # alg: "avg_include" (padding counts), "avg_exclude" (count_include_pad=False), None: a
    # divisor_override or a ceil_mode window over the padding, which ONNX's AveragePool cannot say
    x, geom, divisor, alg = inputs
    if alg is None:
        raise UnsupportedOperatorError("export_onnx: avg_pool2d with divisor_override, or with ceil_mode windows "
                                       "that count padding, has no ONNX AveragePool equivalent")
    return tracer.graph.add("AveragePool", [tracer.name(x)], count_include_pad=int(alg == "avg_include"),
                            **_pool_attributes(geom))


def _attention(tracer, inputs, kwargs, outputs):
    # F.scaled_dot_product_attention (MultiheadAttention exports as a layer): softmax(q k^T s + bias) v
    q, k, v, bias, dropout_mask, scale, heads, need_weights = inputs
    if heads.num_heads is not None or need_weights or dropout_mask is not None or k.ndim != q.ndim:
        raise UnsupportedOperatorError("export_onnx: attention with heads, weights, dropout or broadcast batch "
                                       "axes is exported through MultiheadAttention or not at all")
    g = tracer.graph
    perm = list(range(q.ndim - 2)) + [q.ndim - 1, q.ndim - 2]
    scores = g.add("MatMul", [tracer.name(q), g.add("Transpose", [tracer.name(k)], perm=perm)])
    scores = g.add("Mul", [scores, tracer.name(float(scale), q)])
    if bias is not None:
        scores = g.add("Add", [scores, tracer.name(bias, hint="attn_bias")])
    return g.add("MatMul", [g.add("Softmax", [scores], axis=-1), tracer.name(v)])


def _prelu(tracer, inputs, kwargs, outputs):
    x, slope = inputs
    return tracer.graph.add("PRelu", [tracer.name(x), tracer.name(slope, x, hint="slope")])


def _register_functional() -> None:
    import importlib

    # Looked up by name: a Function that a refactoring renames simply loses its converter, and the
    # export then names it in its error, rather than breaking the import of this module.
    for module_name, class_name, converter in [
        ("linear", "LinearFn", _linear), ("linear", "LinearReLUFn", _linear_relu), ("conv", "Conv2dFunction", _conv2d),
        ("conv", "ConvTranspose2dFunction", _conv_transpose2d), ("activation", "LeakyReLUFn", _leaky_relu),
        ("conv", "ConvTranspose2dBiasFunction", _conv_transpose2d_bias),
        ("resize", "NearestUpsampleFunction", _nearest_upsample), ("pooling", "GlobalAvgPoolFunction", _global_avg_pool),
        ("activation", "ELUFn", _elu), ("activation", "StepFn", _step), ("activation", "GELUFn", _gelu),
        ("activation", "GELUTanhFn", _gelu_tanh), ("activation", "SiLUFn", _silu),
        ("activation", "SoftplusFn", _softplus), ("conv3d", "Conv3dFunction", _conv3d),
        ("activation", "HardtanhFn", _hardtanh), ("activation", "HardsigmoidFn", _hardsigmoid),
        ("activation", "HardswishFn", _scalar_activation("HardSwish")), ("activation", "MishFn", _mish),
        ("normalization", "LayerNormFn", _layer_norm), ("normalization", "LayerNormOneDnnFn", _layer_norm),
        ("patches", "UnfoldFunction", _unfold), ("patches", "FoldFunction", _fold),
        ("pooling", "MaxPool2dFunction", _max_pool2d), ("pooling", "AvgPool2dFunction", _avg_pool2d),
        ("attention", "AttentionFn", _attention), ("activation", "PReLUFn", _prelu),
    ]:
        try:
            module = importlib.import_module(f"rosenblatt.nn.functional.{module_name}")
        except ImportError:
            continue
        cls = getattr(module, class_name, None)
        if cls is not None:
            register_op_converter(cls, converter)


_register_functional()
