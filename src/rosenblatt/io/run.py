"""Reload a model trained by ``rosenblatt train``, with the preprocessing its inputs went through.

A run folder holds ``config.json`` (the model's name and constructor arguments, and under
``"preprocessing"`` what was done to each input before the model saw it) and ``model.safetensors``
(the weights). :func:`load_run` rebuilds the model and returns a ``preprocess`` function that
applies the recorded steps to new raw inputs, in the order training applied them:

1. ``input_shape``: inputs are reshaped to ``(N, *input_shape)`` (so flat rows of 64 digit pixels
   and ``(N, 1, 8, 8)`` images are both accepted) and cast to float32;
2. ``standardize``: ``(x - mean) / std`` with the training set's per-feature statistics (CSV tables);
3. ``upsample``: each pixel repeated ``upsample`` times along height and width (e.g. 8x8 digits
   become 16x16 for LeNet-5);
4. ``flatten``: images become rows of features (the MLP).
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CHECKPOINT_NAME = "checkpoint.safetensors"


def preprocess(x: Any, preprocessing: dict[str, Any]) -> np.ndarray:
    """Apply a run's recorded ``preprocessing`` (see the module docstring) to raw inputs ``x``."""
    x = np.asarray(x, dtype=np.float32)
    shape = preprocessing.get("input_shape")
    if shape:
        shape = tuple(int(n) for n in shape)
        per_sample = int(np.prod(shape))
        # (N, *shape), or N flat rows, or (N, H, W) for one channel, or one sample alone
        if x.size != per_sample and (x.ndim == 0 or x.shape[0] * per_sample != x.size):
            raise ValueError(f"load_run: inputs of shape {x.shape} do not hold samples of shape {shape} "
                             f"({per_sample} values each)")
        x = x.reshape((x.size // per_sample, *shape))
    standardize = preprocessing.get("standardize")
    if standardize:
        mean = np.asarray(standardize["mean"], dtype=np.float32)
        std = np.asarray(standardize["std"], dtype=np.float32)
        x = (x - mean) / std
    factor = int(preprocessing.get("upsample", 1))
    if factor > 1:
        x = x.repeat(factor, axis=-2).repeat(factor, axis=-1)
    if preprocessing.get("flatten"):
        x = x.reshape(x.shape[0], -1)
    return np.ascontiguousarray(x, dtype=np.float32)


def build_model(name: str, model_config: dict[str, Any]) -> Any:
    """The untrained model ``rosenblatt train --model name`` builds from ``model_config``."""
    import rosenblatt.models as models

    if name == "mlp":
        return models.MLP(list(model_config["sizes"]))
    return models.get_model(name, **model_config)


def load_run(run_dir: str | os.PathLike) -> tuple[Any, dict[str, Any]]:
    """Rebuild the model of a ``rosenblatt train`` run folder, with its trained weights.

    Returns:
        ``(model, info)``: the model in eval mode, and a dict with ``config`` (the run's
        config.json), ``preprocessing`` (the recorded steps), ``preprocess`` (a function: raw inputs
        -> the model's inputs, see :func:`preprocess`), ``task`` (``"classification"`` or
        ``"regression"``), ``num_classes`` and ``metrics`` (metrics.json, or None).

    Example::

        model, info = rb.io.load_run("runs/digits")
        logits = model(rb.tensor(info["preprocess"](images)))
    """
    import rosenblatt as rb

    run_dir = os.fspath(run_dir)
    config_path = os.path.join(run_dir, CONFIG_NAME)
    if not os.path.isfile(config_path):
        raise FileNotFoundError(f"load_run: no {CONFIG_NAME} in '{run_dir}' (is it a folder written by "
                                f"`rosenblatt train`?)")
    with open(config_path) as f:
        config = json.load(f)
    for key in ("model", "model_config"):
        if key not in config:
            raise ValueError(f"load_run: {config_path} has no '{key}' entry")
    model = build_model(config["model"], config["model_config"])
    weights = os.path.join(run_dir, WEIGHTS_NAME)
    if os.path.isfile(weights):
        state = rb.load(weights)
    elif os.path.isfile(os.path.join(run_dir, CHECKPOINT_NAME)):  # a run stopped before it finished
        from rosenblatt.io.checkpoint import load_checkpoint

        state = load_checkpoint(os.path.join(run_dir, CHECKPOINT_NAME))["model"]
    else:
        raise FileNotFoundError(f"load_run: no {WEIGHTS_NAME} or {CHECKPOINT_NAME} in '{run_dir}'")
    model.load_state_dict(state)
    model.eval()
    preprocessing = dict(config.get("preprocessing") or {})
    metrics = None
    metrics_path = os.path.join(run_dir, "metrics.json")
    if os.path.isfile(metrics_path):
        with open(metrics_path) as f:
            metrics = json.load(f)
    info = {"config": config, "preprocessing": preprocessing,
            "preprocess": lambda x: preprocess(x, preprocessing),
            "task": config.get("task", "classification"), "num_classes": config.get("num_classes"),
            "metrics": metrics}
    return model, info
