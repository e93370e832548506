"""Shared helpers of the experiments: figures, result files, a minimal training loop.

Every experiment is a function ``run(ctx)`` that reads ``ctx.quick`` and ``ctx.seed``, stores its
numbers in ``ctx.results``, saves figures with ``ctx.savefig`` and states its headline findings with
``ctx.say``. The registry (``rosenblatt.experiments``) writes ``results.json`` and prints the lines.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import rosenblatt as rb
from rosenblatt.core import Tensor

# small PNGs (~50-150 KB) that still read well in a browser
DPI = 90


def pyplot() -> Any:
    """matplotlib.pyplot with the file-only Agg backend (imported lazily: plotting is optional)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 9, "axes.titlesize": 10, "axes.grid": True, "grid.alpha": 0.3,
                         "legend.fontsize": 8, "figure.dpi": DPI})
    return plt


@dataclass
class Context:
    """What an experiment gets: where to write, how big a run, the seed; what it reports back."""

    out: Path
    quick: bool = False
    seed: int = 0
    results: dict[str, Any] = field(default_factory=dict)
    figures: list[str] = field(default_factory=list)
    summary: list[str] = field(default_factory=list)

    def rng(self, offset: int = 0) -> np.random.Generator:
        """A NumPy generator for data sampling, derived from the run's seed."""
        return np.random.default_rng(self.seed * 1000 + offset)

    def say(self, line: str) -> None:
        """Record one headline line (printed after the run, kept in results.json and the docs)."""
        self.summary.append(line)

    def savefig(self, fig: Any, name: str) -> str:
        """Write ``fig`` as ``out/name`` (PNG) and close it."""
        plt = pyplot()
        path = self.out / name
        fig.savefig(path, dpi=DPI, bbox_inches="tight")
        plt.close(fig)
        self.figures.append(name)
        return name


def to_jsonable(value: Any) -> Any:
    """NumPy scalars/arrays and tuples as plain JSON values (floats to 6 significant digits, which
    keeps the files small); non-finite floats as strings."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return float(f"{value:.6g}") if math.isfinite(value) else str(value)
    if isinstance(value, (np.bool_,)):
        return bool(value)
    return value


# ---------------------------------------------------------------------------------------------
# training helpers: short explicit loops, so each experiment shows exactly what it does
# ---------------------------------------------------------------------------------------------


def batches(n: int, batch_size: int, rng: np.random.Generator, shuffle: bool = True) -> Iterator[np.ndarray]:
    """Index arrays of one epoch's mini-batches."""
    order = rng.permutation(n) if shuffle else np.arange(n)
    for start in range(0, n, batch_size):
        yield order[start:start + batch_size]


def train_step(model: Any, loss_fn: Callable[[Tensor, Tensor], Tensor], optimizer: Any, x: np.ndarray,
               y: np.ndarray, penalty: Callable[[], Tensor] | None = None) -> float:
    """One gradient step on the batch ``(x, y)``; returns the data loss (without the penalty)."""
    loss = loss_fn(model(rb.tensor(x)), rb.tensor(y))
    total = loss + penalty() if penalty is not None else loss
    optimizer.zero_grad()
    total.backward()
    optimizer.step()
    return float(loss.item())


def evaluate(model: Any, loss_fn: Callable[[Tensor, Tensor], Tensor], x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """``(loss, accuracy)`` of a classifier in eval mode (accuracy is NaN for regression targets)."""
    was_training = model.training
    model.eval()
    with rb.no_grad():
        logits = model(rb.tensor(x))
        loss = float(loss_fn(logits, rb.tensor(y)).item())
    model.train(was_training)
    acc = float(np.mean(logits.numpy().argmax(1) == y)) if y.ndim == 1 and logits.ndim == 2 else float("nan")
    return loss, acc


def predict(model: Any, x: np.ndarray) -> np.ndarray:
    """The model's output on ``x`` in eval mode, as an array."""
    was_training = model.training
    model.eval()
    with rb.no_grad():
        out = model(rb.tensor(x)).numpy()
    model.train(was_training)
    return out


def digits_split(n_train: int, rng: np.random.Generator, n_test: int | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits scaled to [0, 1]: ``n_train`` random training images, the rest (or
    ``n_test`` of them) for testing. Images are flat ``(N, 64)`` float32."""
    x, y = rb.data.load_digits()
    x = np.asarray(x, dtype=np.float32).reshape(len(x), -1)
    x = x / x.max()
    order = rng.permutation(len(x))
    train, test = order[:n_train], order[n_train:]
    if n_test is not None:
        test = test[:n_test]
    return x[train], np.asarray(y[train], np.int64), x[test], np.asarray(y[test], np.int64)


def decision_grid(x: np.ndarray, steps: int = 150, margin: float = 0.5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A ``steps x steps`` grid covering the 2-D points ``x``: ``(xx, yy, flat_points)``."""
    lo, hi = x.min(0) - margin, x.max(0) + margin
    xx, yy = np.meshgrid(np.linspace(lo[0], hi[0], steps), np.linspace(lo[1], hi[1], steps))
    return xx, yy, np.stack([xx.ravel(), yy.ravel()], 1).astype(np.float32)


def fmt(value: float, digits: int = 3) -> str:
    """A number for a sentence: fixed for ordinary sizes, scientific for tiny or huge ones."""
    value = float(value)
    if not math.isfinite(value):
        return str(value)
    if value != 0 and (abs(value) < 10 ** -digits or abs(value) >= 1e5):
        return f"{value:.2e}"
    return f"{value:.{digits}f}"
