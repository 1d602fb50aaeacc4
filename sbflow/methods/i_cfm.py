"""I-CFM: independent pairs, straight conditional paths (Tong et al. 2024; Lipman et al. 2023).

σ (default 0) is Gaussian smoothing of the straight path ``x_t = (1 − t)x0 + t x1 + σ z``,
in data units; ``fit`` converts it like any σ.
"""

from __future__ import annotations

from sbflow.methods.base import Method
from sbflow.methods.registry import register
from sbflow.paths import LinearPath, ProbabilityPath

__all__ = ["ICFM"]


@register
class ICFM(Method):
    """Independent-coupling conditional flow matching.

    Example:
        >>> ICFM().matcher.solver is None
        True
    """

    name = "i-cfm"
    description = "independent pairs, straight paths (I-CFM)"

    def path(self, sigma: float) -> ProbabilityPath:
        return LinearPath(sigma)
