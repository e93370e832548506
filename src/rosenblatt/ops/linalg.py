"""Matrix products: ``matmul`` (with batch broadcasting), ``dot``, ``outer`` and ``einsum``."""

from __future__ import annotations

import string
from typing import Any

from rosenblatt.backend import get_array_module
from rosenblatt.core import Function, Tensor
from rosenblatt.kernels import gemm
from rosenblatt.ops._util import as_tensor_arg


class MatMul(Function):
    @staticmethod
    def forward(ctx, a, b):
        return gemm.matmul(a, b)

    @staticmethod
    def backward(ctx, gy):
        a, b = ctx.inputs
        need_a, need_b = ctx.needs_input_grad
        # Batch dimensions that were broadcast are summed back by the engine's sum_to.
        ga = matmul(gy, swapaxes(b, -1, -2)) if need_a else None
        gb = matmul(swapaxes(a, -1, -2), gy) if need_b else None
        return ga, gb

    @staticmethod
    def backward_arrays(ctx, gy):
        a, b = ctx.inputs
        need_a, need_b = ctx.needs_input_grad
        xp = get_array_module(gy)
        ga = gemm.matmul(gy, xp.swapaxes(b.data, -1, -2)) if need_a else None
        gb = gemm.matmul(xp.swapaxes(a.data, -1, -2), gy) if need_b else None
        return ga, gb


def matmul(a: Any, b: Any) -> Tensor:
    """Matrix product with NumPy's rules: 1-D operands are vectors, leading axes broadcast."""
    a, b = as_tensor_arg(a), as_tensor_arg(b)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: operands must have at least one dimension, got shapes {a.shape} and {b.shape}")
    if a.shape[-1] != b.shape[-2 if b.ndim > 1 else 0]:
        raise ValueError(
            f"matmul: inner dimensions differ: {a.shape} @ {b.shape} "
            f"({a.shape[-1]} != {b.shape[-2 if b.ndim > 1 else 0]})"
        )
    if a.ndim == 1 and b.ndim == 1:
        return sum(a * b)
    if a.ndim == 1:
        return reshape(MatMul.apply(reshape(a, (1, -1)), b), b.shape[:-2] + (b.shape[-1],))
    if b.ndim == 1:
        return reshape(MatMul.apply(a, reshape(b, (-1, 1))), a.shape[:-1])
    try:
        return MatMul.apply(a, b)
    except ValueError:
        raise ValueError(f"matmul: batch dimensions of {a.shape} and {b.shape} cannot be broadcast") from None


def dot(a: Any, b: Any) -> Tensor:
    """Inner product of two 1-D tensors (``matmul`` otherwise)."""
    return matmul(a, b)


def outer(a: Any, b: Any) -> Tensor:
    """Outer product of two 1-D tensors: ``out[i, j] = a[i] * b[j]``."""
    a, b = as_tensor_arg(a), as_tensor_arg(b)
    if a.ndim != 1 or b.ndim != 1:
        raise ValueError(f"outer: expected two 1-D tensors, got shapes {a.shape} and {b.shape}")
    return reshape(a, (-1, 1)) * reshape(b, (1, -1))


def _parse_einsum(subscripts: str, shapes: list[tuple[int, ...]]) -> tuple[list[str], str]:
    """Explicit input and output subscripts, with '...' replaced by letters."""
    subscripts = subscripts.replace(" ", "")
    if "->" in subscripts:
        lhs, out = subscripts.split("->")
    else:
        lhs, out = subscripts, None
    terms = lhs.split(",")
    if len(terms) != len(shapes):
        raise ValueError(f"einsum: {len(terms)} operand subscripts for {len(shapes)} operands")
    used = set(subscripts)
    spare = [c for c in string.ascii_letters if c not in used]
    ell_len = 0
    for term, shape in zip(terms, shapes):
        if "..." in term:
            ell_len = max(ell_len, len(shape) - (len(term) - 3))
    ell = "".join(spare[:ell_len])
    expanded = []
    for term, shape in zip(terms, shapes):
        if "..." in term:
            n = len(shape) - (len(term) - 3)
            term = term.replace("...", ell[ell_len - n:] if n else "")
        if len(term) != len(shape):
            raise ValueError(f"einsum: subscripts '{term}' do not match an operand of shape {shape}")
        expanded.append(term)
    if out is None:
        counts: dict[str, int] = {}
        for term in expanded:
            for c in term:
                counts[c] = counts.get(c, 0) + 1
        out = ell + "".join(sorted(c for c, k in counts.items() if k == 1 and c not in ell))
    else:
        out = out.replace("...", ell)
    return expanded, out


class Einsum(Function):
    @staticmethod
    def forward(ctx, *operands, terms, out):
        xp = get_array_module(*operands)
        ctx.terms, ctx.out = terms, out
        spec = ",".join(terms) + "->" + out
        return xp.einsum(spec, *operands, optimize=len(operands) > 2)

    @staticmethod
    def backward(ctx, gy):
        terms, out = ctx.terms, ctx.out
        grads = []
        for k, (x, need) in enumerate(zip(ctx.inputs, ctx.needs_input_grad)):
            if not need:
                grads.append(None)
                continue
            target = terms[k]
            if len(set(target)) != len(target):
                raise NotImplementedError("einsum: gradient of an operand with repeated subscripts (a diagonal)")
            others = [ctx.inputs[j] for j in range(len(terms)) if j != k]
            other_terms = [terms[j] for j in range(len(terms)) if j != k]
            present = set(out).union(*other_terms)
            kept = "".join(c for c in target if c in present)
            g = einsum(",".join([out] + other_terms) + "->" + kept, gy, *others)
            if kept != target:  # letters summed away only inside this operand: broadcast back
                shape = [x.shape[i] if c in present else 1 for i, c in enumerate(target)]
                g = broadcast_to(reshape(g, tuple(shape)), x.shape)
            grads.append(g)
        return tuple(grads)


def einsum(subscripts: str, *operands: Any) -> Tensor:
    """Einstein summation (``numpy.einsum``), differentiable in every operand."""
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    operands = tuple(as_tensor_arg(o) for o in operands)
    terms, out = _parse_einsum(subscripts, [o.shape for o in operands])
    return Einsum.apply(*operands, terms=tuple(terms), out=out)


from rosenblatt.core import broadcast_to  # noqa: E402
from rosenblatt.ops.reduction import sum  # noqa: E402, A004
from rosenblatt.ops.shape import reshape, swapaxes  # noqa: E402
