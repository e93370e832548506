"""Generated data as augmentation: does a classifier trained on a few hundred labelled images gain
from samples of a class-conditional VAE or GAN trained on the same images?

Per seed: a random labelled subset of Fashion-MNIST (or of the 8x8 digits when Fashion-MNIST is not
installed) is the only training data. Fashion-MNIST images are reduced to 14x14 (2x2 means) and
zero-padded to 16x16 to keep the run short. Three classifiers are trained with the same number of
gradient steps and batches of the same size:

- **real only**: the labelled images;
- **+ VAE**: half of every batch from the labelled images, half from a class-conditional VAE
  (Kingma & Welling 2014; Sohn et al. 2015) trained on those same labelled images only;
- **+ GAN** (full run): the same with a class-conditional DCGAN (Radford et al. 2016).

No image outside the labelled subset is used by any model, so a gain can only come from what the
generative model adds (smoothing, interpolation between examples of a class), not from more data.
The classifier is an MLP ``256 -> 256 -> 10``; the score is its accuracy on held-out test images. The
headline is the mean ± std over seeds of each arm and of the paired difference to "real only"; the
effect is called a gain (or a loss) only when the mean paired difference is more than twice its
standard error, otherwise "no measurable effect".
"""

from __future__ import annotations

import functools
import os
from typing import Any

import numpy as np

import rosenblatt as rb
from rosenblatt import nn
from rosenblatt.experiments._common import Context, evaluate, pyplot
from rosenblatt.experiments._generative import gan_images, train_gan, train_vae

TITLE = "Generated data as augmentation for small labelled sets"
CLAIM = "Samples of class-conditional generative models can augment a small labelled data set"

FASHION = "/usr/share/datasets/fashion-mnist"


@functools.lru_cache(maxsize=1)
def _fashion() -> tuple[Any, Any]:
    return rb.data.datasets.FashionMNIST(train=True), rb.data.datasets.FashionMNIST(train=False)


def load(n_labelled: int, n_test: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """``(x, y, x_test, y_test, size, name)``: images ``(N, 1, size, size)`` in [0, 1]."""
    if os.path.isdir(FASHION):
        train, test = _fashion()

        def shrink(images: np.ndarray) -> np.ndarray:
            small = images.reshape(len(images), 1, 14, 2, 14, 2).mean((3, 5))
            return np.pad(small, ((0, 0), (0, 0), (1, 1), (1, 1))).astype(np.float32)

        i = rng.permutation(len(train.data))[:n_labelled]
        j = rng.permutation(len(test.data))[:n_test]
        return shrink(train.data[i]), train.targets[i], shrink(test.data[j]), test.targets[j], 16, "Fashion-MNIST"
    x, y = rb.data.load_digits()
    x, y = np.asarray(x, np.float32).reshape(-1, 1, 8, 8), np.asarray(y, np.int64)
    order = rng.permutation(len(x))
    tr, te = order[:n_labelled], order[n_labelled:n_labelled + n_test]
    return x[tr], y[tr], x[te], y[te], 8, "digits"


def classifier(size: int) -> nn.Module:
    return rb.models.MLP([size * size, 256, 10])


def train_classifier(x: np.ndarray, y: np.ndarray, steps: int, rng: np.random.Generator,
                     extra: tuple[np.ndarray, np.ndarray] | None = None, batch: int = 64) -> nn.Module:
    """Adam for ``steps`` steps; with ``extra`` half of every batch comes from the generated set."""
    model = classifier(x.shape[-1])
    opt = rb.optim.Adam(model.parameters(), lr=1e-3, weight_decay=0.0)
    flat = x.reshape(len(x), -1)
    for _ in range(steps):
        if extra is None:
            idx = rng.integers(0, len(x), batch)
            xb, yb = flat[idx], y[idx]
        else:
            gx, gy = extra
            i, j = rng.integers(0, len(x), batch // 2), rng.integers(0, len(gx), batch - batch // 2)
            xb, yb = np.concatenate([flat[i], gx[j]]), np.concatenate([y[i], gy[j]])
        loss = nn.functional.cross_entropy(model(rb.tensor(xb)), rb.tensor(yb))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


def one_seed(seed: int, quick: bool, use_gan: bool, n_labelled: int) -> dict:
    rng = np.random.default_rng(seed)
    x, y, x_test, y_test, size, name = load(n_labelled, 1000 if quick else 3000, rng)
    flat_test = x_test.reshape(len(x_test), -1)
    steps = 300 if quick else 1500
    n_generated = 2000 if quick else 5000
    labels = np.arange(n_generated) % 10
    rb.manual_seed(seed)
    out = {"data": name, "size": size}
    real = train_classifier(x, y, steps, rng)
    out["real only"] = evaluate(real, nn.functional.cross_entropy, flat_test, y_test)[1]

    vae = rb.models.VAE(size * size, 16, hidden=(256,), num_classes=10)
    train_vae(vae, x.reshape(len(x), -1), y, 60 if quick else 150, rng, batch_size=32)
    generated = vae.sample(n_generated, labels).numpy()
    model = train_classifier(x, y, steps, rng, extra=(generated, labels))
    out["+ VAE"] = evaluate(model, nn.functional.cross_entropy, flat_test, y_test)[1]
    out["vae_samples"] = generated[:40].reshape(40, size, size)
    if use_gan:
        gan = rb.models.DCGAN(latent_dim=32, out_channels=1, image_size=size, channels=(32, 64), num_classes=10)
        train_gan(gan, x, y, 150, rng, batch_size=32)
        generated = gan_images(gan, n_generated, labels).reshape(n_generated, -1)
        model = train_classifier(x, y, steps, rng, extra=(generated, labels))
        out["+ GAN"] = evaluate(model, nn.functional.cross_entropy, flat_test, y_test)[1]
        out["gan_samples"] = generated[:40].reshape(40, size, size)
    return out


def verdict(diffs: np.ndarray) -> str:
    if len(diffs) < 3:
        return f"{len(diffs)} seed(s): too few for a verdict"
    se = diffs.std(ddof=1) / np.sqrt(len(diffs))
    if diffs.mean() > 2 * se:
        return "helped"
    if diffs.mean() < -2 * se:
        return "hurt"
    return "no measurable effect"


def run(ctx: Context) -> None:
    """Run the experiment: per seed, train the three classifiers; fill ``ctx.results``; draw the figure."""
    quick = ctx.quick
    seeds = [ctx.seed + i for i in range(3 if quick else 5)]
    n_labelled = 200 if quick else 300
    runs = [one_seed(s, quick, use_gan=not quick, n_labelled=n_labelled) for s in seeds]
    arms = ["real only", "+ VAE"] + ([] if quick else ["+ GAN"])
    results: dict = {"data": runs[0]["data"], "labelled_images": n_labelled, "seeds": seeds, "arms": {}}
    for arm in arms:
        acc = np.array([r[arm] for r in runs])
        entry = {"per_seed": acc, "mean": acc.mean(), "std": acc.std(ddof=1) if len(acc) > 1 else 0.0}
        if arm != "real only":
            diffs = acc - np.array([r["real only"] for r in runs])
            entry.update({"diff_mean": diffs.mean(), "diff_std": diffs.std(ddof=1) if len(diffs) > 1 else 0.0,
                          "verdict": verdict(diffs)})
        results["arms"][arm] = entry
    ctx.results.update(results)

    base = results["arms"]["real only"]
    ctx.say(f"{results['data']}, {n_labelled} labelled images, test accuracy of an MLP, mean ± std over "
            f"{len(seeds)} seeds: real only {base['mean']:.3f} ± {base['std']:.3f}")
    for arm in arms[1:]:
        a = results["arms"][arm]
        ctx.say(f"{arm} samples (half of each batch): {a['mean']:.3f} ± {a['std']:.3f}; paired difference "
                f"{a['diff_mean']:+.3f} ± {a['diff_std']:.3f} -> {a['verdict']}")

    plt = pyplot()
    fig, axes = plt.subplots(1, 1 + len(arms[1:]), figsize=(4.2 * (1 + len(arms[1:])), 3.6))
    ax = axes[0]
    for k, arm in enumerate(arms):
        acc = results["arms"][arm]["per_seed"]
        ax.scatter(np.full(len(acc), k) + np.linspace(-0.1, 0.1, len(acc)), acc, s=14)
        ax.errorbar(k + 0.25, results["arms"][arm]["mean"], yerr=results["arms"][arm]["std"], fmt="o", color="k",
                    capsize=4)
    jitter = np.linspace(-0.1, 0.1, len(seeds))
    for i in range(len(seeds)):  # one line per seed joins its arms
        ax.plot(np.arange(len(arms)) + jitter[i], [runs[i][arm] for arm in arms], color="grey", lw=0.5)
    ax.set_xticks(range(len(arms)))
    ax.set_xticklabels(arms)
    ax.set_ylabel("test accuracy (dots: seeds; black: mean ± std)")
    ax.set_title(f"{results['data']}, {n_labelled} labelled images")
    for ax, arm in zip(axes[1:], arms[1:]):
        key = "vae_samples" if arm == "+ VAE" else "gan_samples"
        images = runs[0][key]
        size = images.shape[-1]
        grid = np.zeros((4 * size, 10 * size))
        for i in range(40):
            r, c = divmod(i, 10)
            grid[r * size:(r + 1) * size, c * size:(c + 1) * size] = images[i]
        ax.imshow(grid, cmap="gray", vmin=0, vmax=1)
        ax.set_title(f"{arm[2:]} samples, one class per column")
        ax.axis("off")
        ax.grid(False)
    fig.tight_layout()
    ctx.savefig(fig, "generative_augmentation.png")


def describe(results: dict) -> str:
    """The paragraph of docs/experiments.md, quoting the measured ``results``."""
    arms = results["arms"]
    base = arms["real only"]
    parts = [f"{arm}: {a['mean']:.3f} ± {a['std']:.3f} (paired difference {a['diff_mean']:+.3f} ± "
             f"{a['diff_std']:.3f}, {a['verdict']})" for arm, a in arms.items() if arm != "real only"]
    return (
        f"An MLP trained on {results['labelled_images']} labelled {results['data']} images reaches "
        f"{base['mean']:.3f} ± {base['std']:.3f} test accuracy (mean ± std over {len(results['seeds'])} seeds). "
        "With half of every batch drawn from a class-conditional generative model trained on the same "
        "labelled images, and the same number of steps: " + "; ".join(parts) + ". An effect is named only "
        "when the mean paired difference exceeds twice its standard error."
    )
