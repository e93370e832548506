"""Export a model to ONNX by tracing one forward pass.

``export_onnx(model, example_input, path)`` runs the model once on the example (in eval mode, no
gradients) while a tracer watches two things:

1. **Layer calls.** When a module whose type has a *layer converter* is called (batch norm, pools,
   upsampling, embeddings, recurrent layers, ...), the tracer lets it compute its output, ignores
   the operations inside it and emits the equivalent ONNX node(s) - e.g. one ``LSTM`` node for a
   whole stacked LSTM. Containers and models without a converter are simply entered.
2. **Function applications.** Every other operation runs through ``Function.apply``; for each one
   whose inputs depend on the model input, the tracer looks up the *op converter* of that Function
   (``Add``, ``MatMul``, ``Reshape``, ``Concatenate``, ``Conv2dFunction``, ...) and emits its node.
   Residual additions, concatenations, slices and reshapes in a model's ``forward`` are exported
   this way without any per-model code.

Values that do not depend on the input (parameters, constants, anything computed from them)
become initializers. An operation that has no converter stops the export with an error naming it.

Both registries are plain dicts (``LAYER_CONVERTERS``, ``OP_CONVERTERS``, filled by
``rosenblatt.io._onnx_layers`` and ``rosenblatt.io._onnx_ops``); :func:`register_layer_converter`
and :func:`register_op_converter` add to them. The graph is built with the ``onnx`` package's
helpers (the ``onnx`` extra) and checked with ``onnx.checker``.

Dynamic batch: the input's batch axis becomes symbolic. Shapes baked into operations (the target
of a ``reshape``) are rewritten when they contain the batch size; an example batch size that
differs from every other dimension of the model (the default in the tests is 3) keeps that
unambiguous.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

from rosenblatt.core import Function, Tensor, no_grad

ONNX_DTYPES = {np.dtype(np.float32): 1, np.dtype(np.uint8): 2, np.dtype(np.int8): 3, np.dtype(np.int32): 6,
               np.dtype(np.int64): 7, np.dtype(np.bool_): 9, np.dtype(np.float16): 10,
               np.dtype(np.float64): 11}

# type -> converter; filled by the converter modules at import (see the module docstring)
LAYER_CONVERTERS: dict[type, Callable[..., None]] = {}
OP_CONVERTERS: dict[type, Callable[..., Any]] = {}
_LAYER_CONVERTERS_BY_NAME: dict[str, Callable[..., None]] = {}


class UnsupportedOperatorError(NotImplementedError):
    """The model uses an operation or layer setting that the ONNX exporter cannot express."""


def register_layer_converter(layer_type: type | str, converter: Callable[..., None]) -> None:
    """Export every module of ``layer_type`` with ``converter(tracer, module, args, kwargs, output)``.

    ``layer_type`` may be a class or the name of a class in ``rosenblatt.nn`` (resolved at export).
    The converter emits nodes through ``tracer.graph`` and binds the output tensors to value
    names with ``tracer.bind``.
    """
    if isinstance(layer_type, str):
        _LAYER_CONVERTERS_BY_NAME[layer_type] = converter
    else:
        LAYER_CONVERTERS[layer_type] = converter


def register_op_converter(function_type: type, converter: Callable[..., Any]) -> None:
    """Export every application of the Function ``function_type`` with
    ``converter(tracer, inputs, kwargs, outputs) -> name or list of names`` (one per output)."""
    OP_CONVERTERS[function_type] = converter


class Graph:
    """The ONNX graph under construction: nodes, initializers and unique value names."""

    def __init__(self, opset: int) -> None:
        self.opset = opset
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._used: set[str] = set()
        self._constants: dict[int, str] = {}

    def fresh(self, hint: str) -> str:
        """A value name not used yet, derived from ``hint``."""
        base = hint.replace("/", ".") or "v"
        name, i = base, 1
        while name in self._used:
            name = f"{base}_{i}"
            i += 1
        self._used.add(name)
        return name

    def constant(self, array: Any, hint: str = "const", key: int | None = None) -> str:
        """An initializer holding ``array``; the same ``key`` (e.g. a parameter's id) reuses it."""
        from onnx import numpy_helper

        if key is not None and key in self._constants:
            return self._constants[key]
        array = np.asarray(array.get() if hasattr(array, "get") and not isinstance(array, np.ndarray) else array)
        if array.dtype not in ONNX_DTYPES:
            raise UnsupportedOperatorError(f"export_onnx: constant '{hint}' has dtype {array.dtype}, which ONNX "
                                           "export does not support")
        name = self.fresh(hint)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        if key is not None:
            self._constants[key] = name
        return name

    def ints(self, values: Any, hint: str = "shape") -> str:
        """An int64 1-D initializer (shapes, axes, pads: inputs of many ONNX ops)."""
        return self.constant(np.asarray(list(values), dtype=np.int64).reshape(-1), hint)

    def add(self, op_type: str, inputs: list[str], outputs: int | list[str] = 1, hint: str | None = None,
            **attributes: Any) -> Any:
        """Append a node; returns its output name (or the list of names when several)."""
        from onnx import helper

        if isinstance(outputs, int):
            outputs = [self.fresh(f"{hint or op_type.lower()}") for _ in range(outputs)]
        self.nodes.append(helper.make_node(op_type, inputs, outputs, name=self.fresh(f"node.{op_type}"),
                                           **{k: v for k, v in attributes.items() if v is not None}))
        return outputs[0] if len(outputs) == 1 else outputs


class Tracer:
    """Records the ONNX equivalent of one forward pass (see the module docstring)."""

    def __init__(self, model: Any, graph: Graph, batch_size: int | None, dynamic_batch: bool) -> None:
        self.model = model
        self.graph = graph
        self.batch_size = batch_size
        self.dynamic_batch = dynamic_batch
        self.names: dict[int, str] = {}
        self._alive: list[Any] = []  # keeps traced and constant tensors alive, so their ids stay unique
        self.suppress = 0
        self.module_names = {id(m): name for name, m in model.named_modules()}
        self.tensor_names = {id(t): name for name, t in model.state_dict(keep_vars=True).items()}
        self.layer_converters = dict(LAYER_CONVERTERS)
        from rosenblatt import nn

        for class_name, converter in _LAYER_CONVERTERS_BY_NAME.items():
            cls = getattr(nn, class_name, None)
            if isinstance(cls, type) and cls not in self.layer_converters:
                self.layer_converters[cls] = converter

    # -- value names --------------------------------------------------------------------------
    def bind(self, tensor: Any, name: str) -> None:
        """Record that ``tensor`` is the ONNX value ``name``."""
        if isinstance(tensor, Tensor):
            self.names[id(tensor)] = name
            self._alive.append(tensor)

    def is_traced(self, x: Any) -> bool:
        """True when ``x`` is a tensor that depends on the model's input."""
        return isinstance(x, Tensor) and id(x) in self.names

    def name(self, x: Any, like: Any = None, hint: str = "const") -> str:
        """The ONNX name of ``x``: its traced value, or a new initializer for a constant (a raw
        Python number is given the dtype of ``like``, the tensor it combines with)."""
        if isinstance(x, Tensor):
            name = self.names.get(id(x))
            if name is not None:
                return name
            # the initializer is remembered by the tensor's id: the tensor is kept alive, so that a
            # temporary constant (an interpolation matrix, say) freed meanwhile cannot pass its id,
            # and its initializer, on to another one
            self._alive.append(x)
            return self.graph.constant(x.data, self.tensor_names.get(id(x), hint), key=id(x))
        array = np.asarray(x)
        if like is not None and array.dtype.kind in "biuf" and isinstance(x, (int, float, bool, np.generic)):
            array = array.astype(like.dtype if isinstance(like, Tensor) else like)
        return self.graph.constant(array, hint)

    def param(self, module: Any, attribute: str, transform: Callable[[np.ndarray], np.ndarray] | None = None) -> str:
        """An initializer for ``module.<attribute>`` named by its place in the model."""
        tensor = getattr(module, attribute)
        prefix = self.module_names.get(id(module), "")
        hint = f"{prefix}.{attribute}" if prefix else attribute
        if transform is None:
            return self.graph.constant(tensor.data, hint, key=id(tensor))
        return self.graph.constant(transform(np.asarray(tensor)), hint)

    def module_name(self, module: Any) -> str:
        return self.module_names.get(id(module), type(module).__name__) or type(module).__name__

    # -- batch-dependent shapes ---------------------------------------------------------------
    def dynamic_shape(self, in_shape: tuple[int, ...], target: tuple[int, ...], op: str) -> list[int]:
        """``target`` for ONNX ``Reshape``, with the batch dimension left for ONNX to work out:
        ``0`` (copy the input's) where input and target share it, else ``-1``."""
        target = [int(t) for t in target]
        n = self.batch_size
        if not self.dynamic_batch or n is None:
            return target
        if len(target) > 0 and len(in_shape) > 0 and target[0] == in_shape[0] and in_shape[0] % n == 0:
            target[0] = 0  # the leading (batch) dimension is kept
            return target
        for i, t in enumerate(target):
            if t % n == 0 and t > 0 and any(s % n == 0 for s in in_shape):
                if -1 in target:
                    raise UnsupportedOperatorError(
                        f"export_onnx: {op} to {tuple(target)} depends on the batch size in a way a dynamic-batch "
                        "graph cannot express; export with dynamic_batch=False")
                if i < len(in_shape) and in_shape[i] == t:
                    target[i] = 0
                else:
                    target[i] = -1
                return target
        return target

    # -- the two hooks ------------------------------------------------------------------------
    def on_function(self, cls: type, inputs: tuple[Any, ...], kwargs: dict[str, Any], output: Any) -> None:
        if not any(self.is_traced(x) for x in inputs):
            return  # a constant computation: its result becomes an initializer if it is used
        converter = None
        for klass in cls.__mro__:
            converter = OP_CONVERTERS.get(klass)
            if converter is not None:
                break
        if converter is None:
            raise UnsupportedOperatorError(
                f"export_onnx: the operation {cls.__name__} (from {cls.__module__}) has no ONNX converter; "
                "register one with rosenblatt.io.onnx_export.register_op_converter")
        outputs = output if isinstance(output, tuple) else (output,)
        names = converter(self, inputs, kwargs, outputs)
        names = [names] if isinstance(names, str) else list(names)
        for tensor, name in zip(outputs, names):
            self.bind(tensor, name)

    def on_module(self, module: Any, call: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        converter = self.layer_converters.get(type(module))
        if converter is None or not any(self.is_traced(a) for a in _flat(args)):
            return call(module, *args, **kwargs)
        self.suppress += 1
        try:
            output = call(module, *args, **kwargs)
        finally:
            self.suppress -= 1
        converter(self, module, args, kwargs, output)
        for tensor in _flat(output):
            if isinstance(tensor, Tensor) and not self.is_traced(tensor):
                raise UnsupportedOperatorError(
                    f"export_onnx: the converter of {type(module).__name__} left an output unnamed")
        return output


def _flat(value: Any) -> list[Any]:
    if isinstance(value, (tuple, list)):
        out = []
        for v in value:
            out.extend(_flat(v))
        return out
    return [value]


_ACTIVE: list[Tracer] = []


def _traced_apply(cls: type, *inputs: Any, **kwargs: Any) -> Any:
    output = _ORIGINAL_APPLY.__func__(cls, *inputs, **kwargs)
    if _ACTIVE and not _ACTIVE[-1].suppress:
        _ACTIVE[-1].on_function(cls, inputs, kwargs, output)
    return output


_ORIGINAL_APPLY = Function.__dict__["apply"]


class _Patched:
    """Route ``Function.apply`` and ``Module.__call__`` through the tracer for one forward pass."""

    def __init__(self, tracer: Tracer) -> None:
        self.tracer = tracer

    def __enter__(self) -> None:
        from rosenblatt.nn.module import Module

        self.module_class = Module
        self.original_call = Module.__dict__["__call__"]
        tracer = self.tracer
        original_call = self.original_call

        def traced_call(module: Any, *args: Any, **kwargs: Any) -> Any:
            if tracer.suppress:
                return original_call(module, *args, **kwargs)
            return tracer.on_module(module, original_call, args, kwargs)

        from rosenblatt.nn import _fusion, _transformer_inference, conv, linear
        from rosenblatt.nn.functional import activation

        # the tracer sees layers one by one: no fused Conv2d -> BatchNorm2d nodes, no array-level
        # inference paths (they record no ops) and no in-place activations while it runs
        self.fast_paths = [(m, m.ENABLED) for m in (_fusion, _transformer_inference, linear, conv, activation)]
        for m, _ in self.fast_paths:
            m.ENABLED = False
        _ACTIVE.append(tracer)
        Function.apply = classmethod(_traced_apply)
        Module.__call__ = traced_call

    def __exit__(self, *exc: object) -> None:
        for m, enabled in self.fast_paths:
            m.ENABLED = enabled
        Function.apply = _ORIGINAL_APPLY
        self.module_class.__call__ = self.original_call
        _ACTIVE.pop()


def _value_info(name: str, array: Any, symbolic_axes: dict[int, str]) -> Any:
    from onnx import helper

    dims = [symbolic_axes.get(i, int(d)) for i, d in enumerate(array.shape)]
    return helper.make_tensor_value_info(name, ONNX_DTYPES[np.dtype(array.dtype)], dims)


def export_onnx(model: Any, example_input: Any, path: str | os.PathLike | None, dynamic_batch: bool = True,
                opset: int = 17, batch_axis: int = 0, input_names: list[str] | None = None,
                output_names: list[str] | None = None) -> Any:
    """Export ``model`` to an ONNX file by tracing ``model(example_input)``.

    Args:
        model: a rosenblatt Module. It runs in eval mode during the export (dropout off, batch
            norm on running statistics) and gets its previous mode back afterwards.
        example_input: a Tensor or array (or a tuple of them for several inputs) of the shape and
            dtype the exported model will take.
        path: where to write the ``.onnx`` file; ``None`` writes nothing.
        dynamic_batch: make axis ``batch_axis`` of every input (and the outputs' axes) symbolic,
            so the exported model runs on any batch size.
        opset: the ONNX opset to target (17 or later).
        batch_axis: the batch axis of the inputs (1 for time-major ``(T, N, F)`` sequences).
        input_names, output_names: names of the graph's inputs and outputs (default ``input``/``output``,
            numbered when there are several).

    Returns:
        The ``onnx.ModelProto`` (also written to ``path``), checked with ``onnx.checker``.

    Raises:
        UnsupportedOperatorError: the model uses an op or layer setting without an ONNX equivalent;
            the message names it.
    """
    try:
        import onnx
        from onnx import helper
    except ImportError:
        raise ImportError("export_onnx needs the onnx package: pip install 'rosenblatt[onnx]'") from None
    from rosenblatt.io import _onnx_layers, _onnx_ops  # noqa: F401 - fill the converter registries

    if opset < 17:
        raise ValueError(f"export_onnx: opset must be 17 or later, got {opset}")
    examples = list(example_input) if isinstance(example_input, (tuple, list)) else [example_input]
    examples = [x if isinstance(x, Tensor) else Tensor(np.asarray(x)) for x in examples]
    if input_names is None:
        input_names = ["input"] if len(examples) == 1 else [f"input_{i}" for i in range(len(examples))]
    if len(input_names) != len(examples):
        raise ValueError(f"export_onnx: {len(input_names)} input names for {len(examples)} inputs")
    batch_size = None
    if dynamic_batch:
        if examples[0].ndim <= batch_axis:
            raise ValueError(f"export_onnx: the example input of shape {examples[0].shape} has no batch axis "
                             f"{batch_axis}; pass dynamic_batch=False")
        batch_size = examples[0].shape[batch_axis]
    graph = Graph(opset)
    tracer = Tracer(model, graph, batch_size, dynamic_batch)
    for name, x in zip(input_names, examples):
        graph._used.add(name)
        tracer.bind(x, name)
    was_training = getattr(model, "training", False)
    if hasattr(model, "eval"):
        model.eval()
    try:
        with no_grad(), _Patched(tracer):
            output = model(*examples)
    finally:
        if hasattr(model, "train"):
            model.train(was_training)
    outputs = [o for o in _flat(output) if isinstance(o, Tensor)]
    if not outputs:
        raise ValueError(f"export_onnx: the model returned {type(output).__name__}, expected tensors")
    if output_names is None:
        output_names = ["output"] if len(outputs) == 1 else [f"output_{i}" for i in range(len(outputs))]
    if len(output_names) != len(outputs):
        raise ValueError(f"export_onnx: {len(output_names)} output names for {len(outputs)} outputs")
    for out, name in zip(outputs, output_names):
        if not tracer.is_traced(out):
            raise ValueError("export_onnx: an output of the model does not depend on its input")
        graph._used.add(name)
        graph.add("Identity", [tracer.names[id(out)]], [name])

    def symbolic(x: Tensor, prefix: str) -> dict[int, str]:
        if not dynamic_batch:
            return {}
        return {i: f"{prefix}_dim{i}" for i in range(x.ndim)} if prefix != "batch" else {batch_axis: "batch"}

    onnx_graph = helper.make_graph(
        graph.nodes, f"{type(model).__name__}",
        [_value_info(n, x.data, symbolic(x, "batch")) for n, x in zip(input_names, examples)],
        [_value_info(n, o.data, symbolic(o, n)) for n, o in zip(output_names, outputs)],
        initializer=graph.initializers)
    onnx_model = helper.make_model(onnx_graph, opset_imports=[helper.make_opsetid("", opset)],
                                   producer_name="rosenblatt")
    onnx_model.ir_version = min(onnx_model.ir_version, 9)  # readable by onnxruntime releases of 2023 on
    onnx.checker.check_model(onnx_model, full_check=True)
    if path is not None:
        onnx.save(onnx_model, os.fspath(path))
    return onnx_model
