"""Forecasting sine waves with an LSTM: next-step prediction, then a free-running forecast.

    python examples/sine_forecasting.py [--quick] [--steps 600] [--out DIR]

The training sequences are sines of random frequency and phase (with a little noise); the network
reads a sequence and predicts each next value. After training it is given the first 40 steps of
unseen waves and forecasts the following 30 by feeding its own predictions back in (carrying the
LSTM state between calls). Prints the one-step test MSE against the "repeat the last value"
baseline, and the free-running forecast MSE against the same baseline; with --out, writes
DIR/sine_forecast.png.
"""

from __future__ import annotations

import argparse
import os

import numpy as np

import rosenblatt as rb
from rosenblatt import nn
from rosenblatt.data.datasets import sine_sequences


class Forecaster(nn.Module):
    """LSTM over the sequence, a linear read-out at every step."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(1, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x, state=None):
        out, state = self.lstm(x, state)
        return self.head(out), state


def forecast(model: Forecaster, context: np.ndarray, horizon: int) -> np.ndarray:
    """Read ``context`` (N, T, 1), then predict ``horizon`` steps feeding predictions back."""
    with rb.no_grad():
        prediction, state = model(rb.tensor(context))
        value = prediction[:, -1:]
        outputs = []
        for _ in range(horizon):
            outputs.append(value.numpy())
            value, state = model(value, state)
    return np.concatenate(outputs, axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer steps (seconds)")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="folder for sine_forecast.png")
    args = parser.parse_args()
    if args.quick:
        args.steps = 200
    rb.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    x_train, y_train = sine_sequences(n=2000, T=50, noise=0.02, seed=args.seed)
    x_test, y_test = sine_sequences(n=200, T=50, seed=args.seed + 1)
    model = Forecaster(args.hidden)
    optimizer = rb.optim.Adam(model.parameters(), lr=0.01)
    loss_fn = nn.MSELoss()
    for step in range(1, args.steps + 1):
        idx = rng.integers(0, len(x_train), 64)
        prediction, _ = model(rb.tensor(x_train[idx]))
        loss = loss_fn(prediction, rb.tensor(y_train[idx]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % max(args.steps // 4, 1) == 0:
            print(f"step {step:4d}  train MSE {float(loss.item()):.5f}")

    with rb.no_grad():
        one_step = float(((model(rb.tensor(x_test))[0].numpy() - y_test) ** 2).mean())
    persistence = float(((x_test - y_test) ** 2).mean())
    print(f"one-step test MSE {one_step:.5f}   (repeat-last-value baseline {persistence:.5f})")

    # free-running forecast of 30 steps after a 40-step context
    waves, _ = sine_sequences(n=200, T=71, seed=args.seed + 2)
    context, future = waves[:, :40], waves[:, 40:70]
    predicted = forecast(model, context, horizon=30)
    forecast_mse = float(((predicted - future) ** 2).mean())
    hold_mse = float(((context[:, -1:] - future) ** 2).mean())
    print(f"30-step free-running forecast MSE {forecast_mse:.4f}   (hold-last-value baseline {hold_mse:.4f})")

    if args.out:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        os.makedirs(args.out, exist_ok=True)
        fig, axes = plt.subplots(3, 1, figsize=(7, 6), sharex=True)
        for k, ax in enumerate(axes):
            ax.plot(range(70), np.concatenate([context[k, :, 0], future[k, :, 0]]), color="grey", label="true")
            ax.plot(range(40, 70), predicted[k, :, 0], color="C1", label="forecast")
            ax.axvline(39.5, color="k", lw=0.5)
        axes[0].legend(loc="upper right")
        axes[-1].set_xlabel("time step")
        fig.suptitle("LSTM free-running forecast after a 40-step context")
        path = os.path.join(args.out, "sine_forecast.png")
        fig.savefig(path, dpi=100, bbox_inches="tight")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
