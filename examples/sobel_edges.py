"""Edge detection with a hand-set, frozen convolution: a ``Conv2d(1, 2, 3)`` whose two kernels are
the Sobel operators (horizontal and vertical derivatives), applied to a Fashion-MNIST image.

    python examples/sobel_edges.py [--quick] [--index 0] [--out DIR]

A convolution layer is only a bank of filters: learned ones (see examples/lenet5_fashion_mnist.py
--out) often look like these. Prints the check against a direct NumPy computation and writes
DIR/sobel_edges.png (image, d/dx, d/dy, gradient magnitude). Without the Fashion-MNIST files
(``apt-get install dataset-fashion-mnist``) it uses a scikit-learn digit, enlarged to 32x32.
"""

from __future__ import annotations

import argparse
import os

import numpy as np

import rosenblatt as rb
from rosenblatt import nn

SOBEL_X = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float32)  # responds to vertical edges
SOBEL_Y = SOBEL_X.T.copy()  # responds to horizontal edges


def load_image(index: int) -> tuple[np.ndarray, str]:
    from rosenblatt.data.datasets import FashionMNIST, load_digits

    try:
        test = FashionMNIST(train=False)
        return test.data[index, 0], f"Fashion-MNIST test image {index} ({test.classes[int(test.targets[index])]})"
    except FileNotFoundError:
        x, y = load_digits(flatten=False)
        return np.kron(x[index, 0], np.ones((4, 4), dtype=np.float32)), f"digit {int(y[index])} (8x8 enlarged)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="same run (it takes a second anyway)")
    parser.add_argument("--index", type=int, default=0, help="which test image")
    parser.add_argument("--out", default=".", help="folder for sobel_edges.png")
    args = parser.parse_args()

    image, description = load_image(args.index)
    conv = nn.Conv2d(1, 2, kernel_size=3, padding=1, bias=False)
    with rb.no_grad():
        conv.weight.copy_(rb.tensor(np.stack([SOBEL_X, SOBEL_Y])[:, None]))
    conv.requires_grad_(False)  # frozen: a fixed feature extractor, no optimizer will touch it

    x = rb.tensor(image[None, None], requires_grad=True)
    edges = conv(x)
    gx, gy = edges.numpy()[0]
    magnitude = np.sqrt(gx ** 2 + gy ** 2)

    # the same thing by hand: cross-correlation of the zero-padded image with each kernel
    padded = np.pad(image, 1)
    windows = np.lib.stride_tricks.sliding_window_view(padded, (3, 3))
    reference_x = np.einsum("hwij,ij->hw", windows, SOBEL_X)
    reference_y = np.einsum("hwij,ij->hw", windows, SOBEL_Y)
    difference = max(np.abs(gx - reference_x).max(), np.abs(gy - reference_y).max())

    # gradients still flow through a frozen layer to its input (e.g. for saliency maps)
    (edges * edges).sum().backward()
    print(f"{description}, {image.shape[0]}x{image.shape[1]}")
    print(f"Sobel conv vs NumPy cross-correlation: max abs difference {difference:.2e}")
    print(f"weight frozen: requires_grad={conv.weight.requires_grad}, grad={conv.weight.grad}; "
          f"input gradient norm {np.linalg.norm(x.grad.numpy()):.3f}")
    threshold = 0.5 * magnitude.max()
    print(f"gradient magnitude: max {magnitude.max():.3f}, mean {magnitude.mean():.3f}; "
          f"{np.mean(magnitude > threshold):.1%} of pixels above half the maximum (strong edges)")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(10, 2.9))
    panels = (("image", image, "gray"), ("d/dx (Sobel x)", gx, "RdBu_r"), ("d/dy (Sobel y)", gy, "RdBu_r"),
              ("magnitude", magnitude, "magma"))
    for ax, (title, picture, cmap) in zip(axes, panels):
        limit = np.abs(picture).max() or 1.0
        ax.imshow(picture, cmap=cmap, vmin=-limit if cmap == "RdBu_r" else None, vmax=limit if cmap == "RdBu_r" else None)
        ax.set_title(title, fontsize=9)
        ax.set_axis_off()
    fig.suptitle(description, fontsize=10)
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "sobel_edges.png")
    fig.savefig(path, dpi=100, bbox_inches="tight")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
