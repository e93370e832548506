"""Training loops and the classifier-based quality score shared by the generative experiments and
examples.

The score replaces FID, which needs an ImageNet feature network: a LeNet-5 trained on real images
classifies the samples of a class-conditional model. **Class accuracy** is the fraction of samples
drawn for class ``k`` that the classifier puts in class ``k`` (averaged over classes; on real test
images the same number is the classifier's test accuracy). **Diversity** is the mean distance
between two samples of the same class in the classifier's 84-d penultimate features (``fc2``),
averaged over classes; its value on real test images is the reference (a collapsed model that
draws one image per class scores 0).
"""

from __future__ import annotations

from typing import Any

import numpy as np

import rosenblatt as rb
from rosenblatt.experiments._common import batches, predict


def as_images(x: np.ndarray, size: int) -> np.ndarray:
    """Flat or image arrays as ``(N, 1, size, size)`` float32."""
    return np.asarray(x, np.float32).reshape(len(x), 1, size, size)


def pad_to(x: np.ndarray, size: int) -> np.ndarray:
    """Zero-pad ``(N, 1, s, s)`` images to ``size x size`` (8x8 digits -> 12x12 for LeNet-5)."""
    s = x.shape[-1]
    if s >= size:
        return x
    a = (size - s) // 2
    return np.pad(x, ((0, 0), (0, 0), (a, size - s - a), (a, size - s - a)))


def train_classifier(x: np.ndarray, y: np.ndarray, epochs: int, rng: np.random.Generator,
                     batch_size: int = 64, lr: float = 2e-3) -> Any:
    """A LeNet-5 (ReLU, max pooling) trained with Adam on images ``(N, 1, S, S)``."""
    model = rb.models.LeNet5(input_size=x.shape[-1], activation="relu", pooling="max")
    opt = rb.optim.Adam(model.parameters(), lr=lr)
    for _ in range(epochs):
        for idx in batches(len(x), batch_size, rng):
            loss = rb.nn.functional.cross_entropy(model(rb.tensor(x[idx])), rb.tensor(y[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


def train_vae(model: Any, x: np.ndarray, y: np.ndarray | None, epochs: int, rng: np.random.Generator,
              batch_size: int = 64, lr: float = 1e-3, beta: float = 1.0) -> list[float]:
    """Adam on the negative ELBO; returns the mean loss of each epoch."""
    opt = rb.optim.Adam(model.parameters(), lr=lr)
    history = []
    model.train()
    for _ in range(epochs):
        losses = []
        for idx in batches(len(x), batch_size, rng):
            labels = None if y is None else y[idx]
            out = model(x[idx], labels)
            loss = model.loss(x[idx], out, beta=beta)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        history.append(float(np.mean(losses)))
    return history


def train_gan(model: Any, x: np.ndarray, y: np.ndarray | None, epochs: int, rng: np.random.Generator,
              batch_size: int = 64, lr: float = 2e-4) -> list[tuple[float, float]]:
    """DCGAN's recipe (Adam, ``lr=2e-4``, ``betas=(0.5, 0.999)``) on images in [0, 1] (scaled to
    [-1, 1] here); returns the mean ``(d_loss, g_loss)`` of each epoch."""
    g_opt = rb.optim.Adam(model.generator.parameters(), lr=lr, betas=(0.5, 0.999))
    d_opt = rb.optim.Adam(model.discriminator.parameters(), lr=lr, betas=(0.5, 0.999))
    history = []
    model.train()
    for _ in range(epochs):
        losses = []
        for idx in batches(len(x), batch_size, rng):
            if len(idx) < 2:  # batch norm needs two images
                continue
            losses.append(model.train_step(x[idx] * 2 - 1, g_opt, d_opt, None if y is None else y[idx]))
        history.append(tuple(np.mean(losses, axis=0)))
    return history


def gan_images(model: Any, n: int, labels: np.ndarray | None) -> np.ndarray:
    """``n`` samples of a DCGAN mapped back to [0, 1]."""
    return (model.sample(n, labels).numpy() + 1) / 2


def features(classifier: Any, x: np.ndarray) -> np.ndarray:
    """The classifier's 84-d penultimate features (LeNet-5's ``fc2`` after its activation)."""
    feats: list[np.ndarray] = []
    handle = classifier.act4.register_forward_hook(lambda m, i, o: feats.append(o.numpy()))
    predict(classifier, x)
    handle.remove()
    return feats[0]


def diversity(feats: np.ndarray, labels: np.ndarray, num_classes: int) -> float:
    """Mean pairwise Euclidean distance of features within a class, averaged over classes."""
    per_class = []
    for k in range(num_classes):
        f = feats[labels == k].astype(np.float64)
        if len(f) < 2:
            continue
        sq = (f * f).sum(1)
        d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * f @ f.T, 0)
        per_class.append(np.sqrt(d2)[np.triu_indices(len(f), 1)].mean())
    return float(np.mean(per_class))


def score(classifier: Any, images: np.ndarray, labels: np.ndarray, num_classes: int = 10) -> dict[str, Any]:
    """The classifier-based score of labelled images (generated or real): class accuracy (mean
    over classes and per class) and diversity (see the module docstring)."""
    pred = predict(classifier, images).argmax(1)
    per_class = [float(np.mean(pred[labels == k] == k)) for k in range(num_classes)]
    return {"class_accuracy": float(np.mean(per_class)), "per_class_accuracy": per_class,
            "diversity": diversity(features(classifier, images), labels, num_classes)}
