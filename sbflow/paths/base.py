"""Probability paths between coupled pairs: the result type and the abstract interfaces.

A path turns a coupled pair ``(x0, x1)`` and a time ``t`` into a point ``x_t`` of the
conditional path ``p_t(x | x0, x1)`` and the regression targets at that point: the conditional
velocity ``u_t`` and, for noisy paths, the conditional score ``∇_x log p_t(x_t | x0, x1)``.

:class:`AffinePath` covers every Gaussian path of the form

    x_t = α_t x1 + β_t x0 + σ_t ε,      ε ~ N(0, I),
    u_t = α'_t x1 + β'_t x0 + σ'_t ε,
    ∇_x log p_t(x_t | x0, x1) = −ε / σ_t          (where σ_t > 0).

A new schedule is a small subclass implementing ``alpha`` and ``beta`` (and ``sigma`` for a
noisy path); the derivatives default to forward-mode autodiff of those functions.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import torch

from sbflow._checks import as_samples
from sbflow._random import randn
from sbflow.paths.time import TimeSampler, UniformTime

__all__ = ["AffinePath", "PathSample", "ProbabilityPath"]


@dataclass
class PathSample:
    """A batch of points on conditional paths with their regression targets.

    Attributes:
        t: Times ``(n,)``.
        x0: Source end points ``(n, *dims)`` (after coupling).
        x1: Target end points ``(n, *dims)``.
        xt: Points on the paths ``(n, *dims)``.
        ut: Conditional velocity targets ``d x_t / dt`` at fixed noise ``(n, *dims)``.
        noise: The standard normal ``ε`` used for ``xt`` ``(n, *dims)``, or ``None`` for a
            path without noise.
        score: Conditional score targets ``∇_x log p_t(x_t | x0, x1) = −ε / σ_t``
            ``(n, *dims)``, or ``None`` for a path without noise. Rows with ``σ_t = 0``
            (only at the end points of a bridge) hold zeros.
        std: Noise level ``σ_t`` of each row ``(n,)`` (zeros for a path without noise).

    Example:
        >>> s = PathSample(
        ...     t=torch.zeros(2), x0=torch.zeros(2, 1), x1=torch.ones(2, 1), xt=torch.zeros(2, 1),
        ...     ut=torch.ones(2, 1), noise=None, score=None, std=torch.zeros(2))
        >>> len(s)
        2
    """

    t: torch.Tensor
    x0: torch.Tensor
    x1: torch.Tensor
    xt: torch.Tensor
    ut: torch.Tensor
    noise: torch.Tensor | None
    score: torch.Tensor | None
    std: torch.Tensor

    def __len__(self) -> int:
        return int(self.t.shape[0])

    def to(self, *args: Any, **kwargs: Any) -> PathSample:
        """Move (or cast) every tensor field, like ``Tensor.to``.

        Example:
            >>> s = PathSample(torch.zeros(1), *(torch.zeros(1, 2),) * 4, None, None,
            ...                torch.zeros(1))
            >>> s.to(torch.float64).xt.dtype
            torch.float64
        """
        moved = {
            k: (None if v is None else v.to(*args, **kwargs)) for k, v in self.__dict__.items()
        }
        return PathSample(**moved)


def _as_pair(x0: Any, x1: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate a coupled batch: two tensors of identical shape ``(n, *dims)``."""
    if not isinstance(x0, torch.Tensor):
        x0 = as_samples(x0, "x0")
    if not isinstance(x1, torch.Tensor):
        x1 = as_samples(x1, "x1")
    if x0.dim() < 2 or x1.dim() < 2:
        raise ValueError(
            f"x0 and x1 must have shape (n, *dims); got {tuple(x0.shape)} and {tuple(x1.shape)}. "
            f"For one-dimensional points use x.reshape(-1, 1)."
        )
    if x0.shape != x1.shape:
        raise ValueError(
            f"a path needs coupled pairs of equal shape; got x0 {tuple(x0.shape)} and "
            f"x1 {tuple(x1.shape)}. Pair the batches first (sbflow.matching.Matcher)."
        )
    if x0.device != x1.device:
        raise ValueError(f"x0 is on {x0.device} but x1 is on {x1.device}; move both to one device.")
    if not x0.is_floating_point() or not x1.is_floating_point():
        raise TypeError("x0 and x1 must be floating-point tensors.")
    if x0.dtype != x1.dtype:
        dtype = torch.promote_types(x0.dtype, x1.dtype)
        x0, x1 = x0.to(dtype), x1.to(dtype)
    return x0, x1


def _as_times(t: Any, n: int, like: torch.Tensor) -> torch.Tensor:
    """Times as a ``(n,)`` tensor in ``like``'s dtype and device (scalars are broadcast)."""
    tt = torch.as_tensor(t, dtype=like.dtype, device=like.device)
    if tt.dim() == 0 or (tt.dim() == 1 and tt.shape[0] == 1):
        return tt.reshape(1).repeat(n)
    if tt.dim() == 2 and tt.shape[1] == 1:
        tt = tt[:, 0]
    if tt.dim() != 1 or tt.shape[0] != n:
        raise ValueError(f"t must be a scalar or have shape ({n},); got {tuple(tt.shape)}.")
    return tt


def _expand(c: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Reshape per-row coefficients ``(n,)`` to broadcast against ``(n, *dims)``."""
    return c.reshape(-1, *([1] * (x.dim() - 1)))


class ProbabilityPath(ABC):
    """A family of conditional paths ``p_t(x | x0, x1)`` with velocity and score targets.

    Subclasses implement :meth:`sample`, :meth:`mean` and :meth:`std`.

    Attributes:
        t_eps: Default distance of training times from the end points (see
            :meth:`time_sampler`).

    Example:
        >>> from sbflow.paths import BrownianBridgePath, LinearPath
        >>> paths = [LinearPath(), BrownianBridgePath(sigma=0.5)]
        >>> [p.has_noise for p in paths], [p.std(0.5).item() for p in paths]
        ([False, True], [0.0, 0.25])
    """

    t_eps: float = 0.0

    @abstractmethod
    def sample(
        self,
        x0: torch.Tensor,
        x1: torch.Tensor,
        t: torch.Tensor | float | None = None,
        *,
        generator: torch.Generator | None = None,
    ) -> PathSample:
        """Sample points and targets on the paths between coupled pairs ``x0[k]``, ``x1[k]``."""

    @abstractmethod
    def mean(self, x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
        """Mean ``μ_t(x0, x1)`` of the conditional path, shape ``(n, *dims)``."""

    @abstractmethod
    def std(self, t: torch.Tensor | float) -> torch.Tensor:
        """Standard deviation ``σ_t`` of the conditional path (same shape as ``t``)."""

    @property
    def has_noise(self) -> bool:
        """Whether samples carry Gaussian noise (and hence a score target)."""
        return False

    def time_sampler(self) -> TimeSampler:
        """The default training-time sampler: ``UniformTime(self.t_eps)``.

        Example:
            >>> from sbflow.paths import BrownianBridgePath
            >>> BrownianBridgePath().time_sampler()  # keeps t off the singular end points
            UniformTime(eps=0.001)
        """
        return UniformTime(self.t_eps)


class AffinePath(ProbabilityPath):
    """Gaussian path ``x_t = α_t x1 + β_t x0 + σ_t ε`` given by a schedule ``(α, β, σ)``.

    Subclasses implement :meth:`alpha` and :meth:`beta` (and :meth:`sigma` for noisy
    paths). Each maps times ``(n,)`` to coefficients ``(n,)``. The derivatives
    :meth:`d_alpha`, :meth:`d_beta`, :meth:`d_sigma` default to forward-mode autodiff of
    those functions; override them where a closed form is cheaper or a guard is needed.

    Targets: ``u_t = α'_t x1 + β'_t x0 + σ'_t ε`` and score ``−ε / σ_t`` (zero where
    ``σ_t = 0``, where the conditional law is a point mass and the score is undefined).

    Example:
        >>> class Cubic(AffinePath):
        ...     def alpha(self, t): return t**3
        ...     def beta(self, t): return 1 - t**3
        >>> s = Cubic().sample(torch.zeros(2, 1), torch.ones(2, 1), t=0.5)
        >>> s.xt.flatten().tolist(), s.ut.flatten().tolist()
        ([0.125, 0.125], [0.75, 0.75])
    """

    @abstractmethod
    def alpha(self, t: torch.Tensor) -> torch.Tensor:
        """Weight ``α_t`` of the target end point ``x1``."""

    @abstractmethod
    def beta(self, t: torch.Tensor) -> torch.Tensor:
        """Weight ``β_t`` of the source end point ``x0``."""

    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        """Noise level ``σ_t`` (default: zero, no noise)."""
        return torch.zeros_like(t)

    def _derivative(self, fn: Any, t: torch.Tensor) -> torch.Tensor:
        # fn is elementwise: one jvp with unit tangents gives d fn(t)_k / d t_k for every row.
        # torch.func (not torch.autograd) so that it nests inside users' own func transforms.
        t = t.detach().clone()
        value, tangent = torch.func.jvp(fn, (t,), (torch.ones_like(t),))
        return tangent if tangent is not None else torch.zeros_like(value)

    def d_alpha(self, t: torch.Tensor) -> torch.Tensor:
        """Time derivative ``α'_t`` (autodiff of :meth:`alpha` unless overridden)."""
        return self._derivative(self.alpha, t)

    def d_beta(self, t: torch.Tensor) -> torch.Tensor:
        """Time derivative ``β'_t`` (autodiff of :meth:`beta` unless overridden)."""
        return self._derivative(self.beta, t)

    def d_sigma(self, t: torch.Tensor) -> torch.Tensor:
        """Time derivative ``σ'_t`` (autodiff of :meth:`sigma` unless overridden)."""
        return self._derivative(self.sigma, t)

    @property
    def has_noise(self) -> bool:
        """Whether :meth:`sigma` is overridden (subclasses with a σ parameter refine this)."""
        return type(self).sigma is not AffinePath.sigma

    def mean(self, x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
        """Mean ``μ_t = α_t x1 + β_t x0`` of shape ``(n, *dims)``.

        Example:
            >>> from sbflow.paths import LinearPath
            >>> LinearPath().mean(torch.zeros(1, 2), torch.ones(1, 2), 0.25).tolist()
            [[0.25, 0.25]]
        """
        x0, x1 = _as_pair(x0, x1)
        tt = _as_times(t, x0.shape[0], x0)
        return _expand(self.alpha(tt), x1) * x1 + _expand(self.beta(tt), x0) * x0

    def std(self, t: torch.Tensor | float) -> torch.Tensor:
        """Noise level ``σ_t`` with the shape of ``t``.

        Example:
            >>> from sbflow.paths import BrownianBridgePath
            >>> BrownianBridgePath(sigma=2.0).std(torch.tensor([0.5])).tolist()
            [1.0]
        """
        tt = torch.as_tensor(t, dtype=torch.get_default_dtype()) if not torch.is_tensor(t) else t
        if not self.has_noise:
            return torch.zeros_like(tt)
        return self.sigma(tt)

    def sample(
        self,
        x0: torch.Tensor,
        x1: torch.Tensor,
        t: torch.Tensor | float | None = None,
        *,
        generator: torch.Generator | None = None,
    ) -> PathSample:
        """Points ``x_t`` and targets on the paths between the rows of ``x0`` and ``x1``.

        Args:
            x0: Source end points ``(n, *dims)``, already paired row by row with ``x1``.
            x1: Target end points ``(n, *dims)``.
            t: Times: ``None`` (drawn by :meth:`time_sampler`), a scalar or ``(n,)``.
            generator: Seeds the time and noise draws (times first, then noise).

        Returns:
            A :class:`PathSample` in the dtype and on the device of ``x0``.

        Example:
            >>> from sbflow.paths import BrownianBridgePath
            >>> g = torch.Generator().manual_seed(0)
            >>> s = BrownianBridgePath(0.5).sample(torch.zeros(4, 2), torch.ones(4, 2), generator=g)
            >>> s.xt.shape, s.std.shape
            (torch.Size([4, 2]), torch.Size([4]))
            >>> torch.equal(s.xt, s.t[:, None] + s.std[:, None] * s.noise)  # x_t = t·1 + σ_t ε
            True
            >>> torch.allclose(s.score, -s.noise / s.std[:, None])
            True
        """
        x0, x1 = _as_pair(x0, x1)
        n = x0.shape[0]
        if t is None:
            tt = self.time_sampler()(n, dtype=x0.dtype, device=x0.device, generator=generator)
        else:
            tt = _as_times(t, n, x0)
        a, b = _expand(self.alpha(tt), x1), _expand(self.beta(tt), x0)
        da, db = _expand(self.d_alpha(tt), x1), _expand(self.d_beta(tt), x0)
        xt = a * x1 + b * x0
        ut = da * x1 + db * x0
        if not self.has_noise:
            return PathSample(tt, x0, x1, xt, ut, None, None, torch.zeros_like(tt))
        std = self.sigma(tt)
        eps = randn(tuple(x0.shape), dtype=x0.dtype, device=x0.device, generator=generator)
        s, ds = _expand(std, x0), _expand(self.d_sigma(tt), x0)
        xt = xt + s * eps
        ut = ut + ds * eps
        positive = s > 0
        score = torch.where(positive, -eps / torch.where(positive, s, torch.ones_like(s)), 0.0)
        return PathSample(tt, x0, x1, xt, ut, eps, score, std)

    def __repr__(self) -> str:
        params = ", ".join(
            f"{k.removesuffix('_value')}={v:g}"
            for k, v in vars(self).items()
            if isinstance(v, float)
        )
        return f"{type(self).__name__}({params})"
