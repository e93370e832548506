"""The lecture, runnable: one experiment per claim, each measuring it and plotting the result.

``rosenblatt experiment NAME [--out DIR] [--quick] [--seed N]`` (or :func:`run`) trains the models
an experiment needs, writes its PNG figures and a ``results.json`` of the measured numbers to
``out``, and prints what was measured. ``quick=True`` is a smaller run (seconds) that still shows
the effect; the full run takes minutes. Runs are seeded and deterministic.

Each experiment is a module of this package with a ``run(ctx)`` function, a ``TITLE``, the
``CLAIM`` it demonstrates and ``describe(results)`` (the paragraph of ``docs/experiments.md``).
"""

from __future__ import annotations

import importlib
import json
import time
from pathlib import Path
from types import ModuleType
from typing import Any

# experiment name -> module (imported only when the experiment runs)
EXPERIMENTS: dict[str, str] = {
    "perceptron": "perceptron",
    "universal-approximation": "universal_approximation",
    "activations": "activations",
    "vanishing-gradients": "vanishing_gradients",
    "optimizers": "optimizers",
    "learning-rate": "learning_rate",
    "regularization": "regularization",
    "double-descent": "double_descent",
    "cnn-vs-mlp": "cnn_vs_mlp",
    "feature-maps": "feature_maps",
    "autoencoder": "autoencoder",
    "rnn-memory": "rnn_memory",
    "pruning": "pruning",
    "loss-landscape": "loss_landscape",
    "generative-augmentation": "generative_augmentation",
    "attention": "attention",
}


def get_module(name: str) -> ModuleType:
    """The module implementing experiment ``name``."""
    if name not in EXPERIMENTS:
        raise ValueError(f"experiment: unknown experiment {name!r}; known: {', '.join(EXPERIMENTS)}")
    return importlib.import_module(f"rosenblatt.experiments.{EXPERIMENTS[name]}")


def list_experiments() -> list[tuple[str, str]]:
    """``(name, one-line claim)`` for every experiment, in lecture order."""
    return [(name, get_module(name).CLAIM) for name in EXPERIMENTS]


def run(name: str, out: str | Path | None = None, quick: bool = False, seed: int = 0,
        verbose: bool = True) -> dict[str, Any]:
    """Run experiment ``name``: write its figures and ``results.json`` to ``out`` (default
    ``runs/experiments/NAME``), print its headline lines (unless ``verbose=False``) and return the record
    that was written: ``{"experiment", "claim", "quick", "seed", "seconds", "summary", "figures",
    "results"}``."""
    import rosenblatt as rb
    from rosenblatt.experiments._common import Context, to_jsonable

    module = get_module(name)
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"experiment: seed must be a non-negative int, got {seed!r}")
    out = Path(out) if out is not None else Path("runs") / "experiments" / name
    out.mkdir(parents=True, exist_ok=True)
    ctx = Context(out=out, quick=bool(quick), seed=seed)
    rb.manual_seed(seed)
    start = time.perf_counter()
    with _single_threaded_blas():  # small matrices: BLAS threads only add overhead (and stall a busy machine)
        module.run(ctx)
    seconds = time.perf_counter() - start
    record = {
        "experiment": name, "claim": module.CLAIM, "quick": ctx.quick, "seed": seed,
        "seconds": round(seconds, 2), "summary": ctx.summary, "figures": ctx.figures,
        "results": to_jsonable(ctx.results),
    }
    (out / "results.json").write_text(json.dumps(record, indent=2) + "\n")
    if verbose:
        print(f"{name}: {module.CLAIM}")
        for line in ctx.summary:
            print(f"  - {line}")
        print(f"  ({seconds:.1f} s; figures and results.json in {out})")
    return record


__all__ = ["EXPERIMENTS", "get_module", "list_experiments", "run"]


def _single_threaded_blas() -> Any:
    """A context in which every kernel pool (BLAS, oneDNN, optimiser) uses one thread.

    The experiments train many small models, where a second thread costs more than it gives;
    the previous count is restored on exit.
    """
    import contextlib

    from rosenblatt.kernels import threads

    @contextlib.contextmanager
    def one_thread():
        previous = threads.get_num_threads()
        threads.set_num_threads(1)
        try:
            yield
        finally:
            threads.set_num_threads(previous)

    return one_thread()
