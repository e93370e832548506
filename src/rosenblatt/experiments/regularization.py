"""Overfitting a small, noisy training set, and six ways to curb it.

A 64-256-256-10 ReLU network (about 85,000 weights) is trained with Adam on only 200 digits, a
fifth of whose labels are wrong (a small, noisy training set: exactly what a large network
memorises). The same network, initial weights and mini-batches are then trained with dropout
(Srivastava et al. 2014), an L1 or L2 penalty on the weights, early stopping on a validation set,
Gaussian noise injected into the inputs, and data augmentation (random one-pixel shifts). Each is
scored on ~1,300 held-out digits with correct labels.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import rosenblatt as rb
from rosenblatt import nn
from rosenblatt.experiments._common import Context, batches, digits_split, evaluate, pyplot

TITLE = "Regularisation: dropout, L1, L2, early stopping, noise injection, augmentation"
CLAIM = "A big network memorises a small noisy training set; regularisers improve the test score"

# label -> settings
METHODS: dict[str, dict[str, Any]] = {
    "no regularisation": {},
    "dropout 0.5": {"dropout": 0.5},
    "L1 3e-4": {"l1": 3e-4},
    "L2 3e-3": {"l2": 3e-3},
    "early stopping": {"early_stopping": 10},
    "input noise 0.3": {"noise": 0.3},
    "augmentation (shifts)": {"augment": True},
}
LABEL_NOISE = 0.2
N_TRAIN = 200


def network(dropout: float = 0.0, noise: float = 0.0) -> nn.Sequential:
    """64 -> 256 -> 256 -> 10 with ReLU; optional input noise and dropout after each hidden layer."""
    layers: list[nn.Module] = [nn.GaussianNoise(noise)] if noise else []
    for fan_in in (64, 256):
        layers += [nn.Linear(fan_in, 256), nn.ReLU()]
        if dropout:
            layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(256, 10))
    return nn.Sequential(*layers)


def one_seed(seed: int, epochs: int) -> dict[str, Any]:
    """Train every method once with the data split, label noise, weights and batches of ``seed``."""
    rng = np.random.default_rng(seed * 1000)
    x_train, y_train, x_rest, y_rest = digits_split(N_TRAIN, rng)
    x_val, y_val, x_test, y_test = x_rest[:300], y_rest[:300], x_rest[300:], y_rest[300:]
    y_true, y_train = y_train, y_train.copy()
    flipped = rng.random(N_TRAIN) < LABEL_NOISE
    y_train[flipped] = rng.integers(0, 10, flipped.sum())  # some land on the true label again
    wrong = float(np.mean(y_train != y_true))
    loss_fn = nn.functional.cross_entropy
    shift = rb.data.transforms.RandomCrop(8, padding=1, seed=seed + 3)

    curves, scores, stopped = {}, {}, {}
    for label, cfg in METHODS.items():
        rb.manual_seed(seed)  # the same initial weights for every method
        model = network(cfg.get("dropout", 0.0), cfg.get("noise", 0.0))
        optimizer = rb.optim.Adam(model.parameters(), lr=1e-3)
        weights = [p for name, p in model.named_parameters() if name.endswith("weight")]
        order = np.random.default_rng(seed + 1)
        train_curve, val_curve = [], []
        best_loss, best_state, best_epoch = np.inf, None, 0
        for epoch in range(epochs):
            for index in batches(N_TRAIN, 32, order):
                x = x_train[index]
                if cfg.get("augment"):
                    x = shift(x.reshape(-1, 1, 8, 8)).reshape(len(index), 64)
                loss = loss_fn(model(rb.tensor(x)), rb.tensor(y_train[index]))
                if "l1" in cfg:
                    loss = loss + cfg["l1"] * nn.utils.l1_penalty(weights)
                if "l2" in cfg:
                    loss = loss + cfg["l2"] * nn.utils.l2_penalty(weights)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            train_curve.append(evaluate(model, loss_fn, x_train, y_train)[0])
            val_curve.append(evaluate(model, loss_fn, x_val, y_val)[0])
            if val_curve[-1] < best_loss:
                best_loss, best_epoch = val_curve[-1], epoch
                best_state = {k: v.numpy().copy() for k, v in model.state_dict().items()}
            elif "early_stopping" in cfg and epoch - best_epoch >= cfg["early_stopping"]:
                break
        if "early_stopping" in cfg:  # restore the weights of the best validation epoch
            model.load_state_dict({k: rb.tensor(v) for k, v in best_state.items()})
            stopped[label] = {"stopped_at": epoch + 1, "best_epoch": best_epoch + 1}
        train_loss, train_acc = evaluate(model, loss_fn, x_train, y_train)
        test_loss, test_acc = evaluate(model, loss_fn, x_test, y_test)
        curves[label] = {"train_loss": train_curve, "val_loss": val_curve}
        scores[label] = {"train_accuracy": train_acc, "train_loss": train_loss, "test_accuracy": test_acc,
                         "test_loss": test_loss}

    return {"curves": curves, "scores": scores, "stopped": stopped, "wrong": wrong, "n_test": len(x_test)}


def run(ctx: Context) -> None:
    """Run the experiment over seeds: train, measure, fill ``ctx.results``, draw the figures."""
    epochs = 35 if ctx.quick else 200
    seeds = [ctx.seed + i for i in range(3 if ctx.quick else 5)]
    runs = [one_seed(seed, epochs) for seed in seeds]
    first = runs[0]
    curves, stopped, wrong = first["curves"], first["stopped"], float(np.mean([r["wrong"] for r in runs]))
    scores: dict[str, dict[str, float]] = {}
    for label in METHODS:
        entry = {}
        for key in ("train_accuracy", "train_loss", "test_accuracy", "test_loss"):
            values = np.array([r["scores"][label][key] for r in runs])
            entry[key], entry[key + "_std"] = float(values.mean()), float(values.std())
        gain = np.array([r["scores"][label]["test_accuracy"] - r["scores"]["no regularisation"]["test_accuracy"]
                         for r in runs])
        entry["gain"], entry["gain_std"], entry["gain_min"] = float(gain.mean()), float(gain.std()), float(gain.min())
        entry["per_seed_test_accuracy"] = [r["scores"][label]["test_accuracy"] for r in runs]
        scores[label] = entry
    x_test = np.empty(first["n_test"])
    base = scores["no regularisation"]
    ctx.results.update({
        "n_train": N_TRAIN, "label_noise": LABEL_NOISE, "wrong_labels": wrong, "epochs": epochs, "seeds": seeds,
        "n_test": len(x_test), "scores": scores, "curves": curves, "early_stopping": stopped,
        "improvement_over_baseline": {k: v["gain"] for k, v in scores.items()},
    })
    n = len(seeds)
    ctx.say(f"{N_TRAIN} training digits ({wrong:.0%} mislabelled), {epochs} epochs, mean ± std over {n} seeds "
            f"(data split, label noise, weights and batches change with the seed): the unregularised net fits "
            f"{base['train_accuracy']:.0%} of its training labels but has test accuracy "
            f"{base['test_accuracy']:.3f} ± {base['test_accuracy_std']:.3f} on {len(x_test)} test digits")
    ctx.say("test accuracy gain over no regularisation (paired by seed, mean ± std, worst seed): "
            + ", ".join(f"{k} {v['gain']:+.3f} ± {v['gain_std']:.3f} (worst {v['gain_min']:+.3f})"
                        for k, v in scores.items() if k != "no regularisation"))
    if stopped:
        ctx.say(f"early stopping (seed {seeds[0]}): best validation loss at epoch "
                f"{stopped['early stopping']['best_epoch']}, stopped at {stopped['early stopping']['stopped_at']}")

    plt = pyplot()
    from matplotlib import ticker

    fig, axes = plt.subplots(2, 4, figsize=(15, 6.4))
    low = min(min(c["train_loss"]) for c in curves.values()) * 0.8
    high = max(max(c["val_loss"] + c["train_loss"]) for c in curves.values()) * 1.2
    for ax, (label, curve) in zip(axes.ravel(), curves.items()):
        ax.plot(np.arange(1, len(curve["train_loss"]) + 1), curve["train_loss"], label="training (noisy labels)")
        ax.plot(np.arange(1, len(curve["val_loss"]) + 1), curve["val_loss"], label="validation")
        if label in stopped:
            ax.axvline(stopped[label]["best_epoch"], color="k", ls=":", label="restored epoch")
        ax.set_title(f"{label}: test acc {scores[label]['test_accuracy']:.3f} ± {scores[label]['test_accuracy_std']:.3f}",
                     fontsize=8)
        ax.set_yscale("log")
        ax.set_ylim(low, high)
        ax.set_xlim(0, epochs)
        ax.yaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
        ax.yaxis.set_minor_formatter(ticker.NullFormatter())
    axes[0, 0].legend()
    for ax in axes[1, :3]:
        ax.set_xlabel("epoch")
    for ax in axes[:, 0]:
        ax.set_ylabel("cross-entropy")
    ax = axes[1, 3]
    ax.clear()
    names = list(scores)
    positions = np.arange(len(names))
    ax.barh(positions + 0.2, [scores[k]["train_accuracy"] for k in names], 0.4, label="train (noisy labels)")
    ax.barh(positions - 0.2, [scores[k]["test_accuracy"] for k in names], 0.4, label=f"test (mean of {n} seeds)",
            xerr=[scores[k]["test_accuracy_std"] for k in names])
    ax.set_yticks(positions, names, fontsize=7)
    ax.set_xlim(0.5, 1.0)
    ax.invert_yaxis()
    ax.set_title("accuracy")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.06), ncol=2, fontsize=7)
    fig.tight_layout()
    ctx.savefig(fig, "regularization.png")


def describe(results: dict) -> str:
    """The paragraph of docs/experiments.md, quoting the measured ``results``."""
    s = results["scores"]
    base = s["no regularisation"]
    others = ", ".join(f"{k} {v['test_accuracy']:.3f} ({v['gain']:+.3f} ± {v['gain_std']:.3f})"
                       for k, v in s.items() if k != "no regularisation")
    es = results["early_stopping"].get("early stopping", {})
    return (
        f"{results['n_train']} training digits, {results['wrong_labels']:.0%} of them mislabelled, and a "
        f"network with ~85,000 weights: unregularised, it fits {base['train_accuracy']:.0%} of the training "
        f"labels (mistakes included) while its validation loss turns upward after a few epochs; its test "
        f"accuracy is {base['test_accuracy']:.3f} ± {base['test_accuracy_std']:.3f} (mean ± std over "
        f"{len(results['seeds'])} seeds). Test accuracy with each regulariser, same weights and batches as the "
        f"baseline of its seed (in brackets the paired gain, mean ± std): {others}. Early stopping (first seed) "
        f"restores the weights of epoch {es.get('best_epoch')}, where the validation loss was lowest; the curves "
        f"shown are the first seed's."
    )
