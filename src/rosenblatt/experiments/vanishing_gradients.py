"""Vanishing gradients in a deep network, and the three remedies of the lecture.

A stack of equally wide fully connected layers is fed a batch of digits; after one backward pass
the Frobenius norm of each layer's weight gradient is recorded (averaged over a few batches). In the
pattern of Glorot & Bengio (2010), sigmoid units with the "standard" initialisation
``U(-1/sqrt(n), 1/sqrt(n))`` pass back at most 1/4 of the gradient per layer, so the first layers
receive almost nothing; tanh with Xavier initialisation and ReLU with He initialisation (He et al.
2015) keep the norms level; batch normalisation (Ioffe & Szegedy 2015) and residual connections
(He et al. 2016) rescue even the sigmoid network. Each network is then trained briefly with plain
SGD to show what the gradients mean for learning.
"""

from __future__ import annotations

import numpy as np

import rosenblatt as rb
from rosenblatt import nn
from rosenblatt.experiments._common import Context, digits_split, fmt, pyplot

TITLE = "Vanishing gradients: activations, initialisation, batch norm, residual connections"
CLAIM = "Sigmoid layers starve the first layers of gradient; ReLU+He, batch norm and residuals do not"

# name -> (activation, initialisation, batch norm, residual)
CONFIGS = {
    "sigmoid + standard init": ("sigmoid", "standard", False, False),
    "tanh + Xavier": ("tanh", "xavier", False, False),
    "ReLU + He": ("relu", "he", False, False),
    "sigmoid + batch norm": ("sigmoid", "standard", True, False),
    "sigmoid + residual": ("sigmoid", "standard", False, True),
}


class DeepNet(nn.Module):
    """``depth`` hidden layers of ``width`` units, then a linear classifier.

    Hidden layer ``l`` computes ``h = act(norm(W h + b))``; with ``residual`` the layers after the
    first (where the widths match) are pre-activation residual blocks ``h = h + W act(norm(h)) + b``
    (He et al. 2016, "Identity mappings in deep residual networks"): the identity path carries the
    gradient past every activation.

    Shape:
        - Input: ``(N, in_features)``
        - Output: ``(N, num_classes)`` logits
    """

    def __init__(self, in_features: int, width: int, depth: int, num_classes: int, activation: str,
                 init: str, batch_norm: bool, residual: bool) -> None:
        super().__init__()
        sizes = [in_features] + [width] * depth
        self.hidden = nn.ModuleList([nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:])])
        self.norms = nn.ModuleList([nn.BatchNorm1d(width) if batch_norm else nn.Identity() for _ in range(depth)])
        self.activation = {"sigmoid": nn.Sigmoid(), "tanh": nn.Tanh(), "relu": nn.ReLU()}[activation]
        self.output = nn.Linear(width, num_classes)
        self.residual = residual
        for layer in [*self.hidden, self.output]:
            if init == "standard":  # Glorot & Bengio's "standard" heuristic U(-1/sqrt(fan_in), +...)
                bound = 1.0 / np.sqrt(layer.in_features)
                nn.init.uniform_(layer.weight, -bound, bound)
            elif init == "xavier":
                nn.init.xavier_uniform_(layer.weight)
            else:
                nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
            nn.init.zeros_(layer.bias)

    def forward(self, x: rb.Tensor) -> rb.Tensor:
        """Logits (or the prediction) for the batch ``x``."""
        h = x
        for index, (linear, norm) in enumerate(zip(self.hidden, self.norms)):
            if self.residual and index > 0:
                h = h + linear(self.activation(norm(h)))
            else:
                h = self.activation(norm(linear(h)))
        return self.output(h)

    def weights(self) -> list[rb.Tensor]:
        """The weight matrices from the first layer to the output layer."""
        return [layer.weight for layer in self.hidden] + [self.output.weight]


def gradient_norms(model: DeepNet, x: np.ndarray, y: np.ndarray, batches: int, batch_size: int,
                   rng: np.random.Generator) -> np.ndarray:
    """Mean per-layer weight-gradient norm over ``batches`` random batches (no update made)."""
    norms = np.zeros(len(model.weights()))
    for _ in range(batches):
        index = rng.choice(len(x), batch_size, replace=False)
        loss = nn.functional.cross_entropy(model(rb.tensor(x[index])), rb.tensor(y[index]))
        model.zero_grad()
        loss.backward()
        norms += np.array([float(np.linalg.norm(w.grad.numpy())) for w in model.weights()])
    model.zero_grad()
    return norms / batches


def run(ctx: Context) -> None:
    """Run the experiment: train, measure, fill ``ctx.results``, draw the figures."""
    depth = 10 if ctx.quick else 20
    width = 64
    steps = 100 if ctx.quick else 600
    seeds = [ctx.seed + i for i in range(3)]
    per_seed = []
    for seed in seeds:  # data split, initial weights and batches change with the seed
        rng = np.random.default_rng(seed * 1000)
        rb.manual_seed(seed)
        x_train, y_train, x_test, y_test = digits_split(1400, rng)
        mean, std = x_train.mean(0), x_train.std(0) + 1e-3
        x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
        norms, ratios, curves, test_acc = {}, {}, {}, {}
        for name, (activation, init, batch_norm, residual) in CONFIGS.items():
            model = DeepNet(64, width, depth, 10, activation, init, batch_norm, residual)
            norm = gradient_norms(model, x_train, y_train, batches=3, batch_size=128, rng=rng)
            norms[name] = norm
            ratios[name] = float(norm[0] / norm[-1])
            optimizer = rb.optim.SGD(model.parameters(), lr=0.05)
            losses = []
            for _ in range(steps):
                index = rng.choice(len(x_train), 64, replace=False)
                loss = nn.functional.cross_entropy(model(rb.tensor(x_train[index])), rb.tensor(y_train[index]))
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                losses.append(float(loss.item()))
            model.eval()
            with rb.no_grad():
                test_acc[name] = float(np.mean(model(rb.tensor(x_test)).numpy().argmax(1) == y_test))
            curves[name] = losses
        per_seed.append({"norms": norms, "ratios": ratios, "curves": curves, "test_acc": test_acc})
    names = list(CONFIGS)
    # ratios span orders of magnitude: the geometric mean over seeds, and the spread of log10
    ratios = {k: float(10 ** np.mean([np.log10(r["ratios"][k]) for r in per_seed])) for k in names}
    log_ratio_std = {k: float(np.std([np.log10(r["ratios"][k]) for r in per_seed])) for k in names}
    norms = {k: np.exp(np.mean([np.log(r["norms"][k]) for r in per_seed], axis=0)) for k in names}
    curves = {k: np.mean([r["curves"][k] for r in per_seed], axis=0).tolist() for k in names}
    test_acc = {k: float(np.mean([r["test_acc"][k] for r in per_seed])) for k in names}
    test_acc_std = {k: float(np.std([r["test_acc"][k] for r in per_seed])) for k in names}

    base = ratios["sigmoid + standard init"]
    ctx.results.update({
        "depth": depth, "width": width, "steps": steps, "seeds": seeds, "log10_ratio_std": log_ratio_std,
        "test_accuracy_std": test_acc_std,
        "gradient_norms": norms, "first_to_last_ratio": ratios,
        "relu_he_vs_sigmoid_ratio": ratios["ReLU + He"] / base,
        "train_loss_every_5_steps": {k: v[::5] for k, v in curves.items()},
        "final_train_loss": {k: float(np.mean(v[-20:])) for k, v in curves.items()},
        "test_accuracy": test_acc,
    })
    ctx.say(f"{depth}-layer nets, first-layer / last-layer weight-gradient norm at initialisation (geometric mean "
            f"over {len(seeds)} seeds): " + ", ".join(f"{k} {fmt(v)}" for k, v in ratios.items()))
    ctx.say(f"ReLU + He keeps {fmt(ratios['ReLU + He'] / base, 1)}x more of the gradient at the first layer "
            f"(relative to the last) than sigmoid + standard init")
    ctx.say(f"after {steps} SGD steps, test accuracy (mean ± std over seeds): "
            + ", ".join(f"{k} {v:.3f} ± {test_acc_std[k]:.3f}" for k, v in test_acc.items()))

    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    layers = np.arange(1, depth + 2)
    for name, norm in norms.items():
        axes[0].semilogy(layers, norm, "o-", ms=3, label=name)
    axes[0].set_xticks(layers[::2] if depth > 12 else layers)
    axes[0].set_xlabel("layer (1 = input side, last = output layer)")
    axes[0].set_ylabel("|dL/dW| at initialisation")
    axes[0].set_title(f"per-layer gradient norms, {depth} hidden layers of {width}")
    axes[0].legend()
    window = 10
    for name, losses in curves.items():
        smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
        axes[1].plot(np.arange(window, len(losses) + 1), smooth, label=f"{name} (test acc {test_acc[name]:.2f})")
    axes[1].set_xlabel("SGD step (lr 0.05, batch 64)")
    axes[1].set_ylabel("training loss (moving average)")
    axes[1].set_title("what the gradients mean for learning")
    axes[1].legend()
    fig.tight_layout()
    ctx.savefig(fig, "vanishing_gradients.png")


def describe(results: dict) -> str:
    """The paragraph of docs/experiments.md, quoting the measured ``results``."""
    r, acc = results["first_to_last_ratio"], results["test_accuracy"]
    return (
        f"In a {results['depth']}-layer network of width {results['width']} on the digits, the sigmoid "
        f"network with the standard initialisation gives its first layer {fmt(r['sigmoid + standard init'])} "
        f"times the gradient norm of its last layer; tanh + Xavier gives {fmt(r['tanh + Xavier'])}, "
        f"ReLU + He {fmt(r['ReLU + He'])} ({fmt(results['relu_he_vs_sigmoid_ratio'], 1)}x the sigmoid's "
        f"ratio), and batch norm and residual connections lift the sigmoid network to "
        f"{fmt(r['sigmoid + batch norm'])} and {fmt(r['sigmoid + residual'])}. Trained for "
        f"{results['steps']} SGD steps, the plain sigmoid network reaches a test accuracy of "
        f"{acc['sigmoid + standard init']:.2f}, against {acc['ReLU + He']:.2f} for ReLU + He and "
        f"{acc['sigmoid + batch norm']:.2f} with batch norm."
    )
