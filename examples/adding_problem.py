"""The adding problem (Hochreiter & Schmidhuber 1997): an LSTM learns long-range memory, a plain RNN
does not.

    python examples/adding_problem.py [--quick] [--T 50] [--steps 1500]

Each sequence has T steps of (value, marker); the target is the sum of the two values whose marker
is 1. Always predicting the mean (1.0) gives an MSE of about 0.167 (the variance of a sum of two
U(0, 1) values): a network that has not learned to remember stays there. Prints the test MSE of an
LSTM and of an Elman RNN of the same size, trained identically, every few hundred steps.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import rosenblatt as rb
from rosenblatt import nn
from rosenblatt.data.datasets import adding_problem


class Regressor(nn.Module):
    """A recurrent layer reading the sequence; its last hidden state feeds a linear read-out."""

    def __init__(self, cell: str, hidden: int) -> None:
        super().__init__()
        layer = {"lstm": nn.LSTM, "rnn": nn.RNN}[cell]
        self.rnn = layer(2, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x):
        _, state = self.rnn(x)
        h = state[0] if isinstance(state, tuple) else state
        return self.head(h[-1])


def evaluate(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    with rb.no_grad():
        return float(((model(rb.tensor(x)).numpy() - y) ** 2).mean())


def train(cell: str, args, data) -> float:
    rb.manual_seed(args.seed)
    x_train, y_train, x_test, y_test = data
    model = Regressor(cell, args.hidden)
    optimizer = rb.optim.Adam(model.parameters(), lr=args.lr)
    loss_fn = nn.MSELoss()
    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()
    for step in range(1, args.steps + 1):
        idx = rng.integers(0, len(x_train), args.batch)
        loss = loss_fn(model(rb.tensor(x_train[idx])), rb.tensor(y_train[idx]))
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if step % args.report == 0 or step == args.steps:
            print(f"  {cell.upper():4s} step {step:5d}  train loss {float(loss.item()):.4f}  "
                  f"test MSE {evaluate(model, x_test, y_test):.4f}  ({time.perf_counter() - start:.1f} s)")
    return evaluate(model, x_test, y_test)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="short sequences, few steps (seconds)")
    parser.add_argument("--T", type=int, default=50, help="sequence length")
    parser.add_argument("--steps", type=int, default=1500, help="training steps")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.005)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.quick:
        args.T, args.steps, args.hidden = 40, 600, 32
        args.lr = 0.01
    args.report = max(args.steps // 5, 1)

    x_train, y_train = adding_problem(T=args.T, n=10000, seed=args.seed)
    x_test, y_test = adding_problem(T=args.T, n=1000, seed=args.seed + 1)
    baseline = float(((y_test - y_train.mean()) ** 2).mean())
    print(f"adding problem, T={args.T}: predict-the-mean baseline MSE {baseline:.4f}")
    data = (x_train, y_train, x_test, y_test)
    results = {cell: train(cell, args, data) for cell in ("lstm", "rnn")}
    print(f"final test MSE  LSTM {results['lstm']:.4f}   RNN {results['rnn']:.4f}   baseline {baseline:.4f}")


if __name__ == "__main__":
    main()
