"""Checkpoints: round trip, atomic writes, and exact resumption of training."""

from __future__ import annotations

import os

import numpy as np
import pytest

import rosenblatt as rb
import rosenblatt.nn as nn
from rosenblatt.data import DataLoader, TensorDataset
from rosenblatt.data import transforms as T
from rosenblatt.io import load_checkpoint, save_checkpoint
from rosenblatt.train import Callback, EarlyStopping, History, LRSchedulerCallback, ModelCheckpoint, Trainer


def _model():
    return nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 3))


def _data(n=96):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, size=n)
    return (rng.normal(size=(n, 4)) + np.eye(3, 4)[y]).astype(np.float32), y


def test_round_trip_restores_everything(tmp_path):
    rb.manual_seed(0)
    model = _model()
    opt = rb.optim.Adam(model.parameters(), lr=0.01)
    sched = rb.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    x, y = _data()
    for _ in range(3):
        opt.zero_grad()
        nn.CrossEntropyLoss()(model(rb.tensor(x)), rb.tensor(y)).backward()
        opt.step()
        sched.step()
    history = History({"loss": [1.0, 0.5]})
    path = tmp_path / "ckpt.safetensors"
    save_checkpoint(path, model, opt, epoch=3, scheduler=sched, history=history,
                    note="hello", table=np.arange(6).reshape(2, 3), pair=(1, 2.5), by_index={0: "a", 7: "b"})
    rng_after_save = rb.random.generator().random()

    rb.manual_seed(99)
    model2 = _model()
    opt2 = rb.optim.Adam(model2.parameters(), lr=0.5)
    sched2 = rb.optim.lr_scheduler.StepLR(opt2, step_size=2, gamma=0.5)
    saved = load_checkpoint(path, model2, opt2, sched2, restore_rng=True)
    assert rb.random.generator().random() == rng_after_save
    assert saved["epoch"] == 3 and saved["history"].history == {"loss": [1.0, 0.5]}
    extra = saved["extra"]
    assert extra["note"] == "hello" and extra["pair"] == (1, 2.5) and extra["by_index"] == {0: "a", 7: "b"}
    assert np.array_equal(extra["table"], np.arange(6).reshape(2, 3))
    for (k, a), (_, b) in zip(model.state_dict().items(), model2.state_dict().items()):
        assert np.array_equal(a.numpy(), b.numpy()), k
    assert opt2.param_groups[0]["lr"] == pytest.approx(opt.param_groups[0]["lr"])
    s1, s2 = opt.state_dict()["state"], opt2.state_dict()["state"]
    for i in s1:
        for key, value in s1[i].items():
            assert np.array_equal(np.asarray(value), np.asarray(s2[i][key])), (i, key)
    assert sched2.state_dict() == sched.state_dict()


def test_write_is_atomic_when_the_process_dies_mid_write(tmp_path, monkeypatch):
    import rosenblatt.serialization as serialization

    model = _model()
    path = tmp_path / "ckpt.safetensors"
    save_checkpoint(path, model, epoch=1)
    good = path.read_bytes()

    def crash(fd):
        raise OSError("simulated power loss")

    monkeypatch.setattr(serialization.os, "fsync", crash)
    with rb.no_grad():
        for p in model.parameters():
            p.fill_(7.0)
    with pytest.raises(OSError, match="power loss"):
        save_checkpoint(path, model, epoch=2)
    monkeypatch.undo()
    assert path.read_bytes() == good
    assert load_checkpoint(path)["epoch"] == 1
    assert os.listdir(tmp_path) == ["ckpt.safetensors"]  # no temporary file left behind


def test_plain_weights_file_is_not_a_checkpoint(tmp_path):
    rb.save({"w": rb.ones(2)}, tmp_path / "w.safetensors")
    with pytest.raises(ValueError, match="not a rosenblatt checkpoint"):
        load_checkpoint(tmp_path / "w.safetensors")
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.safetensors")


class Interrupt(Callback):
    def __init__(self, at_epoch):
        super().__init__()
        self.at_epoch = at_epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.at_epoch:
            raise KeyboardInterrupt


def _run(tmp_path, epochs, data_kind, interrupt_at=None, resume=False, init_seed=0):
    """Train; a run is interrupted by raising in epoch ``interrupt_at`` and resumed from the checkpoint."""
    rb.manual_seed(init_seed)
    model = _model()
    opt = rb.optim.Adam(model.parameters(), lr=0.01)
    sched = rb.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.7)
    callbacks = [LRSchedulerCallback(sched), EarlyStopping(monitor="val_loss", patience=50),
                 ModelCheckpoint(tmp_path / "last.safetensors", save_best_only=False)]
    if interrupt_at is not None:
        callbacks.append(Interrupt(interrupt_at))
    x, y = _data()
    if data_kind == "arrays":
        train = (x, y)
        kwargs = {"batch_size": 16, "seed": 3}
    else:  # a user loader: unseeded shuffle and augmentation draw from the global generator
        train = DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True, transform=T.GaussianNoise(0.1))
        kwargs = {}
    trainer = Trainer(model, nn.CrossEntropyLoss(), opt, callbacks=callbacks)
    history = trainer.fit(train, val=(x, y), epochs=epochs,
                          resume_from=tmp_path / "last.safetensors" if resume else None, **kwargs)
    return model, history


@pytest.mark.parametrize("data_kind", ["arrays", "loader"])
def test_resume_gives_exactly_the_uninterrupted_weights(tmp_path, data_kind):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    reference, ref_history = _run(tmp_path / "a", 5, data_kind)
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path / "b", 5, data_kind, interrupt_at=3)
    assert load_checkpoint(tmp_path / "b" / "last.safetensors")["epoch"] == 3
    resumed, history = _run(tmp_path / "b", 5, data_kind, resume=True, init_seed=123)
    for (name, a), (_, b) in zip(reference.state_dict().items(), resumed.state_dict().items()):
        assert np.array_equal(a.numpy(), b.numpy()), name
    assert history.history == ref_history.history and len(history) == 5


# -- hostile checkpoint metadata -------------------------------------------------------------


def _trained_checkpoint(tmp_path, epochs=2):
    rb.manual_seed(0)
    model = _model()
    trainer = Trainer(model, nn.CrossEntropyLoss(), rb.optim.Adam(model.parameters(), lr=0.01),
                      callbacks=[ModelCheckpoint(tmp_path / "ckpt.safetensors", save_best_only=False)])
    x, y = _data()
    trainer.fit((x, y), val=(x, y), epochs=epochs, batch_size=32, seed=0)
    return tmp_path / "ckpt.safetensors"


def _rewrite_metadata(path, change):
    """Apply ``change(meta)`` to a checkpoint's metadata (as an attacker editing the file would)."""
    import json

    from rosenblatt.io.checkpoint import METADATA_KEY
    from rosenblatt.serialization import load_arrays, save

    arrays, metadata = load_arrays(path)
    meta = json.loads(metadata[METADATA_KEY])
    change(meta)
    save(arrays, path, metadata={METADATA_KEY: json.dumps(meta)})


def _set(meta, keys, value):
    keys = (keys,) if isinstance(keys, str) else keys
    for key in keys[:-1]:
        meta = meta[key]
    meta[keys[-1]] = value


@pytest.mark.parametrize("keys,value,field", [
    (("epoch"), -3, "epoch"),
    (("epoch"), 10**12, "epoch"),
    (("epoch"), "2", "epoch"),
    (("version"), 99, "version"),
    (("format"), "other", "format"),
    (("model_keys"), ["0.weight", "0.weight"], "model_keys"),
    (("model_keys"), ["nope"], "model_keys"),
    (("optimizer"), None, "optimizer"),
    (("optimizer_class"), None, "optimizer"),
    (("optimizer", "param_groups", 0, "lr"), float("inf"), "optimizer.param_groups[0].lr"),
    (("optimizer", "param_groups", 0, "lr"), -1.0, "optimizer.param_groups[0].lr"),
    (("optimizer", "param_groups", 0, "betas"), [0.9, float("nan")], "optimizer.param_groups[0].betas"),
    (("history", "history", "loss"), [1.0], "history.history"),
    (("history", "history", "loss"), ["x", 1.0], "history.history.loss"),
    (("history", "epoch"), [0, 0], "history.epoch"),
    (("rng"), {"bit_generator": "PCG64", "state": 3}, "rng"),
    (("rng"), {"bit_generator": "os.system"}, "rng"),
    (("extra", "loader", "epoch"), -1, "extra.loader.epoch"),
    (("extra", "callbacks"), [3], "extra.callbacks[0]"),
    (("extra", "trainer", "epochs"), 1, "epoch"),
    (("optimizer", "state"), {"__items__": [[0, {"exp_avg": {"__array__": "nope"}}]]}, "optimizer.state[0][1].exp_avg"),
])
def test_bad_metadata_is_rejected_naming_file_and_field_before_anything_changes(tmp_path, keys, value, field):
    path = _trained_checkpoint(tmp_path)
    _rewrite_metadata(path, lambda meta: _set(meta, keys, value))
    before = path.read_bytes()
    rb.manual_seed(5)
    model = _model()
    weights = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    trainer = Trainer(model, nn.CrossEntropyLoss(), rb.optim.Adam(model.parameters(), lr=0.01),
                      callbacks=[ModelCheckpoint(path, save_best_only=False)])
    x, y = _data()
    with pytest.raises(ValueError, match="invalid field") as info:
        trainer.fit((x, y), epochs=4, batch_size=32, resume_from=path)
    message = str(info.value)
    assert str(path) in message and f"'{field}'" in message, message
    assert path.read_bytes() == before  # the checkpoint is not overwritten
    for k, v in model.state_dict().items():
        assert np.array_equal(v.numpy(), weights[k]), k  # nor the model touched


def test_load_state_dict_on_a_checkpoint_names_load_checkpoint(tmp_path):
    path = _trained_checkpoint(tmp_path, epochs=1)
    with pytest.raises(ValueError, match=r"rb\.io\.load_checkpoint"):
        _model().load_state_dict(rb.load(path))
