"""Every tensor op: forward and every input gradient against PyTorch, plus float64 gradchecks.

Each case is (name, rosenblatt function, torch function, input arrays). One definition runs in
float32 and float64 and on the backend chosen with ``--backend``.
"""

from __future__ import annotations

import numpy as np
import pytest

import rosenblatt as rb
from tests.parity import HAVE_TORCH, check_grad, check_op, check_second_order, rb_tensor, requires_torch

if HAVE_TORCH:
    import torch
else:  # the cases are defined with lambdas that only call torch when run
    torch = None

rng = np.random.default_rng(1234)


def r(*shape):
    return rng.standard_normal(shape)


def pos(*shape):
    return rng.uniform(0.5, 2.0, shape)


def distinct(*shape):
    """Values with no ties (max/min/sort gradients are then unambiguous)."""
    n = int(np.prod(shape))
    return (rng.permutation(n).reshape(shape) / n - 0.5) * 4


IDX = np.array([[0, 2, 1], [1, 1, 0]])

CASES = [
    # binary element-wise with broadcasting
    ("add", lambda a, b: a + b, lambda a, b: a + b, [r(3, 4), r(4)]),
    ("add_scalar_left", lambda a: 2.5 + a, lambda a: 2.5 + a, [r(3, 4)]),
    ("sub", lambda a, b: a - b, lambda a, b: a - b, [r(2, 3, 4), r(3, 1)]),
    ("rsub", lambda a: 1.0 - a, lambda a: 1.0 - a, [r(5)]),
    ("mul", lambda a, b: a * b, lambda a, b: a * b, [r(3, 1), r(1, 4)]),
    ("div", lambda a, b: a / b, lambda a, b: a / b, [r(3, 4), pos(3, 4)]),
    ("rdiv", lambda a: 2.0 / a, lambda a: 2.0 / a, [pos(3, 4)]),
    ("neg", lambda a: -a, lambda a: -a, [r(3, 4)]),
    ("pow_scalar", lambda a: a**3, lambda a: a**3, [r(3, 4)]),
    ("pow_frac", lambda a: a**0.5, lambda a: a**0.5, [pos(3, 4)]),
    ("pow_tensor", lambda a, b: a**b, lambda a, b: a**b, [pos(3, 4), r(3, 4)]),
    ("rpow", lambda a: 2.0**a, lambda a: 2.0**a, [r(3, 4)]),
    ("maximum", rb.maximum, torch and torch.maximum, [r(3, 4), r(4)]),
    ("minimum", rb.minimum, torch and torch.minimum, [r(3, 4), r(3, 4)]),
    ("maximum_ties", rb.maximum, torch and torch.maximum, [np.ones((2, 3)), np.ones((2, 3))]),
    ("where", lambda a, b: rb.where(rb_tensor(IDX > 0), a, b), lambda a, b: torch.where(torch.tensor(IDX > 0), a, b),
     [r(2, 3), r(2, 3)]),
    ("clip", lambda a: rb.clip(a, -0.5, 0.5), lambda a: torch.clamp(a, -0.5, 0.5), [r(4, 5)]),
    ("clip_min", lambda a: a.clip(min=0.1), lambda a: torch.clamp(a, min=0.1), [r(4, 5)]),
    ("remainder", lambda a, b: a % b, lambda a, b: torch.remainder(a, b), [r(3, 4) * 3, pos(3, 4)]),
    # unary math
    ("exp", rb.exp, torch and torch.exp, [r(3, 4)]),
    ("log", rb.log, torch and torch.log, [pos(3, 4)]),
    ("log1p", rb.log1p, torch and torch.log1p, [pos(3, 4)]),
    ("sqrt", rb.sqrt, torch and torch.sqrt, [pos(3, 4)]),
    ("abs", rb.abs, torch and torch.abs, [r(3, 4)]),
    ("sign", rb.sign, torch and torch.sign, [r(3, 4)]),
    ("sin", rb.sin, torch and torch.sin, [r(3, 4)]),
    ("cos", rb.cos, torch and torch.cos, [r(3, 4)]),
    ("tanh", rb.tanh, torch and torch.tanh, [r(3, 4)]),
    ("sigmoid", rb.sigmoid, torch and torch.sigmoid, [r(3, 4) * 4]),
    ("relu", rb.relu, torch and torch.relu, [r(3, 4)]),
    # reductions
    ("sum_all", lambda a: a.sum(), lambda a: a.sum(), [r(3, 4)]),
    ("sum_axis", lambda a: a.sum(axis=1), lambda a: a.sum(dim=1), [r(3, 4, 2)]),
    ("sum_axes_keep", lambda a: a.sum(axis=(0, 2), keepdims=True), lambda a: a.sum(dim=(0, 2), keepdim=True),
     [r(3, 4, 2)]),
    ("sum_dim_alias", lambda a: rb.sum(a, dim=-1, keepdim=True), lambda a: a.sum(-1, keepdim=True), [r(3, 4)]),
    ("mean", lambda a: a.mean(axis=0), lambda a: a.mean(0), [r(3, 4)]),
    ("mean_all", rb.mean, torch and torch.mean, [r(3, 4)]),
    ("var", lambda a: a.var(axis=1), lambda a: a.var(1), [r(3, 5)]),
    ("var_biased", lambda a: rb.var(a, correction=0), lambda a: torch.var(a, correction=0), [r(3, 5)]),
    ("std", lambda a: a.std(axis=0, keepdims=True), lambda a: a.std(0, keepdim=True), [r(4, 3)]),
    ("max_all", rb.max, torch and torch.max, [distinct(3, 4)]),
    ("amax_axis", lambda a: a.amax(axis=1), lambda a: torch.amax(a, 1), [distinct(3, 4)]),
    ("amax_ties", lambda a: rb.amax(a, axis=1), lambda a: torch.amax(a, 1),
     [np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]])]),
    ("amin_axes_keep", lambda a: rb.amin(a, axis=(0, 2), keepdims=True), lambda a: torch.amin(a, (0, 2), keepdim=True),
     [distinct(3, 4, 2)]),
    ("max_dim", lambda a: a.max(1), lambda a: a.max(1), [distinct(3, 4)]),
    ("max_dim_ties", lambda a: a.max(dim=1), lambda a: a.max(dim=1), [np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]])]),
    ("min_dim_keep", lambda a: rb.min(a, 0, keepdim=True), lambda a: torch.min(a, 0, keepdim=True),
     [distinct(3, 4)]),
    ("min_axis_alias", lambda a: a.min(axis=-1), lambda a: a.min(-1), [distinct(2, 3, 4)]),
    ("max_pair", lambda a, b: rb.max(a, b), lambda a, b: torch.max(a, b), [r(3, 4), r(3, 4)]),
    ("sort", lambda a: a.sort(), lambda a: a.sort(), [distinct(3, 5)]),
    ("sort_desc_dim0", lambda a: rb.sort(a, dim=0, descending=True), lambda a: torch.sort(a, dim=0, descending=True),
     [distinct(4, 3, 2)]),
    ("sort_ties", lambda a: rb.sort(a, descending=True), lambda a: torch.sort(a, descending=True, stable=True),
     [np.array([[1.0, 3.0, 3.0, 1.0], [2.0, 2.0, 0.0, 2.0]])]),
    ("argsort", lambda a: rb.argsort(a, dim=1), lambda a: torch.argsort(a, dim=1), [distinct(3, 5)]),
    ("topk", lambda a: a.topk(2), lambda a: a.topk(2), [distinct(3, 5)]),
    ("topk_smallest_dim0", lambda a: rb.topk(a, 3, dim=0, largest=False), lambda a: torch.topk(a, 3, 0, largest=False),
     [distinct(4, 3)]),
    ("prod", lambda a: a.prod(axis=1), lambda a: a.prod(1), [r(3, 4)]),
    ("prod_zero", lambda a: a.prod(), lambda a: a.prod(), [np.array([1.5, 0.0, 2.0, -1.0])]),
    ("cumsum", lambda a: a.cumsum(axis=1), lambda a: a.cumsum(1), [r(3, 4)]),
    ("logsumexp", lambda a: rb.logsumexp(a, axis=1), lambda a: torch.logsumexp(a, 1), [r(3, 4) * 10]),
    ("softmax", lambda a: rb.softmax(a, axis=1), lambda a: torch.softmax(a, 1), [r(3, 4) * 5]),
    ("log_softmax", lambda a: rb.log_softmax(a), lambda a: torch.log_softmax(a, -1), [r(3, 4) * 5]),
    ("norm", rb.norm, torch and torch.linalg.vector_norm, [r(3, 4)]),
    ("norm_axis", lambda a: rb.norm(a, axis=1), lambda a: torch.linalg.vector_norm(a, dim=1), [r(3, 4)]),
    ("norm_l1", lambda a: rb.norm(a, 1), lambda a: torch.linalg.vector_norm(a, 1), [r(3, 4)]),
    ("norm_p3", lambda a: rb.norm(a, 3, axis=0), lambda a: torch.linalg.vector_norm(a, 3, dim=0), [r(3, 4)]),
    # shapes
    ("reshape", lambda a: a.reshape(4, -1), lambda a: a.reshape(4, -1), [r(2, 3, 4)]),
    ("transpose", lambda a: a.T, lambda a: a.T, [r(3, 4)]),
    ("transpose_swap", lambda a: a.transpose(0, 2), lambda a: a.transpose(0, 2), [r(2, 3, 4)]),
    ("permute", lambda a: a.permute(2, 0, 1), lambda a: a.permute(2, 0, 1), [r(2, 3, 4)]),
    ("flatten", lambda a: a.flatten(1), lambda a: a.flatten(1), [r(2, 3, 4)]),
    ("squeeze", lambda a: a.squeeze(1), lambda a: a.squeeze(1), [r(3, 1, 4)]),
    ("unsqueeze", lambda a: a.unsqueeze(-1), lambda a: a.unsqueeze(-1), [r(3, 4)]),
    ("broadcast_to", lambda a: rb.broadcast_to(a, (2, 3, 4)), lambda a: torch.broadcast_to(a, (2, 3, 4)), [r(3, 1)]),
    ("expand", lambda a: a.expand(2, -1, 4), lambda a: a.expand(2, -1, 4), [r(3, 1)]),
    ("flip", lambda a: rb.flip(a, 1), lambda a: torch.flip(a, (1,)), [r(3, 4)]),
    ("cat", lambda a, b: rb.cat([a, b], axis=1), lambda a, b: torch.cat([a, b], 1), [r(3, 2), r(3, 4)]),
    ("stack", lambda a, b: rb.stack([a, b], axis=1), lambda a, b: torch.stack([a, b], 1), [r(3, 4), r(3, 4)]),
    ("split", lambda a: rb.split(a, [1, 3], axis=1), lambda a: torch.split(a, [1, 3], 1), [r(3, 4)]),
    ("split_size", lambda a: rb.split(a, 2), lambda a: torch.split(a, 2), [r(5, 3)]),
    ("chunk", lambda a: rb.chunk(a, 3, axis=1), lambda a: torch.chunk(a, 3, 1), [r(2, 7)]),
    ("pad_constant", lambda a: rb.pad(a, (1, 2, 0, 1), value=0.5),
     lambda a: torch.nn.functional.pad(a, (1, 2, 0, 1), value=0.5), [r(2, 3, 4)]),
    ("pad_reflect", lambda a: rb.pad(a, (2, 1), mode="reflect"),
     lambda a: torch.nn.functional.pad(a, (2, 1), mode="reflect"), [r(2, 3, 4)]),
    ("pad_replicate", lambda a: rb.pad(a, (1, 2, 2, 1), mode="replicate"),
     lambda a: torch.nn.functional.pad(a, (1, 2, 2, 1), mode="replicate"), [r(1, 2, 3, 4)]),
    ("pad_circular", lambda a: rb.pad(a, (1, 2), mode="circular"),
     lambda a: torch.nn.functional.pad(a, (1, 2), mode="circular"), [r(2, 3, 4)]),
    ("pad_negative", lambda a: rb.pad(a, (-1, 2)), lambda a: torch.nn.functional.pad(a, (-1, 2)), [r(2, 5)]),
    # indexing
    ("getitem_basic", lambda a: a[1:, ::2], lambda a: a[1:, ::2], [r(4, 5)]),
    ("getitem_int", lambda a: a[2], lambda a: a[2], [r(4, 5)]),
    ("getitem_neg_step", lambda a: a[::-1, 1], lambda a: a.flip(0)[:, 1], [r(4, 5)]),
    ("getitem_repeated", lambda a: a[[0, 2, 0, 0]], lambda a: a[[0, 2, 0, 0]], [r(4, 5)]),
    ("getitem_mixed", lambda a: a[np.array([1, 1, 3]), 2:], lambda a: a[torch.tensor([1, 1, 3]), 2:], [r(4, 5)]),
    ("getitem_pairs", lambda a: a[np.array([0, 0, 2]), np.array([1, 1, 4])],
     lambda a: a[torch.tensor([0, 0, 2]), torch.tensor([1, 1, 4])], [r(4, 5)]),
    ("getitem_bool", lambda a: a[a.data > 0], lambda a: a[a > 0], [r(4, 5)]),
    ("getitem_ellipsis_none", lambda a: a[..., None, 1], lambda a: a[..., None, 1], [r(2, 3, 4)]),
    ("gather", lambda a: rb.gather(a, 1, rb_tensor(IDX)), lambda a: torch.gather(a, 1, torch.tensor(IDX)),
     [r(2, 4)]),
    ("gather_axis0", lambda a: rb.gather(a, 0, rb_tensor(IDX % 2)), lambda a: torch.gather(a, 0, torch.tensor(IDX % 2)),
     [r(3, 3)]),
    ("take_along_axis", lambda a: rb.take_along_axis(a, rb_tensor(IDX), 1),
     lambda a: torch.take_along_dim(a, torch.tensor(IDX), 1), [r(2, 4)]),
    # linear algebra
    ("matmul", rb.matmul, torch and torch.matmul, [r(3, 4), r(4, 5)]),
    ("matmul_batched", rb.matmul, torch and torch.matmul, [r(2, 3, 4), r(2, 4, 5)]),
    ("matmul_broadcast", rb.matmul, torch and torch.matmul, [r(2, 3, 4), r(4, 5)]),
    ("matmul_broadcast_left", rb.matmul, torch and torch.matmul, [r(3, 4), r(2, 4, 5)]),
    ("matmul_vec", rb.matmul, torch and torch.matmul, [r(3, 4), r(4)]),
    ("vec_matmul", rb.matmul, torch and torch.matmul, [r(4), r(2, 4, 5)]),
    ("dot", rb.dot, torch and torch.dot, [r(5), r(5)]),
    ("matmul_op", lambda a, b: a @ b, lambda a, b: a @ b, [r(3, 4), r(4, 2)]),
    ("outer", rb.outer, torch and torch.outer, [r(3), r(4)]),
    ("einsum_mm", lambda a, b: rb.einsum("ij,jk->ik", a, b), lambda a, b: torch.einsum("ij,jk->ik", a, b),
     [r(3, 4), r(4, 5)]),
    ("einsum_batch", lambda a, b: rb.einsum("bij,bjk->bik", a, b), lambda a, b: torch.einsum("bij,bjk->bik", a, b),
     [r(2, 3, 4), r(2, 4, 5)]),
    ("einsum_implicit", lambda a, b: rb.einsum("ij,kj", a, b), lambda a, b: torch.einsum("ij,kj", a, b),
     [r(3, 4), r(5, 4)]),
    ("einsum_sum_out", lambda a, b: rb.einsum("ij,j->", a, b), lambda a, b: torch.einsum("ij,j->", a, b),
     [r(3, 4), r(4)]),
    ("einsum_ellipsis", lambda a, b: rb.einsum("...ij,...jk->...ik", a, b),
     lambda a, b: torch.einsum("...ij,...jk->...ik", a, b), [r(2, 3, 4), r(2, 4, 2)]),
    ("einsum_three", lambda a, b, c: rb.einsum("ij,jk,kl->il", a, b, c),
     lambda a, b, c: torch.einsum("ij,jk,kl->il", a, b, c), [r(2, 3), r(3, 4), r(4, 2)]),
    ("einsum_reduce_only_here", lambda a, b: rb.einsum("ij,k->ik", a, b), lambda a, b: torch.einsum("ij,k->ik", a, b),
     [r(2, 3), r(4)]),
    # composites
    ("clone", rb.clone, torch and torch.clone, [r(3, 4)]),
    ("astype64", lambda a: a.astype(rb.float64) * 2, lambda a: a.to(torch.float64) * 2, [r(3, 4)]),
]

CASE_IDS = [c[0] for c in CASES]
SKIP_GRADCHECK = {"sign", "maximum_ties", "amax_ties", "max_dim_ties", "sort_ties", "argsort", "getitem_bool", "astype64", "prod_zero"}
DIFFERENTIABLE_INPUTS_ONLY = {"getitem_bool"}


@requires_torch
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_op_matches_torch(case, dtype):
    name, rb_fn, torch_fn, arrays = case
    check_op(rb_fn, torch_fn, arrays, dtype=dtype)


@pytest.mark.parametrize("case", [c for c in CASES if c[0] not in SKIP_GRADCHECK], ids=lambda c: c[0])
def test_op_gradcheck(case):
    name, rb_fn, _, arrays = case

    def fn(*xs):
        out = rb_fn(*xs)
        return tuple(out) if isinstance(out, list) else out

    check_grad(fn, arrays)


# Ops whose gradient depends on their input (for linear ops the second derivative is zero and no
# graph is built for it, in PyTorch as here).
SECOND_ORDER = ["mul", "div", "pow_tensor", "pow_scalar", "rpow", "exp", "log", "log1p", "sqrt", "sin", "cos",
                "tanh", "sigmoid", "softmax", "log_softmax", "logsumexp", "matmul_batched", "var", "std",
                "einsum_batch", "norm_axis", "norm_p3", "outer"]


@requires_torch
@pytest.mark.parametrize("name", SECOND_ORDER)
def test_second_derivatives_match_torch(name):
    _, rb_fn, torch_fn, arrays = next(c for c in CASES if c[0] == name)
    check_second_order(rb_fn, torch_fn, arrays)


@pytest.mark.parametrize("name", ["mul", "tanh", "softmax", "matmul", "getitem_repeated", "pad_constant"])
def test_gradgradcheck(name):
    _, rb_fn, _, arrays = next(c for c in CASES if c[0] == name)
    check_grad(rb_fn, arrays, second_order=True)


# -- non-differentiable ops and creation -------------------------------------------------------


def test_comparisons_return_bool_without_grad():
    a = rb.tensor([1.0, 2.0, 3.0], requires_grad=True)
    for result in (a > 1.5, a >= 2, a < 2, a <= 2, a == 2, a != 2):
        assert result.dtype == np.bool_ and not result.requires_grad
    assert (a > 1.5).tolist() == [False, True, True]
    assert ((a > 1.5) & (a < 2.5)).tolist() == [False, True, False]
    assert (~(a > 1.5)).tolist() == [True, False, False]


def test_argmax_argmin_and_floor_divide():
    x = rb.tensor([[1.0, 5.0, 2.0], [7.0, 0.0, 3.0]])
    assert rb.argmax(x).item() == 3
    assert rb.argmax(x, axis=1).tolist() == [1, 0]
    assert x.argmin(dim=0, keepdim=True).tolist() == [[0, 1, 0]]
    assert (x // 2).tolist() == [[0.0, 2.0, 1.0], [3.0, 0.0, 1.0]]


def test_creation_functions():
    assert rb.zeros(2, 3).shape == (2, 3) and rb.zeros((2, 3)).dtype == rb.float32
    assert rb.ones(4, dtype=rb.float64).dtype == rb.float64
    assert rb.full((2,), 7).tolist() == [7, 7] and rb.full((2,), 7).dtype == rb.int64
    assert rb.arange(5).dtype == rb.int64 and rb.arange(0.0, 1.0, 0.25).tolist() == [0, 0.25, 0.5, 0.75]
    assert np.allclose(rb.linspace(0, 1, 5).numpy(), np.linspace(0, 1, 5))
    assert np.array_equal(rb.eye(3).numpy(), np.eye(3))
    assert rb.zeros_like(rb.ones(2, 2, dtype=rb.float64)).dtype == rb.float64
    assert rb.full_like(rb.ones(2), 3.0).tolist() == [3.0, 3.0]
    assert rb.empty(3, 2).shape == (3, 2)
    r_ = rb.randint(0, 10, (100,))
    assert r_.dtype == rb.int64 and 0 <= r_.numpy().min() and r_.numpy().max() < 10
    assert rb.randint(5, (3,)).shape == (3,)
    u = rb.uniform(-2, 2, (1000,))
    assert -2 <= u.numpy().min() and u.numpy().max() < 2
    n = rb.normal(3.0, 0.5, (20000,))
    assert abs(n.numpy().mean() - 3.0) < 0.02 and abs(n.numpy().std() - 0.5) < 0.02
    assert rb.rand(3, 3).dtype == rb.float32 and rb.randn(2, dtype=rb.float64).dtype == rb.float64
    oh = rb.one_hot(rb.tensor([0, 2, 1]), 3)
    assert oh.tolist() == [[1, 0, 0], [0, 0, 1], [0, 1, 0]]


def test_tensor_from_python_and_numpy_dtypes():
    assert rb.tensor([1.0, 2.0]).dtype == rb.float32
    assert rb.tensor([1, 2]).dtype == rb.int64
    assert rb.tensor(np.zeros(2, np.float64)).dtype == rb.float64
    assert rb.tensor([True]).dtype == rb.bool
    a = np.zeros(3, np.float32)
    assert rb.from_numpy(a).data is a
    assert rb.tensor(a).data is not a
    x = rb.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert x.size == 4 and x.size() == (2, 2) and x.size(1) == 2 and x.numel() == 4
    assert len(x) == 2 and [row.tolist() for row in x] == [[1.0, 2.0], [3.0, 4.0]]
    assert np.asarray(x).shape == (2, 2) and float(x[0, 1]) == 2.0
    assert "requires_grad=True" in repr(rb.ones(2, requires_grad=True))
    assert "grad_fn=<MulBackward>" in repr(rb.ones(2, requires_grad=True) * 2)


def test_float64_stays_float64_through_ops():
    x = rb.randn(3, 4, dtype=rb.float64, requires_grad=True)
    y = (rb.tanh(x) * 2.0 + 1).softmax(axis=1).log().mean()
    assert y.dtype == rb.float64
    y.backward()
    assert x.grad.dtype == rb.float64


def test_float32_gradient_of_float32_leaf_with_float64_constant():
    x = rb.ones(3, requires_grad=True)
    (x * np.float64(2.0)).sum().backward()
    assert x.grad.dtype == rb.float32


def test_manual_seed_is_bit_reproducible():
    rb.manual_seed(7)
    a = rb.randn(5).numpy(), rb.rand(3).numpy(), rb.randint(0, 100, (4,)).numpy()
    rb.manual_seed(7)
    b = rb.randn(5).numpy(), rb.rand(3).numpy(), rb.randint(0, 100, (4,)).numpy()
    for u, v in zip(a, b):
        assert np.array_equal(u, v)
    state = rb.get_rng_state()
    c = rb.randn(3).numpy()
    rb.set_rng_state(state)
    assert np.array_equal(c, rb.randn(3).numpy())


# -- clear errors -------------------------------------------------------------------------------


@pytest.mark.parametrize("fn, match", [
    (lambda: rb.ones(2, 3) + rb.ones(4), r"add: .*\(2, 3\).*\(4,\)"),
    (lambda: rb.ones(2, 3) @ rb.ones(4, 2), r"matmul: inner dimensions differ"),
    (lambda: rb.ones(2, 3).reshape(4, 2), r"reshape: cannot reshape a tensor of shape \(2, 3\)"),
    (lambda: rb.cat([rb.ones(2, 3), rb.ones(3, 3)], axis=1), r"cat: all shapes must match"),
    (lambda: rb.ones(2, 3).sum(axis=2), r"sum: axis 2 is out of range"),
    (lambda: rb.ones(2, 3).permute(0, 0), r"permute: .* is not a permutation"),
    (lambda: rb.ones(3)[5], r"indexing a tensor of shape \(3,\)"),
    (lambda: rb.one_hot(rb.tensor([0, 3]), 3), r"one_hot: class indices must lie in \[0, 3\)"),
    (lambda: rb.gather(rb.ones(2, 3), 1, rb.tensor([[5]])), r"gather: index out of range"),
    (lambda: rb.ones(2, dtype=rb.int64).requires_grad_(), r"only floating tensors"),
    (lambda: rb.split(rb.ones(5), [2, 2]), r"split: sizes \[2, 2\] do not add up to 5"),
    (lambda: rb.chunk(rb.ones(3), 0), r"chunk: expected a positive number of chunks, got 0"),
])
def test_bad_input_gives_clear_error(fn, match):
    with pytest.raises((ValueError, TypeError, IndexError, RuntimeError), match=match):
        fn()


# -- max/min with a dimension, sort, topk: PyTorch's return shapes and tie rules -------------------


def test_max_with_dim_unpacks_to_values_and_indices():
    out = rb.tensor([[0.5, 2.0, -1.0], [3.0, 0.0, 3.0]])
    _, pred = out.max(1)
    assert pred.dtype == rb.int64 and pred.tolist() == [1, 0]  # the first of equal maxima
    result = rb.min(out, dim=0)
    assert result.values.tolist() == [0.5, 0.0, -1.0] and result.indices.tolist() == [0, 1, 0]
    assert out.max().item() == 3.0 and out.max().ndim == 0
    assert rb.amax(out, axis=1).tolist() == [2.0, 3.0]  # values only


def test_max_errors_name_the_op():
    x = rb.ones(2, 3)
    with pytest.raises(TypeError, match="max: dim must be one int.*amax"):
        x.max(axis=(0, 1))
    with pytest.raises(IndexError, match="min: axis 2 is out of range"):
        x.min(2)
    with pytest.raises(ValueError, match="topk: k must be in \\[0, 3\\]"):
        x.topk(4)
    with pytest.raises(TypeError, match="topk: k must be an int"):
        x.topk(1.5)
    with pytest.raises(ValueError, match="sort: expected a tensor with at least one dimension"):
        rb.sort(rb.tensor(1.0))


@requires_torch
@pytest.mark.parametrize("descending", [False, True])
def test_sort_ties_and_nan_match_torch_stable_sort(descending):
    # Our sort is stable in both directions; PyTorch's default sort is too for short rows, and
    # torch.sort(stable=True) always is. NaN sorts as the largest value in both.
    data = np.random.default_rng(0).integers(0, 3, (4, 40)).astype(np.float32)
    data[0, 5] = data[2, 0] = np.nan
    ours = rb.sort(rb.tensor(data), descending=descending)
    theirs = torch.sort(torch.tensor(data), descending=descending, stable=True)
    np.testing.assert_array_equal(ours.indices.numpy(), theirs.indices.numpy())
    np.testing.assert_array_equal(ours.values.numpy(), theirs.values.numpy())
    np.testing.assert_array_equal(rb.argsort(rb.tensor(data), descending=descending).numpy(), theirs.indices.numpy())


@requires_torch
def test_topk_ties_values_match_torch_and_indices_come_first_first():
    data = np.array([[1.0, 3.0, 2.0, 3.0, 3.0], [0.0, 0.0, 0.0, 0.0, 0.0]], np.float32)
    ours = rb.topk(rb.tensor(data), 2)
    theirs = torch.topk(torch.tensor(data), 2)
    np.testing.assert_array_equal(ours.values.numpy(), theirs.values.numpy())
    # Among equal values the lower index comes first (PyTorch leaves this order unspecified).
    assert ours.indices.tolist() == [[1, 3], [0, 1]]


def test_sort_integers_and_booleans_descending():
    x = rb.tensor(np.array([3, 0, 255, 3], np.uint8))
    assert rb.sort(x, descending=True).indices.tolist() == [2, 0, 3, 1]
    assert rb.argsort(rb.tensor([True, False, True])).tolist() == [1, 0, 2]
