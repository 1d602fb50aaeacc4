"""The method registry: ``fit``, the CLI, ``Bridge`` and the docs read every method from here.

Register a :class:`~sbflow.methods.Method` subclass once, with ``register(MyMethod)`` or as a
class decorator, and it is accepted everywhere by its ``name`` — no edit of sbflow needed.

Example:
    >>> "sb-cfm" in method_names()
    True
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from sbflow.methods.base import Method

__all__ = ["METHODS", "get_method", "get_method_class", "method_names", "register"]

_REGISTRY: dict[str, type[Method]] = {}


def _key(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def register(cls: type[Method] | None = None, *, replace: bool = False) -> Any:
    """Register a :class:`Method` subclass under its ``name`` (a call or a class decorator).

    Raises:
        TypeError: If ``cls`` is not a :class:`Method` subclass with a ``name``.
        ValueError: If the name is taken by another class and ``replace`` is false.

    Example:
        >>> from sbflow.methods import Method
        >>> from sbflow.paths import LinearPath
        >>> class Straight(Method):
        ...     name = "doc-straight"
        ...     def path(self, sigma):
        ...         return LinearPath(sigma)
        >>> register(Straight, replace=True) is Straight
        True
        >>> type(get_method("doc-straight")).__name__
        'Straight'
    """

    def add(c: type[Method]) -> type[Method]:
        if not (isinstance(c, type) and issubclass(c, Method)) or not c.name:
            raise TypeError(f"register needs a Method subclass with a name; got {c!r}.")
        key = _key(c.name)
        old = _REGISTRY.get(key)
        if old is not None and old.__qualname__ != c.__qualname__ and not replace:
            raise ValueError(
                f"method {key!r} is already registered ({old.__qualname__}); choose another "
                f"name or pass replace=True."
            )
        _REGISTRY[key] = c
        return c

    return add if cls is None else add(cls)


def method_names() -> tuple[str, ...]:
    """Registered method names, in registration order.

    Example:
        >>> method_names()[:5]
        ('i-cfm', 'ot-cfm', 'sb-cfm', 'fm', 'vp-cfm')
    """
    return tuple(_REGISTRY)


def get_method_class(name: str) -> type[Method]:
    """The registered class of ``name`` (case-insensitive; ``_`` reads as ``-``).

    Raises:
        TypeError: If ``name`` is not a string.
        ValueError: For an unknown name (the message lists the registered ones).

    Example:
        >>> get_method_class("OT_CFM").name
        'ot-cfm'
    """
    if not isinstance(name, str):
        raise TypeError(
            f"method must be a registered name (a str such as 'ot-cfm'); got {name!r}. "
            f"Choose one of {', '.join(_REGISTRY)}."
        )
    key = _key(name)
    if key not in _REGISTRY:
        raise ValueError(
            f"unknown method {name!r}; choose one of {', '.join(_REGISTRY)} (or register "
            f"your own with sbflow.methods.register)."
        )
    return _REGISTRY[key]


def get_method(
    name: str, *, sigma: float | None = None, coupling: Any = None, **coupling_options: Any
) -> Method:
    """Build a registered method.

    Args:
        name: A registered name (see :func:`method_names`).
        sigma: σ in data units per unit time (the method's default if ``None``).
        coupling: Overrides the method's coupling: a solver name or instance.
        **coupling_options: Options of the coupling solver (e.g. ``reg``, ``max_iter``).

    Example:
        >>> m = get_method("sb-cfm", sigma=0.5)
        >>> m.needs_score, m.matcher.solver.reg
        (True, 0.5)
    """
    return get_method_class(name)(sigma=sigma, coupling=coupling, **coupling_options)


class _Descriptions(Mapping[str, str]):
    """Live read-only view ``{name: description}`` of the registry."""

    def __getitem__(self, name: str) -> str:
        return _REGISTRY[_key(name)].description

    def __iter__(self) -> Iterator[str]:
        return iter(list(_REGISTRY))

    def __len__(self) -> int:
        return len(_REGISTRY)

    def __repr__(self) -> str:
        return repr(dict(self))


METHODS: Mapping[str, str] = _Descriptions()
"""Registered method names and one-line descriptions (a live view of the registry)."""
