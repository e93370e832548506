"""Double descent: test error against model size peaks at the interpolation threshold and falls
again beyond it (Belkin, Hsu, Ma & Mandal 2019; Nakkiran et al. 2019).

The model is a two-layer network whose first layer is random and frozen: ``p`` ReLU features
``relu(x W)`` of the digits (``W`` Gaussian), followed by a linear read-out fitted by least squares
to one-hot targets, with 20% of the training labels corrupted. Below ``p = n`` (the number of
training samples) the least-squares fit is unique; above it infinitely many read-outs fit the
training set exactly and the one of minimum norm is taken (the solution gradient descent from zero
converges to). The test error is averaged over several draws of ``W``.
"""

from __future__ import annotations

import numpy as np

import rosenblatt as rb
from rosenblatt.experiments._common import Context, digits_split, pyplot

TITLE = "Double descent in random-feature networks"
CLAIM = "Test error peaks where the model can just interpolate the training set, then falls again"

N_TRAIN = 200
LABEL_NOISE = 0.2


def random_features(x: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """``relu(x W)``: the frozen first layer."""
    with rb.no_grad():
        return rb.relu(rb.tensor(x) @ rb.tensor(weight)).numpy().astype(np.float64)


def run(ctx: Context) -> None:
    """Run the experiment: train, measure, fill ``ctx.results``, draw the figures."""
    draws = 3 if ctx.quick else 10
    count = 18 if ctx.quick else 40
    rng = ctx.rng()
    x_train, y_train, x_test, y_test = digits_split(N_TRAIN, rng)
    mean, std = x_train.mean(0), x_train.std(0) + 0.1
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    y_noisy = y_train.copy()
    flipped = rng.random(N_TRAIN) < LABEL_NOISE
    y_noisy[flipped] = rng.integers(0, 10, flipped.sum())
    targets = np.eye(10)[y_noisy]
    test_targets = np.eye(10)[y_test]
    near = [int(N_TRAIN * f) for f in (0.8, 0.9, 0.95, 1.0, 1.05, 1.1, 1.25)]
    widths = sorted(set(np.geomspace(10, 25 * N_TRAIN, count).astype(int).tolist() + near))

    test_error, test_mse, train_mse, weight_norm = [], [], [], []
    for p in widths:
        errors, mses, fits, norms = [], [], [], []
        for draw in range(draws):
            weight = np.random.default_rng(ctx.seed * 1000 + draw).standard_normal((64, p)) / 8.0
            features, test_features = random_features(x_train, weight), random_features(x_test, weight)
            # lstsq returns the minimum-norm solution when the system is under-determined (p > n)
            readout = np.linalg.lstsq(features, targets, rcond=None)[0]
            prediction = test_features @ readout
            errors.append(np.mean(prediction.argmax(1) != y_test))
            mses.append(np.mean(np.sum((prediction - test_targets) ** 2, 1)))
            fits.append(np.mean(np.sum((features @ readout - targets) ** 2, 1)))
            norms.append(np.linalg.norm(readout))
        test_error.append(float(np.mean(errors)))
        test_mse.append(float(np.median(mses)))
        train_mse.append(float(np.mean(fits)))
        weight_norm.append(float(np.median(norms)))

    peak = int(np.argmax(test_error))
    under = [i for i, p in enumerate(widths) if p < N_TRAIN]
    over = [i for i, p in enumerate(widths) if p > N_TRAIN]
    best_under = min(under, key=lambda i: test_error[i])
    ctx.results.update({
        "n_train": N_TRAIN, "label_noise": LABEL_NOISE, "draws": draws, "widths": widths,
        "test_error": test_error, "test_mse": test_mse, "train_mse": train_mse, "readout_norm": weight_norm,
        "peak_width": widths[peak], "peak_test_error": test_error[peak],
        "best_underparameterised": {"width": widths[best_under], "test_error": test_error[best_under]},
        "widest": {"width": widths[-1], "test_error": test_error[-1]},
        "min_overparameterised_error": min(test_error[i] for i in over),
    })
    ctx.say(f"{N_TRAIN} training digits ({LABEL_NOISE:.0%} label noise), random ReLU features + min-norm least squares, "
            f"{draws} draws per width")
    ctx.say(f"test error peaks at {test_error[peak]:.3f} with p = {widths[peak]} features (interpolation threshold "
            f"p = n = {N_TRAIN}); best below it {test_error[best_under]:.3f} at p = {widths[best_under]}; "
            f"{test_error[-1]:.3f} at p = {widths[-1]}")

    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    axes[0].semilogx(widths, test_error, "o-", ms=3, label="test error")
    axes[0].semilogx(widths, np.minimum(train_mse, 1.0), "s-", ms=2.5, alpha=0.7, label="training squared error")
    axes[1].loglog(widths, test_mse, "o-", ms=3, color="tab:red", label="test squared error (median)")
    axes[1].loglog(widths, weight_norm, "s-", ms=2.5, color="tab:gray", label="read-out norm ||B|| (median)")
    for ax, place in zip(axes, ["lower left", "upper right"]):
        ax.axvline(N_TRAIN, color="k", ls="--", lw=1, label=f"interpolation threshold p = n = {N_TRAIN}")
        ax.set_xlabel("random features p (model width)")
        ax.legend(fontsize=7, loc=place)
    axes[0].annotate(f"peak {test_error[peak]:.2f}", (widths[peak], test_error[peak]),
                     xytext=(widths[peak] * 2.5, test_error[peak] * 0.97), arrowprops={"arrowstyle": "->"})
    axes[0].set_ylabel("error")
    axes[0].set_title("classification error (test) and training fit")
    axes[1].set_title("test squared error and size of the fitted read-out")
    fig.suptitle("Double descent: under-parameterised | over-parameterised")
    fig.tight_layout()
    ctx.savefig(fig, "double_descent.png")


def describe(results: dict) -> str:
    """The paragraph of docs/experiments.md, quoting the measured ``results``."""
    b, w = results["best_underparameterised"], results["widest"]
    return (
        f"Random ReLU features of {results['n_train']} digits ({results['label_noise']:.0%} of the labels "
        f"corrupted) with a least-squares read-out, averaged over {results['draws']} draws. The classical "
        f"U-curve reaches {b['test_error']:.3f} at p = {b['width']}; then the test error climbs to "
        f"{results['peak_test_error']:.3f} at p = {results['peak_width']}, right at the interpolation threshold "
        f"p = n where the training error reaches zero and the read-out has to grow huge to fit the noise "
        f"(right panel); past it the minimum-norm solution gets smoother and the error descends a second "
        f"time, to {w['test_error']:.3f} at p = {w['width']}."
    )
