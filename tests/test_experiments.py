"""The lecture's experiments: each runs in quick mode, writes its files, and measures its claim."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rosenblatt import experiments

try:  # the experiments use small matrices: threaded BLAS only adds overhead (and noise on busy CI)
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover - optional
    threadpool_limits = None


@pytest.fixture(autouse=True)
def _single_threaded_blas():
    if threadpool_limits is None:
        yield
    else:
        with threadpool_limits(1):
            yield


def run_quick(name: str, tmp_path: Path, seed: int = 0) -> dict:
    """Run ``name`` in quick mode; check the files it promised and that describe() renders."""
    out = tmp_path / name
    record = experiments.run(name, out=out, quick=True, seed=seed, verbose=False)
    written = json.loads((out / "results.json").read_text())
    assert written["experiment"] == name and written["quick"] is True and written["seed"] == seed
    assert written["summary"] and written["figures"]
    for figure in written["figures"]:
        path = out / figure
        assert path.suffix == ".png" and path.stat().st_size > 10_000, figure
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = experiments.get_module(name).describe(written["results"])
    assert isinstance(text, str) and len(text) > 100
    assert record["results"] == written["results"]
    return written["results"]


def test_registry_lists_every_experiment():
    names = [name for name, _ in experiments.list_experiments()]
    assert names == list(experiments.EXPERIMENTS)
    assert len(names) >= 16 and len(set(names)) == len(names) and "attention" in names
    for name in names:
        module = experiments.get_module(name)
        assert module.TITLE and module.CLAIM and callable(module.run) and callable(module.describe)


def test_unknown_experiment_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="unknown experiment 'nope'.*perceptron"):
        experiments.run("nope", out=tmp_path)
    with pytest.raises(ValueError, match="seed"):
        experiments.run("activations", out=tmp_path, seed=-1)


def test_perceptron(tmp_path):
    r = run_quick("perceptron", tmp_path)
    assert r["separable"]["epochs_to_converge"] is not None and r["separable"]["accuracy"] == 1.0
    assert not r["xor"]["converged"] and r["xor"]["min_mistakes"] > 10
    assert r["xor"]["perceptron_accuracy"] <= 0.75
    assert r["xor"]["mlp_accuracy"] >= 0.97
    acc = list(r["decision_regions"]["accuracy"].values())
    assert acc[0] < 0.8 and acc[2] >= 0.97 and acc[0] < acc[1] <= acc[2]


def test_activations(tmp_path):
    a = run_quick("activations", tmp_path)["activations"]
    assert a["sigmoid"]["max_derivative"] == pytest.approx(0.25, abs=1e-3)
    assert a["tanh"]["max_derivative"] == pytest.approx(1.0, abs=1e-3)
    assert a["relu"]["derivative_at_plus4"] == 1.0 and a["relu"]["derivative_at_minus4"] == 0.0
    assert a["step"]["max_derivative"] == 0.0 and a["step"]["saturated_fraction"] == 1.0
    assert a["sigmoid"]["derivative_at_plus4"] < 0.02
    assert a["leaky_relu(0.1)"]["saturated_fraction"] == 0.0


def test_runs_are_deterministic(tmp_path):
    first = experiments.run("perceptron", out=tmp_path / "a", quick=True, seed=3, verbose=False)
    second = experiments.run("perceptron", out=tmp_path / "b", quick=True, seed=3, verbose=False)
    assert first["results"] == second["results"]


def test_double_descent(tmp_path):
    r = run_quick("double-descent", tmp_path)
    n = r["n_train"]
    assert 0.9 * n <= r["peak_width"] <= 1.1 * n  # the peak sits at the interpolation threshold
    assert r["peak_test_error"] > 2 * r["best_underparameterised"]["test_error"]
    assert r["widest"]["test_error"] < 0.5 * r["peak_test_error"]  # and the error descends again


def test_autoencoder(tmp_path):
    r = run_quick("autoencoder", tmp_path)
    assert r["reconstruction_mse"] < 0.7 * r["mean_digit_mse"]
    assert r["latent_knn_accuracy"] > 0.6
    assert r["denoised_mse"] < 0.5 * r["noisy_mse"]
    assert r["clipped_noisy_mse"] < r["noisy_mse"] and r["denoised_mse"] < 0.7 * r["clipped_noisy_mse"]


def test_feature_maps(tmp_path):
    r = run_quick("feature-maps", tmp_path)
    assert r["test_accuracy"] > 0.9
    assert len(r["sobel_similarity_trained"]) == 8
    assert r["best_sobel_similarity"] > 0.6  # at least one kernel is an edge detector


@pytest.mark.slow
def test_universal_approximation(tmp_path):
    r = run_quick("universal-approximation", tmp_path)
    mse = r["test_mse"]
    assert mse["sin(2x)"][-1] < mse["sin(2x)"][0] / 20
    assert mse["|x|"][-1] < mse["|x|"][0] / 20
    assert mse["step(x)"][-1] < 0.02


def test_vanishing_gradients(tmp_path):
    r = run_quick("vanishing-gradients", tmp_path)
    ratio = r["first_to_last_ratio"]
    assert ratio["ReLU + He"] >= 10 * ratio["sigmoid + standard init"]
    assert ratio["sigmoid + standard init"] < 1e-4
    for fixed in ("tanh + Xavier", "ReLU + He", "sigmoid + batch norm", "sigmoid + residual"):
        assert ratio[fixed] > 1e-2, fixed
    acc = r["test_accuracy"]
    assert acc["sigmoid + standard init"] < 0.3 and acc["ReLU + He"] > 0.8 and acc["sigmoid + batch norm"] > 0.8


def test_optimizers(tmp_path):
    r = run_quick("optimizers", tmp_path)
    final = r["final_train_loss"]  # means over seeds, each optimiser at its best rate from the same grid
    assert len(r["seeds"]) >= 2 and set(r["learning_rates"]["SGD"]) == {"digits", "rosenbrock"}
    # tuned fairly, the gaps over SGD are modest; full-batch GD (one step per epoch) stays far behind
    assert final["momentum a=0.9 (lecture, dampened)"] < final["SGD"]
    assert final["Adam"] < final["SGD"]
    assert final["SGD"] < 0.2 * final["GD (full batch)"]
    for name, tuned in r["tuning_final_loss"].items():  # the chosen rate is the grid's best
        assert min(tuned.values()) == pytest.approx(tuned[str(r["learning_rates"][name]["digits"])])
    distance = r["rosenbrock_final_distance_to_minimum"]
    assert distance["momentum a=0.9 (lecture, dampened)"] < 0.5 * distance["GD (full batch)"]
    assert distance["Adam"] < 0.5 * distance["GD (full batch)"]


def test_learning_rate(tmp_path):
    r = run_quick("learning-rate", tmp_path)
    final, initial = r["final_train_loss"], r["initial_loss"]
    assert final["too small (0.003)"] > 0.8 * initial
    assert final["too large (3.0)"] > 0.9 * initial  # diverged to chance
    assert final["right (0.3)"] < 0.2 * initial
    assert final["cosine schedule 1.0 -> 0"] < final["right (0.3)"]


@pytest.mark.slow
def test_regularization(tmp_path):
    r = run_quick("regularization", tmp_path)
    scores = r["scores"]  # means over seeds; "gain" is the paired gain over no regularisation
    assert len(r["seeds"]) >= 3
    base = scores["no regularisation"]
    # overfitted: it fits more training labels than are correct, and does worse on the test digits
    assert base["train_accuracy"] > 1 - r["wrong_labels"] and base["train_accuracy"] - base["test_accuracy"] > 0.03
    for method in ("dropout 0.5", "input noise 0.3", "L1 3e-4", "L2 3e-3"):
        assert scores[method]["gain"] > 0.015, method
    assert scores["early stopping"]["gain"] > 0
    # augmentation's quick-run gain is within the seed-to-seed spread: only "does not hurt much" is tested
    assert scores["augmentation (shifts)"]["gain"] > -0.04
    early = r["early_stopping"]["early stopping"]
    assert early["best_epoch"] < early["stopped_at"] <= r["epochs"]


@pytest.mark.slow
def test_cnn_vs_mlp(tmp_path):
    r = run_quick("cnn-vs-mlp", tmp_path)
    params, acc, drop = r["parameters"], r["test_accuracy"], r["accuracy_drop_at_3_pixels"]
    mlp, gmp = "MLP 196-128-10", "CNN, global max pool"
    assert params[gmp] < params[mlp] / 3
    assert acc[gmp] > 0.9 and acc[mlp] > 0.9
    assert drop[mlp] > 0.5 and drop[gmp] < 0.1


@pytest.mark.slow
def test_rnn_memory(tmp_path):
    r = run_quick("rnn-memory", tmp_path)
    mse, baseline = r["test_mse"], r["baseline_mse"]
    assert mse["RNN"][-1] > 0.8 * baseline  # the plain RNN forgets at the longer length
    assert mse["LSTM"][-1] < 0.1 * baseline and mse["GRU"][-1] < 0.1 * baseline
    assert mse["LSTM"][-1] < mse["RNN"][-1] / 10


def test_pruning(tmp_path):
    r = run_quick("pruning", tmp_path)
    i50, i90 = r["sparsity_levels"].index(0.5), r["sparsity_levels"].index(0.9)
    for kind in ("lenet5", "mlp"):
        k = r[kind]
        # half the weights go at almost no cost; fine-tuning recovers much of what one-shot 90% loses
        assert k["one_shot"]["mean"][i50] > k["dense"]["mean"] - 0.1
        assert k["one_shot_finetuned"]["mean"][i90] > k["one_shot"]["mean"][i90]
        assert k["iterative_sparsity"]["mean"][-1] > 0.85
    assert r["mlp"]["dense"]["mean"] > 0.9
    st = r["storage"]
    j = st["sparsity"].index(0.9)
    assert st["csr_bytes"][j] < st["dense_bytes"][j] / 4 and st["csr_bytes"][0] > st["dense_bytes"][0]


def test_loss_landscape(tmp_path):
    r = run_quick("loss-landscape", tmp_path)
    nets = r["networks"]
    assert set(nets) == {"ResNet-8", "ResNet-8 no-skip"}
    for net in nets.values():
        surface = np.asarray(net["surface"])
        centre = surface.shape[0] // 2
        assert surface[centre, centre] == pytest.approx(min(net["line"]), rel=0.3)  # the minimum is near 0
        assert net["curvature_at_minimum"]["mean"] > 0
    assert nets["ResNet-8"]["nonconvexity"]["mean"] < nets["ResNet-8 no-skip"]["nonconvexity"]["mean"]


def test_generative_augmentation(tmp_path):
    r = run_quick("generative-augmentation", tmp_path)
    arms = r["arms"]
    assert len(r["seeds"]) == 3 and set(arms) == {"real only", "+ VAE"}
    assert arms["real only"]["mean"] > 0.6  # chance is 0.1
    assert abs(arms["+ VAE"]["mean"] - arms["real only"]["mean"]) < 0.1
    assert arms["+ VAE"]["verdict"] in ("helped", "hurt", "no measurable effect")


@pytest.mark.slow
def test_attention(tmp_path):
    r = run_quick("attention", tmp_path)
    mean = r["exact_match_mean"]
    assert mean["attention"][-1] > mean["plain"][-1] + 0.1  # at the longer length only attention holds
    assert len(r["exact_match"]["plain"][0]) == len(r["seeds"]) >= 2
