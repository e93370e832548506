"""A model's outputs as the Trainer sees them: one loss (and metrics) per output.

:class:`Losses` turns the outputs and targets of a batch into the loss to minimise (the weighted
sum over outputs, each a sample-weighted mean); :class:`EpochLogs` adds the batches of an epoch up
into its logs (``loss``, the metrics, ``<output>_loss`` for several outputs).
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Mapping
from typing import Any

import numpy as np

from rosenblatt.data.dataset import to_numpy
from rosenblatt.train.metrics import get_metric, is_binary_output
from rosenblatt.train.names import make_loss


class Losses:
    """The loss of each output, by name, and their weights in the total.

    Args:
        spec: one loss (a callable or a name), a list (outputs ``output_0``, ``output_1``, ...) or a
            dict ``{output_name: loss}``.
        loss_weights: the weight of each output's loss in the total (list or dict; default 1).
    """

    def __init__(self, spec: Any, loss_weights: Any = None) -> None:
        if isinstance(spec, Mapping):
            self.names = [str(k) for k in spec]
            self.functions = [make_loss(v) for v in spec.values()]
        elif isinstance(spec, (list, tuple)):
            self.functions = [make_loss(v) for v in spec]
            self.names = [f"output_{i}" for i in range(len(self.functions))]
        else:
            self.functions, self.names = [make_loss(spec)], ["output_0"]
        if not self.functions:
            raise ValueError("Trainer: expected at least one loss")
        n = len(self.functions)
        if loss_weights is None:
            self.weights = [1.0] * n
        elif isinstance(loss_weights, Mapping):
            self.weights = [float(loss_weights.get(name, 1.0)) for name in self.names]
        else:
            self.weights = [float(w) for w in loss_weights]
            if len(self.weights) != n:
                raise ValueError(f"Trainer: {len(self.weights)} loss_weights for {n} outputs")
        self._unreduced: dict[int, Any] = {}

    def __len__(self) -> int:
        return len(self.functions)

    def as_list(self, outputs: Any) -> list[Any]:
        """The model's return value as one entry per loss (a dict is read by output name)."""
        if isinstance(outputs, Mapping):
            missing = [n for n in self.names if n not in outputs]
            if missing:
                raise ValueError(f"Trainer: the model returned outputs {list(outputs)}, the losses expect {self.names}")
            return [outputs[n] for n in self.names]
        return list(outputs) if isinstance(outputs, (tuple, list)) else [outputs]

    def threshold(self, index: int) -> float:
        """Where binary scores of output ``index`` turn positive: 0 for logits, else 0.5."""
        from rosenblatt.nn import BCEWithLogitsLoss

        return 0.0 if isinstance(self.functions[index], BCEWithLogitsLoss) else 0.5

    def _per_sample(self, index: int) -> Any:
        """The loss of output ``index`` giving one value per sample (a copy: the user's is untouched)."""
        if index not in self._unreduced:
            fn = self.functions[index]
            if hasattr(fn, "reduction"):
                unreduced = copy.copy(fn)
                unreduced.reduction = "none"
            elif "reduction" in inspect.signature(fn).parameters:
                def unreduced(output: Any, target: Any, fn: Any = fn) -> Any:
                    return fn(output, target, reduction="none")
            else:
                raise TypeError("Trainer: sample_weight/class_weight need a loss with a reduction='none' mode, "
                                f"got {type(fn).__name__}")
            self._unreduced[index] = unreduced
        return self._unreduced[index]

    def __call__(self, outputs: list, targets: list, sample_weights: np.ndarray | None,
                 to_tensor: Any) -> tuple[Any, list]:
        """``(total, per-output losses)``; with ``sample_weights`` each is ``sum(w l) / sum(w)``."""
        import rosenblatt as rb

        if len(outputs) != len(self.functions):
            raise ValueError(f"Trainer: the model returned {len(outputs)} outputs for {len(self.functions)} losses")
        parts = []
        for i, (output, target) in enumerate(zip(outputs, targets)):
            if sample_weights is None:
                parts.append(self.functions[i](output, target))
                continue
            per = self._per_sample(i)(output, target)
            if per.ndim > 1:
                per = per.mean(axis=tuple(range(1, per.ndim)))
            w = to_tensor(sample_weights.astype(per.dtype))
            parts.append(rb.sum(per * w) / max(float(sample_weights.sum()), 1e-12))
        total = parts[0] * self.weights[0] if self.weights[0] != 1.0 else parts[0]
        for w, part in zip(self.weights[1:], parts[1:]):
            total = total + part * w
        return total, parts


def resolve_metrics(metrics: Any, output_names: list[str]) -> list[list[tuple[str, Any]]]:
    """``[(name, fn), ...]`` per output from names/callables, shared or ``{output_name: metrics}``."""
    if metrics is None:
        metrics = ()
    if isinstance(metrics, str) or callable(metrics):
        metrics = (metrics,)
    if isinstance(metrics, Mapping):
        unknown = set(metrics) - set(output_names)
        if unknown:
            raise ValueError(f"Trainer: metrics for unknown outputs {sorted(unknown)}; outputs: {output_names}")
        per_output = []
        for name in output_names:
            spec = metrics.get(name, ())
            spec = (spec,) if isinstance(spec, str) or callable(spec) else spec
            per_output.append([get_metric(m) for m in spec])
        return per_output
    resolved = [get_metric(m) for m in metrics]
    return [list(resolved) for _ in output_names]


class Results(dict):
    """``{"loss": ..., "accuracy": ...}`` as returned by ``Trainer.evaluate``, also readable by
    position in Keras's order (``results[0]`` is the loss, ``results[1]`` the first metric), so
    Keras's ``score = model.evaluate(x, y); score[0]`` works. Unpacking iterates the names, as for
    any dict: use ``evaluate(..., return_dict=False)`` for ``loss, accuracy = ...``."""

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
            values = list(self.values())
            if not -len(values) <= key < len(values):
                raise IndexError(f"evaluate results: index {key} out of range for {len(values)} values {list(self)}")
            return values[key]
        return super().__getitem__(key)


class EpochLogs:
    """The batches of one epoch added up: sample-weighted mean losses, and the outputs and targets
    the metrics are computed on at the end (metrics such as F1 or ROC AUC are not batch means)."""

    def __init__(self, losses: Losses, metrics: list[list[tuple[str, Any]]]) -> None:
        self.losses, self.metrics = losses, metrics
        self.weight = 0.0  # samples seen (their total weight when weighted)
        self._loss_sum, self._part_sums = 0.0, [0.0] * len(losses)
        self._seen: list[tuple[list, list]] = [([], []) for _ in metrics]

    def add(self, loss: float, parts: list, weight: float, outputs: list, targets: list) -> None:
        self._loss_sum += loss * weight
        self._part_sums = [s + float(p.item()) * weight for s, p in zip(self._part_sums, parts)]
        self.weight += weight
        for i, specs in enumerate(self.metrics):
            if specs:
                output = outputs[i].detach() if hasattr(outputs[i], "detach") else outputs[i]
                self._seen[i][0].append(to_numpy(output))
                self._seen[i][1].append(to_numpy(targets[i]))

    def result(self) -> dict[str, float]:
        if self.weight == 0:
            raise ValueError("Trainer: the data produced no batches (is it empty, or drop_last with too few samples?)")
        logs = {"loss": self._loss_sum / self.weight}
        several = len(self.losses) > 1
        for i, specs in enumerate(self.metrics):
            prefix = f"{self.losses.names[i]}_" if several else ""
            if several:
                logs[f"{prefix}loss"] = self._part_sums[i] / self.weight
            if specs:
                y_pred, y_true = np.concatenate(self._seen[i][0]), np.concatenate(self._seen[i][1])
                for name, fn in specs:
                    logs[prefix + _metric_key(name, y_pred)] = _metric_value(fn, y_true, y_pred,
                                                                             self.losses.threshold(i))
        return logs


def _metric_key(name: str, y_pred: np.ndarray) -> str:
    if name == "accuracy" and is_binary_output(y_pred) and y_pred.dtype.kind == "f":
        return "binary_accuracy"
    return name


def _metric_value(fn: Any, y_true: np.ndarray, y_pred: np.ndarray, threshold: float) -> float:
    try:
        takes_threshold = "threshold" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        takes_threshold = False
    return float(fn(y_true, y_pred, threshold=threshold)) if takes_threshold else float(fn(y_true, y_pred))
