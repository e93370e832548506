"""ONNX converters for whole layers: one converter per layer type, emitting the equivalent node(s).

Layers are exported as units where ONNX has a matching operator whose semantics are fixed by the
layer's settings (batch norm in eval mode, pools, resizing, embeddings, recurrent layers). A
converter gets ``(tracer, module, args, kwargs, output)`` and binds every output tensor to a name.
Layers without a converter here (Linear, convolutions, activations, Flatten, Dropout, ...) are
traced through the Functions they apply (see ``_onnx_ops``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rosenblatt.core import Tensor
from rosenblatt.io.onnx_export import UnsupportedOperatorError, register_layer_converter


def _pair(value: Any, n: int) -> list[int]:
    if isinstance(value, (tuple, list)):
        return [int(v) for v in value]
    return [int(value)] * n


# -- normalisation ----------------------------------------------------------------------------------


def _batch_norm(tracer, module, args, kwargs, output):
    x = args[0]
    name = tracer.module_name(module)
    if getattr(module, "running_mean", None) is None:
        raise UnsupportedOperatorError(f"export_onnx: {name} ({type(module).__name__}) has no running statistics "
                                       "(track_running_stats=False); ONNX BatchNormalization needs them")
    n = module.num_features
    dtype = np.dtype(x.dtype)
    g = tracer.graph
    scale = tracer.param(module, "weight") if module.weight is not None else g.constant(np.ones(n, dtype), "scale")
    bias = tracer.param(module, "bias") if module.bias is not None else g.constant(np.zeros(n, dtype), "bias")
    y = g.add("BatchNormalization", [tracer.name(x), scale, bias, tracer.param(module, "running_mean"),
                                     tracer.param(module, "running_var")], epsilon=float(module.eps))
    tracer.bind(output, y)


def _layer_norm(tracer, module, args, kwargs, output):
    x = args[0]
    shape = tuple(module.normalized_shape) if isinstance(module.normalized_shape, (tuple, list)) else (
        int(module.normalized_shape),)
    dtype = np.dtype(x.dtype)
    g = tracer.graph
    weight = getattr(module, "weight", None)
    bias = getattr(module, "bias", None)
    scale = tracer.param(module, "weight") if weight is not None else g.constant(np.ones(shape, dtype), "scale")
    names = [tracer.name(x), scale]
    names.append(tracer.param(module, "bias") if bias is not None else g.constant(np.zeros(shape, dtype), "bias"))
    y = g.add("LayerNormalization", names, axis=-len(shape), epsilon=float(module.eps))
    tracer.bind(output, y)


def _group_norm(tracer, module, args, kwargs, output):
    # ONNX's GroupNormalization (opset 18) changed meaning in opset 21; the classic form is exact in
    # every opset: instance-normalise the (N, G, C/G * positions) view, then the per-channel affine map.
    x = args[0]
    g = tracer.graph
    dtype = np.dtype(x.dtype)
    groups = module.num_groups
    grouped = g.add("Reshape", [tracer.name(x), g.ints([0, groups, -1])])
    normalized = g.add("InstanceNormalization", [grouped, g.constant(np.ones(groups, dtype), "scale"),
                                                 g.constant(np.zeros(groups, dtype), "bias")],
                       epsilon=float(module.eps))
    y = g.add("Reshape", [normalized, g.add("Shape", [tracer.name(x)])])
    if module.weight is not None:
        shape = (-1,) + (1,) * (x.ndim - 2)
        y = g.add("Mul", [y, tracer.param(module, "weight", lambda w: w.reshape(shape))])
        y = g.add("Add", [y, tracer.param(module, "bias", lambda b: b.reshape(shape))])
    tracer.bind(output, y)


def _instance_norm(tracer, module, args, kwargs, output):
    # Input statistics: ONNX's InstanceNormalization; running statistics (evaluation of a layer that
    # tracks them): BatchNormalization, a per-channel affine map. An unbatched input gets its batch
    # axis around either.
    x = args[0]
    g = tracer.graph
    n = module.num_features
    dtype = np.dtype(x.dtype)
    xn = tracer.name(x)
    unbatched = x.ndim == module._spatial_dims + 1
    if unbatched:
        xn = g.add("Unsqueeze", [xn, g.ints([0], "axes")]) if g.opset >= 13 else g.add("Unsqueeze", [xn], axes=[0])
    scale = tracer.param(module, "weight") if module.weight is not None else g.constant(np.ones(n, dtype), "scale")
    bias = tracer.param(module, "bias") if module.bias is not None else g.constant(np.zeros(n, dtype), "bias")
    if module.training or not module.track_running_stats:
        y = g.add("InstanceNormalization", [xn, scale, bias], epsilon=float(module.eps))
    else:
        y = g.add("BatchNormalization", [xn, scale, bias, tracer.param(module, "running_mean"),
                                         tracer.param(module, "running_var")], epsilon=float(module.eps))
    if unbatched:
        y = g.add("Squeeze", [y, g.ints([0], "axes")]) if g.opset >= 13 else g.add("Squeeze", [y], axes=[0])
    tracer.bind(output, y)


def _prelu(tracer, module, args, kwargs, output):
    x = args[0]
    slopes = module.num_parameters
    # ONNX broadcasts the slope from the right: per-channel slopes need shape (C, 1, ..., 1)
    shape = (slopes,) + (1,) * (x.ndim - 2) if slopes > 1 else (1,)
    slope = tracer.param(module, "weight", lambda w: w.reshape(shape))
    tracer.bind(output, tracer.graph.add("PRelu", [tracer.name(x), slope]))


# -- embeddings -------------------------------------------------------------------------------------


def _embedding(tracer, module, args, kwargs, output):
    indices = args[0]
    tracer.bind(output, tracer.graph.add("Gather", [tracer.param(module, "weight"), tracer.name(indices)], axis=0))


# -- pooling and resizing -----------------------------------------------------------------------------


def _pool(op_type: str, dims: int):
    def convert(tracer, module, args, kwargs, output):
        x = args[0]
        kernel = _pair(module.kernel_size, dims)
        stride = _pair(module.stride if module.stride is not None else module.kernel_size, dims)
        padding = _pair(getattr(module, "padding", 0), dims)
        attributes: dict[str, Any] = dict(kernel_shape=kernel, strides=stride, pads=padding + padding,
                                          ceil_mode=int(bool(getattr(module, "ceil_mode", False))))
        if op_type == "MaxPool":
            dilation = _pair(getattr(module, "dilation", 1), dims)
            if any(d != 1 for d in dilation):
                attributes["dilations"] = dilation
        else:
            attributes["count_include_pad"] = int(bool(getattr(module, "count_include_pad", True)))
        tracer.bind(output, tracer.graph.add(op_type, [tracer.name(x)], **attributes))

    return convert


def _adaptive_pool(kind: str, dims: int):
    def convert(tracer, module, args, kwargs, output):
        x = args[0]
        in_size = list(x.shape[2:])
        out_size = [in_size[i] if s is None else int(s) for i, s in enumerate(_pair_or_none(module.output_size, dims))]
        g = tracer.graph
        if all(s == 1 for s in out_size):
            tracer.bind(output, g.add(f"Global{kind}Pool", [tracer.name(x)]))
            return
        if all(o % i == 0 for i, o in zip(in_size, out_size)):
            # each output cell averages exactly one input pixel: nearest-neighbour upsampling
            scales = g.constant(np.asarray([1.0, 1.0] + [o / i for i, o in zip(in_size, out_size)], np.float32),
                                "scales")
            tracer.bind(output, g.add("Resize", [tracer.name(x), "", scales], mode="nearest",
                                      coordinate_transformation_mode="asymmetric", nearest_mode="floor"))
            return
        if any(i % o for i, o in zip(in_size, out_size)):
            raise UnsupportedOperatorError(
                f"export_onnx: {tracer.module_name(module)} ({type(module).__name__}) maps {tuple(in_size)} to "
                f"{tuple(out_size)}; ONNX can express adaptive pooling only when the sizes divide evenly")
        kernel = [i // o for i, o in zip(in_size, out_size)]
        tracer.bind(output, g.add(f"{kind}Pool", [tracer.name(x)], kernel_shape=kernel, strides=kernel))

    return convert


def _pair_or_none(value: Any, n: int) -> list[Any]:
    if isinstance(value, (tuple, list)):
        return list(value)
    return [value] * n


def _upsample(tracer, module, args, kwargs, output):
    x = args[0]
    mode = getattr(module, "mode", "nearest")
    g = tracer.graph
    spatial = x.ndim - 2
    scale = getattr(module, "scale_factor", None)
    if scale is None:  # sized by output: express it as the scale that the traced shapes show
        scales = [output.shape[i] / x.shape[i] for i in range(2, x.ndim)]
    else:
        scales = [float(s) for s in _pair_or_none(scale, spatial)]
    scales_name = g.constant(np.asarray([1.0, 1.0] + scales, dtype=np.float32), "scales")
    if mode == "nearest":
        attributes = dict(mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    elif mode in ("bilinear", "linear"):
        align = bool(getattr(module, "align_corners", False))
        attributes = dict(mode="linear", coordinate_transformation_mode="align_corners" if align else "pytorch_half_pixel")
    else:
        raise UnsupportedOperatorError(f"export_onnx: Upsample mode {mode!r} has no ONNX converter")
    tracer.bind(output, g.add("Resize", [tracer.name(x), "", scales_name], **attributes))


# -- recurrent layers -----------------------------------------------------------------------------------

# PyTorch stacks the gates i,f,g,o (LSTM) and r,z,n (GRU); ONNX wants i,o,f,c and z,r,h.
_GATE_ORDER = {"LSTM": [0, 3, 1, 2], "GRU": [1, 0, 2], "RNN_TANH": [0], "RNN_RELU": [0]}


def _reorder(array: np.ndarray, mode: str) -> np.ndarray:
    blocks = np.split(array, len(_GATE_ORDER[mode]), axis=0)
    return np.concatenate([blocks[i] for i in _GATE_ORDER[mode]], axis=0)


def _recurrent(tracer, module, args, kwargs, output):
    name = f"{tracer.module_name(module)} ({type(module).__name__})"
    x = args[0]
    hx = args[1] if len(args) > 1 else kwargs.get("hx")
    lengths = args[2] if len(args) > 2 else kwargs.get("lengths")
    if not isinstance(x, Tensor) or x.ndim != 3:
        raise UnsupportedOperatorError(f"export_onnx: {name}: only batched (T, N, F) / (N, T, F) tensor inputs export "
                                       "(no PackedSequence, no unbatched input)")
    if lengths is not None:
        raise UnsupportedOperatorError(f"export_onnx: {name}: lengths= (variable-length batches) is not supported")
    if module.proj_size or module.peephole:
        raise UnsupportedOperatorError(f"export_onnx: {name}: proj_size and peephole have no ONNX equivalent")
    mode = module.mode
    op_type = {"LSTM": "LSTM", "GRU": "GRU"}.get(mode, "RNN")
    directions = 2 if module.bidirectional else 1
    hidden = module.hidden_size
    g = tracer.graph
    h0 = c0 = None
    if hx is not None:
        h0, c0 = hx if mode == "LSTM" else (hx, None)
    sequence = tracer.name(x)
    if module.batch_first:
        sequence = g.add("Transpose", [sequence], perm=[1, 0, 2])
    prefix = tracer.module_name(module)
    final_h, final_c = [], []
    for layer in range(module.num_layers):
        suffixes = [f"_l{layer}" + ("_reverse" if d else "") for d in range(directions)]
        w = np.stack([_reorder(np.asarray(getattr(module, "weight_ih" + s)), mode) for s in suffixes])
        r = np.stack([_reorder(np.asarray(getattr(module, "weight_hh" + s)), mode) for s in suffixes])
        inputs = [sequence, g.constant(w, f"{prefix}.W{layer}"), g.constant(r, f"{prefix}.R{layer}")]
        if module.bias:
            b = np.stack([np.concatenate([_reorder(np.asarray(getattr(module, "bias_ih" + s)), mode),
                                          _reorder(np.asarray(getattr(module, "bias_hh" + s)), mode)])
                          for s in suffixes])
            inputs.append(g.constant(b, f"{prefix}.B{layer}"))
        else:
            inputs.append("")
        inputs.append("")  # sequence_lens: every sequence is full length
        for state in (h0, c0) if mode == "LSTM" else (h0,):
            if state is None:
                inputs.append("")
            else:
                begin = layer * directions
                inputs.append(g.add("Slice", [tracer.name(state), g.ints([begin]), g.ints([begin + directions]),
                                              g.ints([0])]))
        while inputs[-1] == "":
            inputs.pop()
        attributes: dict[str, Any] = dict(hidden_size=hidden, direction="bidirectional" if directions == 2 else "forward")
        if op_type == "RNN":
            attributes["activations"] = ["Tanh" if mode == "RNN_TANH" else "Relu"] * directions
        if op_type == "GRU":
            attributes["linear_before_reset"] = 1  # PyTorch applies the reset gate after the matmul
        results = g.add(op_type, inputs, outputs=3 if op_type == "LSTM" else 2, **attributes)
        y, y_h = results[0], results[1]
        final_h.append(y_h)
        if op_type == "LSTM":
            final_c.append(results[2])
        # Y is (T, directions, N, H); the next layer and the caller want (T, N, directions * H)
        if directions == 1:
            sequence = g.add("Squeeze", [y, g.ints([1], "axes")])
        else:
            sequence = g.add("Reshape", [g.add("Transpose", [y], perm=[0, 2, 1, 3]), g.ints([0, 0, -1])])
    out = sequence
    if module.batch_first:
        out = g.add("Transpose", [out], perm=[1, 0, 2])
    h_n = final_h[0] if len(final_h) == 1 else g.add("Concat", final_h, axis=0)
    if mode == "LSTM":
        c_n = final_c[0] if len(final_c) == 1 else g.add("Concat", final_c, axis=0)
        out_tensor, (h_tensor, c_tensor) = output
        tracer.bind(c_tensor, c_n)
    else:
        out_tensor, h_tensor = output
    tracer.bind(out_tensor, out)
    tracer.bind(h_tensor, h_n)


# -- attention --------------------------------------------------------------------------------------


def _attention_mask(tracer, module, value: Any, shape: tuple[int, ...], dtype: np.dtype, what: str) -> np.ndarray:
    """A ``MultiheadAttention`` mask (True blocks, floats add) as an additive constant of ``shape``."""
    if tracer.is_traced(value):
        raise UnsupportedOperatorError(f"export_onnx: {tracer.module_name(module)}: {what} must be a constant "
                                       "(it is exported into the graph), not computed from the input")
    array = np.asarray(value.data if isinstance(value, Tensor) else value)
    if array.dtype == np.bool_:
        array = np.where(array, -np.inf, 0.0)
    return array.astype(dtype).reshape(shape)


def _multihead_attention(tracer, module, args, kwargs, output):
    """Scaled dot-product attention from MatMul, Softmax and reshapes (fixed masks become constants)."""
    names = ("query", "key", "value", "key_padding_mask", "need_weights", "attn_mask", "average_attn_weights",
             "is_causal")
    call = dict(zip(names, args), **kwargs)
    query, key, value = call["query"], call["key"], call["value"]
    if query.ndim != 3:
        raise UnsupportedOperatorError(f"export_onnx: {tracer.module_name(module)}: only batched inputs export")
    g = tracer.graph
    e, h = module.embed_dim, module.num_heads
    d = e // h
    dtype = np.dtype(query.dtype)
    prefix = tracer.module_name(module)
    for option, used in (("add_bias_kv", getattr(module, "bias_k", None) is not None),
                         ("add_zero_attn", getattr(module, "add_zero_attn", False))):
        if used:
            raise UnsupportedOperatorError(f"export_onnx: {prefix}: MultiheadAttention with {option}=True "
                                           "does not export")
    if module.in_proj_weight is not None:
        stacked = np.asarray(module.in_proj_weight)
        weights = [stacked[i * e:(i + 1) * e] for i in range(3)]
    else:  # kdim / vdim: separate projections
        weights = [np.asarray(w) for w in (module.q_proj_weight, module.k_proj_weight, module.v_proj_weight)]
    bias = None if module.in_proj_bias is None else np.asarray(module.in_proj_bias)

    def heads(x: Any, i: int, perm: list[int]) -> str:
        """Project ``x`` with the query (0), key (1) or value (2) weight and split it into heads."""
        name = tracer.name(x)
        if not module.batch_first:
            name = g.add("Transpose", [name], perm=[1, 0, 2])
        y = g.add("MatMul", [name, g.constant(weights[i].T, f"{prefix}.in_proj_weight_{i}")])
        if bias is not None:
            y = g.add("Add", [y, g.constant(bias[i * e:(i + 1) * e], f"{prefix}.in_proj_bias_{i}")])
        y = g.add("Reshape", [y, g.ints([0, 0, h, d])])
        return g.add("Transpose", [y], perm=perm)

    q = heads(query, 0, [0, 2, 1, 3])  # (N, H, L, d)
    k = heads(key, 1, [0, 2, 3, 1])    # (N, H, d, S)
    v = heads(value, 2, [0, 2, 1, 3])  # (N, H, S, d)
    scores = g.add("Mul", [g.add("MatMul", [q, k]), g.constant(np.asarray(1.0 / np.sqrt(d), dtype), "scale")])
    n = query.shape[0] if module.batch_first else query.shape[1]
    length = query.shape[1] if module.batch_first else query.shape[0]
    source = key.shape[1] if module.batch_first else key.shape[0]
    if call.get("key_padding_mask") is not None:
        mask = _attention_mask(tracer, module, call["key_padding_mask"], (n, 1, 1, source), dtype, "key_padding_mask")
        scores = g.add("Add", [scores, g.constant(mask, f"{prefix}.key_padding_mask")])
    attn_mask = call.get("attn_mask")
    if attn_mask is None and call.get("is_causal"):
        attn_mask = np.triu(np.ones((length, source), dtype=bool), 1)
    if attn_mask is not None:
        shape = (length, source) if np.ndim(attn_mask) == 2 else (n, h, length, source)
        mask = _attention_mask(tracer, module, attn_mask, shape, dtype, "attn_mask")
        scores = g.add("Add", [scores, g.constant(mask, f"{prefix}.attn_mask")])
    weights = g.add("Softmax", [scores], axis=-1)
    merged = g.add("Transpose", [g.add("MatMul", [weights, v])], perm=[0, 2, 1, 3])
    merged = g.add("Reshape", [merged, g.ints([0, 0, e])])
    out = g.add("MatMul", [merged, tracer.param(module.out_proj, "weight", transform=lambda w: w.T)])
    if module.out_proj.bias is not None:
        out = g.add("Add", [out, tracer.param(module.out_proj, "bias")])
    if not module.batch_first:
        out = g.add("Transpose", [out], perm=[1, 0, 2])
    out_tensor, weights_tensor = output
    tracer.bind(out_tensor, out)
    if weights_tensor is not None:
        if call.get("average_attn_weights", True):
            weights = g.add("ReduceMean", [weights, g.ints([1], "axes")], keepdims=0) if g.opset >= 18 else \
                g.add("ReduceMean", [weights], axes=[1], keepdims=0)
        tracer.bind(weights_tensor, weights)


for _name, _converter in [
    ("BatchNorm1d", _batch_norm), ("BatchNorm2d", _batch_norm), ("LayerNorm", _layer_norm),
    ("BatchNorm3d", _batch_norm), ("GroupNorm", _group_norm), ("PReLU", _prelu),
    ("InstanceNorm1d", _instance_norm), ("InstanceNorm2d", _instance_norm), ("InstanceNorm3d", _instance_norm),
    ("MaxPool3d", _pool("MaxPool", 3)), ("AvgPool3d", _pool("AveragePool", 3)),
    ("Embedding", _embedding),
    ("MaxPool1d", _pool("MaxPool", 1)), ("MaxPool2d", _pool("MaxPool", 2)),
    ("AvgPool1d", _pool("AveragePool", 1)), ("AvgPool2d", _pool("AveragePool", 2)),
    ("AdaptiveAvgPool1d", _adaptive_pool("Average", 1)), ("AdaptiveAvgPool2d", _adaptive_pool("Average", 2)),
    ("AdaptiveMaxPool1d", _adaptive_pool("Max", 1)), ("AdaptiveMaxPool2d", _adaptive_pool("Max", 2)),
    ("Upsample", _upsample), ("UpsamplingNearest2d", _upsample), ("UpsamplingBilinear2d", _upsample),
    ("RNN", _recurrent), ("LSTM", _recurrent), ("GRU", _recurrent),
    ("MultiheadAttention", _multihead_attention),
]:
    register_layer_converter(_name, _converter)
