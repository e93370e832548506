"""Training checkpoints: model, optimiser, scheduler, epoch, history and random state in one file.

A checkpoint is a single safetensors file. Arrays (weights, buffers, optimiser moments, ...) are
its tensors; everything else (epoch, hyper-parameters, history, random-generator states, extras)
is JSON stored in the file's ``__metadata__`` under the key ``"rosenblatt.checkpoint"``. The file
is written atomically (temporary file, fsync, rename): a crash while saving leaves the previous
checkpoint intact. Nothing is ever pickled, so loading a checkpoint cannot run code.

Array names: ``model/<state_dict key>`` for the model, ``optimizer/...``, ``scheduler/...`` and
``extra/<name>/...`` for arrays found inside those states.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

METADATA_KEY = "rosenblatt.checkpoint"
FORMAT_VERSION = 1


def _encode(value: Any, arrays: dict[str, np.ndarray], path: str) -> Any:
    """``value`` as JSON-ready data; arrays move to ``arrays`` and leave a ``{"__array__": name}``."""
    from rosenblatt.core import Tensor
    from rosenblatt.data.dataset import to_numpy

    if isinstance(value, Tensor) or isinstance(value, np.ndarray) or (hasattr(value, "__cuda_array_interface__")):
        arrays[path] = np.ascontiguousarray(to_numpy(value))
        return {"__array__": path}
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Mapping):
        if all(isinstance(k, str) for k in value) and not any(k.startswith("__") and k.endswith("__") for k in value):
            return {k: _encode(v, arrays, f"{path}/{k}") for k, v in value.items()}
        return {"__items__": [[_encode(k, arrays, f"{path}/key{i}"), _encode(v, arrays, f"{path}/{i}")]
                              for i, (k, v) in enumerate(value.items())]}
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v, arrays, f"{path}/{i}") for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [_encode(v, arrays, f"{path}/{i}") for i, v in enumerate(value)]
    raise TypeError(f"save_checkpoint: cannot store a {type(value).__name__} at '{path}' "
                    "(only arrays, numbers, strings, lists, tuples and dicts; never pickled objects)")


def _decode(value: Any, arrays: Mapping[str, np.ndarray]) -> Any:
    if isinstance(value, list):
        return [_decode(v, arrays) for v in value]
    if isinstance(value, dict):
        if set(value) == {"__array__"}:
            return arrays[value["__array__"]]
        if set(value) == {"__tuple__"}:
            return tuple(_decode(v, arrays) for v in value["__tuple__"])
        if set(value) == {"__items__"}:
            return {_decode(k, arrays): _decode(v, arrays) for k, v in value["__items__"]}
        return {k: _decode(v, arrays) for k, v in value.items()}
    return value


def _state_of(obj: Any) -> Any:
    if obj is None:
        return None
    if isinstance(obj, (list, tuple)):
        return [_state_of(o) for o in obj]
    if hasattr(obj, "state_dict"):
        return obj.state_dict()
    if isinstance(obj, Mapping):
        return dict(obj)
    raise TypeError(f"save_checkpoint: {type(obj).__name__} has no state_dict()")


def save_checkpoint(path: str | os.PathLike, model: Any, optimizer: Any = None, epoch: int = 0, scheduler: Any = None,
                    history: Any = None, rng: bool = True, **extra: Any) -> None:
    """Save everything needed to continue training later, atomically, in one safetensors file.

    Args:
        path: the file to write (its folder is created).
        model: a Module (its ``state_dict``), or a ``state_dict`` mapping.
        optimizer: an optimiser (its ``state_dict`` is saved) or None.
        epoch: the number of completed epochs.
        scheduler: a learning-rate scheduler, a list of them, or None.
        history: a :class:`~rosenblatt.train.History` or a dict of lists.
        rng: also save rosenblatt's global random-generator state (``rb.get_rng_state()``).
        **extra: any further JSON-able values or arrays (e.g. ``loader=loader.state_dict()``).
    """
    from rosenblatt.random import get_rng_state
    from rosenblatt.serialization import save

    arrays: dict[str, np.ndarray] = {}
    model_state = model.state_dict() if hasattr(model, "state_dict") else model
    if not isinstance(model_state, Mapping):
        raise TypeError(f"save_checkpoint: expected a Module or a state_dict, got {type(model).__name__}")
    for key, value in model_state.items():
        _encode(value, arrays, f"model/{key}")
    if history is not None and hasattr(history, "state_dict"):
        history = history.state_dict()
    meta: dict[str, Any] = {
        "format": "rosenblatt.checkpoint",
        "version": FORMAT_VERSION,
        "epoch": int(epoch),
        "model_keys": list(model_state),
        "optimizer": _encode(_state_of(optimizer), arrays, "optimizer"),
        "optimizer_class": None if optimizer is None else type(optimizer).__name__,
        "scheduler": _encode(_state_of(scheduler), arrays, "scheduler"),
        "history": _encode(history, arrays, "history"),
        "rng": get_rng_state() if rng else None,
        "extra": {name: _encode(value, arrays, f"extra/{name}") for name, value in extra.items()},
    }
    try:
        text = json.dumps(meta)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"save_checkpoint: the checkpoint data is not JSON-serialisable ({exc})") from None
    save(arrays, path, metadata={METADATA_KEY: text})


def load_checkpoint(path: str | os.PathLike, model: Any = None, optimizer: Any = None, scheduler: Any = None,
                    restore_rng: bool = False, strict: bool = True) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`; optionally load it into objects.

    Args:
        path: the checkpoint file.
        model: if given, ``model.load_state_dict(...)`` with the saved weights.
        optimizer: if given, its state is restored.
        scheduler: a scheduler (or list) whose state is restored.
        restore_rng: also restore rosenblatt's global random-generator state.
        strict: passed to ``model.load_state_dict``.

    Returns:
        A dict with ``epoch``, ``model`` (state dict of arrays), ``optimizer``, ``scheduler``,
        ``history`` (a :class:`~rosenblatt.train.History` or None), ``rng`` and ``extra``.
    """
    from rosenblatt.serialization import load_arrays

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"load_checkpoint: no checkpoint file '{path}'")
    arrays, metadata = load_arrays(path)
    if METADATA_KEY not in metadata:
        raise ValueError(f"load_checkpoint: '{path}' is a safetensors file but not a rosenblatt checkpoint "
                         "(no checkpoint metadata; load plain weights with rb.load)")
    meta = json.loads(metadata[METADATA_KEY])
    if meta.get("version", 0) > FORMAT_VERSION:
        raise ValueError(f"load_checkpoint: '{path}' has format version {meta['version']}, newer than this "
                         f"rosenblatt understands ({FORMAT_VERSION})")
    model_state = {key: arrays[f"model/{key}"] for key in meta["model_keys"]}
    optimizer_state = _decode(meta.get("optimizer"), arrays)
    scheduler_state = _decode(meta.get("scheduler"), arrays)
    history_state = _decode(meta.get("history"), arrays)
    history = None
    if history_state is not None:
        from rosenblatt.train.history import History

        history = History.from_state_dict(history_state) if "history" in history_state else History(history_state)
    if model is not None:
        model.load_state_dict(model_state, strict=strict)
    if optimizer is not None:
        if optimizer_state is None:
            raise ValueError(f"load_checkpoint: '{path}' holds no optimizer state")
        optimizer.load_state_dict(optimizer_state)
    if scheduler is not None:
        if scheduler_state is None:
            raise ValueError(f"load_checkpoint: '{path}' holds no scheduler state")
        if isinstance(scheduler, (list, tuple)):
            for sched, state in zip(scheduler, scheduler_state):
                sched.load_state_dict(state)
        else:
            scheduler.load_state_dict(scheduler_state)
    if restore_rng and meta.get("rng") is not None:
        from rosenblatt.random import set_rng_state

        set_rng_state(meta["rng"])
    return {
        "epoch": int(meta.get("epoch", 0)),
        "model": model_state,
        "optimizer": optimizer_state,
        "optimizer_class": meta.get("optimizer_class"),
        "scheduler": scheduler_state,
        "history": history,
        "rng": meta.get("rng"),
        "extra": {name: _decode(value, arrays) for name, value in meta.get("extra", {}).items()},
    }
