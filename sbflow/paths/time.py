"""Time samplers: where on ``[0, 1]`` the regression targets are drawn."""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch

from sbflow._random import rand

__all__ = ["TimeSampler", "UniformTime"]


class TimeSampler(ABC):
    """Draws training times ``t`` of shape ``(n,)`` in ``[0, 1]``.

    Subclasses implement :meth:`__call__`; every draw goes through ``generator``.

    Example:
        >>> class Midpoint(TimeSampler):
        ...     def __call__(self, n, *, dtype=torch.float32, device="cpu", generator=None):
        ...         return torch.full((n,), 0.5, dtype=dtype, device=device)
        >>> Midpoint()(2).tolist()
        [0.5, 0.5]
    """

    @abstractmethod
    def __call__(
        self,
        n: int,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Return ``n`` times as a tensor of shape ``(n,)``."""


class UniformTime(TimeSampler):
    """Uniform times on ``[eps, 1 − eps]``: ``t = eps + (1 − 2 eps) U``, ``U ~ U[0, 1)``.

    ``eps > 0`` keeps ``t`` away from the end points, where some targets are singular (the
    Brownian-bridge velocity target has a ``1 / sqrt(t (1 − t))`` factor).

    Args:
        eps: Margin kept from each end point, in ``[0, 0.5)``.

    Example:
        >>> ts = UniformTime(eps=0.01)(1000, generator=torch.Generator().manual_seed(0))
        >>> bool(ts.min() >= 0.01) and bool(ts.max() <= 0.99)
        True
    """

    def __init__(self, eps: float = 0.0) -> None:
        eps = float(eps)
        if not 0.0 <= eps < 0.5:
            raise ValueError(f"eps must lie in [0, 0.5); got {eps!r}.")
        self.eps = eps

    def __call__(
        self,
        n: int,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Return ``n`` uniform times of shape ``(n,)``.

        Example:
            >>> UniformTime()(3).shape
            torch.Size([3])
        """
        u = rand((int(n),), dtype=dtype, device=torch.device(device), generator=generator)
        return self.eps + (1.0 - 2.0 * self.eps) * u

    def __repr__(self) -> str:
        return f"UniformTime(eps={self.eps:g})"
