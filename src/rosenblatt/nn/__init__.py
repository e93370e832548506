"""Neural-network building blocks: ``Module``, layers, losses, ``functional``, ``init``, ``utils``."""

from rosenblatt.nn import filters, functional, init, utils
from rosenblatt.nn.activation import (
    ELU,
    GELU,
    SELU,
    Hardsigmoid,
    Hardswish,
    Hardtanh,
    LeakyReLU,
    LogSoftmax,
    Mish,
    PReLU,
    ReLU,
    ReLU6,
    Sigmoid,
    SiLU,
    Softmax,
    Softplus,
    Step,
    Tanh,
)
from rosenblatt.nn.conv import Conv1d, Conv2d, Conv3d, ConvTranspose2d
from rosenblatt.nn.dropout import Dropout, Dropout2d, GaussianNoise
from rosenblatt.nn.embedding import Embedding
from rosenblatt.nn.instance_norm import InstanceNorm1d, InstanceNorm2d, InstanceNorm3d
from rosenblatt.nn.linear import Flatten, Identity, Linear, Unflatten
from rosenblatt.nn.loss import (
    BCELoss,
    BCEWithLogitsLoss,
    CrossEntropyLoss,
    HuberLoss,
    KLDivLoss,
    L1Loss,
    MSELoss,
    NLLLoss,
    SmoothL1Loss,
)
from rosenblatt.nn.module import Module, ModuleDict, ModuleList, Sequential
from rosenblatt.nn.normalization import BatchNorm1d, BatchNorm2d, BatchNorm3d, GroupNorm, LayerNorm
from rosenblatt.nn.parameter import Parameter
from rosenblatt.nn.patches import Fold, PixelShuffle, PixelUnshuffle, Unfold
from rosenblatt.nn.pooling import (
    AdaptiveAvgPool1d,
    AdaptiveAvgPool2d,
    AdaptiveMaxPool1d,
    AdaptiveMaxPool2d,
    AvgPool1d,
    AvgPool2d,
    AvgPool3d,
    MaxPool1d,
    MaxPool2d,
    MaxPool3d,
    Upsample,
)
from rosenblatt.nn.rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell
from rosenblatt.nn.transformer import (
    MultiheadAttention,
    Transformer,
    TransformerDecoder,
    TransformerDecoderLayer,
    TransformerEncoder,
    TransformerEncoderLayer,
)

__all__ = ["GRU", "LSTM", "RNN", "GRUCell", "LSTMCell", "RNNCell", "utils", "Module", "ModuleDict", "ModuleList", "Parameter", "Sequential"]
__all__ += [
    "BCELoss", "BCEWithLogitsLoss", "BatchNorm1d", "BatchNorm2d", "CrossEntropyLoss", "Dropout", "Dropout2d",
    "ELU", "Embedding", "Flatten", "GELU", "GaussianNoise", "HuberLoss", "Identity", "KLDivLoss", "L1Loss",
    "LayerNorm", "LeakyReLU", "Linear", "LogSoftmax", "MSELoss", "NLLLoss", "ReLU", "SELU", "SiLU", "Sigmoid",
    "SmoothL1Loss", "Softmax", "Softplus", "Step", "Tanh", "Unflatten", "functional", "init",
]
__all__ += ["AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveMaxPool1d", "AdaptiveMaxPool2d", "AvgPool1d", "AvgPool2d", "Conv1d", "Conv2d",
            "ConvTranspose2d", "MaxPool1d", "MaxPool2d", "Upsample", "filters"]
__all__ += ["MultiheadAttention", "TransformerEncoder", "TransformerEncoderLayer"]
__all__ += ["Transformer", "TransformerDecoder", "TransformerDecoderLayer"]
__all__ += ["AvgPool3d", "BatchNorm3d", "Conv3d", "GroupNorm", "MaxPool3d", "PReLU"]
__all__ += ["Hardsigmoid", "Hardswish", "Hardtanh", "Mish", "ReLU6"]
__all__ += ["InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d"]
__all__ += ["Fold", "PixelShuffle", "PixelUnshuffle", "Unfold"]
