"""ResNet-20 (He et al. 2016, section 4.2) on Fashion-MNIST: SGD with momentum, weight decay and a
cosine learning-rate schedule, random-crop augmentation.

    python examples/resnet20_fashion_mnist.py            # 3 epochs on 12,000 images (minutes on a CPU)
    python examples/resnet20_fashion_mnist.py --full     # 15 epochs on all 60,000 images
    python examples/resnet20_fashion_mnist.py --quick    # 1 epoch on 600 images

ResNet-20 is built for 32x32 images; the 28x28 Fashion-MNIST images go through unchanged (the
network ends in global average pooling). Needs ``apt-get install dataset-fashion-mnist`` (or --root).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import rosenblatt as rb
from rosenblatt import nn
from rosenblatt.data.datasets import FashionMNIST
from rosenblatt.models import resnet20
from rosenblatt.train import Trainer

MEAN, STD = 0.2860, 0.3530


def random_crop(x: np.ndarray, rng: np.random.Generator, padding: int = 2) -> np.ndarray:
    """Pad by ``padding`` and cut a random window of the original size per image (one shift per batch
    keeps it a single slice; the batches are shuffled anyway)."""
    size = x.shape[-1]
    padded = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    dy, dx = rng.integers(0, 2 * padding + 1, size=2)
    return np.ascontiguousarray(padded[:, :, dy:dy + size, dx:dx + size])


def evaluate(model: nn.Module, x: np.ndarray, y: np.ndarray, batch_size: int = 500) -> float:
    """Test accuracy, through the library's evaluation loop (eval mode, no graph, batched)."""
    return Trainer(model, nn.CrossEntropyLoss()).evaluate((x, y), batch_size=batch_size)["accuracy"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 epoch on 600 images")
    parser.add_argument("--full", action="store_true", help="all 60,000 training images, 15 epochs")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--train-size", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--shortcut", choices=["A", "B"], default="A")
    parser.add_argument("--root", default=None, help="folder of the IDX files")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    train_size, test_size, epochs = 12000, 10000, 3
    if args.full:
        train_size, epochs = 60000, 15
    if args.quick:
        train_size, test_size, epochs = 600, 500, 1
    train_size = args.train_size or train_size
    epochs = args.epochs or epochs

    rb.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    train, test = FashionMNIST(args.root, train=True), FashionMNIST(args.root, train=False)
    subset = rng.permutation(len(train))[:train_size]
    x_train, y_train = (train.data[subset] - MEAN) / STD, train.targets[subset]
    x_test, y_test = (test.data[:test_size] - MEAN) / STD, test.targets[:test_size]
    print(f"Fashion-MNIST: {len(x_train)} training and {len(x_test)} test images")

    model = resnet20(num_classes=10, in_channels=1, shortcut=args.shortcut)
    print(f"ResNet-20 (option {args.shortcut} shortcuts): {model.num_parameters():,} parameters")
    optimizer = rb.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=1e-4, nesterov=True)
    steps_per_epoch = (len(x_train) + args.batch_size - 1) // args.batch_size
    scheduler = rb.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * steps_per_epoch)
    loss_fn = nn.CrossEntropyLoss()

    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        order = rng.permutation(len(x_train))
        total_loss, correct = 0.0, 0
        for begin in range(0, len(order), args.batch_size):
            batch = order[begin:begin + args.batch_size]
            logits = model(rb.tensor(random_crop(x_train[batch], rng)))
            loss = loss_fn(logits, rb.tensor(y_train[batch]))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            total_loss += loss.item() * len(batch)
            correct += int((logits.numpy().argmax(axis=1) == y_train[batch]).sum())
        seconds = time.perf_counter() - start
        print(f"epoch {epoch:2d}  loss {total_loss / len(order):.4f}  train acc {correct / len(order):.4f}  "
              f"test acc {evaluate(model, x_test, y_test):.4f}  {seconds:.1f} s/epoch")
    print(f"final test accuracy: {evaluate(model, x_test, y_test):.4f}")


if __name__ == "__main__":
    main()
