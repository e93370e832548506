"""The perceptron and the multi-layer perceptron: learning tests that a wrong rule or gradient
cannot pass (separable data vs XOR; scikit-learn's digits to 95% test accuracy)."""

from __future__ import annotations

import numpy as np
import pytest

import rosenblatt as rb
from rosenblatt.models import MLP, Perceptron
from rosenblatt.nn import functional as F


def test_perceptron_converges_on_linearly_separable_data():
    rng = np.random.default_rng(0)
    w_true = np.array([2.0, -1.0, 0.5])
    x = rng.uniform(-1, 1, (200, 3))
    margin = x @ w_true + 0.3
    keep = np.abs(margin) > 0.1  # a margin guarantees convergence (Novikoff)
    x, y = x[keep], (margin[keep] > 0).astype(np.int64)
    model = Perceptron(3)
    history = model.fit(x, y, epochs=100, lr=0.5)
    assert history.converged and model.converged
    assert history.errors[-1] == 0 and history.epochs == len(history.errors) < 100
    np.testing.assert_array_equal(model.predict(x), y)
    assert model(rb.tensor(x.astype(np.float32))).shape == (len(x),)
    assert [name for name, _ in model.named_parameters()] == ["weight", "bias"]


def test_perceptron_learns_and_but_not_xor():
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64)
    model = Perceptron(2)
    assert model.fit(x, [0, 0, 0, 1], epochs=50).converged
    np.testing.assert_array_equal(model.predict(x), [0, 0, 0, 1])
    xor = Perceptron(2)
    with pytest.warns(RuntimeWarning, match="did not converge"):
        history = xor.fit(x, [0, 1, 1, 0], epochs=50)
    assert not history.converged and len(history.errors) == 50 and min(history.errors) > 0
    assert (xor.predict(x) != np.array([0, 1, 1, 0])).any()


def test_perceptron_accepts_minus_one_labels_and_rejects_bad_input():
    x = np.array([[1.0, 1.0], [-1.0, -1.0]])
    assert Perceptron(2).fit(x, [1, -1]).converged
    with pytest.raises(ValueError, match="labels must be 0/1"):
        Perceptron(2).fit(x, [2, 0])
    with pytest.raises(ValueError, match=r"Perceptron\(2\).*\(N, 2\)"):
        Perceptron(2).predict(np.ones((3, 5)))


def _digits():
    from sklearn.datasets import load_digits

    data = load_digits()
    x = (data.data / 16.0).astype(np.float32)
    y = data.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order], y[order]
    return x[:1400], y[:1400], x[1400:], y[1400:]


def _sgd_train(model, x, y, epochs, lr=0.1, momentum=0.9, batch=32, seed=0):
    """A plain mini-batch SGD loop with momentum (written here, independent of rb.optim)."""
    rng = np.random.default_rng(seed)
    params = list(model.parameters())
    velocity = [np.zeros_like(p.data) for p in params]
    for _ in range(epochs):
        model.train()
        order = rng.permutation(len(x))
        for start in range(0, len(x), batch):
            idx = order[start:start + batch]
            loss = F.cross_entropy(model(rb.tensor(x[idx])), y[idx])
            model.zero_grad()
            loss.backward()
            with rb.no_grad():
                for p, v in zip(params, velocity):
                    v *= momentum
                    v += p.grad.data
                    p.data -= lr * v
    return model


def _accuracy(model, x, y):
    model.eval()
    with rb.no_grad():
        return float((model(rb.tensor(x)).numpy().argmax(1) == y).mean())


def test_mlp_learns_digits_to_95_percent():
    rb.manual_seed(0)
    x, y, x_test, y_test = _digits()
    model = _sgd_train(MLP([64, 128, 10]), x, y, epochs=6)
    assert _accuracy(model, x_test, y_test) >= 0.95


def test_mlp_with_batch_norm_dropout_and_residual_learns_digits():
    rb.manual_seed(1)
    x, y, x_test, y_test = _digits()
    model = MLP([64, 96, 96, 10], activation="tanh", dropout=0.1, batch_norm=True, residual=True)
    model = _sgd_train(model, x, y, epochs=6, lr=0.05)
    assert _accuracy(model, x_test, y_test) >= 0.95


def test_mlp_structure_residual_and_errors():
    model = MLP([5, 8, 8, 3], activation="gelu", residual=True)
    assert model._skips == [False, True]
    x = rb.randn(4, 5)
    # The residual block adds its input: removing the skip changes the output by exactly h.
    h = model.hidden[0](x)
    expected = model.output(h + model.hidden[1](h))
    np.testing.assert_allclose(model(x).numpy(), expected.numpy(), rtol=1e-6)
    assert sum(p.numel() for p in model.parameters()) == 5 * 8 + 8 + 8 * 8 + 8 + 8 * 3 + 3
    with pytest.raises(ValueError, match=r"MLP: expected input of shape \(N, 5\)"):
        model(rb.randn(4, 6))
    with pytest.raises(ValueError, match="unknown activation"):
        MLP([2, 3, 1], activation="wiggle")
    with pytest.raises(ValueError, match="sizes"):
        MLP([4])


@pytest.mark.parametrize("name, layer", [("relu6", "ReLU6"), ("hardtanh", "Hardtanh"), ("hardswish", "Hardswish"),
                                         ("hardsigmoid", "Hardsigmoid"), ("mish", "Mish")])
def test_mlp_takes_the_hard_activations_by_name(name, layer):
    model = MLP([5, 8, 3], activation=name)
    assert [type(m).__name__ for m in model.modules()].count(layer) == 1
    assert model(rb.randn(4, 5)).shape == (4, 3)


def test_models_registry():
    assert isinstance(rb.models.get_model("mlp", sizes=[4, 6, 2]), MLP)
    assert isinstance(rb.models.get_model("perceptron", in_features=3), Perceptron)
    assert "mlp" in rb.models.MODELS and "perceptron" in rb.models.MODELS
    with pytest.raises(ValueError, match="unknown model"):
        rb.models.get_model("nonexistent")
