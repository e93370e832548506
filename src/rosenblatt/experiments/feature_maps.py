"""What a CNN learns: its filters and feature maps, beside the fixed Sobel edge filter.

A small CNN (two 3x3 convolutions with 8 and 16 channels, max pooling, a linear classifier) is
trained on the digits, enlarged to 16x16 with bilinear upsampling. Its first-layer kernels are
compared with the Sobel kernels of the lecture (``[[-1, -2, -1], [0, 0, 0], [1, 2, 1]]`` and its
transpose) by the cosine similarity of the flattened 3x3 weights (sign ignored, since the next layer
can flip a sign), before and after training; the feature maps of one test digit are drawn beside
the Sobel responses to the same digit.
"""

from __future__ import annotations

import numpy as np

import rosenblatt as rb
from rosenblatt import nn
from rosenblatt.experiments._common import Context, batches, digits_split, evaluate, pyplot
from rosenblatt.nn.filters import sobel_filters
from rosenblatt.viz import capture_feature_maps

TITLE = "Feature maps: learned filters beside the Sobel filter"
CLAIM = "A trained CNN's filters and feature maps, beside the hand-made Sobel edge filter"


class SmallCNN(nn.Module):
    """conv 3x3 (8) - ReLU - max pool - conv 3x3 (16) - ReLU - max pool - linear.

    Shape:
        - Input: ``(N, 1, 16, 16)``
        - Output: ``(N, 10)`` logits
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.relu2 = nn.ReLU()
        self.pool2 = nn.MaxPool2d(2)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(16 * 4 * 4, 10)

    def forward(self, x: rb.Tensor) -> rb.Tensor:
        """Logits (or the prediction) for the batch ``x``."""
        x = self.pool1(self.relu1(self.conv1(x)))
        x = self.pool2(self.relu2(self.conv2(x)))
        return self.fc(self.flatten(x))


def enlarge(x: np.ndarray) -> np.ndarray:
    """Flat 8x8 digits as ``(N, 1, 16, 16)`` images (bilinear upsampling)."""
    with rb.no_grad():
        return nn.Upsample(scale_factor=2, mode="bilinear")(rb.tensor(x.reshape(-1, 1, 8, 8))).numpy()


def sobel_similarity(weight: np.ndarray) -> np.ndarray:
    """For each kernel ``(out, 1, 3, 3)``: the largest ``|cos|`` with the Sobel x or y kernel."""
    kernels = weight.reshape(len(weight), -1)
    sobel = sobel_filters().reshape(2, -1).astype(np.float64)
    cos = kernels @ sobel.T / (np.linalg.norm(kernels, axis=1, keepdims=True) * np.linalg.norm(sobel, axis=1) + 1e-12)
    return np.abs(cos).max(1)


def run(ctx: Context) -> None:
    """Run the experiment: train, measure, fill ``ctx.results``, draw the figures."""
    epochs = 4 if ctx.quick else 12
    rng = ctx.rng()
    x_train, y_train, x_test, y_test = digits_split(1200, rng)
    train_images, test_images = enlarge(x_train), enlarge(x_test)
    loss_fn = nn.functional.cross_entropy
    seeds = [ctx.seed + i for i in range(3)]
    per_seed = []
    for seed in seeds:  # initial weights and batches change with the seed; the figures show the first
        rb.manual_seed(seed)
        net = SmallCNN()
        initial = sobel_similarity(net.conv1.weight.numpy())
        optimizer = rb.optim.Adam(net.parameters(), lr=3e-3)
        order = np.random.default_rng(seed + 1)
        for _ in range(epochs):
            for index in batches(len(train_images), 32, order):
                loss = loss_fn(net(rb.tensor(train_images[index])), rb.tensor(y_train[index]))
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        per_seed.append({"model": net, "initial": initial, "accuracy": evaluate(net, loss_fn, test_images, y_test)[1],
                         "similarity": sobel_similarity(net.conv1.weight.numpy())})
    model, initial_similarity = per_seed[0]["model"], per_seed[0]["initial"]
    accuracy, filters = per_seed[0]["accuracy"], model.conv1.weight.numpy()
    similarity = per_seed[0]["similarity"]
    accuracies = np.array([r["accuracy"] for r in per_seed])
    mean_similarities = np.array([r["similarity"].mean() for r in per_seed])
    best_similarities = np.array([r["similarity"].max() for r in per_seed])

    sobel = nn.Conv2d.from_weights(sobel_filters(), padding=1)
    sample = test_images[:1]
    model.eval()
    maps = capture_feature_maps(model, sample, ["relu1", "relu2"])
    with rb.no_grad():
        edges = sobel(rb.tensor(sample)).numpy()[0]
    magnitude = np.hypot(edges[0], edges[1])
    # how much each learned map looks like an edge map: |correlation| with the Sobel magnitude
    correlation = [float(abs(np.corrcoef(m.ravel(), magnitude.ravel())[0, 1])) if m.std() > 0 else 0.0
                   for m in maps["relu1"][0]]

    ctx.results.update({
        "epochs": epochs, "seeds": seeds, "test_accuracy": float(accuracies.mean()),
        "test_accuracy_std": float(accuracies.std()), "first_seed_test_accuracy": accuracy,
        "mean_sobel_similarity_over_seeds": {"mean": float(mean_similarities.mean()), "std": float(mean_similarities.std())},
        "best_sobel_similarity_over_seeds": {"mean": float(best_similarities.mean()), "std": float(best_similarities.std())},
        "sobel_similarity_trained": similarity, "sobel_similarity_initial": initial_similarity,
        "mean_sobel_similarity": {"initial": float(initial_similarity.mean()), "trained": float(similarity.mean())},
        "best_sobel_similarity": float(similarity.max()), "best_sobel_similarity_initial": float(initial_similarity.max()),
        "map_correlation_with_sobel_magnitude": correlation,
    })
    ctx.say(f"small CNN on 16x16 digits: test accuracy {accuracies.mean():.3f} ± {accuracies.std():.3f} after {epochs} "
            f"epochs (mean ± std over {len(seeds)} seeds)")
    ctx.say(f"first-layer kernels vs Sobel, best |cos| per kernel, averaged over the kernels: "
            f"{mean_similarities.mean():.2f} ± {mean_similarities.std():.2f} after training over seeds "
            f"({initial_similarity.mean():.2f} at initialisation, first seed); most Sobel-like kernel "
            f"{best_similarities.mean():.2f} ± {best_similarities.std():.2f}")
    ctx.say(f"first-layer feature maps of one test digit vs its Sobel gradient magnitude (first seed): "
            f"|correlation| up to {max(correlation):.2f}")

    plt = pyplot()
    fig, axes = plt.subplots(2, 6, figsize=(11, 4.6))
    for i, ax in enumerate(axes.ravel()[:8]):
        kernel = filters[i, 0]
        limit = np.abs(kernel).max()
        ax.imshow(kernel, cmap="RdBu_r", vmin=-limit, vmax=limit)
        ax.set_title(f"learned {i}  |cos| {similarity[i]:.2f}", fontsize=8)
    for j, ax in enumerate(axes.ravel()[8:10]):
        ax.imshow(sobel_filters()[j, 0], cmap="RdBu_r", vmin=-2, vmax=2)
        ax.set_title(f"Sobel {'x' if j == 0 else 'y'} (fixed)", fontsize=8)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes.ravel()[10:]:
        ax.set_axis_off()
    fig.suptitle("first-layer 3x3 kernels (red +, blue -) and the Sobel kernels; |cos| = similarity to Sobel")
    fig.tight_layout(h_pad=1.5)
    ctx.savefig(fig, "filters.png")

    fig, axes = plt.subplots(3, 9, figsize=(13, 4.8))
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, 0].imshow(sample[0, 0], cmap="gray_r")
    axes[0, 0].set_title("input", fontsize=8)
    for i in range(8):
        axes[0, i + 1].imshow(maps["relu1"][0, i], cmap="viridis")
        axes[0, i + 1].set_title(f"conv1 #{i}", fontsize=8)
    axes[1, 0].set_axis_off()
    for i in range(8):
        axes[1, i + 1].imshow(maps["relu2"][0, i], cmap="viridis")
        axes[1, i + 1].set_title(f"conv2 #{i}", fontsize=8)
    for j, (image, title) in enumerate([(edges[0], "Sobel x"), (edges[1], "Sobel y"), (magnitude, "|gradient|")]):
        axes[2, j + 1].imshow(image, cmap="RdBu_r" if j < 2 else "viridis")
        axes[2, j + 1].set_title(title, fontsize=8)
    for ax in [axes[2, 0], *axes[2, 4:]]:
        ax.set_axis_off()
    fig.suptitle("feature maps (after ReLU) of one test digit: conv1 (16x16), conv2 (8x8); bottom: the fixed Sobel filter")
    fig.tight_layout()
    ctx.savefig(fig, "feature_maps.png")


def describe(results: dict) -> str:
    """The paragraph of docs/experiments.md, quoting the measured ``results``."""
    sim = results["mean_sobel_similarity"]
    return (
        f"The CNN reaches a test accuracy of {results['test_accuracy']:.3f} ± {results['test_accuracy_std']:.3f} "
        f"(mean ± std over {len(results['seeds'])} seeds; the rest describes the first seed). Its eight first-layer "
        f"kernels are compared with the Sobel kernels: the closest is an edge detector (|cos| "
        f"{results['best_sobel_similarity']:.2f}, against {results['best_sobel_similarity_initial']:.2f} for the "
        f"closest random initial kernel), others are smoothing or intensity detectors, and on "
        f"average they are no closer to Sobel ({sim['trained']:.2f}) than the random initial kernels were "
        f"({sim['initial']:.2f}): the network learns whatever local filters serve the task, of which the "
        f"edge detector is one. The first-layer maps trace the strokes and their edges (|correlation| with "
        f"the Sobel gradient magnitude up to {max(results['map_correlation_with_sobel_magnitude']):.2f}); "
        f"the second layer, at half the resolution, responds to larger parts of the digit."
    )
