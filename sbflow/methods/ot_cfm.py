"""OT-CFM: exact-OT minibatch pairs, straight conditional paths (Tong et al. 2024).

The exact plan of a uniform square batch is a permutation, so every source keeps exactly one
target (no resampling with replacement).
"""

from __future__ import annotations

from sbflow.methods.base import Method
from sbflow.methods.registry import register
from sbflow.paths import LinearPath, ProbabilityPath

__all__ = ["OTCFM"]


@register
class OTCFM(Method):
    """Minibatch optimal-transport conditional flow matching.

    Example:
        >>> type(OTCFM().matcher.solver).__name__
        'ExactOT'
    """

    name = "ot-cfm"
    description = "exact-OT minibatch pairs, straight paths (OT-CFM)"
    default_coupling = "exact"

    def path(self, sigma: float) -> ProbabilityPath:
        return LinearPath(sigma)
