"""``Parameter``: a tensor that a :class:`~rosenblatt.nn.Module` registers as learnable."""

from __future__ import annotations

from typing import Any

from rosenblatt.core import Tensor, as_array


class Parameter(Tensor):
    """A leaf tensor that requires grad and is registered by a Module when assigned as an attribute."""

    __slots__ = ()

    def __init__(self, data: Any = None, requires_grad: bool = True) -> None:
        if data is None:
            data = as_array([], dtype=None)
        super().__init__(data.data if isinstance(data, Tensor) else data, requires_grad=requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()
