"""A convolutional network with two heads: one classifies the shape in the image (circle or
rectangle), the other regresses its bounding box. One shared trunk, one summed loss
(cross-entropy + smooth L1 on the box), one optimizer.

    python examples/two_headed_cnn.py           # 3,000 training images, 8 epochs
    python examples/two_headed_cnn.py --quick   # 600 images, 3 epochs

Prints the test classification accuracy and the mean intersection-over-union (IoU) of the
predicted boxes with the true ones.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import rosenblatt as rb
from rosenblatt import nn
from rosenblatt.core import Tensor
from rosenblatt.data.datasets import make_shapes


class TwoHeadedCNN(nn.Module):
    """Three conv-BN-ReLU-pool stages, a shared hidden layer, then a class head (logits) and a box
    head (``sigmoid``: the box ``(x_min, y_min, x_max, y_max)`` as fractions of the image size).

    Shape:
        - Input: ``(N, 1, 32, 32)``
        - Output: ``((N, num_classes), (N, 4))``
    """

    def __init__(self, num_classes: int = 2, size: int = 32) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 1
        for width in (16, 32, 64):
            layers += [nn.Conv2d(channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
                       nn.MaxPool2d(2)]
            channels = width
        self.trunk = nn.Sequential(*layers, nn.Flatten(), nn.Linear(64 * (size // 8) ** 2, 128), nn.ReLU())
        self.classify = nn.Linear(128, num_classes)
        self.locate = nn.Linear(128, 4)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        features = self.trunk(x)
        return self.classify(features), rb.sigmoid(self.locate(features))


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of matching rows of two ``(N, 4)`` arrays of ``(x0, y0, x1, y1)`` boxes."""
    width = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    height = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    inter = width * height
    area = (a[:, 2] - a[:, 0]).clip(0) * (a[:, 3] - a[:, 1]).clip(0) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area - inter, 1e-12)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--box-weight", type=float, default=5.0, help="weight of the box loss in the sum")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    size = 32
    n_train, epochs = (600, 3) if args.quick else (3000, 8)
    epochs = args.epochs or epochs
    rb.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    x_train, y_train, boxes_train = make_shapes(n_train, size=size, min_size=5, noise=0.15, seed=args.seed)
    x_test, y_test, boxes_test = make_shapes(500, size=size, min_size=5, noise=0.15, seed=args.seed + 1)

    # the boxes of make_shapes are inclusive pixel indices; as continuous fractions: [x0, x1 + 1) / size
    def to_fractions(boxes: np.ndarray) -> np.ndarray:
        return (boxes + np.array([0, 0, 1, 1], dtype=np.float32)) / size

    t_train, t_test = to_fractions(boxes_train), to_fractions(boxes_test)

    model = TwoHeadedCNN(num_classes=2, size=size)
    print(f"two-headed CNN: {model.num_parameters():,} parameters; {n_train} training images {size}x{size}")
    optimizer = rb.optim.Adam(model.parameters(), lr=2e-3)
    # box errors are fractions of the image: a small beta keeps the L1 part (robust, sharp near 0) in play
    classification_loss, box_loss = nn.CrossEntropyLoss(), nn.SmoothL1Loss(beta=0.05)
    batch_size = 32
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        order = rng.permutation(n_train)
        totals = np.zeros(2)
        for begin in range(0, n_train, batch_size):
            batch = order[begin:begin + batch_size]
            logits, boxes = model(rb.tensor(x_train[batch]))
            loss_class = classification_loss(logits, rb.tensor(y_train[batch]))
            loss_box = box_loss(boxes, rb.tensor(t_train[batch]))
            loss = loss_class + args.box_weight * loss_box
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            totals += np.array([loss_class.item(), loss_box.item()]) * len(batch)
        totals /= n_train
        print(f"epoch {epoch}  class loss {totals[0]:.4f}  box loss {totals[1]:.5f}  {time.perf_counter() - start:.1f} s")

    model.eval()
    with rb.no_grad():
        logits, boxes = model(rb.tensor(x_test))
    accuracy = (logits.numpy().argmax(axis=1) == y_test).mean()
    iou = box_iou(boxes.numpy(), t_test)
    print(f"test: classification accuracy {accuracy:.4f}, mean IoU {iou.mean():.4f}, "
          f"IoU > 0.5 for {np.mean(iou > 0.5):.1%} of the boxes")


if __name__ == "__main__":
    main()
