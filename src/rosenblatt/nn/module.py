"""``Module``: the base class of every layer and model, and the containers built on it.

Parameters, buffers and sub-modules are registered by plain attribute assignment, in insertion
order, and named with PyTorch's dotted paths (``features.0.weight``), so ``state_dict()`` keys are
the same as PyTorch's and a PyTorch ``state_dict`` converted to NumPy loads directly.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, NamedTuple

import numpy as np

from rosenblatt.backend import Device, get_array_module, to_device
from rosenblatt.core import Tensor, mark_modified, no_grad
from rosenblatt.nn.parameter import Parameter


class IncompatibleKeys(NamedTuple):
    """What ``load_state_dict(strict=False)`` could not match."""

    missing_keys: list[str]
    unexpected_keys: list[str]


class Module:
    """Base class for layers and models: subclass it, assign layers and parameters in
    ``__init__``, and write ``forward``. Call the module (``model(x)``), not ``forward``."""

    training: bool

    def __init__(self) -> None:
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent_buffers", set())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_forward_hooks", OrderedDict())
        object.__setattr__(self, "_forward_pre_hooks", OrderedDict())

    # -- registration by attribute --------------------------------------------------------------
    def __setattr__(self, name: str, value: Any) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(
                f"cannot assign '{name}' before Module.__init__() is called (call super().__init__() first)"
            )
        params, buffers, modules = self._parameters, self._buffers, self._modules
        if isinstance(value, Parameter):
            self._discard(name)
            params[name] = value
        elif isinstance(value, Module):
            self._discard(name)
            modules[name] = value
        elif name in params:
            if value is not None:
                raise TypeError(
                    f"cannot assign {type(value).__name__} to parameter '{name}' of {type(self).__name__}: "
                    "expected an nn.Parameter or None"
                )
            params[name] = None
        elif name in buffers:
            if value is not None and not isinstance(value, Tensor):
                value = Tensor(value)
            buffers[name] = value
        elif name in modules:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} to sub-module '{name}': expected a Module or None")
            modules[name] = None
        else:
            object.__setattr__(self, name, value)

    def _discard(self, name: str) -> None:
        for registry in (self._parameters, self._buffers, self._modules):
            registry.pop(name, None)
        self.__dict__.pop(name, None)

    def __getattr__(self, name: str) -> Any:
        # Only called when normal lookup fails: look in the registries.
        d = self.__dict__
        for registry in ("_parameters", "_buffers", "_modules"):
            if registry in d and name in d[registry]:
                return d[registry][name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name: str) -> None:
        for registry in (self._parameters, self._buffers, self._modules):
            if name in registry:
                del registry[name]
                self._non_persistent_buffers.discard(name)
                return
        object.__delattr__(self, name)

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Register ``param`` (or None, a placeholder) under ``name``."""
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"register_parameter: expected an nn.Parameter, got {type(param).__name__}")
        self._discard(name)
        self._parameters[name] = param

    def register_buffer(self, name: str, tensor: Any, persistent: bool = True) -> None:
        """Register a non-learnable tensor (e.g. BatchNorm's running mean): saved in the
        ``state_dict`` (unless ``persistent=False``) and moved by ``to()``."""
        if tensor is not None and not isinstance(tensor, Tensor):
            tensor = Tensor(tensor)
        self._discard(name)
        self._buffers[name] = tensor
        if not persistent:
            self._non_persistent_buffers.add(name)

    def add_module(self, name: str, module: Module | None) -> None:
        """Register a child module under ``name``."""
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module: expected a Module, got {type(module).__name__}")
        if "." in name or not name:
            raise KeyError(f"add_module: invalid module name {name!r}")
        self._discard(name)
        self._modules[name] = module

    register_module = add_module

    # -- calling --------------------------------------------------------------------------------
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """The computation of this module; every subclass defines it (call the module, not ``forward``)."""
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._forward_pre_hooks:
            for hook in list(self._forward_pre_hooks.values()):
                result = hook(self, args)
                if result is not None:
                    args = result if isinstance(result, tuple) else (result,)
        out = self.forward(*args, **kwargs)
        if self._forward_hooks:
            for hook in list(self._forward_hooks.values()):
                result = hook(self, args, out)
                if result is not None:
                    out = result
        return out

    def register_forward_hook(self, hook: Callable[[Module, tuple, Any], Any]) -> _HookHandle:
        """Call ``hook(module, inputs, output)`` after every forward; returns a handle with ``remove()``."""
        handle = _HookHandle(self._forward_hooks)
        self._forward_hooks[handle.id] = hook
        return handle

    def register_forward_pre_hook(self, hook: Callable[[Module, tuple], Any]) -> _HookHandle:
        """Call ``hook(module, inputs)`` before every forward (a non-None result replaces the
        inputs, as in PyTorch); returns a handle with ``remove()``. Pruning works through one."""
        handle = _HookHandle(self._forward_pre_hooks)
        self._forward_pre_hooks[handle.id] = hook
        return handle

    # -- traversal ------------------------------------------------------------------------------
    def named_modules(self, prefix: str = "", memo: set[int] | None = None) -> Iterator[tuple[str, Module]]:
        """``(name, module)`` for this module and every descendant, each once, depth first."""
        memo = set() if memo is None else memo
        if id(self) in memo:
            return
        memo.add(id(self))
        yield prefix, self
        for name, child in self._modules.items():
            if child is not None:
                yield from child.named_modules(f"{prefix}.{name}" if prefix else name, memo)

    def modules(self) -> Iterator[Module]:
        """This module and every submodule, depth first."""
        for _, m in self.named_modules():
            yield m

    def named_children(self) -> Iterator[tuple[str, Module]]:
        """``(name, module)`` for each direct submodule, in registration order."""
        for name, child in self._modules.items():
            if child is not None:
                yield name, child

    def children(self) -> Iterator[Module]:
        """The direct submodules, in registration order."""
        for _, child in self.named_children():
            yield child

    def _named_members(self, registry: str, prefix: str, recurse: bool) -> Iterator[tuple[str, Tensor]]:
        seen: set[int] = set()
        modules = self.named_modules(prefix) if recurse else [(prefix, self)]
        for module_prefix, module in modules:
            for name, value in getattr(module, registry).items():
                if value is None or id(value) in seen:
                    continue
                seen.add(id(value))
                yield (f"{module_prefix}.{name}" if module_prefix else name), value

    def named_parameters(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple[str, Parameter]]:
        """``(dotted_name, parameter)`` pairs in registration order (shared parameters once)."""
        yield from self._named_members("_parameters", prefix, recurse)  # type: ignore[misc]

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        """Every parameter (of submodules too unless ``recurse=False``), each once, in ``state_dict`` order."""
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple[str, Tensor]]:
        """``(dotted_name, buffer)`` for every registered buffer (``running_mean``, ...)."""
        yield from self._named_members("_buffers", prefix, recurse)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        """Every registered buffer: state that is saved but not trained."""
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def num_parameters(self, trainable_only: bool = False) -> int:
        """Total number of scalar parameters (the lecture's weight count)."""
        return int(sum(p.data.size for p in self.parameters() if p.requires_grad or not trainable_only))

    # -- modes and gradients --------------------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        """Training mode (dropout and noise active, batch norm uses batch statistics)."""
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self) -> Module:
        """Evaluation mode: ``train(False)``."""
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        """Freeze (False) or unfreeze every parameter."""
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the gradients of all parameters (to None by default, as PyTorch)."""
        for p in self.parameters():
            if p.grad is None:
                continue
            if set_to_none:
                p.grad = None
            else:
                p.grad.data.fill(0)

    def apply(self, fn: Callable[[Module], Any]) -> Module:
        """Call ``fn`` on every sub-module (children first) and on this module."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    # -- devices and dtypes ---------------------------------------------------------------------
    def to(self, target: Any = None, *, memory_format: Any = None) -> Module:
        """Move parameters and buffers to a device (``"cuda"``) or cast them to a floating dtype,
        in place (parameters stay the same objects, so optimisers keep working).

        ``memory_format`` (``rb.channels_last``, as PyTorch users write for speed) is accepted and
        leaves the parameters as they are: the convolution kernels choose the weights' layouts
        themselves, and with the oneDNN kernels a model's activations between standalone layers are
        channels-last already. ``x.to(memory_format=rb.channels_last)`` lays out an input.
        """
        from rosenblatt.core import memory_format as _memory_format

        if memory_format is not None and not isinstance(memory_format, _memory_format):
            raise TypeError(f"Module.to: memory_format must be rb.channels_last, rb.contiguous_format or "
                            f"rb.preserve_format, got {memory_format!r}")
        if target is None:
            if memory_format is None:
                raise TypeError("Module.to: expected a device, a floating dtype or memory_format=")
            return self
        if isinstance(target, (str, Device)):
            device = Device(target)

            def convert(a):
                return to_device(a, device)
        else:
            dtype = np.dtype(target)
            if dtype.kind != "f":
                raise TypeError(f"Module.to: expected a device or a floating dtype, got {target!r}")

            def convert(a):
                return a.astype(dtype) if a.dtype.kind == "f" else a

        with no_grad():
            for t in list(self.parameters()) + list(self.buffers()):
                t.data = convert(t.data)
                if t.grad is not None:
                    t.grad = Tensor(convert(t.grad.data))
        return self

    def float(self) -> Module:
        """Cast every floating parameter and buffer to float32."""
        return self.to(np.float32)

    def double(self) -> Module:
        """Cast every floating parameter and buffer to float64."""
        return self.to(np.float64)

    def cpu(self) -> Module:
        """Move every parameter and buffer to the CPU."""
        return self.to("cpu")

    def cuda(self, index: int = 0) -> Module:
        """Move every parameter and buffer to GPU ``index`` (needs CuPy)."""
        return self.to(f"cuda:{index}")

    # -- state ----------------------------------------------------------------------------------
    def state_dict(self, prefix: str = "", keep_vars: bool = False) -> OrderedDict[str, Tensor]:
        """Parameters and persistent buffers by dotted name (tensors sharing the module's memory)."""
        out: OrderedDict[str, Tensor] = OrderedDict()
        for module_prefix, module in self.named_modules(prefix.rstrip(".")):
            pre = f"{module_prefix}." if module_prefix else ""
            for name, p in module._parameters.items():
                if p is not None:
                    out[pre + name] = p if keep_vars else p.detach()
            for name, b in module._buffers.items():
                if b is not None and name not in module._non_persistent_buffers:
                    out[pre + name] = b if keep_vars else b.detach()
        return out

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> IncompatibleKeys:
        """Copy values (tensors or arrays, e.g. a PyTorch ``state_dict`` converted to NumPy) into
        the parameters and buffers. Shapes must match; with ``strict=True`` keys must match too.
        Every problem is reported at once, with expected and actual shapes."""
        own = self.state_dict(keep_vars=True)
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        problems = []
        for key, target in own.items():
            if key not in state_dict:
                continue
            value = state_dict[key]
            array = _as_host_or_device_array(value)
            if tuple(array.shape) != target.shape:
                problems.append(f"  {key}: expected shape {target.shape}, got {tuple(array.shape)}")
        if strict and (missing or unexpected):
            if missing:
                problems.append("  missing keys: " + ", ".join(missing))
            if unexpected:
                problems.append("  unexpected keys: " + ", ".join(unexpected))
        if problems:
            if missing and all(f"model/{k}" in state_dict for k in missing):
                problems.append("  these are the keys of a training checkpoint: load it with "
                                "rb.io.load_checkpoint(path, model) (or pass it to Trainer.fit(resume_from=path))")
            raise ValueError(f"load_state_dict into {type(self).__name__} failed:\n" + "\n".join(problems))
        with no_grad():
            for key, target in own.items():
                if key in state_dict:
                    array = _as_host_or_device_array(state_dict[key])
                    xp = get_array_module(target.data)
                    if get_array_module(array) is not xp:
                        array = to_device(array, target.device)
                    target.data[...] = xp.asarray(array).astype(target.data.dtype, copy=False)
                    mark_modified(target)
        return IncompatibleKeys(missing, unexpected)

    # -- printing -------------------------------------------------------------------------------
    def extra_repr(self) -> str:
        """One line of this module's settings, shown by ``repr``; layers override it."""
        return ""

    def __repr__(self) -> str:
        lines = []
        extra = self.extra_repr()
        for name, child in self._modules.items():
            child_repr = repr(child).replace("\n", "\n  ")
            lines.append(f"({name}): {child_repr}")
        head = f"{type(self).__name__}("
        if not lines:
            return head + extra + ")"
        body = ([extra] if extra else []) + lines
        return head + "\n  " + "\n  ".join(body) + "\n)"

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(self._parameters) | set(self._buffers) | set(self._modules))

    def summary(self, input_shape: Any, dtype: Any = np.float32, print_fn: Callable[[str], Any] | None = print) -> str:
        """Print and return a table of the layers: name, type, output shape and parameter count.

        ``input_shape`` is the shape of one input batch, batch dimension included (e.g.
        ``(1, 784)``), or a list of shapes for a model with several inputs. A batch of zeros of
        ``dtype`` runs through the model in evaluation mode without recording a graph (the
        running statistics of batch norm are untouched, every module's mode is restored after).
        Rows are the modules that hold parameters themselves or have no children. The totals
        count every parameter once (shared ones too) and equal ``sum(p.numel())``.
        """
        shapes = [tuple(input_shape)] if all(isinstance(n, (int, np.integer)) for n in input_shape) \
            else [tuple(shape) for shape in input_shape]
        rows: list[tuple[str, str, str, int]] = []
        handles = []

        def record(name: str) -> Callable[[Module, tuple, Any], None]:
            def hook(module: Module, inputs: tuple, output: Any) -> None:
                own = sum(int(p.data.size) for p in module._parameters.values() if p is not None)
                rows.append((name or "(model)", type(module).__name__, _describe_shape(output), own))
            return hook

        for name, module in self.named_modules():
            is_leaf = not any(True for _ in module.children())
            if is_leaf or any(p is not None for p in module._parameters.values()):
                handles.append(module.register_forward_hook(record(name)))
        modes = [(m, m.training) for m in self.modules()]
        first = next(iter(self.parameters()), None)
        try:
            self.eval()
            with no_grad():
                inputs = []
                for shape in shapes:
                    array = np.zeros(shape, dtype=dtype)
                    if first is not None and first.device.type != "cpu":
                        array = to_device(array, first.device)
                    inputs.append(Tensor(array))
                self(*inputs)
        finally:
            for handle in handles:
                handle.remove()
            for module, mode in modes:
                object.__setattr__(module, "training", mode)

        total = sum(int(p.data.size) for p in self.parameters())
        trainable = sum(int(p.data.size) for p in self.parameters() if p.requires_grad)
        header = ("Layer (type)", "Output shape", "Param #")
        cells = [(f"{name} ({kind})", shape, f"{count:,}") for name, kind, shape, count in rows]
        widths = [max(len(header[i]), *(len(c[i]) for c in cells)) if cells else len(header[i]) for i in range(3)]
        rule = "=" * (sum(widths) + 6)

        def line(cols: tuple[str, str, str]) -> str:
            return f"{cols[0]:<{widths[0]}}   {cols[1]:<{widths[1]}}   {cols[2]:>{widths[2]}}"

        lines = [f"{type(self).__name__} summary, input {', '.join(str(s) for s in shapes)}", rule, line(header), rule]
        lines += [line(c) for c in cells]
        lines += [rule, f"Total params: {total:,}", f"Trainable params: {trainable:,}",
                  f"Non-trainable params: {total - trainable:,}", rule]
        text = "\n".join(lines)
        if print_fn is not None:
            print_fn(text)
        return text


def _describe_shape(output: Any) -> str:
    """``(N, 10)`` for a tensor; a list of shapes for tuples of tensors (e.g. an RNN's output)."""
    if isinstance(output, Tensor) or hasattr(output, "shape"):
        return str(tuple(output.shape))
    if isinstance(output, (tuple, list)):
        return "[" + ", ".join(_describe_shape(o) for o in output) + "]"
    return type(output).__name__


def _as_host_or_device_array(value: Any) -> Any:
    if isinstance(value, Tensor):
        return value.data
    if hasattr(value, "detach") and hasattr(value, "cpu") and hasattr(value, "numpy"):  # a torch tensor
        return value.detach().cpu().numpy()
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return value
    return np.asarray(value)


class _HookHandle:
    _next_id = 0

    def __init__(self, registry: dict) -> None:
        self.registry = registry
        self.id = _HookHandle._next_id
        _HookHandle._next_id += 1

    def remove(self) -> None:
        self.registry.pop(self.id, None)


# -- containers -----------------------------------------------------------------------------------


class Sequential(Module):
    """Modules applied one after another: ``Sequential(Linear(4, 8), ReLU(), Linear(8, 1))``.

    Indexable (``seq[0]``), sliceable (``seq[1:]`` is a Sequential) and iterable. An
    ``OrderedDict`` of named modules gives the children those names.
    """

    def __init__(self, *modules: Module | Mapping[str, Module]) -> None:
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], Mapping):
            for name, module in modules[0].items():
                self.add_module(name, module)
        else:
            for i, module in enumerate(modules):
                self.add_module(str(i), module)

    def forward(self, x: Any) -> Any:
        from rosenblatt.nn._fusion import run_sequence  # Conv2d, BatchNorm2d[, ReLU] runs as one node

        return run_sequence(list(self._modules.values()), x)

    def __getitem__(self, index: int | slice) -> Any:
        items = list(self._modules.items())
        if isinstance(index, slice):
            return Sequential(OrderedDict(items[index]))
        try:
            return items[index][1]
        except IndexError:
            raise IndexError(f"Sequential: index {index} out of range for {len(items)} modules") from None

    def __setitem__(self, index: int, module: Module) -> None:
        name = list(self._modules)[index]
        self.add_module(name, module)

    def __delitem__(self, index: int | slice) -> None:
        names = list(self._modules)
        for name in names[index] if isinstance(index, slice) else [names[index]]:
            del self._modules[name]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def append(self, module: Module) -> Sequential:
        """Add ``module`` at the end (named by its position)."""
        self.add_module(str(len(self._modules)), module)
        return self


class ModuleList(Module):
    """A list of modules whose parameters are registered (``layers.0.weight``, ...)."""

    def __init__(self, modules: Iterable[Module] | None = None) -> None:
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def _renumber(self, modules: list[Module]) -> None:
        self._modules.clear()
        for i, m in enumerate(modules):
            self.add_module(str(i), m)

    def __getitem__(self, index: int | slice) -> Any:
        values = list(self._modules.values())
        if isinstance(index, slice):
            return ModuleList(values[index])
        return values[index]

    def __setitem__(self, index: int, module: Module) -> None:
        values = list(self._modules.values())
        values[index] = module
        self._renumber(values)

    def __delitem__(self, index: int | slice) -> None:
        values = list(self._modules.values())
        del values[index]
        self._renumber(values)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(list(self._modules.values()))

    def append(self, module: Module) -> ModuleList:
        """Add ``module`` at the end (named by its position)."""
        self.add_module(str(len(self._modules)), module)
        return self

    def extend(self, modules: Iterable[Module]) -> ModuleList:
        """Append each of ``modules`` in order."""
        for m in modules:
            self.append(m)
        return self

    def insert(self, index: int, module: Module) -> None:
        """Insert ``module`` before position ``index`` (the later ones are renamed by position)."""
        values = list(self._modules.values())
        values.insert(index, module)
        self._renumber(values)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("ModuleList has no forward(); iterate over it in your own forward")


class ModuleDict(Module):
    """A dict of modules whose parameters are registered under their keys."""

    def __init__(self, modules: Mapping[str, Module] | Iterable[tuple[str, Module]] | None = None) -> None:
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key: str) -> Module:
        return self._modules[key]

    def __setitem__(self, key: str, module: Module) -> None:
        self.add_module(key, module)

    def __delitem__(self, key: str) -> None:
        del self._modules[key]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[str]:
        return iter(self._modules)

    def __contains__(self, key: str) -> bool:
        return key in self._modules

    def keys(self):
        """The names, in insertion order."""
        return self._modules.keys()

    def values(self):
        """The modules, in insertion order."""
        return self._modules.values()

    def items(self):
        """``(name, module)`` pairs, in insertion order."""
        return self._modules.items()

    def update(self, modules: Mapping[str, Module] | Iterable[tuple[str, Module]]) -> None:
        """Add or replace modules from a mapping or from ``(name, module)`` pairs."""
        items = modules.items() if isinstance(modules, Mapping) else modules
        for key, module in items:
            self.add_module(key, module)

    def pop(self, key: str) -> Module:
        """Remove the module named ``key`` and return it."""
        return self._modules.pop(key)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("ModuleDict has no forward(); index it in your own forward")
