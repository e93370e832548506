"""Training checkpoints: model, optimiser, scheduler, epoch, history and random state in one file.

A checkpoint is a single safetensors file. Arrays (weights, buffers, optimiser moments, ...) are
its tensors; everything else (epoch, hyper-parameters, history, random-generator states, extras)
is JSON stored in the file's ``__metadata__`` under the key ``"rosenblatt.checkpoint"``. The file
is written atomically (temporary file, fsync, rename): a crash while saving leaves the previous
checkpoint intact. Nothing is ever pickled, so loading a checkpoint cannot run code.

Array names: ``model/<state_dict key>`` for the model, ``optimizer/...``, ``scheduler/...`` and
``extra/<name>/...`` for arrays found inside those states.

Loading checks the metadata against a schema (:func:`validate_metadata`) before any array is read
or any object is changed; a problem is a ``ValueError`` naming the file and the field.
"""

from __future__ import annotations

import json
import math
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


class _SchemaError(Exception):
    """A field of the checkpoint metadata that does not fit the schema: ``(field, problem)``."""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _expect(condition: bool, field: str, problem: str) -> None:
    if not condition:
        raise _SchemaError(field, problem)


def _got(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_references(value: Any, arrays: Any, field: str) -> None:
    """Every ``{"__array__": name}`` names an array of the file; tuples and item lists are well formed."""
    stack = [(value, field)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, list):
            stack.extend((v, f"{where}[{i}]") for i, v in enumerate(item))
        elif isinstance(item, dict):
            if set(item) == {"__array__"}:
                name = item["__array__"]
                _expect(isinstance(name, str) and name in arrays, where, f"refers to an array {_got(name)} "
                        "that the file does not hold")
            elif set(item) == {"__tuple__"}:
                _expect(isinstance(item["__tuple__"], list), where, "a tuple must be stored as a list")
                stack.append((item["__tuple__"], where))
            elif set(item) == {"__items__"}:
                pairs = item["__items__"]
                _expect(isinstance(pairs, list) and all(isinstance(p, list) and len(p) == 2 for p in pairs),
                        where, "a dict with non-string keys must be stored as a list of [key, value] pairs")
                stack.append((pairs, where))
            else:
                stack.extend((v, f"{where}.{k}") for k, v in item.items())


def _check_optimizer(state: Any) -> None:
    _expect(isinstance(state, dict) and isinstance(state.get("state"), dict)
            and isinstance(state.get("param_groups"), list), "optimizer",
            "expected {'state': {...}, 'param_groups': [...]}")
    for i, group in enumerate(state["param_groups"]):
        where = f"optimizer.param_groups[{i}]"
        _expect(isinstance(group, dict), where, f"expected a dict, got {_got(group)}")
        params = group.get("params")
        _expect(isinstance(params, list) and all(_is_int(p) and p >= 0 for p in params), f"{where}.params",
                f"expected a list of parameter indices, got {_got(params)}")
        for key, value in group.items():
            numbers = value if isinstance(value, list) and key != "params" else [value]
            for number in numbers:
                if _is_number(number):
                    _expect(math.isfinite(number), f"{where}.{key}", f"must be a finite number, got {number}")
                if key == "lr":
                    _expect(_is_number(number) and number >= 0, f"{where}.lr",
                            f"must be a number >= 0, got {_got(number)}")


def _check_history(history: Any) -> int:
    """The number of epochs a saved History holds (all of its lists have that length)."""
    if isinstance(history, dict) and "history" in history:
        epochs, values = history.get("epoch"), history["history"]
        _expect(isinstance(epochs, list) and all(_is_int(e) and e >= 0 for e in epochs), "history.epoch",
                f"expected a list of epoch numbers >= 0, got {_got(epochs)}")
        _expect(epochs == sorted(set(epochs)), "history.epoch", "epoch numbers must increase")
        field = "history.history"
    else:
        epochs, values, field = None, history, "history"
    _expect(isinstance(values, dict), field, f"expected a dict of lists of numbers, got {_got(values)}")
    lengths = set()
    for key, series in values.items():
        _expect(isinstance(series, list) and all(_is_number(v) for v in series), f"{field}.{key}",
                f"expected a list of numbers, got {_got(series)}")
        lengths.add(len(series))
    if epochs is not None:
        lengths.add(len(epochs))
    _expect(len(lengths) <= 1, field, f"its lists have different lengths {sorted(lengths)}")
    return lengths.pop() if lengths else 0


def _check_rng(state: Any) -> None:
    _expect(isinstance(state, dict) and isinstance(state.get("bit_generator"), str), "rng",
            "expected a NumPy bit-generator state")
    bit_generator = getattr(np.random, state["bit_generator"], None)
    _expect(isinstance(bit_generator, type) and issubclass(bit_generator, np.random.BitGenerator), "rng",
            f"unknown bit generator {_got(state['bit_generator'])}")
    try:  # NumPy checks the state's layout when it is set: try it on a throwaway generator
        bit_generator().state = state
    except (TypeError, ValueError, KeyError, OverflowError) as exc:
        raise _SchemaError("rng", f"not a valid {state['bit_generator']} state ({exc})") from None


def _check_extra(extra: Any) -> None:
    _expect(isinstance(extra, dict), "extra", f"expected a dict, got {_got(extra)}")
    trainer = extra.get("trainer")
    if trainer is not None:
        _expect(isinstance(trainer, dict), "extra.trainer", f"expected a dict, got {_got(trainer)}")
        for key in ("seed", "epochs"):
            value = trainer.get(key)
            _expect(value is None or (_is_int(value) and value >= 0), f"extra.trainer.{key}",
                    f"expected an integer >= 0, got {_got(value)}")
    callbacks = extra.get("callbacks")
    if callbacks is not None:
        _expect(isinstance(callbacks, list), "extra.callbacks", f"expected a list, got {_got(callbacks)}")
        for i, entry in enumerate(callbacks):
            _expect(isinstance(entry, dict) and isinstance(entry.get("class"), str)
                    and isinstance(entry.get("state", {}), dict), f"extra.callbacks[{i}]",
                    f"expected {{'class': name, 'state': {{...}}}}, got {_got(entry)}")
    loader = extra.get("loader")
    if loader is not None:
        _expect(isinstance(loader, dict), "extra.loader", f"expected a dict, got {_got(loader)}")
        _expect(_is_int(loader.get("epoch", 0)) and loader.get("epoch", 0) >= 0, "extra.loader.epoch",
                f"expected an integer >= 0, got {_got(loader.get('epoch'))}")
        seed = loader.get("seed")
        _expect(seed is None or (_is_int(seed) and seed >= 0), "extra.loader.seed",
                f"expected an integer >= 0 or null, got {_got(seed)}")


def validate_metadata(meta: Any, arrays: Any) -> None:
    """Check checkpoint metadata against the schema; ``arrays``: the names of the file's arrays.

    Raises ``_SchemaError(field, problem)``. A Trainer checkpoint (one with ``extra.trainer``) must
    also hold the optimiser state and one history entry per completed epoch, since resuming from it
    would otherwise silently restart the optimiser or misnumber the epochs.
    """
    from rosenblatt.serialization import _depth

    _expect(isinstance(meta, dict), "(top level)", f"expected a JSON object, got {type(meta).__name__}")
    _expect(_depth(meta) <= 64, "(top level)", "nests deeper than 64 levels")
    _expect(meta.get("format") == "rosenblatt.checkpoint", "format",
            f"expected 'rosenblatt.checkpoint', got {_got(meta.get('format'))}")
    version = meta.get("version")
    _expect(_is_int(version) and 1 <= version, "version", f"expected an integer >= 1, got {_got(version)}")
    _expect(version <= FORMAT_VERSION, "version",
            f"{version} is newer than this rosenblatt understands ({FORMAT_VERSION})")
    epoch = meta.get("epoch")
    _expect(_is_int(epoch) and epoch >= 0, "epoch", f"expected an integer >= 0, got {_got(epoch)}")
    keys = meta.get("model_keys")
    _expect(isinstance(keys, list) and all(isinstance(k, str) for k in keys), "model_keys",
            f"expected a list of names, got {_got(keys)}")
    _expect(len(set(keys)) == len(keys), "model_keys", "names repeat")
    missing = [k for k in keys if f"model/{k}" not in arrays]
    _expect(not missing, "model_keys", f"the file holds no array for {', '.join(missing[:5])}")
    for field in ("optimizer", "scheduler", "history", "extra"):
        _check_references(meta.get(field), arrays, field)
    optimizer, optimizer_class = meta.get("optimizer"), meta.get("optimizer_class")
    _expect(optimizer_class is None or isinstance(optimizer_class, str), "optimizer_class",
            f"expected a class name, got {_got(optimizer_class)}")
    _expect((optimizer is None) == (optimizer_class is None), "optimizer",
            "the optimiser state and optimizer_class must be given together")
    if optimizer is not None:
        _check_optimizer(optimizer)
    scheduler = meta.get("scheduler")
    _expect(scheduler is None or isinstance(scheduler, dict)
            or (isinstance(scheduler, list) and all(isinstance(s, dict) for s in scheduler)), "scheduler",
            f"expected a scheduler state, a list of them or null, got {_got(scheduler)}")
    history = meta.get("history")
    history_epochs = None if history is None else _check_history(history)
    if meta.get("rng") is not None:
        _check_rng(meta["rng"])
    extra = meta.get("extra", {})
    _check_extra(extra)
    trainer = extra.get("trainer")
    if trainer is not None:
        _expect(optimizer is not None, "optimizer", "a Trainer checkpoint must hold the optimiser state "
                "(resuming without it would silently restart the optimiser)")
        _expect(history_epochs == epoch, "epoch", f"{epoch} completed epochs, but the history holds "
                f"{'none' if history_epochs is None else history_epochs}")
        if trainer.get("epochs") is not None:
            _expect(epoch <= trainer["epochs"], "epoch", f"{epoch} is more than the {trainer['epochs']} epochs "
                    "the run was asked for")


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
    from rosenblatt.serialization import SafetensorsFile

    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"load_checkpoint: no checkpoint file '{path}'")
    with SafetensorsFile(path) as file:
        metadata = file.metadata
        if METADATA_KEY not in metadata:
            raise ValueError(f"load_checkpoint: '{path}' is a safetensors file but not a rosenblatt checkpoint "
                             "(no checkpoint metadata; load plain weights with rb.load)")
        try:
            meta = json.loads(metadata[METADATA_KEY])
        except (ValueError, RecursionError):
            raise ValueError(f"load_checkpoint: '{path}' has checkpoint metadata that is not valid JSON") from None
        try:
            validate_metadata(meta, file.tensors)
        except _SchemaError as exc:
            field, problem = exc.args
            raise ValueError(f"load_checkpoint: '{path}' has an invalid field '{field}': {problem}") from None
        arrays = {name: file.read(name) for name in file.tensors}
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
