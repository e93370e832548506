"""Optimisers side by side: loss curves on one task and trajectories on a 2-D surface.

Task: a 64-64-10 ReLU network on the digits, mini-batches of 32 (full batch for GD), the same
initial weights for every optimiser. Surface: Rosenbrock's banana valley
``f(x, y) = (1 - x)^2 + 100 (y - x^2)^2`` from ``(-1.5, 1.5)``, minimum at ``(1, 1)``.

Momentum is the lecture's rule ``v <- a v + (1 - a) g; w <- w - lr v`` (``SGD(momentum=a,
dampening=a)``); its ``lr`` is therefore ``1 / (1 - a)`` times the plain SGD rate for the same step
size in steady state. On the digits, learning rates were chosen per optimiser from a grid
``1e-3 ... 3`` (near the best final loss); on the surface GD, SGD and both momentum methods share
``lr = 1e-3`` (so the figure shows what momentum adds at the same rate) and the adaptive methods use
the best rate of a grid ``1e-4 ... 3`` whose path stays in the plotted window. SGD on the surface is
GD with Gaussian noise of half the gradient's norm added to every gradient.
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
# name -> (learning rate on the digits, learning rate on Rosenbrock, factory)
OPTIMIZERS: dict[str, tuple[float, float, Callable[[Any, float], Any]]] = {
    "GD (full batch)": (1.0, 1e-3, lambda p, lr: optim.SGD(p, lr=lr)),
    "SGD": (0.1, 1e-3, lambda p, lr: optim.SGD(p, lr=lr)),
    "momentum a=0.9 (lecture)": (1.0, 1e-3, lambda p, lr: optim.SGD(p, lr=lr, momentum=0.9, dampening=0.9)),
    "Nesterov 0.9": (0.1, 1e-3, lambda p, lr: optim.SGD(p, lr=lr, momentum=0.9, nesterov=True)),
    "Adagrad": (0.1, 0.3, lambda p, lr: optim.Adagrad(p, lr=lr)),
    "Adadelta": (1.0, 3.0, lambda p, lr: optim.Adadelta(p, lr=lr)),
    "RMSprop": (0.01, 0.03, lambda p, lr: optim.RMSprop(p, lr=lr)),
    "Adam": (0.01, 0.3, lambda p, lr: optim.Adam(p, lr=lr)),
}
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


def run(ctx: Context) -> None:
    """Run the experiment: train, measure, fill ``ctx.results``, draw the figures."""
    epochs = 8 if ctx.quick else 30
    surface_steps = 500 if ctx.quick else 1000
    rng = ctx.rng()
    x_train, y_train, x_test, y_test = digits_split(1200, rng)
    rb.manual_seed(ctx.seed)
    initial = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10)).state_dict()
    initial = {k: v.numpy().copy() for k, v in initial.items()}
    loss_fn = nn.functional.cross_entropy

    curves: dict[str, list[float]] = {}
    test_acc, epochs_to = {}, {}
    for name, (lr, _, make) in OPTIMIZERS.items():
        model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
        model.load_state_dict({k: rb.tensor(v) for k, v in initial.items()})
        optimizer = make(model.parameters(), lr)
        order = np.random.default_rng(ctx.seed + 1)  # the same mini-batches for every optimiser
        curve = [evaluate(model, loss_fn, x_train, y_train)[0]]
        for _ in range(epochs):
            index_sets = [np.arange(len(x_train))] if name.startswith("GD") else batches(len(x_train), 32, order)
            for index in index_sets:
                loss = loss_fn(model(rb.tensor(x_train[index])), rb.tensor(y_train[index]))
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            curve.append(evaluate(model, loss_fn, x_train, y_train)[0])
        curves[name] = curve
        test_acc[name] = evaluate(model, loss_fn, x_test, y_test)[1]
        below = [e for e, value in enumerate(curve) if value < 0.3]
        epochs_to[name] = below[0] if below else None

    paths, final_distance = {}, {}
    for name, (_, lr, make) in OPTIMIZERS.items():
        noise = 0.5 if name == "SGD" else 0.0
        path = surface_path(make, lr, surface_steps, noise, np.random.default_rng(ctx.seed + 2))
        paths[name] = path
        final_distance[name] = float(np.linalg.norm(path[-1] - 1.0))

    final = {k: v[-1] for k, v in curves.items()}
    ctx.results.update({
        "epochs": epochs, "learning_rates": {k: {"digits": v[0], "rosenbrock": v[1]} for k, v in OPTIMIZERS.items()},
        "train_loss": curves, "final_train_loss": final, "test_accuracy": test_acc,
        "epochs_to_loss_0.3": epochs_to, "rosenbrock_steps": surface_steps,
        "rosenbrock_final_distance_to_minimum": final_distance,
    })
    ctx.say(f"digits MLP, training loss after {epochs} epochs: " + ", ".join(f"{k} {fmt(v)}" for k, v in final.items()))
    ctx.say("epochs to reach training loss 0.3: " + ", ".join(f"{k} {v if v is not None else '>' + str(epochs)}"
                                                          for k, v in epochs_to.items()))
    ctx.say(f"Rosenbrock, distance to the minimum after {surface_steps} steps: "
            + ", ".join(f"{k} {fmt(v)}" for k, v in final_distance.items()))

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 4.2))
    for name, curve in curves.items():
        ax.semilogy(np.arange(len(curve)), curve, "o-", ms=2.5,
                    label=f"{name}, lr {OPTIMIZERS[name][0]:g} (test acc {test_acc[name]:.2f})")
    ax.set_xlabel("epoch (passes over the training set)")
    ax.set_ylabel("training loss (cross-entropy)")
    ax.set_title("digits, 64-64-10 ReLU network, same initial weights and batches")
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    ctx.savefig(fig, "optimizers_loss.png")

    fig, axes = plt.subplots(2, 4, figsize=(14, 6.4), sharex=True, sharey=True)
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
        ax.set_title(f"{name}\nlr {OPTIMIZERS[name][1]:g}, distance {fmt(final_distance[name], 2)}", fontsize=9)
    fig.suptitle(f"Rosenbrock's valley, {surface_steps} steps from (-1.5, 1.5) to the minimum (1, 1) (red star)")
    fig.tight_layout()
    ctx.savefig(fig, "optimizers_rosenbrock.png")


def describe(results: dict) -> str:
    """The paragraph of docs/experiments.md, quoting the measured ``results``."""
    final, dist, to = results["final_train_loss"], results["rosenbrock_final_distance_to_minimum"], results["epochs_to_loss_0.3"]
    ranked = sorted(final, key=final.get)
    return (
        f"Left: training loss per epoch on the digits, every optimiser from the same weights. After "
        f"{results['epochs']} epochs the lowest losses are {ranked[0]} at {fmt(final[ranked[0]])} and "
        f"{ranked[1]} at {fmt(final[ranked[1]])}; plain SGD ends at {fmt(final['SGD'])} and full-batch GD, "
        f"one step per epoch, at {fmt(final['GD (full batch)'])}. The lecture's momentum rule reaches a loss "
        f"of 0.3 in {to['momentum a=0.9 (lecture)']} epochs against {to['SGD']} for SGD. Right: on "
        f"Rosenbrock's valley GD crawls along the floor (distance to the minimum "
        f"{fmt(dist['GD (full batch)'])} after {results['rosenbrock_steps']} steps), noisy SGD wanders, "
        f"momentum and Nesterov follow the valley ({fmt(dist['momentum a=0.9 (lecture)'])}, "
        f"{fmt(dist['Nesterov 0.9'])}), and Adam ends at {fmt(dist['Adam'])}."
    )
