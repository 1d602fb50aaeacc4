"""VP-CFM: independent pairs on the trigonometric variance-preserving path.

``x_t = cos(πt/2) x0 + sin(πt/2) x1 (+ σ z)``; σ (default 0) is in data units.
"""

from __future__ import annotations

from sbflow.methods.base import Method
from sbflow.methods.registry import register
from sbflow.paths import ProbabilityPath, VPPath

__all__ = ["VPCFM"]


@register
class VPCFM(Method):
    """Variance-preserving conditional flow matching.

    Example:
        >>> type(VPCFM().matcher.path).__name__
        'VPPath'
    """

    name = "vp-cfm"
    description = "independent pairs, trigonometric variance-preserving paths"

    def path(self, sigma: float) -> ProbabilityPath:
        return VPPath(sigma)
