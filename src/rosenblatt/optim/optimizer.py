"""``Optimizer``: the base class of every optimiser - parameter groups, per-parameter state, saving.

An optimiser holds its parameters in ``param_groups``: a list of dicts, each with a ``"params"`` list
and that group's hyper-parameters (``lr``, ``momentum``, ...), exactly as in PyTorch. Per-parameter
state (momentum buffers, moment estimates, step counts) is created lazily on the first step that
sees a gradient and is stored under the parameter's *position* in the flattened group order - never
under ``id()`` - so ``state_dict()`` is plain data (integers, numbers and arrays) and a fresh optimiser
over the same parameters continues a run exactly after ``load_state_dict``.

The updates themselves are array kernels (:mod:`rosenblatt.kernels.optim`): each optimiser's
``step`` picks a kernel and its hyper-parameters per parameter and hands it to :meth:`_apply`; the
kernels' runner processes large parameters in cache-sized blocks, on the thread policy's threads.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from typing import Any

import numpy as np

from rosenblatt.backend import device_of, get_array_module, is_cupy_array, to_device
from rosenblatt.core import Tensor, enable_grad
from rosenblatt.kernels.optim import UpdateRunner, Work, effective_grad  # noqa: F401 - effective_grad: re-export


class _Required:
    """Marks a hyper-parameter without a default: every group must give it."""

    def __repr__(self) -> str:
        return "<required parameter>"


required = _Required()


class OptimizerState(MutableMapping):
    """Per-parameter state, stored by the parameter's index in the flattened ``param_groups``.

    Keys are integer indices; a parameter tensor is accepted too (``optimizer.state[p]``, as in
    PyTorch) and is translated to its index by identity.
    """

    def __init__(self, optimizer: Optimizer) -> None:
        self._optimizer = optimizer
        self.by_index: dict[int, dict[str, Any]] = {}

    def _key(self, key: Any) -> int:
        if isinstance(key, Tensor):
            return self._optimizer.index_of(key)
        if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
            return int(key)
        raise TypeError(f"optimizer state: expected a parameter index or a parameter tensor, got {type(key).__name__}")

    def __getitem__(self, key: Any) -> dict[str, Any]:
        return self.by_index[self._key(key)]

    def __setitem__(self, key: Any, value: dict[str, Any]) -> None:
        self.by_index[self._key(key)] = value

    def __delitem__(self, key: Any) -> None:
        del self.by_index[self._key(key)]

    def __contains__(self, key: object) -> bool:
        try:
            return self._key(key) in self.by_index
        except (TypeError, KeyError):
            return False

    def __iter__(self) -> Iterator[int]:
        return iter(self.by_index)

    def __len__(self) -> int:
        return len(self.by_index)

    def __repr__(self) -> str:
        return f"OptimizerState({len(self.by_index)} parameters with state)"


class Optimizer:
    """Base class of the optimisers: groups of parameters with their hyper-parameters, plus state.

    Args:
        params: an iterable of parameters (``model.parameters()``), or of dicts - parameter groups -
            each with a ``"params"`` entry and any hyper-parameters that override ``defaults``
            (``[{"params": body.parameters()}, {"params": head.parameters(), "lr": 1e-2}]``).
        defaults: the hyper-parameters of a group that does not give its own.

    Subclasses implement :meth:`step` - :meth:`_evaluate_closure`, then for each entry of
    :meth:`_params_with_grad` an elementwise kernel run by :meth:`_apply` - and may check their
    hyper-parameters in :meth:`_check_hyperparameters`.
    """

    def __init__(self, params: Iterable[Any], defaults: Mapping[str, Any]) -> None:
        self.defaults: dict[str, Any] = dict(defaults)
        self._check_hyperparameters({k: v for k, v in self.defaults.items() if v is not required})
        self.param_groups: list[dict[str, Any]] = []
        self.state = OptimizerState(self)
        # Runs the update kernels; owns the scratch buffers reused by every step.
        self._runner = UpdateRunner()
        # The updates of the step in progress, collected by _apply and run by _updates.
        self._pending: list[Work] | None = None
        if isinstance(params, Tensor):
            raise TypeError(
                f"{type(self).__name__}: params should be an iterable of tensors or of dicts, "
                f"got a single {type(params).__name__}; pass [tensor] or model.parameters()"
            )
        if isinstance(params, (set, frozenset)):
            raise TypeError(
                f"{type(self).__name__}: params must be an ordered collection (a list), not a set: "
                "state is stored by parameter order"
            )
        groups = list(params)
        if not groups:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    # -- parameter groups ------------------------------------------------------------------------
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Append a group (a dict with ``"params"`` and optional hyper-parameters) to ``param_groups``.

        Useful to start training layers that were frozen: the new parameters get the next indices.
        """
        name = type(self).__name__
        if not isinstance(param_group, dict):
            raise TypeError(f"{name}.add_param_group: expected a dict, got {type(param_group).__name__}")
        group = dict(param_group)
        if "params" not in group:
            raise ValueError(f"{name}.add_param_group: the group has no 'params' entry")
        params = group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, (set, frozenset)):
            raise TypeError(f"{name}: parameters must be an ordered collection (a list), not a set")
        else:
            params = list(params)
        if not params:
            raise ValueError(f"{name}: a parameter group has an empty parameter list")
        for i, p in enumerate(params):
            if not isinstance(p, Tensor):
                raise TypeError(f"{name}: can only optimise tensors, but parameter {i} is a {type(p).__name__}")
            if p.grad_fn is not None:
                raise ValueError(
                    f"{name}: can only optimise leaf tensors, but parameter {i} (shape {p.shape}) "
                    f"was computed by {type(p.grad_fn).__name__}; use .detach().requires_grad_()"
                )
            if p.data.dtype.kind != "f":
                raise TypeError(
                    f"{name}: can only optimise real floating-point tensors, but parameter {i} "
                    f"(shape {p.shape}) has dtype {p.data.dtype}"
                )
        seen: set[int] = set()
        for p in params:
            if id(p) in seen:  # identity within this call only; nothing is stored by id()
                raise ValueError(
                    f"{name}: a parameter group contains the same parameter (shape {p.shape}) twice"
                )
            seen.add(id(p))
        for existing in self.param_groups:
            for p in existing["params"]:
                if id(p) in seen:
                    raise ValueError(f"{name}: some parameters appear in more than one parameter group")
        for key, default in self.defaults.items():
            if default is required and key not in group:
                raise ValueError(f"{name}: parameter group didn't specify a value of required hyper-parameter '{key}'")
            group.setdefault(key, default)
        for key, value in group.items():  # NumPy scalars become Python numbers: state_dict() stays JSON-able
            if isinstance(value, np.generic):
                group[key] = value.item()
        self._check_hyperparameters(group)
        group["params"] = params
        self.param_groups.append(group)

    def _check_hyperparameters(self, group: Mapping[str, Any]) -> None:
        """Raise ``ValueError`` for an invalid hyper-parameter; subclasses add their own checks."""
        name = type(self).__name__
        if "lr" in group and not (isinstance(group["lr"], numbers.Real) and group["lr"] >= 0):
            raise ValueError(f"{name}: invalid learning rate: expected a number >= 0, got {group['lr']!r}")
        if "eps" in group and not group["eps"] >= 0:
            raise ValueError(f"{name}: invalid epsilon value: expected eps >= 0, got {group['eps']!r}")
        if "weight_decay" in group and not group["weight_decay"] >= 0:
            raise ValueError(
                f"{name}: invalid weight_decay value: expected weight_decay >= 0, got {group['weight_decay']!r}"
            )

    def params(self) -> Iterator[Tensor]:
        """Every parameter, in index order (the order of ``state`` keys)."""
        for group in self.param_groups:
            yield from group["params"]

    def index_of(self, param: Tensor) -> int:
        """The index under which ``param``'s state is stored (found by identity)."""
        for index, p in enumerate(self.params()):
            if p is param:
                return index
        raise KeyError(f"{type(self).__name__}: the tensor (shape {param.shape}) is not one of its parameters")

    # -- the training-loop API -------------------------------------------------------------------
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the gradients: set them to ``None`` (default; saves memory) or fill them with zeros."""
        for p in self.params():
            if p.grad is None:
                continue
            if set_to_none:
                p.grad = None
            else:
                p.grad.data.fill(0)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update every parameter that has a gradient; ``closure`` (optional) recomputes and returns the loss."""
        raise NotImplementedError

    def _evaluate_closure(self, closure: Callable[[], Any] | None) -> Any:
        """Run ``closure`` with gradient recording on (a step is usually taken under ``no_grad``)."""
        if closure is None:
            return None
        with enable_grad():
            return closure()

    def _params_with_grad(self) -> Iterator[tuple[int, dict[str, Any], Tensor, Any]]:
        """Yield ``(index, group, param, grad_array)`` for every parameter whose gradient is set.

        Every gradient is checked before the first is yielded: a bad one fails the step before any
        state or parameter has changed.
        """
        found = []
        index = 0
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    grad = p.grad.data
                    if grad.shape != p.data.shape:
                        raise ValueError(
                            f"{type(self).__name__}: parameter {index} has shape {p.data.shape} but its "
                            f"gradient has shape {grad.shape}"
                        )
                    found.append((index, group, p, grad))
                index += 1
        yield from found

    @contextmanager
    def _updates(self) -> Iterator[None]:
        """Collect the :meth:`_apply` calls made inside the block, then run them all.

        Running them together lets the blocks of every parameter be shared out between threads at
        once. If the block raises, nothing collected is applied.
        """
        self._pending = []
        try:
            yield
            work = self._pending
        finally:
            self._pending = None
        self._run(work)

    def _apply(self, kernel: Callable[..., None], arrays: tuple[Any, ...], n_scratch: int, *args: Any) -> None:
        """Have ``kernel(*arrays, *scratch, *args)`` update ``arrays`` (parameter first), block by block.

        ``kernel`` is an elementwise update written with in-place ufuncs; it receives same-shaped
        views of ``arrays`` (an entry may be ``None``: an optional buffer that is passed on as ``None``)
        and ``n_scratch`` scratch buffers of that shape. NumPy arrays that are all C-contiguous are
        processed in cache-sized blocks of their flat views; anything else (a CuPy array, where one
        launch per ufunc is best, or a strided array) is processed whole. Inside :meth:`_updates` the
        update is queued and runs when the block ends; outside, it runs at once.
        """
        if self._pending is not None:
            self._pending.append((kernel, arrays, n_scratch, args))
        else:
            self._runner.run([(kernel, arrays, n_scratch, args)])

    def _run(self, work: list[Work]) -> None:
        """Run queued updates (see :meth:`rosenblatt.kernels.optim.UpdateRunner.run`)."""
        self._runner.run(work)

    @staticmethod
    def _zeros_like(param: Tensor) -> Any:
        """A C-contiguous zero array shaped like ``param`` on its device (state is blocked like the param)."""
        data = param.data
        xp = get_array_module(data)
        if is_cupy_array(data):
            with data.device:
                return xp.zeros(data.shape, dtype=data.dtype)
        return xp.zeros(data.shape, dtype=data.dtype)

    # -- saving and restoring --------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The optimiser's state as plain data, PyTorch's layout.

        ``{"state": {index: {name: array or number}}, "param_groups": [{hyper-parameters...,
        "params": [indices]}]}``. Arrays are the live state arrays (not copies), as in PyTorch; use
        :func:`flatten_state_dict` to turn this into named arrays plus JSON for a checkpoint file.
        """
        groups = []
        index = 0
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            packed["params"] = list(range(index, index + len(group["params"])))
            index += len(group["params"])
            groups.append(packed)
        state = {i: dict(s) for i, s in sorted(self.state.by_index.items())}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore hyper-parameters and per-parameter state saved by :meth:`state_dict`.

        The optimiser must have been built over parameters of the same shapes, in the same groups
        and order. Arrays are copied onto each parameter's device and floating state is cast to the
        parameter's dtype, so a run continues exactly where it was saved.
        """
        name = type(self).__name__
        if not isinstance(state_dict, Mapping) or "state" not in state_dict or "param_groups" not in state_dict:
            raise ValueError(f"{name}.load_state_dict: expected a dict with 'state' and 'param_groups'")
        saved_groups = list(state_dict["param_groups"])
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"{name}.load_state_dict: the saved state has {len(saved_groups)} parameter groups, "
                f"this optimiser has {len(self.param_groups)}"
            )
        for i, (group, saved) in enumerate(zip(self.param_groups, saved_groups)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(
                    f"{name}.load_state_dict: parameter group {i} has {len(group['params'])} parameters, "
                    f"the saved group has {len(saved['params'])}"
                )
        params = list(self.params())
        # Saved indices are mapped onto this optimiser's parameters group by group.
        index_map = {}
        for saved in saved_groups:
            for saved_index in saved["params"]:
                index_map[int(saved_index)] = len(index_map)

        new_state: dict[int, dict[str, Any]] = {}
        for key, values in state_dict["state"].items():
            saved_index = int(key)
            if saved_index not in index_map:
                raise ValueError(f"{name}.load_state_dict: state for parameter {saved_index}, which no group lists")
            index = index_map[saved_index]
            param = params[index]
            restored = {}
            for entry, value in values.items():
                restored[entry] = self._restore_value(param, entry, value, index)
            new_state[index] = restored
        self.state.by_index = new_state

        for group, saved in zip(self.param_groups, saved_groups):
            hyper = {k: v for k, v in saved.items() if k != "params"}
            for key, value in hyper.items():
                # JSON turns tuples into lists; keep the types the optimiser was built with.
                if isinstance(value, list) and isinstance(self.defaults.get(key), tuple):
                    hyper[key] = tuple(value)
            self._check_hyperparameters(hyper)
            params_of_group = group["params"]
            group.clear()
            group.update(hyper)
            group["params"] = params_of_group

    def _restore_value(self, param: Tensor, entry: str, value: Any, index: int) -> Any:
        if isinstance(value, Tensor):
            value = value.data
        if isinstance(value, (int, float, np.integer, np.floating)) or (hasattr(value, "ndim") and value.ndim == 0):
            number = value.item() if hasattr(value, "item") else value
            return int(number) if entry == "step" and float(number).is_integer() else number
        array = value if hasattr(value, "shape") else np.asarray(value)
        if tuple(array.shape) != param.data.shape:
            raise ValueError(
                f"{type(self).__name__}.load_state_dict: state '{entry}' of parameter {index} has shape "
                f"{tuple(array.shape)}, the parameter has shape {param.data.shape}"
            )
        array = to_device(array, device_of(param.data))
        xp = get_array_module(param.data)
        dtype = param.data.dtype if array.dtype.kind in "fc" else array.dtype
        return xp.array(array, dtype=dtype, order="C", copy=True)

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for key in sorted(k for k in group if k != "params"):
                lines.append(f"    {key}: {group[key]}")
        lines.append(")")
        return "\n".join(lines)


def flatten_state_dict(state_dict: Mapping[str, Any], prefix: str = "") -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Split an optimiser ``state_dict`` into named NumPy arrays and a JSON-serialisable dict.

    Arrays are named ``"{prefix}state.{index}.{name}"`` (what a safetensors file stores); numbers,
    hyper-parameters and the group layout go into the returned metadata. :func:`unflatten_state_dict`
    reverses it.
    """
    arrays: dict[str, np.ndarray] = {}
    numbers: dict[str, dict[str, Any]] = {}
    for index, values in state_dict["state"].items():
        for name, value in values.items():
            if isinstance(value, Tensor):
                value = value.data
            if hasattr(value, "shape") and getattr(value, "ndim", 0) > 0:
                if is_cupy_array(value):
                    value = value.get()
                arrays[f"{prefix}state.{int(index)}.{name}"] = np.ascontiguousarray(value)
            else:
                number = value.item() if hasattr(value, "item") else value
                numbers.setdefault(str(int(index)), {})[name] = _json_number(number)
    groups = []
    for group in state_dict["param_groups"]:
        groups.append({k: (list(v) if isinstance(v, tuple) else v) for k, v in group.items()})
    metadata = {"state_numbers": numbers, "param_groups": groups, "array_prefix": prefix}
    return arrays, metadata


def unflatten_state_dict(arrays: Mapping[str, Any], metadata: Mapping[str, Any]) -> dict[str, Any]:
    """Rebuild the ``state_dict`` that :func:`flatten_state_dict` split (ready for ``load_state_dict``)."""
    prefix = metadata.get("array_prefix", "")
    state: dict[int, dict[str, Any]] = {}
    for index, values in metadata.get("state_numbers", {}).items():
        state.setdefault(int(index), {}).update(
            {name: float(v) if isinstance(v, str) else v for name, v in values.items()})
    head = f"{prefix}state."
    for key, array in arrays.items():
        if not key.startswith(head):
            continue
        index, _, name = key[len(head):].partition(".")
        state.setdefault(int(index), {})[name] = array
    return {"state": state, "param_groups": [dict(g) for g in metadata["param_groups"]]}


def _json_number(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no inf/nan; float("inf") reads it back
    return value
