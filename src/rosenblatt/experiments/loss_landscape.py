"""The loss landscape with and without skip connections (after Li et al. 2018).

H. Li, Z. Xu, G. Taylor, C. Studer and T. Goldstein, "Visualizing the loss landscape of neural
nets", NeurIPS 2018. The training loss around the trained weights ``theta`` is plotted along random
directions that are **filter-normalised**: every filter (output channel of a convolution, row of a
linear layer) of a Gaussian direction ``d`` is rescaled to the norm of the same filter of ``theta``,
so that the plot is not distorted by the scale invariance that batch norm gives each filter;
biases and batch-norm parameters get ``d = 0``. Then

- 1-D: ``L(theta + a d1)`` for ``a`` in [-1, 1];
- 2-D: ``L(theta + a d1 + b d2)`` on a grid, drawn as contours.

The networks are CIFAR-style residual networks (He et al. 2016) trained on the 8x8 digits, each
with its shortcuts and as the same "plain" network with the shortcuts removed (Li et al.'s
"noshort"); ResNet-20 and, in the full run, ResNet-56 (``6n + 2`` layers). The loss is the
cross-entropy of the training images in eval mode (batch norm with its running statistics).

Smoothness is measured on the plane: from the grid, finite differences give the 2x2 Hessian of
the loss at every interior point. **Curvature at the minimum** is its largest eigenvalue at the
trained weights; **non-convexity** is Li et al.'s ratio ``|lambda_min / lambda_max|`` of its
eigenvalues, counted where ``lambda_min < 0`` and 0 elsewhere, averaged over the grid (0 for a
convex bowl; larger means more saddles and ridges).
"""

from __future__ import annotations

import numpy as np

import rosenblatt as rb
from rosenblatt import nn
from rosenblatt.experiments._common import Context, batches, digits_split, fmt, pyplot
from rosenblatt.models.resnet import BasicBlock, CifarResNet

TITLE = "Loss landscape: skip connections smooth it"
CLAIM = "Skip connections make the loss landscape of deep networks smoother (Li et al. 2018)"


class PlainBlock(BasicBlock):
    """A :class:`BasicBlock` without its shortcut: ``relu(bn2(conv2(relu(bn1(conv1(x))))))``."""

    def forward(self, x):
        return self.relu(self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x))))))


def build(n: int, skip: bool, width: int) -> CifarResNet:
    model = CifarResNet(n, num_classes=10, in_channels=1, width=width)
    if not skip:
        for block in model.modules():
            if type(block) is BasicBlock:
                block.__class__ = PlainBlock
    return model


def train(model: nn.Module, x: np.ndarray, y: np.ndarray, epochs: int, rng: np.random.Generator) -> float:
    """SGD with momentum 0.9 and a cosine-decayed learning rate, as for the CIFAR ResNets; returns
    the final training accuracy."""
    opt = rb.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    total = epochs * ((len(x) + 63) // 64)
    step = 0
    model.train()
    for _ in range(epochs):
        for idx in batches(len(x), 64, rng):
            for group in opt.param_groups:
                group["lr"] = 0.05 * 0.5 * (1 + np.cos(np.pi * step / total))
            loss = nn.functional.cross_entropy(model(rb.tensor(x[idx])), rb.tensor(y[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
    model.eval()
    with rb.no_grad():
        return float(np.mean(model(rb.tensor(x)).numpy().argmax(1) == y))


def filter_normalised_direction(model: nn.Module, rng: np.random.Generator) -> list[np.ndarray]:
    """A Gaussian direction, per filter rescaled to the weights' filter norms (0 for 1-d parameters)."""
    direction = []
    for p in model.parameters():
        w = p.numpy()
        if w.ndim <= 1:
            direction.append(np.zeros_like(w))
            continue
        d = rng.standard_normal(w.shape).astype(w.dtype)
        axes = tuple(range(1, w.ndim))
        w_norm = np.sqrt((w * w).sum(axis=axes, keepdims=True))
        d *= w_norm / (np.sqrt((d * d).sum(axis=axes, keepdims=True)) + 1e-10)
        direction.append(d)
    return direction


def loss_at(model: nn.Module, base: list[np.ndarray], dirs: list[list[np.ndarray]], coords: tuple[float, ...],
            x: np.ndarray, y: np.ndarray) -> float:
    with rb.no_grad():
        for i, p in enumerate(model.parameters()):
            p.copy_(base[i] + sum(c * d[i] for c, d in zip(coords, dirs)))
        return float(nn.functional.cross_entropy(model(rb.tensor(x)), rb.tensor(y)).item())


def plane_hessians(surface: np.ndarray, h: float) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues ``(lambda_min, lambda_max)`` of the finite-difference 2x2 Hessian at every
    interior grid point (grid spacing ``h``)."""
    f = surface
    faa = (f[2:, 1:-1] - 2 * f[1:-1, 1:-1] + f[:-2, 1:-1]) / h ** 2
    fbb = (f[1:-1, 2:] - 2 * f[1:-1, 1:-1] + f[1:-1, :-2]) / h ** 2
    fab = (f[2:, 2:] - f[2:, :-2] - f[:-2, 2:] + f[:-2, :-2]) / (4 * h ** 2)
    mean, root = (faa + fbb) / 2, np.sqrt(((faa - fbb) / 2) ** 2 + fab ** 2)
    return mean - root, mean + root


def landscape(model: nn.Module, x: np.ndarray, y: np.ndarray, steps_1d: int, steps_2d: int,
              rng: np.random.Generator) -> dict:
    params = list(model.parameters())
    base = [p.numpy().copy() for p in params]
    d1, d2 = filter_normalised_direction(model, rng), filter_normalised_direction(model, rng)
    alphas = np.linspace(-1, 1, steps_1d)
    line = [loss_at(model, base, [d1], (a,), x, y) for a in alphas]
    grid = np.linspace(-1, 1, steps_2d)
    surface = np.array([[loss_at(model, base, [d1, d2], (a, b), x, y) for b in grid] for a in grid])
    loss_at(model, base, [], (), x, y)  # restore the trained weights
    lo, hi = plane_hessians(surface, grid[1] - grid[0])
    ratio = np.where(lo < 0, np.abs(lo) / np.maximum(np.abs(hi), 1e-12), 0.0)
    centre = steps_2d // 2 - 1  # interior index of the grid's centre (steps_2d odd)
    return {"alphas": alphas, "line": line, "grid": grid, "surface": surface,
            "curvature_at_minimum": float(hi[centre, centre]), "min_eigenvalue_at_minimum": float(lo[centre, centre]),
            "nonconvexity": float(ratio.mean()), "nonconvex_fraction": float((lo < 0).mean()),
            "loss_range": float(surface.max() - surface.min())}


def run(ctx: Context) -> None:
    """Run the experiment: train each network, map its loss around the minimum, measure smoothness."""
    quick = ctx.quick
    depths = [(1, "ResNet-8")] if quick else [(3, "ResNet-20"), (9, "ResNet-56")]
    width = 4 if quick else 16
    epochs = 4 if quick else 20
    steps_1d, steps_2d = (11, 9) if quick else (21, 15)
    seeds = [ctx.seed + i for i in range(1 if quick else 3)]
    rng = ctx.rng()
    x_train, y_train, _, _ = digits_split(1300 if not quick else 600, rng)
    x_train = x_train.reshape(len(x_train), 1, 8, 8)
    n_eval = 200 if quick else 300  # the loss is evaluated on this fixed subset of the training images
    x_eval, y_eval = x_train[:n_eval], y_train[:n_eval]

    results: dict = {"width": width, "epochs": epochs, "seeds": seeds, "eval_images": n_eval, "networks": {}}
    for n, name in depths:
        for skip in (True, False):
            label = f"{name}" + ("" if skip else " no-skip")
            runs = []
            for seed in seeds:
                rb.manual_seed(seed)
                model = build(n, skip, width)
                acc = train(model, x_train, y_train, epochs, np.random.default_rng(seed))
                r = landscape(model, x_eval, y_eval, steps_1d, steps_2d, np.random.default_rng(seed + 100))
                r["train_accuracy"] = acc
                runs.append(r)
            summary = {key: {"mean": float(np.mean([r[key] for r in runs])), "std": float(np.std([r[key] for r in runs]))}
                       for key in ("curvature_at_minimum", "nonconvexity", "nonconvex_fraction", "loss_range",
                                   "train_accuracy")}
            summary.update({k: runs[0][k] for k in ("alphas", "line", "grid", "surface")})
            summary["layers"] = 6 * n + 2
            summary["skip"] = skip
            results["networks"][label] = summary
    ctx.results.update(results)

    nets = results["networks"]
    for _, name in depths:
        a, b = nets[name], nets[name + " no-skip"]
        ctx.say(f"{name} (width {width}, {len(seeds)} seed(s)): non-convexity of the loss on a filter-normalised "
                f"plane {a['nonconvexity']['mean']:.3f} ± {a['nonconvexity']['std']:.3f} with skip connections vs "
                f"{b['nonconvexity']['mean']:.3f} ± {b['nonconvexity']['std']:.3f} without (mean |lambda_min/lambda_max| "
                f"of the plane's Hessian where it has a negative eigenvalue; 0 = convex)")
        ctx.say(f"{name}: loss range over the plane {fmt(a['loss_range']['mean'], 2)} with vs "
                f"{fmt(b['loss_range']['mean'], 2)} without skips; curvature at the minimum (largest plane "
                f"Hessian eigenvalue) {fmt(a['curvature_at_minimum']['mean'], 2)} vs "
                f"{fmt(b['curvature_at_minimum']['mean'], 2)}; training accuracy "
                f"{a['train_accuracy']['mean']:.3f} vs {b['train_accuracy']['mean']:.3f}")

    plt = pyplot()
    labels = list(nets)
    fig, axes = plt.subplots(1, len(labels) + 1, figsize=(3.6 * (len(labels) + 1), 3.4))
    for label in labels:
        axes[0].plot(nets[label]["alphas"], nets[label]["line"], label=label)
    axes[0].set_xlabel("alpha (filter-normalised direction)")
    axes[0].set_ylabel("training loss")
    axes[0].set_title("1-D slice")
    axes[0].legend()
    axes[0].set_yscale("log")
    for ax, label in zip(axes[1:], labels):
        grid, surface = nets[label]["grid"], np.asarray(nets[label]["surface"])
        levels = np.linspace(surface.min(), min(surface.max(), surface.min() + 10), 30)
        cs = ax.contour(grid, grid, surface.T, levels=levels, cmap="viridis", linewidths=0.8)
        ax.clabel(cs, cs.levels[::6], fontsize=6, fmt="%.1f")
        ax.plot(0, 0, "r+")
        ax.set_title(f"{label}\nnon-convexity {nets[label]['nonconvexity']['mean']:.3f}")
        ax.set_xlabel("direction 1")
        ax.set_ylabel("direction 2")
        ax.set_aspect("equal")
    fig.tight_layout()
    ctx.savefig(fig, "loss_landscape.png")


def describe(results: dict) -> str:
    """The paragraph of docs/experiments.md, quoting the measured ``results``."""
    nets = results["networks"]
    parts = []
    for label, r in nets.items():
        if r["skip"]:
            plain = nets[label + " no-skip"]
            parts.append(f"{label}: non-convexity {r['nonconvexity']['mean']:.3f} ± {r['nonconvexity']['std']:.3f} "
                         f"with skip connections against {plain['nonconvexity']['mean']:.3f} ± "
                         f"{plain['nonconvexity']['std']:.3f} without, loss range over the plane "
                         f"{fmt(r['loss_range']['mean'], 2)} against {fmt(plain['loss_range']['mean'], 2)}")
    return (
        "After Li et al. (2018): the training loss around the trained weights along two random "
        "filter-normalised directions, for CIFAR-style ResNets trained on the digits with and without "
        f"their shortcuts (mean ± std over {len(results['seeds'])} seed(s)). Non-convexity is the average "
        "over the plane of |lambda_min / lambda_max| of the plane's 2x2 Hessian where lambda_min < 0 "
        "(0 for a convex bowl). " + "; ".join(parts) + "."
    )
