"""Lazy import and one-time probe of pykeops.

pykeops can import fine and still fail on first use (it compiles C++ at run time, which needs
a compiler and a writable cache). :func:`keops_status` imports it and compiles one tiny
reduction once per process, and caches the answer, so that ``backend="auto"`` can decide
without paying or repeating that cost.
"""

from __future__ import annotations

import warnings
from functools import lru_cache

import torch

from sbflow.couplings._quiet import muted_stdout

__all__ = ["keops_available", "keops_status", "warn_fallback_once"]

_WARNED: set[str] = set()


@lru_cache(maxsize=1)
def keops_status() -> tuple[bool, str]:
    """Whether pykeops works here, and why not if it does not (probed once, then cached).

    Example:
        >>> ok, reason = keops_status()
        >>> isinstance(ok, bool)
        True
    """
    try:
        with muted_stdout(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pykeops
            from pykeops.torch import LazyTensor

            pykeops.set_verbose(False)

            x = torch.linspace(0.0, 1.0, 5, dtype=torch.float64)[:, None]
            xi, xj = LazyTensor(x[:, None, :]), LazyTensor(x[None, :, :])
            out = (-((xi - xj) ** 2).sum(-1)).logsumexp(dim=1).view(-1)
            ref = torch.logsumexp(-((x - x.T) ** 2), 1)
        if not torch.allclose(out, ref, rtol=1e-10, atol=1e-10):
            return False, "pykeops compiled but returned wrong values on a test reduction"
        return True, ""
    except Exception as err:  # any failure means "not usable": import, compiler, cache, ...
        return False, f"{type(err).__name__}: {err}"


def keops_available() -> bool:
    """``True`` when pykeops imports and compiles here (see :func:`keops_status`).

    Example:
        >>> isinstance(keops_available(), bool)
        True
    """
    return keops_status()[0]


def warn_fallback_once(reason: str) -> None:
    """Warn (once per reason and process) that ``backend="auto"`` fell back to dense torch.

    Example:
        >>> import warnings
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("ignore")
        ...     warn_fallback_once("demo")
    """
    if reason in _WARNED:
        return
    _WARNED.add(reason)
    warnings.warn(
        f"backend='auto' would use KeOps for this large problem, but KeOps is not usable "
        f"({reason}); using the dense torch backend, which needs O(n·m) memory. Install a "
        f"working pykeops (pip install 'sbflow[keops]' and a C++ compiler) or pass "
        f"backend='dense' to silence this.",
        RuntimeWarning,
        stacklevel=4,
    )
