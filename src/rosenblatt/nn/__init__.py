"""Neural-network building blocks: ``Module``, layers, losses, ``functional``, ``init``, ``utils``."""

from rosenblatt.nn import utils
from rosenblatt.nn.module import Module, ModuleDict, ModuleList, Sequential
from rosenblatt.nn.parameter import Parameter
from rosenblatt.nn.rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell

__all__ = ["GRU", "LSTM", "RNN", "GRUCell", "LSTMCell", "RNNCell", "utils", "Module", "ModuleDict", "ModuleList", "Parameter", "Sequential"]
