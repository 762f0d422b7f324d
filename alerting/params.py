"""Parameters read from the signature: ``params()`` and ``clone()`` written once, as in River.

A unit (a detector, a threshold, the drift monitor, the alert policy) stores each
constructor argument under the parameter's own name. :class:`Parameterised` then
derives the rest from the signature of the unit's constructor, as River's
``base.Base`` does: ``params()`` is the stored value of each parameter, in signature
order (it feeds the model version and the configuration hash of snapshots), and
``clone()`` is a fresh unit built from them, with the same parameters and nothing
learned (per-entity units come from ``template.clone()``). The stored value may be the
argument normalised by the constructor's check (an integer budget kept as a float), as
long as building a unit from it stores the same value again.

>>> class Window(Parameterised):
...     def __init__(self, size: int = 8, step: float = 1) -> None:
...         self.size = size
...         self.step = float(step)
...         self.seen = 0
>>> window = Window(16)
>>> window.seen = 5
>>> window.params()
{'size': 16, 'step': 1.0}
>>> window.clone().params(), window.clone().seen
({'size': 16, 'step': 1.0}, 0)
>>> parameters(Window)
('size', 'step')
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Self

__all__ = ["Parameterised", "parameters"]


_read: dict[Callable[..., object], tuple[str, ...]] = {}


def parameters(factory: Callable[..., object]) -> tuple[str, ...]:
    """The names ``factory`` takes as keyword arguments, in signature order; for a class,
    those of its constructor. Read once per factory."""
    names = _read.get(factory)
    if names is None:
        names = _read[factory] = tuple(
            p.name
            for p in inspect.signature(factory).parameters.values()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        )
    return names


class Parameterised:
    """``params()`` and ``clone()`` from the constructor's signature.

    Each parameter is read from the attribute of the same name, unless
    :attr:`stored_as` names another one: a parameter whose name is also one of the
    unit's methods (a fixed threshold's ``value``) cannot be stored under it.
    """

    __slots__ = ()

    #: parameter name -> the attribute that stores it, where the two differ
    stored_as: ClassVar[Mapping[str, str]] = {}

    def params(self) -> dict[str, object]:
        """The constructor parameters, in signature order."""
        stored_as = self.stored_as
        return {name: getattr(self, stored_as.get(name, name)) for name in parameters(type(self))}

    def clone(self) -> Self:
        """A fresh unit with the same parameters and nothing learned."""
        factory: Callable[..., Self] = type(self)
        kwargs: dict[str, Any] = self.params()
        return factory(**kwargs)
