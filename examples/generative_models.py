"""Class-conditional generative models on digits and Fashion-MNIST: a VAE, a convolutional VAE
(Kingma & Welling 2014) and a DCGAN (Radford et al. 2016), with samples, latent traversals and a
classifier-based quality score.

    python examples/generative_models.py [--data digits|fashion|both] [--quick] [--out DIR] [--seed N]

FID needs an ImageNet feature network, which rosenblatt does not ship; the score here uses a
LeNet-5 trained on the real training images instead (see ``rosenblatt.experiments._generative``):

- class accuracy: the fraction of the samples drawn for class k that the LeNet-5 classifies as k,
  averaged over classes. For real test images the same number is the LeNet-5's test accuracy.
- diversity: the mean distance between two samples of the same class in LeNet-5's 84-d
  penultimate features, averaged over classes; for real test images it is the reference value
  (a model that draws one image per class scores 0).

Measured with seed 0 (``python examples/generative_models.py --out runs/generative``; the digits use
1,300 training images, Fashion-MNIST 6,000 and few epochs, so its models are far from converged):

=====================  ======================  =====================
                       digits 8x8              Fashion-MNIST 28x28
                       accuracy   diversity    accuracy   diversity
=====================  ======================  =====================
real test images       0.927      8.39         0.830      10.56
VAE (conditional)      0.998      2.97         0.355       9.96
ConvVAE (conditional)  0.980      3.57         0.378       9.10
DCGAN (conditional)    0.861      8.18         0.390      10.16
=====================  ======================  =====================

On the digits the VAEs' samples are more recognisable than the real test digits but far less
varied (blurry class means); the DCGAN's are nearly as varied as real digits. On Fashion-MNIST the
short runs follow their label only weakly: the code ``z`` carries much of the class.

With --out it writes, per data set, ``samples-<data>.png`` (one row per class and model) and
``traversal-<data>.png`` (the ConvVAE's decoder along its two most used latent directions, one
class) and ``scores.json``. Fashion-MNIST is read from /usr/share/datasets/fashion-mnist.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

import rosenblatt as rb
from rosenblatt.experiments._generative import (
    as_images,
    gan_images,
    pad_to,
    score,
    train_classifier,
    train_gan,
    train_vae,
)


def load(name: str, quick: bool, rng: np.random.Generator):
    """``(x_train, y_train, x_test, y_test, size)`` with images ``(N, 1, size, size)`` in [0, 1]."""
    if name == "digits":
        x, y = rb.data.load_digits()
        x, y = as_images(x, 8), np.asarray(y, np.int64)
        order = rng.permutation(len(x))
        return x[order[:1300]], y[order[:1300]], x[order[1300:]], y[order[1300:]], 8
    train = rb.data.datasets.FashionMNIST(train=True)
    test = rb.data.datasets.FashionMNIST(train=False)
    n_train, n_test = (2000, 1000) if quick else (6000, 2000)
    i, j = rng.permutation(len(train.data))[:n_train], rng.permutation(len(test.data))[:n_test]
    return train.data[i], train.targets[i], test.data[j], test.targets[j], 28


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", choices=("digits", "fashion", "both"), default="both")
    parser.add_argument("--quick", action="store_true", help="fewer images and epochs (about a minute)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="folder for the PNGs and scores.json")
    args = parser.parse_args()
    names = ["digits", "fashion"] if args.data == "both" else [args.data]
    if "fashion" in names and not os.path.isdir("/usr/share/datasets/fashion-mnist"):
        print("Fashion-MNIST not found in /usr/share/datasets/fashion-mnist; digits only")
        names = ["digits"]
    if args.out:
        os.makedirs(args.out, exist_ok=True)
    all_scores = {}
    for name in names:
        all_scores[name] = run(name, args)
    if args.out:
        with open(os.path.join(args.out, "scores.json"), "w") as f:
            json.dump(all_scores, f, indent=2)


def run(name: str, args: argparse.Namespace) -> dict:
    rb.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    x, y, x_test, y_test, size = load(name, args.quick, rng)
    cls_size = max(size, 12)  # LeNet-5 needs 12x12 or more: the 8x8 digits are zero-padded
    digits = name == "digits"
    epochs = {"clf": 10, "vae": 40 if digits else 20, "conv": 30 if digits else 6,
              "gan": 20 if digits else 6}
    if args.quick:
        epochs = {k: v if k == "clf" else max(1, v // 4) for k, v in epochs.items()}  # keep a good scorer
    print(f"== {name}: {len(x)} training images {size}x{size}, {len(x_test)} test images ==")
    t0 = time.perf_counter()
    clf = train_classifier(pad_to(x, cls_size), y, epochs["clf"], rng)
    real = score(clf, pad_to(x_test, cls_size), y_test)
    print(f"LeNet-5 scorer trained ({time.perf_counter() - t0:.0f} s)")

    models = {
        "VAE": rb.models.VAE(size * size, 16, hidden=(256,) if not digits else (128,), num_classes=10),
        "ConvVAE": rb.models.ConvVAE(1, size, latent_dim=16, channels=(16, 32), num_classes=10),
        "DCGAN": rb.models.DCGAN(latent_dim=32, out_channels=1, image_size=size,
                                 channels=(32, 64) if digits else (16, 32), num_classes=10),
    }
    n = 1000
    labels = np.arange(n) % 10
    results = {"real test images": real}
    samples = {}
    for model_name, model in models.items():
        t0 = time.perf_counter()
        if model_name == "VAE":
            train_vae(model, x.reshape(len(x), -1), y, epochs["vae"], rng)
            images = as_images(model.sample(n, labels).numpy(), size)
        elif model_name == "ConvVAE":
            train_vae(model, x, y, epochs["conv"], rng)
            images = model.sample(n, labels).numpy()
        else:
            train_gan(model, x, y, epochs["gan"], rng)
            images = gan_images(model, n, labels)
        samples[model_name] = images
        results[model_name] = score(clf, pad_to(images, cls_size), labels)
        print(f"{model_name} trained ({time.perf_counter() - t0:.0f} s)")

    print(f"{'':18s} {'class accuracy':>15s} {'diversity':>10s}")
    for key, r in results.items():
        print(f"{key:18s} {r['class_accuracy']:15.3f} {r['diversity']:10.2f}")
    if args.out:
        plot(name, samples, models["ConvVAE"], size, args.out, x[:200], y[:200])
    return results


def plot(name: str, samples: dict, conv_vae, size: int, out: str, x: np.ndarray, y: np.ndarray) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    per_class = 8
    fig, axes = plt.subplots(1, len(samples), figsize=(3.2 * len(samples), 3.6))
    for ax, (model_name, images) in zip(axes, samples.items()):
        grid = np.zeros((10 * size, per_class * size))
        for k in range(10):
            for j in range(per_class):
                grid[k * size:(k + 1) * size, j * size:(j + 1) * size] = images[k + 10 * j, 0]
        ax.imshow(grid, cmap="gray", vmin=0, vmax=1)
        ax.set_title(f"{model_name} (one class per row)")
        ax.axis("off")
    fig.savefig(os.path.join(out, f"samples-{name}.png"), dpi=90, bbox_inches="tight")
    plt.close(fig)

    # latent traversal: the two latent units of largest KL on real images (the ones the model uses), others 0
    conv_vae.eval()
    steps = np.linspace(-2.5, 2.5, 9)
    cls = 3
    with rb.no_grad():
        mu, logvar = conv_vae.encode(x, y)
    kl = (-0.5 * (1 + logvar.numpy() - mu.numpy() ** 2 - np.exp(logvar.numpy()))).mean(0)
    a, b = np.argsort(-kl)[:2]
    z = np.zeros((len(steps) ** 2, conv_vae.latent_dim), np.float32)
    for i, u in enumerate(steps):
        for j, v in enumerate(steps):
            z[i * len(steps) + j, a], z[i * len(steps) + j, b] = u, v
    with rb.no_grad():
        images = conv_vae.decode(z, np.full(len(z), cls)).numpy()
    grid = np.zeros((len(steps) * size, len(steps) * size))
    for i in range(len(steps)):
        for j in range(len(steps)):
            grid[i * size:(i + 1) * size, j * size:(j + 1) * size] = images[i * len(steps) + j, 0]
    fig, ax = plt.subplots(figsize=(4.5, 4.8))
    ax.imshow(grid, cmap="gray", vmin=0, vmax=1)
    ax.set_title(f"ConvVAE, class {cls}: latent units {a} (down) and {b} (across), -2.5..2.5")
    ax.axis("off")
    fig.savefig(os.path.join(out, f"traversal-{name}.png"), dpi=90, bbox_inches="tight")
    plt.close(fig)


if __name__ == "__main__":
    main()
