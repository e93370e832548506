"""``rb.nn.utils``: helpers around layers and parameters."""

from rosenblatt.nn.utils import rnn

__all__ = ["rnn"]
