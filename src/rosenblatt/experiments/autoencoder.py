"""Autoencoders: reconstructions, a 2-D latent space, denoising.

An autoencoder ``64 -> 128 -> 32 -> 2 -> 32 -> 128 -> 64`` (Hinton & Salakhutdinov 2006) is trained
on the digits without their labels to reproduce its input through a 2-number bottleneck; the codes
of the test digits are then plotted, coloured by the labels it never saw, and a 5-nearest-neighbour
classifier in the 2-D code space measures how well the classes separate. A denoising autoencoder
(Vincent et al. 2008, ``64 -> 128 -> 16``) learns to map inputs corrupted with Gaussian noise back
to the clean digits.
"""

from __future__ import annotations

import numpy as np

import rosenblatt as rb
from rosenblatt import nn
from rosenblatt.experiments._common import Context, batches, digits_split, fmt, predict, pyplot

TITLE = "Autoencoders: reconstruction, latent space, denoising"
CLAIM = "An autoencoder compresses digits to 2 numbers that group the classes; a denoising one removes noise"

NOISE = 0.3


def train(model: nn.Module, x: np.ndarray, epochs: int, seed: int, lr: float = 3e-3) -> list[float]:
    """Adam on the mean squared reconstruction error; returns the loss per epoch."""
    optimizer = rb.optim.Adam(model.parameters(), lr=lr)
    order = np.random.default_rng(seed)
    losses = []
    for _ in range(epochs):
        total = 0.0
        for index in batches(len(x), 64, order):
            batch = rb.tensor(x[index])
            loss = nn.functional.mse_loss(model(batch), batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss.item()) * len(index)
        losses.append(total / len(x))
    return losses


def knn_accuracy(train_codes: np.ndarray, train_labels: np.ndarray, codes: np.ndarray, labels: np.ndarray,
                 k: int = 5) -> float:
    """Accuracy of a ``k``-nearest-neighbour vote in code space."""
    distances = ((codes[:, None, :] - train_codes[None, :, :]) ** 2).sum(-1)
    nearest = np.argsort(distances, axis=1)[:, :k]
    votes = train_labels[nearest]
    predicted = np.array([np.bincount(v, minlength=10).argmax() for v in votes])
    return float(np.mean(predicted == labels))


def one_seed(seed: int, epochs: int) -> dict:
    """Train both autoencoders with the data split, weights and batches of ``seed``; measure them."""
    rng = np.random.default_rng(seed * 1000)
    x_train, y_train, x_test, y_test = digits_split(1200, rng)
    rb.manual_seed(seed)
    autoencoder = rb.models.Autoencoder([64, 128, 32, 2], output_activation="sigmoid")
    ae_curve = train(autoencoder, x_train, epochs, seed + 1)
    denoiser = rb.models.DenoisingAutoencoder([64, 128, 16], noise="gaussian", noise_level=NOISE,
                                              output_activation="sigmoid")
    dae_curve = train(denoiser, x_train, epochs, seed + 2)

    reconstruction = predict(autoencoder, x_test)
    autoencoder.eval()
    with rb.no_grad():
        train_codes = autoencoder.encode(rb.tensor(x_train)).numpy()
        test_codes = autoencoder.encode(rb.tensor(x_test)).numpy()
    noisy = (x_test + NOISE * rng.standard_normal(x_test.shape)).astype(np.float32)
    denoised = predict(denoiser, noisy)
    return {
        "x_test": x_test, "y_test": y_test, "reconstruction": reconstruction, "test_codes": test_codes,
        "noisy": noisy, "denoised": denoised, "train_loss": {"autoencoder": ae_curve, "denoising": dae_curve},
        "reconstruction_mse": float(np.mean((reconstruction - x_test) ** 2)),
        "mean_digit_mse": float(np.mean((x_test - x_train.mean(0)) ** 2)),  # predicting the mean digit
        "latent_knn_accuracy": knn_accuracy(train_codes, y_train, test_codes, y_test),
        "noisy_mse": float(np.mean((noisy - x_test) ** 2)),
        # the strongest simple baseline: pixels are known to lie in [0, 1], so clip the noisy image
        "clipped_noisy_mse": float(np.mean((np.clip(noisy, 0, 1) - x_test) ** 2)),
        "denoised_mse": float(np.mean((denoised - x_test) ** 2)),
    }


def run(ctx: Context) -> None:
    """Run the experiment over seeds: train, measure, fill ``ctx.results``, draw the figures (first seed)."""
    epochs = 20 if ctx.quick else 100
    seeds = [ctx.seed + i for i in range(3)]
    runs = [one_seed(seed, epochs) for seed in seeds]
    keys = ("reconstruction_mse", "mean_digit_mse", "latent_knn_accuracy", "noisy_mse", "clipped_noisy_mse",
            "denoised_mse")
    mean = {k: float(np.mean([r[k] for r in runs])) for k in keys}
    std = {k + "_std": float(np.std([r[k] for r in runs])) for k in keys}
    first = runs[0]
    x_test, y_test, reconstruction, test_codes = first["x_test"], first["y_test"], first["reconstruction"], first["test_codes"]
    noisy, denoised = first["noisy"], first["denoised"]
    ae_mse, baseline, knn = mean["reconstruction_mse"], mean["mean_digit_mse"], mean["latent_knn_accuracy"]
    noisy_mse, clipped_mse, denoised_mse = mean["noisy_mse"], mean["clipped_noisy_mse"], mean["denoised_mse"]
    ctx.results.update({
        "epochs": epochs, "seeds": seeds, "train_loss": first["train_loss"], **mean, **std, "noise_std": NOISE,
        "denoising_gain": noisy_mse / denoised_mse, "denoising_gain_over_clipping": clipped_mse / denoised_mse,
    })
    n = len(seeds)
    ctx.say(f"2-D code, means over {n} seeds: reconstruction mean squared error {fmt(ae_mse, 4)} ± "
            f"{fmt(std['reconstruction_mse_std'], 4)} vs {fmt(baseline, 4)} for the mean digit; 5-NN accuracy "
            f"in the 2-D code space {knn:.3f} ± {std['latent_knn_accuracy_std']:.3f} (chance 0.1; labels never "
            f"used in training)")
    ctx.say(f"denoising (Gaussian noise, std {NOISE}), means over {n} seeds: mean squared error to the clean test digit "
            f"{fmt(noisy_mse, 4)} noisy, {fmt(clipped_mse, 4)} noisy clipped to [0, 1] (the simple baseline), "
            f"{fmt(denoised_mse, 4)} denoised: {clipped_mse / denoised_mse:.1f}x lower than the clipped baseline "
            f"({noisy_mse / denoised_mse:.1f}x lower than the raw noisy input)")

    plt = pyplot()
    shown = np.arange(10)
    rows = [(x_test, "original"), (reconstruction, "2-D code"), (noisy, f"noise {NOISE}"), (denoised, "denoised")]
    fig, axes = plt.subplots(len(rows), len(shown), figsize=(10, 4.4))
    for r, (images, label) in enumerate(rows):
        for c, i in enumerate(shown):
            ax = axes[r, c]
            ax.imshow(np.clip(images[i].reshape(8, 8), 0, 1), cmap="gray_r", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, 0].set_ylabel(label, fontsize=8)
    fig.suptitle(f"test digits: reconstructions through a 2-number code (MSE {ae_mse:.3f}); "
                 f"denoising (MSE {noisy_mse:.3f} -> {denoised_mse:.3f})")
    fig.tight_layout()
    ctx.savefig(fig, "reconstructions.png")

    fig, ax = plt.subplots(figsize=(6.5, 5.2))
    points = ax.scatter(test_codes[:, 0], test_codes[:, 1], c=y_test, cmap="tab10", s=7, vmin=-0.5, vmax=9.5)
    for digit in range(10):
        centre = np.median(test_codes[y_test == digit], axis=0)
        ax.text(centre[0], centre[1], str(digit), fontsize=13, weight="bold", ha="center", va="center",
                bbox={"boxstyle": "round", "fc": "white", "alpha": 0.7})
    fig.colorbar(points, ax=ax, ticks=range(10), label="digit (not seen in training)")
    ax.set_xlabel("code 1")
    ax.set_ylabel("code 2")
    ax.set_title(f"2-D latent space of the test digits (5-NN accuracy {knn:.2f})")
    fig.tight_layout()
    ctx.savefig(fig, "latent_space.png")


def describe(results: dict) -> str:
    """The paragraph of docs/experiments.md, quoting the measured ``results``."""
    return (
        f"Through a bottleneck of only two numbers the autoencoder reconstructs the test digits with a mean "
        f"squared error of {fmt(results['reconstruction_mse'], 4)} (the mean digit scores "
        f"{fmt(results['mean_digit_mse'], 4)}; means over {len(results.get('seeds', [0]))} seeds): blurry but recognisable. Its 2-D codes, learned without "
        f"labels, group the digits by class: a 5-nearest-neighbour vote in the code space is right "
        f"{results['latent_knn_accuracy']:.0%} of the time (chance: 10%). The denoising autoencoder, fed "
        f"digits with Gaussian noise of std {results['noise_std']}, cuts the mean squared error to the clean "
        f"digit to {fmt(results['denoised_mse'], 4)}, against {fmt(results['clipped_noisy_mse'], 4)} for the noisy "
        f"image clipped to the valid range [0, 1] ({results['denoising_gain_over_clipping']:.1f}x lower; the "
        f"unclipped noisy image scores {fmt(results['noisy_mse'], 4)}, {results['denoising_gain']:.1f}x)."
    )
