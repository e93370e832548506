"""Running ``Conv2d -> BatchNorm2d (-> ReLU)`` as one node when the oneDNN kernels are active.

:func:`conv_bn` is what :class:`~rosenblatt.nn.Sequential` and the ResNet blocks call before
running such a chain module by module. It runs the chain as :class:`ConvBatchNormFn` (the kernel in
:mod:`rosenblatt.kernels.onednn.fused`: the convolution's output never leaves oneDNN's blocked
layout) when that computes exactly what the modules would:

- the oneDNN kernel set is active and every array is float32 NumPy (:func:`kernels.use_onednn`);
- the modules are plain ``Conv2d`` (zero padding), ``BatchNorm2d`` in training mode with an
  affine weight and bias, and ``ReLU`` (or no activation), with no forward or pre-forward hooks
  (pruning masks are applied by a pre-forward hook);
- the input is a 4-D batch with the channels the convolution expects.

In inference (batch norm in eval mode, no gradient recorded: ``rb.no_grad()``) the chain runs as
one oneDNN convolution with batch norm folded into its weights and bias,
``w * gamma / sqrt(running_var + eps)`` and ``(b - running_mean) * gamma / sqrt(running_var + eps) + beta``,
followed by the residual sum and ReLU: one pass over the activations instead of three.

Otherwise it returns ``None`` and the caller runs the modules one by one (which also raises
their usual errors). The running statistics and ``num_batches_tracked`` are updated exactly as
``BatchNorm2d.forward`` does (``momentum=None``: the cumulative average).
"""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np

from rosenblatt import kernels
from rosenblatt.core import Function, Tensor, constant, is_grad_enabled, mark_modified
from rosenblatt.kernels import activation as _act
from rosenblatt.kernels.snapshot import Snapshot
from rosenblatt.nn.activation import ReLU, Tanh
from rosenblatt.nn.conv import Conv2d
from rosenblatt.nn.functional import relu as relu_fn
from rosenblatt.nn.functional._fused import composite_backward, composite_backward_arrays
from rosenblatt.nn.functional.conv import Conv2dFunction, _conv_geometry, _onednn_geometry
from rosenblatt.nn.functional.linear import LinearReLUFn, LinearTanhFn
from rosenblatt.nn.functional.normalization import _update_running_stats, batch_norm_composite
from rosenblatt.nn.linear import Linear
from rosenblatt.nn.normalization import BatchNorm2d
from rosenblatt.nn.pooling import AvgPool2d, MaxPool2d

ENABLED = True  # False: the modules always run one by one


def _composite(x: Tensor, w: Tensor, b: Tensor | None, gamma: Tensor, beta: Tensor, residual: Tensor | None,
               geom: Any, eps: float, relu: bool) -> Tensor:
    """The unfused chain: the oracle, and the differentiable gradients under ``create_graph``."""
    y = batch_norm_composite(Conv2dFunction.apply(x, w, b, geom), gamma, beta, eps)
    if residual is not None:
        y = y + residual
    return relu_fn(y) if relu else y


def _conv_bn_composite(ctx: Any) -> Any:
    """:func:`_composite` as a function of a :class:`ConvBatchNormFn` node's tensor inputs."""
    geom, eps, relu = ctx.inputs[6:9]
    return lambda x_, w_, b_, g_, be_, r_, *_: _composite(x_, w_, b_, g_, be_, r_, geom, eps, relu)


class ConvBatchNormFn(Function):
    """``relu?(batch_norm(conv2d(x, w) + b) [+ residual])`` in training mode, whose forward oneDNN
    already ran: ``result`` is ``(y, batch_mean, batch_var, saved)``. With a residual the ReLU
    follows the sum and its mask is taken from the output ``y`` (kept as an array: the sum before
    the ReLU is not)."""

    @staticmethod
    def forward(ctx, x, w, b, gamma, beta, residual, geom, eps, relu, result=None):
        y, _, _, ctx.state = result
        ctx.y = y if residual is not None and relu else None
        return y

    @staticmethod
    def backward(ctx, gy):
        return composite_backward(_conv_bn_composite(ctx), ctx.inputs, ctx.needs_input_grad, [gy])

    @staticmethod
    def backward_arrays(ctx, gy):
        x, w, b, gamma, beta, residual, geom, eps, relu = ctx.inputs
        needs = ctx.needs_input_grad[:6]
        if not kernels.use_onednn(gy):
            return composite_backward_arrays(_conv_bn_composite(ctx), ctx.inputs, ctx.needs_input_grad,
                                             [gy])
        from rosenblatt.kernels.onednn import fused

        g = _through_relu(ctx.y, gy)
        grads = fused.conv_bn_backward(g, x.data, w.data, gamma.data, ctx.state, needs[0])
        grads = grads + ((g if g is not gy else g.copy()) if needs[5] else None,)
        return tuple(a if need else None for a, need in zip(grads, needs)) + (None,) * 3


def _through_relu(y: Any, gy: Any) -> Any:
    """``gy`` through the ReLU whose output is ``y`` (``None``: no ReLU)."""
    return gy if y is None else _act.relu_grad(gy, y)


def _block_composite(x: Tensor, w1: Tensor, g1: Tensor, b1: Tensor, w2: Tensor, g2: Tensor, b2: Tensor,
                     residual: Tensor, geom1: Any, geom2: Any, eps1: float, eps2: float) -> Tensor:
    out = _composite(x, w1, None, g1, b1, None, geom1, eps1, True)
    return _composite(out, w2, None, g2, b2, residual, geom2, eps2, True)


class _ResidualFn(Function):
    """A residual node whose forward oneDNN already ran: ``result[0]`` is the output (kept: its final
    ReLU's mask), ``result[-1]`` what the kernel's backward needs. ``composite`` is the unfused
    computation, differentiated under ``create_graph``."""

    composite: Any = None

    @staticmethod
    def forward(ctx, *args, result=None):
        ctx.y, ctx.state = result[0], result[-1]
        return result[0]

    @staticmethod
    def backward(ctx, gy):
        return composite_backward(type(ctx).composite, ctx.inputs, ctx.needs_input_grad, [gy])


class ResidualBlockFn(_ResidualFn):
    """``relu(bn2(conv2(relu(bn1(conv1(x))))) + residual)`` in training mode (bias-free convolutions),
    whose forward oneDNN already ran: ``result`` is ``(y, stats1, stats2, saved)``. Inputs: ``x, w1,
    g1, b1, w2, g2, b2, residual, geom1, geom2, eps1, eps2``."""

    composite = staticmethod(_block_composite)

    @staticmethod
    def backward_arrays(ctx, gy):
        x, w1, g1, b1, w2, g2, b2, residual, geom1, geom2, eps1, eps2 = ctx.inputs
        needs = ctx.needs_input_grad[:8]
        if not kernels.use_onednn(gy):
            return composite_backward_arrays(_block_composite, ctx.inputs, ctx.needs_input_grad, [gy])
        from rosenblatt.kernels.onednn import fused

        g = _through_relu(ctx.y, gy)
        if residual is x and needs[0] and g is not gy and g.flags.c_contiguous:
            # an identity shortcut: x's two gradients summed as the block's leaves oneDNN's layout,
            # in the array g already is (ours: the ReLU gradient is a fresh array)
            grads = fused.block_backward(g, x.data, w1.data, g1.data, w2.data, g2.data, ctx.state, True, add_to=g)
            return tuple(a if need else None for a, need in zip(grads, needs)) + (None,) * 5
        grads = fused.block_backward(g, x.data, w1.data, g1.data, w2.data, g2.data, ctx.state, needs[0]) + (g,)
        return tuple(a if need else None for a, need in zip(grads, needs)) + (None,) * 4


def _stage_composite(x: Tensor, residual: Tensor | None, *args: Any) -> Tensor:
    """The unfused stage: ``args`` are the six parameters of each block, then the geometry pairs and
    the batch norms' eps pairs (and the plan, unused here)."""
    geoms, eps = args[-3], args[-2]
    for i, ((g1, g2), (e1, e2)) in enumerate(zip(geoms, eps)):
        w1, ga1, be1, w2, ga2, be2 = args[6 * i:6 * i + 6]
        shortcut = residual if i == 0 and residual is not None else x
        x = _block_composite(x, w1, ga1, be1, w2, ga2, be2, shortcut, g1, g2, e1, e2)
    return x


class ResidualStageFn(_ResidualFn):
    """A run of residual blocks in training mode, whose forward oneDNN already ran with every
    activation between the blocks in its own layout: ``result`` is ``(y, stats, saved)`` of
    :func:`rosenblatt.kernels.onednn.fused.stage_forward`. Inputs: ``x``, the first block's shortcut
    (``None``: its input), the six parameters of each block (``conv1.weight, bn1.weight, bn1.bias,
    conv2.weight, bn2.weight, bn2.bias``), the geometry pairs, the ``(eps1, eps2)`` pairs and the
    stage's plan."""

    composite = staticmethod(_stage_composite)

    @staticmethod
    def backward_arrays(ctx, gy):
        if not kernels.use_onednn(gy):
            return composite_backward_arrays(_stage_composite, ctx.inputs, ctx.needs_input_grad, [gy])
        from rosenblatt.kernels.onednn import fused

        stage, n = ctx.inputs[-1], len(ctx.inputs[-2])
        arrays = [t.data for t in ctx.inputs[2:2 + 6 * n]]
        params = [tuple(arrays[6 * i:6 * i + 6]) for i in range(n)]
        needs = ctx.needs_input_grad
        gx, g_residual, grads = fused.stage_backward(_through_relu(ctx.y, gy), stage, params, ctx.state, needs[0],
                                                     needs[1])
        flat = [gx, g_residual] + [a for block in grads for a in block]
        return tuple(a if need else None for a, need in zip(flat, needs)) + (None, None, None)


# Residual block classes whose forward is exactly ``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))``,
# ``shortcut`` being ``downsample`` or the identity, with the attributes conv1, bn1, relu, conv2, bn2,
# downsample (registered by rosenblatt.models.resnet): a Sequential runs consecutive blocks of these
# classes (only the first with a ``downsample``) as one ResidualStageFn.
RESIDUAL_BLOCKS: set[type] = set()


def _stage_block(m: Any, first: bool) -> bool:
    return (type(m) in RESIDUAL_BLOCKS and (first or m.downsample is None) and m.training and _unhooked(m)
            and _unhooked(m.relu) and type(m.relu) is ReLU and m.conv1.bias is None and m.conv2.bias is None)


def residual_stage(blocks: list[Any], x: Any) -> Tensor | None:
    """Consecutive residual blocks in training mode as one fused node (the activations between them
    never leave oneDNN's layout), or ``None`` when declined. The first block's ``downsample`` (if
    any) runs as a module of its own; its output is added in the stage."""
    if (len(blocks) < 2 or not is_grad_enabled() or not isinstance(x, Tensor) or x.ndim != 4 or min(x.shape) < 1
            or not kernels.use_onednn(x.data)):
        return None
    geoms, meta, shape = [], [], x.shape
    for m in blocks:
        g1 = _pair_geometry(m.conv1, m.bn1, shape)
        if g1 is None:
            return None
        mid = (shape[0], m.conv1.out_channels) + _out_hw(m.conv1, shape, g1)
        g2 = _pair_geometry(m.conv2, m.bn2, mid)
        if g2 is None or min(mid) < 1:
            return None
        geoms.append((g1, g2))
        meta.append((tuple(m.conv1.weight.shape), float(m.bn1.eps), _onednn_geometry(g1),
                     tuple(m.conv2.weight.shape), float(m.bn2.eps), _onednn_geometry(g2)))
        shape = (shape[0], m.conv2.out_channels) + _out_hw(m.conv2, mid, g2)
    if shape[0] * shape[2] * shape[3] <= 1:  # batch norm needs more than one value per channel
        return None
    from rosenblatt.kernels.onednn import fused

    first = blocks[0]
    stage = fused.stage_plan(x.shape, tuple(meta), first.downsample is not None)
    if stage is None:
        return None
    residual = None
    if first.downsample is not None:
        residual = first.downsample(x)
        if (not isinstance(residual, Tensor) or residual.shape != stage.blocks[0][1].conv.y_shape
                or not kernels.use_onednn(residual.data)):  # the blocks raise their errors
            y = first._forward_with(x, residual)
            rest = blocks[1:]
            return residual_stage(rest, y) or _run_blocks(rest, y)
    params = [(m.conv1.weight, m.bn1.weight, m.bn1.bias, m.conv2.weight, m.bn2.weight, m.bn2.bias) for m in blocks]
    y, stats, saved = fused.stage_forward(stage, x.data, [tuple(p.data for p in ps) for ps in params],
                                          None if residual is None else residual.data)
    for m, (p1, p2, _), (stats1, stats2) in zip(blocks, stage.blocks, stats):
        _update_stats(m.bn1, *stats1, _count(p1.conv.y_shape))
        _update_stats(m.bn2, *stats2, _count(p2.conv.y_shape))
    eps = tuple((float(m.bn1.eps), float(m.bn2.eps)) for m in blocks)
    return ResidualStageFn.apply(x, residual, *[p for ps in params for p in ps], tuple(geoms), eps, stage,
                                 result=(y, stats, saved))


def _count(shape: tuple[int, ...]) -> int:
    return shape[0] * shape[2] * shape[3]


def _run_blocks(blocks: list[Any], x: Any) -> Any:
    for m in blocks:
        x = m(x)
    return x


def _hooked(module: Any) -> bool:
    """True when calling the module runs hooks (a pruning mask, say): the fused path would skip them."""
    return bool(module._forward_hooks or getattr(module, "_forward_pre_hooks", None))


def _eligible(conv: Any, bn: Any, relu: Any, x: Any, training: bool = True) -> Any:
    """The convolution geometry when ``relu?(bn(conv(x)))`` may run fused with batch norm in
    training (or, with ``training=False``, eval) mode, else ``None``."""
    if (not ENABLED or (relu is not None and (type(relu) is not ReLU or _hooked(relu))) or not isinstance(x, Tensor)
            or x.ndim != 4 or not kernels.use_onednn(x.data)):
        return None
    return _pair_geometry(conv, bn, x.shape, training)


def _pair_geometry(conv: Any, bn: Any, shape: tuple[int, ...], training: bool = True) -> Any:
    """``conv``'s geometry on inputs of ``shape`` when ``bn(conv(.))`` may run fused (plain modules,
    no hooks, batch norm with scale and shift in the given mode, oneDNN-ready parameters), else ``None``."""
    if (type(conv) is not Conv2d or type(bn) is not BatchNorm2d or bn.training != training or bn.weight is None
            or bn.bias is None or conv.padding_mode != "zeros" or _hooked(conv) or _hooked(bn)
            or shape[1] != conv.in_channels or bn.num_features != conv.out_channels):
        return None
    w, b = conv.weight, conv.bias
    if not kernels.use_onednn(w.data, None if b is None else b.data, bn.weight.data, bn.bias.data):
        return None
    try:
        return _conv_geometry("conv2d", shape[2:], w.shape[2:], conv.stride, conv.padding, conv.dilation,
                              conv.groups)
    except ValueError:
        return None


def _update_stats(bn: Any, mean: Any, var: Any, count: int) -> None:
    """``BatchNorm2d.forward``'s bookkeeping: ``num_batches_tracked`` and the running statistics."""
    if bn.track_running_stats:
        bn.num_batches_tracked.data += 1
        mark_modified(bn.num_batches_tracked)
        factor = 1.0 / float(bn.num_batches_tracked.data) if bn.momentum is None else float(bn.momentum)
        _update_running_stats(bn.running_mean, bn.running_var, mean, var, count, factor)


def _add_relu(y: Any, residual: Tensor | None, relu: bool) -> None:
    if residual is not None:
        from rosenblatt.kernels.onednn import eltwise  # the oneDNN kernels are active here

        eltwise.add(y, residual.data, relu)  # one threaded pass where it runs


class _Folded:
    """One convolution's weight and bias with eval-mode batch norm folded in (the weight already in
    the oneDNN primitive's layout), and what they were computed from."""

    __slots__ = ("sources", "versions", "key", "weight", "bias")

    def __init__(self, sources: tuple, versions: tuple, key: tuple, weight: Any, bias: Any) -> None:
        self.sources, self.versions, self.key, self.weight, self.bias = Snapshot(sources), versions, key, weight, bias

    def valid(self, sources: tuple, versions: tuple, key: tuple) -> bool:
        """True when every source is the same array (``is``) at the same version holding the same
        values (a write into the array itself moves no version), and ``key`` is equal."""
        return versions == self.versions and key == self.key and self.sources.holds(sources)


# Conv2d -> its _Folded, for as long as the module lives. An entry is recomputed whenever one of its
# sources changed: a parameter or running statistic replaced or written in place (the framework's
# writes move the tensor's version counter: optimisers, load_state_dict, copy_ ...; a write into the
# array itself, p.data -= ..., changes its values: kernels.snapshot), another batch norm, another
# eps, another input shape or geometry.
_folded_cache: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _folded_parameters(conv: Any, bn: Any, x_shape: tuple[int, ...], geom: Any, kind: str) -> _Folded:
    """``conv``'s folded weight (prepared for oneDNN forward primitive ``kind``) and bias, cached."""
    tensors = (conv.weight, conv.bias, bn.weight, bn.bias, bn.running_mean, bn.running_var)
    sources = tuple(None if t is None else t.data for t in tensors)
    versions = tuple(-1 if t is None else t._version for t in tensors)
    key = (id(bn), float(bn.eps), x_shape, geom, kind)  # the batch norm's arrays are kept alive by sources
    folded = _folded_cache.get(conv)
    if folded is not None and folded.valid(sources, versions, key):
        return folded
    from rosenblatt.kernels.onednn import conv as dnn

    w, b, gamma, beta, mean, var = sources
    scale = gamma / np.sqrt(var + np.float32(bn.eps))
    weight = np.ascontiguousarray(w * scale.reshape(-1, 1, 1, 1))
    shift = b - mean if b is not None else -mean
    bias = np.ascontiguousarray(shift * scale + beta)
    weight = dnn.prepare_weight(x_shape, weight, kind, *_onednn_geometry(geom))
    folded = _folded_cache[conv] = _Folded(sources, versions, key, weight, bias)
    return folded


def _folded_inference(conv: Any, bn: Any, relu: Any, x: Any, residual: Any) -> Tensor | None:
    """``relu(bn(conv(x)) + residual)`` with eval-mode batch norm folded into the convolution, when
    no gradient is recorded; ``None`` when declined. The folded weights are computed once and
    reused while the parameters and statistics stay unchanged (:func:`_folded_parameters`)."""
    if is_grad_enabled() or bn.running_mean is None or bn.running_var is None:
        return None
    geom = _eligible(conv, bn, relu, x, training=False)
    if geom is None or not kernels.use_onednn(bn.running_mean.data, bn.running_var.data):
        return None
    if residual is not None and not (isinstance(residual, Tensor) and kernels.use_onednn(residual.data)):
        return None
    from rosenblatt.kernels.onednn import conv as dnn

    if relu is not None and residual is None:  # the ReLU runs as the convolution's post-op
        folded = _folded_parameters(conv, bn, x.shape, geom, "infer_relu")
        y = dnn.conv_bias_relu(x.data, folded.weight, folded.bias, *_onednn_geometry(geom))
        return None if y is None else constant(y)
    folded = _folded_parameters(conv, bn, x.shape, geom, "fwd_bias")
    y = dnn.conv_forward(x.data, folded.weight, folded.bias, *_onednn_geometry(geom))
    if y is None or (residual is not None and residual.shape != y.shape):
        return None
    if residual is not None:
        y += residual.data
    if relu is not None:
        np.maximum(y, 0, out=y)
    return constant(y)


def _folded_block(conv1: Any, bn1: Any, conv2: Any, bn2: Any, x: Any, residual: Any, geom1: Any,
                  geom2: Any) -> Tensor | None:
    """A residual block in inference, both batch norms folded: ``None`` when declined."""
    for bn in (bn1, bn2):
        if bn.running_mean is None or bn.running_var is None or not kernels.use_onednn(bn.running_mean.data,
                                                                                      bn.running_var.data):
            return None
    from rosenblatt.kernels.onednn import conv as dnn

    f1 = _folded_parameters(conv1, bn1, x.shape, geom1, "infer_relu")
    mid_shape = (x.shape[0], conv1.out_channels) + _out_hw(conv1, x.shape, geom1)
    f2 = _folded_parameters(conv2, bn2, mid_shape, geom2, "infer_sum_relu")
    relaid = _take_relaid(x)
    og1, og2 = _onednn_geometry(geom1), _onednn_geometry(geom2)
    result = dnn.residual_block_inference(x.data, f1.weight, f1.bias, og1, f2.weight, f2.bias, og2, residual.data,
                                          relaid)
    if result is None:
        return None
    _block_plans[conv1] = _BlockPlan(conv1, bn1, conv2, bn2, x, residual, (f1.weight, f1.bias, og1, f2.weight,
                                                                          f2.bias, og2))
    return _block_output(result)


def _take_relaid(x: Tensor) -> Any:
    """The previous block's oneDNN-layout copy of its output when ``x`` is that output, unchanged
    (``None`` otherwise); the handoff is used once."""
    global _last_block
    last, _last_block = _last_block, None
    if last is not None and last[0]() is x and x._version == last[1]:
        return last[2]
    return None


def _block_output(result: tuple) -> Tensor:
    global _last_block
    y = constant(result[0])
    if result[1] is not None:
        _last_block = (weakref.ref(y), y._version, result[1])
    return y


class _BlockPlan:
    """What a residual block in inference resolved on its last call (folded weights, geometries),
    and everything that call depended on: the input's and the shortcut's shapes, whether the
    shortcut was the input itself, each parameter and statistic (the same tensor holding the same
    array at the same version, with the same values: :class:`Snapshot`), the eps and the geometry
    arguments. While all of that holds, the
    next call goes straight to the kernel: about 40 us of checks less per block at batch 1."""

    __slots__ = ("x_shape", "r_shape", "identity", "tensors", "arrays", "versions", "attrs", "args")

    def __init__(self, conv1: Any, bn1: Any, conv2: Any, bn2: Any, x: Tensor, residual: Tensor, args: tuple) -> None:
        self.x_shape, self.r_shape, self.identity = x.shape, residual.shape, residual is x
        self.tensors = _block_tensors(conv1, bn1, conv2, bn2)
        # .data may be replaced, or written into: the arrays and their values
        self.arrays = Snapshot([None if t is None else t.data for t in self.tensors])
        self.versions = tuple(-1 if t is None else t._version for t in self.tensors)
        self.attrs = _block_attrs(conv1, bn1, conv2, bn2)
        self.args = args

    def valid(self, conv1: Any, bn1: Any, conv2: Any, bn2: Any, x: Any, residual: Any) -> bool:
        if (type(x) is not Tensor or x.shape != self.x_shape or (residual is x) != self.identity
                or not kernels.use_onednn(x.data)):
            return False
        if not self.identity and (type(residual) is not Tensor or residual.shape != self.r_shape
                                  or not kernels.use_onednn(residual.data)):
            return False
        for t, old in zip(_block_tensors(conv1, bn1, conv2, bn2), self.tensors):
            if t is not old:
                return False
        for t, v in zip(self.tensors, self.versions):
            if t is not None and t._version != v:
                return False
        for a, b in zip(_block_attrs(conv1, bn1, conv2, bn2), self.attrs):
            if a is not b and a != b:
                return False
        return self.arrays.holds([None if t is None else t.data for t in self.tensors])


def _block_tensors(conv1: Any, bn1: Any, conv2: Any, bn2: Any) -> tuple:
    return (conv1.weight, conv1.bias, bn1.weight, bn1.bias, bn1.running_mean, bn1.running_var,
            conv2.weight, conv2.bias, bn2.weight, bn2.bias, bn2.running_mean, bn2.running_var)


def _block_attrs(conv1: Any, bn1: Any, conv2: Any, bn2: Any) -> tuple:
    return (conv1.stride, conv1.padding, conv1.dilation, conv1.groups, conv1.padding_mode, bn1.eps,
            conv2.stride, conv2.padding, conv2.dilation, conv2.groups, conv2.padding_mode, bn2.eps)


# BasicBlock's first convolution -> the plan of its last inference call
_block_plans: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _planned_block(conv1: Any, bn1: Any, relu: Any, conv2: Any, bn2: Any, x: Any, residual: Any) -> Tensor | None:
    """A residual block in inference through its cached plan, or ``None`` (no valid plan)."""
    plan = _block_plans.get(conv1)
    if (plan is None or not ENABLED or bn1.training or bn2.training or _hooked(conv1) or _hooked(bn1)
            or _hooked(relu) or _hooked(conv2) or _hooked(bn2) or type(relu) is not ReLU
            or not plan.valid(conv1, bn1, conv2, bn2, x, residual)):
        return None
    from rosenblatt.kernels.onednn import conv as dnn

    w1, b1, og1, w2, b2, og2 = plan.args
    result = dnn.residual_block_inference(x.data, w1, b1, og1, w2, b2, og2, residual.data, _take_relaid(x))
    return None if result is None else _block_output(result)


# The last residual block's output in inference (a weak reference and its version) with its copy
# in oneDNN's layout: the next block of a ResNet stage starts from that copy instead of
# reordering its input and its residual again. One entry: it lives until the next block runs.
_last_block: tuple[Any, int, Any] | None = None


def _out_hw(conv: Any, x_shape: tuple[int, ...], geom: Any) -> tuple[int, int]:
    """The convolution's output height and width for an input of ``x_shape``."""
    (ph, pw), (sh, sw), (dh, dw) = geom.padding, geom.stride, geom.dilation
    kh, kw = conv.weight.shape[2:]
    return ((x_shape[2] + sum(ph) - dh * (kh - 1) - 1) // sh + 1, (x_shape[3] + sum(pw) - dw * (kw - 1) - 1) // sw + 1)


def conv_bn(conv: Any, bn: Any, relu: Any, x: Any, residual: Any = None) -> Tensor | None:
    """``relu(bn(conv(x)) + residual)`` (``relu`` and ``residual`` may be ``None``) as one fused
    node, or ``None`` when declined."""
    if not bn.training:
        return _folded_inference(conv, bn, relu, x, residual)
    geom = _eligible(conv, bn, relu, x)
    if geom is None or (residual is not None and not (isinstance(residual, Tensor)
                                                      and kernels.use_onednn(residual.data))):
        return None
    from rosenblatt.kernels.onednn import fused

    w, b = conv.weight, conv.bias
    fuse_relu = relu is not None and residual is None  # batch norm's own ReLU flag
    result = fused.conv_bn_forward(x.data, w.data, None if b is None else b.data, bn.weight.data, bn.bias.data,
                                   bn.eps, fuse_relu, *_onednn_geometry(geom))
    if result is None:
        return None
    y = result[0]
    count = y.size // y.shape[1]
    if count <= 1 or (residual is not None and residual.shape != y.shape):  # the modules raise their errors
        return None
    _add_relu(y, residual, relu is not None)
    _update_stats(bn, result[1], result[2], count)
    return ConvBatchNormFn.apply(x, w, b, bn.weight, bn.bias, residual, geom, float(bn.eps), relu is not None,
                                 result=result)


def residual_block(conv1: Any, bn1: Any, relu: Any, conv2: Any, bn2: Any, x: Any, residual: Any) -> Tensor | None:
    """``relu(bn2(conv2(relu(bn1(conv1(x))))) + residual)`` as one fused node (the middle activation
    stays in oneDNN's blocked layout), or ``None`` when declined. In inference (batch norms in eval
    mode, no gradient recorded) both batch norms are folded into the convolutions."""
    training = bn1.training
    if not training:
        if is_grad_enabled():
            return None
        y = _planned_block(conv1, bn1, relu, conv2, bn2, x, residual)
        if y is not None:
            return y
    geom1 = _eligible(conv1, bn1, relu, x, training)
    if (geom1 is None or relu is None or conv1.bias is not None or conv2.bias is not None
            or not isinstance(residual, Tensor) or not kernels.use_onednn(residual.data)):
        return None
    n = x.shape[0]
    mid_shape = (n, conv1.out_channels) + _out_hw(conv1, x.shape, geom1)
    if min(mid_shape) < 1:
        return None
    geom2 = _pair_geometry(conv2, bn2, mid_shape, training)
    if geom2 is None:
        return None
    if not training:
        return _folded_block(conv1, bn1, conv2, bn2, x, residual, geom1, geom2)
    from rosenblatt.kernels.onednn import fused

    result = fused.block_forward(x.data, conv1.weight.data, bn1.weight.data, bn1.bias.data, bn1.eps,
                                 _onednn_geometry(geom1), conv2.weight.data, bn2.weight.data, bn2.bias.data,
                                 bn2.eps, _onednn_geometry(geom2))
    if result is None:
        return None
    y = result[0]
    if y.size // y.shape[1] <= 1 or residual.shape != y.shape:
        return None
    _add_relu(y, residual, True)
    _update_stats(bn1, *result[1], n * mid_shape[2] * mid_shape[3])
    _update_stats(bn2, *result[2], y.size // y.shape[1])
    return ResidualBlockFn.apply(x, conv1.weight, bn1.weight, bn1.bias, conv2.weight, bn2.weight, bn2.bias, residual,
                                 geom1, geom2, float(bn1.eps), float(bn2.eps), result=result)


# -- layer chains: Conv2d / BatchNorm2d / ReLU / Tanh / MaxPool2d / AvgPool2d runs in oneDNN layouts ----


def _chain_composite(x: Tensor, *args: Any) -> Tensor:
    """The unfused chain: ``args`` are the parameters in order, then the composite steps."""
    from rosenblatt.nn.functional.pooling import avg_pool2d, max_pool2d
    from rosenblatt.ops import tanh

    steps, params = args[-1], iter(args[:-1])
    for step in steps:
        kind = step[0]
        if kind == "conv":
            w = next(params)
            b = next(params) if step[2] else None
            x = Conv2dFunction.apply(x, w, b, step[1])
        elif kind == "bn":
            x = batch_norm_composite(x, next(params), next(params), step[1])
            x = relu_fn(x) if step[2] else x
        elif kind == "relu":
            x = relu_fn(x)
        elif kind == "tanh":
            x = tanh(x)
        elif kind == "max":
            x = max_pool2d(x, *step[1:])
        else:
            x = avg_pool2d(x, *step[1:])
    return x


class LayerChainFn(Function):
    """Consecutive convolution, training-mode batch norm, ReLU/tanh and pooling layers whose forward
    oneDNN already ran with the activations in between kept in its layouts: ``result`` is ``(y,
    stats, saved)`` of :func:`rosenblatt.kernels.onednn.chain.forward`. Inputs: ``x``, the layers'
    parameters in order, then the composite steps (for ``create_graph``)."""

    @staticmethod
    def forward(ctx, x, *args, result=None):
        y, _, ctx.state = result
        return y

    @staticmethod
    def backward(ctx, gy):
        return composite_backward(_chain_composite, ctx.inputs, ctx.needs_input_grad, [gy])

    @staticmethod
    def backward_arrays(ctx, gy):
        if not kernels.use_onednn(gy) or ctx.state is None:
            return composite_backward_arrays(_chain_composite, ctx.inputs, ctx.needs_input_grad, [gy])
        from rosenblatt.kernels.onednn import chain

        params = [t.data for t in ctx.inputs[1:-1]]
        gx, grads = chain.backward(gy, params, ctx.state, ctx.needs_input_grad[0])
        return tuple(a if need else None for a, need in zip([gx] + grads, ctx.needs_input_grad)) + (None,)


def _chain_specs(modules: list[Any], x: Tensor) -> tuple[int, tuple, tuple, list, list] | None:
    """How many of ``modules`` (a Conv2d first) run as one oneDNN chain on ``x``: ``(count, specs,
    composite steps, parameters, batch norms with their positions)``, or ``None``."""
    from rosenblatt.kernels.onednn import conv as dconv
    from rosenblatt.nn.functional.pooling import _onednn_args, _pool_geometry

    n, c, h, w = x.shape
    specs, steps, params, bns = [], [], [], []
    i, convs = 0, 0
    while i < len(modules):
        m = modules[i]
        t = type(m)
        if _hooked(m):
            break
        if t is Conv2d:
            if m.padding_mode != "zeros" or m.in_channels != c:
                break
            try:
                geom = _conv_geometry("conv2d", (h, w), m.weight.shape[2:], m.stride, m.padding, m.dilation, m.groups)
            except ValueError:
                break
            og = _onednn_geometry(geom)
            if not dconv.worthwhile((n, c, h, w), m.weight.shape, *og[:4]):
                break
            in_shape = (n, c, h, w)
            h, w = _out_hw(m, (n, c, h, w), geom)
            c = m.out_channels
            specs.append(("conv", tuple(m.weight.shape), m.bias is not None, og))
            steps.append(("conv", geom, m.bias is not None))
            params += [m.weight] if m.bias is None else [m.weight, m.bias]
            convs += 1
            conv_at = (len(params), m, in_shape, geom)
        elif (t is BatchNorm2d and not m.training and not is_grad_enabled() and specs and specs[-1][0] == "conv"
              and conv_at[0] == len(params) and m.running_mean is not None and m.running_var is not None
              and m.weight is not None and m.bias is not None and m.num_features == c):
            # inference: folded into the convolution before it (its weight and bias replaced)
            conv = conv_at[1]
            folded = _folded_parameters(conv, m, conv_at[2], conv_at[3], "fwd_bias")
            del params[-(1 if conv.bias is None else 2):]
            params += [folded.weight, folded.bias]
            specs[-1] = ("conv", specs[-1][1], True, specs[-1][3])
        elif t is BatchNorm2d:
            if not m.training or m.weight is None or m.bias is None or m.num_features != c or n * h * w <= 1:
                break
            relu = i + 1 < len(modules) and type(modules[i + 1]) is ReLU and not _hooked(modules[i + 1])
            specs.append(("bn", float(m.eps), relu))
            steps.append(("bn", float(m.eps), relu))
            params += [m.weight, m.bias]
            bns.append((m, n * h * w))
            i += relu
        elif t is ReLU or t is Tanh:
            name = "relu" if t is ReLU else "tanh"
            specs.append(("eltwise", name))
            steps.append((name,))
        elif t is MaxPool2d or t is AvgPool2d:
            if t is MaxPool2d and m.return_indices or t is AvgPool2d and m.divisor_override is not None:
                break
            dilation = m.dilation if t is MaxPool2d else 1
            op = "max_pool2d" if t is MaxPool2d else "avg_pool2d"
            try:
                geom = _pool_geometry(op, (h, w), m.kernel_size, m.stride, m.padding, dilation, m.ceil_mode)
            except (ValueError, TypeError):
                break
            if t is MaxPool2d:
                alg = "max"
                steps.append(("max", m.kernel_size, m.stride, m.padding, dilation, m.ceil_mode))
            else:
                padded = tuple(k + 2 * p for k, p in zip(geom.in_hw, geom.padding))
                if not m.count_include_pad:
                    alg = "avg_exclude"
                elif tuple(geom.padded_hw) == padded:
                    alg = "avg_include"
                else:
                    break
                steps.append(("avg", m.kernel_size, m.stride, m.padding, m.ceil_mode, m.count_include_pad))
            h, w = geom.out_hw
            specs.append(("pool", alg, *_onednn_args(geom), tuple(geom.out_hw)))
        else:
            break
        if min(h, w) < 1:
            return None
        i += 1
    if convs == 0 or len(specs) < 2:
        return None
    return i, tuple(specs), tuple(steps), params, bns


# (input shape, weight shape, stride, padding, dilation, groups) of first convolutions too small for
# a chain: the oneDNN call's fixed cost loses to NumPy there (see rosenblatt.kernels.onednn.conv).
_small_first_conv: set[tuple] = set()


def _first_conv_too_small(conv: Any, x: Tensor) -> bool:
    from rosenblatt.kernels.onednn import conv as dconv

    try:
        geom = _conv_geometry("conv2d", x.shape[2:], conv.weight.shape[2:], conv.stride, conv.padding,
                              conv.dilation, conv.groups)
    except ValueError:
        return False
    return not dconv.worthwhile(x.shape, conv.weight.shape, *_onednn_geometry(geom)[:4])


def layer_chain(modules: list[Any], x: Any) -> tuple[Tensor, int] | None:
    """The longest run of ``modules`` from the first (a Conv2d) that oneDNN runs as one chain, run:
    ``(output, how many modules it covered)``; ``None`` when declined."""
    if (not ENABLED or not isinstance(x, Tensor) or x.ndim != 4 or x.shape[1] != modules[0].in_channels
            or min(x.shape) < 1 or not kernels.use_onednn(x.data)):
        return None
    from rosenblatt.kernels.onednn import conv as dconv

    first = modules[0]
    try:  # a first convolution already found too small for this input: decline at once (batch 1)
        key = (x.shape, first.weight.shape, first.stride, first.padding, first.dilation, first.groups,
               dconv.MIN_MACS)
        if key in _small_first_conv:
            return None
    except TypeError:  # an unhashable argument (a list): no shortcut
        key = None
    found = _chain_specs(modules, x)
    if found is None:
        if key is not None and _first_conv_too_small(first, x):
            if len(_small_first_conv) > 1024:
                _small_first_conv.clear()
            _small_first_conv.add(key)
        return None
    count, specs, steps, params, bns = found
    tensors = [p for p in params if isinstance(p, Tensor)]  # the others: folded (inference) arrays
    if not kernels.use_onednn(x.data, *[p.data for p in tensors]):
        return None
    from rosenblatt.kernels.onednn import chain

    grad = is_grad_enabled()
    result = chain.forward(specs, x.data, [p.data if isinstance(p, Tensor) else p for p in params], keep=grad)
    if result is None:
        return None
    for (bn, count_bn), (mean, var) in zip(bns, result[1]):
        _update_stats(bn, mean, var, count_bn)
    if not grad:
        return constant(result[0]), count
    return LayerChainFn.apply(x, *params, steps, result=result), count


def run_sequence(modules: list[Any], x: Any) -> Any:
    """Call ``modules`` in order, fusing the runs of convolutional layers that :func:`layer_chain`,
    :func:`residual_stage` and :func:`conv_bn` take, and each ``Linear, ReLU`` or ``Linear, Tanh`` pair
    (one product with the activation applied as it is written: one node in training,
    :class:`LinearReLUFn` / :class:`LinearTanhFn`)."""
    i, n = 0, len(modules)
    while i < n:
        m = modules[i]
        if type(m) in RESIDUAL_BLOCKS and ENABLED:
            j = i
            while j < n and _stage_block(modules[j], j == i):
                j += 1
            y = residual_stage(modules[i:j], x) if j - i >= 2 else None
            if y is not None:
                x = y
                i = j
                continue
        if type(m) is Conv2d and i + 1 < n:
            chained = layer_chain(modules[i:], x)
            if chained is not None:
                x, count = chained
                i += count
                continue
        if type(m) is Conv2d and i + 1 < n and type(modules[i + 1]) is BatchNorm2d:
            relu = modules[i + 2] if i + 2 < n and type(modules[i + 2]) is ReLU else None
            y = conv_bn(m, modules[i + 1], relu, x)
            if y is not None:
                x = y
                i += 2 if relu is None else 3
                continue
        if (type(m) is Linear and i + 1 < n and type(modules[i + 1]) in (ReLU, Tanh) and ENABLED
                and _unhooked(m) and _unhooked(modules[i + 1])
                and isinstance(x, Tensor) and x.ndim == 2 and x.shape[1] == m.in_features):
            # The activation applied as the product is written; in training one node (LinearReLUFn,
            # LinearTanhFn).
            relu = type(modules[i + 1]) is ReLU
            if not is_grad_enabled():
                x = m._inference(x, relu=relu, tanh=not relu)
            else:
                x = (LinearReLUFn if relu else LinearTanhFn).apply(x, m.weight, m.bias)
            i += 2
            continue
        x = m(x)
        i += 1
    return x


def _unhooked(m: Any) -> bool:
    return not m._forward_hooks and not m._forward_pre_hooks


__all__ = ["RESIDUAL_BLOCKS", "ConvBatchNormFn", "LayerChainFn", "ResidualBlockFn", "ResidualStageFn", "conv_bn",
           "layer_chain", "residual_block", "residual_stage", "run_sequence"]
