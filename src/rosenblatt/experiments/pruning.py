"""Pruning: accuracy against sparsity, one-shot and iterative, and what sparsity buys in storage.

A LeNet-5 (on the 8x8 digits zero-padded to 12x12) and an MLP ``64 -> 256 -> 128 -> 10`` are trained
dense, then their weights (not biases) are pruned by global magnitude (``rb.nn.utils.prune.
global_unstructured`` with ``L1Unstructured``: the smallest weights of the whole network go first):

- **one-shot**: prune the trained network to each sparsity at once; test accuracy without and with
  fine-tuning (a few epochs of training of the surviving weights).
- **iterative** (Han et al. 2015, "Learning both weights and connections for efficient neural
  networks"): prune 50%, fine-tune, prune half of the rest, fine-tune, ... each step's accuracy is
  measured after its fine-tuning.

Every accuracy is the test accuracy on held-out digits, mean ± std over seeds (the data split, the
initialisation and the batches change with the seed). Storage compares the dense float32 weight
matrices with a compressed-sparse-row (CSR) copy of the pruned ones (float32 values, int32 column
indices and row pointers); inference time compares the MLP's dense matrix products with SciPy's CSR
products at the same sparsity (SciPy comes with scikit-learn, which the digits need; the masked
rosenblatt model itself runs dense: it has no sparse kernels).
"""

from __future__ import annotations

import copy
import time

import numpy as np

import rosenblatt as rb
from rosenblatt import nn
from rosenblatt.experiments._common import Context, batches, digits_split, evaluate, fmt, pyplot
from rosenblatt.nn.utils import prune

TITLE = "Pruning: accuracy against sparsity, storage and speed"
CLAIM = "Most weights of a trained network can be removed with little loss of accuracy, which compresses it"


def make(kind: str) -> nn.Module:
    if kind == "lenet5":
        return rb.models.LeNet5(input_size=12, activation="relu", pooling="max")
    return rb.models.MLP([64, 256, 128, 10])


def inputs(kind: str, x: np.ndarray) -> np.ndarray:
    if kind == "lenet5":
        return np.pad(x.reshape(len(x), 1, 8, 8), ((0, 0), (0, 0), (2, 2), (2, 2)))
    return x


def weights(model: nn.Module) -> list[tuple[nn.Module, str]]:
    return [(m, "weight") for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]


def train(model: nn.Module, x: np.ndarray, y: np.ndarray, epochs: int, rng: np.random.Generator,
          lr: float = 3e-3) -> None:
    opt = rb.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(epochs):
        for idx in batches(len(x), 64, rng):
            loss = nn.functional.cross_entropy(model(rb.tensor(x[idx])), rb.tensor(y[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()


def accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    return evaluate(model, nn.functional.cross_entropy, x, y)[1]


def sparsity(model: nn.Module) -> float:
    total = zeros = 0
    for m, name in weights(model):
        w = getattr(m, name).numpy()
        total, zeros = total + w.size, zeros + int((w == 0).sum())
    return zeros / total


def csr_bytes(matrix: np.ndarray) -> int:
    """float32 values + int32 column indices + int32 row pointers."""
    m = matrix.reshape(matrix.shape[0], -1)
    return int((m != 0).sum()) * 8 + (m.shape[0] + 1) * 4


def one_run(kind: str, seed: int, levels: list[float], epochs: int, finetune: int, steps: int) -> dict:
    rng = np.random.default_rng(seed)
    x_train, y_train, x_test, y_test = digits_split(1300, rng)
    x_train, x_test = inputs(kind, x_train), inputs(kind, x_test)
    rb.manual_seed(seed)
    dense = make(kind)
    train(dense, x_train, y_train, epochs, rng)
    out = {"dense": accuracy(dense, x_test, y_test), "one_shot": [], "one_shot_finetuned": [],
           "iterative": [], "iterative_sparsity": []}
    for level in levels:
        model = copy.deepcopy(dense)
        prune.global_unstructured(weights(model), prune.L1Unstructured, amount=level)
        out["one_shot"].append(accuracy(model, x_test, y_test))
        train(model, x_train, y_train, finetune, rng, lr=1e-3)
        out["one_shot_finetuned"].append(accuracy(model, x_test, y_test))
    model = copy.deepcopy(dense)
    for _ in range(steps):  # each step prunes half of the surviving weights
        prune.global_unstructured(weights(model), prune.L1Unstructured, amount=0.5)
        train(model, x_train, y_train, finetune, rng, lr=1e-3)
        out["iterative_sparsity"].append(sparsity(model))
        out["iterative"].append(accuracy(model, x_test, y_test))
    return out


def storage_and_speed(levels: list[float], repeats: int) -> dict:
    """Dense vs CSR bytes of the MLP's weights and time of one forward pass of 512 inputs."""
    import scipy.sparse as sp

    rng = np.random.default_rng(0)
    model = make("mlp")
    shapes = [m.weight.shape for m, _ in weights(model)]
    x = rng.standard_normal((512, 64)).astype(np.float32)
    result = {"sparsity": levels, "dense_bytes": [], "csr_bytes": [], "dense_ms": [], "csr_ms": []}
    for level in levels:
        mats = []
        for shape in shapes:
            w = rng.standard_normal(shape).astype(np.float32)
            w[rng.random(shape) < level] = 0
            mats.append(w)
        result["dense_bytes"].append(sum(w.nbytes for w in mats))
        result["csr_bytes"].append(sum(csr_bytes(w) for w in mats))
        sparse = [sp.csr_matrix(w) for w in mats]

        def dense_forward(mats: list = mats) -> np.ndarray:
            h = x
            for w in mats:
                h = np.maximum(h @ w.T, 0)
            return h

        def sparse_forward(sparse: list = sparse) -> np.ndarray:
            h = x
            for w in sparse:
                h = np.maximum((w @ h.T).T, 0)
            return h

        times = {"dense": [], "csr": []}
        for _ in range(repeats):  # interleaved, best of `repeats`: the machine's load affects both alike
            for name, fn in (("dense", dense_forward), ("csr", sparse_forward)):
                t = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t)
        result["dense_ms"].append(1000 * min(times["dense"]))
        result["csr_ms"].append(1000 * min(times["csr"]))
    return result


def run(ctx: Context) -> None:
    """Run the experiment: train, prune, fine-tune, measure; fill ``ctx.results``; draw the figure."""
    quick = ctx.quick
    levels = [0.5, 0.9, 0.95] if quick else [0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98]
    seeds = [ctx.seed + i for i in range(2 if quick else 3)]
    config = {"lenet5": dict(epochs=6 if quick else 15, finetune=1 if quick else 3, steps=3 if quick else 6),
              "mlp": dict(epochs=10 if quick else 20, finetune=1 if quick else 3, steps=4 if quick else 6)}
    results: dict = {"sparsity_levels": levels, "seeds": seeds}
    for kind, cfg in config.items():
        runs = [one_run(kind, s, levels, **cfg) for s in seeds]
        summary = {"config": cfg}
        for key in ("dense", "one_shot", "one_shot_finetuned", "iterative", "iterative_sparsity"):
            values = np.array([r[key] for r in runs], dtype=np.float64)
            summary[key] = {"mean": values.mean(0), "std": values.std(0)}
        results[kind] = summary
    results["storage"] = storage_and_speed([0.0, 0.5, 0.9, 0.95, 0.98], 3 if quick else 20)
    ctx.results.update(results)

    n = len(seeds)
    for kind, label in (("lenet5", "LeNet-5"), ("mlp", "MLP")):
        r = results[kind]
        i90 = levels.index(0.9)
        ctx.say(f"{label}: dense test accuracy {r['dense']['mean']:.3f} ± {r['dense']['std']:.3f}; pruned to 90% "
                f"sparsity at once {r['one_shot']['mean'][i90]:.3f} ± {r['one_shot']['std'][i90]:.3f}, after "
                f"fine-tuning {r['one_shot_finetuned']['mean'][i90]:.3f} ± {r['one_shot_finetuned']['std'][i90]:.3f}"
                f" (mean ± std over {n} seeds)")
        it_s, it_a = r["iterative_sparsity"]["mean"], r["iterative"]["mean"]
        ctx.say(f"{label} iterative (halve the survivors, fine-tune, repeat): test accuracy "
                f"{it_a[-1]:.3f} ± {r['iterative']['std'][-1]:.3f} at {it_s[-1]:.1%} sparsity vs one-shot + "
                f"fine-tuning {r['one_shot_finetuned']['mean'][-1]:.3f} at {levels[-1]:.0%}")
    st = results["storage"]
    j = st["sparsity"].index(0.9)
    ctx.say(f"MLP weights at 90% sparsity: {st['dense_bytes'][j] / 1024:.0f} KiB dense float32 -> "
            f"{st['csr_bytes'][j] / 1024:.0f} KiB as CSR ({st['dense_bytes'][j] / st['csr_bytes'][j]:.1f}x smaller); "
            f"one forward pass of 512 inputs {fmt(st['dense_ms'][j], 2)} ms dense vs {fmt(st['csr_ms'][j], 2)} ms "
            f"CSR (SciPy; best of repeats, interleaved)")
    ctx.say("CSR is larger than dense below 50% sparsity (8 bytes per kept weight against 4); rosenblatt "
            "runs a pruned model with dense kernels, so pruning alone does not make it faster")

    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    for ax, (kind, label) in zip(axes[:2], (("lenet5", "LeNet-5"), ("mlp", "MLP 64-256-128-10"))):
        r = results[kind]
        for key, style, name in (("one_shot", "o--", "one-shot"), ("one_shot_finetuned", "s-",
                                                                   "one-shot + fine-tune")):
            ax.errorbar(levels, r[key]["mean"], yerr=r[key]["std"], fmt=style, capsize=3, label=name)
        ax.errorbar(r["iterative_sparsity"]["mean"], r["iterative"]["mean"], yerr=r["iterative"]["std"], fmt="^-",
                    capsize=3, label="iterative (halve + fine-tune)")
        ax.axhline(r["dense"]["mean"], color="k", lw=0.8, ls=":", label="dense")
        ax.set_xlabel("fraction of weights pruned")
        ax.set_ylabel(f"test accuracy (mean ± std, {n} seeds)")
        ax.set_title(label)
        ax.set_ylim(0, 1.02)
        ax.legend(loc="lower left")
    ax = axes[2]
    ax.plot(st["sparsity"], np.array(st["dense_bytes"]) / 1024, "o-", label="dense float32")
    ax.plot(st["sparsity"], np.array(st["csr_bytes"]) / 1024, "s-", label="CSR (values + indices)")
    ax.set_xlabel("fraction of weights pruned")
    ax.set_ylabel("MLP weight storage (KiB)")
    ax2 = ax.twinx()
    ax2.plot(st["sparsity"], st["dense_ms"], "o:", color="C2", label="dense forward (ms)")
    ax2.plot(st["sparsity"], st["csr_ms"], "s:", color="C3", label="CSR forward (ms)")
    ax2.set_ylabel("forward pass of 512 inputs (ms)")
    ax2.grid(False)
    lines = ax.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
    ax.legend(lines, [h.get_label() for h in lines], loc="center left")
    ax.set_title("storage and inference time")
    fig.tight_layout()
    ctx.savefig(fig, "pruning.png")


def describe(results: dict) -> str:
    """The paragraph of docs/experiments.md, quoting the measured ``results``."""
    levels = results["sparsity_levels"]
    i90 = levels.index(0.9)
    le, ml = results["lenet5"], results["mlp"]
    st = results["storage"]
    j = st["sparsity"].index(0.9)
    return (
        f"Pruning by global weight magnitude (`rb.nn.utils.prune.global_unstructured`), test accuracy on the "
        f"digits as mean ± std over {len(results['seeds'])} seeds. At 90% sparsity the LeNet-5 keeps "
        f"{le['one_shot']['mean'][i90]:.3f} without retraining and {le['one_shot_finetuned']['mean'][i90]:.3f} "
        f"after fine-tuning (dense: {le['dense']['mean']:.3f}); the MLP {ml['one_shot']['mean'][i90]:.3f} and "
        f"{ml['one_shot_finetuned']['mean'][i90]:.3f} (dense: {ml['dense']['mean']:.3f}). Iterative pruning "
        f"reaches {le['iterative_sparsity']['mean'][-1]:.1%} sparsity at {le['iterative']['mean'][-1]:.3f} "
        f"(LeNet-5) and {ml['iterative_sparsity']['mean'][-1]:.1%} at {ml['iterative']['mean'][-1]:.3f} (MLP). "
        f"Compression needs a sparse format: at 90% sparsity CSR stores the MLP's weights in "
        f"{st['csr_bytes'][j] / 1024:.0f} KiB instead of {st['dense_bytes'][j] / 1024:.0f} KiB, and a SciPy CSR "
        f"forward pass takes {fmt(st['csr_ms'][j], 2)} ms against {fmt(st['dense_ms'][j], 2)} ms dense; "
        f"the masked model itself runs at dense speed."
    )
