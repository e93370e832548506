"""Optimisers side by side: loss curves on one task and trajectories on a 2-D surface.

Task: a 64-64-10 ReLU network on the digits, mini-batches of 32 (full batch for GD), the same
initial weights for every optimiser. Surface: Rosenbrock's banana valley
``f(x, y) = (1 - x)^2 + 100 (y - x^2)^2`` from ``(-1.5, 1.5)``, minimum at ``(1, 1)``.

Momentum is run twice: the lecture's rule ``v <- a v + (1 - a) g; w <- w - lr v`` (``SGD(momentum=a,
dampening=a)``), whose steady-state step is ``lr g`` (the same as SGD's), and PyTorch's undampened
heavy ball ``v <- a v + g`` (``dampening=0``, as Nesterov), whose step is ``lr g / (1 - a)``, ten times
larger at the same ``lr``. The comparison is fair in the learning rate: every optimiser gets its
own rate, the best of the same grid (``1e-3 ... 3``, lowest final training loss on the digits with
seed 0; on the surface the smallest final distance to the minimum among the paths that stay in the
plotted window). On the digits the headline is the mean ± std over seeds (initial weights and
batches change with the seed) at each optimiser's chosen rate. SGD on the surface is GD with
Gaussian noise of half the gradient's norm added to every gradient.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

import rosenblatt as rb
from rosenblatt import nn
from rosenblatt.experiments._common import Context, batches, digits_split, evaluate, fmt, pyplot

TITLE = "Optimisers: GD, SGD, momentum, Nesterov, Adagrad, Adadelta, RMSprop, Adam"
CLAIM = "Momentum and adaptive methods converge faster than plain (stochastic) gradient descent"

optim = rb.optim
# name -> factory(parameters, lr)
OPTIMIZERS: dict[str, Callable[[Any, float], Any]] = {
    "GD (full batch)": lambda p, lr: optim.SGD(p, lr=lr),
    "SGD": lambda p, lr: optim.SGD(p, lr=lr),
    "momentum a=0.9 (lecture, dampened)": lambda p, lr: optim.SGD(p, lr=lr, momentum=0.9, dampening=0.9),
    "momentum 0.9 (undampened)": lambda p, lr: optim.SGD(p, lr=lr, momentum=0.9),
    "Nesterov 0.9": lambda p, lr: optim.SGD(p, lr=lr, momentum=0.9, nesterov=True),
    "Adagrad": lambda p, lr: optim.Adagrad(p, lr=lr),
    "Adadelta": lambda p, lr: optim.Adadelta(p, lr=lr),
    "RMSprop": lambda p, lr: optim.RMSprop(p, lr=lr),
    "Adam": lambda p, lr: optim.Adam(p, lr=lr),
}
MOMENTUM = "momentum a=0.9 (lecture, dampened)"
START = (-1.5, 1.5)


def rosenbrock(p: rb.Tensor) -> rb.Tensor:
    """Rosenbrock's function of the 2-vector ``p``; minimum 0 at (1, 1)."""
    return (1 - p[0]) ** 2 + 100 * (p[1] - p[0] ** 2) ** 2


def surface_path(make: Callable[[Any, float], Any], lr: float, steps: int, noise: float,
                 rng: np.random.Generator) -> np.ndarray:
    """Positions of the optimiser on Rosenbrock's surface; ``noise`` > 0 adds Gaussian noise of that
    relative size to each gradient (what a mini-batch gradient looks like)."""
    p = rb.tensor(np.array(START), dtype=rb.float64, requires_grad=True)
    optimizer = make([p], lr)
    path = [p.numpy().copy()]
    for _ in range(steps):
        loss = rosenbrock(p)
        optimizer.zero_grad()
        loss.backward()
        if noise > 0:
            g = p.grad.numpy()
            p.grad = rb.tensor(g + noise * np.linalg.norm(g) * rng.standard_normal(2), dtype=rb.float64)
        optimizer.step()
        path.append(p.numpy().copy())
        if not np.all(np.isfinite(path[-1])):
            break
    return np.array(path)


def train_digits(name: str, make: Callable[[Any, float], Any], lr: float, epochs: int, seed: int,
                 data: tuple[np.ndarray, ...]) -> tuple[list[float], float]:
    """Training-loss curve (per epoch) and test accuracy of the 64-64-10 network; the initial weights
    and the mini-batches depend only on ``seed``, so every optimiser starts and samples alike."""
    x_train, y_train, x_test, y_test = data
    loss_fn = nn.functional.cross_entropy
    rb.manual_seed(seed)
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    optimizer = make(model.parameters(), lr)
    order = np.random.default_rng(seed + 1)
    curve = [evaluate(model, loss_fn, x_train, y_train)[0]]
    for _ in range(epochs):
        index_sets = [np.arange(len(x_train))] if name.startswith("GD") else batches(len(x_train), 32, order)
        for index in index_sets:
            loss = loss_fn(model(rb.tensor(x_train[index])), rb.tensor(y_train[index]))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        curve.append(evaluate(model, loss_fn, x_train, y_train)[0])
        if not np.isfinite(curve[-1]):
            break
    return curve, evaluate(model, loss_fn, x_test, y_test)[1]


def run(ctx: Context) -> None:
    """Run the experiment: tune each optimiser's rate, train over seeds, fill ``ctx.results``, draw."""
    quick = ctx.quick
    epochs = 6 if quick else 30
    surface_steps = 400 if quick else 1000
    grid = [1e-3, 1e-2, 0.1, 1.0] if quick else [1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0]
    surface_grid = [1e-4, 1e-3, 1e-2, 0.1, 1.0] if quick else [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0]
    seeds = [ctx.seed + i for i in range(2 if quick else 3)]
    data = digits_split(1200, ctx.rng())

    chosen, tuning = {}, {}
    for name, make in OPTIMIZERS.items():  # each optimiser's best rate on the grid (seed 0 of the run)
        finals = {lr: train_digits(name, make, lr, epochs, ctx.seed, data)[0][-1] for lr in grid}
        finals = {lr: (v if np.isfinite(v) else float("inf")) for lr, v in finals.items()}
        tuning[name] = finals
        chosen[name] = min(finals, key=finals.get)

    curves: dict[str, list[float]] = {}
    final, final_std, test_acc, epochs_to = {}, {}, {}, {}
    for name, make in OPTIMIZERS.items():
        runs = [train_digits(name, make, chosen[name], epochs, seed, data) for seed in seeds]
        curve = np.mean([r[0] for r in runs], axis=0)
        curves[name] = curve.tolist()
        finals = np.array([r[0][-1] for r in runs])
        final[name], final_std[name] = float(finals.mean()), float(finals.std())
        test_acc[name] = float(np.mean([r[1] for r in runs]))
        below = [e for e, value in enumerate(curve) if value < 0.3]
        epochs_to[name] = below[0] if below else None

    paths, final_distance, surface_lr = {}, {}, {}
    for name, make in OPTIMIZERS.items():
        noise = 0.5 if name == "SGD" else 0.0
        best = None
        for lr in surface_grid:
            path = surface_path(make, lr, surface_steps, noise, np.random.default_rng(ctx.seed + 2))
            if not (np.all(np.isfinite(path)) and np.all(np.abs(path) < 5)):
                continue
            distance = float(np.linalg.norm(path[-1] - 1.0))
            if best is None or distance < best[0]:
                best = (distance, lr, path)
        final_distance[name], surface_lr[name], paths[name] = best

    ctx.results.update({
        "epochs": epochs, "seeds": seeds, "lr_grid": grid, "surface_lr_grid": surface_grid,
        "learning_rates": {k: {"digits": chosen[k], "rosenbrock": surface_lr[k]} for k in OPTIMIZERS},
        "tuning_final_loss": {k: {str(lr): v for lr, v in t.items()} for k, t in tuning.items()},
        "train_loss": curves, "final_train_loss": final, "final_train_loss_std": final_std,
        "test_accuracy": test_acc, "epochs_to_loss_0.3": epochs_to, "rosenbrock_steps": surface_steps,
        "rosenbrock_final_distance_to_minimum": final_distance,
    })
    ctx.say(f"digits MLP, training loss after {epochs} epochs at each optimiser's best rate from the same grid "
            f"(mean ± std over {len(seeds)} seeds): "
            + ", ".join(f"{k} {fmt(final[k])} ± {fmt(final_std[k])} (lr {chosen[k]:g})" for k in OPTIMIZERS))
    ctx.say("epochs to reach training loss 0.3 (seed-mean curve): "
            + ", ".join(f"{k} {v if v is not None else '>' + str(epochs)}" for k, v in epochs_to.items()))
    ctx.say(f"Rosenbrock, distance to the minimum after {surface_steps} steps at each optimiser's best rate: "
            + ", ".join(f"{k} {fmt(v)} (lr {surface_lr[k]:g})" for k, v in final_distance.items()))

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 4.2))
    for name, curve in curves.items():
        ax.semilogy(np.arange(len(curve)), curve, "o-", ms=2.5,
                    label=f"{name}, lr {chosen[name]:g} (test acc {test_acc[name]:.2f})")
    ax.set_xlabel("epoch (passes over the training set)")
    ax.set_ylabel("training loss (cross-entropy)")
    ax.set_title(f"digits, 64-64-10 ReLU network, each optimiser at its best rate; mean of {len(seeds)} seeds")
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    ctx.savefig(fig, "optimizers_loss.png")

    fig, axes = plt.subplots(2, 5, figsize=(17, 6.4), sharex=True, sharey=True)
    axes.ravel()[-1].axis("off")
    gx, gy = np.meshgrid(np.linspace(-2, 2, 300), np.linspace(-1, 3, 300))
    surface = np.log10((1 - gx) ** 2 + 100 * (gy - gx ** 2) ** 2 + 1e-2)
    for ax, (name, path) in zip(axes.ravel(), paths.items()):
        ax.contourf(gx, gy, surface, levels=20, cmap="Greys_r", alpha=0.6)
        shown = path[np.all(np.abs(path) < 5, axis=1)]
        ax.plot(shown[:, 0], shown[:, 1], "-", color="tab:orange", lw=1.2)
        ax.plot(shown[-1, 0], shown[-1, 1], "o", color="tab:orange", ms=4)
        ax.plot(*START, "ko", ms=4)
        ax.plot(1, 1, "r*", ms=11)
        ax.set_xlim(-2, 2)
        ax.set_ylim(-1, 3)
        ax.grid(False)
        ax.set_title(f"{name}\nlr {surface_lr[name]:g}, distance {fmt(final_distance[name], 2)}", fontsize=9)
    fig.suptitle(f"Rosenbrock's valley, {surface_steps} steps from (-1.5, 1.5) to the minimum (1, 1) (red star)")
    fig.tight_layout()
    ctx.savefig(fig, "optimizers_rosenbrock.png")


def describe(results: dict) -> str:
    """The paragraph of docs/experiments.md, quoting the measured ``results``."""
    final, std = results["final_train_loss"], results["final_train_loss_std"]
    dist, lrs = results["rosenbrock_final_distance_to_minimum"], results["learning_rates"]
    ranked = sorted(final, key=final.get)

    def loss(name: str) -> str:
        return f"{fmt(final[name])} ± {fmt(std[name])} (lr {lrs[name]['digits']:g})"

    return (
        f"Left: training loss per epoch on the digits, every optimiser at its own best learning rate from the "
        f"same grid, averaged over {len(results['seeds'])} seeds. After {results['epochs']} epochs the lowest "
        f"losses are {ranked[0]} at {loss(ranked[0])} and {ranked[1]} at {loss(ranked[1])}; plain SGD ends at "
        f"{loss('SGD')} and full-batch GD, one step per epoch, at {loss('GD (full batch)')}. The lecture's "
        f"dampened momentum reaches {loss(MOMENTUM)}, the undampened heavy ball "
        f"{loss('momentum 0.9 (undampened)')} and Nesterov {loss('Nesterov 0.9')}: once each has its own rate, "
        f"dampening only rescales the rate. Right: on Rosenbrock's valley, each at its best rate, GD ends "
        f"{fmt(dist['GD (full batch)'])} from the minimum after {results['rosenbrock_steps']} steps, momentum "
        f"{fmt(dist[MOMENTUM])} (dampened) and {fmt(dist['momentum 0.9 (undampened)'])} (undampened), Nesterov "
        f"{fmt(dist['Nesterov 0.9'])} and Adam {fmt(dist['Adam'])}."
    )
