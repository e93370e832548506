"""``Trainer``: Keras's ``fit``/``evaluate``/``predict`` on PyTorch-style parts.

The loop is small (:meth:`Trainer._run_epoch`): for each batch, forward, loss, backward, optional
gradient clipping, optimiser step; callbacks run at batch and epoch boundaries; per-epoch results go
into a :class:`~rosenblatt.train.History`. Turning the user's data into batches lives in
:mod:`rosenblatt.train.data_adapter`, loss and optimiser names in :mod:`rosenblatt.train.names`,
each callback in its own file under :mod:`rosenblatt.train.callbacks`.

Both call shapes work: Keras's ``fit(x, y, batch_size=..., epochs=..., validation_split=...,
validation_data=...)`` and ``fit((x, y), val=...)``, ``fit(loader)``.
"""

from __future__ import annotations

import copy
import inspect
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from rosenblatt.data.dataset import to_numpy
from rosenblatt.data.loader import DataLoader
from rosenblatt.distributed.trainer_support import data_parallel_for
from rosenblatt.train import data_adapter
from rosenblatt.train.callbacks.base import Callback
from rosenblatt.train.callbacks.lr_scheduler import as_callback
from rosenblatt.train.callbacks.progress_bar import ProgressBar
from rosenblatt.train.history import History
from rosenblatt.train.metrics import get_metric, is_binary_output
from rosenblatt.train.names import make_loss, make_optimizer
from rosenblatt.train.regularizers import get_regularizer

_VERBOSE = ("auto", 0, 1, 2)


def _as_list(outputs: Any, names: list[str]) -> list[Any]:
    if isinstance(outputs, Mapping):
        missing = [n for n in names if n not in outputs]
        if missing:
            raise ValueError(f"Trainer: the model returned outputs {list(outputs)}, the losses expect {names}")
        return [outputs[n] for n in names]
    if isinstance(outputs, (tuple, list)):
        return list(outputs)
    return [outputs]


class Trainer:
    """Train, evaluate and use a model.

    Args:
        model: the :class:`~rosenblatt.nn.Module`.
        loss: a loss module or callable ``loss(output, target)``, or a name: PyTorch-style names
            (``"cross_entropy"``, ``"bce_with_logits"``, ...) take logits; Keras's names
            (``"sparse_categorical_crossentropy"``, ``"categorical_crossentropy"``,
            ``"binary_crossentropy"``, ``"mse"``, ``"mae"``) mean what they mean in Keras, so the
            cross-entropies take probabilities (see :mod:`rosenblatt.train.names`). For several
            outputs a list (one per output) or a dict ``{output_name: loss}`` (the model then returns
            a dict, or a tuple in that order).
        optimizer: an optimiser over the model's parameters, or Keras's name (``"adam"``, ``"sgd"``,
            ``"rmsprop"``, ...) to build one with Keras's defaults; None for evaluate/predict only.
        metrics: names (``"accuracy"``, ``"top5_accuracy"``, ``"f1"``, ``"roc_auc"``, ``"mse"``, ``"r2"``,
            ...) or callables ``fn(y_true, y_pred)`` computed over each epoch; for several outputs
            either shared or a dict ``{output_name: metrics}``. ``"accuracy"`` becomes
            ``"binary_accuracy"`` for outputs of shape ``(N,)``/``(N, 1)``.
        callbacks: :class:`~rosenblatt.train.callbacks.Callback` objects, or learning-rate schedulers
            (stepped after every epoch; ``OneCycleLR`` after every batch; ``ReduceLROnPlateau`` with
            ``val_loss``, or ``loss`` without validation data).
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
                 callbacks: Sequence[Any] = (), device: str = "cpu", regularizer: Any = None,
                 grad_clip: float | None = None, loss_weights: Sequence[float] | Mapping[str, float] | None = None,
                 distributed: bool | str = "auto") -> None:
        from rosenblatt.backend import Device
        from rosenblatt.nn import Module

        if not isinstance(model, Module) and not callable(model):
            raise TypeError(f"Trainer: model must be an nn.Module, got {type(model).__name__}")
        self.model = model
        self.device = Device(device)
        if self.device.type != "cpu":
            model.to(str(self.device))
        if isinstance(loss, Mapping):
            self.output_names = [str(k) for k in loss]
            self.losses = [make_loss(v) for v in loss.values()]
        elif isinstance(loss, (list, tuple)):
            self.losses = [make_loss(v) for v in loss]
            self.output_names = [f"output_{i}" for i in range(len(self.losses))]
        else:
            self.losses = [make_loss(loss)]
            self.output_names = ["output_0"]
        if not self.losses:
            raise ValueError("Trainer: expected at least one loss")
        self.loss_weights = self._resolve_loss_weights(loss_weights)
        self.optimizer = make_optimizer(optimizer, model)
        self.metric_specs = self._resolve_metrics(metrics)
        self.callbacks = self._as_callbacks(callbacks, "Trainer")
        self.regularizer = get_regularizer(regularizer)
        if grad_clip is not None and not grad_clip > 0:
            raise ValueError(f"Trainer: grad_clip must be positive, got {grad_clip}")
        self.grad_clip = grad_clip
        self.history = History()
        self.epoch = 0  # completed epochs
        self.epochs: int | None = None
        self.steps_per_epoch: int | None = None
        self.stop_training = False
        self.resuming = False
        self.class_weight: np.ndarray | None = None  # weights the loss in evaluate(); fit sets its own
        self.train_loader: Any = None
        self.fit_seed: int | None = None
        self.fit_callbacks: list[Callback] = list(self.callbacks)  # those of the current (or last) fit
        # Data parallelism over MPI (rosenblatt.distributed.trainer_support): None in one process.
        self.data_parallel = data_parallel_for(distributed)
        self._unreduced_losses: dict[int, Any] = {}

    # ------------------------------------------------------------------------------------------
    # configuration
    # ------------------------------------------------------------------------------------------
    def _resolve_loss_weights(self, loss_weights: Any) -> list[float]:
        n = len(self.losses)
        if loss_weights is None:
            return [1.0] * n
        if isinstance(loss_weights, Mapping):
            return [float(loss_weights.get(name, 1.0)) for name in self.output_names]
        weights = [float(w) for w in loss_weights]
        if len(weights) != n:
            raise ValueError(f"Trainer: {len(weights)} loss_weights for {n} outputs")
        return weights

    def _resolve_metrics(self, metrics: Any) -> list[list[tuple[str, Any]]]:
        if metrics is None:
            metrics = ()
        if isinstance(metrics, str) or callable(metrics):
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

    @staticmethod
    def _as_callbacks(callbacks: Any, where: str) -> list[Callback]:
        if callbacks is None:
            return []
        if isinstance(callbacks, (Callback, str)) or not isinstance(callbacks, Sequence):
            raise TypeError(f"{where}: callbacks must be a list, got {type(callbacks).__name__}")
        return [as_callback(cb, where) for cb in callbacks]

    def _callbacks_for_fit(self, callbacks: Any, verbose: Any, has_validation: bool) -> list[Callback]:
        if verbose not in _VERBOSE or isinstance(verbose, bool):
            raise ValueError(f"Trainer.fit: verbose must be 'auto', 0, 1 or 2, got {verbose!r}")
        active = self.callbacks + self._as_callbacks(callbacks, "Trainer.fit")
        if verbose != 0 and not any(isinstance(cb, ProgressBar) for cb in active):
            active.append(ProgressBar(per_batch=verbose != 2))
        for cb in active:
            cb.set_trainer(self)
            cb.stop_training = False
            if getattr(cb, "monitor", "") is None:  # a scheduler given directly: pick what it watches
                cb.monitor = "val_loss" if has_validation else "loss"
        if self.data_parallel is not None:
            active = self.data_parallel.callbacks_for_this_rank(active)
        return active

    def _threshold(self, output_index: int) -> float:
        from rosenblatt.nn import BCEWithLogitsLoss

        # A model trained with BCEWithLogitsLoss outputs logits: positive iff logit > 0.
        return 0.0 if isinstance(self.losses[output_index], BCEWithLogitsLoss) else 0.5

    def _to_device(self, value: Any) -> Any:
        from rosenblatt.core import Tensor

        if isinstance(value, Tensor):
            return value if value.device == self.device else Tensor(value.data, device=str(self.device))
        return Tensor(np.asarray(value), device=str(self.device))

    def _current_lr(self) -> float | None:
        groups = getattr(self.optimizer, "param_groups", None)
        return float(groups[0].get("lr", math.nan)) if groups else None

    def _should_stop(self) -> bool:
        return self.stop_training or any(cb.stop_training for cb in self.fit_callbacks)

    # ------------------------------------------------------------------------------------------
    # loss
    # ------------------------------------------------------------------------------------------
    def _sample_weights(self, targets: list, weights: Any) -> np.ndarray | None:
        """Per-sample weights of the batch (sample_weight times class_weight), or None."""
        result = None if weights is None else to_numpy(weights).astype(np.float64)
        if self.class_weight is not None:
            by_class = data_adapter.class_weights_for(self.class_weight, targets[0])
            result = by_class if result is None else result * by_class
        return result

    def _unreduced(self, index: int) -> Any:
        """The loss of output ``index`` giving one value per sample (a copy; the user's is untouched)."""
        if index not in self._unreduced_losses:
            fn = self.losses[index]
            if hasattr(fn, "reduction"):
                unreduced = copy.copy(fn)
                unreduced.reduction = "none"
            elif "reduction" in inspect.signature(fn).parameters:
                def unreduced(output: Any, target: Any, fn: Any = fn) -> Any:
                    return fn(output, target, reduction="none")
            else:
                raise TypeError("Trainer: sample_weight/class_weight need a loss with a reduction='none' mode, "
                                f"got {type(fn).__name__}")
            self._unreduced_losses[index] = unreduced
        return self._unreduced_losses[index]

    def _loss(self, outputs: list, targets: list, weights: np.ndarray | None) -> tuple[Any, list]:
        """``(total, per-output losses)``; with weights, the weighted mean ``sum(w l) / sum(w)``."""
        import rosenblatt as rb

        if len(outputs) != len(self.losses):
            raise ValueError(f"Trainer: the model returned {len(outputs)} outputs for {len(self.losses)} losses")
        parts = []
        for i, (output, target) in enumerate(zip(outputs, targets)):
            if weights is None:
                parts.append(self.losses[i](output, target))
                continue
            per = self._unreduced(i)(output, target)
            if per.ndim > 1:
                per = per.mean(axis=tuple(range(1, per.ndim)))
            w = self._to_device(weights.astype(per.dtype))
            parts.append(rb.sum(per * w) / max(float(weights.sum()), 1e-12))
        total = parts[0] * self.loss_weights[0] if self.loss_weights[0] != 1.0 else parts[0]
        for w, part in zip(self.loss_weights[1:], parts[1:]):
            total = total + part * w
        return total, parts

    # ------------------------------------------------------------------------------------------
    # the loop
    # ------------------------------------------------------------------------------------------
    def _forward(self, inputs: list) -> list:
        return _as_list(self.model(*[self._to_device(x) for x in inputs]), self.output_names)

    def _train_step(self, inputs: list, targets: list, weights: Any, params: list) -> tuple[list, Any, list]:
        outputs = self._forward(inputs)
        loss, parts = self._loss(outputs, targets, weights)
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
            from rosenblatt.nn.utils import clip_grad_norm_

            clip_grad_norm_(params, self.grad_clip)
        self.optimizer.step()
        return outputs, loss, parts

    def _run_epoch(self, loader: Any, split: Any, training: bool) -> dict[str, float]:
        """One pass over ``loader``: trains when ``training``; returns the epoch's logs."""
        import rosenblatt as rb

        n_out = len(self.losses)
        callbacks = self.fit_callbacks if training else []
        params = [p for p in self.model.parameters() if p.requires_grad] if training else []
        loss_sum, part_sums, weight_sum = 0.0, [0.0] * n_out, 0.0
        seen: list[tuple[list, list]] = [([], []) for _ in range(n_out)]  # (outputs, targets) for metrics
        for batch_index, batch in enumerate(loader):
            inputs, targets, weights = split(batch)
            if len(targets) != n_out:
                raise ValueError(f"Trainer: a batch holds {len(targets)} targets for {n_out} outputs")
            targets = [self._to_device(t) for t in targets]
            n = int(targets[0].shape[0])
            weights = self._sample_weights(targets, weights)
            for cb in callbacks:
                cb.on_batch_begin(batch_index, {"size": n})
            if training:
                outputs, loss, parts = self._train_step(inputs, targets, weights, params)
            else:
                with rb.no_grad():
                    outputs = self._forward(inputs)
                    loss, parts = self._loss(outputs, targets, weights)
            # Each batch counts by its total sample weight (its size when unweighted), so the
            # epoch loss is the weighted mean over all samples.
            batch_weight = float(n) if weights is None else float(weights.sum())
            value = float(loss.item())
            loss_sum += value * batch_weight
            part_sums = [s + float(p.item()) * batch_weight for s, p in zip(part_sums, parts)]
            weight_sum += batch_weight
            for i, specs in enumerate(self.metric_specs):
                if specs:
                    seen[i][0].append(to_numpy(outputs[i].detach() if hasattr(outputs[i], "detach") else outputs[i]))
                    seen[i][1].append(to_numpy(targets[i]))
            for cb in callbacks:
                cb.on_batch_end(batch_index, {"loss": value, "size": n})
            if training and self._should_stop():
                break
        if weight_sum == 0:
            raise ValueError("Trainer: the data produced no batches (is it empty, or drop_last with too few samples?)")
        logs = {"loss": loss_sum / weight_sum}
        for i, specs in enumerate(self.metric_specs):
            prefix = f"{self.output_names[i]}_" if n_out > 1 else ""
            if n_out > 1:
                logs[f"{prefix}loss"] = part_sums[i] / weight_sum
            if specs:
                y_pred, y_true = np.concatenate(seen[i][0]), np.concatenate(seen[i][1])
                for name, fn in specs:
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

    # ------------------------------------------------------------------------------------------
    # public API
    # ------------------------------------------------------------------------------------------
    def fit(self, x: Any = None, y: Any = None, batch_size: int | None = None, epochs: int = 1,
            verbose: str | int = "auto", callbacks: Sequence[Any] | None = None,
            validation_split: float | None = 0.0, validation_data: Any = None, shuffle: bool = True, *,
            val: Any = None, stratify: bool | Any = False, sample_weight: Any = None,
            class_weight: Mapping[int, float] | Sequence[float] | None = None, resume_from: str | None = None,
            seed: int | None = None) -> History:
        """Train for ``epochs`` epochs (counted from zero, so a resumed run stops at the same place).

        Args:
            x: input arrays with targets ``y`` (Keras's form; ``x`` a list for several inputs, ``y``
                a list or dict for several outputs), or, with ``y`` None, a DataLoader, a Dataset or a
                tuple ``(x, y)`` / ``(x, y, sample_weight)``.
            y: targets, when ``x`` holds inputs only.
            batch_size: batch size for arrays and Datasets (default 32; a DataLoader keeps its own).
            epochs: the total number of epochs.
            verbose: ``"auto"`` (default) and ``1``: a progress bar in a terminal, one line per epoch
                elsewhere (a file, a CI log); ``2``: one line per epoch; ``0``: silent. A
                ``ProgressBar`` among the callbacks takes the place of the default one.
            callbacks: callbacks (or schedulers) for this call, run after the Trainer's own.
            validation_split: hold out this fraction of the training data (arrays or a Dataset) for
                validation, *after* shuffling (Keras takes the last rows, which is wrong for sorted
                data); 0 for none.
            validation_data: validation data ``(x_val, y_val)`` / ``(x_val, y_val, w_val)``, a DataLoader
                or a Dataset. ``val=`` is the same argument under its older name.
            shuffle: shuffle the training data each epoch (arrays and Datasets).
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

        Returns:
            The :class:`History` (also ``trainer.history``).
        """
        where = "Trainer.fit"
        if self.optimizer is None:
            raise ValueError(f"{where}: no optimizer was given to the Trainer")
        if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
            raise ValueError(f"{where}: epochs must be a non-negative integer, got {epochs!r}")
        batch_size = data_adapter.check_batch_size(batch_size, where)
        if x is None:
            raise TypeError(f"{where}: no training data; call fit(x, y) or fit((x, y)) or fit(loader)")
        if val is not None and validation_data is not None:
            raise ValueError(f"{where}: give validation_data or val, not both")
        val = validation_data if validation_data is not None else val
        train = data_adapter.combine(x, y, sample_weight, where)
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
        class_weight = data_adapter.class_weight_array(class_weight, where)
        if validation_split:
            if not isinstance(validation_split, (float, int)) or not 0.0 < validation_split < 1.0:
                raise ValueError(f"{where}: validation_split must be in (0, 1), got {validation_split!r}")
            if val is not None:
                raise ValueError(f"{where}: give either validation_data or validation_split, not both")
            train, val = data_adapter.split_validation(train, float(validation_split), stratify, self.fit_seed,
                                                       self.output_names, where)
        elif stratify is not False and stratify is not None:
            raise ValueError(f"{where}: stratify only applies together with validation_split")
        train_loader, train_split = data_adapter.batches(train, self.output_names, batch_size, bool(shuffle),
                                                         self.fit_seed, f"{where}(train)")
        if self.data_parallel is not None:  # same start on every process, one shard of the data each
            train_loader = self.data_parallel.prepare(self.model, train_loader, self.fit_seed)
        val_loader = val_split = None
        if val is not None:
            val_loader, val_split = data_adapter.batches(val, self.output_names, batch_size, False, None,
                                                         f"{where}(validation_data)")
        self.train_loader = train_loader
        self.steps_per_epoch = len(train_loader) if hasattr(train_loader, "__len__") else None
        self.epochs, self.stop_training, self.history = int(epochs), False, History()
        self.fit_callbacks = self._callbacks_for_fit(callbacks, verbose, val_loader is not None)
        self.resuming = checkpoint is not None
        self.epoch = self._restore(checkpoint, train_loader) if checkpoint is not None else 0
        for cb in self.fit_callbacks:
            cb.on_train_begin({})
        logs: dict[str, float] = {}
        was_training = getattr(self.model, "training", True)
        saved_class_weight, self.class_weight = self.class_weight, class_weight  # for this fit only
        try:
            for epoch in range(self.epoch, self.epochs):
                for cb in self.fit_callbacks:
                    cb.on_epoch_begin(epoch, {})
                lr = self._current_lr()
                self.model.train()
                logs = self._run_epoch(train_loader, train_split, training=True)
                if val_loader is not None:
                    self.model.eval()
                    logs.update({f"val_{k}": v for k, v in self._run_epoch(val_loader, val_split, False).items()})
                if lr is not None:
                    logs["lr"] = lr
                self.history.append(epoch, logs)
                self.epoch = epoch + 1
                for cb in self.fit_callbacks:
                    cb.on_epoch_end(epoch, logs)
                if self._should_stop():
                    break
        finally:
            self.model.train(was_training)
            self.resuming = False
            self.class_weight = saved_class_weight
        for cb in self.fit_callbacks:
            cb.on_train_end(logs)
        return self.history

    def evaluate(self, x: Any = None, y: Any = None, batch_size: int | None = None, verbose: int = 0,
                 sample_weight: Any = None, return_dict: bool = True) -> dict[str, float] | list[float]:
        """Loss and metrics over ``x, y`` (or ``x`` = a DataLoader, a Dataset or ``(x, y[, w])``).

        Runs without gradients, the model in eval mode (then returned to its previous mode).
        ``verbose`` > 0 prints the results on one line. Returns ``{"loss": ..., metric: ...}``;
        ``return_dict=False`` gives the values alone, loss first, as Keras's default does.
        """
        where = "Trainer.evaluate"
        data = data_adapter.combine(x, y, sample_weight, where)
        loader, split = data_adapter.batches(data, self.output_names, data_adapter.check_batch_size(batch_size, where),
                                             False, None, where)
        was_training = getattr(self.model, "training", False)
        self.model.eval()
        try:
            logs = self._run_epoch(loader, split, training=False)
        finally:
            self.model.train(was_training)
        if verbose:
            from rosenblatt.train.callbacks.progress_bar import format_logs

            print(format_logs(logs))
        return logs if return_dict else list(logs.values())

    def predict(self, x: Any, batch_size: int | None = None, verbose: int = 0) -> np.ndarray | list[np.ndarray]:
        """Model outputs for ``x`` as NumPy arrays (a list for several outputs).

        ``x``: an array, a list of arrays (several inputs), a Dataset or a DataLoader (the inputs of
        each batch are used; targets, if present, are ignored). Runs in eval mode under ``no_grad``.
        ``verbose`` is accepted for Keras's signature; prediction prints nothing.
        """
        import rosenblatt as rb
        from rosenblatt.core import Tensor

        where = "Trainer.predict"
        batch_size = data_adapter.check_batch_size(batch_size, where)
        if isinstance(x, list) and all(isinstance(d, (np.ndarray, Tensor)) for d in x):
            x = (tuple(x),)  # several inputs
        elif isinstance(x, (np.ndarray, Tensor)) or (hasattr(x, "__array__") and not isinstance(x, (tuple, list))):
            x = (to_numpy(x),)
        loader, split = data_adapter.batches(x, self.output_names, batch_size, False, None, where, with_targets=False)
        was_training = getattr(self.model, "training", False)
        self.model.eval()
        collected: list[list[np.ndarray]] = []
        try:
            with rb.no_grad():
                for batch in loader:
                    outputs = self._forward(split(batch)[0])
                    collected = collected or [[] for _ in outputs]
                    for store, out in zip(collected, outputs):
                        store.append(to_numpy(out))
        finally:
            self.model.train(was_training)
        results = [np.concatenate(parts) for parts in collected]
        return results[0] if len(results) == 1 else results

    # ------------------------------------------------------------------------------------------
    # checkpoints
    # ------------------------------------------------------------------------------------------
    def _schedulers(self) -> list[Any]:
        return [cb.scheduler for cb in self.fit_callbacks if hasattr(cb, "scheduler")]

    def save_checkpoint(self, path: str) -> None:
        """Write a full checkpoint after the current epoch (what ``fit(resume_from=path)`` reads)."""
        from rosenblatt.io.checkpoint import save_checkpoint

        schedulers = self._schedulers()
        extra: dict[str, Any] = {
            "trainer": {"seed": self.fit_seed, "epochs": self.epochs},
            "callbacks": [{"class": type(cb).__name__, "state": cb.state_dict()} for cb in self.fit_callbacks],
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
        for cb, saved in zip(self.fit_callbacks, extra.get("callbacks", [])):
            if saved.get("class") == type(cb).__name__:
                cb.load_state_dict(saved.get("state", {}))
        if checkpoint["history"] is not None:
            self.history = checkpoint["history"]
        if isinstance(train_loader, DataLoader) and "loader" in extra:
            train_loader.load_state_dict(extra["loader"])
        if checkpoint["rng"] is not None:
            set_rng_state(checkpoint["rng"])
        return int(checkpoint["epoch"])
