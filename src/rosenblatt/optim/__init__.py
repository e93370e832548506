"""Optimisers and learning-rate schedules, with PyTorch's names, arguments and update formulas.

``rb.optim.SGD``, ``Adagrad``, ``Adadelta``, ``RMSprop``, ``Adam``, ``AdamW`` - all built on
:class:`Optimizer` - and ``rb.optim.lr_scheduler`` (``StepLR``, ``OneCycleLR``, ``ReduceLROnPlateau``, ...).
"""

from rosenblatt.optim import lr_scheduler
from rosenblatt.optim.adadelta import Adadelta
from rosenblatt.optim.adagrad import Adagrad
from rosenblatt.optim.adam import Adam, AdamW
from rosenblatt.optim.optimizer import Optimizer, OptimizerState, flatten_state_dict, unflatten_state_dict
from rosenblatt.optim.rmsprop import RMSprop
from rosenblatt.optim.sgd import SGD

__all__ = ["SGD", "Adadelta", "Adagrad", "Adam", "AdamW", "Optimizer", "OptimizerState", "RMSprop",
           "flatten_state_dict", "lr_scheduler", "unflatten_state_dict"]
