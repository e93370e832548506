"""LeNet-5 (LeCun et al. 1998) on Fashion-MNIST: a plain training loop with Adam.

    python examples/lenet5_fashion_mnist.py            # 10 epochs on all 60,000 images
    python examples/lenet5_fashion_mnist.py --quick    # 1 epoch on 6,000 images

Needs the Fashion-MNIST IDX files: ``apt-get install dataset-fashion-mnist`` puts them in
/usr/share/datasets/fashion-mnist (or pass --root). Prints loss, accuracy and time per epoch; with
--out DIR also writes the first layer's filters and the feature maps of one test image.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import rosenblatt as rb
from rosenblatt import nn
from rosenblatt.data.datasets import FashionMNIST
from rosenblatt.models import LeNet5
from rosenblatt.train import Trainer

MEAN, STD = 0.2860, 0.3530  # of the Fashion-MNIST training images


def evaluate(model: nn.Module, x: np.ndarray, y: np.ndarray, batch_size: int = 1000) -> float:
    """Test accuracy, through the library's evaluation loop (eval mode, no graph, batched)."""
    return Trainer(model, nn.CrossEntropyLoss()).evaluate((x, y), batch_size=batch_size)["accuracy"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 epoch on a tenth of the data")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--activation", choices=["relu", "tanh"], default="relu")
    parser.add_argument("--pooling", choices=["max", "avg"], default="max")
    parser.add_argument("--root", default=None, help="folder of the IDX files")
    parser.add_argument("--out", default=None, help="folder for the filter and feature-map pictures")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rb.manual_seed(args.seed)
    train, test = FashionMNIST(args.root, train=True), FashionMNIST(args.root, train=False)
    x_train, y_train = (train.data - MEAN) / STD, train.targets
    x_test, y_test = (test.data - MEAN) / STD, test.targets
    epochs = args.epochs
    if args.quick:
        x_train, y_train, x_test, y_test, epochs = x_train[:6000], y_train[:6000], x_test[:2000], y_test[:2000], 1
    print(f"Fashion-MNIST: {len(x_train)} training and {len(x_test)} test images of {x_train.shape[1:]}")

    model = LeNet5(num_classes=10, activation=args.activation, pooling=args.pooling)
    print(f"LeNet-5 ({args.activation}, {args.pooling} pooling): {model.num_parameters():,} parameters")
    optimizer = rb.optim.Adam(model.parameters(), lr=args.lr)
    loss_fn = nn.CrossEntropyLoss()
    rng = np.random.default_rng(args.seed)

    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        order = rng.permutation(len(x_train))
        total_loss, correct = 0.0, 0
        for begin in range(0, len(order), args.batch_size):
            batch = order[begin:begin + args.batch_size]
            logits = model(rb.tensor(x_train[batch]))
            loss = loss_fn(logits, rb.tensor(y_train[batch]))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total_loss += loss.item() * len(batch)
            correct += int((logits.numpy().argmax(axis=1) == y_train[batch]).sum())
        seconds = time.perf_counter() - start
        test_accuracy = evaluate(model, x_test, y_test)
        print(f"epoch {epoch:2d}  loss {total_loss / len(order):.4f}  train acc {correct / len(order):.4f}  "
              f"test acc {test_accuracy:.4f}  {seconds:.1f} s/epoch")

    print(f"final test accuracy: {evaluate(model, x_test, y_test):.4f}")
    if args.out:
        from rosenblatt.viz import plot_feature_maps, plot_filters

        model.eval()
        plot_filters(model.conv1, f"{args.out}/lenet5_conv1_filters.png")
        plot_feature_maps(model, rb.tensor(x_test[:1]), ["conv1", "pool1", "conv2", "pool2"],
                          path=f"{args.out}/lenet5_feature_maps.png")
        print(f"wrote {args.out}/lenet5_conv1_filters.png and {args.out}/lenet5_feature_maps.png")


if __name__ == "__main__":
    main()
