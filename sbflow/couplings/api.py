"""One-call entry points: :func:`couple` and the solver registry :func:`get_solver`."""

from __future__ import annotations

import inspect
from typing import Any

from sbflow.couplings.base import Coupling, CouplingSolver
from sbflow.couplings.exact import ExactOT
from sbflow.couplings.independent import IndependentCoupling
from sbflow.couplings.partial import PartialOT
from sbflow.couplings.sinkhorn import Sinkhorn, UnbalancedSinkhorn

__all__ = ["SOLVERS", "couple", "get_solver"]

SOLVERS: dict[str, type[CouplingSolver]] = {
    "independent": IndependentCoupling,
    "exact": ExactOT,
    "sinkhorn": Sinkhorn,
    "unbalanced": UnbalancedSinkhorn,
    "partial": PartialOT,
}
"""Solver classes by name, as accepted by :func:`get_solver` and :func:`couple`."""


def get_solver(method: str | CouplingSolver, **options: Any) -> CouplingSolver:
    """Build a solver from its name (or pass a solver instance through unchanged).

    Names: ``"independent"``, ``"exact"``, ``"sinkhorn"``, ``"unbalanced"``, ``"partial"``.

    Args:
        method: Solver name or instance.
        **options: Constructor options of the solver class (not allowed with an instance).

    Example:
        >>> get_solver("sinkhorn", rel_reg=0.1).rel_reg
        0.1
    """
    if isinstance(method, CouplingSolver):
        if options:
            raise TypeError(
                f"options {sorted(options)} were given together with a solver instance; "
                f"configure the instance instead."
            )
        return method
    if not isinstance(method, str) or method.lower() not in SOLVERS:
        raise ValueError(
            f"unknown coupling method {method!r}; choose one of {sorted(SOLVERS)} or pass a "
            f"CouplingSolver instance."
        )
    name = method.lower()
    accepted = _options(SOLVERS[name])
    unknown = sorted(set(options) - accepted)
    if unknown:
        elsewhere = {
            opt: sorted(k for k, cls in SOLVERS.items() if opt in _options(cls)) for opt in unknown
        }
        where = "; ".join(
            f"{opt!r} belongs to method {', '.join(repr(k) for k in ks)}"
            if ks
            else f"no method takes {opt!r}"
            for opt, ks in elsewhere.items()
        )
        raise TypeError(
            f"coupling method {name!r} has no option {', '.join(map(repr, unknown))} ({where}). "
            f"Use the options of {name!r} ({', '.join(sorted(accepted)) or 'none'}) or choose "
            f"another method."
        )
    return SOLVERS[name](**options)


def _options(cls: type[CouplingSolver]) -> set[str]:
    """Keyword options of a solver class, following ``**kwargs`` into its base classes."""
    out: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params = inspect.signature(init).parameters.values()
        out |= {
            p.name
            for p in params
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        }
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            break
    return out


def couple(
    x0: Any,
    x1: Any,
    method: str | CouplingSolver = "exact",
    *,
    a: Any = None,
    b: Any = None,
    y0: Any = None,
    y1: Any = None,
    **options: Any,
) -> Coupling:
    """Couple two sample sets in one call: ``get_solver(method, **options)(x0, x1, a, b)``.

    Args:
        x0: Sources ``(n, *dims)``, a torch tensor or NumPy array (flattened for the cost).
        x1: Targets ``(m, *dims)``.
        method: Solver name or instance (see :func:`get_solver`).
        a: Source weights ``(n,)``, default uniform.
        b: Target weights ``(m,)``, default uniform.
        y0: Optional source class labels ``(n,)``; pairs then form only within a class.
        y1: Optional target class labels ``(m,)``.
        **options: Options of the solver.

    Returns:
        A :class:`~sbflow.couplings.Coupling` whose tensors follow the inputs' dtype and device
        (NumPy float64 in, float64 tensors out).

    Example:
        >>> import numpy as np
        >>> c = couple(np.zeros((3, 2)), np.ones((3, 2)), method="exact")
        >>> c.dtype, c.is_permutation
        (torch.float64, True)
    """
    return get_solver(method, **options)(x0, x1, a, b, y0=y0, y1=y1)
