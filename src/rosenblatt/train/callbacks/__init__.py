"""Training callbacks, one per file: hooks that ``Trainer.fit`` calls at epoch and batch boundaries."""

from rosenblatt.train.callbacks.base import Callback
from rosenblatt.train.callbacks.csv_logger import CSVLogger
from rosenblatt.train.callbacks.early_stopping import EarlyStopping
from rosenblatt.train.callbacks.gradient_monitor import GradientMonitor
from rosenblatt.train.callbacks.lr_scheduler import LRSchedulerCallback
from rosenblatt.train.callbacks.model_checkpoint import ModelCheckpoint
from rosenblatt.train.callbacks.progress_bar import ProgressBar
from rosenblatt.train.callbacks.tensorboard import TensorBoard
from rosenblatt.train.callbacks.terminate_on_nan import TerminateOnNaN

__all__ = ["CSVLogger", "Callback", "EarlyStopping", "GradientMonitor", "LRSchedulerCallback", "ModelCheckpoint",
           "ProgressBar", "TensorBoard", "TerminateOnNaN"]
