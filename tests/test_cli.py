"""The rosenblatt command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from rosenblatt.cli import default_model, main

OUTPUTS = ("history.csv", "curves.png", "model.safetensors", "metrics.json")


def test_train_one_epoch_writes_all_outputs(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--model", "mlp", "--epochs", "1", "--out", str(out), "--seed", "1"]) == 0
    for name in OUTPUTS:
        assert (out / name).stat().st_size > 0, name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"] == "mlp" and metrics["epochs_run"] == 1
    # one epoch of the MLP on the digits gives 0.80 test accuracy with seed 1 (0.80-0.85 over seeds 1-3);
    # a broken gradient or data pipeline stays near chance (0.1)
    assert 0.7 < metrics["test"]["accuracy"] <= 1 and metrics["test"]["loss"] < 1.8
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
    assert bad.returncode == 2 and "--epochs must be an integer >= 1" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1 and "Traceback" not in bad.stderr


# -- reproducible and honest runs --------------------------------------------------------------

QUICK = ["--model", "mlp", "--limit", "150"]


def _files(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_config_holds_every_option_and_all_files_share_one_mode(tmp_path):
    out = tmp_path / "run"
    assert main(["train", *QUICK, "--epochs", "1", "--out", str(out), "--batch-size", "32"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert {k: config[k] for k in ("model", "data", "epochs", "batch_size", "optimizer", "lr", "seed", "limit",
                                   "device")} == {"model": "mlp", "data": "digits", "epochs": 1, "batch_size": 32,
                                                  "optimizer": "adam", "lr": 0.003, "seed": 0, "limit": 150,
                                                  "device": "cpu"}
    umask = os.umask(0)
    os.umask(umask)
    assert {p.name: p.stat().st_mode & 0o777 for p in out.iterdir()} == {p.name: 0o666 & ~umask for p in out.iterdir()}


@pytest.mark.parametrize("argv,needle", [
    (["--limit", "0"], "--limit must be an integer >= 1"),
    (["--limit", "-5"], "--limit must be an integer >= 1"),
    (["--lr", "inf"], "--lr must be a finite number > 0"),
    (["--lr", "nan"], "--lr must be a finite number > 0"),
    (["--batch-size", "0"], "--batch-size must be an integer >= 1"),
    (["--seed", "-1"], "--seed must be an integer >= 0"),
    (["--device", "cuda"], "CuPy"),
    (["--device", "tpu"], "device"),
])
def test_failed_start_leaves_nothing_behind(tmp_path, capsys, argv, needle):
    out = tmp_path / "run"
    assert main(["train", "--model", "mlp", *argv, "--out", str(out)]) != 0
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_resume_continues_bit_identically_and_keeps_its_options(tmp_path, capsys):
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    assert main(["train", *QUICK, "--epochs", "3", "--out", str(whole)]) == 0
    assert main(["train", *QUICK, "--epochs", "1", "--out", str(parts)]) == 0
    # A crash between the CSV row and the checkpoint, and a killed save's temporary file.
    with open(parts / "history.csv", "a") as f:
        f.write("1,9.9,9.9,9.9,9.9,9.9\n")
    (parts / ".tmp-0123456789ab-checkpoint.safetensors").write_bytes(b"partial")
    capsys.readouterr()
    assert main(["train", "--resume", str(parts), "--epochs", "3"]) == 0  # --limit comes from config.json
    captured = capsys.readouterr()
    assert "150 train" in captured.out and "removed 1 temporary file" in captured.err
    assert not list(parts.glob(".tmp-*"))
    for name in ("model.safetensors", "history.csv", "checkpoint.safetensors"):
        assert (whole / name).read_bytes() == (parts / name).read_bytes(), name
    assert [row.split(",")[0] for row in (parts / "history.csv").read_text().splitlines()[1:]] == ["0", "1", "2"]


@pytest.mark.parametrize("argv,needle", [
    (["--epochs", "1"], "already completed 1 epochs; pass --epochs N with N > 1"),
    (["--epochs", "3", "--model", "lenet5"], "started with --model mlp; it cannot continue with --model lenet5"),
    (["--epochs", "3", "--limit", "100"], "started with --limit 150"),
    (["--epochs", "3", "--lr", "0.1"], "started with --lr 0.003"),
])
def test_bad_resume_changes_nothing(tmp_path, capsys, argv, needle):
    out = tmp_path / "run"
    assert main(["train", *QUICK, "--epochs", "1", "--out", str(out)]) == 0
    before = _files(out)
    capsys.readouterr()
    assert main(["train", "--resume", str(out), *argv]) == 2
    assert needle in capsys.readouterr().err
    assert _files(out) == before


def test_resume_from_junk_is_refused_quickly_and_names_the_file(tmp_path, capsys):
    junk = tmp_path / "junk.safetensors"
    with open(junk, "wb") as f:
        f.truncate(4 * 2**30)  # sparse: no disk used
    assert main(["train", "--resume", str(junk), "--out", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert str(junk) in err and "not a safetensors file" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the overflow is the point
def test_non_finite_loss_stops_with_a_message_and_exit_status_1(tmp_path, capsys):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3))
    table = tmp_path / "t.csv"
    np.savetxt(table, np.column_stack([x, x @ [1e30, 1.0, 1.0]]), delimiter=",", header="a,b,c,t", comments="")
    out = tmp_path / "run"
    code = main(["train", "--data", f"csv:{table}:t", "--epochs", "3", "--optimizer", "sgd", "--lr", "1e6",
                 "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 1 and "stopped being finite" in err and "smaller --lr" in err
    assert not (out / "metrics.json").exists() and not (out / "model.safetensors").exists()


def test_csv_problems_name_line_and_column(tmp_path, capsys):
    table = tmp_path / "t.csv"
    table.write_text("a,b,t\n" + "1,2,0\n" * 5 + "3,,1\n" + "1,2,1\n" * 5)
    assert main(["train", "--data", f"csv:{table}:t", "--out", str(tmp_path / "run")]) == 1
    assert "line 7, column 2 ('b') is empty" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_bench_passes_its_options_through(tmp_path, monkeypatch):
    import rosenblatt.cli as cli

    fake = tmp_path / "benchmarks" / "run.py"
    fake.parent.mkdir()
    fake.write_text("import json, sys\n\ndef main(argv):\n"
                    f"    open({str(tmp_path / 'argv.json')!r}, 'w').write(json.dumps(argv))\n    return 0\n")
    monkeypatch.setattr(cli, "_find_benchmarks", lambda: str(fake))
    assert main(["bench", "--quick", "--filter", "mlp", "--no-write"]) == 0
    assert json.loads((tmp_path / "argv.json").read_text()) == ["--quick", "--filter", "mlp", "--no-write"]


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
