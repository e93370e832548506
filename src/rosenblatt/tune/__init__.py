"""Hyper-parameter tuning: ``grid_search``, ``random_search`` (seeded), ``bayes_search`` (Optuna).

Example::

    from rosenblatt.tune import loguniform, random_search

    def objective(lr, hidden):
        ...  # train, return the validation loss
    results = random_search(objective, {"lr": loguniform(1e-4, 1e-1), "hidden": [32, 64, 128]}, n_trials=10)
    print(results.table()); results.plot("search.png"); results.best_params
"""

from rosenblatt.tune.search import (
    Distribution,
    TuneResults,
    bayes_search,
    choice,
    grid_search,
    loguniform,
    randint,
    random_search,
    uniform,
)

__all__ = ["Distribution", "TuneResults", "bayes_search", "choice", "grid_search", "loguniform", "randint",
           "random_search", "uniform"]
