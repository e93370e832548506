"""``rb.viz.plot_gradient_flow`` and ``rb.viz.plot_decision_boundary``: the numbers behind each
plot (layer gradient norms, predicted regions) checked against direct computation, and the
figures written to files."""

from __future__ import annotations

import numpy as np
import pytest

import rosenblatt as rb


def _deep_sigmoid_net():
    layers = []
    for _ in range(6):
        layers += [rb.nn.Linear(8, 8), rb.nn.Sigmoid()]
    return rb.nn.Sequential(*layers, rb.nn.Linear(8, 2))


def test_layer_gradient_norms_are_the_l2_norms_of_each_layers_gradients():
    model = _deep_sigmoid_net()
    x = rb.tensor(np.random.default_rng(0).standard_normal((16, 8)).astype(np.float32))
    rb.nn.functional.cross_entropy(model(x), np.arange(16) % 2).backward()
    norms = rb.viz.layer_gradient_norms(model)
    assert list(norms) == [str(i) for i in range(0, 13, 2)]  # the Linear layers, input side first
    first = model[0]
    expected = np.sqrt((first.weight.grad.numpy().astype(np.float64) ** 2).sum()
                       + (first.bias.grad.numpy().astype(np.float64) ** 2).sum())
    assert norms["0"] == pytest.approx(expected, rel=1e-6)
    # Six sigmoid layers shrink the gradient: the first layer's norm is far below the last's.
    assert norms["0"] < 0.05 * norms["12"]


def test_plot_gradient_flow_from_a_model_and_from_a_monitor(tmp_path):
    model = _deep_sigmoid_net()
    x = rb.tensor(np.random.default_rng(1).standard_normal((16, 8)).astype(np.float32))
    model(x).sum().backward()
    model[4].weight.grad = None  # a layer without a gradient is marked, not dropped
    model[4].bias.grad = None
    fig = rb.viz.plot_gradient_flow(model, tmp_path / "flow.png", title="gradient flow")
    assert (tmp_path / "flow.png").stat().st_size > 1000
    ax = fig.axes[0]
    heights = [p.get_height() for p in ax.patches]
    norms = rb.viz.layer_gradient_norms(model)
    assert len(heights) == len(norms) == 7
    np.testing.assert_allclose(np.nan_to_num(heights), list(norms.values()), rtol=1e-6)
    assert [t.get_text() for t in ax.get_xticklabels()] == list(norms)

    monitor = rb.train.GradientMonitor(warn_ratio=None)
    monitor.norms = {"0": [1e-4, 2e-4], "2": [1e-2, 3e-2], "4": [1.0, 0.5]}
    fig = rb.viz.plot_gradient_flow(monitor, tmp_path / "epochs.png")
    lines = fig.axes[0].get_lines()
    assert len(lines) == 2  # one per epoch
    np.testing.assert_allclose(lines[1].get_ydata(), [2e-4, 3e-2, 0.5])
    with pytest.raises(ValueError, match="no gradient norms"):
        rb.viz.plot_gradient_flow({}, tmp_path / "empty.png")
    with pytest.raises(TypeError, match="Module"):
        rb.viz.plot_gradient_flow(42)


def test_decision_regions_of_a_known_linear_classifier():
    layer = rb.nn.Linear(2, 1)
    with rb.no_grad():
        layer.weight.copy_(np.array([[1.0, -1.0]]))  # class 1 where x0 > x1
        layer.bias.zero_()
    x = np.array([[-1.0, -1.0], [1.0, 1.0]])
    xx, yy, classes = rb.viz.decision_regions(layer, x, steps=21, margin=0.0)
    assert xx.shape == yy.shape == classes.shape == (21, 21)
    np.testing.assert_array_equal(classes, (xx > yy).astype(np.int64))
    # several output columns: the arg-max; a probability output: threshold 0.5
    two = rb.viz.decision_regions(lambda t: rb.stack([t[:, 1], t[:, 0]], axis=1), x, steps=21, margin=0.0)[2]
    np.testing.assert_array_equal(two, classes)
    probability = rb.viz.decision_regions(lambda t: rb.sigmoid(t[:, :1] - t[:, 1:]), x, steps=21, margin=0.0)[2]
    np.testing.assert_array_equal(probability, classes)
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        rb.viz.decision_regions(layer, np.zeros((3, 3)))


def test_plot_decision_boundary_restores_training_mode_and_saves(tmp_path):
    model = rb.models.MLP([2, 8, 3], dropout=0.5)
    model.train()
    x = np.random.default_rng(2).standard_normal((30, 2))
    y = np.arange(30) % 3
    fig = rb.viz.plot_decision_boundary(model, x, y, tmp_path / "regions.png", steps=40, title="MLP")
    assert model.training  # evaluated in eval mode, then put back
    assert (tmp_path / "regions.png").stat().st_size > 1000
    assert fig.axes[0].get_title() == "MLP"
    with pytest.raises(ValueError, match="30 points but 29 labels"):
        rb.viz.plot_decision_boundary(model, x, y[:-1], tmp_path / "bad.png")
