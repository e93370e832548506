"""Semantics of every built-in callback."""

from __future__ import annotations

import io

import numpy as np
import pytest

import rosenblatt as rb
import rosenblatt.nn as nn
from rosenblatt.io import load_checkpoint
from rosenblatt.train import (
    Callback,
    CSVLogger,
    EarlyStopping,
    GradientMonitor,
    LRSchedulerCallback,
    ModelCheckpoint,
    ProgressBar,
    TerminateOnNaN,
    Trainer,
)


def _data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n)
    x = (rng.normal(size=(n, 3)) + np.eye(2, 3)[y]).astype(np.float32)
    return x, y


class Scripted(Callback):
    """Overwrites logs[key] with a fixed sequence and snapshots the weights of each epoch."""

    def __init__(self, values, key="val_loss"):
        super().__init__()
        self.values, self.key, self.snapshots = values, key, []

    def on_epoch_end(self, epoch, logs=None):
        logs[self.key] = self.values[epoch]
        self.snapshots.append(self.model.weight.numpy().copy())


def _trainer(callbacks, lr=0.1, metrics=("accuracy",)):
    rb.manual_seed(0)
    model = nn.Linear(3, 2)
    return Trainer(model, nn.CrossEntropyLoss(), rb.optim.SGD(model.parameters(), lr=lr), metrics=metrics,
                   callbacks=callbacks)


def test_early_stopping_stops_after_patience_and_restores_best(capsys):
    script = Scripted([1.0, 0.5, 0.6, 0.7, 0.55, 0.4, 0.3])
    stop = EarlyStopping(patience=3)
    trainer = _trainer([script, stop])
    x, y = _data()
    history = trainer.fit((x, y), val=(x, y), epochs=7, batch_size=16, seed=0, verbose=0)  # EarlyStopping's lines only
    assert len(history) == 5 and stop.stopped_epoch == 4 and stop.best_epoch == 1
    assert np.array_equal(trainer.model.weight.numpy(), script.snapshots[1])
    out = capsys.readouterr().out.splitlines()
    assert out == ["EarlyStopping: stopped after epoch 5: val_loss has not improved for 3 epochs (best 0.5 in epoch 2)",
                   "EarlyStopping: restored the weights of epoch 2 (val_loss 0.5)"]
    quiet = EarlyStopping(patience=3, verbose=False)
    _trainer([Scripted([1.0, 0.5, 0.6, 0.7, 0.55]), quiet]).fit((x, y), val=(x, y), epochs=5, batch_size=16,
                                                                verbose=0)
    assert capsys.readouterr().out == ""


def test_early_stopping_restores_best_when_epochs_run_out():
    script = Scripted([0.9, 0.2, 0.5, 0.6])
    stop = EarlyStopping(patience=10)
    trainer = _trainer([script, stop])
    x, y = _data()
    trainer.fit((x, y), val=(x, y), epochs=4, batch_size=16, seed=0)
    assert stop.stopped_epoch is None
    assert np.array_equal(trainer.model.weight.numpy(), script.snapshots[1])
    keep = EarlyStopping(patience=10, restore_best_weights=False)
    script2 = Scripted([0.9, 0.2, 0.5, 0.6])
    trainer = _trainer([script2, keep])
    trainer.fit((x, y), val=(x, y), epochs=4, batch_size=16, seed=0)
    assert np.array_equal(trainer.model.weight.numpy(), script2.snapshots[3])


def test_early_stopping_max_mode_min_delta_and_missing_key():
    script = Scripted([0.5, 0.52, 0.53, 0.9], key="val_accuracy")
    stop = EarlyStopping(monitor="val_accuracy", patience=2, min_delta=0.05)
    trainer = _trainer([script, stop])
    x, y = _data()
    history = trainer.fit((x, y), val=(x, y), epochs=4, batch_size=16)
    assert stop.mode == "max" and len(history) == 3  # +0.02 and +0.03 are below min_delta
    with pytest.raises(ValueError, match="'val_loss' is not in the logs.*validation data"):
        _trainer([EarlyStopping()]).fit((x, y), epochs=1)


def test_model_checkpoint_best_only_and_every_epoch(tmp_path):
    x, y = _data()
    best = ModelCheckpoint(tmp_path / "best.safetensors")
    trainer = _trainer([Scripted([1.0, 0.5, 0.7, 0.6]), best])
    trainer.fit((x, y), val=(x, y), epochs=4, batch_size=16)
    saved = load_checkpoint(tmp_path / "best.safetensors")
    assert saved["epoch"] == 2 and len(saved["history"]) == 2  # written after epoch index 1
    every = ModelCheckpoint(tmp_path / "ep{epoch}.safetensors", save_best_only=False, save_weights_only=True)
    trainer = _trainer([every])
    trainer.fit((x, y), epochs=3, batch_size=16)
    assert sorted(p.name for p in tmp_path.glob("ep*.safetensors")) == ["ep1.safetensors", "ep2.safetensors",
                                                                        "ep3.safetensors"]
    weights = rb.load(tmp_path / "ep3.safetensors")
    assert np.array_equal(weights["weight"].numpy(), trainer.model.weight.numpy())


def test_model_checkpoint_never_saves_an_epoch_with_a_non_finite_loss(tmp_path):
    class Diverge(Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch >= 2:
                logs["loss"] = float("nan")

    x, y = _data()
    last = ModelCheckpoint(tmp_path / "last.safetensors", save_best_only=False)
    _trainer([Diverge(), last]).fit((x, y), epochs=4, batch_size=16)
    assert load_checkpoint(tmp_path / "last.safetensors")["epoch"] == 2  # epochs 3 and 4 were not saved


def test_lr_scheduler_callback_step_and_plateau():
    x, y = _data()
    trainer = _trainer([])
    scheduler = rb.optim.lr_scheduler.StepLR(trainer.optimizer, step_size=1, gamma=0.5)
    trainer.callbacks = [LRSchedulerCallback(scheduler)]
    history = trainer.fit((x, y), epochs=3, batch_size=16)
    assert history["lr"] == pytest.approx([0.1, 0.05, 0.025])
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(0.0125)
    trainer = _trainer([])
    plateau = rb.optim.lr_scheduler.ReduceLROnPlateau(trainer.optimizer, factor=0.1, patience=1)
    trainer.callbacks = [Scripted([1.0, 1.0, 1.0, 1.0, 1.0]), LRSchedulerCallback(plateau, monitor="val_loss")]
    history = trainer.fit((x, y), val=(x, y), epochs=5, batch_size=16)
    assert history["lr"] == pytest.approx([0.1, 0.1, 0.1, 0.01, 0.01])


def test_progress_bar_plain_lines_when_not_a_terminal():
    out = io.StringIO()
    trainer = _trainer([ProgressBar(file=out)])
    x, y = _data(200)
    trainer.fit((x, y), val=(x, y), epochs=3, batch_size=8)  # 25 batches per epoch
    lines = out.getvalue().splitlines()
    assert len(lines) == 3 and "\r" not in out.getvalue()
    assert lines[0].startswith("epoch 1/3") and "val_acc 0." in lines[2] and "val_loss 0." in lines[2]
    assert max(len(line) for line in lines) <= 80


@pytest.mark.parametrize("logs,expected", [
    ({"loss": 0.5, "accuracy": 0.9, "val_loss": 0.6, "val_accuracy": 0.8, "lr": 0.001},
     "loss 0.5000 - acc 0.9000 - val_loss 0.6000 - val_acc 0.8000"),
    ({"loss": 0.5, "mae": 0.1, "r2": 0.9, "val_loss": 0.6, "val_mae": 0.2, "val_r2": 0.8, "lr": 0.001},
     "loss 0.5000 - val_loss 0.6000 - val_mae 0.2000 - val_r2 0.8000"),
    ({"loss": 0.5, "lr": 0.001}, "loss 0.5000 - lr 0.001"),
])
def test_progress_line_fits_with_validation_numbers(logs, expected):
    from rosenblatt.train.callbacks.progress_bar import format_logs

    assert format_logs(logs, width=59) == expected


def test_progress_bar_with_tqdm_does_not_flood():
    pytest.importorskip("tqdm")
    out = io.StringIO()
    trainer = _trainer([ProgressBar(file=out, use_tqdm=True, min_interval=10.0)])
    x, y = _data(200)
    trainer.fit((x, y), epochs=2, batch_size=8)
    text = out.getvalue()
    assert text.count("\n") == 2 and "epoch 2/2" in text and "loss" in text


def test_csv_logger_rows(tmp_path):
    path = tmp_path / "log.csv"
    trainer = _trainer([CSVLogger(path)])
    x, y = _data()
    history = trainer.fit((x, y), val=(x, y), epochs=3, batch_size=16)
    rows = [line.split(",") for line in path.read_text().splitlines()]
    assert rows[0] == ["epoch", *history.history]
    assert len(rows) == 4 and float(rows[3][2]) == pytest.approx(history["accuracy"][2])


def test_terminate_on_nan():
    class NanAfter:
        def __init__(self):
            self.calls = 0
            self.loss = nn.CrossEntropyLoss()

        def __call__(self, out, target):
            self.calls += 1
            value = self.loss(out, target)
            return value * float("nan") if self.calls == 3 else value

    rb.manual_seed(0)
    model = nn.Linear(3, 2)
    stop = TerminateOnNaN()
    trainer = Trainer(model, NanAfter(), rb.optim.SGD(model.parameters(), lr=0.1), callbacks=[stop])
    x, y = _data()
    history = trainer.fit((x, y), epochs=5, batch_size=16)
    assert stop.terminated_at == (0, 2) and len(history) == 1


def test_terminate_on_nan_checks_the_parameters_each_epoch(tmp_path):
    """A non-finite parameter that leaves the loss finite (here: one the forward does not read)
    stops training at the end of its epoch, named."""

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(3, 2)
            self.spare = rb.nn.Parameter(rb.zeros(4))

        def forward(self, x):
            return self.linear(x)

    class Poison(Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_batch_end(self, batch, logs=None):
            if self.epoch == 1 and batch == 1:  # a write no loss sees
                self.model.spare.data[2] = np.inf

    rb.manual_seed(0)
    model = Model()
    stop = TerminateOnNaN()
    path = tmp_path / "last.safetensors"
    save = ModelCheckpoint(path, save_best_only=False, save_weights_only=True)
    trainer = Trainer(model, nn.CrossEntropyLoss(), rb.optim.SGD(model.parameters(), lr=0.1),
                      callbacks=[Poison(), stop, save])
    x, y = _data()
    history = trainer.fit((x, y), epochs=5, batch_size=16)
    assert stop.terminated_at == (1, None) and stop.reason == "spare" and len(history) == 2
    saved = rb.load(path)  # epoch 1's weights: the poisoned epoch 2 was not written
    assert np.isfinite(saved["spare"].numpy()).all()


def test_terminate_on_nan_sees_a_nan_weight_hidden_by_a_fused_relu():
    """oneDNN's ReLU turns NaN into 0: with a NaN convolution weight inside a chain the loss can stay
    finite; the end-of-epoch check still stops training (under either kernel set)."""
    rb.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
                          nn.Flatten(), nn.Linear(16 * 16 * 16, 2))
    model[0].weight.data[0, 0, 1, 1] = np.nan
    stop = TerminateOnNaN()
    trainer = Trainer(model, nn.CrossEntropyLoss(), rb.optim.SGD(model.parameters(), lr=0.0),
                      callbacks=[stop])
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 8, 16, 16)).astype(np.float32)
    y = rng.integers(0, 2, 32)
    trainer.fit((x, y), epochs=3, batch_size=16)
    assert stop.terminated_at is not None and stop.terminated_at[0] == 0
    assert stop.reason in ("loss", "0.weight")


def test_gradient_monitor_norms_and_vanishing_warning():
    rb.manual_seed(0)
    layers = []
    for _ in range(6):
        layers += [nn.Linear(8, 8), nn.Sigmoid()]
    model = nn.Sequential(nn.Linear(3, 8), nn.Sigmoid(), *layers, nn.Linear(8, 2))
    warnings = io.StringIO()
    monitor = GradientMonitor(warn_ratio=0.05, file=warnings)
    trainer = Trainer(model, nn.CrossEntropyLoss(), rb.optim.SGD(model.parameters(), lr=0.01), callbacks=[monitor])
    x, y = _data()
    trainer.fit((x, y), epochs=2, batch_size=len(y))  # one batch per epoch: the norm is that batch's
    assert list(monitor.norms) == [str(i) for i in range(0, 15, 2)] and all(len(v) == 2 for v in monitor.norms.values())
    last = model[14]
    expected = np.sqrt((last.weight.grad.numpy() ** 2).sum() + (last.bias.grad.numpy() ** 2).sum())
    assert monitor.norms["14"][-1] == pytest.approx(expected, rel=1e-5)
    assert monitor.norms["0"][-1] < 0.05 * monitor.norms["14"][-1]
    assert "vanishing gradients" in warnings.getvalue()


def test_callback_hooks_order():
    calls = []

    class Recorder(Callback):
        def on_train_begin(self, logs=None):
            calls.append("train_begin")

        def on_epoch_begin(self, epoch, logs=None):
            calls.append(f"epoch_begin {epoch}")

        def on_batch_end(self, batch, logs=None):
            calls.append(f"batch {batch}")

        def on_epoch_end(self, epoch, logs=None):
            calls.append(f"epoch_end {epoch} {sorted(logs)}")

        def on_train_end(self, logs=None):
            calls.append("train_end")

    x, y = _data(32)
    _trainer([Recorder()]).fit((x, y), epochs=2, batch_size=16)
    assert calls == ["train_begin", "epoch_begin 0", "batch 0", "batch 1", "epoch_end 0 ['accuracy', 'loss', 'lr']",
                     "epoch_begin 1", "batch 0", "batch 1", "epoch_end 1 ['accuracy', 'loss', 'lr']", "train_end"]


# -- TensorBoard -------------------------------------------------------------------------------------


def test_crc32c_matches_the_standard_check_value():
    from rosenblatt.io.event_file import crc32c

    assert crc32c(b"123456789") == 0xE3069283 and crc32c(b"") == 0


def test_tensorboard_event_files_are_read_back_by_tensorboard(tmp_path):
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    from rosenblatt.train import TensorBoard

    x, y = _data()
    trainer = _trainer([TensorBoard(tmp_path / "run", histogram_freq=2)])
    history = trainer.fit((x, y), val=(x, y), epochs=3, batch_size=16, verbose=0)

    def load(folder):
        files = list((tmp_path / "run" / folder).glob("events.out.tfevents.*"))
        assert len(files) == 1, files
        accumulator = event_accumulator.EventAccumulator(str(files[0]), size_guidance={"histograms": 0})
        accumulator.Reload()
        return accumulator

    train, validation = load("train"), load("validation")
    assert set(train.Tags()["scalars"]) == {"epoch_loss", "epoch_accuracy", "epoch_learning_rate"}
    for tag, key in (("epoch_loss", "loss"), ("epoch_accuracy", "accuracy"), ("epoch_learning_rate", "lr")):
        events = train.Scalars(tag)
        assert [e.step for e in events] == [0, 1, 2]
        assert [e.value for e in events] == pytest.approx(history[key], rel=1e-6)
    assert [e.value for e in validation.Scalars("epoch_loss")] == pytest.approx(history["val_loss"], rel=1e-6)
    assert set(train.Tags()["histograms"]) == {"weight", "bias"}
    histograms = train.Histograms("weight")
    assert [h.step for h in histograms] == [0, 2]  # every second epoch
    last, weights = histograms[-1].histogram_value, trainer.model.weight.numpy()
    assert last.num == weights.size and sum(last.bucket) == weights.size
    assert last.min == pytest.approx(weights.min()) and last.max == pytest.approx(weights.max())


def test_tensorboard_rejects_bad_arguments():
    from rosenblatt.train import TensorBoard

    with pytest.raises(ValueError, match="TensorBoard: histogram_freq must be a non-negative integer"):
        TensorBoard("logs", histogram_freq=-1)
