"""Bring PyTorch weights into rosenblatt.

rosenblatt's parameter names, shapes and layouts are PyTorch's (Linear ``(out, in)``, Conv2d
``(out, in/groups, kh, kw)``, LSTM gates i,f,g,o, batch-norm ``running_mean``/``running_var``), so
a PyTorch ``state_dict`` needs no renaming or transposing: only its tensors must become arrays.
PyTorch is never imported here; its tensors are recognised by their ``detach().cpu().numpy()``
methods. Files are read only in the safetensors format (``safetensors.torch.save_file``), never
from pickled ``.pt`` files, which can run arbitrary code when loaded.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from rosenblatt.core import Tensor
from rosenblatt.serialization import load_arrays

# Wrappers that torch training scripts commonly leave in front of every key.
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")


def _to_array(value: Any, key: str) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, Tensor):
        return np.asarray(value)
    if hasattr(value, "detach") and hasattr(value, "cpu") and hasattr(value, "numpy"):  # a torch tensor
        tensor = value.detach().cpu()
        if str(getattr(tensor, "dtype", "")) == "torch.bfloat16":  # NumPy has no bfloat16
            tensor = tensor.float()
        return tensor.numpy()
    if isinstance(value, (int, float, bool, np.generic, list, tuple)):
        return np.asarray(value)
    raise TypeError(f"from_torch_state_dict: '{key}' holds a {type(value).__name__}, "
                    "expected a torch tensor, a NumPy array or a number")


def _unwrap(state: Mapping[str, Any]) -> Mapping[str, Any]:
    # Checkpoints often nest the weights: {"state_dict": {...}, "epoch": 3} or {"model": {...}}.
    for key in ("state_dict", "model_state_dict", "model"):
        inner = state.get(key)
        if isinstance(inner, Mapping) and not any(hasattr(v, "shape") for k, v in state.items() if k != key):
            return inner
    return state


def _strip_prefixes(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    for prefix in _WRAPPER_PREFIXES:
        if arrays and all(k.startswith(prefix) for k in arrays):
            arrays = {k[len(prefix):]: v for k, v in arrays.items()}
    return arrays


def from_torch_state_dict(sd_or_path: Mapping[str, Any] | str | os.PathLike, model: Any = None,
                          strict: bool = True) -> Any:
    """Convert a PyTorch ``state_dict`` to NumPy arrays, and load it into ``model`` when given.

    Args:
        sd_or_path: a ``state_dict`` (values: torch tensors, NumPy arrays or numbers; a checkpoint
            dict holding it under ``"state_dict"``/``"model"`` works too), or the path of a
            ``.safetensors`` file written from one (``safetensors.torch.save_file``). A ``module.``
            prefix on every key (left by ``torch.nn.DataParallel``) is removed.
        model: a rosenblatt Module with the same parameter names as the PyTorch model.
        strict: with a model, every key must match (as ``Module.load_state_dict``); otherwise the
            keys that did not match are reported in a warning.

    Returns:
        ``model`` (with the weights loaded) when one is given, else a dict of name -> ndarray.

    Raises:
        ValueError: shapes or (with ``strict``) keys do not match; the file is not safetensors.
        TypeError: a value is neither a tensor nor an array.
    """
    if isinstance(sd_or_path, (str, os.PathLike)):
        path = os.fspath(sd_or_path)
        if not os.path.exists(path):
            raise FileNotFoundError(f"from_torch_state_dict: no such file: '{path}'")
        if path.endswith((".pt", ".pth", ".bin", ".ckpt")):
            raise ValueError(
                f"from_torch_state_dict: '{path}' looks like a pickled PyTorch file, which rosenblatt never "
                "loads (unpickling can run code). In PyTorch, write it as safetensors instead: "
                "safetensors.torch.save_file(model.state_dict(), 'weights.safetensors')")
        arrays, _ = load_arrays(path)
    elif isinstance(sd_or_path, Mapping):
        state = _unwrap(sd_or_path)
        arrays = {str(k): _to_array(v, str(k)) for k, v in state.items()}
    else:
        raise TypeError(f"from_torch_state_dict: expected a state_dict (a mapping) or a .safetensors path, "
                        f"got {type(sd_or_path).__name__}")
    arrays = _strip_prefixes(arrays)
    if model is None:
        return arrays
    if not hasattr(model, "load_state_dict"):
        raise TypeError(f"from_torch_state_dict: model must be a rosenblatt Module, got {type(model).__name__}")
    result = model.load_state_dict(arrays, strict=strict)
    if not strict and (result.missing_keys or result.unexpected_keys):
        warnings.warn(f"from_torch_state_dict into {type(model).__name__}: missing keys {result.missing_keys}, "
                      f"unexpected keys {result.unexpected_keys}", stacklevel=2)
    return model
