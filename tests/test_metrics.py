"""rb.train.metrics against scikit-learn, and History."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from rosenblatt.train import History
from rosenblatt.train import metrics as M


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_roc_auc_equals_sklearn_on_random_data(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=300)
    score = np.round(rng.normal(size=300) + 0.8 * y, 1)  # rounding creates ties
    assert M.roc_auc(y, score) == pytest.approx(skm.roc_auc_score(y, score), abs=1e-12)
    fpr, tpr, thresholds = M.roc_curve(y, score)
    sk_fpr, sk_tpr, _ = skm.roc_curve(y, score, drop_intermediate=False)
    assert np.allclose(fpr, sk_fpr) and np.allclose(tpr, sk_tpr)
    assert thresholds[0] == np.inf and np.all(np.diff(thresholds[1:]) < 0)
    probs = rng.dirichlet(np.ones(4), size=300)
    labels = rng.integers(0, 4, size=300)
    assert M.roc_auc(labels, probs) == pytest.approx(skm.roc_auc_score(labels, probs, multi_class="ovr"), abs=1e-12)


def test_accuracy_binary_and_multiclass():
    logits = np.array([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    assert M.accuracy([0, 1, 1, 0], logits) == 0.75
    assert M.accuracy(np.eye(3)[[0, 1, 1, 0]], logits) == 0.75  # one-hot targets
    probs = np.array([0.9, 0.2, 0.6, 0.4])
    assert M.accuracy([1, 0, 0, 0], probs) == 0.75
    assert M.accuracy(np.array([[1.0], [0.0], [0.0], [0.0]]), probs[:, None]) == 0.75
    assert M.accuracy([1, 0, 0, 0], np.log(probs / (1 - probs)), threshold=0.0) == 0.75
    assert M.is_binary_output(probs[:, None]) and not M.is_binary_output(logits)
    distinct = np.array([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [0.0, 0.5, 1.0], [1.0, 0.5, 0.0]])
    assert M.top_k_accuracy([2, 2, 0, 1], distinct, k=2) == 0.5
    seg = np.zeros((2, 3, 4, 4))
    seg[:, 1] = 1.0
    assert M.accuracy(np.ones((2, 4, 4), int), seg) == 1.0


def test_precision_recall_f1_confusion_equal_sklearn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, size=400)
    scores = rng.normal(size=(400, 4)) + 1.5 * np.eye(4)[y]
    pred = scores.argmax(1)
    for average in ("macro", "micro", "weighted"):
        assert M.precision(y, scores, average) == pytest.approx(skm.precision_score(y, pred, average=average))
        assert M.recall(y, scores, average) == pytest.approx(skm.recall_score(y, pred, average=average))
        assert M.f1(y, scores, average) == pytest.approx(skm.f1_score(y, pred, average=average))
    assert np.array_equal(M.confusion_matrix(y, scores), skm.confusion_matrix(y, pred))
    yb = rng.integers(0, 2, size=200)
    pb = rng.random(200)
    assert M.f1(yb, pb) == pytest.approx(skm.f1_score(yb, pb > 0.5))
    assert M.precision(yb, pb) == pytest.approx(skm.precision_score(yb, pb > 0.5))


def test_regression_metrics_equal_sklearn():
    rng = np.random.default_rng(0)
    y = rng.normal(size=(100, 2))
    p = y + 0.3 * rng.normal(size=(100, 2))
    assert M.mse(y, p) == pytest.approx(skm.mean_squared_error(y, p))
    assert M.mae(y, p) == pytest.approx(skm.mean_absolute_error(y, p))
    assert M.r2(y, p) == pytest.approx(skm.r2_score(y, p))
    assert M.r2(y[:, 0], p[:, :1]) == pytest.approx(skm.r2_score(y[:, 0], p[:, 0]))


def test_metric_errors_and_names():
    with pytest.raises(ValueError, match="3 targets for 4 outputs"):
        M.mse(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="do not match"):
        M.mse(np.zeros((3, 2)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="both positive and negative"):
        M.roc_auc(np.ones(5), np.arange(5.0))
    with pytest.raises(ValueError, match="unknown metric"):
        M.get_metric("accurracy")
    name, fn = M.get_metric("top3_accuracy")
    assert name == "top3_accuracy" and fn([0], np.array([[0.1, 0.5, 0.3, 0.4]])) == 0.0


def test_history_csv_plot_and_best(tmp_path):
    h = History()
    h.append(0, {"loss": 1.0, "accuracy": 0.5, "val_loss": 1.2, "val_accuracy": 0.4, "lr": 0.1})
    h.append(1, {"loss": 0.5, "accuracy": 0.8, "val_loss": 0.9, "val_accuracy": 0.7, "lr": 0.01})
    assert h.history["val_loss"] == [1.2, 0.9] and len(h) == 2
    assert h.best("val_accuracy") == (1, 0.7) and h.best("val_loss") == (1, 0.9)
    text = h.to_csv(tmp_path / "h.csv")
    assert (tmp_path / "h.csv").read_text() == text
    assert text.splitlines()[0] == "epoch,loss,accuracy,val_loss,val_accuracy,lr"
    assert text.splitlines()[2].startswith("1,0.5,0.8,0.9,0.7")
    fig = h.plot(tmp_path / "curves.png")
    assert (tmp_path / "curves.png").stat().st_size > 1000
    assert [ax.get_title() for ax in fig.axes] == ["loss", "accuracy", "lr"]
    assert len(fig.axes[0].lines) == 2  # train and validation


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_binary_labels_follow_sklearn_defaults(seed):
    # 0/1 label predictions (ints or bools) default to average="binary" (the positive class), as
    # sklearn.metrics.f1_score(y_true, y_pred) does; multi-class labels default to "macro".
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=150)
    pred = np.where(rng.random(150) < 0.8, y, 1 - y)
    for fn, reference in ((M.f1, skm.f1_score), (M.precision, skm.precision_score), (M.recall, skm.recall_score)):
        assert fn(y, pred) == pytest.approx(reference(y, pred))
        assert fn(y, pred.astype(bool)) == pytest.approx(reference(y, pred.astype(bool)))
        assert fn(y.astype(np.float32), pred) == pytest.approx(reference(y, pred))
    y3, p3 = rng.integers(0, 3, size=150), rng.integers(0, 3, size=150)
    assert M.f1(y3, p3) == pytest.approx(skm.f1_score(y3, p3, average="macro"))
    # Nothing predicted positive: 0.0, as scikit-learn's zero_division default.
    assert M.f1(np.array([0, 1, 1]), np.array([0, 0, 0])) == skm.f1_score([0, 1, 1], [0, 0, 0], zero_division=0.0)
