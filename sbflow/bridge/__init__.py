"""The user-facing bridge: :class:`Bridge` and :func:`load` (``fit``: :mod:`sbflow.fitting`).

- :mod:`sbflow.bridge._bridge` — the :class:`Bridge` type (transport, trajectory, sample);
- :mod:`sbflow.bridge.fields` — the field protocol and its adaptors (two drift networks,
  the closed-form Gaussian bridge);
- :mod:`sbflow.bridge.timemap` — the user's units ↔ training units (time, σ);
- :mod:`sbflow.bridge.evaluation` — metrics and log-densities;
- :mod:`sbflow.bridge.conditional` — draws of the learned plan π(·|x);
- :mod:`sbflow.bridge.persistence` — files (and files of earlier versions).

Example:
    >>> from sbflow.gaussian import GaussianBridge
    >>> bridge = Bridge.from_gaussian(GaussianBridge([0.0], [[1.0]], [1.0], [[1.0]], 0.5))
    >>> bridge.sigma, bridge.simulation
    (0.5, 'sde')
"""

from __future__ import annotations

import warnings
from typing import Any

from sbflow.bridge._bridge import Bridge
from sbflow.bridge.fields import DriftPair, GaussianField
from sbflow.bridge.persistence import load
from sbflow.fitting import fit, leave_one_out  # noqa: F401  (``sbflow.bridge.fit`` still works)

__all__ = ["Bridge", "DriftPair", "GaussianField", "load"]


def __getattr__(name: str) -> Any:
    if name == "METHOD_NAMES":
        warnings.warn(
            "sbflow.bridge.METHOD_NAMES is deprecated; use sbflow.methods.method_names().",
            DeprecationWarning,
            stacklevel=2,
        )
        from sbflow.methods import method_names

        return method_names()
    raise AttributeError(f"module 'sbflow.bridge' has no attribute {name!r}")
