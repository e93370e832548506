"""rosenblatt: a deep-learning framework on NumPy, with its own reverse-mode autodiff.

``import rosenblatt as rb`` gives tensors and every op at the top level (PyTorch's names and
formulas, NumPy's ``axis=``/``keepdims=``); ``rb.nn``, ``rb.optim``, ``rb.data``, ``rb.train``,
``rb.models`` and the other subpackages load on first use, so importing stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

from rosenblatt import autograd, backend
from rosenblatt.backend import Device, cuda, device
from rosenblatt.core import (
    Function,
    Tensor,
    bool_,
    channels_last,
    contiguous_format,
    enable_grad,
    float16,
    float32,
    float64,
    get_default_dtype,
    grad,
    int32,
    int64,
    is_grad_enabled,
    memory_format,
    no_grad,
    preserve_format,
    set_default_dtype,
    set_grad_enabled,
)
from rosenblatt.kernels.memory import apply as _apply_malloc_policy
from rosenblatt.kernels.threads import get_num_threads, set_num_threads
from rosenblatt.ops import (
    abs,
    add,
    all,
    allclose,
    amax,
    amin,
    any,
    arange,
    argmax,
    argmin,
    argsort,
    as_tensor,
    broadcast_to,
    cat,
    chunk,
    clamp,
    clip,
    clone,
    concatenate,
    cos,
    cumsum,
    div,
    dot,
    einsum,
    empty,
    eq,
    exp,
    expand,
    eye,
    flatten,
    flip,
    floor_divide,
    from_numpy,
    full,
    full_like,
    gather,
    ge,
    gt,
    isfinite,
    isnan,
    le,
    linspace,
    log,
    log1p,
    log_softmax,
    logical_and,
    logical_not,
    logical_or,
    logsumexp,
    lt,
    matmul,
    max,
    maximum,
    mean,
    min,
    minimum,
    mul,
    ne,
    neg,
    norm,
    normal,
    one_hot,
    ones,
    ones_like,
    outer,
    pad,
    permute,
    pow,
    prod,
    rand,
    randint,
    randn,
    relu,
    remainder,
    reshape,
    sigmoid,
    sign,
    sin,
    softmax,
    sort,
    split,
    sqrt,
    squeeze,
    stack,
    std,
    sub,
    sum,
    sum_to,
    swapaxes,
    take,
    take_along_axis,
    tanh,
    tensor,
    topk,
    transpose,
    uniform,
    unsqueeze,
    var,
    where,
    zeros,
    zeros_like,
)
from rosenblatt.random import get_rng_state, manual_seed, set_rng_state
from rosenblatt.serialization import load, save

bool = bool_  # noqa: A001 - rb.bool, as torch.bool
__version__ = "0.1.0"
_apply_malloc_policy()  # keep freed array memory for the next step (rosenblatt.kernels.memory)

_SUBPACKAGES = ("nn", "optim", "data", "train", "models", "io", "viz", "tune", "distributed",
                "experiments", "cli")


def __getattr__(name: str) -> Any:
    if name in _SUBPACKAGES:
        module = importlib.import_module(f"rosenblatt.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'rosenblatt' has no attribute '{name}'")


__all__ = [
    "Device", "Function", "Tensor", "abs", "add", "all", "allclose", "amax", "amin", "any", "arange",
    "argmax", "argmin", "argsort", "as_tensor", "autograd", "backend", "bool", "broadcast_to", "cat", "chunk",
    "clamp", "clip", "clone", "concatenate", "cos", "cuda", "cumsum", "device", "div", "dot", "einsum", "empty",
    "channels_last", "contiguous_format", "enable_grad", "eq", "exp", "expand", "eye", "flatten", "flip", "float16", "float32", "float64", "memory_format", "preserve_format",
    "floor_divide", "from_numpy", "full", "full_like", "gather", "ge", "get_default_dtype",
    "get_num_threads", "get_rng_state", "grad", "gt", "int32", "int64", "is_grad_enabled", "isfinite", "isnan", "le",
    "linspace", "load", "log", "log1p", "log_softmax", "logical_and", "logical_not", "logical_or",
    "logsumexp", "lt", "manual_seed", "matmul", "max", "maximum", "mean", "min", "minimum", "mul",
    "ne", "neg", "no_grad", "norm", "normal", "one_hot", "ones", "ones_like", "outer", "pad",
    "permute", "pow", "prod", "rand", "randint", "randn", "relu", "remainder", "reshape", "save",
    "set_default_dtype", "set_grad_enabled", "set_num_threads", "set_rng_state", "sigmoid", "sign", "sin",
    "softmax", "sort", "split", "sqrt", "squeeze", "stack", "std", "sub", "sum", "sum_to", "swapaxes", "take",
    "take_along_axis", "tanh", "tensor", "topk", "transpose", "uniform", "unsqueeze", "var", "where",
    "zeros", "zeros_like",
]
