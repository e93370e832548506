"""Neural-network building blocks: ``Module``, layers, losses, ``functional``, ``init``, ``utils``."""

from rosenblatt.nn.module import Module, ModuleDict, ModuleList, Sequential
from rosenblatt.nn.parameter import Parameter

__all__ = ["Module", "ModuleDict", "ModuleList", "Parameter", "Sequential"]
