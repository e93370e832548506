"""The test oracle: run the same computation in rosenblatt and PyTorch, compare everything.

``check_op(rb_fn, torch_fn, arrays)`` compares the forward output and the gradient of every
floating input (for a random upstream gradient) between the two frameworks; ``check_grad``
runs rosenblatt's float64 finite-difference ``gradcheck``. Tests call both.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest

import rosenblatt as rb

DEVICE = "cpu"  # set from --backend by conftest

try:
    import torch
    import torch.nn.functional as TF

    torch.set_num_threads(1)  # the oracle runs small shapes; one thread is fastest and stable
    HAVE_TORCH = True
except ImportError:  # parity tests skip cleanly without the oracle
    torch = TF = None
    HAVE_TORCH = False

requires_torch = pytest.mark.skipif(not HAVE_TORCH, reason="PyTorch (the test oracle) is not installed")

TOL = {np.float32: dict(rtol=1e-4, atol=1e-5), np.float64: dict(rtol=1e-7, atol=1e-9)}


def tol(dtype: Any, scale: float = 1.0) -> dict[str, float]:
    t = TOL[np.dtype(dtype).type]
    return {k: v * scale for k, v in t.items()}


def rb_tensor(array: Any, requires_grad: bool = False) -> rb.Tensor:
    """A rosenblatt tensor on the backend under test."""
    array = np.asarray(array)
    t = rb.tensor(array, device=DEVICE if DEVICE != "cpu" else None)
    if requires_grad and array.dtype.kind == "f":
        t.requires_grad_(True)
    return t


def on_device(module: Any) -> Any:
    """``module`` with its parameters and buffers on the backend under test (no-op on the CPU)."""
    return module.to(DEVICE) if DEVICE != "cpu" else module


def to_numpy(x: Any) -> np.ndarray:
    if isinstance(x, rb.Tensor):
        return x.numpy()
    if HAVE_TORCH and isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _flatten_outputs(out: Any) -> list[Any]:
    if isinstance(out, (tuple, list)):
        result = []
        for o in out:
            result.extend(_flatten_outputs(o))
        return result
    return [out]


def assert_close(actual: Any, expected: Any, what: str = "", **tolerance: float) -> None:
    a, e = to_numpy(actual), to_numpy(expected)
    assert a.shape == e.shape, f"{what}: shape {a.shape} != expected {e.shape}"
    np.testing.assert_allclose(a.astype(np.float64) if a.dtype.kind in "fc" else a,
                               e.astype(np.float64) if e.dtype.kind in "fc" else e,
                               err_msg=what, **tolerance)


def check_op(
    rb_fn: Callable[..., Any],
    torch_fn: Callable[..., Any],
    arrays: Sequence[Any],
    dtype: Any = np.float32,
    grad: bool = True,
    scale: float = 1.0,
    seed: int = 0,
) -> None:
    """Forward and every input gradient of ``rb_fn`` equal ``torch_fn`` on the same inputs.

    Floating arrays are cast to ``dtype`` and require grad; integer arrays pass unchanged.
    Non-array arguments should be bound into the functions.
    """
    if not HAVE_TORCH:
        pytest.skip("PyTorch (the test oracle) is not installed")
    arrays = [np.asarray(a, dtype=dtype) if np.asarray(a).dtype.kind == "f" else np.asarray(a) for a in arrays]
    rb_inputs = [rb_tensor(a, requires_grad=grad) for a in arrays]
    t_inputs = [torch.tensor(a, requires_grad=grad and a.dtype.kind == "f") for a in arrays]
    rb_out = _flatten_outputs(rb_fn(*rb_inputs))
    t_out = _flatten_outputs(torch_fn(*t_inputs))
    assert len(rb_out) == len(t_out), f"{len(rb_out)} outputs, PyTorch gives {len(t_out)}"
    for i, (r, t) in enumerate(zip(rb_out, t_out)):
        assert_close(r, t, f"forward output {i}", **tol(dtype, scale))
    if not grad:
        return
    rng = np.random.default_rng(seed)
    pairs = [(r, t) for r, t in zip(rb_out, t_out)
             if isinstance(r, rb.Tensor) and r.requires_grad and t.requires_grad]
    if not pairs:
        return
    upstream = [rng.standard_normal(r.shape).astype(dtype) for r, _ in pairs]
    wrt = [(x, tx) for x, tx in zip(rb_inputs, t_inputs) if x.requires_grad]
    rb_grads = rb.grad([r for r, _ in pairs], [x for x, _ in wrt], [rb_tensor(u) for u in upstream],
                       allow_unused=True)
    t_grads = torch.autograd.grad([t for _, t in pairs], [tx for _, tx in wrt],
                                  [torch.tensor(u) for u in upstream], allow_unused=True)
    for i, (g, tg) in enumerate(zip(rb_grads, t_grads)):
        if tg is None:
            assert g is None or np.all(to_numpy(g) == 0), f"input {i}: PyTorch has no gradient"
            continue
        assert g is not None, f"input {i}: no gradient, PyTorch has one"
        assert_close(g, tg, f"gradient of input {i}", **tol(dtype, scale * 10))


def check_grad(fn: Callable[..., Any], arrays: Sequence[Any], second_order: bool = False, **kw: Any) -> None:
    """float64 finite-difference check of every floating input's gradient (and optionally the
    second derivatives)."""
    inputs = [rb_tensor(np.asarray(a, dtype=np.float64), requires_grad=True) if np.asarray(a).dtype.kind == "f"
              else rb_tensor(a) for a in arrays]
    assert rb.autograd.gradcheck(fn, tuple(inputs), **kw)
    if second_order:
        assert rb.autograd.gradgradcheck(fn, tuple(inputs), **kw)


def check_second_order(rb_fn: Callable[..., Any], torch_fn: Callable[..., Any], arrays: Sequence[Any]) -> None:
    """Second derivatives (gradient of a gradient) equal PyTorch's, in float64."""
    if not HAVE_TORCH:
        pytest.skip("PyTorch (the test oracle) is not installed")
    arrays = [np.asarray(a, dtype=np.float64) for a in arrays]
    xs = [rb_tensor(a, requires_grad=True) for a in arrays]
    txs = [torch.tensor(a, requires_grad=True) for a in arrays]
    g = rb.grad(rb_fn(*xs).sum(), xs, create_graph=True)
    tg = torch.autograd.grad(torch_fn(*txs).sum(), txs, create_graph=True)
    s = sum(((gi * gi).sum() for gi in g), rb_tensor(np.float64(0.0)))
    ts = sum((tgi * tgi).sum() for tgi in tg)
    gg = rb.grad(s, xs, allow_unused=True)
    tgg = torch.autograd.grad(ts, txs, allow_unused=True)
    for i, (a, b) in enumerate(zip(gg, tgg)):
        if b is None:
            continue
        assert_close(a, b, f"second derivative wrt input {i}", rtol=1e-6, atol=1e-8)
