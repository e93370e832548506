"""Rosenblatt's perceptron: it converges on linearly separable data and cannot learn XOR; a network
with one hidden layer solves XOR; more layers carve more complex decision regions.

The threshold unit ``a = step(w.x + b)`` is trained with Rosenblatt's rule
``w <- w + lr (y - a) x`` (Rosenblatt 1962; the perceptron convergence theorem of Novikoff 1962
guarantees a finite number of mistakes on separable data). The multi-layer networks are trained by
backpropagation with Adam.
"""

from __future__ import annotations

import warnings

import numpy as np

import rosenblatt as rb
from rosenblatt import nn
from rosenblatt.experiments._common import Context, decision_grid, fmt, predict, pyplot

TITLE = "The perceptron, XOR, and decision regions of 1, 2 and 3 layers"
CLAIM = "Rosenblatt's rule converges on separable data and fails on XOR; hidden layers fix it"


def rosenblatt_rule(x: np.ndarray, y: np.ndarray, epochs: int) -> tuple[np.ndarray, float, list[int]]:
    """Train ``rb.models.Perceptron`` with Rosenblatt's rule (one sample at a time, fixed order).

    Returns the weights, the bias and the number of mistakes in each epoch (0 = converged).
    """
    unit = rb.models.Perceptron(x.shape[1], dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "not linearly separable" on XOR: here that is the point
        history = unit.fit(x, y, epochs=epochs, lr=1.0)
    return unit.weight.numpy()[0], float(unit.bias.numpy()[0]), list(history.errors)


def threshold_accuracy(x: np.ndarray, y: np.ndarray, w: np.ndarray, b: float) -> float:
    """Accuracy of the threshold unit ``step(w.x + b)``."""
    return float(np.mean((x @ w + b >= 0).astype(np.int64) == y))


def mlp(hidden: list[int]) -> nn.Sequential:
    """A tanh network 2 -> hidden... -> 2 logits (``hidden=[]`` is a single linear layer)."""
    sizes = [2, *hidden, 2]
    layers: list[nn.Module] = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(fan_in, fan_out), nn.Tanh()]
    return nn.Sequential(*layers[:-1])


def fit_full_batch(model: nn.Module, x: np.ndarray, y: np.ndarray, steps: int, lr: float) -> float:
    """Full-batch Adam on cross-entropy; returns the training accuracy."""
    optimizer = rb.optim.Adam(model.parameters(), lr=lr)
    xt, yt = rb.tensor(x), rb.tensor(y)
    for _ in range(steps):
        loss = nn.functional.cross_entropy(model(xt), yt)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return float(np.mean(predict(model, x).argmax(1) == y))


def three_disks(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Points in [-2, 2]^2; class 1 inside any of three separate disks (a non-convex, disconnected set)."""
    x = rng.uniform(-2, 2, size=(4 * n, 2)).astype(np.float32)
    inside = ((np.hypot(x[:, 0] + 0.9, x[:, 1] + 0.5) < 0.7) | (np.hypot(x[:, 0] - 0.9, x[:, 1] - 0.5) < 0.7)
              | (np.hypot(x[:, 0] - 0.9, x[:, 1] + 0.9) < 0.5))
    # balanced classes, so that even the single layer has a line worth drawing
    keep = np.concatenate([np.flatnonzero(inside)[: n // 2], np.flatnonzero(~inside)[: n - n // 2]])
    keep = rng.permutation(keep)
    return x[keep], inside[keep].astype(np.int64)


def run(ctx: Context) -> None:
    """Run the experiment: train, measure, fill ``ctx.results``, draw the figures."""
    rng = ctx.rng()
    epochs = 30 if ctx.quick else 100
    n = 100 if ctx.quick else 200

    # 1. linearly separable: two blobs with a margin
    centers = np.array([[-0.7, -0.7], [0.7, 0.7]])
    y_sep = rng.integers(0, 2, size=4 * n)
    x_sep = centers[y_sep] + 0.8 * rng.standard_normal((4 * n, 2))
    # keep the points on their own side of the line 1.5 x1 + x2 = 0.3, at least 0.02 away: separable
    # by construction, with a small margin (so the rule needs a few epochs)
    distance = (1.5 * x_sep[:, 0] + x_sep[:, 1] - 0.3) / np.hypot(1.5, 1.0)
    keep = np.flatnonzero(((distance > 0) == (y_sep == 1)) & (np.abs(distance) > 0.02))[:n]
    x_sep, y_sep = x_sep[keep], y_sep[keep]
    w_sep, b_sep, mistakes_sep = rosenblatt_rule(x_sep, y_sep, epochs)
    acc_sep = threshold_accuracy(x_sep, y_sep, w_sep, b_sep)

    # 2. XOR: no line separates it, so the rule never stops making mistakes
    x_xor, y_xor = rb.data.datasets.make_xor(n, noise=0.25, seed=ctx.seed)
    x_xor = x_xor.astype(np.float64)
    w_xor, b_xor, mistakes_xor = rosenblatt_rule(x_xor, y_xor, epochs)
    acc_xor = threshold_accuracy(x_xor, y_xor, w_xor, b_xor)

    # 3. one hidden layer of 4 tanh units, trained by backpropagation, solves XOR
    steps = 300 if ctx.quick else 1000
    xor_net = mlp([4])
    acc_mlp = fit_full_batch(xor_net, x_xor.astype(np.float32), y_xor, steps, lr=0.05)

    # 4. decision regions of 1, 2 and 3 layers on a disconnected target
    x_reg, y_reg = three_disks(300 if ctx.quick else 600, rng)
    region_nets = {"1 layer (no hidden)": [], "2 layers (4 hidden)": [4], "3 layers (8+8 hidden)": [8, 8]}
    region_steps = 800 if ctx.quick else 2500
    region_acc, region_models = {}, {}
    for label, hidden in region_nets.items():
        model = mlp(hidden)
        region_acc[label] = fit_full_batch(model, x_reg, y_reg, region_steps, lr=0.03)
        region_models[label] = model

    ctx.results.update({
        "separable": {"epochs_to_converge": len(mistakes_sep) if mistakes_sep[-1] == 0 else None,
                      "mistakes_per_epoch": mistakes_sep, "accuracy": acc_sep},
        "xor": {"converged": mistakes_xor[-1] == 0, "min_mistakes": min(mistakes_xor), "epochs": len(mistakes_xor),
                "mistakes_per_epoch": mistakes_xor, "perceptron_accuracy": acc_xor, "mlp_accuracy": acc_mlp},
        "decision_regions": {"accuracy": region_acc, "hidden": region_nets},
    })
    if mistakes_sep[-1] == 0:
        ctx.say(f"separable blobs: Rosenblatt's rule converged after {len(mistakes_sep)} epochs "
                f"(accuracy {acc_sep:.3f})")
    else:
        ctx.say(f"separable blobs: not converged in {epochs} epochs (accuracy {acc_sep:.3f})")
    ctx.say(f"XOR: still {min(mistakes_xor)}+ mistakes per epoch after {len(mistakes_xor)} epochs, "
            f"accuracy {acc_xor:.3f}; a 2-layer MLP (4 tanh units) reaches {acc_mlp:.3f}")
    ctx.say("decision regions, training accuracy: "
            + ", ".join(f"{k} {fmt(v)}" for k, v in region_acc.items()))

    # figures
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    xx, yy, grid = decision_grid(x_xor)
    prob = predict(xor_net, grid)
    axes[2].contourf(xx, yy, (prob[:, 1] > prob[:, 0]).reshape(xx.shape), levels=[-0.5, 0.5, 1.5],
                     colors=["#cfe0f7", "#f7d4cf"], alpha=0.8)
    for ax, (x, y, w, b, title) in zip(axes[[0, 2]], [(x_sep, y_sep, w_sep, b_sep, "separable: converges"),
                                                    (x_xor, y_xor, w_xor, b_xor, "XOR: no line works")]):
        ax.scatter(x[:, 0], x[:, 1], c=y, cmap="coolwarm", s=12, edgecolors="k", linewidths=0.3)
        xs = np.linspace(x[:, 0].min(), x[:, 0].max(), 2)
        if abs(w[1]) > 1e-12:
            ax.plot(xs, -(w[0] * xs + b) / w[1], "k--", label="perceptron line")
        ax.set_ylim(x[:, 1].min() - 0.3, x[:, 1].max() + 0.3)
        ax.set_title(title)
    axes[2].set_title(f"XOR: perceptron acc {acc_xor:.2f}; MLP (shaded) {acc_mlp:.2f}")
    axes[2].legend(loc="upper right")
    axes[1].plot(np.arange(1, len(mistakes_sep) + 1), mistakes_sep, "o-", label="separable blobs")
    axes[1].plot(np.arange(1, len(mistakes_xor) + 1), mistakes_xor, "s-", ms=3, label="XOR")
    axes[1].set_xlabel("epoch")
    axes[1].set_ylabel("mistakes in the epoch")
    axes[1].set_title("Rosenblatt's rule: mistakes per epoch")
    axes[1].legend()
    fig.tight_layout()
    ctx.savefig(fig, "perceptron.png")

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8))
    xx, yy, grid = decision_grid(x_reg, margin=0.0)
    for ax, (label, model) in zip(axes, region_models.items()):
        prob = predict(model, grid)
        ax.contourf(xx, yy, (prob[:, 1] > prob[:, 0]).reshape(xx.shape), levels=[-0.5, 0.5, 1.5],
                    colors=["#cfe0f7", "#f7d4cf"])
        ax.scatter(x_reg[:, 0], x_reg[:, 1], c=y_reg, cmap="coolwarm", s=6, edgecolors="none")
        ax.set_title(f"{label}: acc {region_acc[label]:.2f}")
        ax.set_aspect("equal")
    fig.suptitle("Decision regions: half-plane, a few lines combined, arbitrary shapes")
    fig.tight_layout()
    ctx.savefig(fig, "decision_regions.png")


def describe(results: dict) -> str:
    """The paragraph of docs/experiments.md, quoting the measured ``results``."""
    sep, xor, reg = results["separable"], results["xor"], results["decision_regions"]["accuracy"]
    names = list(reg)
    return (
        f"Rosenblatt's rule `w <- w + (y - step(w.x + b)) x` stops making mistakes after "
        f"{sep['epochs_to_converge']} epochs on two separable blobs, but on XOR it still makes "
        f"{xor['min_mistakes']} or more mistakes in every one of {xor['epochs']} epochs "
        f"(final accuracy {fmt(xor['perceptron_accuracy'])}); one hidden layer of 4 tanh units trained "
        f"by backpropagation reaches {fmt(xor['mlp_accuracy'])}. On three separate disks, a single "
        f"layer draws one line (accuracy {fmt(reg[names[0]])}), one small hidden layer combines a few "
        f"lines ({fmt(reg[names[1]])}), and two hidden layers carve the disconnected regions "
        f"({fmt(reg[names[2]])})."
    )
