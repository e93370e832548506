"""Denoising with a small U-Net (Ronneberger et al. 2015): synthetic images of circles and
rectangles plus Gaussian noise in, the clean image out, trained with the mean squared error.

    python examples/unet_denoising.py           # 2,000 training images, 6 epochs
    python examples/unet_denoising.py --quick   # 200 images, 2 epochs

Reports the peak signal-to-noise ratio (PSNR) on held-out images before (noisy input) and after
(network output); with --out DIR writes a picture of a few noisy / denoised / clean triples.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import rosenblatt as rb
from rosenblatt import nn
from rosenblatt.data.datasets import make_shapes
from rosenblatt.models import UNet


def make_images(n: int, size: int, seed: int) -> np.ndarray:
    """Images with two shapes each (the union of two single-shape images), at different grey levels."""
    first, _, _ = make_shapes(n, size=size, min_size=5, seed=seed)
    second, _, _ = make_shapes(n, size=size, min_size=4, max_size=size // 3, seed=seed + 1)
    return np.maximum(first, 0.6 * second).astype(np.float32)


def psnr(estimate: np.ndarray, clean: np.ndarray) -> float:
    """Mean over images of 10 log10(1 / MSE) (images in [0, 1])."""
    mse = ((estimate - clean) ** 2).reshape(len(clean), -1).mean(axis=1)
    return float(np.mean(10.0 * np.log10(1.0 / np.maximum(mse, 1e-12))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--noise", type=float, default=0.3, help="standard deviation of the added noise")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--out", default=None, help="folder for the picture")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    n_train, epochs = (200, 2) if args.quick else (2000, 6)
    epochs = args.epochs or epochs
    rb.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    clean_train = make_images(n_train, args.size, args.seed)
    clean_test = make_images(200, args.size, args.seed + 100)
    noisy_test = (clean_test + args.noise * rng.standard_normal(clean_test.shape)).astype(np.float32)

    model = UNet(in_channels=1, out_channels=1, depth=2, base_channels=16)
    print(f"U-Net depth 2, 16 base channels: {model.num_parameters():,} parameters; "
          f"{n_train} training images {args.size}x{args.size}, noise std {args.noise}")
    optimizer = rb.optim.Adam(model.parameters(), lr=2e-3)
    loss_fn = nn.MSELoss()
    batch_size = 32
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        order = rng.permutation(n_train)
        total = 0.0
        for begin in range(0, n_train, batch_size):
            clean = clean_train[order[begin:begin + batch_size]]
            # fresh noise every time an image is seen: the network cannot memorise it
            noisy = (clean + args.noise * rng.standard_normal(clean.shape)).astype(np.float32)
            loss = loss_fn(model(rb.tensor(noisy)), rb.tensor(clean))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(clean)
        print(f"epoch {epoch}  train MSE {total / n_train:.5f}  {time.perf_counter() - start:.1f} s")

    model.eval()
    with rb.no_grad():
        denoised = np.clip(model(rb.tensor(noisy_test)).numpy(), 0.0, 1.0)
    before = psnr(np.clip(noisy_test, 0.0, 1.0), clean_test)
    after = psnr(denoised, clean_test)
    print(f"PSNR on 200 held-out images: noisy input {before:.2f} dB -> U-Net output {after:.2f} dB "
          f"({after - before:+.2f} dB)")

    if args.out:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(3, 6, figsize=(9, 4.8))
        for col in range(6):
            for row, (title, image) in enumerate((("noisy", noisy_test), ("U-Net", denoised), ("clean", clean_test))):
                axes[row, col].imshow(np.clip(image[col, 0], 0, 1), cmap="gray", vmin=0, vmax=1)
                axes[row, col].set_axis_off()
                if col == 0:
                    axes[row, col].set_title(title, fontsize=8, loc="left")
        fig.suptitle(f"U-Net denoising: {before:.1f} dB -> {after:.1f} dB")
        fig.savefig(f"{args.out}/unet_denoising.png", dpi=100, bbox_inches="tight")
        print(f"wrote {args.out}/unet_denoising.png")


if __name__ == "__main__":
    main()
