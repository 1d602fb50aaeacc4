"""Lazy import of POT (``ot``), with the banner that its optional pykeops import prints muted."""

from __future__ import annotations

from functools import lru_cache
from types import ModuleType

from sbflow.couplings._quiet import muted_stdout

__all__ = ["pot"]


@lru_cache(maxsize=1)
def pot() -> ModuleType:
    """Return the ``ot`` module, imported once.

    Importing POT imports pykeops when present, which prints a CUDA notice to stdout on
    CPU-only machines; that notice is swallowed here (errors still propagate).

    Example:
        >>> pot().__name__
        'ot'
    """
    with muted_stdout():
        import ot
    return ot
