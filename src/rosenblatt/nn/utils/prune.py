"""``rb.nn.utils.prune``: weight pruning with PyTorch's semantics.

Pruning the parameter ``name`` of a module moves it to ``name + "_orig"`` (still a parameter, still
trained), registers a buffer ``name + "_mask"`` of zeros and ones, and registers a forward pre-hook
that sets the plain attribute ``module.name = name_orig * name_mask`` before every forward. The
gradient reaching ``name_orig`` is therefore the gradient of the masked weight times the mask: pruned
weights stay at zero in the forward pass and get no gradient. ``state_dict`` keys are PyTorch's
(``weight_orig``, ``weight_mask``), so pruned models load across the two frameworks.

Pruning the same parameter again composes the masks as PyTorch's ``PruningContainer``: an
unstructured method chooses among the weights still unpruned (``amount`` is a fraction of those), a
structured one among the channels not yet entirely pruned; the scores are then the current, masked
weights. ``remove`` makes the pruning permanent:
``name`` becomes an ordinary parameter again holding ``name_orig * name_mask``.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable
from typing import Any

import numpy as np

from rosenblatt.backend import get_array_module
from rosenblatt.core import Tensor
from rosenblatt.nn.module import Module
from rosenblatt.nn.parameter import Parameter


def _validate_amount(amount: Any, where: str) -> None:
    if isinstance(amount, bool) or not isinstance(amount, numbers.Real):
        raise TypeError(f"{where}: amount must be an int (a count) or a float in [0, 1] (a fraction), "
                        f"got {type(amount).__name__}")
    if isinstance(amount, numbers.Integral):
        if amount < 0:
            raise ValueError(f"{where}: amount as a count must be >= 0, got {amount}")
    elif not 0.0 <= float(amount) <= 1.0:
        raise ValueError(f"{where}: amount as a fraction must be in [0, 1], got {amount}")


def _nparams_toprune(amount: float | int, size: int, where: str) -> int:
    if isinstance(amount, numbers.Integral):
        if amount > size:
            raise ValueError(f"{where}: amount={amount} is more than the {size} units that can be pruned")
        return int(amount)
    return int(round(float(amount) * size))  # Python's round, as PyTorch


def _smallest(values: Any, k: int) -> Any:
    """Indices of the ``k`` smallest entries of a 1-D array (ties broken by position)."""
    xp = get_array_module(values)
    return xp.argsort(values, kind="stable")[:k]


class BasePruningMethod:
    """A pruning rule: ``compute_mask(t, default_mask)`` gives the new mask for the importance scores
    ``t`` (the unpruned weights unless other scores are passed), and ``apply`` installs it on a module.
    ``PRUNING_TYPE`` is ``"unstructured"``, ``"structured"`` or ``"global"`` and says how the rule
    composes with an earlier mask (see the module docstring)."""

    PRUNING_TYPE = "unstructured"
    _tensor_name: str

    def compute_mask(self, t: Any, default_mask: Any) -> Any:
        raise NotImplementedError

    def __call__(self, module: Module, inputs: tuple) -> None:
        """The forward pre-hook: refresh ``module.<name>`` from ``<name>_orig`` and ``<name>_mask``."""
        object.__setattr__(module, self._tensor_name, self.apply_mask(module))

    def apply_mask(self, module: Module) -> Tensor:
        """``<name>_orig * <name>_mask`` (differentiable in ``<name>_orig``)."""
        orig = getattr(module, self._tensor_name + "_orig")
        mask = getattr(module, self._tensor_name + "_mask")
        return orig * mask

    @classmethod
    def apply(cls, module: Module, name: str, *args: Any, importance_scores: Tensor | None = None,
              **kwargs: Any) -> BasePruningMethod:
        """Prune ``module.<name>`` with a new ``cls(*args, **kwargs)``; returns the method (or the
        container that now holds it, when the parameter was pruned before)."""
        if not isinstance(module, Module):
            raise TypeError(f"prune: expected a Module, got {type(module).__name__}")
        old = _find_method(module, name)
        method = cls(*args, **kwargs)
        method._tensor_name = name
        if old is not None:
            container = PruningContainer(*old) if isinstance(old, PruningContainer) else PruningContainer(old)
            container.add_pruning_method(method)  # a new container: nothing changes if the mask fails
            method = container
            orig = getattr(module, name + "_orig")
        else:
            if name not in module._parameters or module._parameters[name] is None:
                raise ValueError(f"prune: {type(module).__name__} has no parameter named '{name}' "
                                 f"(parameters: {[k for k, v in module._parameters.items() if v is not None]})")
            orig = module._parameters[name]
        # as PyTorch: by default the scores are the current weights, i.e. already masked on re-pruning
        scores = getattr(module, name) if importance_scores is None else importance_scores
        if tuple(scores.shape) != tuple(orig.shape):
            raise ValueError(f"prune: importance_scores must have the shape of '{name}' {tuple(orig.shape)}, "
                             f"got {tuple(scores.shape)}")
        xp = get_array_module(orig.data)
        if old is not None:
            default_mask = getattr(module, name + "_mask").data.copy()
        else:
            default_mask = xp.ones_like(orig.data)
        mask = method.compute_mask(_data(scores), default_mask)
        if old is not None:
            _remove_hook(module, old)
        else:
            del module._parameters[name]
            module.register_parameter(name + "_orig", orig)
        mask = Tensor(xp.asarray(mask, dtype=orig.data.dtype))
        if name + "_mask" in module._buffers:
            module._buffers[name + "_mask"] = mask  # replaced where it stands, as PyTorch's dict keeps order
        else:
            module.register_buffer(name + "_mask", mask)
        object.__setattr__(module, name, method.apply_mask(module))
        module.register_forward_pre_hook(method)
        return method

    def remove(self, module: Module) -> None:
        """Make the pruning permanent: ``<name>`` becomes a parameter holding the masked weights."""
        name = self._tensor_name
        orig = module._parameters.get(name + "_orig")
        if orig is None:
            raise ValueError(f"prune.remove: parameter '{name}' of {type(module).__name__} is not pruned")
        weight = Parameter(orig.data * module._buffers[name + "_mask"].data, requires_grad=orig.requires_grad)
        del module._parameters[name + "_orig"]
        del module._buffers[name + "_mask"]
        module.__dict__.pop(name, None)
        module.register_parameter(name, weight)


def _data(t: Any) -> Any:
    return t.data if isinstance(t, Tensor) else t


class PruningContainer(BasePruningMethod):
    """The pruning methods applied so far to one parameter, in order; the newest computes the mask
    on the part the earlier ones left (weights for unstructured rules, channels for structured)."""

    def __init__(self, *methods: BasePruningMethod) -> None:
        self._pruning_methods: tuple[BasePruningMethod, ...] = ()
        for m in methods:
            self.add_pruning_method(m)

    def add_pruning_method(self, method: BasePruningMethod) -> None:
        if not isinstance(method, BasePruningMethod):
            raise TypeError(f"PruningContainer: expected a pruning method, got {type(method).__name__}")
        if self._pruning_methods and method._tensor_name != self._tensor_name:
            raise ValueError(f"PruningContainer: method for '{method._tensor_name}' added to a container "
                             f"for '{self._tensor_name}'")
        self._tensor_name = method._tensor_name
        self._pruning_methods += (method,)

    def __len__(self) -> int:
        return len(self._pruning_methods)

    def __iter__(self):
        return iter(self._pruning_methods)

    def __getitem__(self, index: int) -> BasePruningMethod:
        return self._pruning_methods[index]

    def compute_mask(self, t: Any, default_mask: Any) -> Any:
        method = self._pruning_methods[-1]
        new_mask = default_mask.copy()
        if method.PRUNING_TYPE == "unstructured":
            keep = default_mask == 1
            new_mask[keep] = method.compute_mask(t[keep], default_mask[keep])
        elif method.PRUNING_TYPE == "structured":
            dim = method.dim if method.dim >= 0 else method.dim + t.ndim
            other = tuple(d for d in range(t.ndim) if d != dim)
            alive = default_mask.sum(axis=other) != 0
            index = [slice(None)] * t.ndim
            index[dim] = alive
            index = tuple(index)
            new_mask[index] = method.compute_mask(t[index], default_mask[index])
        elif method.PRUNING_TYPE == "global":
            new_mask = method.compute_mask(t, default_mask)
        else:
            raise ValueError(f"PruningContainer: unknown PRUNING_TYPE {method.PRUNING_TYPE!r}")
        return new_mask


class Identity(BasePruningMethod):
    """Prunes nothing (a mask of ones): the parameter gets the ``_orig``/``_mask`` form unchanged."""

    PRUNING_TYPE = "unstructured"

    def compute_mask(self, t: Any, default_mask: Any) -> Any:
        return default_mask.copy()


class RandomUnstructured(BasePruningMethod):
    """Zero ``amount`` weights chosen uniformly at random (from ``rb.manual_seed``'s generator)."""

    PRUNING_TYPE = "unstructured"

    def __init__(self, amount: float | int) -> None:
        _validate_amount(amount, "random_unstructured")
        self.amount = amount

    def compute_mask(self, t: Any, default_mask: Any) -> Any:
        from rosenblatt.random import generator

        k = _nparams_toprune(self.amount, t.size, "random_unstructured")
        mask = default_mask.copy()
        if k:
            xp = get_array_module(mask)
            idx = xp.asarray(generator().permutation(t.size)[:k])
            mask.reshape(-1)[idx] = 0
        return mask


class L1Unstructured(BasePruningMethod):
    """Zero the ``amount`` weights of smallest absolute value."""

    PRUNING_TYPE = "unstructured"

    def __init__(self, amount: float | int) -> None:
        _validate_amount(amount, "l1_unstructured")
        self.amount = amount

    def compute_mask(self, t: Any, default_mask: Any) -> Any:
        k = _nparams_toprune(self.amount, t.size, "l1_unstructured")
        mask = default_mask.copy()
        if k:
            xp = get_array_module(t)
            mask.reshape(-1)[_smallest(xp.abs(t).reshape(-1), k)] = 0
        return mask


class LnStructured(BasePruningMethod):
    """Zero the ``amount`` slices along ``dim`` (e.g. output channels for ``dim=0``) of smallest
    ``n``-norm (``n`` an int, ``float('inf')``, ``'fro'`` or ``'nuc'`` as in ``torch.norm``)."""

    PRUNING_TYPE = "structured"

    def __init__(self, amount: float | int, n: int | float | str, dim: int = -1) -> None:
        _validate_amount(amount, "ln_structured")
        self.amount, self.n, self.dim = amount, n, dim

    def compute_mask(self, t: Any, default_mask: Any) -> Any:
        if t.ndim < 1:
            raise ValueError("ln_structured: the parameter must have at least one dimension")
        dim = self.dim if self.dim >= 0 else self.dim + t.ndim
        if not 0 <= dim < t.ndim:
            raise ValueError(f"ln_structured: dim={self.dim} is out of range for a {t.ndim}-d parameter")
        size = t.shape[dim]
        k = _nparams_toprune(self.amount, size, "ln_structured")
        if k == 0:
            return default_mask.copy()
        xp = get_array_module(t)
        moved = xp.moveaxis(t, dim, 0).reshape(size, -1)
        n = self.n
        if n == "fro":
            n = 2
        if n == "nuc":
            raise ValueError("ln_structured: n='nuc' needs a 2-d slice per channel; use an int norm order")
        n = float(n)
        a = xp.abs(moved)
        if np.isinf(n):
            norms = a.max(axis=1)
        elif n == 0:
            norms = (a != 0).sum(axis=1).astype(t.dtype)
        else:
            norms = (a ** n).sum(axis=1) ** (1.0 / n)
        keep_idx = xp.argsort(-norms, kind="stable")[: size - k]
        keep = xp.zeros(size, dtype=bool)
        keep[keep_idx] = True
        shape = [1] * t.ndim
        shape[dim] = size
        return default_mask * keep.reshape(shape).astype(default_mask.dtype)


class CustomFromMask(BasePruningMethod):
    """Multiply the current mask by a given one (also how ``global_unstructured`` installs its masks)."""

    PRUNING_TYPE = "global"

    def __init__(self, mask: Any) -> None:
        self.mask = _data(mask)

    def compute_mask(self, t: Any, default_mask: Any) -> Any:
        if tuple(self.mask.shape) != tuple(default_mask.shape):
            raise ValueError(f"custom_from_mask: mask shape {tuple(self.mask.shape)} does not match the "
                             f"parameter's {tuple(default_mask.shape)}")
        xp = get_array_module(default_mask)
        return default_mask * xp.asarray(self.mask, dtype=default_mask.dtype)


def _find_method(module: Module, name: str) -> BasePruningMethod | None:
    for hook in module._forward_pre_hooks.values():
        if isinstance(hook, BasePruningMethod) and hook._tensor_name == name:
            return hook
    return None


def _remove_hook(module: Module, method: BasePruningMethod) -> None:
    for key, hook in list(module._forward_pre_hooks.items()):
        if hook is method:
            del module._forward_pre_hooks[key]


def identity(module: Module, name: str) -> Module:
    """Reparametrise ``module.<name>`` as ``<name>_orig * <name>_mask`` with a mask of ones."""
    Identity.apply(module, name)
    return module


def random_unstructured(module: Module, name: str, amount: float | int) -> Module:
    """Prune ``amount`` (a count, or a fraction in [0, 1]) of ``module.<name>``'s entries at random."""
    RandomUnstructured.apply(module, name, amount)
    return module


def l1_unstructured(module: Module, name: str, amount: float | int,
                    importance_scores: Tensor | None = None) -> Module:
    """Prune the ``amount`` (a count, or a fraction in [0, 1]) entries of ``module.<name>`` of smallest
    absolute value (or of smallest ``importance_scores``)."""
    L1Unstructured.apply(module, name, amount, importance_scores=importance_scores)
    return module


def ln_structured(module: Module, name: str, amount: float | int, n: int | float | str, dim: int,
                  importance_scores: Tensor | None = None) -> Module:
    """Prune the ``amount`` slices of ``module.<name>`` along ``dim`` of smallest ``n``-norm."""
    LnStructured.apply(module, name, amount, n, dim, importance_scores=importance_scores)
    return module


def custom_from_mask(module: Module, name: str, mask: Any) -> Module:
    """Prune ``module.<name>`` where ``mask`` is zero (composed with any earlier mask)."""
    CustomFromMask.apply(module, name, mask)
    return module


def global_unstructured(parameters: Iterable[tuple[Module, str]], pruning_method: type[BasePruningMethod],
                        importance_scores: dict | None = None, **kwargs: Any) -> None:
    """Prune the parameters ``[(module, name), ...]`` together, as if concatenated into one vector:
    e.g. ``pruning_method=prune.L1Unstructured, amount=0.5`` zeroes the half of all their entries of
    smallest magnitude, however that falls between layers."""
    parameters = list(parameters)
    if not parameters:
        raise ValueError("global_unstructured: parameters is empty; expected (module, name) pairs")
    if not (isinstance(pruning_method, type) and issubclass(pruning_method, BasePruningMethod)):
        raise TypeError("global_unstructured: pruning_method must be a pruning method class such as "
                        f"prune.L1Unstructured, got {pruning_method!r}")
    importance_scores = importance_scores or {}
    scores, masks = [], []
    for module, name in parameters:
        if not isinstance(module, Module) or not isinstance(name, str):
            raise TypeError("global_unstructured: expected (module, name) pairs")
        orig = getattr(module, name, None)  # the current (masked, if pruned) weights, as PyTorch
        if orig is None:
            raise ValueError(f"global_unstructured: {type(module).__name__} has no parameter '{name}'")
        s = importance_scores.get((module, name), orig)
        scores.append(_data(s).reshape(-1))
        m = getattr(module, name + "_mask") if _find_method(module, name) else None
        xp = get_array_module(orig.data)
        masks.append(m.data.reshape(-1) if m is not None else xp.ones(orig.data.size, orig.data.dtype))
    xp = get_array_module(scores[0])
    t, default_mask = xp.concatenate(scores), xp.concatenate(masks)
    method = pruning_method(**kwargs)
    if method.PRUNING_TYPE != "unstructured":
        raise TypeError(f"global_unstructured: {pruning_method.__name__} is {method.PRUNING_TYPE}; "
                        "only unstructured methods can prune across parameters")
    method._tensor_name = "temp"
    container = PruningContainer(method)
    final = container.compute_mask(t, default_mask)
    pointer = 0
    for module, name in parameters:
        shape = getattr(module, name).shape
        n = int(np.prod(shape))
        custom_from_mask(module, name, final[pointer:pointer + n].reshape(shape))
        pointer += n


def remove(module: Module, name: str) -> Module:
    """Make the pruning of ``module.<name>`` permanent and drop ``<name>_orig``, ``<name>_mask`` and
    the hook; ``module.<name>`` is an ordinary parameter again (with zeros where pruned)."""
    method = _find_method(module, name)
    if method is None:
        raise ValueError(f"prune.remove: parameter '{name}' of {type(module).__name__} is not pruned")
    method.remove(module)
    _remove_hook(module, method)
    return module


def is_pruned(module: Module) -> bool:
    """Whether ``module`` or any module inside it has a pruned parameter."""
    return any(isinstance(h, BasePruningMethod) for m in module.modules() for h in m._forward_pre_hooks.values())


__all__ = ["BasePruningMethod", "PruningContainer", "Identity", "RandomUnstructured", "L1Unstructured",
           "LnStructured", "CustomFromMask", "identity", "random_unstructured", "l1_unstructured",
           "ln_structured", "custom_from_mask", "global_unstructured", "remove", "is_pruned"]
