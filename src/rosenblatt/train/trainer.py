"""``Trainer``: Keras's ``fit``/``evaluate``/``predict`` on PyTorch-style parts.

The loop is small (:meth:`Trainer._run_epoch`): for each batch, forward, loss, backward, optional
gradient clipping, optimiser step; callbacks run at batch and epoch boundaries; per-epoch results go
into a :class:`~rosenblatt.train.History`. Around it: turning the user's data into batches
(:mod:`rosenblatt.train.data_adapter`), the losses and metrics of the outputs
(:mod:`rosenblatt.train.outputs`), loss and optimiser names (:mod:`rosenblatt.train.names`), and
each callback in its own file under :mod:`rosenblatt.train.callbacks`.

Both call shapes work: Keras's ``fit(x, y, batch_size=..., epochs=..., validation_split=...,
validation_data=...)`` and ``fit((x, y), val=...)``, ``fit(loader)``.
"""

from __future__ import annotations

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
from rosenblatt.train.names import make_optimizer
from rosenblatt.train.outputs import EpochLogs, Losses, Results, resolve_metrics
from rosenblatt.train.regularizers import get_regularizer

_VERBOSE = ("auto", 0, 1, 2)


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
        self.losses = Losses(loss, loss_weights)
        self.output_names = self.losses.names
        self.optimizer = make_optimizer(optimizer, model)
        self.metrics = resolve_metrics(metrics, self.output_names)
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
        # Data parallelism over MPI (rosenblatt.distributed.trainer_support): None in one process.
        self.data_parallel = data_parallel_for(distributed)
        if self.data_parallel is not None:  # the callbacks that write or print run on rank 0 only
            self.callbacks = self.data_parallel.callbacks_for_this_rank(self.callbacks)
        self.fit_callbacks: list[Callback] = list(self.callbacks)  # those of the current (or last) fit

    # ------------------------------------------------------------------------------------------
    # configuration
    # ------------------------------------------------------------------------------------------
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

    def _sample_weights(self, targets: list, weights: Any) -> np.ndarray | None:
        """Per-sample weights of the batch (sample_weight times class_weight), or None."""
        result = None if weights is None else to_numpy(weights).astype(np.float64)
        if self.class_weight is not None:
            by_class = data_adapter.class_weights_for(self.class_weight, targets[0])
            result = by_class if result is None else result * by_class
        return result

    # ------------------------------------------------------------------------------------------
    # the loop
    # ------------------------------------------------------------------------------------------
    def _forward(self, inputs: list) -> list:
        return self.losses.as_list(self.model(*[self._to_device(x) for x in inputs]))

    def _train_step(self, inputs: list, targets: list, weights: Any, params: list) -> tuple[list, Any, list]:
        outputs = self._forward(inputs)
        loss, parts = self.losses(outputs, targets, weights, self._to_device)
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

        callbacks = self.fit_callbacks if training else []
        params = [p for p in self.model.parameters() if p.requires_grad] if training else []
        epoch = EpochLogs(self.losses, self.metrics)
        for batch_index, batch in enumerate(loader):
            inputs, targets, weights = split(batch)
            if len(targets) != len(self.losses):
                raise ValueError(f"Trainer: a batch holds {len(targets)} targets for {len(self.losses)} outputs")
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
                    loss, parts = self.losses(outputs, targets, weights, self._to_device)
            # Each batch counts by its total sample weight (its size when unweighted), so the
            # epoch loss is the weighted mean over all samples.
            value = float(loss.item())
            epoch.add(value, parts, float(n) if weights is None else float(weights.sum()), outputs, targets)
            for cb in callbacks:
                cb.on_batch_end(batch_index, {"loss": value, "size": n})
            if training and self._should_stop():
                break
        logs = epoch.result()
        if training and self.data_parallel is not None:
            logs = self.data_parallel.reduce_logs(logs, epoch.weight)
        return logs

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
                 sample_weight: Any = None, return_dict: bool = True) -> Results | list[float]:
        """Loss and metrics over ``x, y`` (or ``x`` = a DataLoader, a Dataset or ``(x, y[, w])``).

        Runs without gradients, the model in eval mode (then returned to its previous mode).
        ``verbose`` > 0 prints the results on one line. Returns ``{"loss": ..., metric: ...}``, which
        also reads by position as Keras's list does (``results[0]`` is the loss; see
        :class:`~rosenblatt.train.outputs.Results`); ``return_dict=False`` gives the list itself.
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
        return Results(logs) if return_dict else list(logs.values())

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
