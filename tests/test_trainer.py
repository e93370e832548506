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
