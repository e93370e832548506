"""Hyper-parameter search: grid, random and Bayesian (Optuna) over a search space.

A search space is a dict ``{name: values}`` where values are a list (a choice) or a distribution:
``uniform(low, high)``, ``loguniform(low, high)``, ``randint(low, high)`` (inclusive), ``choice([...])``.
The objective ``fn(**params)`` returns a number (or a dict with a ``"score"`` entry, whose other
entries are kept in the results). Results come back as a :class:`TuneResults` table.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np


class Distribution:
    """Base of the search-space distributions."""

    def sample(self, rng: np.random.Generator) -> Any:
        """One random value from this search dimension."""
        raise NotImplementedError

    def grid(self) -> list[Any]:
        """The values this dimension takes in a grid search."""
        raise TypeError(f"grid_search: {self!r} is continuous; give a list of values instead")


class uniform(Distribution):  # noqa: N801 - reads like a function in a search space
    """A float uniform in ``[low, high]``."""

    def __init__(self, low: float, high: float) -> None:
        if not low < high:
            raise ValueError(f"uniform: expected low < high, got {low}, {high}")
        self.low, self.high = float(low), float(high)

    def sample(self, rng: np.random.Generator) -> float:
        """One random value from this search dimension."""
        return float(rng.uniform(self.low, self.high))

    def __repr__(self) -> str:
        return f"uniform({self.low}, {self.high})"


class loguniform(uniform):  # noqa: N801
    """A float whose logarithm is uniform in ``[log low, log high]`` (learning rates, weight decay)."""

    def __init__(self, low: float, high: float) -> None:
        if low <= 0:
            raise ValueError(f"loguniform: low must be > 0, got {low}")
        super().__init__(low, high)

    def sample(self, rng: np.random.Generator) -> float:
        """One random value from this search dimension."""
        return float(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))

    def __repr__(self) -> str:
        return f"loguniform({self.low}, {self.high})"


class randint(Distribution):  # noqa: N801
    """An integer uniform in ``[low, high]`` (both included)."""

    def __init__(self, low: int, high: int) -> None:
        if not low <= high:
            raise ValueError(f"randint: expected low <= high, got {low}, {high}")
        self.low, self.high = int(low), int(high)

    def sample(self, rng: np.random.Generator) -> int:
        """One random value from this search dimension."""
        return int(rng.integers(self.low, self.high + 1))

    def grid(self) -> list[int]:
        """The values this dimension takes in a grid search."""
        return list(range(self.low, self.high + 1))

    def __repr__(self) -> str:
        return f"randint({self.low}, {self.high})"


class choice(Distribution):  # noqa: N801
    """One of the given values."""

    def __init__(self, values: Sequence[Any]) -> None:
        self.values = list(values)
        if not self.values:
            raise ValueError("choice: expected at least one value")

    def sample(self, rng: np.random.Generator) -> Any:
        """One random value from this search dimension."""
        return self.values[int(rng.integers(len(self.values)))]

    def grid(self) -> list[Any]:
        """The values this dimension takes in a grid search."""
        return list(self.values)

    def __repr__(self) -> str:
        return f"choice({self.values})"


def _dimension(name: str, spec: Any) -> Distribution:
    if isinstance(spec, Distribution):
        return spec
    if isinstance(spec, (list, tuple, range, np.ndarray)):
        return choice(list(spec))
    raise TypeError(f"search space: '{name}' must be a list of values or a distribution "
                    f"(uniform, loguniform, randint, choice), got {type(spec).__name__}")


class TuneResults(list):
    """The trials, as a list of dicts ``{"trial", <params>..., "score", "seconds"}``, best first.

    ``best`` is the best trial, ``best_params`` its parameters; ``table()`` formats the list and
    ``plot(path)`` draws score against trial (and the best so far).
    """

    def __init__(self, trials: list[dict[str, Any]], params: list[str], direction: str) -> None:
        self.params, self.direction = params, direction
        reverse = direction == "maximize"

        def key(trial: dict[str, Any]) -> tuple[bool, float]:  # failed (NaN) trials last
            return math.isnan(trial["score"]), -trial["score"] if reverse else trial["score"]

        super().__init__(sorted(trials, key=key))

    @property
    def best(self) -> dict[str, Any]:
        """The best trial (its parameters and value)."""
        if not self:
            raise ValueError("TuneResults: no trials")
        return self[0]

    @property
    def best_params(self) -> dict[str, Any]:
        """The parameters of the best trial."""
        return {k: self.best[k] for k in self.params}

    def table(self, limit: int | None = None) -> str:
        """A plain-text table of the trials, best first."""
        rows = self[:limit] if limit else list(self)
        columns = ["trial", *self.params, "score", *sorted({k for r in rows for k in r} - {"trial", "score", "seconds",
                                                                                               *self.params}), "seconds"]

        def cell(value: Any) -> str:
            return f"{value:.4g}" if isinstance(value, float) else str(value)

        cells = [[cell(r.get(c, "")) for c in columns] for r in rows]
        widths = [max(len(c), *(len(row[i]) for row in cells)) if cells else len(c) for i, c in enumerate(columns)]
        lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths))]
        lines += ["  ".join(v.rjust(w) for v, w in zip(row, widths)) for row in cells]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    def plot(self, path: str | None = None) -> Any:
        """Score of each trial in the order run, and the best so far; saved to ``path`` when given."""
        from matplotlib.figure import Figure

        ordered = sorted(self, key=lambda t: t["trial"])
        scores = np.array([t["score"] for t in ordered], dtype=float)
        best = np.fmax.accumulate(scores) if self.direction == "maximize" else np.fmin.accumulate(scores)
        fig = Figure(figsize=(5.5, 3.5))
        ax = fig.add_subplot(1, 1, 1)
        ax.plot(range(len(scores)), scores, "o", alpha=0.6, label="trial")
        ax.plot(range(len(scores)), best, "-", label="best so far")
        ax.set_xlabel("trial")
        ax.set_ylabel("score")
        ax.legend()
        ax.grid(alpha=0.3)
        fig.tight_layout()
        if path is not None:
            fig.savefig(path, dpi=110)
        return fig


def _evaluate(fn: Callable[..., Any], params: dict[str, Any], trial: int) -> dict[str, Any]:
    start = time.perf_counter()
    value = fn(**params)
    record: dict[str, Any] = {"trial": trial, **params}
    if isinstance(value, Mapping):
        if "score" not in value:
            raise ValueError("tune: an objective returning a dict must include a 'score' entry")
        record.update({k: v for k, v in value.items() if k not in params})
        record["score"] = float(value["score"])
    else:
        record["score"] = float(value)
    record["seconds"] = time.perf_counter() - start
    return record


def _check_direction(direction: str) -> str:
    if direction not in ("minimize", "maximize"):
        raise ValueError(f"tune: direction must be 'minimize' or 'maximize', got {direction!r}")
    return direction


def grid_search(fn: Callable[..., Any], space: Mapping[str, Any], direction: str = "minimize") -> TuneResults:
    """Evaluate ``fn`` on every combination of the values in ``space`` (lists, ``choice``, ``randint``)."""
    direction = _check_direction(direction)
    names = list(space)
    values = [_dimension(n, space[n]).grid() for n in names]
    trials = [_evaluate(fn, dict(zip(names, combo)), i) for i, combo in enumerate(itertools.product(*values))]
    return TuneResults(trials, names, direction)


def random_search(fn: Callable[..., Any], space: Mapping[str, Any], n_trials: int = 20, seed: int | None = 0,
                  direction: str = "minimize") -> TuneResults:
    """Evaluate ``fn`` on ``n_trials`` points drawn from ``space`` with a generator seeded by ``seed``."""
    direction = _check_direction(direction)
    if n_trials < 1:
        raise ValueError(f"random_search: n_trials must be >= 1, got {n_trials}")
    names = list(space)
    dims = [_dimension(n, space[n]) for n in names]
    rng = np.random.default_rng(seed)
    trials = []
    for i in range(n_trials):
        params = {n: d.sample(rng) for n, d in zip(names, dims)}
        trials.append(_evaluate(fn, params, i))
    return TuneResults(trials, names, direction)


def bayes_search(fn: Callable[..., Any], space: Mapping[str, Any], n_trials: int = 20, storage: str | None = None,
                 study_name: str | None = None, direction: str = "minimize", seed: int | None = 0) -> TuneResults:
    """Bayesian optimisation (Optuna's TPE sampler) of ``fn`` over ``space``.

    With an RDB ``storage`` URL (e.g. ``"sqlite:///study.db"`` or a PostgreSQL URL) and a
    ``study_name``, many processes or machines can run this function at once and share one study;
    the results table then holds every finished trial of the study. Needs the ``tune`` extra
    (``pip install 'rosenblatt[tune]'``).
    """
    direction = _check_direction(direction)
    try:
        import optuna
    except ImportError:
        raise ImportError("bayes_search needs Optuna: pip install 'rosenblatt[tune]' (or pip install optuna)") from None
    names = list(space)
    dims = {n: _dimension(n, space[n]) for n in names}
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=storage, study_name=study_name, direction=direction,
                                sampler=optuna.samplers.TPESampler(seed=seed), load_if_exists=storage is not None)

    def objective(trial: Any) -> float:
        params = {}
        for name, dim in dims.items():
            if isinstance(dim, loguniform):
                params[name] = trial.suggest_float(name, dim.low, dim.high, log=True)
            elif isinstance(dim, uniform):
                params[name] = trial.suggest_float(name, dim.low, dim.high)
            elif isinstance(dim, randint):
                params[name] = trial.suggest_int(name, dim.low, dim.high)
            else:
                params[name] = trial.suggest_categorical(name, dim.values)
        record = _evaluate(fn, params, trial.number)
        for key, value in record.items():
            if key not in params and key not in ("trial", "score") and isinstance(value, (int, float, str, bool)):
                trial.set_user_attr(key, value)
        return record["score"]

    study.optimize(objective, n_trials=n_trials)
    trials = []
    for t in study.trials:
        if t.state != optuna.trial.TrialState.COMPLETE:
            continue
        trials.append({"trial": t.number, **t.params, "score": float(t.value), **t.user_attrs})
    return TuneResults(trials, names, direction)
