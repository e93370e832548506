"""The autodiff core: ``Tensor``, ``Function``, grad mode and the backward engine.

This module is the whole of reverse-mode automatic differentiation in rosenblatt; everything else
(ops, layers, optimisers) is built on it. Read it top to bottom:

1. **Grad mode** - a switch that says whether new ops are recorded (``no_grad`` turns it off).
2. **Tensor** - an ndarray (NumPy, or CuPy on a GPU) plus ``grad``, ``requires_grad`` and
   ``grad_fn``: the :class:`Function` node that produced it.
3. **Function** - one op. ``forward(ctx, *arrays)`` computes on raw arrays; ``backward(ctx, *grads)``
   receives gradient *tensors* and is written with differentiable ops, so running backward with
   ``create_graph=True`` records a graph of the backward pass itself: second derivatives for free.
   Each node keeps its inputs (strong references) and its outputs (weak references), so the graph
   lives exactly as long as the tensors that can reach it.
4. **The backward engine** - no recursion: nodes are processed from a heap ordered by their
   *generation* (one more than the newest input), so a node runs only after every consumer of its
   outputs has sent its gradient. A 10,000-op chain backpropagates without a ``RecursionError``.
   Broadcasting is undone in one place (:func:`sum_to`), and saved arrays are freed as soon as a
   node has run unless ``retain_graph=True``.
"""

from __future__ import annotations

import heapq
import sys
import weakref
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from rosenblatt.backend import Device, device_of, get_array_module, to_device

# --------------------------------------------------------------------------------------------
# 1. Grad mode
# --------------------------------------------------------------------------------------------


class _GradMode:
    enabled = True


def is_grad_enabled() -> bool:
    """True when new operations are recorded for backpropagation."""
    return _GradMode.enabled


class set_grad_enabled:  # noqa: N801 - PyTorch's name
    """Context manager (and decorator) that switches recording on or off."""

    def __init__(self, mode: bool) -> None:
        self.mode = bool(mode)
        self.previous = _GradMode.enabled
        _GradMode.enabled = self.mode  # like PyTorch, it also works as a plain function call

    def __enter__(self) -> set_grad_enabled:
        return self

    def __exit__(self, *exc: object) -> None:
        _GradMode.enabled = self.previous

    def __call__(self, fn):
        mode = self.mode
        _GradMode.enabled = self.previous  # undo the switch made in __init__

        def wrapper(*args, **kwargs):
            with set_grad_enabled(mode):
                return fn(*args, **kwargs)

        wrapper.__name__ = getattr(fn, "__name__", "wrapper")
        wrapper.__doc__ = getattr(fn, "__doc__", None)
        return wrapper


class no_grad(set_grad_enabled):  # noqa: N801
    """``with rb.no_grad():`` - ops inside record no graph (inference, weight updates)."""

    def __init__(self) -> None:
        super().__init__(False)


class enable_grad(set_grad_enabled):  # noqa: N801
    """``with rb.enable_grad():`` - re-enables recording inside a ``no_grad`` block."""

    def __init__(self) -> None:
        super().__init__(True)


# --------------------------------------------------------------------------------------------
# dtypes
# --------------------------------------------------------------------------------------------

float16 = np.dtype(np.float16)
float32 = np.dtype(np.float32)
float64 = np.dtype(np.float64)
int32 = np.dtype(np.int32)
int64 = np.dtype(np.int64)


class memory_format:  # noqa: N801 - PyTorch's name
    """How a tensor's elements lie in memory: :data:`contiguous_format` (C order),
    :data:`channels_last` (a 4-D ``(N, C, H, W)`` tensor stored as ``(N, H, W, C)``) or
    :data:`preserve_format` (as it is), for ``Tensor.to``, ``Tensor.contiguous`` and
    ``Tensor.is_contiguous``, as in PyTorch."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"rosenblatt.{self.name}"


contiguous_format = memory_format("contiguous_format")
channels_last = memory_format("channels_last")
preserve_format = memory_format("preserve_format")


def _is_channels_last(a: Any) -> bool:
    return a.ndim == 4 and a.transpose(0, 2, 3, 1).flags.c_contiguous
bool_ = np.dtype(np.bool_)
_default_dtype = float32


def set_default_dtype(dtype: Any) -> None:
    """Set the floating dtype used for new tensors made from Python floats (float32 by default)."""
    global _default_dtype
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise TypeError(f"set_default_dtype: expected a floating dtype, got {dtype}")
    _default_dtype = dtype


def get_default_dtype() -> np.dtype:
    """The floating dtype used for new tensors (float32 unless changed)."""
    return _default_dtype


def as_array(data: Any, dtype: Any = None, device: str | Device | None = None, copy: bool = False):
    """Turn ``data`` (Tensor, ndarray, scalar, nested list) into an array of the requested dtype.

    Python floats become the default dtype (float32); ndarrays keep their dtype unless ``dtype`` is
    given, exactly as ``torch.tensor`` does with NumPy input.
    """
    if isinstance(data, Tensor):
        data = data.data
    if type(data) is np.ndarray or (hasattr(data, "__cuda_array_interface__") and hasattr(data, "dtype")):
        array = data
        if dtype is not None and array.dtype != np.dtype(dtype):
            array = array.astype(dtype)
        elif copy:
            array = array.copy()
    else:
        array = np.asarray(data, dtype=dtype)
        if dtype is None and array.dtype.kind == "f" and array.dtype != _default_dtype:
            if not isinstance(data, np.generic):  # a Python float, or lists of them
                array = array.astype(_default_dtype)
        elif copy and isinstance(data, np.ndarray):
            array = array.copy()
    if device is not None:
        array = to_device(array, Device(device))
    return array


class _Size(int):
    """``t.size`` is the element count (NumPy); ``t.size()`` / ``t.size(dim)`` give the shape (PyTorch)."""

    shape: tuple[int, ...]

    def __new__(cls, shape: tuple[int, ...]) -> _Size:
        obj = super().__new__(cls, int(np.prod(shape, dtype=np.int64)))
        obj.shape = shape
        return obj

    def __call__(self, dim: int | None = None):
        return self.shape if dim is None else self.shape[dim]


# --------------------------------------------------------------------------------------------
# 2. Tensor
# --------------------------------------------------------------------------------------------


class Tensor:
    """An n-dimensional array that remembers how it was computed.

    ``data`` is the underlying ``numpy.ndarray`` (or CuPy array). When ``requires_grad`` is True,
    every op on the tensor records a :class:`Function` node, and ``backward()`` fills ``grad`` of
    every leaf tensor that requires it.
    """

    # A dict of slots documents each attribute (``help(rb.Tensor.grad)``).
    __slots__ = {
        "data": "The underlying array: a numpy.ndarray, or a cupy.ndarray on a GPU.",
        "grad": "The gradient accumulated by backward() (a Tensor of the same shape), or None.",
        "requires_grad": "Whether ops on this tensor are recorded so that gradients flow to it.",
        "grad_fn": "The Function node that produced this tensor, or None for a leaf.",
        "_output_index": "Which output of grad_fn this tensor is.",
        "_version": "Counts in-place changes, so backward can refuse data that changed after it was saved.",
        "_retains_grad": "Set by retain_grad(): keep grad on this non-leaf tensor.",
        "__weakref__": "",
    }
    # Makes ``ndarray + Tensor`` call Tensor.__radd__ instead of broadcasting the Tensor as an object.
    __array_priority__ = 1000

    def __init__(self, data: Any, dtype: Any = None, requires_grad: bool = False,
                 device: str | Device | None = None) -> None:
        self.data = as_array(data, dtype, device)
        self.grad: Tensor | None = None
        self.grad_fn: Function | None = None
        self._output_index = 0
        self._version = 0
        self._retains_grad = False
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    # -- attributes ---------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        """The size of each dimension, as a tuple."""
        return self.data.shape

    @property
    def ndim(self) -> int:
        """The number of dimensions."""
        return self.data.ndim

    @property
    def size(self) -> _Size:
        """The number of elements (NumPy's ``size``); called, ``size()`` / ``size(dim)`` give the shape."""
        return _Size(self.data.shape)

    def numel(self) -> int:
        """Number of elements."""
        return int(self.data.size)

    def dim(self) -> int:
        """Number of dimensions (PyTorch's name for ``ndim``)."""
        return self.data.ndim

    @property
    def dtype(self) -> np.dtype:
        """The element type (a NumPy dtype: ``rb.float32``, ``rb.int64``, ...)."""
        return self.data.dtype

    @property
    def device(self) -> Device:
        """Where the data lives: ``device("cpu")`` or ``device("cuda:N")``."""
        return device_of(self.data)

    @property
    def is_leaf(self) -> bool:
        """True for tensors created by the user (not by a recorded op)."""
        return self.grad_fn is None

    @property
    def T(self) -> Tensor:  # noqa: N802
        """All axes reversed (the transpose of a matrix); differentiable."""
        return _ops.transpose(self)

    @property
    def mT(self) -> Tensor:  # noqa: N802
        """The last two axes swapped (a batch of matrices transposed); differentiable."""
        return _ops.swapaxes(self, -1, -2)

    def __len__(self) -> int:
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.data.shape[0]

    def __iter__(self):
        if self.data.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        for i in range(self.data.shape[0]):
            yield self[i]

    def __array__(self, dtype=None, copy=None):
        array = self.data.get() if hasattr(self.data, "get") and not isinstance(self.data, np.ndarray) else self.data
        return np.asarray(array, dtype=dtype)

    def __hash__(self) -> int:
        return id(self)

    def __bool__(self) -> bool:
        if self.data.size != 1:
            raise ValueError(
                f"the truth value of a tensor with {self.data.size} elements is ambiguous; "
                "use .any() or .all()"
            )
        return bool(self.data)

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __index__(self) -> int:
        if self.data.dtype.kind not in "iub" or self.data.size != 1:
            raise TypeError("only integer tensors of a single element can be used as an index")
        return int(self.item())

    def __repr__(self) -> str:
        body = np.array2string(np.asarray(self), separator=", ", prefix="tensor(")
        extras = []
        if self.data.dtype not in (_default_dtype, int64, bool_):
            extras.append(f"dtype={self.data.dtype}")
        if self.device.type != "cpu":
            extras.append(f"device='{self.device}'")
        if self.grad_fn is not None:
            extras.append(f"grad_fn=<{type(self.grad_fn).__name__}Backward>")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + body + "".join(", " + e for e in extras) + ")"

    # -- conversion ---------------------------------------------------------------------------
    def numpy(self) -> np.ndarray:
        """The data as a NumPy array (a copy from the GPU, the same memory on the CPU)."""
        return np.asarray(self)

    def item(self) -> Any:
        """The value of a one-element tensor as a Python number."""
        if self.data.size != 1:
            raise ValueError(f"item(): expected a tensor with one element, got shape {self.shape}")
        return self.data.item()

    def tolist(self) -> Any:
        """The data as nested Python lists."""
        return np.asarray(self).tolist()

    def detach(self) -> Tensor:
        """A tensor sharing this one's data, cut from the graph (truncated backprop uses it)."""
        return Tensor._make(self.data)

    def detach_(self) -> Tensor:
        """Cut this tensor from its graph in place."""
        self.grad_fn = None
        self.requires_grad = False
        return self

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        """Set ``requires_grad`` in place (only on leaves, only for floating dtypes)."""
        if requires_grad and self.data.dtype.kind not in "fc":
            raise TypeError(f"requires_grad_: only floating tensors can require gradients, got {self.dtype}")
        if not requires_grad and self.grad_fn is not None:
            raise RuntimeError("requires_grad_(False) on a non-leaf tensor: use .detach() instead")
        self.requires_grad = bool(requires_grad)
        return self

    def retain_grad(self) -> Tensor:
        """Keep ``grad`` for this non-leaf tensor after ``backward()``."""
        if self.grad_fn is not None:
            self._retains_grad = True
        return self

    def clone(self) -> Tensor:
        """A copy of the data that stays in the graph (the gradient flows through unchanged)."""
        return _ops.clone(self)

    def astype(self, dtype: Any) -> Tensor:
        """Cast to ``dtype`` (differentiable between floating types)."""
        return _ops.cast(self, dtype)

    def to(self, target: Any = None, *, memory_format: memory_format = preserve_format) -> Tensor:
        """``t.to("cuda")``, ``t.to(rb.float64)`` or ``t.to(other_tensor)`` (its dtype and device);
        ``t.to(memory_format=rb.channels_last)`` lays a 4-D tensor out channels-last (a copy that
        stays in the graph; the tensor itself when it already is), ``rb.contiguous_format`` in C order."""
        if isinstance(target, Tensor):
            out = self.to(target.device).astype(target.dtype)
        elif isinstance(target, (str, Device)):
            out = _ops.to_device(self, Device(target))
        elif target is None:
            out = self
        else:
            out = self.astype(target)
        return out._in_format(memory_format, "Tensor.to")

    def _in_format(self, fmt: Any, op: str) -> Tensor:
        if fmt is preserve_format:
            return self
        if fmt is contiguous_format:
            return _ops.contiguous(self)
        if fmt is channels_last:
            if self.ndim != 4:
                raise ValueError(f"{op}: channels_last needs a 4-D (N, C, H, W) tensor, got shape {self.shape}")
            return _ops.to_channels_last(self)
        raise TypeError(f"{op}: memory_format must be rb.contiguous_format, rb.channels_last or "
                        f"rb.preserve_format, got {fmt!r}")

    def cpu(self) -> Tensor:
        """This tensor on the CPU."""
        return self.to("cpu")

    def cuda(self, index: int = 0) -> Tensor:
        """This tensor on GPU ``index`` (needs CuPy)."""
        return self.to(f"cuda:{index}")

    def float(self) -> Tensor:
        """Cast to float32."""
        return self.astype(float32)

    def double(self) -> Tensor:
        """Cast to float64."""
        return self.astype(float64)

    def long(self) -> Tensor:
        """Cast to int64."""
        return self.astype(int64)

    # -- autograd -----------------------------------------------------------------------------
    def backward(self, gradient: Any = None, retain_graph: bool = False, create_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into ``leaf.grad`` for every leaf that requires grad.

        ``gradient`` defaults to 1 for a one-element tensor; pass an array of this tensor's shape
        otherwise (a vector-Jacobian product). ``create_graph=True`` records the backward pass so
        that the gradients can be differentiated again.
        """
        if not self.requires_grad:
            raise RuntimeError(
                "backward(): this tensor does not require grad and has no grad_fn "
                "(did you build it under no_grad, or forget requires_grad=True?)"
            )
        if gradient is None:
            if self.data.size != 1:
                raise RuntimeError(
                    f"backward(): gradient can be implicit only for one-element outputs, got shape "
                    f"{self.shape}; pass gradient= of the same shape"
                )
            gradient = Tensor._make(get_array_module(self.data).ones_like(self.data))
        elif not isinstance(gradient, Tensor):
            gradient = Tensor(gradient, dtype=self.dtype)
        if gradient.shape != self.shape:
            raise ValueError(f"backward(): gradient shape {gradient.shape} does not match tensor shape {self.shape}")
        run_backward([self], [gradient], retain_graph=retain_graph or create_graph, create_graph=create_graph)

    # -- in-place ops (leaves under no_grad, or tensors no graph needs) -----------------------
    def _check_inplace(self, op: str, value: Any = None) -> None:
        if _GradMode.enabled and self.requires_grad:
            if self.grad_fn is None:
                raise RuntimeError(
                    f"{op}: a leaf tensor that requires grad cannot be modified in place while "
                    "gradients are recorded; wrap the update in `with rb.no_grad():`"
                )
            raise RuntimeError(
                f"{op}: in-place modification of a tensor inside a recorded graph is not supported; "
                "build the result with rb.where, rb.cat or rb.stack instead"
            )
        if _GradMode.enabled and isinstance(value, Tensor) and value.requires_grad:
            raise RuntimeError(
                f"{op}: writing a tensor that requires grad into another tensor is not recorded; "
                "build the result with rb.where, rb.cat or rb.stack instead"
            )

    def _bump(self) -> Tensor:
        """Count an in-place change of this tensor (see :func:`mark_modified`); returns it."""
        self._version += 1
        return self

    def __setitem__(self, index: Any, value: Any) -> None:
        self._check_inplace("__setitem__", value)
        index = _ops.unwrap_index(index)
        self.data[index] = value.data if isinstance(value, Tensor) else value
        self._bump()

    def add_(self, other: Any, alpha: float = 1.0) -> Tensor:
        """In place: ``self += alpha * other``."""
        self._check_inplace("add_", other)
        other = other.data if isinstance(other, Tensor) else other
        if alpha == 1.0:
            if not _ops.arithmetic.in_place("add", self.data, other):
                self.data += other
        elif not _axpy(self.data, other, alpha):
            self.data += alpha * other
        return self._bump()

    def sub_(self, other: Any, alpha: float = 1.0) -> Tensor:
        """In place: ``self -= alpha * other``."""
        if alpha != 1.0:
            return self.add_(other, -alpha)
        self._check_inplace("sub_", other)
        other = other.data if isinstance(other, Tensor) else other
        if not _ops.arithmetic.in_place("sub", self.data, other):
            self.data -= other
        return self._bump()

    def mul_(self, other: Any) -> Tensor:
        """In place: ``self *= other``."""
        self._check_inplace("mul_", other)
        other = other.data if isinstance(other, Tensor) else other
        if not _ops.arithmetic.in_place("mul", self.data, other):
            self.data *= other
        return self._bump()

    def div_(self, other: Any) -> Tensor:
        """In place: ``self /= other``."""
        self._check_inplace("div_", other)
        other = other.data if isinstance(other, Tensor) else other
        if not _ops.arithmetic.in_place("div", self.data, other):
            self.data /= other
        return self._bump()

    def zero_(self) -> Tensor:
        """In place: fill with zeros."""
        return self.fill_(0)

    def fill_(self, value: Any) -> Tensor:
        """In place: fill with ``value``."""
        self._check_inplace("fill_")
        self.data.fill(value.item() if isinstance(value, Tensor) else value)
        return self._bump()

    def copy_(self, source: Any) -> Tensor:
        """In place: copy ``source`` (broadcast to this shape) into this tensor."""
        self._check_inplace("copy_", source)
        source = as_array(source)
        xp = get_array_module(self.data)
        if get_array_module(source) is not xp:
            source = to_device(source, self.device)
        if source.shape != self.shape:
            try:
                source = xp.broadcast_to(source, self.shape)
            except ValueError:
                raise ValueError(f"copy_: cannot copy shape {source.shape} into shape {self.shape}") from None
        self.data[...] = source
        return self._bump()

    def clamp_(self, min: Any = None, max: Any = None) -> Tensor:  # noqa: A002 - PyTorch's names
        """In place: clip values to ``[min, max]``."""
        self._check_inplace("clamp_")
        get_array_module(self.data).clip(self.data, min, max, out=self.data)
        return self._bump()

    def uniform_(self, low: float = 0.0, high: float = 1.0) -> Tensor:
        """In place: fill with U(low, high) from rosenblatt's generator."""
        from rosenblatt import random as _random

        return self.copy_(_random.uniform_array(low, high, self.shape, self.dtype))

    def normal_(self, mean: float = 0.0, std: float = 1.0) -> Tensor:
        """In place: fill with N(mean, std²) from rosenblatt's generator."""
        from rosenblatt import random as _random

        return self.copy_(_random.normal_array(mean, std, self.shape, self.dtype))

    # -- fast constructor used by the engine (skips the checks of __init__) ---------------------
    @staticmethod
    def _make(data: Any, grad_fn: Function | None = None, requires_grad: bool = False,
              output_index: int = 0) -> Tensor:
        """The engine's constructor: wrap ``data`` as is (no copy, no checks).

        ``grad_fn`` and ``output_index`` make it output ``output_index`` of a recorded node.
        Code outside the engine builds constant tensors with :func:`constant`.
        """
        t = object.__new__(Tensor)
        t.data = data
        t.grad = None
        t.requires_grad = requires_grad
        t.grad_fn = grad_fn
        t._output_index = output_index
        t._version = 0
        t._retains_grad = False
        return t

    # -- operators (each one line into rosenblatt.ops) ----------------------------------------
    def __neg__(self) -> Tensor:
        return _Neg.apply(self)

    def __pos__(self) -> Tensor:
        return self

    def __abs__(self) -> Tensor:
        return _ops.abs(self)

    def __add__(self, other: Any) -> Tensor:
        return _Add.apply(self, other)

    def __radd__(self, other: Any) -> Tensor:
        return _Add.apply(other, self)

    def __sub__(self, other: Any) -> Tensor:
        return _Sub.apply(self, other)

    def __rsub__(self, other: Any) -> Tensor:
        return _Sub.apply(other, self)

    def __mul__(self, other: Any) -> Tensor:
        return _Mul.apply(self, other)

    def __rmul__(self, other: Any) -> Tensor:
        return _Mul.apply(other, self)

    def __truediv__(self, other: Any) -> Tensor:
        return _Div.apply(self, other)

    def __rtruediv__(self, other: Any) -> Tensor:
        return _Div.apply(other, self)

    # -- augmented assignment: ``x += y`` changes ``x`` itself, as in PyTorch ----------------------
    # The manual update ``with rb.no_grad(): p -= lr * p.grad`` must change the parameter, not bind
    # the loop's name to a new tensor. In place wherever nothing is recorded; a tensor inside a
    # recorded graph (``h += x`` in a forward pass) gets a new tensor instead, with the same values
    # and gradients (other references to the old tensor keep its values: the one difference from
    # PyTorch, which records the in-place op).
    def _augmented(self, other: Any, method: Any, symbol: str) -> bool:
        """Apply ``method`` (``add_``, ...) in place and return True, or return False when the
        operation must be recorded (the caller then builds a new tensor)."""
        if _GradMode.enabled and (self.requires_grad or isinstance(other, Tensor) and other.requires_grad):
            if self.requires_grad and self.grad_fn is None:
                raise RuntimeError(
                    f"x {symbol} y: a leaf tensor that requires grad cannot be modified in place while "
                    "gradients are recorded; wrap the update in `with rb.no_grad():`"
                )
            return False
        try:
            shape = np.broadcast_shapes(self.shape, other.shape if isinstance(other, Tensor) else np.shape(other))
        except ValueError:
            shape = None
        if shape != self.shape:
            raise ValueError(
                f"x {symbol} y: in place, the result must keep x's shape {self.shape}; "
                f"y has shape {other.shape if isinstance(other, Tensor) else np.shape(other)}"
            )
        method(other)
        return True

    def __iadd__(self, other: Any) -> Tensor:
        return self if self._augmented(other, self.add_, "+=") else _Add.apply(self, other)

    def __isub__(self, other: Any) -> Tensor:
        return self if self._augmented(other, self.sub_, "-=") else _Sub.apply(self, other)

    def __imul__(self, other: Any) -> Tensor:
        return self if self._augmented(other, self.mul_, "*=") else _Mul.apply(self, other)

    def __itruediv__(self, other: Any) -> Tensor:
        return self if self._augmented(other, self.div_, "/=") else _Div.apply(self, other)

    def __floordiv__(self, other: Any) -> Tensor:
        return _ops.floor_divide(self, other)

    def __rfloordiv__(self, other: Any) -> Tensor:
        return _ops.floor_divide(other, self)

    def __mod__(self, other: Any) -> Tensor:
        return _ops.remainder(self, other)

    def __pow__(self, other: Any) -> Tensor:
        return _ops.pow(self, other)

    def __rpow__(self, other: Any) -> Tensor:
        return _ops.pow(other, self)

    def __matmul__(self, other: Any) -> Tensor:
        return _ops.matmul(self, other)

    def __rmatmul__(self, other: Any) -> Tensor:
        return _ops.matmul(other, self)

    def __eq__(self, other: Any) -> Tensor:  # type: ignore[override]
        return _ops.eq(self, other)

    def __ne__(self, other: Any) -> Tensor:  # type: ignore[override]
        return _ops.ne(self, other)

    def __lt__(self, other: Any) -> Tensor:
        return _ops.lt(self, other)

    def __le__(self, other: Any) -> Tensor:
        return _ops.le(self, other)

    def __gt__(self, other: Any) -> Tensor:
        return _ops.gt(self, other)

    def __ge__(self, other: Any) -> Tensor:
        return _ops.ge(self, other)

    def __invert__(self) -> Tensor:
        return _ops.logical_not(self)

    def __and__(self, other: Any) -> Tensor:
        return _ops.logical_and(self, other)

    def __or__(self, other: Any) -> Tensor:
        return _ops.logical_or(self, other)

    def __getitem__(self, index: Any) -> Tensor:
        return _ops.getitem(self, index)

    # -- methods mirroring the top-level functions ----------------------------------------------
    def add(self, other: Any) -> Tensor:
        return _ops.add(self, other)

    def sub(self, other: Any) -> Tensor:
        return _ops.sub(self, other)

    def mul(self, other: Any) -> Tensor:
        return _ops.mul(self, other)

    def div(self, other: Any) -> Tensor:
        return _ops.div(self, other)

    def neg(self) -> Tensor:
        return _ops.neg(self)

    def pow(self, exponent: Any) -> Tensor:
        return _ops.pow(self, exponent)

    def matmul(self, other: Any) -> Tensor:
        return _ops.matmul(self, other)

    def dot(self, other: Any) -> Tensor:
        return _ops.dot(self, other)

    def exp(self) -> Tensor:
        return _ops.exp(self)

    def log(self) -> Tensor:
        return _ops.log(self)

    def log1p(self) -> Tensor:
        return _ops.log1p(self)

    def sqrt(self) -> Tensor:
        return _ops.sqrt(self)

    def abs(self) -> Tensor:
        return _ops.abs(self)

    def sign(self) -> Tensor:
        return _ops.sign(self)

    def sin(self) -> Tensor:
        return _ops.sin(self)

    def cos(self) -> Tensor:
        return _ops.cos(self)

    def tanh(self) -> Tensor:
        return _ops.tanh(self)

    def sigmoid(self) -> Tensor:
        return _ops.sigmoid(self)

    def relu(self) -> Tensor:
        return _ops.relu(self)

    def clip(self, min: Any = None, max: Any = None) -> Tensor:  # noqa: A002
        return _ops.clip(self, min, max)

    clamp = clip

    def maximum(self, other: Any) -> Tensor:
        return _ops.maximum(self, other)

    def minimum(self, other: Any) -> Tensor:
        return _ops.minimum(self, other)

    def softmax(self, axis: int = -1, **kw: Any) -> Tensor:
        return _ops.softmax(self, axis, **kw)

    def log_softmax(self, axis: int = -1, **kw: Any) -> Tensor:
        return _ops.log_softmax(self, axis, **kw)

    def logsumexp(self, axis: Any = None, keepdims: bool = False, **kw: Any) -> Tensor:
        return _ops.logsumexp(self, axis, keepdims, **kw)

    def sum(self, axis: Any = None, keepdims: bool = False, **kw: Any) -> Tensor:
        return _ops.sum(self, axis, keepdims, **kw)

    def mean(self, axis: Any = None, keepdims: bool = False, **kw: Any) -> Tensor:
        return _ops.mean(self, axis, keepdims, **kw)

    def var(self, axis: Any = None, keepdims: bool = False, **kw: Any) -> Tensor:
        return _ops.var(self, axis, keepdims, **kw)

    def std(self, axis: Any = None, keepdims: bool = False, **kw: Any) -> Tensor:
        return _ops.std(self, axis, keepdims, **kw)

    def max(self, axis: Any = None, keepdims: bool = False, **kw: Any) -> Any:
        """The largest element, or ``(values, indices)`` along a dimension (see ``rosenblatt.max``)."""
        return _ops.max(self, axis, keepdims, **kw)

    def min(self, axis: Any = None, keepdims: bool = False, **kw: Any) -> Any:
        """The smallest element, or ``(values, indices)`` along a dimension (see ``rosenblatt.min``)."""
        return _ops.min(self, axis, keepdims, **kw)

    def amax(self, axis: Any = None, keepdims: bool = False, **kw: Any) -> Tensor:
        """Largest values over ``axis`` (one or several axes; values only)."""
        return _ops.amax(self, axis, keepdims, **kw)

    def amin(self, axis: Any = None, keepdims: bool = False, **kw: Any) -> Tensor:
        """Smallest values over ``axis`` (one or several axes; values only)."""
        return _ops.amin(self, axis, keepdims, **kw)

    def sort(self, dim: int = -1, descending: bool = False, **kw: Any) -> Any:
        """``(values, indices)`` sorted along ``dim`` (stable; see ``rosenblatt.sort``)."""
        return _ops.sort(self, dim, descending, **kw)

    def argsort(self, dim: int = -1, descending: bool = False, **kw: Any) -> Tensor:
        """Indices that sort the tensor along ``dim`` (stable)."""
        return _ops.argsort(self, dim, descending, **kw)

    def topk(self, k: int, dim: int = -1, largest: bool = True, sorted: bool = True, **kw: Any) -> Any:  # noqa: A002
        """``(values, indices)`` of the ``k`` largest (or smallest) elements along ``dim``."""
        return _ops.topk(self, k, dim, largest, sorted, **kw)

    def argmax(self, axis: Any = None, keepdims: bool = False, **kw: Any) -> Tensor:
        return _ops.argmax(self, axis, keepdims, **kw)

    def argmin(self, axis: Any = None, keepdims: bool = False, **kw: Any) -> Tensor:
        return _ops.argmin(self, axis, keepdims, **kw)

    def prod(self, axis: Any = None, keepdims: bool = False, **kw: Any) -> Tensor:
        return _ops.prod(self, axis, keepdims, **kw)

    def cumsum(self, axis: int = 0, **kw: Any) -> Tensor:
        return _ops.cumsum(self, axis, **kw)

    def norm(self, ord: Any = None, axis: Any = None, keepdims: bool = False, **kw: Any) -> Tensor:  # noqa: A002
        return _ops.norm(self, ord, axis, keepdims, **kw)

    def all(self, axis: Any = None, keepdims: bool = False, **kw: Any) -> Tensor:
        return _ops.all(self, axis, keepdims, **kw)

    def any(self, axis: Any = None, keepdims: bool = False, **kw: Any) -> Tensor:
        return _ops.any(self, axis, keepdims, **kw)

    def reshape(self, *shape: Any) -> Tensor:
        return _ops.reshape(self, *shape)

    def view(self, *shape: Any) -> Tensor:
        """PyTorch's name for :meth:`reshape`."""
        return _ops.reshape(self, *shape)

    def transpose(self, *axes: Any) -> Tensor:
        return _ops.transpose(self, *axes)

    def permute(self, *axes: Any) -> Tensor:
        return _ops.permute(self, *axes)

    def swapaxes(self, axis1: int, axis2: int) -> Tensor:
        return _ops.swapaxes(self, axis1, axis2)

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> Tensor:
        return _ops.flatten(self, start_dim, end_dim)

    def squeeze(self, axis: Any = None, **kw: Any) -> Tensor:
        return _ops.squeeze(self, axis, **kw)

    def unsqueeze(self, axis: int | None = None, **kw: Any) -> Tensor:
        return _ops.unsqueeze(self, axis, **kw)

    def broadcast_to(self, shape: Sequence[int]) -> Tensor:
        return _ops.broadcast_to(self, shape)

    def expand(self, *shape: Any) -> Tensor:
        return _ops.expand(self, *shape)

    def expand_as(self, other: Tensor) -> Tensor:
        """Broadcast to ``other``'s shape."""
        return _ops.broadcast_to(self, other.shape)

    def flip(self, axis: Any = None, **kw: Any) -> Tensor:
        return _ops.flip(self, axis, **kw)

    def gather(self, axis: int, index: Any) -> Tensor:
        return _ops.gather(self, axis, index)

    def take_along_axis(self, indices: Any, axis: int) -> Tensor:
        return _ops.take_along_axis(self, indices, axis)

    def split(self, split_size_or_sections: Any, axis: int = 0, **kw: Any) -> list[Tensor]:
        return _ops.split(self, split_size_or_sections, axis, **kw)

    def chunk(self, chunks: int, axis: int = 0, **kw: Any) -> list[Tensor]:
        return _ops.chunk(self, chunks, axis, **kw)

    def outer(self, other: Any) -> Tensor:
        return _ops.outer(self, other)

    def where(self, condition: Any, other: Any) -> Tensor:
        """``self`` where ``condition`` is true, else ``other``: ``rb.where(condition, self, other)``."""
        return _ops.where(condition, self, other)

    def contiguous(self, memory_format: memory_format = contiguous_format) -> Tensor:
        """This tensor when its array is C-contiguous, else a C-contiguous copy (differentiable);
        with ``memory_format=rb.channels_last`` laid out channels-last instead.

        With the oneDNN kernels, the outputs of standalone convolution, batch-norm and pooling layers
        are channels-last: ``(N, C, H, W)`` views of ``(N, H, W, C)`` memory. Every op takes them;
        this is for code that hands ``.numpy()`` buffers on and needs C order.
        """
        if memory_format is preserve_format:
            raise ValueError("Tensor.contiguous: preserve_format is not a layout (use contiguous_format or "
                             "channels_last)")
        return self._in_format(memory_format, "Tensor.contiguous")

    def is_contiguous(self, memory_format: memory_format = contiguous_format) -> bool:
        """Whether the array is C-contiguous, or with ``memory_format=rb.channels_last`` whether it is a
        channels-last 4-D array (see :meth:`contiguous`)."""
        if memory_format is channels_last:
            return _is_channels_last(self.data)
        if memory_format is not contiguous_format:
            raise TypeError(f"Tensor.is_contiguous: expected rb.contiguous_format or rb.channels_last, got "
                            f"{memory_format!r}")
        return bool(self.data.flags.c_contiguous)


def constant(array: Any) -> Tensor:
    """A tensor around a raw array, as is: no copy, no checks, no graph (``requires_grad=False``).

    The internal way to hand an array (a mask, a gradient computed on arrays, an index result) to
    tensor code; the array must already have the right dtype and device.
    """
    return Tensor._make(array)


def mark_modified(*tensors: Tensor) -> None:
    """Record that the tensors' arrays were changed in place (an optimiser step, a copy into them).

    Each tensor's version counter goes up, so a recorded op that saved one of them refuses to run
    its backward with the changed values instead of silently computing a wrong gradient.
    """
    for t in tensors:
        t._version += 1


# --------------------------------------------------------------------------------------------
# 3. Function
# --------------------------------------------------------------------------------------------


class Function:
    """One differentiable operation, and (when recorded) a node of the graph.

    Subclass it and write two static methods::

        class Square(rb.autograd.Function):
            @staticmethod
            def forward(ctx, x):            # raw ndarrays in, ndarray(s) out
                return x * x

            @staticmethod
            def backward(ctx, grad_y):      # gradient Tensors in, one per forward output
                (x,) = ctx.inputs           # the input Tensors
                return 2 * x * grad_y       # one gradient (or None) per forward input

        y = Square.apply(x)

    ``ctx`` is the node itself. Besides ``ctx.inputs`` (input tensors; non-tensor arguments appear
    as themselves) it offers ``ctx.needs_input_grad`` (skip the gradients nobody needs),
    ``ctx.save_for_backward(*arrays_or_tensors)`` / ``ctx.saved_tensors`` and ``ctx.outputs``
    (weak references to the output tensors). Any other attribute set on ``ctx`` in ``forward`` is
    kept until backward has run, then freed (unless ``retain_graph=True``).

    **Gradients: one mechanism, two methods.** ``backward`` is the reference formula and is
    always differentiable: it is written with tensor ops (other Functions' ``apply`` included),
    and the engine records them under ``create_graph=True`` (second derivatives). An op whose
    gradient is cheaper on raw arrays (a fused layer, a convolution, a loss, a hot element-wise
    op) also writes ``backward_arrays``, the same formula on arrays::

        @staticmethod
        def backward_arrays(ctx, grad_y):   # raw arrays in, arrays (or None) out
            x = ctx.inputs[0].data
            return 2 * x * grad_y

    The rule the engine follows:

    - no graph of the backward pass is recorded (a plain ``loss.backward()``): ``backward_arrays``
      when the op has one (no tensor wrapping, no op dispatch per gradient), else ``backward``;
    - ``create_graph=True``: ``backward``. For a fused op it may simply be the gradient of the
      op's composite version (``rosenblatt.nn.functional._fused.composite_backward``); for a
      linear op (a convolution, a pooling) it applies the adjoint op's Function.
    - An op with only ``backward_arrays`` is differentiable once: ``create_graph=True`` through it
      raises a ``RuntimeError`` naming the op.

    Neither method branches on whether it is recorded. Array math shared by both (activation
    derivatives, optimiser updates, convolutions) lives in :mod:`rosenblatt.kernels`; the internal
    way to hand an array to tensor code is :func:`constant`, and an in-place change of a tensor's
    array is announced with :func:`mark_modified`.
    """

    # Core fields in slots; subclasses get a __dict__ for what their forward saves.
    __slots__ = ("inputs", "outputs", "needs_input_grad", "generation", "_saved", "_versions",
                 "_output_meta", "_released", "__dict__", "__weakref__")

    # Optional: ``backward_arrays(ctx, *grad_arrays) -> array gradients``, the same formula as
    # ``backward`` on raw arrays. Used when no graph of the backward pass is recorded (the usual
    # ``loss.backward()``), it skips the tensor wrapping and op dispatch of every gradient.
    backward_arrays = None

    @staticmethod
    def forward(ctx: Any, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    @staticmethod
    def backward(ctx: Any, *grad_outputs: Any) -> Any:
        raise NotImplementedError

    def save_for_backward(self, *items: Any) -> None:
        """Keep arrays or tensors for backward; they are freed after backward runs."""
        self._saved = items

    @property
    def saved_tensors(self) -> tuple[Any, ...]:
        """What ``save_for_backward`` stored, arrays wrapped as constant tensors."""
        if self._released:
            raise RuntimeError(_SECOND_BACKWARD_ERROR.format(name=type(self).__name__))
        return tuple(Tensor._make(s) if not isinstance(s, Tensor) and s is not None else s
                     for s in self._saved)

    @property
    def saved_arrays(self) -> tuple[Any, ...]:
        """What ``save_for_backward`` stored, as raw arrays."""
        if self._released:
            raise RuntimeError(_SECOND_BACKWARD_ERROR.format(name=type(self).__name__))
        return tuple(s.data if isinstance(s, Tensor) else s for s in self._saved)

    def output(self, index: int = 0) -> Tensor:
        """The ``index``-th output tensor (for backward formulas written in terms of the output)."""
        out = self.outputs[index]()
        if out is None:
            raise RuntimeError(f"{type(self).__name__}: output {index} was freed before backward")
        return out

    @classmethod
    def apply(cls, *inputs: Any, **kwargs: Any) -> Any:
        """Run ``forward`` on the inputs' arrays; record a node when a gradient can flow."""
        # This is the hottest function of the framework (every op goes through it), hence one pass
        # over the inputs and no generator expressions.
        ctx = _new_object(cls)
        ctx._saved = ()
        ctx._released = False
        arrays = []
        needs = []
        versions = []
        record = False
        generation = 0
        for x in inputs:
            if isinstance(x, Tensor):
                arrays.append(x.data)
                versions.append(x._version)
                if x.requires_grad:
                    record = True
                    needs.append(True)
                    fn = x.grad_fn
                    if fn is not None and fn.generation > generation:
                        generation = fn.generation
                    continue
            else:
                arrays.append(x)
                versions.append(0)
            needs.append(False)
        record = record and _GradMode.enabled
        ctx.needs_input_grad = tuple(needs) if record else _no_needs(len(needs))
        try:
            outputs = cls.forward(ctx, *arrays, **kwargs)
        except ValueError as err:
            raise ValueError(_describe_failure(cls, inputs, err)) from None
        if not record:
            if type(outputs) is tuple:
                return tuple(Tensor._make(_to_array(o)) for o in outputs)
            if type(outputs) is not _ndarray:
                outputs = _to_array(outputs)
            return Tensor._make(outputs)

        ctx.inputs = inputs
        ctx._versions = versions
        ctx.generation = generation + 1
        if type(outputs) is tuple:
            results = tuple(
                Tensor._make(_to_array(o), ctx, _is_float(o), i) for i, o in enumerate(outputs)
            )
            ctx.outputs = tuple(weakref.ref(r) for r in results)
            ctx._output_meta = tuple((r.data.shape, r.data.dtype) for r in results)
            return results
        if type(outputs) is not _ndarray:
            outputs = _to_array(outputs)
        result = Tensor._make(outputs, ctx, outputs.dtype.kind in "fc")
        ctx.outputs = (weakref.ref(result),)
        ctx._output_meta = None
        return result

    def _release(self) -> None:
        """Drop everything backward needed: inputs, saved arrays, attributes set in forward."""
        self._released = True
        self._saved = ()
        self.inputs = ()
        self.__dict__.clear()

    def __repr__(self) -> str:
        return f"<{type(self).__name__}Backward>"


_new_object = object.__new__
_ndarray = np.ndarray
_NO_NEEDS = [(False,) * n for n in range(8)]


def _no_needs(n: int) -> tuple[bool, ...]:
    return _NO_NEEDS[n] if n < 8 else (False,) * n


def _describe_failure(cls: type, inputs: tuple[Any, ...], err: Exception) -> str:
    """A NumPy error from inside an op, restated with the op's name and its input shapes."""
    shapes = ", ".join(str(tuple(x.shape)) if hasattr(x, "shape") else repr(x) for x in inputs)
    return f"{cls.__name__.lower()}: {err} (inputs: {shapes})"


def _to_array(value: Any) -> Any:
    # Reductions of NumPy arrays can return NumPy scalars; keep everything an ndarray.
    if isinstance(value, np.generic) or not hasattr(value, "dtype"):
        return np.asarray(value)
    return value


def _is_float(array: Any) -> bool:
    return array.dtype.kind in "fc"


_SECOND_BACKWARD_ERROR = (
    "{name}: trying to backward through the graph a second time (or to read saved values after they "
    "were freed). Pass retain_graph=True to the first backward() if you need to backward twice."
)


# --------------------------------------------------------------------------------------------
# Broadcasting, undone in one place
# --------------------------------------------------------------------------------------------


def sum_to_array(x: Any, shape: tuple[int, ...]) -> Any:
    """Sum ``x`` over the axes that broadcasting added or stretched, so it gets ``shape``."""
    if x.shape == shape:
        return x
    lead = x.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(i + lead for i, n in enumerate(shape) if n == 1 and x.shape[i + lead] != 1)
    y = x.sum(axis=axes, keepdims=True)
    if lead:
        y = y.reshape(shape)
    return y


class SumTo(Function):
    @staticmethod
    def forward(ctx, x, shape):
        ctx.in_shape = x.shape
        return sum_to_array(x, tuple(shape))

    @staticmethod
    def backward(ctx, gy):
        return broadcast_to(gy, ctx.in_shape), None


class BroadcastTo(Function):
    @staticmethod
    def forward(ctx, x, shape):
        ctx.in_shape = x.shape
        return get_array_module(x).broadcast_to(x, tuple(shape))

    @staticmethod
    def backward(ctx, gy):
        return sum_to(gy, ctx.in_shape), None


def sum_to(x: Tensor, shape: Sequence[int]) -> Tensor:
    """Differentiable: sum ``x`` down to ``shape`` (the gradient of broadcasting)."""
    shape = tuple(shape)
    if x.shape == shape:
        return x
    return SumTo.apply(x, shape)


def broadcast_to(x: Any, shape: Sequence[int]) -> Tensor:
    """Differentiable ``numpy.broadcast_to`` (a read-only view: no copy)."""
    if not isinstance(x, Tensor):
        x = Tensor(x)
    shape = tuple(int(s) for s in shape)
    if x.shape == shape:
        return x
    try:
        np.broadcast_shapes(x.shape, shape)
    except ValueError:
        raise ValueError(f"broadcast_to: cannot broadcast shape {x.shape} to {shape}") from None
    return BroadcastTo.apply(x, shape)


# --------------------------------------------------------------------------------------------
# 4. The backward engine
# --------------------------------------------------------------------------------------------


def run_backward(
    roots: Sequence[Tensor],
    root_grads: Sequence[Tensor],
    retain_graph: bool = False,
    create_graph: bool = False,
    inputs: Sequence[Tensor] | None = None,
) -> list[Tensor | None] | None:
    """Backpropagate ``root_grads`` from ``roots`` through the recorded graph.

    Without ``inputs`` the gradients are accumulated into ``.grad`` of the leaves (``backward()``);
    with ``inputs`` they are returned instead and no ``.grad`` is touched (``rb.grad``).
    """
    _threads_tick()
    capture: dict[int, Tensor | None] | None = None
    if inputs is not None:
        capture = {id(t): None for t in inputs}
    pending: dict[Function, list[Tensor | None]] = {}  # node -> gradient of each of its outputs
    heap: list[tuple[int, int, Function]] = []
    counter = 0
    owned: set[int] = set()  # arrays already given to a leaf's .grad in this pass
    done: list[Function] = []

    def send(x: Tensor, g: Tensor) -> None:
        nonlocal counter
        if g.data.shape != x.data.shape:
            g = sum_to(g, x.data.shape)
        if g.data.dtype != x.data.dtype and x.data.dtype.kind in "fc":
            g = g.astype(x.data.dtype)
        if capture is not None:
            key = id(x)
            if key in capture:
                prev = capture[key]
                capture[key] = g if prev is None else prev + g
        fn = x.grad_fn
        if fn is None or x._retains_grad:
            if capture is None:
                _accumulate_grad(x, g, create_graph, owned)
            if fn is None:
                return
        slot = pending.get(fn)
        if slot is None:
            slot = pending[fn] = [None] * len(fn.outputs)
            heapq.heappush(heap, (-fn.generation, counter, fn))
            counter += 1
        i = x._output_index
        slot[i] = g if slot[i] is None else slot[i] + g

    with set_grad_enabled(create_graph):
        for root, g in zip(roots, root_grads):
            owned.add(id(g.data))
            send(root, g)
        while heap:
            _, _, fn = heapq.heappop(heap)
            grads = pending.pop(fn)
            if fn._released:
                raise RuntimeError(_SECOND_BACKWARD_ERROR.format(name=type(fn).__name__))
            if create_graph and type(fn).backward is Function.backward:
                raise RuntimeError(
                    f"{type(fn).__name__}: this op computes its gradient on arrays only (backward_arrays) "
                    "and cannot be differentiated twice (create_graph=True); use its composite version "
                    "(built from differentiable ops) instead"
                )
            for x, version in zip(fn.inputs, fn._versions):
                if isinstance(x, Tensor) and x._version != version:
                    raise RuntimeError(
                        f"{type(fn).__name__}: one of its input tensors (shape {x.shape}) was modified "
                        "in place after the op was recorded, so its gradient would be wrong"
                    )
            if fn._output_meta is not None:  # multi-output: a missing gradient is a zero gradient
                xp = get_array_module(fn.inputs[0].data if isinstance(fn.inputs[0], Tensor) else None)
                grads = [g if g is not None else Tensor._make(xp.zeros(shape, dtype))
                         for g, (shape, dtype) in zip(grads, fn._output_meta)]
            cls = type(fn)
            if not create_graph and cls.backward_arrays is not None:
                # Fast path: no graph of the backward pass is needed, so hot ops compute their
                # gradients on raw arrays (the differentiable ``backward`` is their reference).
                input_grads = cls.backward_arrays(fn, *[g.data for g in grads])
            else:
                input_grads = cls.backward(fn, *grads)
            if not isinstance(input_grads, tuple):
                input_grads = (input_grads,)
            if len(input_grads) < len(fn.inputs):
                raise RuntimeError(
                    f"{type(fn).__name__}.backward returned {len(input_grads)} gradients for "
                    f"{len(fn.inputs)} inputs"
                )
            for x, gx, needed in zip(fn.inputs, input_grads, fn.needs_input_grad):
                if needed and gx is not None:
                    send(x, gx if isinstance(gx, Tensor) else Tensor._make(gx))
            if not retain_graph:
                done.append(fn)
    # Freed only now: a node's backward may still need an output that a later node holds as input.
    for fn in done:
        fn._release()

    if capture is None:
        return None
    return [capture[id(t)] for t in inputs]


def _sole_view(a: Any) -> bool:
    """True when ``a`` is a view of a whole NumPy buffer that nothing else refers to (a channels-last
    gradient: an NCHW view of the NHWC array a kernel wrote; a gradient written to a cache-aligned
    allocation, :func:`rosenblatt.kernels.workspace.aligned_empty`): it may become a leaf's ``.grad``
    as it is, with no copy (4 MB of a 64x16x32x32 input gradient took 0.33 ms to copy)."""
    base = a.base
    if type(base) is not np.ndarray or base.base is not None:
        return False
    whole = base.nbytes == a.nbytes or (base.dtype == np.uint8 and a.nbytes < base.nbytes <= a.nbytes + _ALIGNED_SLACK
                                        and (a.flags.c_contiguous or _channels_last(a)))
    return whole and sys.getrefcount(base) <= 3  # the view, the local name and getrefcount's argument


def _channels_last(a: np.ndarray) -> bool:
    """True for a 4-D array laid out channels-last without gaps (an NCHW view of NHWC memory)."""
    return a.ndim == 4 and a.transpose(0, 2, 3, 1).flags.c_contiguous


def _accumulate_grad(x: Tensor, g: Tensor, create_graph: bool, owned: set[int]) -> None:
    """Add ``g`` to ``x.grad`` exactly as PyTorch does (a fresh tensor the first time)."""
    if not create_graph:
        data = g.data
        if x.grad is None:
            # The first gradient must be x's own array: not a view of another array, not shared
            # with another leaf (clip_grad_norm_ and optimisers may modify it in place).
            if (data.base is not None or not data.flags.c_contiguous) and not _sole_view(data) or id(data) in owned:
                data = data.copy(order="K")  # (a channels-last gradient stays so: a linear copy)
            owned.add(id(data))
            x.grad = Tensor._make(data)
        else:
            x.grad = Tensor._make(x.grad.data + data)
    else:
        x.grad = g if x.grad is None else x.grad + g


def grad(
    outputs: Tensor | Sequence[Tensor],
    inputs: Tensor | Sequence[Tensor],
    grad_outputs: Any = None,
    retain_graph: bool | None = None,
    create_graph: bool = False,
    allow_unused: bool = False,
) -> tuple[Tensor | None, ...]:
    """Return d(outputs)/d(inputs) without touching any ``.grad`` (``torch.autograd.grad``).

    With ``create_graph=True`` the returned gradients are themselves differentiable.
    """
    outputs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    if grad_outputs is None:
        grad_outputs = [None] * len(outputs)
    elif isinstance(grad_outputs, Tensor) or not isinstance(grad_outputs, (list, tuple)):
        grad_outputs = [grad_outputs]
    root_grads = []
    for out, g in zip(outputs, grad_outputs):
        if not out.requires_grad:
            raise RuntimeError("grad(): an output does not require grad (no graph reaches it)")
        if g is None:
            if out.data.size != 1:
                raise RuntimeError(f"grad(): grad_outputs needed for a non-scalar output of shape {out.shape}")
            g = Tensor._make(get_array_module(out.data).ones_like(out.data))
        elif not isinstance(g, Tensor):
            g = Tensor(g, dtype=out.dtype)
        root_grads.append(g)
    for t in inputs:
        if not t.requires_grad:
            raise RuntimeError(f"grad(): an input of shape {t.shape} does not require grad")
    if retain_graph is None:
        retain_graph = create_graph
    results = run_backward(outputs, root_grads, retain_graph, create_graph, inputs)
    if not allow_unused:
        for t, r in zip(inputs, results):
            if r is None:
                raise RuntimeError(
                    f"grad(): an input of shape {t.shape} was not used to compute the outputs "
                    "(pass allow_unused=True to get None for it)"
                )
    return tuple(results)


def tensors_requiring_grad(items: Iterable[Any]) -> bool:
    """True if any item is a tensor that requires grad (used by ops to choose fast paths)."""
    return any(isinstance(t, Tensor) and t.requires_grad for t in items)


# The thread policy looks at the machine's load now and then from here (rosenblatt.kernels.threads).
# Imported last: rosenblatt.ops builds on the classes above, and Tensor's methods call into it.
from rosenblatt import ops as _ops  # noqa: E402
from rosenblatt.kernels.threads import tick as _threads_tick  # noqa: E402
from rosenblatt.kernels.workspace import ALIGNMENT as _ALIGNED_SLACK  # noqa: E402  (an aligned allocation's extra bytes)
from rosenblatt.ops.arithmetic import Add as _Add  # noqa: E402
from rosenblatt.ops.arithmetic import Div as _Div  # noqa: E402
from rosenblatt.ops.arithmetic import Mul as _Mul  # noqa: E402
from rosenblatt.ops.arithmetic import Neg as _Neg  # noqa: E402
from rosenblatt.ops.arithmetic import Sub as _Sub  # noqa: E402


def _document_mirror_methods() -> None:
    """Give each method that mirrors a top-level op (``t.sum()`` for ``rb.sum(t)``) that op's summary."""
    import inspect

    for name, method in vars(Tensor).items():
        function = getattr(_ops, name, None)
        if callable(method) and not method.__doc__ and callable(function) and function.__doc__:
            summary = inspect.getdoc(function).split("\n\n")[0]
            method.__doc__ = f"Method form of ``rb.{name}(t, ...)``: {summary}"


_document_mirror_methods()


def _axpy(y: Any, x: Any, alpha: float) -> bool:
    """:func:`rosenblatt.kernels.optim.axpy`, imported on first use (not at ``import rosenblatt``)."""
    global _axpy
    from rosenblatt.kernels.optim import axpy

    _axpy = axpy
    return axpy(y, x, alpha)
