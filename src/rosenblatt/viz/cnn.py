"""Pictures of what a convolutional network learned: its filters and its feature maps.

matplotlib is imported inside the functions (with the non-interactive Agg backend when a file
is written), so importing rosenblatt stays cheap.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rosenblatt.core import Tensor, no_grad
from rosenblatt.viz._common import finish as _finish
from rosenblatt.viz._common import pyplot as _pyplot
from rosenblatt.viz._common import to_numpy as _as_array


def _rescale(image: np.ndarray) -> np.ndarray:
    """Map to [0, 1] (a constant image becomes mid-grey) so each tile uses the full grey range."""
    low, high = float(image.min()), float(image.max())
    if high - low < 1e-12:
        return np.full_like(image, 0.5, dtype=np.float64)
    return (image - low) / (high - low)


def _grid(count: int, columns: int | None) -> tuple[int, int]:
    columns = columns or min(count, max(1, math.ceil(math.sqrt(count))))
    return math.ceil(count / columns), columns



def plot_filters(conv_layer_or_weight: Any, path: str | Path | None = None, max_filters: int = 64,
                 columns: int | None = None, channel: int | None = None, title: str | None = None) -> Any:
    """Draw the kernels of a convolution as a grid of small images, one per output channel.

    Args:
        conv_layer_or_weight: a ``Conv2d`` (or any module with a 4-D ``weight``), or a weight tensor /
            array of shape ``(out_channels, in_channels, kH, kW)``.
        path: where to write the PNG; ``None`` returns the figure without saving it.
        max_filters: draw at most this many output channels.
        columns: tiles per row (default: a near-square grid).
        channel: the input channel to show; by default a 3-channel kernel is drawn in colour and
            any other is averaged over its input channels.
        title: the figure title.

    Each tile is scaled to its own min..max range. Returns the matplotlib ``Figure``.
    """
    weight = getattr(conv_layer_or_weight, "weight", conv_layer_or_weight)
    weight = _as_array(weight)
    if weight.ndim != 4:
        raise ValueError(f"plot_filters: expected a Conv2d or a weight of shape (out, in, kH, kW), got shape {weight.shape}")
    if channel is not None and not 0 <= channel < weight.shape[1]:
        raise IndexError(f"plot_filters: channel {channel} out of range for {weight.shape[1]} input channels")
    if max_filters < 1:
        raise ValueError(f"plot_filters: max_filters must be positive, got {max_filters}")
    weight = weight[:max_filters].astype(np.float64)
    rows, columns = _grid(len(weight), columns)
    plt = _pyplot(path)
    fig, axes = plt.subplots(rows, columns, figsize=(1.2 * columns, 1.2 * rows + 0.4), squeeze=False)
    for index, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if index >= len(weight):
            continue
        kernel = weight[index]
        if channel is not None:
            ax.imshow(_rescale(kernel[channel]), cmap="gray", interpolation="nearest")
        elif kernel.shape[0] == 3:
            ax.imshow(_rescale(kernel.transpose(1, 2, 0)), interpolation="nearest")
        else:
            ax.imshow(_rescale(kernel.mean(axis=0)), cmap="gray", interpolation="nearest")
        ax.set_title(str(index), fontsize=7)
    fig.suptitle(title or f"{weight.shape[0]} filters {weight.shape[2]}x{weight.shape[3]}")
    return _finish(fig, plt, path)


def capture_feature_maps(model: Any, x: Any, layer_names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Run ``model(x)`` without gradients and return the outputs of the named sub-modules
    (``dict(model.named_modules())`` names such as ``"conv1"`` or ``"layer1.0"``), as NumPy arrays.

    By default every ``Conv2d`` is captured. Forward hooks are removed before returning.
    """
    from rosenblatt import nn

    modules = dict(model.named_modules())
    if layer_names is None:
        layer_names = [name for name, m in modules.items() if isinstance(m, nn.Conv2d)]
        if not layer_names:
            raise ValueError(f"capture_feature_maps: {type(model).__name__} has no Conv2d layer; pass layer_names")
    unknown = [name for name in layer_names if name not in modules]
    if unknown:
        raise ValueError(f"capture_feature_maps: no sub-module named {unknown} in {type(model).__name__}; "
                         f"some names: {[n for n in modules if n][:12]}")
    captured: dict[str, np.ndarray] = {}

    def hook_for(name: str):
        def hook(module: Any, inputs: tuple, output: Any) -> None:
            captured[name] = _as_array(output[0] if isinstance(output, (tuple, list)) else output)
        return hook

    handles = [modules[name].register_forward_hook(hook_for(name)) for name in layer_names]
    try:
        with no_grad():
            model(x if isinstance(x, Tensor) else Tensor(np.asarray(x)))
    finally:
        for handle in handles:
            handle.remove()
    return {name: captured[name] for name in layer_names if name in captured}


def plot_feature_maps(model: Any, x: Any, layer_names: Sequence[str] | None = None, path: str | Path | None = None,
                      max_channels: int = 16, sample: int = 0) -> Any:
    """Draw the feature maps (activations) of ``model`` on one input image: one row per layer,
    one tile per channel (at most ``max_channels``).

    Args:
        model: a module; it runs forward once under ``no_grad`` (call ``model.eval()`` first for
            inference-mode batch norm and dropout).
        x: an input batch ``(N, C, H, W)``; row ``sample`` of it is drawn.
        layer_names: names of sub-modules whose outputs to draw (default: every ``Conv2d``).
        path: where to write the PNG; ``None`` returns the figure without saving it.

    Outputs that are not 4-D (e.g. logits) are drawn as one bar chart row. Returns the ``Figure``.
    """
    maps = capture_feature_maps(model, x, layer_names)
    if not maps:
        raise ValueError("plot_feature_maps: none of the chosen layers ran during forward")
    batch = next(iter(maps.values())).shape[0]
    if not 0 <= sample < batch:
        raise IndexError(f"plot_feature_maps: sample {sample} out of range for a batch of {batch}")
    columns = max(min(max_channels, m.shape[1]) if m.ndim == 4 else 1 for m in maps.values())
    plt = _pyplot(path)
    fig, axes = plt.subplots(len(maps), columns, figsize=(1.3 * columns + 1.0, 1.4 * len(maps) + 0.3),
                             squeeze=False)
    for row, (name, value) in enumerate(maps.items()):
        value = value[sample].astype(np.float64)
        for col in range(columns):
            ax = axes[row, col]
            ax.set_xticks([])
            ax.set_yticks([])
            if value.ndim == 3 and col < min(max_channels, value.shape[0]):
                ax.imshow(_rescale(value[col]), cmap="viridis", interpolation="nearest")
            elif value.ndim != 3 and col == 0:
                flat = value.reshape(-1)
                ax.bar(np.arange(len(flat)), flat)
            else:
                ax.set_axis_off()
        shape = "x".join(str(s) for s in value.shape)
        axes[row, 0].set_ylabel(f"{name}\n{shape}", fontsize=7, rotation=0, ha="right", va="center")
    fig.suptitle(f"feature maps of {type(model).__name__}")
    return _finish(fig, plt, path)
