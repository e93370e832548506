"""Data-parallel training over MPI: sharding, gradient all-reduce, and equality with one process.

The MPI test launches ``mpiexec -n 2 python <script>``: two ranks train a small MLP for a few SGD
steps on their shards, and their weights must equal a single-process run on the same global
batches. The other tests check the sampler and the single-process fallbacks without MPI.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import rosenblatt as rb
import rosenblatt.distributed as dist

ROOT = Path(__file__).resolve().parents[1]


def _mpiexec() -> str | None:
    beside_python = Path(sys.executable).parent / "mpiexec"
    if beside_python.exists():
        return str(beside_python)
    return shutil.which("mpiexec")


def _have_mpi4py() -> bool:
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return False
    return True


requires_mpi = pytest.mark.skipif(_mpiexec() is None or not _have_mpi4py(),
                                  reason="mpiexec and mpi4py are needed (pip install 'rosenblatt[mpi]')")


# --------------------------------------------------------------------------------------------
# DistributedSampler (no MPI needed: ranks are given explicitly)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("length,replicas", [(64, 2), (60, 4), (7, 3)])
def test_sampler_shards_are_disjoint_and_cover_the_dataset(length, replicas):
    shards = [dist.DistributedSampler(length, num_replicas=replicas, rank=r, seed=3).indices()
              for r in range(replicas)]
    assert len({len(s) for s in shards}) == 1, "every rank must get the same number of samples"
    assert len(shards[0]) == -(-length // replicas)
    everything = np.concatenate(shards)
    assert set(everything.tolist()) == set(range(length))
    if length % replicas == 0:  # no padding: the shards are disjoint
        assert len(everything) == len(set(everything.tolist())) == length
    else:  # padding repeats only as many indices as needed to even out the shards
        assert len(everything) - length == (-length) % replicas


def test_sampler_drop_last_cuts_the_tail_and_stays_disjoint():
    shards = [dist.DistributedSampler(10, num_replicas=3, rank=r, drop_last=True).indices() for r in range(3)]
    everything = np.concatenate(shards)
    assert [len(s) for s in shards] == [3, 3, 3]
    assert len(set(everything.tolist())) == 9


def test_sampler_reshuffles_per_epoch_identically_on_every_rank():
    a = dist.DistributedSampler(50, num_replicas=2, rank=0, seed=1)
    b = dist.DistributedSampler(50, num_replicas=2, rank=1, seed=1)
    first = a.indices()
    a.set_epoch(1)
    b.set_epoch(1)
    second_a, second_b = a.indices(), b.indices()
    assert not np.array_equal(first, second_a), "set_epoch must change the order"
    assert not set(second_a.tolist()) & set(second_b.tolist())
    a.set_epoch(0)
    np.testing.assert_array_equal(a.indices(), first)  # reproducible
    ordered = dist.DistributedSampler(6, num_replicas=2, rank=1, shuffle=False)
    assert list(ordered) == [1, 3, 5] and len(ordered) == 3


def test_sampler_rejects_bad_arguments():
    with pytest.raises(ValueError, match="rank"):
        dist.DistributedSampler(10, num_replicas=2, rank=2)
    with pytest.raises(ValueError, match="num_replicas"):
        dist.DistributedSampler(10, num_replicas=0, rank=0)


# --------------------------------------------------------------------------------------------
# One process: everything degrades to no-ops
# --------------------------------------------------------------------------------------------


def test_single_process_collectives_are_no_ops():
    assert dist.init() == 1
    assert dist.is_initialized() and not dist.is_distributed()
    assert dist.rank() == 0 and dist.world_size() == 1 and dist.is_main_process()
    w = rb.nn.Parameter(np.arange(6.0).reshape(2, 3))
    (w * w).sum().backward()
    grad_before = w.grad.numpy().copy()
    assert dist.allreduce_gradients([w]) == 0
    np.testing.assert_array_equal(w.grad.numpy(), grad_before)
    dist.broadcast_parameters([w])
    np.testing.assert_array_equal(w.numpy(), np.arange(6.0).reshape(2, 3))
    assert dist.allreduce_metrics({"loss": np.float32(0.5), "accuracy": 1}, weight=10) == {"accuracy": 1.0, "loss": 0.5}
    assert dist.parameters_equal_across_ranks([w])
    calls = []
    assert dist.rank_zero_only(lambda: calls.append(1) or "done")() == "done" and calls == [1]
    dist.barrier()


def test_allreduce_gradients_rejects_bad_arguments():
    with pytest.raises(ValueError, match="bucket_size_mb"):
        dist.allreduce_gradients([], bucket_size_mb=0)
    with pytest.raises(TypeError, match="allreduce_gradients"):
        dist.allreduce_gradients(3)


# --------------------------------------------------------------------------------------------
# Two ranks under mpiexec
# --------------------------------------------------------------------------------------------

WORKER = textwrap.dedent('''
    """Two ranks train an MLP with SGD; rank-local results go to <out>/rank<r>.json."""
    import json, sys
    import numpy as np
    import rosenblatt as rb
    import rosenblatt.distributed as dist

    out_dir, steps, global_batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    world = dist.init()
    rank = dist.rank()

    class MLP(rb.nn.Module):
        def __init__(self):
            super().__init__()
            self.w1 = rb.nn.Parameter(rb.random.normal_array(0, 0.5, (5, 16), np.float64))
            self.b1 = rb.nn.Parameter(np.zeros(16))
            self.w2 = rb.nn.Parameter(rb.random.normal_array(0, 0.5, (16, 3), np.float64))
            self.b2 = rb.nn.Parameter(np.zeros(3))

        def forward(self, x):
            return rb.tanh(x @ self.w1 + self.b1) @ self.w2 + self.b2

    def loss_of(model, x, y):
        return ((model(rb.tensor(x)) - rb.tensor(y)) ** 2).mean()

    def sgd(model, lr=0.1):
        with rb.no_grad():
            for p in model.parameters():
                p.data -= lr * p.grad.data

    data_rng = np.random.default_rng(123)
    X = data_rng.normal(size=(96, 5))
    Y = np.sin(X[:, :3]) + 0.1 * X[:, 3:4]

    rb.manual_seed(100 + rank)  # different initial weights per rank: the broadcast must fix them
    model = MLP()
    dist.broadcast_parameters(model)
    start = {k: v.numpy().copy() for k, v in model.state_dict().items()}

    local = global_batch // world
    samplers = [dist.DistributedSampler(len(X), num_replicas=world, rank=r, seed=7) for r in range(world)]
    mine = samplers[rank]
    assert steps * local <= len(mine), "not enough samples for that many steps in one epoch"
    buckets = []
    for step in range(steps):
        idx = mine.indices()[step * local:(step + 1) * local]
        model.zero_grad()
        loss_of(model, X[idx], Y[idx]).backward()
        # tiny buckets on even steps (several reductions), the default on odd ones (one reduction)
        buckets.append(dist.allreduce_gradients(model, bucket_size_mb=0.0005 if step % 2 == 0 else 25))
        sgd(model)

    # The same steps in one process on the global batch: the union of the ranks' shards.
    reference = MLP()
    reference.load_state_dict(start)
    for step in range(steps):
        idx = np.concatenate([s.indices()[step * local:(step + 1) * local] for s in samplers])
        reference.zero_grad()
        loss_of(reference, X[idx], Y[idx]).backward()
        sgd(reference)

    diff = max(float(np.abs(p.numpy() - q.numpy()).max())
               for p, q in zip(model.parameters(), reference.parameters()))
    moved = max(float(np.abs(p.numpy() - start[k]).max()) for k, p in model.state_dict().items())
    coverage = np.zeros(len(X))
    coverage[mine.indices()] += 1
    coverage = dist.allreduce_array(coverage, op="sum")
    metrics = dist.allreduce_metrics({"value": rank + 1.0}, weight=rank + 1.0)
    result = dict(rank=rank, world=world, max_diff=diff, moved=moved, buckets=buckets,
                  coverage_ok=bool(np.all(coverage == 1)), metrics=metrics,
                  in_sync=dist.parameters_equal_across_ranks(model))

    @dist.rank_zero_only
    def write_marker():
        open(out_dir + "/rank0-only.txt", "w").write("written once")

    write_marker()
    dist.barrier()
    json.dump(result, open(f"{out_dir}/rank{rank}.json", "w"))
''')


@pytest.mark.mpi
@requires_mpi
def test_two_ranks_match_single_process_training(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""),
               OMP_NUM_THREADS="1")
    steps = 6
    proc = subprocess.run([_mpiexec(), "-n", "2", sys.executable, str(script), str(tmp_path), str(steps), "16"],
                          capture_output=True, text=True, timeout=180, env=env)
    assert proc.returncode == 0, f"mpiexec failed:\n{proc.stdout}\n{proc.stderr}"
    results = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    for r, res in enumerate(results):
        assert res["rank"] == r and res["world"] == 2
        assert res["moved"] > 1e-3, "training did not change the weights"
        assert np.isfinite(res["max_diff"]) and np.isfinite(res["moved"])
        assert res["max_diff"] < 1e-12, f"rank {r}: weights differ from the single-process run by {res['max_diff']}"
        assert res["in_sync"]
        assert res["coverage_ok"], "the two shards must be disjoint and cover the dataset"
        assert res["metrics"]["value"] == pytest.approx((1 * 1 + 2 * 2) / 3)
        # 4 parameters of 80/16/48/3 float64s: several buckets when tiny, one reduction by default
        assert res["buckets"][0] > 1 and res["buckets"][1] == 1
    assert (tmp_path / "rank0-only.txt").read_text() == "written once"


TRAINER_WORKER = textwrap.dedent('''
    """Trainer under mpiexec: two ranks, sharded data, averaged gradients; reference in-process."""
    import json, sys
    import numpy as np
    import rosenblatt as rb
    import rosenblatt.distributed as dist
    from rosenblatt import nn

    out_dir = sys.argv[1]
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 4))
    Y = (X[:, 0] + X[:, 1] * X[:, 2] > 0).astype(np.int64)

    def build(seed):
        rb.manual_seed(seed)
        return nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 2)).double()

    dist.init()
    rank = dist.rank()
    model = build(10 + rank)  # rank 1 starts elsewhere; fit() broadcasts rank 0's weights
    start = build(10).state_dict()
    start = {k: v.numpy().copy() for k, v in start.items()}
    optimizer = rb.optim.SGD(model.parameters(), lr=0.2, momentum=0.9)
    logger = rb.train.CSVLogger(out_dir + "/log.csv")
    trainer = rb.train.Trainer(model, nn.CrossEntropyLoss(), optimizer, metrics=("accuracy",), callbacks=[logger])
    history = trainer.fit((X, Y), epochs=3, batch_size=8, seed=5)

    # The same run in one process: each step uses the union of the two ranks' batches.
    reference = build(10)
    ref_opt = rb.optim.SGD(reference.parameters(), lr=0.2, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    samplers = [dist.DistributedSampler(64, num_replicas=2, rank=r, seed=5) for r in range(2)]
    for epoch in range(3):
        shards = []
        for s in samplers:
            s.set_epoch(epoch)
            shards.append(s.indices())
        for step in range(4):
            idx = np.concatenate([sh[step * 8:(step + 1) * 8] for sh in shards])
            ref_opt.zero_grad()
            loss_fn(reference(rb.tensor(X[idx])), rb.tensor(Y[idx])).backward()
            ref_opt.step()
    diff = max(float(np.abs(p.numpy() - q.numpy()).max())
               for p, q in zip(model.parameters(), reference.parameters()))
    json.dump(dict(rank=rank, max_diff=diff, history=history.history,
                   callbacks=[type(c).__name__ for c in trainer.callbacks],
                   in_sync=dist.parameters_equal_across_ranks(model)),
              open(f"{out_dir}/trainer{rank}.json", "w"))
''')


@pytest.mark.mpi
@requires_mpi
def test_trainer_under_mpiexec_matches_single_process(tmp_path):
    script = tmp_path / "trainer_worker.py"
    script.write_text(TRAINER_WORKER)
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""),
               OMP_NUM_THREADS="1")
    proc = subprocess.run([_mpiexec(), "-n", "2", sys.executable, str(script), str(tmp_path)],
                          capture_output=True, text=True, timeout=180, env=env)
    assert proc.returncode == 0, f"mpiexec failed:\n{proc.stdout}\n{proc.stderr}"
    results = [json.loads((tmp_path / f"trainer{r}.json").read_text()) for r in range(2)]
    for res in results:
        assert np.isfinite(res["max_diff"]) and res["max_diff"] < 1e-10, res["max_diff"]
        assert res["in_sync"]
    # reduced logs: both ranks report the same epoch losses, and the loss went down
    assert results[0]["history"]["loss"] == pytest.approx(results[1]["history"]["loss"], abs=1e-12)
    assert results[0]["history"]["loss"][-1] < results[0]["history"]["loss"][0]
    # only rank 0 writes the log file
    assert results[0]["callbacks"] == ["CSVLogger"] and results[1]["callbacks"] == []
    assert len((tmp_path / "log.csv").read_text().splitlines()) == 4


# --------------------------------------------------------------------------------------------
# Several processes sharing one Optuna study (rb.tune.bayes_search with an RDB storage)
# --------------------------------------------------------------------------------------------

TUNE_WORKER = textwrap.dedent('''
    """One tuning worker: 8 trials of a shared study; its view of the study goes to <out>."""
    import json, os, sys
    import rosenblatt as rb

    storage, worker, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]

    def objective(x, depth):
        return (x - 1.5) ** 2 + 0.1 * depth

    space = {"x": rb.tune.uniform(-5.0, 5.0), "depth": rb.tune.randint(1, 3)}
    # a different seed per worker, or both would propose the same start-up points
    results = rb.tune.bayes_search(objective, space, n_trials=8, storage=storage, study_name="shared", seed=worker)
    json.dump({"pid": os.getpid(), "seen": len(results), "best": results[0]["score"],
               "best_x": results[0]["x"]}, open(out, "w"))
''')


@pytest.mark.slow
def test_two_workers_share_one_optuna_study(tmp_path):
    optuna = pytest.importorskip("optuna")
    if not hasattr(rb.tune, "bayes_search"):
        pytest.skip("rb.tune.bayes_search is not available")
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    # Create the study (and its tables) once before the workers start, as one would on a server.
    optuna.create_study(storage=storage, study_name="shared", direction="minimize")
    script = tmp_path / "tune_worker.py"
    script.write_text(TUNE_WORKER)
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""),
               OMP_NUM_THREADS="1")
    workers = [subprocess.Popen([sys.executable, str(script), storage, str(w), str(tmp_path / f"worker{w}.json")],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
               for w in range(2)]
    for w in workers:
        _, err = w.communicate(timeout=180)
        assert w.returncode == 0, err
    reports = [json.loads((tmp_path / f"worker{w}.json").read_text()) for w in range(2)]
    assert reports[0]["pid"] != reports[1]["pid"]
    study = optuna.load_study(study_name="shared", storage=storage)
    finished = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(finished) == 16, "both workers' trials must land in the one study"
    # whoever finished last saw every trial of the shared study in its results table
    assert max(r["seen"] for r in reports) == 16
    assert min(r["best"] for r in reports) == pytest.approx(study.best_value)
    assert study.best_value < 1.0  # (x - 1.5)^2 + 0.1 depth: the search found the valley
