"""A CNN against an MLP on the same images: parameters, accuracy, and shifted test images.

The 8x8 digits are placed in the middle of a 14x14 canvas; every network is trained on centred
digits only and then tested on digits moved by up to 3 pixels. Convolutions share their weights
across positions, so a shifted input gives a shifted feature map (translation equivariance); a
global max pool over the last feature maps turns that into invariance. A fully connected layer
ties every weight to one pixel, so the MLP - and a CNN whose head is a dense layer over the
flattened maps - sees a shifted digit as a new pattern.
"""

from __future__ import annotations

import numpy as np

import rosenblatt as rb
from rosenblatt import nn
from rosenblatt.experiments._common import Context, batches, digits_split, evaluate, pyplot

TITLE = "CNN vs MLP: parameters, accuracy and translated images"
CLAIM = "A CNN needs fewer weights than an MLP and, with global pooling, shrugs off shifted images"

PAD = 3
SIZE = 8 + 2 * PAD


def canvas(x: np.ndarray, dx: int = 0, dy: int = 0) -> np.ndarray:
    """Flat 8x8 digits drawn on a ``SIZE x SIZE`` canvas, moved by ``dx`` right and ``dy`` down."""
    out = np.zeros((len(x), 1, SIZE, SIZE), dtype=np.float32)
    out[:, 0, PAD + dy:PAD + dy + 8, PAD + dx:PAD + dx + 8] = x.reshape(-1, 8, 8)
    return out


def models() -> dict[str, nn.Module]:
    """The three contenders (built after seeding, so their weights are reproducible)."""
    return {
        "MLP 196-128-10": nn.Sequential(nn.Flatten(), nn.Linear(SIZE * SIZE, 128), nn.ReLU(), nn.Linear(128, 10)),
        "CNN, dense head": nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(32 * (SIZE // 4) ** 2, 10)),
        "CNN, global max pool": nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
            nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(32, 10)),
    }


def run(ctx: Context) -> None:
    """Run the experiment: train, measure, fill ``ctx.results``, draw the figures."""
    epochs = 4 if ctx.quick else 15
    rng = ctx.rng()
    x_train, y_train, x_test, y_test = digits_split(1200, rng)
    if ctx.quick:
        x_test, y_test = x_test[:300], y_test[:300]
    images = canvas(x_train)
    loss_fn = nn.functional.cross_entropy
    shifts = list(range(-PAD, PAD + 1))

    seeds = [ctx.seed + i for i in range(2 if ctx.quick else 3)]
    params: dict[str, int] = {}
    per_seed: list[dict] = []
    for seed in seeds:  # the initial weights and the batches change with the seed
        rb.manual_seed(seed)
        nets = models()
        clean, by_shift, by_distance = {}, {}, {}
        for name, model in nets.items():
            optimizer = rb.optim.Adam(model.parameters(), lr=3e-3)
            order = np.random.default_rng(seed + 1)
            for _ in range(epochs):
                for index in batches(len(images), 32, order):
                    loss = loss_fn(model(rb.tensor(images[index])), rb.tensor(y_train[index]))
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
            params[name] = model.num_parameters()
            clean[name] = evaluate(model, loss_fn, canvas(x_test), y_test)[1]
            # accuracy for each horizontal and each vertical shift; by distance: the four directions averaged
            horizontal = [evaluate(model, loss_fn, canvas(x_test, dx=s), y_test)[1] for s in shifts]
            vertical = [evaluate(model, loss_fn, canvas(x_test, dy=s), y_test)[1] for s in shifts]
            by_shift[name] = {"horizontal": horizontal, "vertical": vertical}
            by_distance[name] = [float(np.mean([horizontal[PAD + d], horizontal[PAD - d], vertical[PAD + d],
                                                vertical[PAD - d]])) for d in range(PAD + 1)]
        per_seed.append({"clean": clean, "by_shift": by_shift, "by_distance": by_distance})
    names = list(per_seed[0]["clean"])
    clean = {k: float(np.mean([r["clean"][k] for r in per_seed])) for k in names}
    clean_std = {k: float(np.std([r["clean"][k] for r in per_seed])) for k in names}
    by_distance = {k: np.mean([r["by_distance"][k] for r in per_seed], axis=0).tolist() for k in names}
    by_distance_std = {k: np.std([r["by_distance"][k] for r in per_seed], axis=0).tolist() for k in names}
    by_shift = {k: {d: np.mean([r["by_shift"][k][d] for r in per_seed], axis=0).tolist()
                    for d in ("horizontal", "vertical")} for k in names}

    drop = {k: clean[k] - v[-1] for k, v in by_distance.items()}
    ctx.results.update({
        "epochs": epochs, "canvas": SIZE, "parameters": params, "test_accuracy": clean, "shifts": shifts,
        "seeds": seeds, "test_accuracy_std": clean_std, "accuracy_by_distance_std": by_distance_std,
        "accuracy_by_shift": by_shift, "accuracy_by_distance": by_distance,
        f"accuracy_drop_at_{PAD}_pixels": drop,
    })
    ctx.say("parameters: " + ", ".join(f"{k} {v:,}" for k, v in params.items()))
    ctx.say(f"test accuracy on centred digits (mean ± std over {len(seeds)} seeds): "
            + ", ".join(f"{k} {v:.3f} ± {clean_std[k]:.3f}" for k, v in clean.items()))
    ctx.say(f"test accuracy on digits shifted by {PAD} pixels (mean over the four directions): "
            + ", ".join(f"{k} {by_distance[k][-1]:.3f} ± {by_distance_std[k][-1]:.3f} (down {drop[k]:.3f} from centred)"
                        for k in names))

    plt = pyplot()
    fig = plt.figure(figsize=(14, 4))
    grid = fig.add_gridspec(2, 5, width_ratios=[1, 1, 1, 4.5, 4.5])
    for col, s in enumerate([-PAD, 0, PAD]):
        for row, (dx, dy) in enumerate([(s, 0), (0, s)]):
            ax = fig.add_subplot(grid[row, col])
            ax.imshow(canvas(x_test[:1], dx, dy)[0, 0], cmap="gray_r")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{'dx' if row == 0 else 'dy'} = {s}", fontsize=8)
    ax = fig.add_subplot(grid[:, 3])
    for name in nets:
        ax.plot(shifts, by_shift[name]["horizontal"], "o-", ms=3, label=f"{name} ({params[name]:,} weights)")
    ax.set_xlabel("horizontal shift of the test digits (pixels)")
    ax.set_ylabel("test accuracy")
    ax.set_title(f"trained on centred digits only (mean of {len(seeds)} seeds)")
    ax.set_ylim(0, 1.02)
    ax.legend(loc="lower center", fontsize=7)
    ax = fig.add_subplot(grid[:, 4])
    for name in nets:
        ax.plot(range(PAD + 1), by_distance[name], "o-", ms=3, label=name)
    ax.set_xlabel("shift distance (pixels, 4 directions averaged)")
    ax.set_xticks(range(PAD + 1))
    ax.set_title("accuracy under translation")
    ax.set_ylim(0, 1.02)
    ax.legend(loc="lower left", fontsize=7)
    fig.tight_layout()
    ctx.savefig(fig, "cnn_vs_mlp.png")


def describe(results: dict) -> str:
    """The paragraph of docs/experiments.md, quoting the measured ``results``."""
    p, acc, dist = results["parameters"], results["test_accuracy"], results["accuracy_by_distance"]
    mlp, dense, gmp = "MLP 196-128-10", "CNN, dense head", "CNN, global max pool"
    return (
        f"Trained on centred digits, the MLP ({p[mlp]:,} weights) reaches {acc[mlp]:.3f} and the CNN with a "
        f"global max pool ({p[gmp]:,} weights, {p[gmp] / p[mlp]:.0%} of the MLP's) {acc[gmp]:.3f} test accuracy. "
        f"On test digits moved by 3 pixels the MLP's accuracy falls to {dist[mlp][-1]:.3f} while the global-pool "
        f"CNN keeps {dist[gmp][-1]:.3f}. The CNN with a "
        f"dense head ({p[dense]:,} weights) falls almost as far ({dist[dense][-1]:.3f}): its convolutions are "
        f"equivariant, but the dense layer over its flattened maps ties every weight to a position; only "
        f"the global pool turns equivariance into invariance."
    )
