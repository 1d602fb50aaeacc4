"""FM: flow matching from a standard Gaussian source (Lipman et al. 2023).

``x_t = t x1 + (1 − (1 − σ_min) t) x0`` with ``x0 ~ N(0, I)``; ``sigma`` is ``σ_min``, a
dimensionless fraction of the unit Gaussian (not converted between units). The data are not
standardised, so the bridge's log-densities are those of the data.
"""

from __future__ import annotations

from sbflow.methods.base import Method
from sbflow.methods.registry import register
from sbflow.paths import ProbabilityPath, TargetPath

__all__ = ["FM"]


@register
class FM(Method):
    """Gaussian-source flow matching.

    Example:
        >>> FM().path(1e-3).sigma_min
        0.001
    """

    name = "fm"
    description = "flow matching from a standard Gaussian source (Lipman et al.)"
    default_sigma = 1e-3
    sigma_units = "none"
    gaussian_source = True

    def path(self, sigma: float) -> ProbabilityPath:
        return TargetPath(sigma)
