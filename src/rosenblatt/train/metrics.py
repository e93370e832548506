"""Metrics on NumPy arrays, with scikit-learn's argument order: ``metric(y_true, y_pred)``.

Classification metrics accept model outputs directly:

* **multi-class** outputs ``(N, C)`` with ``C > 1`` (logits, probabilities; also ``(N, C, ...)`` for
  per-pixel or per-step classes, classes on axis 1): the prediction is the arg-max; targets are class
  indices ``(N, ...)`` or one-hot/probability rows ``(N, C, ...)``.
* **binary** outputs ``(N,)`` or ``(N, 1)``: scores compared with ``threshold`` (0.5 for
  probabilities; use 0.0 for logits — the Trainer does so when the loss is ``BCEWithLogitsLoss``).
* integer outputs are taken as predicted labels.

:func:`accuracy` chooses between the two from the output shape; the Trainer names the history entry
accordingly: ``"accuracy"`` (multi-class) or ``"binary_accuracy"`` (binary).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rosenblatt.data.dataset import to_numpy


def is_binary_output(y_pred: Any) -> bool:
    """True when outputs of this shape are binary scores: ``(N,)`` or ``(N, 1)``."""
    shape = np.shape(y_pred)
    return len(shape) <= 1 or (len(shape) == 2 and shape[1] == 1)


def _labels(y_true: np.ndarray, y_pred: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Predicted and true class labels, both as flat int arrays."""
    if y_pred.dtype.kind in "iub":
        pred = y_pred.astype(np.int64)
    elif is_binary_output(y_pred):
        pred = (y_pred > threshold).astype(np.int64)
    else:
        pred = y_pred.argmax(axis=1)
    true = y_true
    if true.ndim == pred.ndim + 1 and not is_binary_output(y_pred):
        true = true.argmax(axis=1)  # one-hot or probability targets
    true = true.reshape(-1)
    pred = pred.reshape(-1)
    if true.dtype.kind == "f":
        if is_binary_output(y_pred) and y_pred.dtype.kind == "f":
            true = (true > 0.5)
        true = true.astype(np.int64)
    if true.shape != pred.shape:
        raise ValueError(f"metric: targets of shape {y_true.shape} do not match outputs of shape {y_pred.shape}")
    return true, pred


def _arrays(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    y_true, y_pred = to_numpy(y_true), to_numpy(y_pred)
    if y_true.shape[:1] != y_pred.shape[:1]:
        raise ValueError(f"metric: {y_true.shape[0] if y_true.ndim else 1} targets for "
                         f"{y_pred.shape[0] if y_pred.ndim else 1} outputs")
    return y_true, y_pred


def accuracy(y_true: Any, y_pred: Any, threshold: float = 0.5) -> float:
    """Fraction of correct predictions; binary or multi-class from the output shape (module doc)."""
    true, pred = _labels(*_arrays(y_true, y_pred), threshold)
    return float(np.mean(true == pred)) if true.size else float("nan")


def binary_accuracy(y_true: Any, y_pred: Any, threshold: float = 0.5) -> float:
    """Accuracy of binary scores ``(N,)``/``(N, 1)`` thresholded at ``threshold``."""
    y_true, y_pred = _arrays(y_true, y_pred)
    if not is_binary_output(y_pred):
        raise ValueError(f"binary_accuracy: expected outputs (N,) or (N, 1), got {y_pred.shape}")
    return accuracy(y_true, y_pred, threshold)


def top_k_accuracy(y_true: Any, y_pred: Any, k: int = 5) -> float:
    """Fraction of samples whose true class is among the ``k`` highest scores of ``(N, C)`` outputs."""
    y_true, y_pred = _arrays(y_true, y_pred)
    if y_pred.ndim != 2:
        raise ValueError(f"top_k_accuracy: expected scores (N, C), got {y_pred.shape}")
    if y_true.ndim == 2:
        y_true = y_true.argmax(axis=1)
    k = min(int(k), y_pred.shape[1])
    top = np.argpartition(-y_pred, k - 1, axis=1)[:, :k]
    return float(np.mean(np.any(top == y_true.reshape(-1, 1), axis=1)))


def confusion_matrix(y_true: Any, y_pred: Any, num_classes: int | None = None, threshold: float = 0.5) -> np.ndarray:
    """Counts ``C[i, j]`` of samples of true class ``i`` predicted as ``j`` (rows: truth, as scikit-learn)."""
    true, pred = _labels(*_arrays(y_true, y_pred), threshold)
    y_pred_arr = to_numpy(y_pred)
    if num_classes is None:
        from_shape = y_pred_arr.shape[1] if (y_pred_arr.dtype.kind == "f" and not is_binary_output(y_pred_arr)) else 2
        num_classes = int(max(from_shape, true.max(initial=0) + 1, pred.max(initial=0) + 1))
    if true.size and (true.min() < 0 or true.max() >= num_classes):
        raise ValueError(f"confusion_matrix: labels must lie in [0, {num_classes}), got {true.min()}..{true.max()}")
    return np.bincount(true * num_classes + pred, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def _precision_recall(y_true: Any, y_pred: Any, average: str, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y_pred_arr = to_numpy(y_pred)
    cm = confusion_matrix(y_true, y_pred, threshold=threshold).astype(np.float64)
    tp = np.diag(cm)
    predicted = cm.sum(axis=0)
    actual = cm.sum(axis=1)
    binary = average == "binary"
    if binary and cm.shape[0] > 2:
        raise ValueError("precision/recall/f1: average='binary' needs two classes; use 'macro', 'micro' or 'weighted'")
    if average == "micro":
        tp, predicted, actual = tp.sum(keepdims=True), predicted.sum(keepdims=True), actual.sum(keepdims=True)
    del y_pred_arr
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(actual > 0, tp / actual, 0.0)
    if binary:
        return precision[1:], recall[1:], actual[1:]
    return precision, recall, actual


def _default_average(y_true: Any, y_pred: Any) -> str:
    """scikit-learn's default: ``"binary"`` for binary problems, here binary scores ``(N,)``/``(N, 1)``
    or 0/1 labels on both sides; ``"macro"`` otherwise."""
    pred = np.asarray(to_numpy(y_pred))
    if is_binary_output(pred) and pred.dtype.kind == "f":
        return "binary"
    if pred.dtype.kind in "iub":
        true = np.asarray(to_numpy(y_true))
        if true.dtype.kind in "iubf" and np.all(np.isin(true, (0, 1))) and np.all(np.isin(pred, (0, 1))):
            return "binary"
    return "macro"


def _reduce(values: np.ndarray, support: np.ndarray, average: str) -> float:
    if average == "weighted":
        return float(np.sum(values * support) / max(support.sum(), 1))
    if average in ("macro", "micro", "binary"):
        return float(np.mean(values))
    raise ValueError(f"metric: average must be 'binary', 'macro', 'micro' or 'weighted', got {average!r}")


def precision(y_true: Any, y_pred: Any, average: str | None = None, threshold: float = 0.5) -> float:
    """Precision ``TP / (TP + FP)``: of the positive class (binary) or averaged over classes.

    ``average``: ``"binary"`` (the default for binary problems, as in scikit-learn: binary scores, or
    0/1 labels), ``"macro"`` (the default for multi-class), ``"micro"`` or ``"weighted"`` (as
    scikit-learn; classes never predicted count as 0).
    """
    average = average or _default_average(y_true, y_pred)
    p, _, support = _precision_recall(y_true, y_pred, average, threshold)
    return _reduce(p, support, average)


def recall(y_true: Any, y_pred: Any, average: str | None = None, threshold: float = 0.5) -> float:
    """Recall ``TP / (TP + FN)``; ``average`` as in :func:`precision`."""
    average = average or _default_average(y_true, y_pred)
    _, r, support = _precision_recall(y_true, y_pred, average, threshold)
    return _reduce(r, support, average)


def f1(y_true: Any, y_pred: Any, average: str | None = None, threshold: float = 0.5) -> float:
    """F1 score, the harmonic mean of precision and recall; ``average`` as in :func:`precision`."""
    average = average or _default_average(y_true, y_pred)
    p, r, support = _precision_recall(y_true, y_pred, average, threshold)
    with np.errstate(divide="ignore", invalid="ignore"):
        scores = np.where(p + r > 0, 2 * p * r / (p + r), 0.0)
    return _reduce(scores, support, average)


def _binary_scores(y_true: np.ndarray, y_score: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    if y_score.ndim == 2 and y_score.shape[1] == 2:
        y_score = y_score[:, 1]  # two-column probabilities: the positive class
    if not is_binary_output(y_score):
        raise ValueError(f"{name}: expected binary scores (N,) or (N, 1), got {y_score.shape}")
    y_true = y_true.reshape(-1)
    labels = np.unique(y_true)
    if not np.all(np.isin(labels, [0, 1])):
        raise ValueError(f"{name}: expected binary targets in {{0, 1}}, got values {labels[:5]}")
    return y_true.astype(np.int64), y_score.reshape(-1).astype(np.float64)


def roc_curve(y_true: Any, y_score: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Receiver operating characteristic of binary scores.

    Returns ``(fpr, tpr, thresholds)``: one point per distinct score, from the highest threshold
    (``inf``: nothing predicted positive, the point (0, 0)) down to the lowest (everything positive).
    """
    y_true, y_score = _binary_scores(*_arrays(y_true, y_score), "roc_curve")
    order = np.argsort(-y_score, kind="mergesort")
    y_score, y_true = y_score[order], y_true[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(y_score)), y_true.size - 1]  # ties move together
    tps = np.cumsum(y_true)[last_of_tie]
    fps = (last_of_tie + 1) - tps
    positives, negatives = tps[-1], fps[-1]
    if positives == 0 or negatives == 0:
        raise ValueError("roc_curve: needs both positive and negative targets")
    tpr = np.r_[0.0, tps / positives]
    fpr = np.r_[0.0, fps / negatives]
    thresholds = np.r_[np.inf, y_score[last_of_tie]]
    return fpr, tpr, thresholds


def roc_auc(y_true: Any, y_score: Any) -> float:
    """Area under the ROC curve (trapezoidal rule; equal to ``sklearn.metrics.roc_auc_score``).

    Multi-class scores ``(N, C)`` give the unweighted mean of the one-vs-rest AUCs (scikit-learn's
    ``multi_class="ovr", average="macro"``).
    """
    y_true, y_score = _arrays(y_true, y_score)
    if y_score.ndim == 2 and y_score.shape[1] > 2:
        labels = y_true.argmax(axis=1) if y_true.ndim == 2 else y_true.reshape(-1)
        return float(np.mean([roc_auc((labels == c).astype(np.int64), y_score[:, c])
                              for c in range(y_score.shape[1])]))
    fpr, tpr, _ = roc_curve(y_true, y_score)
    return float(np.trapezoid(tpr, fpr) if hasattr(np, "trapezoid") else np.trapz(tpr, fpr))


def _regression_arrays(y_true: Any, y_pred: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    y_true, y_pred = _arrays(y_true, y_pred)
    if y_true.size != y_pred.size:
        raise ValueError(f"{name}: targets of shape {y_true.shape} do not match outputs of shape {y_pred.shape}")
    return y_true.reshape(y_pred.shape).astype(np.float64), y_pred.astype(np.float64)


def mse(y_true: Any, y_pred: Any) -> float:
    """Mean squared error."""
    y_true, y_pred = _regression_arrays(y_true, y_pred, "mse")
    return float(np.mean((y_true - y_pred) ** 2))


def mae(y_true: Any, y_pred: Any) -> float:
    """Mean absolute error."""
    y_true, y_pred = _regression_arrays(y_true, y_pred, "mae")
    return float(np.mean(np.abs(y_true - y_pred)))


def r2(y_true: Any, y_pred: Any) -> float:
    """Coefficient of determination ``1 - SS_res / SS_tot``; several outputs are averaged (as scikit-learn)."""
    y_true, y_pred = _regression_arrays(y_true, y_pred, "r2")
    y_true, y_pred = y_true.reshape(y_true.shape[0], -1), y_pred.reshape(y_pred.shape[0], -1)
    ss_res = np.sum((y_true - y_pred) ** 2, axis=0)
    ss_tot = np.sum((y_true - y_true.mean(axis=0)) ** 2, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        scores = np.where(ss_tot > 0, 1.0 - ss_res / ss_tot, np.where(ss_res == 0, 1.0, 0.0))
    return float(np.mean(scores))


METRICS = {
    "accuracy": accuracy, "acc": accuracy, "binary_accuracy": binary_accuracy, "top_k_accuracy": top_k_accuracy,
    "precision": precision, "recall": recall, "f1": f1, "roc_auc": roc_auc, "auc": roc_auc,
    "mse": mse, "mae": mae, "r2": r2,
}


def get_metric(spec: Any) -> tuple[str, Any]:
    """Resolve a metric given by name (``"accuracy"``, ``"top5_accuracy"``, ``"f1"``, ...) or callable.

    Returns ``(name, fn)``; ``fn(y_true, y_pred, **kw)``.
    """
    if callable(spec):
        return getattr(spec, "__name__", type(spec).__name__), spec
    if not isinstance(spec, str):
        raise TypeError(f"metric: expected a name or a callable, got {type(spec).__name__}")
    name = spec.lower()
    if name.startswith("top") and name.endswith("_accuracy") and name[3:-9].isdigit():
        k = int(name[3:-9])

        def top_k(y_true: Any, y_pred: Any, k: int = k) -> float:
            return top_k_accuracy(y_true, y_pred, k=k)

        return name, top_k
    if name not in METRICS:
        raise ValueError(f"unknown metric {spec!r}; known: {', '.join(sorted(METRICS))}, topK_accuracy (e.g. top5_accuracy)")
    canonical = {"acc": "accuracy", "auc": "roc_auc", "top_k_accuracy": "top5_accuracy"}.get(name, name)
    return canonical, METRICS[name]


__all__ = ["accuracy", "binary_accuracy", "confusion_matrix", "f1", "get_metric", "is_binary_output", "mae", "mse",
           "precision", "r2", "recall", "roc_auc", "roc_curve", "top_k_accuracy"]
