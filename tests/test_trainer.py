"""rb.train.Trainer: learning, weights, splits, several inputs/outputs, modes, regularisation."""

from __future__ import annotations

import numpy as np
import pytest

import rosenblatt as rb
import rosenblatt.nn as nn
from rosenblatt.data import DataLoader, TensorDataset, load_digits, train_val_test_split
from rosenblatt.train import L2, Trainer


def _digits():
    x, y = load_digits()
    return train_val_test_split(x, y, val=0.1, test=0.2, stratify=y, seed=0)


def test_digits_mlp_reaches_95_percent():
    rb.manual_seed(0)
    (xtr, ytr), (xva, yva), (xte, yte) = _digits()
    model = rb.models.MLP([64, 128, 10])
    trainer = Trainer(model, nn.CrossEntropyLoss(), rb.optim.Adam(model.parameters(), lr=1e-2))
    history = trainer.fit((xtr, ytr), val=(xva, yva), epochs=8, batch_size=64, seed=0)
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy", "lr"}
    assert len(history) == 8 and history["loss"][-1] < history["loss"][0] / 5
    result = trainer.evaluate((xte, yte))
    assert result["accuracy"] >= 0.95, result
    probs = trainer.predict(xte)
    assert probs.shape == (len(yte), 10) and isinstance(probs, np.ndarray)
    assert np.mean(probs.argmax(1) == yte) == pytest.approx(result["accuracy"])
    # The same data as a DataLoader or a Dataset gives the same evaluation.
    assert trainer.evaluate(DataLoader(TensorDataset(xte, yte), batch_size=50))["accuracy"] == result["accuracy"]
    assert trainer.evaluate(TensorDataset(xte, yte))["loss"] == pytest.approx(result["loss"], rel=1e-6)


def _blobs(n=120, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=n)
    x = (rng.normal(size=(n, 4)) + 2.0 * np.eye(3, 4)[y]).astype(np.float32)
    return x, y


def test_sample_weight_and_class_weight_match_their_definitions():
    rb.manual_seed(0)
    x, y = _blobs()
    model = nn.Linear(4, 3)
    trainer = Trainer(model, nn.CrossEntropyLoss(), rb.optim.SGD(model.parameters(), lr=0.1), metrics=())
    w = np.zeros(len(y))
    w[:40] = 1.0
    weighted = trainer.evaluate((x, y, w), batch_size=16)["loss"]
    assert weighted == pytest.approx(trainer.evaluate((x[:40], y[:40]))["loss"], rel=1e-5)
    # class_weight equals PyTorch-style CrossEntropyLoss(weight=...): sum(w_i l_i) / sum(w_i).
    cw = np.array([1.0, 3.0, 0.5], dtype=np.float32)
    trainer.class_weight = cw.astype(np.float64)
    with_cw = trainer.evaluate((x, y), batch_size=len(y))["loss"]
    trainer.class_weight = None
    reference = nn.CrossEntropyLoss(weight=rb.tensor(cw))(model(rb.tensor(x)), rb.tensor(y)).item()
    assert with_cw == pytest.approx(reference, rel=1e-5)
    # fit applies class_weight to the validation loss too.
    history = trainer.fit((x, y), val=(x, y), epochs=1, batch_size=len(y), class_weight={0: 1.0, 1: 3.0, 2: 0.5},
                          shuffle=False)
    trainer.class_weight = cw.astype(np.float64)
    assert history["val_loss"][0] == pytest.approx(trainer.evaluate((x, y), batch_size=len(y))["loss"], rel=1e-5)


def test_sample_weight_zero_samples_do_not_train():
    x, y = _blobs()
    w = np.ones(len(y))
    w[60:] = 0.0
    results = []
    for data in ((x, y, w), (x[:60], y[:60])):
        rb.manual_seed(1)
        model = nn.Linear(4, 3)
        trainer = Trainer(model, nn.CrossEntropyLoss(), rb.optim.SGD(model.parameters(), lr=0.5), metrics=())
        trainer.fit(data, epochs=3, batch_size=len(y), shuffle=False)
        results.append(model.weight.numpy().copy())
    assert np.allclose(results[0], results[1], atol=1e-6)


def test_validation_split_shuffles_and_stratifies():
    x, y = _blobs(200)
    order = np.argsort(y, kind="stable")  # sorted labels: Keras's last-rows split would see one class
    x, y = x[order], y[order]
    seen = []

    def record(y_true, y_pred):
        seen.append(np.asarray(y_true))
        return 0.0

    model = nn.Linear(4, 3)
    trainer = Trainer(model, nn.CrossEntropyLoss(), rb.optim.SGD(model.parameters(), lr=0.1), metrics=(record,))
    history = trainer.fit((x, y), epochs=1, validation_split=0.25, stratify=True, seed=0)
    train_labels, val_labels = seen
    assert len(val_labels) == 50 and len(train_labels) == 150
    expected = np.bincount(y) / 4
    assert np.all(np.abs(np.bincount(val_labels, minlength=3) - expected) <= 1)
    assert "val_record" in history.history
    seen.clear()
    trainer.fit((x, y), epochs=1, validation_split=0.25, seed=0)
    assert len(np.unique(seen[1])) == 3


class _TwoInTwoOut(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 8)
        self.b = nn.Linear(2, 8)
        self.cls = nn.Linear(8, 3)
        self.reg = nn.Linear(8, 1)

    def forward(self, xa, xb):
        h = rb.tanh(self.a(xa) + self.b(xb))
        return self.cls(h), self.reg(h)


def test_multi_input_multi_output():
    rb.manual_seed(0)
    x, y = _blobs(150)
    extra = np.random.default_rng(1).normal(size=(150, 2)).astype(np.float32)
    target = (extra[:, :1] * 2.0).astype(np.float32)
    model = _TwoInTwoOut()
    trainer = Trainer(model, [nn.CrossEntropyLoss(), nn.MSELoss()], rb.optim.Adam(model.parameters(), lr=0.02),
                      metrics={"output_0": ["accuracy"], "output_1": ["mae"]}, loss_weights=[1.0, 0.5])
    history = trainer.fit(((x, extra), (y, target)), val=((x, extra), (y, target)), epochs=15, batch_size=32, seed=0)
    keys = set(history.history)
    assert {"loss", "output_0_loss", "output_1_loss", "output_0_accuracy", "output_1_mae", "val_output_1_mae"} <= keys
    last = {k: v[-1] for k, v in history.history.items()}
    assert last["loss"] == pytest.approx(last["output_0_loss"] + 0.5 * last["output_1_loss"], rel=1e-5)
    assert last["val_output_0_accuracy"] > 0.85 and last["val_output_1_mae"] < 0.3
    cls, reg = trainer.predict([x, extra])
    assert cls.shape == (150, 3) and reg.shape == (150, 1)
    # A DataLoader with flat batches (inputs..., targets...) works the same way.
    loader = DataLoader(TensorDataset(x, extra, y, target), batch_size=50)
    by_arrays = trainer.evaluate(((x, extra), (y, target)))
    assert trainer.evaluate(loader)["loss"] == pytest.approx(by_arrays["loss"], rel=1e-5)


def test_binary_accuracy_key_and_logit_threshold():
    rb.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 2)).astype(np.float32)
    y = (x[:, :1] + x[:, 1:] > 0).astype(np.float32)
    model = nn.Linear(2, 1)
    trainer = Trainer(model, nn.BCEWithLogitsLoss(), rb.optim.Adam(model.parameters(), lr=0.1))
    history = trainer.fit((x, y), epochs=20, batch_size=50, seed=0)
    assert "binary_accuracy" in history.history and "accuracy" not in history.history
    assert history["binary_accuracy"][-1] > 0.95
    logits = trainer.predict(x)
    assert trainer.evaluate((x, y))["binary_accuracy"] == pytest.approx(np.mean((logits > 0) == (y > 0.5)))


class _Probe(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 2)
        self.drop = nn.Dropout(0.5)
        self.log = []

    def forward(self, x):
        self.log.append((self.training, rb.is_grad_enabled()))
        return self.drop(self.fc(x))


def test_modes_and_no_grad():
    x = np.ones((8, 3), np.float32)
    y = np.zeros(8, np.int64)
    model = _Probe()
    trainer = Trainer(model, nn.CrossEntropyLoss(), rb.optim.SGD(model.parameters(), lr=0.1))
    model.eval()
    trainer.fit((x, y), val=(x, y), epochs=1, batch_size=8)
    assert model.log == [(True, True), (False, False)]
    assert model.training is False  # the previous mode is restored
    model.log.clear()
    model.train()
    a, b = trainer.predict(x), trainer.predict(x)
    assert np.array_equal(a, b)  # dropout is off in predict
    trainer.evaluate((x, y))
    assert model.log == [(False, False)] * 3 and model.training is True


def test_regularizer_shrinks_weights_and_grad_clip_bounds_steps():
    x, y = _blobs()
    norms = []
    for reg in (None, L2(0.5), {"l2": 0.5}):
        rb.manual_seed(0)
        model = nn.Linear(4, 3)
        trainer = Trainer(model, nn.CrossEntropyLoss(), rb.optim.SGD(model.parameters(), lr=0.1), regularizer=reg)
        history = trainer.fit((x, y), epochs=5, batch_size=30, seed=0)
        norms.append(float(np.linalg.norm(model.weight.numpy())))
        assert history["loss"][-1] > 0
    assert norms[1] < 0.5 * norms[0] and norms[1] == pytest.approx(norms[2])
    # the reported loss excludes the penalty, exactly: with lr=0 the weights stay put, so the epoch's
    # mean batch loss equals the data loss that evaluate() reports, and not data loss + penalty
    rb.manual_seed(0)
    model = nn.Linear(4, 3)
    trainer = Trainer(model, nn.CrossEntropyLoss(), rb.optim.SGD(model.parameters(), lr=0.0), regularizer=L2(0.5))
    history = trainer.fit((x, y), epochs=1, batch_size=30, seed=0)  # 120 = 4 equal batches
    data_loss = trainer.evaluate((x, y))["loss"]
    penalty = 0.5 * float((model.weight.numpy().astype(np.float64) ** 2).sum())
    assert history["loss"][0] == pytest.approx(data_loss, rel=1e-6)
    assert abs(history["loss"][0] - (data_loss + penalty)) > 100 * 1e-6 * data_loss
    rb.manual_seed(0)
    model = nn.Linear(4, 3)
    before = [p.numpy().copy() for p in model.parameters()]
    trainer = Trainer(model, nn.CrossEntropyLoss(), rb.optim.SGD(model.parameters(), lr=1.0), grad_clip=1e-3)
    trainer.fit((x * 100, y), epochs=1, batch_size=len(y))
    step = np.sqrt(sum(((p.numpy() - q) ** 2).sum() for p, q in zip(model.parameters(), before)))
    assert 0 < step <= 1e-3 * 1.001


def test_bad_inputs_are_reported():
    model = nn.Linear(4, 3)
    trainer = Trainer(model, nn.CrossEntropyLoss(), rb.optim.SGD(model.parameters(), lr=0.1))
    x, y = _blobs(10)
    with pytest.raises(ValueError, match="same length"):
        trainer.fit((x, y[:5]))
    with pytest.raises(ValueError, match="2 target arrays for 1 outputs"):
        trainer.fit((x, (y, y)))
    with pytest.raises(ValueError, match="validation_split"):
        trainer.fit((x, y), validation_split=1.5)
    with pytest.raises(ValueError, match="unknown metric"):
        Trainer(model, nn.CrossEntropyLoss(), metrics=("acuracy",))
    with pytest.raises(ValueError, match="unknown loss"):
        Trainer(model, "cross-entropy-ish")


# -- Keras's call shape ---------------------------------------------------------------------------


def _softmax_mlp():
    return nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3), nn.Softmax(axis=1))


def test_keras_call_shape_with_names_learns_and_prints_one_line_per_epoch(capsys):
    rb.manual_seed(0)
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, size=300)
    x = (rng.normal(size=(300, 4)) + 4.0 * np.eye(3, 4)[y]).astype(np.float32)  # > 95 % reachable
    model = Trainer(_softmax_mlp(), optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, batch_size=16, epochs=12, validation_split=0.2, seed=0)
    lines = capsys.readouterr().out.strip().splitlines()  # not a terminal: one plain line per epoch
    assert len(lines) == 12 and lines[-1].startswith("epoch 12/12") and "val_acc" in lines[-1]
    assert history.history["val_accuracy"][-1] > 0.93 and isinstance(model.optimizer, rb.optim.Adam)
    score = model.evaluate(x, y)
    assert score["accuracy"] > 0.93 and capsys.readouterr().out == ""
    assert model.evaluate(x, y, return_dict=False) == [score["loss"], score["accuracy"]]
    assert (score[0], score[1], score[-1]) == (score["loss"], score["accuracy"], score["accuracy"])  # Keras's score[0]
    with pytest.raises(IndexError, match="index 2 out of range for 2 values"):
        score[2]
    probs = model.predict(x)
    assert probs.shape == (300, 3) and np.allclose(probs.sum(1), 1, atol=1e-5)
    # validation_data, verbose=0 (silent) and verbose=2 (one line per epoch, also in a terminal)
    model.fit(x, y, epochs=2, validation_data=(x[:50], y[:50]), verbose=0)
    assert capsys.readouterr().out == ""
    model.fit(x, y, epochs=2, verbose=2)
    assert len(capsys.readouterr().out.strip().splitlines()) == 2


def test_keras_loss_names_mean_what_they_mean_in_keras():
    from rosenblatt.train.names import make_loss

    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4), size=6).astype(np.float32)
    labels = rng.integers(0, 4, size=6)
    expected = -np.mean(np.log(probs[np.arange(6), labels]))
    sparse = make_loss("sparse_categorical_crossentropy")(rb.tensor(probs), rb.tensor(labels)).item()
    dense = make_loss("categorical_crossentropy")(rb.tensor(probs), rb.tensor(np.eye(4, dtype=np.float32)[labels]))
    assert sparse == pytest.approx(expected, rel=1e-5) and dense.item() == pytest.approx(expected, rel=1e-5)
    # Keras clips probabilities to [1e-7, 1 - 1e-7]: a zero probability costs -log(1e-7), not inf.
    zero = make_loss("sparse_categorical_crossentropy")(rb.tensor([[1.0, 0.0]]), rb.tensor([1])).item()
    assert zero == pytest.approx(-np.log(1e-7), rel=1e-4)
    assert isinstance(make_loss("binary_crossentropy"), nn.BCELoss)
    assert isinstance(make_loss("mse"), nn.MSELoss) and isinstance(make_loss("MAE"), nn.L1Loss)
    # Keras's target shapes: 0/1 integer labels (N,) for outputs (N, 1).
    p = rb.tensor([[0.9], [0.2], [0.6]])
    labels = np.array([1, 0, 0])
    expected = -np.mean(np.log([0.9, 0.8, 0.4]))
    assert make_loss("binary_crossentropy")(p, labels).item() == pytest.approx(expected, rel=1e-5)
    assert make_loss("mse")(p, labels).item() == pytest.approx(np.mean((p.numpy()[:, 0] - labels) ** 2), rel=1e-6)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 2)).astype(np.float32)
    y = (x[:, 0] - x[:, 1] > 0).astype(np.int64)
    rb.manual_seed(0)
    model = Trainer(nn.Sequential(nn.Linear(2, 1), nn.Sigmoid()), "binary_crossentropy", "adam")
    model.optimizer.param_groups[0]["lr"] = 0.05
    history = model.fit(x, y, epochs=10, verbose=0, seed=0)
    assert history["binary_accuracy"][-1] > 0.95


@pytest.mark.parametrize("name, cls, lr", [("adam", "Adam", 1e-3), ("sgd", "SGD", 1e-2), ("rmsprop", "RMSprop", 1e-3)])
def test_keras_optimizer_names_use_keras_defaults(name, cls, lr):
    trainer = Trainer(nn.Linear(2, 2), "mse", name)
    assert type(trainer.optimizer).__name__ == cls and trainer.optimizer.param_groups[0]["lr"] == lr


def test_schedulers_are_accepted_directly_as_callbacks():
    x, y = _blobs(64)
    model = nn.Linear(4, 3)
    opt = rb.optim.SGD(model.parameters(), lr=0.1)
    step = rb.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    history = Trainer(model, "cross_entropy", opt, callbacks=[step]).fit(x, y, epochs=3, verbose=0)
    assert history["lr"] == pytest.approx([0.1, 0.05, 0.025])
    # ReduceLROnPlateau watches val_loss, or loss without validation data; a loss that barely
    # moves (lr 1e-6) is a plateau, which halves the rate after each flat epoch.
    opt = rb.optim.SGD(model.parameters(), lr=1e-6)
    plateau = rb.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=0, factor=0.5)
    history = Trainer(model, "cross_entropy", opt).fit(x, y, epochs=3, verbose=0, callbacks=[plateau])
    assert history["lr"] == pytest.approx([1e-6, 1e-6, 5e-7]) and opt.param_groups[0]["lr"] == pytest.approx(2.5e-7)
    # OneCycleLR counts batches.
    opt = rb.optim.SGD(model.parameters(), lr=0.1)
    cycle = rb.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=8)
    Trainer(model, "cross_entropy", opt).fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=[cycle])
    assert cycle.last_epoch == 8


def test_weighted_losses_leave_the_users_loss_untouched():
    x, y = _blobs(40)
    loss = nn.CrossEntropyLoss()
    model = nn.Linear(4, 3)
    trainer = Trainer(model, loss, "sgd", metrics=())
    trainer.fit(x, y, epochs=1, verbose=0, sample_weight=np.linspace(0, 1, 40), class_weight=[2.0, 1.0, 1.0])
    assert loss.reduction == "mean"
    unweighted = trainer.evaluate(x, y)["loss"]
    assert unweighted == pytest.approx(loss(model(rb.tensor(x)), rb.tensor(y)).item(), rel=1e-6)


def test_keras_call_shape_argument_errors():
    x, y = _blobs(20)
    trainer = Trainer(nn.Linear(4, 3), "cross_entropy", "sgd")
    for bad in (0, -4, "32", 2.5, True):
        with pytest.raises(ValueError, match="batch_size must be a positive integer"):
            trainer.fit(x, y, batch_size=bad)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        trainer.evaluate(x, y, batch_size=0)
    with pytest.raises(ValueError, match="verbose must be 'auto', 0, 1 or 2"):
        trainer.fit(x, y, verbose=3)
    with pytest.raises(ValueError, match="epochs must be a non-negative integer"):
        trainer.fit(x, y, epochs="5")
    with pytest.raises(TypeError, match="got ndarray alone"):
        trainer.fit(x)
    with pytest.raises(ValueError, match="y must be None when x is a DataLoader"):
        trainer.fit(DataLoader(TensorDataset(x, y)), y)
    with pytest.raises(ValueError, match="validation_data or val, not both"):
        trainer.fit(x, y, validation_data=(x, y), val=(x, y))
    with pytest.raises(ValueError, match="validation_data or validation_split"):
        trainer.fit(x, y, validation_data=(x, y), validation_split=0.2)
    with pytest.raises(TypeError, match="callbacks must be Callback objects or learning-rate schedulers, got str"):
        trainer.fit(x, y, callbacks=["early_stopping"])
    with pytest.raises(TypeError, match="did you forget the parentheses"):
        Trainer(nn.Linear(4, 3), "mse", callbacks=[rb.train.EarlyStopping])
    with pytest.raises(TypeError, match="callbacks must be a list"):
        trainer.fit(x, y, callbacks=rb.train.EarlyStopping())
    with pytest.raises(ValueError, match="unknown optimizer 'adamm'; known names: adadelta, adagrad, adam"):
        Trainer(nn.Linear(4, 3), "mse", "adamm")
    with pytest.raises(TypeError, match="an optimizer must be a name .* got Linear"):
        Trainer(nn.Linear(4, 3), "mse", nn.Linear(2, 2))
    with pytest.raises(ValueError, match="unknown loss 'sparse_categorical'"):
        Trainer(nn.Linear(4, 3), "sparse_categorical")
    with pytest.raises(TypeError, match="a loss must be a name or a callable"):
        Trainer(nn.Linear(4, 3), 3.0)
    with pytest.raises(TypeError, match="model must be an nn.Module, got str"):
        Trainer("mlp", "mse")
    with pytest.raises(TypeError, match="class_weight must be a dict .* got 'balanced'"):
        trainer.fit(x, y, class_weight="balanced")
    with pytest.raises(TypeError, match="validation_data\\): expected x and y"):
        trainer.fit(x, y, validation_data=x)


def test_verbose_auto_draws_a_bar_in_a_terminal(monkeypatch):
    import io
    import sys

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    x, y = _blobs(64)
    trainer = Trainer(nn.Linear(4, 3), "cross_entropy", "sgd")
    trainer.fit(x, y, batch_size=8, epochs=2)
    text = terminal.getvalue()
    # redrawn in place, batch by batch (tqdm's bar when installed, else the built-in line)
    assert "\r" in text and "epoch 2/2" in text and "/8" in text
    # A ProgressBar among the callbacks replaces the default one: still one line per epoch.
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    trainer.fit(x, y, epochs=2, callbacks=[rb.train.ProgressBar()])
    assert len(sys.stdout.getvalue().strip().splitlines()) == 2


@pytest.mark.slow
def test_keras_style_example_runs(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(root / "src"))
    result = subprocess.run([sys.executable, str(root / "examples" / "keras_style.py"), "--quick"],
                            capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert sum(line.startswith("epoch ") for line in lines) == 8  # verbose="auto": one line per epoch
    accuracy = float(next(line for line in lines if line.startswith("Test accuracy:")).split()[-1])
    assert accuracy > 0.93, result.stdout
