"""Jets as sets of particles: a permutation-invariant Transformer against DeepSets and a sorted MLP.

    python examples/jet_sets.py [--quick] [--steps 600] [--seeds 3]

A jet is a spray of particles; a detector sees an unordered, variable-size set of them, each with a
transverse momentum pT and a direction (eta, phi). This script generates synthetic jets of two
classes that differ in substructure:

- "one-prong" jets (like quark/gluon jets): particles spread around one axis, pT falling steeply
  away from it;
- "two-prong" jets (like a boosted W boson decaying to two quarks): two sub-jets at an angular
  distance ~ 2m/pT, sharing the momentum in a fraction z.

Each particle becomes (log pT fraction, delta eta, delta phi) relative to the jet axis; jets are
padded to a fixed size with a mask. Three classifiers are trained with the same budget:

- a Transformer encoder with no positional encoding, a key-padding mask and a masked mean over the
  particles: its output cannot depend on the order of the particles (Lee et al. 2019, "Set
  Transformer"; Qu et al. 2022, "Particle Transformer for jet tagging");
- DeepSets (Zaheer et al. 2017): a per-particle network, a masked sum, a network on the sum
  (the "energy flow network" of Komiske, Metodiev and Thaler 2019 is this form);
- an MLP on the particles sorted by pT and flattened (order imposed by hand).

It reports the test ROC AUC of each (mean and standard deviation over seeds) and checks that
shuffling the particles of every jet leaves the Transformer's outputs unchanged to float rounding.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import rosenblatt as rb
from rosenblatt import nn
from rosenblatt.nn import functional as F
from rosenblatt.train.metrics import roc_auc

MAX_PARTICLES = 40
FEATURES = 3  # log(pT / jet pT), delta eta, delta phi


# -- data ------------------------------------------------------------------------------------------


def _prong(rng: np.random.Generator, count: int, width: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``count`` particles around one axis: exponential momentum shares, Gaussian angles that
    shrink for harder particles (the core of a jet is collimated)."""
    share = rng.exponential(1.0, count) ** 2
    share /= share.sum()
    spread = width / np.sqrt(1.0 + 20.0 * share)
    return share, rng.normal(0.0, spread), rng.normal(0.0, spread)


def make_jets(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` jets, half of each class, in random order.

    Returns ``(particles, mask, labels)``: ``(n, MAX_PARTICLES, 3)`` float32 features (zeros where
    padded), ``(n, MAX_PARTICLES)`` bool (True for a real particle), ``(n,)`` int labels (1: two-prong).
    """
    labels = rng.permutation(np.arange(n) % 2)
    particles = np.zeros((n, MAX_PARTICLES, FEATURES), dtype=np.float32)
    mask = np.zeros((n, MAX_PARTICLES), dtype=bool)
    for i, label in enumerate(labels):
        count = int(np.clip(rng.poisson(20), 4, MAX_PARTICLES))  # the same multiplicity for both
        if label:  # two prongs, momentum fractions z and 1 - z, separated by delta R
            z = rng.uniform(0.15, 0.85)
            first = max(2, int(round(count * z)))
            second = max(2, count - first)
            count = min(first + second, MAX_PARTICLES)
            second = count - first
            distance = rng.uniform(0.05, 0.3)
            angle = rng.uniform(0, 2 * np.pi)
            s1, e1, p1 = _prong(rng, first, 0.06)
            s2, e2, p2 = _prong(rng, second, 0.06)
            share = np.concatenate([z * s1, (1 - z) * s2])
            eta = np.concatenate([e1 + (1 - z) * distance * np.cos(angle), e2 - z * distance * np.cos(angle)])
            phi = np.concatenate([p1 + (1 - z) * distance * np.sin(angle), p2 - z * distance * np.sin(angle)])
        else:  # one prong, a little wider
            share, eta, phi = _prong(rng, count, 0.1)
        order = rng.permutation(count)  # a detector gives no order
        particles[i, :count, 0] = np.log(share[order] + 1e-8)
        particles[i, :count, 1] = eta[order]
        particles[i, :count, 2] = phi[order]
        mask[i, :count] = True
    particles[..., 0] = np.where(mask, (particles[..., 0] + 4.0) / 2.0, 0.0)  # log-share to about [-1, 2]
    particles[..., 1:] *= 5.0  # angles to order 1
    return particles, mask, labels


def sorted_flat(particles: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Particles ordered by pT (highest first), padding last, flattened: the MLP's fixed input."""
    key = np.where(mask, -particles[..., 0], np.inf)
    order = np.argsort(key, axis=1, kind="stable")
    return np.take_along_axis(particles, order[..., None], axis=1).reshape(len(particles), -1)


# -- models ----------------------------------------------------------------------------------------


def masked_mean(x: rb.Tensor, mask: np.ndarray) -> rb.Tensor:
    """Mean over the real particles of each jet: ``(N, P, D)`` -> ``(N, D)``."""
    weights = mask.astype(x.dtype) / mask.sum(axis=1, keepdims=True)
    return (x * rb.tensor(weights[..., None])).sum(1)


class JetTransformer(nn.Module):
    """Per-particle embedding, a Transformer encoder without positional encoding (key-padding mask),
    a masked mean and a linear read-out: a permutation-invariant function of the set.

    Shape:
        particles ``(N, P, 3)``, mask ``(N, P)`` (True for real particles) -> logits ``(N,)``.
    """

    def __init__(self, d_model: int = 32, heads: int = 4, layers: int = 2) -> None:
        super().__init__()
        self.embed = nn.Linear(FEATURES, d_model)
        layer = nn.TransformerEncoderLayer(d_model, heads, 2 * d_model, dropout=0.0, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers)
        self.head = nn.Linear(d_model, 1)

    def forward(self, particles: rb.Tensor, mask: np.ndarray) -> rb.Tensor:
        x = self.encoder(self.embed(particles), src_key_padding_mask=~mask)
        return self.head(masked_mean(x, mask)).reshape(-1)


class DeepSets(nn.Module):
    """``rho(sum_i phi(particle_i))`` (Zaheer et al. 2017), the sum over real particles only.

    Shape:
        particles ``(N, P, 3)``, mask ``(N, P)`` -> logits ``(N,)``.
    """

    def __init__(self, hidden: int = 64) -> None:
        super().__init__()
        self.phi = nn.Sequential(nn.Linear(FEATURES, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
        self.rho = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, particles: rb.Tensor, mask: np.ndarray) -> rb.Tensor:
        summed = (self.phi(particles) * rb.tensor(mask[..., None].astype(np.float32))).sum(1)
        return self.rho(summed / MAX_PARTICLES).reshape(-1)


class SortedMLP(nn.Module):
    """An MLP on the pT-sorted, flattened particles.

    Shape:
        particles ``(N, P, 3)``, mask ``(N, P)`` -> logits ``(N,)``.
    """

    def __init__(self, hidden: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(MAX_PARTICLES * FEATURES, hidden), nn.ReLU(),
                                 nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, particles: rb.Tensor, mask: np.ndarray) -> rb.Tensor:
        flat = sorted_flat(particles.numpy(), mask)
        return self.net(rb.tensor(flat)).reshape(-1)


MODELS = {"Transformer": JetTransformer, "DeepSets": DeepSets, "sorted MLP": SortedMLP}


# -- training --------------------------------------------------------------------------------------


def predict(model: nn.Module, particles: np.ndarray, mask: np.ndarray, batch: int = 500) -> np.ndarray:
    model.eval()
    with rb.no_grad():
        return np.concatenate([model(rb.tensor(particles[i:i + batch]), mask[i:i + batch]).numpy()
                               for i in range(0, len(particles), batch)])


def train(name: str, seed: int, steps: int, train_set, batch: int = 64) -> nn.Module:
    rb.manual_seed(seed)
    model = MODELS[name]()
    optimizer = rb.optim.Adam(model.parameters(), lr=2e-3)
    particles, mask, labels = train_set
    rng = np.random.default_rng(seed)
    model.train()
    for _ in range(steps):
        index = rng.integers(0, len(labels), batch)
        logits = model(rb.tensor(particles[index]), mask[index])
        loss = F.binary_cross_entropy_with_logits(logits, rb.tensor(labels[index].astype(np.float32)))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model


def permutation_difference(model: nn.Module, particles: np.ndarray, mask: np.ndarray, seed: int = 0) -> float:
    """Largest change of the model's outputs when every jet's particles (and padding) are shuffled."""
    rng = np.random.default_rng(seed)
    order = np.stack([rng.permutation(MAX_PARTICLES) for _ in range(len(particles))])
    shuffled = np.take_along_axis(particles, order[..., None], axis=1)
    shuffled_mask = np.take_along_axis(mask, order, axis=1)
    return float(np.abs(predict(model, particles, mask) - predict(model, shuffled, shuffled_mask)).max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer jets and steps, one seed (seconds)")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--train-jets", type=int, default=10_000)
    parser.add_argument("--test-jets", type=int, default=4_000)
    args = parser.parse_args()
    if args.quick:
        args.steps, args.seeds, args.train_jets, args.test_jets = 60, 1, 1_000, 600
    start = time.perf_counter()
    train_set = make_jets(args.train_jets, np.random.default_rng(1))
    test_particles, test_mask, test_labels = make_jets(args.test_jets, np.random.default_rng(2))
    print(f"{args.train_jets} training jets, {args.test_jets} test jets, up to {MAX_PARTICLES} particles "
          f"(mean {test_mask.sum(1).mean():.1f}); {args.steps} Adam steps of 64 jets; {args.seeds} seed(s)")
    for name in MODELS:
        aucs = []
        for seed in range(args.seeds):
            model = train(name, seed, args.steps, train_set)
            aucs.append(roc_auc(test_labels, predict(model, test_particles, test_mask)))
        spread = f" ± {np.std(aucs):.3f}" if len(aucs) > 1 else ""
        line = f"{name:12s} test ROC AUC {np.mean(aucs):.3f}{spread}"
        if name == "Transformer":
            line += (f"   (shuffling the particles changes its outputs by at most "
                     f"{permutation_difference(model, test_particles, test_mask):.1e})")
        print(line, flush=True)
    print(f"({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
