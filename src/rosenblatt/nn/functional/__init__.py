"""``rb.nn.functional`` (import as ``F``): the functional form of every layer and loss.

Each function here takes tensors (and parameters as plain arguments) and returns a tensor; the
layers in ``rb.nn`` hold the parameters and call these functions.
"""

from rosenblatt.ops import one_hot, pad

__all__ = ["one_hot", "pad"]
