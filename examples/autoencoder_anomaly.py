"""Anomaly detection with an autoencoder (Hinton & Salakhutdinov 2006) on handwritten digits.

    python examples/autoencoder_anomaly.py [--quick] [--normal 0,1,2,3,4] [--steps 1500] [--out DIR]

The autoencoder is trained only on the "normal" digit classes. It learns to reconstruct those well;
digits of the held-out classes, never seen in training, reconstruct worse. The reconstruction
error is therefore an anomaly score: the example prints the ROC AUC of that score for telling
held-out test digits (anomalies) from test digits of the normal classes, per anomaly class and
overall, for a dense and a denoising autoencoder. With --out it writes reconstructions and the 2-D
latent space (a second autoencoder with a 2-unit code) as PNGs.
"""

from __future__ import annotations

import argparse
import os

import numpy as np

import rosenblatt as rb
from rosenblatt.data.datasets import load_digits
from rosenblatt.models import Autoencoder, DenoisingAutoencoder
from rosenblatt.models.autoencoder import reconstruction_error
from rosenblatt.train.metrics import roc_auc


def train(model, x: np.ndarray, steps: int, seed: int) -> None:
    optimizer = rb.optim.Adam(model.parameters(), lr=0.005)
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        batch = rb.tensor(x[rng.integers(0, len(x), 128)])
        loss = ((model(batch) - batch) ** 2).mean()  # a denoising model sees a corrupted input
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer steps (seconds)")
    parser.add_argument("--normal", default="0,1,2,3,4", help="comma-separated classes seen in training")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--code", type=int, default=8, help="bottleneck width")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="folder for the PNGs")
    args = parser.parse_args()
    if args.quick:
        args.steps = 300
    rb.manual_seed(args.seed)
    normal_classes = [int(c) for c in args.normal.split(",")]

    x, y = load_digits()
    order = np.random.default_rng(args.seed).permutation(len(x))
    x, y = x[order], y[order]
    split = int(0.7 * len(x))
    is_normal = np.isin(y, normal_classes)
    x_train = x[:split][is_normal[:split]]
    x_test, y_test, anomalous = x[split:], y[split:], ~is_normal[split:]
    print(f"training on digits {normal_classes}: {len(x_train)} images; test: {int((~anomalous).sum())} normal, "
          f"{int(anomalous.sum())} anomalous")

    models = {
        "autoencoder": Autoencoder([64, 32, args.code], output_activation="sigmoid"),
        "denoising autoencoder": DenoisingAutoencoder([64, 32, args.code], noise="masking", noise_level=0.2,
                                                      output_activation="sigmoid"),
    }
    for name, model in models.items():
        train(model, x_train, args.steps, args.seed)
        score = reconstruction_error(model, x_test)
        overall = roc_auc(anomalous.astype(np.int64), score)
        per_class = {c: roc_auc(np.r_[np.zeros((~anomalous).sum()), np.ones((y_test == c).sum())].astype(np.int64),
                                np.r_[score[~anomalous], score[y_test == c]])
                     for c in sorted(set(range(10)) - set(normal_classes))}
        print(f"{name}: normal test MSE {score[~anomalous].mean():.4f}, anomalous {score[anomalous].mean():.4f}; "
              f"ROC AUC {overall:.3f}  (per held-out class: "
              + ", ".join(f"{c}: {a:.2f}" for c, a in per_class.items()) + ")")

    if args.out:
        os.makedirs(args.out, exist_ok=True)
        rb.viz.plot_reconstructions(models["autoencoder"], np.r_[x_test[~anomalous][:5], x_test[anomalous][:5]],
                                    os.path.join(args.out, "reconstructions.png"), n=10,
                                    title="normal (left five) and anomalous (right five) digits")
        latent = Autoencoder([64, 32, 2])
        train(latent, x[:split], args.steps, args.seed)
        rb.viz.plot_latent_space(latent, x_test, y_test, os.path.join(args.out, "latent_space.png"),
                                 title="2-D code of a digits autoencoder")
        print(f"wrote {args.out}/reconstructions.png and {args.out}/latent_space.png")


if __name__ == "__main__":
    main()
