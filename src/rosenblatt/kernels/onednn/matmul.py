"""oneDNN's matmul primitive on strided NumPy arrays: ``out = post(scale * a @ b + bias)``.

Every operand is described with its own strides, so transposed views, head-split views of a
projection and outputs inside a larger buffer are used in place. Leading (batch) axes run as one
threaded call. Optional extras ride on the primitive: a scalar ``scale`` and a ReLU as eltwise
post-ops, a bias row broadcast over the output rows. Primitives are cached by shapes, strides and
extras (:func:`rosenblatt.kernels.onednn.library.cached`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rosenblatt.kernels.onednn import library as L

C = L.C
ELTWISE_LINEAR = 38  # dnnl_eltwise_linear: alpha * x + beta

L.bind("matmul_primitive_desc_create", [L._PP, L._P, L._P, L._P, L._P, L._P, L._P])


def _elements(a: np.ndarray) -> tuple[int, ...]:
    return tuple(s // 4 for s in a.strides)


def _plan(a: np.ndarray, b: np.ndarray, out: np.ndarray, scale: float, bias: bool, relu: bool,
          accumulate: bool, gelu: bool, tanh: bool = False, residual: Any = None) -> L.Primitive:
    post = (([(L.SUM, 1.0, 0.0)] if accumulate else []) + ([(ELTWISE_LINEAR, scale, 0.0)] if scale != 1.0 else [])
            + ([(C.eltwise_relu, 0.0, 0.0)] if relu else []) + ([(C.eltwise_gelu_erf, 0.0, 0.0)] if gelu else [])
            + ([(C.eltwise_tanh, 0.0, 0.0)] if tanh else [])
            + ([(L.BINARY_ADD, L.MemoryDesc.of(residual), 0.0)] if residual is not None else []))
    attr = L.Attr(post_ops=post) if post else None
    bias_md = None
    if bias:
        shape = (1,) * (out.ndim - 1) + (out.shape[-1],)
        bias_md = L.MemoryDesc.with_strides(shape, (out.shape[-1],) * (out.ndim - 1) + (1,))
    pd = L.create_pd("matmul", L.MemoryDesc.of(a), L.MemoryDesc.of(b), bias_md, L.MemoryDesc.of(out), attr,
                     op="matmul")
    primitive = L.Primitive(pd, "matmul")
    if primitive.impl().startswith("ref"):
        # oneDNN's reference loop: what it picks for a broadcast operand (zero strides, the gradient
        # of a sum). It took 0.38 s where sgemm or NumPy take 0.4 ms: declined, the caller falls back.
        raise L.DnnlError(f"matmul: only the reference implementation for {a.shape} @ {b.shape}")
    return primitive


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray, scale: float = 1.0, bias: Any = None,
           relu: bool = False, accumulate: bool = False, gelu: bool = False, tanh: bool = False,
           residual: Any = None) -> bool:
    """``out = relu?(scale * a @ b + bias)`` for float32 arrays; False when oneDNN declines.

    ``gelu=True`` applies the exact (erf) GELU instead of the ReLU, ``tanh=True`` the tanh. ``accumulate=True`` adds the product to what ``out`` holds (``out += a @ b + bias``; with
    ``scale``/``relu`` these apply after the sum). ``residual``, a float32 array of ``out``'s shape,
    is added last, as the output is written (``out = a @ b + bias + residual``: a residual
    connection without a copy of its input or a second pass).

    ``a`` is ``(*, M, K)``, ``b`` ``(*, K, N)``, ``out`` ``(*, M, N)`` with the same leading axes;
    ``bias`` a contiguous ``(N,)`` array or ``None``.
    """
    if any(s % 4 or s < 0 for s in a.strides + b.strides + out.strides):
        return False
    if 0 in a.strides and a.size > 1:  # a broadcast operand (the gradient of a sum): oneDNN would run
        a = np.ascontiguousarray(a)    # its reference loop on it; a copy costs far less
    if 0 in b.strides and b.size > 1:
        b = np.ascontiguousarray(b)
    residual_key = None
    if residual is not None:
        if (type(residual) is not np.ndarray or residual.dtype != np.float32 or residual.shape != out.shape
                or any(s % 4 or s < 0 for s in residual.strides)):
            return False
        residual_key = _elements(residual)
    key = ("matmul", a.shape, _elements(a), b.shape, _elements(b), out.shape, _elements(out), scale,
           bias is not None, relu, accumulate, gelu, tanh, residual_key)
    plan = L.cached_or_none(key, lambda: _plan(a, b, out, scale, bias is not None, relu, accumulate, gelu, tanh,
                                               residual))
    if plan is None:
        return False
    args = [(C.ARG_SRC, a), (C.ARG_WEIGHTS, b), (C.ARG_DST, out)]
    if residual is not None:
        index = accumulate + (scale != 1.0) + relu + gelu + tanh  # the residual's post-op comes last
        args.append((L.post_op_src(index), residual))
    if bias is not None:
        args.append((C.ARG_BIAS, bias))
    plan.execute(args)
    return True
