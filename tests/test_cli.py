"""The rosenblatt command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from rosenblatt.cli import default_model, main

OUTPUTS = ("history.csv", "curves.png", "model.safetensors", "metrics.json")


def test_train_one_epoch_writes_all_outputs(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--model", "mlp", "--epochs", "1", "--out", str(out), "--seed", "1"]) == 0
    for name in OUTPUTS:
        assert (out / name).stat().st_size > 0, name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"] == "mlp" and metrics["epochs_run"] == 1 and 0.3 < metrics["test"]["accuracy"] <= 1
    text = capsys.readouterr().out
    assert "epoch 1/1" in text and "test: loss" in text
    assert (out / "history.csv").read_text().splitlines()[0].startswith("epoch,loss,accuracy,val_loss")
    # --resume continues the run in the same folder up to the new epoch count.
    assert main(["train", "--epochs", "2", "--resume", str(out)]) == 0
    assert json.loads((out / "metrics.json").read_text())["epochs_run"] == 2
    assert len((out / "history.csv").read_text().splitlines()) == 3


def test_default_model_trains(tmp_path):
    out = tmp_path / "default"
    assert main(["train", "--epochs", "1", "--out", str(out), "--limit", "300"]) == 0
    assert json.loads((out / "metrics.json").read_text())["model"] == default_model()


@pytest.mark.parametrize("argv,needle", [
    (["train", "--epochs", "many"], "invalid int value"),
    (["train", "--bogus"], "unrecognized arguments"),
    (["train", "--data", "csv:/no/such/file.csv:y"], "cannot read"),
    (["train", "--data", "imagenet"], "unknown --data"),
    (["train", "--model", "nope"], "unknown --model"),
    (["train", "--data", "mnist:/no/such/dir"], "does not exist"),
    (["train", "--optimizer", "lbfgs"], "invalid choice"),
    (["nosuchcommand"], "invalid choice"),
])
def test_bad_input_one_line_nonzero_exit(argv, needle, capsys, tmp_path):
    code = main([*argv, "--out", str(tmp_path)] if argv[0] == "train" and "--bogus" not in argv else argv)
    err = capsys.readouterr().err
    assert code != 0
    assert len(err.strip().splitlines()) == 1 and needle in err and "Traceback" not in err


def test_csv_data_and_regression(tmp_path, capsys):
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 3))
    target = x @ np.array([1.0, -2.0, 0.5])
    path = tmp_path / "table.csv"
    np.savetxt(path, np.column_stack([x, target]), delimiter=",", header="a,b,c,t", comments="")
    assert main(["train", "--data", f"csv:{path}:t", "--epochs", "2", "--out", str(tmp_path / "r")]) == 0
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert metrics["model"] == "mlp" and set(metrics["test"]) == {"loss", "mae", "r2"}


def test_info(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("rosenblatt ") and "numpy" in out and "matplotlib" in out and "backends:" in out


def test_module_entry_point_reports_errors_in_one_line():
    env = {**os.environ, "PYTHONPATH": os.path.join(os.path.dirname(__file__), "..", "src")}
    bad = subprocess.run([sys.executable, "-m", "rosenblatt", "train", "--epochs", "0"], capture_output=True,
                         text=True, env=env, timeout=120)
    assert bad.returncode == 2 and "--epochs must be >= 1" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1 and "Traceback" not in bad.stderr


@pytest.mark.slow
def test_predict_reuses_the_recorded_preprocessing(tmp_path, capsys):
    import numpy as np

    import rosenblatt as rb
    from rosenblatt.data import load_digits

    out = tmp_path / "lenet"
    assert main(["train", "--model", "lenet5", "--epochs", "1", "--limit", "300", "--out", str(out)]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["preprocessing"] == {"input_shape": [1, 8, 8], "upsample": 2, "flatten": False}
    model, info = rb.io.load_run(out)
    x, _ = load_digits()  # flat rows of 64 pixels: reshaped, then upsampled to 16x16 as in training
    inputs = info["preprocess"](x[:5])
    assert inputs.shape == (5, 1, 16, 16) and info["task"] == "classification" and info["num_classes"] == 10
    with rb.no_grad():
        assert model(rb.tensor(inputs)).shape == (5, 10)
    capsys.readouterr()
    # On the run's own test split, `predict` reproduces the test accuracy that training reported.
    assert main(["predict", str(out), "--data", "digits"]) == 0
    reported = json.loads((out / "metrics.json").read_text())["test"]["accuracy"]
    printed = capsys.readouterr().out
    assert f"accuracy {reported:.4f}" in printed, printed
    rows = (out / "predictions.csv").read_text().splitlines()
    assert rows[0].startswith("index,prediction,p0,p1") and printed.startswith(f"{len(rows) - 1} predictions")
    # Raw inputs from a .npy file, written where --out says.
    np.save(tmp_path / "three.npy", x[:3].reshape(3, 8, 8))
    assert main(["predict", str(out), "--data", str(tmp_path / "three.npy"), "--out", str(tmp_path / "p.csv")]) == 0
    assert len((tmp_path / "p.csv").read_text().splitlines()) == 4


def test_predict_on_csv_standardizes_with_training_statistics(tmp_path, capsys):
    import numpy as np

    import rosenblatt as rb

    rng = np.random.default_rng(0)
    x = rng.normal(loc=5.0, scale=3.0, size=(200, 3))
    target = x @ np.array([1.0, -2.0, 0.5])
    path = tmp_path / "table.csv"
    np.savetxt(path, np.column_stack([x, target]), delimiter=",", header="a,b,c,t", comments="")
    assert main(["train", "--data", f"csv:{path}:t", "--epochs", "2", "--out", str(tmp_path / "r")]) == 0
    model, info = rb.io.load_run(tmp_path / "r")
    standardize = info["preprocessing"]["standardize"]
    assert np.allclose(standardize["mean"], x.mean(0), atol=0.6) and info["task"] == "regression"
    np.savetxt(tmp_path / "features.csv", x[:10], delimiter=",")
    assert main(["predict", str(tmp_path / "r"), "--data", f"csv:{tmp_path / 'features.csv'}"]) == 0
    rows = (tmp_path / "r" / "predictions.csv").read_text().splitlines()
    expected = model(rb.tensor(((x[:10] - standardize["mean"]) / standardize["std"]).astype(np.float32))).numpy()
    assert rows[0] == "index,prediction" and np.allclose([float(r.split(",")[1]) for r in rows[1:]],
                                                        expected.reshape(-1), rtol=1e-4)


@pytest.mark.parametrize("argv,needle", [
    (["predict", "/no/such/run", "--data", "digits"], "no config.json"),
    (["predict", "RUN"], "the following arguments are required: --data"),
])
def test_predict_bad_input(argv, needle, capsys):
    assert main(argv) != 0
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and needle in err
