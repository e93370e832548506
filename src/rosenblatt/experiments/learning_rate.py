"""The learning rate: too small crawls, too large diverges, a schedule gets the best of both.

Left: gradient descent on the parabola ``f(w) = w^2`` (``w <- (1 - 2 lr) w``): it converges for
``lr < 1`` and diverges beyond. Right: SGD on a 64-64-10 ReLU network on the digits with a constant
rate that is too small, one that is right, one that is too large, and a cosine-annealed schedule
(Loshchilov & Hutter 2017) that starts at a rate near the edge of stability and decays to zero.
"""

from __future__ import annotations

import numpy as np

import rosenblatt as rb
from rosenblatt import nn
from rosenblatt.experiments._common import Context, batches, digits_split, evaluate, fmt, pyplot

TITLE = "Learning rate: too small, right, too large, scheduled"
CLAIM = "Too small a learning rate crawls, too large diverges; a decaying schedule ends lowest"

# label -> (initial learning rate, cosine schedule?)
RUNS = {
    "too small (0.003)": (0.003, False),
    "right (0.3)": (0.3, False),
    "too large (3.0)": (3.0, False),
    "cosine schedule 1.0 -> 0": (1.0, True),
}
PARABOLA = {"too small (0.05)": 0.05, "right (0.4)": 0.4, "too large (1.05)": 1.05}


def run(ctx: Context) -> None:
    """Run the experiment: train, measure, fill ``ctx.results``, draw the figures."""
    epochs = 8 if ctx.quick else 30
    seeds = [ctx.seed + i for i in range(3)]
    rng = ctx.rng()
    x_train, y_train, x_test, y_test = digits_split(1200, rng)
    loss_fn = nn.functional.cross_entropy
    steps_per_epoch = int(np.ceil(len(x_train) / 32))

    all_curves: dict[str, list] = {label: [] for label in RUNS}
    all_test: dict[str, list] = {label: [] for label in RUNS}
    rates: dict[str, list] = {}
    for seed in seeds:  # the initial weights and the batches change with the seed, the same for every rate
        rb.manual_seed(seed)
        initial = {k: v.numpy().copy() for k, v in
                   nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10)).state_dict().items()}
        for label, (lr, cosine) in RUNS.items():
            model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
            model.load_state_dict({k: rb.tensor(v) for k, v in initial.items()})
            optimizer = rb.optim.SGD(model.parameters(), lr=lr)
            schedule = rb.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs * steps_per_epoch) if cosine else None
            order = np.random.default_rng(seed + 1)
            curve, lrs = [evaluate(model, loss_fn, x_train, y_train)[0]], []
            with np.errstate(all="ignore"):  # the too-large rate overflows on purpose
                for _ in range(epochs):
                    for index in batches(len(x_train), 32, order):
                        loss = loss_fn(model(rb.tensor(x_train[index])), rb.tensor(y_train[index]))
                        optimizer.zero_grad()
                        loss.backward()
                        optimizer.step()
                        lrs.append(optimizer.param_groups[0]["lr"])
                        if schedule is not None:
                            schedule.step()
                    curve.append(evaluate(model, loss_fn, x_train, y_train)[0])
                all_test[label].append(evaluate(model, loss_fn, x_test, y_test))
            all_curves[label].append(curve)
            rates[label] = lrs
    with np.errstate(all="ignore"):
        curves = {k: np.mean(v, axis=0).tolist() for k, v in all_curves.items()}
        final_std = {k: float(np.std([c[-1] for c in v])) for k, v in all_curves.items()}
    test = {k: (float(np.mean([t[0] for t in v])), float(np.mean([t[1] for t in v]))) for k, v in all_test.items()}
    test_std = {k: float(np.std([t[1] for t in v])) for k, v in all_test.items()}

    paths = {}
    for label, lr in PARABOLA.items():
        w = [1.0]
        for _ in range(12):
            w.append(w[-1] - lr * 2 * w[-1])
        paths[label] = w

    final = {k: v[-1] for k, v in curves.items()}
    ctx.results.update({
        "epochs": epochs, "seeds": seeds, "train_loss": curves, "final_train_loss": final,
        "final_train_loss_std": final_std, "test_accuracy_std": test_std, "initial_loss": curves["right (0.3)"][0],
        "test_loss": {k: v[0] for k, v in test.items()}, "test_accuracy": {k: v[1] for k, v in test.items()},
        "parabola_w": paths,
    })
    ctx.say(f"SGD on the digits, training loss after {epochs} epochs, mean ± std over {len(seeds)} seeds "
            f"(initial {fmt(curves['right (0.3)'][0])}): " + ", ".join(f"{k} {fmt(v)} ± {fmt(final_std[k])}"
                                                                        for k, v in final.items()))
    ctx.say("test accuracy (mean ± std over seeds): "
            + ", ".join(f"{k} {v[1]:.3f} ± {test_std[k]:.3f}" for k, v in test.items()))
    ctx.say("parabola w^2 after 12 steps from w=1: " + ", ".join(f"{k} w={fmt(v[-1])}" for k, v in paths.items()))

    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4), gridspec_kw={"width_ratios": [1, 1.3, 0.8]})
    ws = np.linspace(-1.8, 1.8, 200)
    axes[0].plot(ws, ws ** 2, "k", lw=1)
    for label, path in paths.items():
        shown = np.array([w for w in path if abs(w) < 1.8])
        axes[0].plot(shown, shown ** 2, "o-", ms=3, lw=1, label=label)
    axes[0].set_title("GD on f(w) = w^2 from w = 1")
    axes[0].set_xlabel("w")
    axes[0].legend()
    for label, curve in curves.items():
        axes[1].semilogy(np.arange(len(curve)), curve, "o-", ms=2.5,
                         label=f"{label} (test acc {test[label][1]:.2f})")
    axes[1].set_xlabel("epoch")
    axes[1].set_ylabel("training loss")
    axes[1].set_title("SGD on the digits (64-64-10 ReLU)")
    axes[1].legend()
    for label, lrs in rates.items():
        axes[2].semilogy(np.arange(len(lrs)) / steps_per_epoch, lrs, label=label)
    axes[2].set_xlabel("epoch")
    axes[2].set_ylabel("learning rate")
    axes[2].set_title("the rates used")
    fig.tight_layout()
    ctx.savefig(fig, "learning_rate.png")


def describe(results: dict) -> str:
    """The paragraph of docs/experiments.md, quoting the measured ``results``."""
    final, acc = results["final_train_loss"], results["test_accuracy"]
    return (
        f"On the parabola, a rate of 0.05 creeps towards the minimum, 0.4 reaches it in a few steps and "
        f"1.05 overshoots further at every step. On the digits (initial loss {fmt(results['initial_loss'])}; "
        f"means over {len(results.get('seeds', [0]))} seeds), "
        f"after {results['epochs']} epochs SGD with lr 0.003 has only reached {fmt(final['too small (0.003)'])}, "
        f"lr 0.3 reaches {fmt(final['right (0.3)'])} (test accuracy {acc['right (0.3)']:.2f}), lr 3.0 blows up "
        f"and stays at chance ({fmt(final['too large (3.0)'])}, accuracy {acc['too large (3.0)']:.2f}); the "
        f"cosine schedule starts at 1.0, moves fast while the rate is large and settles to the lowest loss, "
        f"{fmt(final['cosine schedule 1.0 -> 0'])} (accuracy {acc['cosine schedule 1.0 -> 0']:.2f})."
    )
