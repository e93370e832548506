"""``Trainer``: Keras's ``fit``/``evaluate``/``predict`` on PyTorch-style parts.

The loop is small: for each batch, forward, loss, backward, optional gradient clipping, optimiser
step; callbacks run at batch and epoch boundaries; per-epoch results go into a
:class:`~rosenblatt.train.History`. Data may be a DataLoader, a Dataset or arrays ``(x, y)``
(``(x, y, sample_weight)``), with several inputs (``x`` a tuple) and several outputs (``y`` a tuple,
one loss per output).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from rosenblatt.data.dataset import Dataset, TensorDataset, to_numpy
from rosenblatt.data.loader import DataLoader
from rosenblatt.distributed.trainer_support import data_parallel_for
from rosenblatt.train.callbacks.base import Callback
from rosenblatt.train.history import History
from rosenblatt.train.metrics import get_metric, is_binary_output
from rosenblatt.train.regularizers import get_regularizer

_LOSS_NAMES = {
    "cross_entropy": "CrossEntropyLoss", "crossentropy": "CrossEntropyLoss", "ce": "CrossEntropyLoss",
    "mse": "MSELoss", "mae": "L1Loss", "l1": "L1Loss", "huber": "HuberLoss", "bce": "BCELoss",
    "bce_with_logits": "BCEWithLogitsLoss", "nll": "NLLLoss",
}


def _make_loss(spec: Any) -> Any:
    if isinstance(spec, str):
        import rosenblatt.nn as nn

        key = spec.lower()
        if key not in _LOSS_NAMES:
            raise ValueError(f"Trainer: unknown loss {spec!r}; known names: {', '.join(sorted(_LOSS_NAMES))}")
        return getattr(nn, _LOSS_NAMES[key])()
    if not callable(spec):
        raise TypeError(f"Trainer: a loss must be a callable (e.g. nn.CrossEntropyLoss()), got {type(spec).__name__}")
    return spec


def _as_list(outputs: Any, names: list[str]) -> list[Any]:
    if isinstance(outputs, Mapping):
        missing = [n for n in names if n not in outputs]
        if missing:
            raise ValueError(f"Trainer: the model returned outputs {list(outputs)}, the losses expect {names}")
        return [outputs[n] for n in names]
    if isinstance(outputs, (tuple, list)):
        return list(outputs)
    return [outputs]


def _host(tensor: Any) -> np.ndarray:
    return to_numpy(tensor)


class _ArrayData:
    """Arrays ``(x, y[, w])`` with several inputs/targets, flattened into one TensorDataset."""

    def __init__(self, data: Sequence[Any], output_names: list[str], where: str) -> None:
        if len(data) not in (1, 2, 3):
            raise ValueError(f"{where}: expected (x, y) or (x, y, sample_weight), got a sequence of {len(data)} items")
        x = data[0]
        y = data[1] if len(data) > 1 else None
        w = data[2] if len(data) > 2 else None
        xs = list(x) if isinstance(x, (tuple, list)) else [x]
        if y is None:
            ys = []
        elif isinstance(y, Mapping):
            ys = [y[n] for n in output_names]
        elif isinstance(y, (tuple, list)):
            ys = list(y)
        else:
            ys = [y]
        self.n_inputs, self.n_targets, self.has_weight = len(xs), len(ys), w is not None
        arrays = xs + ys + ([to_numpy(w).astype(np.float64).reshape(-1)] if w is not None else [])
        try:
            self.dataset = TensorDataset(*arrays)
        except ValueError as exc:
            raise ValueError(f"{where}: {str(exc).replace('TensorDataset: ', '')}") from None

    def split(self, batch: tuple) -> tuple[list, list, Any]:
        xs = list(batch[:self.n_inputs])
        ys = list(batch[self.n_inputs:self.n_inputs + self.n_targets])
        w = batch[-1] if self.has_weight else None
        return xs, ys, w


class Trainer:
    """Train, evaluate and use a model.

    Args:
        model: the :class:`~rosenblatt.nn.Module`.
        loss: a loss module or callable ``loss(output, target)`` (or a name: ``"cross_entropy"``,
            ``"mse"``, ``"bce_with_logits"``, ...); for several outputs a list (one per output) or a
            dict ``{output_name: loss}`` (the model then returns a dict, or a tuple in that order).
        optimizer: an optimiser over the model's parameters (may be None for evaluate/predict only).
        metrics: names (``"accuracy"``, ``"top5_accuracy"``, ``"f1"``, ``"roc_auc"``, ``"mse"``, ``"r2"``,
            ...) or callables ``fn(y_true, y_pred)`` computed over each epoch; for several outputs
            either shared or a dict ``{output_name: metrics}``. ``"accuracy"`` becomes
            ``"binary_accuracy"`` for outputs of shape ``(N,)``/``(N, 1)``.
        callbacks: :class:`~rosenblatt.train.callbacks.Callback` objects.
        device: ``"cpu"`` or ``"cuda[:N]"``; the model and every batch are moved there.
        regularizer: ``L1(c)``, ``L2(c)``, ``L1L2(a, b)``, ``{"l1": a, "l2": b}`` or ``callable(model)``
            returning a penalty added to the training loss (not to the reported ``loss``).
        grad_clip: clip the gradients' global L2 norm to this value before each step.
        loss_weights: weight of each output's loss in the total (list or dict).
        distributed: data-parallel training over MPI: ``"auto"`` (when started by ``mpiexec -n N``
            with N > 1), ``True`` or ``False``; see :mod:`rosenblatt.distributed.trainer_support`.

    History keys: ``loss`` and one key per metric (``accuracy``/``binary_accuracy``, ...), with a
    ``val_`` twin when there is validation data, and ``lr`` (the learning rate used in the
    epoch). Several outputs add ``<output>_loss`` and ``<output>_<metric>`` (outputs are named by
    the loss dict's keys, else ``output_0``, ``output_1``, ...).
    """

    def __init__(self, model: Any, loss: Any, optimizer: Any = None, metrics: Any = ("accuracy",),
                 callbacks: Sequence[Callback] = (), device: str = "cpu", regularizer: Any = None,
                 grad_clip: float | None = None, loss_weights: Sequence[float] | Mapping[str, float] | None = None,
                 distributed: bool | str = "auto") -> None:
        from rosenblatt.backend import Device

        self.model = model
        self.device = Device(device)
        if self.device.type != "cpu":
            model.to(str(self.device))
        if isinstance(loss, Mapping):
            self.output_names = [str(k) for k in loss]
            self.losses = [_make_loss(v) for v in loss.values()]
        elif isinstance(loss, (list, tuple)):
            self.losses = [_make_loss(v) for v in loss]
            self.output_names = [f"output_{i}" for i in range(len(self.losses))]
        else:
            self.losses = [_make_loss(loss)]
            self.output_names = ["output_0"]
        if not self.losses:
            raise ValueError("Trainer: expected at least one loss")
        n = len(self.losses)
        if loss_weights is None:
            self.loss_weights = [1.0] * n
        elif isinstance(loss_weights, Mapping):
            self.loss_weights = [float(loss_weights.get(name, 1.0)) for name in self.output_names]
        else:
            self.loss_weights = [float(w) for w in loss_weights]
            if len(self.loss_weights) != n:
                raise ValueError(f"Trainer: {len(self.loss_weights)} loss_weights for {n} outputs")
        self.optimizer = optimizer
        self.metric_specs = self._resolve_metrics(metrics)
        self.callbacks = list(callbacks)
        for cb in self.callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"Trainer: callbacks must be Callback objects, got {type(cb).__name__}")
        self.regularizer = get_regularizer(regularizer)
        if grad_clip is not None and grad_clip <= 0:
            raise ValueError(f"Trainer: grad_clip must be positive, got {grad_clip}")
        self.grad_clip = grad_clip
        self.history = History()
        self.epoch = 0  # completed epochs
        self.epochs: int | None = None
        self.steps_per_epoch: int | None = None
        self.stop_training = False
        self.resuming = False
        self.class_weight: np.ndarray | None = None
        self.train_loader: DataLoader | None = None
        self.fit_seed: int | None = None
        self._batch_weight: float | None = None
        # Data parallelism over MPI (rosenblatt.distributed.trainer_support): None in one process.
        self.data_parallel = data_parallel_for(distributed)
        if self.data_parallel is not None:
            self.callbacks = self.data_parallel.callbacks_for_this_rank(self.callbacks)

    # ------------------------------------------------------------------------------------------
    # configuration helpers
    # ------------------------------------------------------------------------------------------
    def _resolve_metrics(self, metrics: Any) -> list[list[tuple[str, Any]]]:
        if metrics is None:
            metrics = ()
        if isinstance(metrics, (str,)) or callable(metrics):
            metrics = (metrics,)
        if isinstance(metrics, Mapping):
            unknown = set(metrics) - set(self.output_names)
            if unknown:
                raise ValueError(f"Trainer: metrics for unknown outputs {sorted(unknown)}; outputs: {self.output_names}")
            per_output = []
            for name in self.output_names:
                spec = metrics.get(name, ())
                spec = (spec,) if isinstance(spec, str) or callable(spec) else spec
                per_output.append([get_metric(m) for m in spec])
            return per_output
        resolved = [get_metric(m) for m in metrics]
        return [list(resolved) for _ in self.output_names]

    def _threshold(self, output_index: int) -> float:
        # BCEWithLogitsLoss means the model outputs logits: positive iff logit > 0.
        return 0.0 if type(self.losses[output_index]).__name__ == "BCEWithLogitsLoss" else 0.5

    def _to_device(self, value: Any) -> Any:
        from rosenblatt.core import Tensor

        if isinstance(value, Tensor):
            if value.device == self.device:
                return value
            return Tensor(value.data, device=str(self.device))
        return Tensor(np.asarray(value), device=str(self.device))

    def _loader(self, data: Any, batch_size: int | None, shuffle: bool, seed: int | None, where: str,
                with_targets: bool = True) -> tuple[Any, Any]:
        """``(iterable of batches, split(batch) -> (inputs, targets, weights))``."""
        if isinstance(data, DataLoader):
            return data, self._split_loader_batch
        if isinstance(data, Dataset) or (hasattr(data, "__getitem__") and hasattr(data, "__len__")
                                         and not isinstance(data, (tuple, list, np.ndarray))
                                         and not hasattr(data, "data")):
            return DataLoader(data, batch_size=batch_size or 32, shuffle=shuffle, seed=seed), self._split_loader_batch
        if isinstance(data, (tuple, list)):
            arrays = _ArrayData(data, self.output_names, where)
        elif with_targets:
            raise TypeError(f"{where}: expected a DataLoader, a Dataset or a tuple (x, y), got {type(data).__name__}")
        else:
            arrays = _ArrayData((data,), self.output_names, where)
        if with_targets and arrays.n_targets != len(self.losses):
            raise ValueError(f"{where}: {arrays.n_targets} target arrays for {len(self.losses)} outputs")
        loader = DataLoader(arrays.dataset, batch_size=batch_size or 32, shuffle=shuffle, seed=seed)
        return loader, arrays.split

    def _split_loader_batch(self, batch: Any) -> tuple[list, list, Any]:
        from rosenblatt.core import Tensor

        if isinstance(batch, Tensor):
            return [batch], [], None
        batch = tuple(batch)
        if len(batch) == 2 and any(isinstance(b, (tuple, list, Mapping)) for b in batch):
            x, y = batch
            xs = list(x) if isinstance(x, (tuple, list)) else [x]
            ys = _as_list(y, self.output_names)
            return xs, ys, None
        n_targets = len(self.losses)
        if len(batch) <= n_targets:
            return list(batch), [], None  # inputs only (prediction)
        return list(batch[:-n_targets]), list(batch[-n_targets:]), None

    # ------------------------------------------------------------------------------------------
    # loss
    # ------------------------------------------------------------------------------------------
    def _class_weights_for(self, target: Any) -> np.ndarray:
        labels = _host(target)
        if labels.ndim >= 2 and labels.shape[-1] > 1 and labels.dtype.kind == "f":
            labels = labels.argmax(axis=-1)
        labels = np.rint(labels.reshape(labels.shape[0], -1)[:, 0]).astype(np.int64)
        if labels.size and (labels.min() < 0 or labels.max() >= self.class_weight.shape[0]):
            raise ValueError(f"Trainer: class_weight covers classes 0..{self.class_weight.shape[0] - 1}, "
                             f"got label {labels.max()}")
        return self.class_weight[labels]

    def _one_loss(self, index: int, output: Any, target: Any, weights: Any) -> Any:
        import rosenblatt as rb

        fn = self.losses[index]
        per_sample_weights = None
        if weights is not None:
            per_sample_weights = _host(weights).astype(np.float64)
        if self.class_weight is not None and index == 0:
            cw = self._class_weights_for(target)
            per_sample_weights = cw if per_sample_weights is None else per_sample_weights * cw
        if index == 0:
            self._batch_weight = None if per_sample_weights is None else float(per_sample_weights.sum())
        if per_sample_weights is None:
            return fn(output, target)
        # Weighted mean over the batch: sum(w * loss_i) / sum(w), as PyTorch's class-weighted losses.
        if hasattr(fn, "reduction"):
            saved = fn.reduction
            fn.reduction = "none"
            try:
                per = fn(output, target)
            finally:
                fn.reduction = saved
        else:
            try:
                per = fn(output, target, reduction="none")
            except TypeError:
                raise TypeError("Trainer: sample_weight/class_weight need a loss with a reduction='none' mode") from None
        if per.ndim > 1:
            per = per.mean(axis=tuple(range(1, per.ndim)))
        w = self._to_device(per_sample_weights.astype(per.dtype))
        return rb.sum(per * w) / max(float(per_sample_weights.sum()), 1e-12)

    def _compute_loss(self, outputs: list, targets: list, weights: Any) -> tuple[Any, list]:
        if len(outputs) != len(self.losses):
            raise ValueError(f"Trainer: the model returned {len(outputs)} outputs for {len(self.losses)} losses")
        parts = [self._one_loss(i, o, t, weights) for i, (o, t) in enumerate(zip(outputs, targets))]
        total = parts[0] * self.loss_weights[0] if self.loss_weights[0] != 1.0 else parts[0]
        for w, part in zip(self.loss_weights[1:], parts[1:]):
            total = total + part * w
        return total, parts

    # ------------------------------------------------------------------------------------------
    # epochs
    # ------------------------------------------------------------------------------------------
    def _forward(self, inputs: list) -> list:
        outputs = self.model(*[self._to_device(x) for x in inputs])
        return _as_list(outputs, self.output_names)

    def _run(self, loader: Any, split: Any, training: bool) -> dict[str, float]:
        """One pass over ``loader``: trains when ``training``; returns the epoch's logs."""
        import rosenblatt as rb

        collect = any(self.metric_specs)
        n_out = len(self.losses)
        loss_sum, part_sums, weight_sum = 0.0, [0.0] * n_out, 0.0
        outputs_seen: list[list[np.ndarray]] = [[] for _ in range(n_out)]
        targets_seen: list[list[np.ndarray]] = [[] for _ in range(n_out)]
        params = [p for p in self.model.parameters() if p.requires_grad] if training else []
        for batch_index, batch in enumerate(loader):
            inputs, targets, weights = split(batch)
            if len(targets) != n_out:
                raise ValueError(f"Trainer: a batch holds {len(targets)} targets for {n_out} outputs")
            targets = [self._to_device(t) for t in targets]
            n = int(targets[0].shape[0])
            if training:
                for cb in self.callbacks:
                    cb.on_batch_begin(batch_index, {"size": n})
                outputs = self._forward(inputs)
                loss, parts = self._compute_loss(outputs, targets, weights)
                objective = loss
                if self.regularizer is not None:
                    penalty = self.regularizer(self.model)
                    if penalty is not None:
                        objective = loss + penalty
                self.optimizer.zero_grad()
                objective.backward()
                if self.data_parallel is not None:
                    self.data_parallel.allreduce_gradients(params)
                if self.grad_clip is not None:
                    _clip_grad_norm(params, self.grad_clip)
                self.optimizer.step()
            else:
                with rb.no_grad():
                    outputs = self._forward(inputs)
                    loss, parts = self._compute_loss(outputs, targets, weights)
            # Each batch counts by its total sample weight (its size when unweighted), so the
            # epoch loss is the weighted mean over all samples.
            batch_weight = self._batch_weight if self._batch_weight is not None else float(n)
            value = float(loss.item())
            loss_sum += value * batch_weight
            for i, part in enumerate(parts):
                part_sums[i] += float(part.item()) * batch_weight
            weight_sum += batch_weight
            if collect:
                for i in range(n_out):
                    outputs_seen[i].append(_host(outputs[i].detach() if hasattr(outputs[i], "detach") else outputs[i]))
                    targets_seen[i].append(_host(targets[i]))
            if training:
                logs = {"loss": value, "size": n}
                for cb in self.callbacks:
                    cb.on_batch_end(batch_index, logs)
                if self._should_stop():
                    break
        if weight_sum == 0:
            raise ValueError("Trainer: the data produced no batches (is it empty, or drop_last with too few samples?)")
        logs: dict[str, float] = {"loss": loss_sum / weight_sum}
        multi = n_out > 1
        for i in range(n_out):
            prefix = f"{self.output_names[i]}_" if multi else ""
            if multi:
                logs[f"{prefix}loss"] = part_sums[i] / weight_sum
            if not self.metric_specs[i]:
                continue
            y_pred = np.concatenate(outputs_seen[i])
            y_true = np.concatenate(targets_seen[i])
            for name, fn in self.metric_specs[i]:
                logs[prefix + self._metric_key(name, y_pred)] = self._metric_value(fn, y_true, y_pred, i)
        if training and self.data_parallel is not None:
            logs = self.data_parallel.reduce_logs(logs, weight_sum)
        return logs

    @staticmethod
    def _metric_key(name: str, y_pred: np.ndarray) -> str:
        if name == "accuracy" and is_binary_output(y_pred) and y_pred.dtype.kind == "f":
            return "binary_accuracy"
        return name

    def _metric_value(self, fn: Any, y_true: np.ndarray, y_pred: np.ndarray, index: int) -> float:
        try:
            takes_threshold = "threshold" in inspect.signature(fn).parameters
        except (TypeError, ValueError):
            takes_threshold = False
        if takes_threshold:
            return float(fn(y_true, y_pred, threshold=self._threshold(index)))
        return float(fn(y_true, y_pred))

    def _should_stop(self) -> bool:
        return self.stop_training or any(cb.stop_training for cb in self.callbacks)

    def _current_lr(self) -> float | None:
        groups = getattr(self.optimizer, "param_groups", None)
        if groups:
            return float(groups[0].get("lr", math.nan))
        return None

    # ------------------------------------------------------------------------------------------
    # public API
    # ------------------------------------------------------------------------------------------
    def fit(self, train: Any, val: Any = None, epochs: int = 1, batch_size: int | None = None,
            validation_split: float | None = None, stratify: bool | Any = False, sample_weight: Any = None,
            class_weight: Mapping[int, float] | Sequence[float] | None = None, resume_from: str | None = None,
            seed: int | None = None, shuffle: bool = True) -> History:
        """Train for ``epochs`` epochs (counted from zero, so a resumed run stops at the same place).

        Args:
            train: a DataLoader, a Dataset, or arrays ``(x, y)`` / ``(x, y, sample_weight)``; ``x``
                may be a tuple of arrays (several inputs) and ``y`` a tuple or dict (several outputs).
            val: validation data in the same forms (``(x, y, w)`` weights the validation loss).
            epochs: the total number of epochs.
            batch_size: batch size for arrays and Datasets (default 32; a DataLoader keeps its own).
            validation_split: hold out this fraction of ``train`` (arrays) for validation, *after*
                shuffling (Keras takes the last rows, which is wrong for sorted data).
            stratify: with ``validation_split``, keep the class proportions of ``y`` (True) or of
                the given labels.
            sample_weight: per-sample loss weights for array data (split along with the data).
            class_weight: loss weight per class (``{class: weight}`` or a list), applied to the
                training and the validation loss; targets are class indices (or one-hot rows, or
                binary 0/1). With several outputs it weights the first output's loss.
            resume_from: a checkpoint written by ``ModelCheckpoint``/:meth:`save_checkpoint`:
                weights, optimiser, schedulers, callbacks, history, random state and data order are
                restored, and training continues with the epoch after the saved one. On the CPU the
                result equals that of an uninterrupted run bit for bit.
            seed: seed of the shuffling and of ``validation_split`` (None: drawn from rosenblatt's
                global generator, so ``rb.manual_seed`` fixes it).
            shuffle: shuffle the training data each epoch (arrays and Datasets).

        Returns:
            The :class:`History` (also ``trainer.history``).
        """
        if self.optimizer is None:
            raise ValueError("Trainer.fit: no optimizer was given to the Trainer")
        if not isinstance(epochs, (int, np.integer)) or epochs < 0:
            raise ValueError(f"Trainer.fit: epochs must be a non-negative integer, got {epochs!r}")
        checkpoint = None
        if resume_from is not None:
            from rosenblatt.io.checkpoint import load_checkpoint

            checkpoint = load_checkpoint(resume_from)
            saved_seed = checkpoint["extra"].get("trainer", {}).get("seed")
            seed = saved_seed if saved_seed is not None else seed
        if seed is None:
            from rosenblatt.random import generator

            seed = int(generator().integers(0, 2**31 - 1))
        self.fit_seed = int(seed)
        self.class_weight = self._class_weight_array(class_weight)
        if sample_weight is not None:
            if not isinstance(train, (tuple, list)) or len(train) != 2:
                raise ValueError("Trainer.fit: sample_weight needs array data (x, y); put weights in a third array otherwise")
            train = (train[0], train[1], sample_weight)
        if validation_split is not None:
            if val is not None:
                raise ValueError("Trainer.fit: give either val or validation_split, not both")
            train, val = self._split_validation(train, validation_split, stratify, self.fit_seed)
        elif stratify is not False and stratify is not None:
            raise ValueError("Trainer.fit: stratify only applies together with validation_split")
        train_loader, train_split = self._loader(train, batch_size, shuffle, self.fit_seed, "Trainer.fit(train)")
        if self.data_parallel is not None:  # same start on every process, one shard of the data each
            train_loader = self.data_parallel.prepare(self.model, train_loader, self.fit_seed)
        val_loader, val_split = (None, None)
        if val is not None:
            val_loader, val_split = self._loader(val, batch_size, False, None, "Trainer.fit(val)")
        self.train_loader = train_loader
        try:
            self.steps_per_epoch = len(train_loader)
        except TypeError:
            self.steps_per_epoch = None
        self.epochs = int(epochs)
        self.stop_training = False
        start_epoch = 0
        self.history = History()
        self.resuming = checkpoint is not None
        for cb in self.callbacks:
            cb.set_trainer(self)
            cb.stop_training = False
        if checkpoint is not None:
            start_epoch = self._restore(checkpoint, train_loader)
        self.epoch = start_epoch
        for cb in self.callbacks:
            cb.on_train_begin({})
        logs: dict[str, float] = {}
        was_training = getattr(self.model, "training", True)
        try:
            for epoch in range(start_epoch, self.epochs):
                for cb in self.callbacks:
                    cb.on_epoch_begin(epoch, {})
                lr = self._current_lr()
                self.model.train()
                logs = self._run(train_loader, train_split, training=True)
                if val_loader is not None:
                    self.model.eval()
                    val_logs = self._run(val_loader, val_split, training=False)
                    logs.update({f"val_{k}": v for k, v in val_logs.items()})
                if lr is not None:
                    logs["lr"] = lr
                self.history.append(epoch, logs)
                self.epoch = epoch + 1
                for cb in self.callbacks:
                    cb.on_epoch_end(epoch, logs)
                if self._should_stop():
                    break
        finally:
            self.model.train(was_training)
            self.resuming = False
        for cb in self.callbacks:
            cb.on_train_end(logs)
        return self.history

    def _class_weight_array(self, class_weight: Any) -> np.ndarray | None:
        if class_weight is None:
            return None
        if isinstance(class_weight, Mapping):
            keys = [int(k) for k in class_weight]
            if min(keys) < 0:
                raise ValueError(f"Trainer.fit: class_weight keys must be class indices >= 0, got {sorted(keys)}")
            array = np.ones(max(keys) + 1)
            for k, v in class_weight.items():
                array[int(k)] = float(v)
        else:
            array = np.asarray(class_weight, dtype=np.float64).reshape(-1)
        if np.any(array < 0):
            raise ValueError("Trainer.fit: class weights must be >= 0")
        return array

    def _split_validation(self, train: Any, fraction: float, stratify: Any, seed: int) -> tuple[Any, Any]:
        from rosenblatt.data.split import random_split, train_val_test_split

        if not 0.0 < fraction < 1.0:
            raise ValueError(f"Trainer.fit: validation_split must be in (0, 1), got {fraction}")
        if isinstance(train, (tuple, list)):
            arrays = _ArrayData(train, self.output_names, "Trainer.fit(train)")
            labels = None
            if stratify is True:
                if arrays.n_targets != 1:
                    raise ValueError("Trainer.fit: stratify=True needs a single target; pass the labels instead")
                labels = arrays.dataset.arrays[arrays.n_inputs]
            elif stratify is not False and stratify is not None:
                labels = to_numpy(stratify)
            (tr, va, _) = train_val_test_split(*arrays.dataset.arrays, val=float(fraction), test=0,
                                               stratify=labels, seed=seed)

            def rebuild(parts: tuple) -> tuple:
                xs = parts[:arrays.n_inputs]
                ys = parts[arrays.n_inputs:arrays.n_inputs + arrays.n_targets]
                x = xs[0] if len(xs) == 1 else tuple(xs)
                y = ys[0] if len(ys) == 1 else tuple(ys)
                return (x, y, parts[-1]) if arrays.has_weight else (x, y)

            return rebuild(tr), rebuild(va)
        if isinstance(train, Dataset):
            if stratify is not False and stratify is not None:
                raise ValueError("Trainer.fit: stratify needs array data (x, y)")
            n_val = int(round(len(train) * fraction))
            part_train, part_val = random_split(train, [len(train) - n_val, n_val], seed=seed)
            return part_train, part_val
        raise ValueError("Trainer.fit: validation_split needs arrays (x, y) or a Dataset, not a DataLoader; pass val=")

    def evaluate(self, data: Any, batch_size: int | None = None) -> dict[str, float]:
        """Loss and metrics over ``data`` (a DataLoader, a Dataset or ``(x, y[, w])``), without gradients.

        The model is put in eval mode for the pass and returned to its previous mode.
        """
        loader, split = self._loader(data, batch_size, False, None, "Trainer.evaluate")
        was_training = getattr(self.model, "training", False)
        self.model.eval()
        try:
            return self._run(loader, split, training=False)
        finally:
            self.model.train(was_training)

    def predict(self, data: Any, batch_size: int | None = None) -> np.ndarray | list[np.ndarray]:
        """Model outputs for ``data`` as NumPy arrays (a list for several outputs).

        ``data``: an array ``x``, a list of arrays (several inputs), a Dataset or a DataLoader (the
        inputs of each batch are used; targets, if present, are ignored). Runs in eval mode under
        ``no_grad``.
        """
        import rosenblatt as rb
        from rosenblatt.core import Tensor

        if isinstance(data, (np.ndarray, Tensor)) or (hasattr(data, "__array__") and not isinstance(data, (Dataset, DataLoader))):
            data = (to_numpy(data),)
            loader, split = self._loader((data[0],), batch_size, False, None, "Trainer.predict", with_targets=False)
        elif isinstance(data, list) and all(isinstance(d, (np.ndarray, Tensor)) for d in data):
            loader, split = self._loader((tuple(data),), batch_size, False, None, "Trainer.predict", with_targets=False)
        else:
            loader, split = self._loader(data, batch_size, False, None, "Trainer.predict", with_targets=False)
        was_training = getattr(self.model, "training", False)
        self.model.eval()
        collected: list[list[np.ndarray]] = []
        try:
            with rb.no_grad():
                for batch in loader:
                    inputs, _, _ = split(batch)
                    outputs = self._forward(inputs)
                    if not collected:
                        collected = [[] for _ in outputs]
                    for store, out in zip(collected, outputs):
                        store.append(_host(out))
        finally:
            self.model.train(was_training)
        results = [np.concatenate(parts) for parts in collected]
        return results[0] if len(results) == 1 else results

    # ------------------------------------------------------------------------------------------
    # checkpoints
    # ------------------------------------------------------------------------------------------
    def _schedulers(self) -> list[Any]:
        return [cb.scheduler for cb in self.callbacks if hasattr(cb, "scheduler")]

    def save_checkpoint(self, path: str) -> None:
        """Write a full checkpoint after the current epoch (what ``fit(resume_from=path)`` reads)."""
        from rosenblatt.io.checkpoint import save_checkpoint

        schedulers = self._schedulers()
        extra: dict[str, Any] = {
            "trainer": {"seed": self.fit_seed, "epochs": self.epochs},
            "callbacks": [{"class": type(cb).__name__, "state": cb.state_dict()} for cb in self.callbacks],
        }
        if isinstance(self.train_loader, DataLoader):
            extra["loader"] = self.train_loader.state_dict()
        save_checkpoint(path, self.model, self.optimizer, epoch=self.epoch, scheduler=schedulers or None,
                        history=self.history, **extra)

    def _restore(self, checkpoint: dict[str, Any], train_loader: Any) -> int:
        from rosenblatt.random import set_rng_state

        self.model.load_state_dict(checkpoint["model"])
        if checkpoint["optimizer"] is not None:
            self.optimizer.load_state_dict(checkpoint["optimizer"])
        schedulers = self._schedulers()
        if schedulers and checkpoint["scheduler"] is not None:
            for sched, state in zip(schedulers, checkpoint["scheduler"]):
                sched.load_state_dict(state)
        extra = checkpoint["extra"]
        for cb, saved in zip(self.callbacks, extra.get("callbacks", [])):
            if saved.get("class") == type(cb).__name__:
                cb.load_state_dict(saved.get("state", {}))
        if checkpoint["history"] is not None:
            self.history = checkpoint["history"]
        if isinstance(train_loader, DataLoader) and "loader" in extra:
            train_loader.load_state_dict(extra["loader"])
        if checkpoint["rng"] is not None:
            set_rng_state(checkpoint["rng"])
        return int(checkpoint["epoch"])


def _clip_grad_norm(params: list, max_norm: float) -> None:
    try:
        from rosenblatt.nn.utils import clip_grad_norm_
    except ImportError:
        from rosenblatt.nn.utils.clip_grad import clip_grad_norm_
    clip_grad_norm_(params, max_norm)
