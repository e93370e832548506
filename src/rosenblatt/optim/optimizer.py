"""``Optimizer``: the base class of every optimiser - parameter groups, per-parameter state, saving.

An optimiser holds its parameters in ``param_groups``: a list of dicts, each with a ``"params"`` list
and that group's hyper-parameters (``lr``, ``momentum``, ...), exactly as in PyTorch. Per-parameter
state (momentum buffers, moment estimates, step counts) is created lazily on the first step that
sees a gradient and is stored under the parameter's *position* in the flattened group order - never
under ``id()`` - so ``state_dict()`` is plain data (integers, numbers and arrays) and a fresh optimiser
over the same parameters continues a run exactly after ``load_state_dict``.

The updates themselves run on the raw arrays with in-place ufuncs (``out=``). On the CPU a large
parameter is processed in blocks of a few tens of kilobytes: every pass of an update then reads
data that is already in the cache, so a dozen cheap ufunc passes cost about one trip through main
memory. Blocks also bound the scratch memory: one small buffer per optimiser and thread instead of
parameter-sized temporaries on every step.

A step first collects the updates of all its parameters, then runs their blocks. NumPy's ufuncs
release the GIL, so when a step touches enough elements (``PARALLEL_MIN_ELEMENTS``) the blocks are
split into ``THREADS`` contiguous shares of equal size, each run by its own thread with its own
scratch buffers. Every element goes through the same ufuncs in the same order whichever thread runs
it, so the result is bit-for-bit the one of a single thread.
"""

from __future__ import annotations

import math
import numbers
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import numpy as np

from rosenblatt.backend import device_of, get_array_module, is_cupy_array, to_device
from rosenblatt.core import Tensor, enable_grad

# Bytes of one array per block. A block's working set (the parameter, its gradient, two or three
# state arrays and scratch buffers: 5-8 MiB) stays in the last-level cache between the passes of an
# update, and each ufunc call has enough work that its fixed cost of about a microsecond is lost in
# it (on a 5M-parameter Adam step, 1 MiB blocks took 15% less time than 128 KiB ones).
BLOCK_BYTES = 1024 * 1024


def _default_threads() -> int:
    value = os.environ.get("ROSENBLATT_OPTIM_THREADS")
    if value is not None:
        try:
            return max(1, int(value))
        except ValueError:
            raise ValueError(f"ROSENBLATT_OPTIM_THREADS: expected a positive integer, got {value!r}") from None
    return max(1, min(2, os.cpu_count() or 1))


# Threads that run the blocks of one step (the calling thread is one of them). Two is what a
# memory-bound update gains from on most machines; set ROSENBLATT_OPTIM_THREADS to change it.
THREADS = _default_threads()
# A step over fewer elements runs on the calling thread alone: handing work to another thread
# costs tens of microseconds, more than a small model's whole update.
PARALLEL_MIN_ELEMENTS = 256 * 1024

_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_pool_lock = threading.Lock()


def _worker_pool(workers: int) -> ThreadPoolExecutor:
    """The process-wide pool of ``workers`` threads that run the shares of a step beyond the first."""
    global _pool, _pool_size
    with _pool_lock:
        if _pool is None or _pool_size != workers:
            if _pool is not None:
                _pool.shutdown(wait=False)
            _pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rosenblatt-optim")
            _pool_size = workers
        return _pool


def _forget_pool_after_fork() -> None:
    # A forked child has none of the parent's threads: it builds its own pool when it needs one.
    global _pool, _pool_size, _pool_lock
    _pool, _pool_size, _pool_lock = None, 0, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_after_fork)


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
        # One flat scratch array per (backend, device, dtype, thread slot), grown on demand and reused
        # by every step: updates need temporaries, and allocating them per step would cost page faults.
        self._scratch: dict[tuple[Any, ...], Any] = {}
        # The updates of the step in progress, collected by _apply and run by _updates.
        self._pending: list[tuple[Callable[..., None], tuple[Any, ...], int, tuple[Any, ...]]] | None = None
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
            self._run([(kernel, arrays, n_scratch, args)])

    def _run(self, work: list[tuple[Callable[..., None], tuple[Any, ...], int, tuple[Any, ...]]]) -> None:
        """Run queued updates: NumPy blocks on up to ``THREADS`` threads, everything else here."""
        # Units of work: (kernel, arrays, n_scratch, args, start, stop); start is None for an array
        # processed whole.
        units: list[tuple[Any, ...]] = []
        whole: list[tuple[Any, ...]] = []
        total = 0
        for kernel, arrays, n_scratch, args in work:
            first = arrays[0]
            size = first.size
            block = max(1, BLOCK_BYTES // first.dtype.itemsize)
            if get_array_module(first) is not np:
                whole.append((kernel, arrays, n_scratch, args, None, size))
                continue
            if size > block and all(a is None or a.flags.c_contiguous for a in arrays):
                flats = tuple(None if a is None else a.reshape(-1) for a in arrays)
                units.extend((kernel, flats, n_scratch, args, start, min(start + block, size))
                             for start in range(0, size, block))
            else:
                units.append((kernel, arrays, n_scratch, args, None, size))
            total += size
        for unit in whole:  # CuPy: kernel launches are asynchronous already
            self._run_units([unit], 0)
        threads = THREADS if total >= PARALLEL_MIN_ELEMENTS else 1
        if threads <= 1 or len(units) < 2:
            self._run_units(units, 0)
            return
        # Contiguous shares of about total / threads elements each: a block that straddles a share's
        # end is cut there (at a multiple of 64 elements, so that shares start on a cache line).
        shares: list[list[tuple[Any, ...]]] = [[] for _ in range(threads)]
        share, done = 0, 0
        end = total // threads
        for unit in units:
            kernel, arrays, n_scratch, args, start, stop = unit
            if start is not None:
                while share < threads - 1 and done + (stop - start) > end:
                    cut = start + (end - done) // 64 * 64
                    if cut > start:
                        shares[share].append((kernel, arrays, n_scratch, args, start, cut))
                        done += cut - start
                        start = cut
                    share += 1
                    end = total * (share + 1) // threads
                unit = (kernel, arrays, n_scratch, args, start, stop)
            elif share < threads - 1 and done >= end:
                share += 1
                end = total * (share + 1) // threads
            shares[share].append(unit)
            done += stop if start is None else stop - start
        pool = _worker_pool(threads - 1)
        futures = [pool.submit(self._run_units, share, slot) for slot, share in enumerate(shares) if slot and share]
        try:
            self._run_units(shares[0], 0)
        finally:
            # Wait for every share even if one failed: no thread may still write when step() returns.
            for future in futures:
                future.exception()
        for future in futures:
            future.result()

    def _run_units(self, units: list[tuple[Any, ...]], slot: int) -> None:
        """Run units of work with the scratch buffers of thread slot ``slot``."""
        buffers_for: dict[tuple[Any, ...], list[Any]] = {}
        for kernel, arrays, n_scratch, args, start, stop in units:
            first = arrays[0]
            if start is None:  # the whole array, in its own shape
                size = first.size
                scratch = self._scratch_buffer(get_array_module(first), first, size * n_scratch, slot)
                buffers = [scratch[k * size:(k + 1) * size].reshape(first.shape) for k in range(n_scratch)]
                kernel(*arrays, *buffers, *args)
                continue
            n = stop - start
            key = (first.dtype, n_scratch, n)
            buffers = buffers_for.get(key)
            if buffers is None:
                block = max(1, BLOCK_BYTES // first.dtype.itemsize)
                scratch = self._scratch_buffer(np, first, block * n_scratch, slot)
                buffers = buffers_for[key] = [scratch[k * block:k * block + n] for k in range(n_scratch)]
            kernel(*[None if a is None else a[start:stop] for a in arrays], *buffers, *args)

    def _scratch_buffer(self, xp: Any, like: Any, size: int, slot: int = 0) -> Any:
        """A flat scratch array of at least ``size`` elements of ``like``'s dtype, on its device."""
        key = (xp.__name__, str(device_of(like)), like.dtype.str, slot)
        buffer = self._scratch.get(key)
        if buffer is None or buffer.size < size:
            if is_cupy_array(like):
                with like.device:
                    buffer = xp.empty(size, dtype=like.dtype)
            else:
                buffer = xp.empty(size, dtype=like.dtype)
            self._scratch[key] = buffer
        return buffer[:size]

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


def effective_grad(xp: Any, param: Any, grad: Any, out: Any, weight_decay: float, maximize: bool) -> Any:
    """The gradient an update uses: ``(-grad if maximize else grad) + weight_decay * param``.

    Written into ``out`` when it differs from ``grad`` (which is never modified: it belongs to the
    caller); returns the array to read it from.
    """
    if weight_decay:
        xp.multiply(param, weight_decay, out=out)
        if maximize:
            out -= grad
        else:
            out += grad
        return out
    if maximize:
        xp.negative(grad, out=out)
        return out
    return grad
