"""Long-term memory: the adding problem for growing sequence lengths, RNN vs LSTM vs GRU.

The adding problem (Hochreiter & Schmidhuber 1997): each step carries a random value and a marker;
two steps are marked, one in each half of the sequence, and the target is the sum of their two
values. Predicting the mean (1.0) gives a squared error of about 0.167; doing better requires
carrying a value across up to ``T`` steps. A plain tanh RNN multiplies its gradient by the recurrent
Jacobian at every step and loses the signal as ``T`` grows (Bengio, Simard & Frasconi 1994); the
LSTM's additive cell state and the GRU's gated update keep it.
"""

from __future__ import annotations

import numpy as np

import rosenblatt as rb
from rosenblatt import nn
from rosenblatt.data.datasets import adding_problem
from rosenblatt.experiments._common import Context, fmt, pyplot

TITLE = "RNN memory: the adding problem, RNN vs LSTM vs GRU"
CLAIM = "A plain RNN forgets over long sequences; LSTM and GRU solve the adding problem"

BASELINE = 1.0 / 6.0  # squared error of always predicting the mean: Var(u1 + u2) = 2/12


class SequenceRegressor(nn.Module):
    """A recurrent layer read out by a linear unit at the last step.

    Shape:
        - Input: ``(N, T, 2)`` (batch first)
        - Output: ``(N, 1)``
    """

    def __init__(self, kind: str, hidden_size: int) -> None:
        super().__init__()
        self.rnn = {"RNN": nn.RNN, "LSTM": nn.LSTM, "GRU": nn.GRU}[kind](2, hidden_size, batch_first=True)
        self.head = nn.Linear(hidden_size, 1)

    def forward(self, x: rb.Tensor) -> rb.Tensor:
        """Logits (or the prediction) for the batch ``x``."""
        output, _ = self.rnn(x)
        return self.head(output[:, -1])


def run(ctx: Context) -> None:
    """Run the experiment: train, measure, fill ``ctx.results``, draw the figures."""
    lengths = [10, 30] if ctx.quick else [10, 25, 50, 100]
    steps = 500 if ctx.quick else 1500
    hidden = 16 if ctx.quick else 32
    kinds = ["RNN", "LSTM", "GRU"]
    # initial weights and training batches change with the seed; the quick run keeps one seed for time
    seeds = [ctx.seed] if ctx.quick else [ctx.seed + i for i in range(3)]
    test_mse: dict[str, list[float]] = {k: [] for k in kinds}
    test_mse_std: dict[str, list[float]] = {k: [] for k in kinds}
    curves: dict[str, dict[str, list[float]]] = {str(t): {} for t in lengths}
    for length in lengths:
        x_test, y_test = adding_problem(length, 500, seed=ctx.seed + 10_000 + length)
        for kind in kinds:
            per_seed = []
            for seed in seeds:
                rb.manual_seed(seed)
                model = SequenceRegressor(kind, hidden)
                optimizer = rb.optim.Adam(model.parameters(), lr=1e-2)
                rng = np.random.default_rng(seed)  # the same training batches for all three
                losses = []
                for _ in range(steps):
                    x, y = adding_problem(length, 64, seed=int(rng.integers(1 << 30)))
                    loss = nn.functional.mse_loss(model(rb.tensor(x)), rb.tensor(y))
                    optimizer.zero_grad()
                    loss.backward()
                    nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                    optimizer.step()
                    losses.append(float(loss.item()))
                with rb.no_grad():
                    per_seed.append(float(nn.functional.mse_loss(model(rb.tensor(x_test)), rb.tensor(y_test)).item()))
                if seed == seeds[0]:
                    curves[str(length)][kind] = losses
            test_mse[kind].append(float(np.mean(per_seed)))
            test_mse_std[kind].append(float(np.std(per_seed)))

    solved = {k: [t for t, e in zip(lengths, v) if e < 0.25 * BASELINE] for k, v in test_mse.items()}
    ctx.results.update({"lengths": lengths, "steps": steps, "hidden_size": hidden, "baseline_mse": BASELINE,
                        "seeds": seeds, "test_mse": test_mse, "test_mse_std": test_mse_std, "solved_lengths": solved,
                        "train_loss_every_10_steps": {t: {k: v[::10] for k, v in c.items()} for t, c in curves.items()}})
    for index, length in enumerate(lengths):
        ctx.say(f"T = {length}: test MSE (mean ± std over {len(seeds)} seed(s)) "
                + ", ".join(f"{k} {fmt(test_mse[k][index], 4)} ± {fmt(test_mse_std[k][index], 4)}" for k in kinds)
                + f" (predicting the mean: {fmt(BASELINE)})")
    ctx.say("learned (MSE below a quarter of the baseline) for T in: " + "; ".join(f"{k} {v}" for k, v in solved.items()))

    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    for kind in kinds:
        axes[0].semilogy(lengths, test_mse[kind], "o-", label=kind)
    axes[0].axhline(BASELINE, color="k", ls="--", lw=1, label="predict the mean (0.167)")
    axes[0].set_xlabel("sequence length T")
    axes[0].set_ylabel("test MSE")
    axes[0].set_title(f"after {steps} Adam steps, hidden size {hidden}")
    axes[0].legend()
    longest = str(lengths[-1])
    window = 25
    for kind, losses in curves[longest].items():
        smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
        axes[1].semilogy(np.arange(window, len(losses) + 1), smooth, label=kind)
    axes[1].axhline(BASELINE, color="k", ls="--", lw=1)
    axes[1].set_xlabel("training step (batch 64)")
    axes[1].set_ylabel("training MSE (moving average)")
    axes[1].set_title(f"learning curves at T = {longest}")
    axes[1].legend()
    fig.tight_layout()
    ctx.savefig(fig, "rnn_memory.png")


def describe(results: dict) -> str:
    """The paragraph of docs/experiments.md, quoting the measured ``results``."""
    lengths, mse = results["lengths"], results["test_mse"]
    last = len(lengths) - 1
    return (
        f"Each model is trained for {results['steps']} Adam steps with hidden size {results['hidden_size']}; "
        f"predicting the mean scores {fmt(results['baseline_mse'])}. At T = {lengths[0]} all three learn "
        f"(RNN {fmt(mse['RNN'][0], 4)}, LSTM {fmt(mse['LSTM'][0], 4)}, GRU {fmt(mse['GRU'][0], 4)}); at "
        f"T = {lengths[last]} the plain RNN stays at the baseline ({fmt(mse['RNN'][last], 4)}) while the LSTM "
        f"({fmt(mse['LSTM'][last], 4)}) and the GRU ({fmt(mse['GRU'][last], 4)}) still carry the two values "
        f"across the sequence. Lengths learned (test MSE below a quarter of the baseline): RNN {results['solved_lengths']['RNN']}, LSTM "
        f"{results['solved_lengths']['LSTM']}, GRU {results['solved_lengths']['GRU']}."
    )
