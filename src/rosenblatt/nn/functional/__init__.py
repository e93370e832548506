"""``rb.nn.functional`` (import as ``F``): the functional form of every layer and loss.

Each function here takes tensors (and parameters as plain arguments) and returns a tensor; the
layers in ``rb.nn`` hold the parameters and call these functions.
"""

from rosenblatt.nn.functional.activation import (
    elu,
    gelu,
    hardsigmoid,
    hardswish,
    hardtanh,
    leaky_relu,
    log_softmax,
    mish,
    prelu,
    relu,
    relu6,
    selu,
    sigmoid,
    silu,
    softmax,
    softplus,
    step,
    tanh,
)
from rosenblatt.nn.functional.attention import multi_head_attention, scaled_dot_product_attention
from rosenblatt.nn.functional.conv import conv1d, conv2d, conv_transpose2d
from rosenblatt.nn.functional.conv3d import conv3d
from rosenblatt.nn.functional.dropout import dropout, dropout2d, gaussian_noise
from rosenblatt.nn.functional.embedding import embedding
from rosenblatt.nn.functional.group_norm import group_norm
from rosenblatt.nn.functional.instance_norm import instance_norm
from rosenblatt.nn.functional.linear import linear, linear_composite
from rosenblatt.nn.functional.loss import (
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cross_entropy,
    huber_loss,
    kl_div,
    l1_loss,
    mse_loss,
    nll_loss,
    smooth_l1_loss,
)
from rosenblatt.nn.functional.normalization import batch_norm, layer_norm
from rosenblatt.nn.functional.patches import fold, pixel_shuffle, pixel_unshuffle, unfold
from rosenblatt.nn.functional.pooling import (
    adaptive_avg_pool1d,
    adaptive_avg_pool2d,
    adaptive_max_pool1d,
    adaptive_max_pool2d,
    avg_pool1d,
    avg_pool2d,
    max_pool1d,
    max_pool2d,
)
from rosenblatt.nn.functional.pooling3d import avg_pool3d, max_pool3d
from rosenblatt.nn.functional.recurrent import gru_cell, gru_layer, lstm_cell, lstm_layer, rnn_cell, rnn_layer
from rosenblatt.nn.functional.resize import interpolate, upsample
from rosenblatt.ops import one_hot, pad

__all__ = [
    "batch_norm", "binary_cross_entropy", "binary_cross_entropy_with_logits", "cross_entropy", "dropout",
    "dropout2d", "elu", "embedding", "gaussian_noise", "gelu", "huber_loss", "kl_div", "l1_loss",
    "layer_norm", "leaky_relu", "linear", "linear_composite", "log_softmax", "mse_loss", "nll_loss",
    "one_hot", "pad", "relu", "selu", "sigmoid", "silu", "smooth_l1_loss", "softmax", "softplus", "step",
    "tanh",
]
__all__ += ["adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_max_pool1d", "adaptive_max_pool2d", "avg_pool1d", "avg_pool2d", "conv1d", "conv2d",
            "conv_transpose2d", "interpolate", "max_pool1d", "max_pool2d", "upsample"]
__all__ += ["gru_cell", "gru_layer", "lstm_cell", "lstm_layer", "rnn_cell", "rnn_layer"]
__all__ += ["multi_head_attention", "scaled_dot_product_attention"]
__all__ += ["avg_pool3d", "conv3d", "group_norm", "max_pool3d", "prelu"]
__all__ += ["hardsigmoid", "hardswish", "hardtanh", "mish", "relu6"]
__all__ += ["instance_norm"]
__all__ += ["fold", "pixel_shuffle", "pixel_unshuffle", "unfold"]
