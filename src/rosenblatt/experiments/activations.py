"""Activation functions and their derivatives, with the saturation regions marked.

Each derivative is computed by rosenblatt's autodiff (``backward`` through the layer), not by a
formula, so the figure also shows what the layers really backpropagate. A region is *saturated*
where ``|f'(x)| < 0.05`` all the way out to the edge of the plotted range (the flat tails; not the
isolated zero of GELU's or SiLU's slope at their minimum): there a unit passes back less than 5% of
the gradient it receives, which is what makes deep sigmoid networks lose their gradient.
"""

from __future__ import annotations

import numpy as np

import rosenblatt as rb
from rosenblatt import nn
from rosenblatt.experiments._common import Context, fmt, pyplot

TITLE = "Activation functions and their derivatives"
CLAIM = "Sigmoid and tanh saturate (vanishing derivative); ReLU-family units keep a unit slope"

SATURATION = 0.05


def activations() -> dict[str, nn.Module]:
    """The activation layers shown, in the lecture's order."""
    return {
        "step": nn.Step(), "sigmoid": nn.Sigmoid(), "tanh": nn.Tanh(), "relu": nn.ReLU(),
        "leaky_relu(0.1)": nn.LeakyReLU(0.1), "elu": nn.ELU(), "selu": nn.SELU(), "gelu": nn.GELU(),
        "silu": nn.SiLU(), "softplus": nn.Softplus(),
    }


def value_and_derivative(layer: nn.Module, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``f(x)`` and ``f'(x)`` (elementwise) by backpropagating a gradient of ones."""
    xt = rb.tensor(x, dtype=rb.float64, requires_grad=True)
    y = layer(xt)
    y.sum().backward()
    return y.numpy(), xt.grad.numpy()


def saturated_tails(dy: np.ndarray) -> np.ndarray:
    """Where ``|f'| < SATURATION`` on a run that reaches either end of the range."""
    flat = np.abs(dy) < SATURATION
    from_left = np.cumprod(flat).astype(bool)
    from_right = np.cumprod(flat[::-1])[::-1].astype(bool)
    return from_left | from_right


def run(ctx: Context) -> None:
    """Run the experiment: train, measure, fill ``ctx.results``, draw the figures."""
    x = np.linspace(-6, 6, 1201 if ctx.quick else 4801)
    table: dict[str, dict[str, float]] = {}
    curves = {}
    for name, layer in activations().items():
        y, dy = value_and_derivative(layer, x)
        curves[name] = (y, dy)
        saturated = saturated_tails(dy)
        table[name] = {
            "max_derivative": float(np.max(np.abs(dy))),
            "derivative_at_0": float(dy[np.argmin(np.abs(x))]),
            "derivative_at_minus4": float(dy[np.argmin(np.abs(x + 4))]),
            "derivative_at_plus4": float(dy[np.argmin(np.abs(x - 4))]),
            "saturated_fraction": float(np.mean(saturated)),
        }
    # how much of a gradient survives 10 layers at each unit's best point (the chain rule's product)
    for name in table:
        table[name]["best_case_gain_10_layers"] = table[name]["max_derivative"] ** 10
    ctx.results.update({"range": [-6, 6], "saturation_threshold": SATURATION, "activations": table})
    sig, tanh, relu = table["sigmoid"], table["tanh"], table["relu"]
    ctx.say(f"sigmoid: max derivative {fmt(sig['max_derivative'])} (so at best 0.25^10 = "
            f"{fmt(sig['best_case_gain_10_layers'])} of a gradient survives 10 layers); saturated on "
            f"{sig['saturated_fraction']:.0%} of [-6, 6], f'(4) = {fmt(sig['derivative_at_plus4'])}")
    ctx.say(f"tanh: max derivative {fmt(tanh['max_derivative'])}, saturated on {tanh['saturated_fraction']:.0%}; "
            f"relu: derivative {fmt(relu['derivative_at_plus4'])} for every x > 0, zero for x < 0 "
            f"({relu['saturated_fraction']:.0%})")
    ctx.say(f"step: derivative 0 everywhere ({table['step']['saturated_fraction']:.0%} saturated): "
            f"gradient descent cannot train a threshold unit")

    plt = pyplot()
    fig, axes = plt.subplots(2, 5, figsize=(15, 5.6), sharex=True)
    for ax, (name, (y, dy)) in zip(axes.ravel(), curves.items()):
        saturated = saturated_tails(dy)
        ax.fill_between(x, -1.5, 3.5, where=saturated, color="0.85", step="mid", label="saturated |f'| < 0.05")
        ax.plot(x, y, lw=1.8, label="f(x)")
        ax.plot(x, dy, "--", lw=1.5, label="f'(x) (autodiff)")
        ax.set_ylim(-1.5, 3.5)
        ax.set_title(f"{name}  max f' = {table[name]['max_derivative']:.2f}")
    axes[0, 0].legend(loc="upper left")
    for ax in axes[1]:
        ax.set_xlabel("x")
    fig.tight_layout()
    ctx.savefig(fig, "activations.png")


def describe(results: dict) -> str:
    """The paragraph of docs/experiments.md, quoting the measured ``results``."""
    a = results["activations"]
    return (
        f"Each panel shows an activation and its derivative as backpropagated by the layer; the grey "
        f"bands are where the derivative is below {results['saturation_threshold']}. The sigmoid's "
        f"derivative peaks at {fmt(a['sigmoid']['max_derivative'])} and is saturated on "
        f"{a['sigmoid']['saturated_fraction']:.0%} of [-6, 6] (f'(4) = {fmt(a['sigmoid']['derivative_at_plus4'])}); "
        f"tanh peaks at {fmt(a['tanh']['max_derivative'])} but saturates on {a['tanh']['saturated_fraction']:.0%}. "
        f"ReLU passes a derivative of exactly 1 for every positive input (and 0 below: the dead half), "
        f"LeakyReLU, ELU, SELU, GELU and SiLU keep a slope of order 1 on the positive side, and the "
        f"perceptron's step has derivative 0 everywhere."
    )
