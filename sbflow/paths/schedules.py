"""Concrete paths: linear (I-CFM / OT-CFM), Brownian bridge (SB-CFM), target (FM), VP."""

from __future__ import annotations

import math

import torch

from sbflow.paths.base import AffinePath

__all__ = ["BrownianBridgePath", "LinearPath", "TargetPath", "VPPath"]


def _non_negative(value: float, name: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be a number; got {value!r}.") from err
    if not math.isfinite(v) or v < 0:
        raise ValueError(f"{name} must be a finite number >= 0; got {value!r}.")
    return v


class _ConstantNoise(AffinePath):
    """Affine paths whose noise level ``σ_t = σ`` does not depend on time."""

    def __init__(self, sigma: float = 0.0) -> None:
        self.sigma_value = _non_negative(sigma, "sigma")

    @property
    def has_noise(self) -> bool:
        """``True`` when ``σ > 0``."""
        return self.sigma_value > 0

    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        """``σ_t = σ``."""
        return torch.full_like(t, self.sigma_value)

    def d_sigma(self, t: torch.Tensor) -> torch.Tensor:
        """``σ'_t = 0``."""
        return torch.zeros_like(t)


class LinearPath(_ConstantNoise):
    """Straight line with constant noise: ``x_t = t x1 + (1 − t) x0 + σ ε``, ``u_t = x1 − x0``.

    The path of I-CFM; with an exact-OT coupling it is OT-CFM (Tong et al., 2024).

    Args:
        sigma: Constant noise level ``σ >= 0`` (0: deterministic straight lines).

    Example:
        >>> s = LinearPath().sample(torch.zeros(1, 2), torch.ones(1, 2), t=0.3)
        >>> s.ut.tolist(), s.noise is None
        ([[1.0, 1.0]], True)
    """

    def alpha(self, t: torch.Tensor) -> torch.Tensor:
        """``α_t = t``."""
        return t

    def beta(self, t: torch.Tensor) -> torch.Tensor:
        """``β_t = 1 − t``."""
        return 1 - t

    def d_alpha(self, t: torch.Tensor) -> torch.Tensor:
        """``α'_t = 1``."""
        return torch.ones_like(t)

    def d_beta(self, t: torch.Tensor) -> torch.Tensor:
        """``β'_t = −1``."""
        return -torch.ones_like(t)


class BrownianBridgePath(LinearPath):
    """Brownian bridge of ``dX = σ dW`` pinned at ``x0`` and ``x1`` (SB-CFM / [SF]2M).

    ``x_t = t x1 + (1 − t) x0 + σ sqrt(t (1 − t)) ε``, so ``σ_t = σ sqrt(t (1 − t))`` and

        u_t = x1 − x0 + σ (1 − 2t) / (2 sqrt(t (1 − t))) ε
            = x1 − x0 + (1 − 2t) / (2 t (1 − t)) (x_t − μ_t),

    with score target ``−ε / σ_t``. The velocity factor is singular at ``t ∈ {0, 1}``:
    ``t (1 − t)`` is clamped at the dtype's ``tiny`` (large but finite targets), and the
    default time sampler keeps ``t`` in ``[t_eps, 1 − t_eps]`` with ``t_eps = 1e-3``.

    Args:
        sigma: Diffusion ``σ > 0`` of the Brownian reference (entropic ``reg = 2 σ²``).
        t_eps: Margin of the default time sampler from the end points.

    Example:
        >>> p = BrownianBridgePath(sigma=1.0)
        >>> p.std(torch.tensor([0.0, 0.5, 1.0])).tolist()
        [0.0, 0.5, 0.0]
    """

    def __init__(self, sigma: float = 1.0, *, t_eps: float = 1e-3) -> None:
        super().__init__(sigma)
        if self.sigma_value <= 0:
            raise ValueError(
                f"BrownianBridgePath needs sigma > 0; got {sigma!r}. Use LinearPath() for "
                f"noise-free straight paths."
            )
        self.t_eps = float(t_eps)

    def _var(self, t: torch.Tensor) -> torch.Tensor:
        return (t * (1 - t)).clamp_min(0.0)

    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        """``σ_t = σ sqrt(t (1 − t))``."""
        return self.sigma_value * self._var(t).sqrt()

    def d_sigma(self, t: torch.Tensor) -> torch.Tensor:
        """``σ'_t = σ (1 − 2t) / (2 sqrt(t (1 − t)))``, with ``t (1 − t)`` clamped away from 0."""
        tiny = torch.finfo(t.dtype).tiny
        return self.sigma_value * (1 - 2 * t) / (2 * self._var(t).clamp_min(tiny).sqrt())


class TargetPath(AffinePath):
    """Flow matching of Lipman et al. (2023) from a standard Gaussian source.

    ``x0 ~ N(0, I)`` plays the role of the noise: ``x_t = t x1 + (1 − (1 − σ_min) t) x0`` and
    ``u_t = x1 − (1 − σ_min) x0``. The path itself carries no extra noise (``noise`` and
    ``score`` are ``None``); the source must be standard Gaussian (``gaussian_source``).

    Args:
        sigma_min: Width of the conditional path at ``t = 1``.

    Example:
        >>> s = TargetPath(sigma_min=0.0).sample(torch.ones(1, 1), torch.zeros(1, 1), t=1.0)
        >>> s.xt.tolist(), s.ut.tolist()
        ([[0.0]], [[-1.0]])
    """

    def __init__(self, sigma_min: float = 1e-3) -> None:
        self.sigma_min = _non_negative(sigma_min, "sigma_min")
        if self.sigma_min >= 1:
            raise ValueError(f"sigma_min must be < 1; got {sigma_min!r}.")

    @property
    def has_noise(self) -> bool:
        """Always ``False``: the randomness is ``x0`` itself."""
        return False

    def alpha(self, t: torch.Tensor) -> torch.Tensor:
        """``α_t = t``."""
        return t

    def beta(self, t: torch.Tensor) -> torch.Tensor:
        """``β_t = 1 − (1 − σ_min) t``."""
        return 1 - (1 - self.sigma_min) * t

    def d_alpha(self, t: torch.Tensor) -> torch.Tensor:
        """``α'_t = 1``."""
        return torch.ones_like(t)

    def d_beta(self, t: torch.Tensor) -> torch.Tensor:
        """``β'_t = −(1 − σ_min)``."""
        return torch.full_like(t, -(1 - self.sigma_min))


class VPPath(_ConstantNoise):
    """Trigonometric (variance-preserving) interpolant ``x_t = cos(πt/2) x0 + sin(πt/2) x1 + σ ε``.

    ``u_t = (π/2) (cos(πt/2) x1 − sin(πt/2) x0)``; ``σ`` is a constant noise level.

    Args:
        sigma: Constant noise level ``σ >= 0``.

    Example:
        >>> s = VPPath().sample(torch.ones(1, 1), 2 * torch.ones(1, 1), t=0.0)
        >>> s.xt.tolist(), round(s.ut.item(), 4)
        ([[1.0]], 3.1416)
    """

    def alpha(self, t: torch.Tensor) -> torch.Tensor:
        """``α_t = sin(πt/2)``."""
        return torch.sin(0.5 * math.pi * t)

    def beta(self, t: torch.Tensor) -> torch.Tensor:
        """``β_t = cos(πt/2)``."""
        return torch.cos(0.5 * math.pi * t)

    def d_alpha(self, t: torch.Tensor) -> torch.Tensor:
        """``α'_t = (π/2) cos(πt/2)``."""
        return 0.5 * math.pi * torch.cos(0.5 * math.pi * t)

    def d_beta(self, t: torch.Tensor) -> torch.Tensor:
        """``β'_t = −(π/2) sin(πt/2)``."""
        return -0.5 * math.pi * torch.sin(0.5 * math.pi * t)
