"""Training: ``Trainer`` (fit/evaluate/predict), callbacks, metrics, ``History``, regularisers."""

from rosenblatt.train import callbacks, metrics
from rosenblatt.train.callbacks import (
    Callback,
    CSVLogger,
    EarlyStopping,
    GradientMonitor,
    LRSchedulerCallback,
    ModelCheckpoint,
    ProgressBar,
    TensorBoard,
    TerminateOnNaN,
)
from rosenblatt.train.history import History
from rosenblatt.train.metrics import (
    accuracy,
    confusion_matrix,
    f1,
    mae,
    mse,
    precision,
    r2,
    recall,
    roc_auc,
    roc_curve,
    top_k_accuracy,
)
from rosenblatt.train.regularizers import L1, L1L2, L2
from rosenblatt.train.trainer import Trainer

__all__ = ["CSVLogger", "Callback", "EarlyStopping", "GradientMonitor", "History", "L1", "L1L2", "L2",
           "LRSchedulerCallback", "ModelCheckpoint", "ProgressBar", "TensorBoard", "TerminateOnNaN", "Trainer", "accuracy",
           "callbacks", "confusion_matrix", "f1", "mae", "metrics", "mse", "precision", "r2", "recall", "roc_auc",
           "roc_curve", "top_k_accuracy"]
