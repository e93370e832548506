"""``rb.nn.utils``: helpers around layers and parameters."""

from rosenblatt.nn.utils import prune, rnn
from rosenblatt.nn.utils.clip_grad import clip_grad_norm_, clip_grad_value_
from rosenblatt.nn.utils.convert_parameters import parameters_to_vector, vector_to_parameters
from rosenblatt.nn.utils.regularization import l1_penalty, l2_penalty

__all__ = ["prune", "rnn"]
__all__ += ["clip_grad_norm_", "clip_grad_value_", "l1_penalty", "l2_penalty", "parameters_to_vector",
            "vector_to_parameters"]
