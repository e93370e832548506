"""rb.tune: grid, random and Bayesian search."""

from __future__ import annotations

import pytest

from rosenblatt.tune import bayes_search, choice, grid_search, loguniform, randint, random_search, uniform


def quadratic(x, y=0.0):
    return (x - 0.3) ** 2 + (y + 1.0) ** 2


def test_grid_search_visits_every_combination_best_first():
    results = grid_search(quadratic, {"x": [0.0, 0.3, 1.0], "y": choice([-1.0, 0.0])})
    assert len(results) == 6 and {(r["x"], r["y"]) for r in results} == {(a, b) for a in (0.0, 0.3, 1.0)
                                                                        for b in (-1.0, 0.0)}
    assert results.best_params == {"x": 0.3, "y": -1.0} and results.best["score"] == 0.0
    assert [r["score"] for r in results] == sorted(r["score"] for r in results)
    table = results.table().splitlines()
    assert table[0].split()[:4] == ["trial", "x", "y", "score"] and len(table) == 7
    with pytest.raises(TypeError, match="continuous"):
        grid_search(quadratic, {"x": uniform(0, 1)})


def test_random_search_is_seeded_and_respects_the_space(tmp_path):
    space = {"x": uniform(-1, 1), "y": randint(-3, 3), "lr": loguniform(1e-4, 1e-1)}
    a = random_search(lambda x, y, lr: quadratic(x, y), space, n_trials=30, seed=1)
    b = random_search(lambda x, y, lr: quadratic(x, y), space, n_trials=30, seed=1)
    assert [r["x"] for r in a] == [r["x"] for r in b]
    assert all(-1 <= r["x"] <= 1 and -3 <= r["y"] <= 3 and 1e-4 <= r["lr"] <= 1e-1 for r in a)
    assert isinstance(a[0]["y"], int) and a.best["score"] < 0.2
    maximised = random_search(lambda x: {"score": -quadratic(x), "note": "ok"}, {"x": uniform(0, 1)}, n_trials=5,
                              direction="maximize")
    assert maximised.best["score"] == max(r["score"] for r in maximised) and maximised.best["note"] == "ok"
    a.plot(tmp_path / "search.png")
    assert (tmp_path / "search.png").stat().st_size > 1000


def test_bayes_search_finds_the_minimum_and_shares_a_study(tmp_path):
    pytest.importorskip("optuna")
    results = bayes_search(quadratic, {"x": uniform(-2, 2), "y": uniform(-3, 3)}, n_trials=40, seed=0)
    assert len(results) == 40 and results.best["score"] < 0.05
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    bayes_search(quadratic, {"x": uniform(-2, 2)}, n_trials=3, storage=storage, study_name="s")
    shared = bayes_search(quadratic, {"x": uniform(-2, 2)}, n_trials=2, storage=storage, study_name="s")
    assert len(shared) == 5  # the second process sees the first one's trials
