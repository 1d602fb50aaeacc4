r"""Entropic OT with a known answer: the Gaussian-mixture benchmark, regenerated from a seed.

The construction of Gushchin et al. (NeurIPS 2023): pick an input law :math:`p_0` and a
Schrödinger potential :math:`g`; the plan :math:`\pi^*(x, y) = p_0(x)\,\pi^*(y|x)` with

.. math:: \pi^*(y|x) \propto \mathcal N(y \mid x, \varepsilon I)\, g(y)

is then the entropic OT plan (cost :math:`\tfrac12\|x - y\|^2`, regulariser
:math:`\varepsilon\,\mathrm{KL}`, i.e. the static Schrödinger bridge of :math:`dX =
\sqrt\varepsilon\, dW`) between :math:`p_0` and its own second marginal :math:`p_1`. Here

* :math:`p_0 = \sum_{j=1}^3 \beta_j \mathcal N(m_j, s^2 I)`, :math:`s = 0.5`, equal weights,
  means on a permuted grid: coordinate :math:`d` of :math:`(m_1, m_2, m_3)` is a random
  permutation of :math:`(-2, 0, 2)`;
* :math:`g = \sum_{k=1}^5 \alpha_k \mathcal N(\mu_k, v_k I)` with :math:`\alpha_k \propto
  U(0.5, 1.5)`, :math:`\mu_k \sim U[-2, 2]^D`, :math:`v_k \sim U(0.25, 1)`.

Completing the square, :math:`\pi^*(\cdot|x)` is a 5-component mixture with covariances
:math:`\tilde\Sigma_k = (I/\varepsilon + I/v_k)^{-1}`, means :math:`\tilde\Sigma_k(x/\varepsilon
+ \mu_k/v_k)` and weights :math:`\propto \alpha_k \mathcal N(x \mid \mu_k, (v_k + \varepsilon)I)`.
The dynamic bridge is the reference process :math:`h`-transformed by
:math:`h(x, t) = E[g(X_1) \mid X_t = x] = \sum_k \alpha_k \mathcal N(x \mid \mu_k,
(v_k + \varepsilon(1 - t)) I)`, so its drift is

.. math:: v^*(x, t) = \varepsilon \nabla_x \log h(x, t)
          = \sum_k w_k(x, t)\, \frac{\varepsilon(\mu_k - x)}{v_k + \varepsilon(1 - t)},
          \qquad w_k \propto \alpha_k \mathcal N(x \mid \mu_k, (v_k + \varepsilon(1 - t)) I).

Everything is regenerated from ``seed`` on the CPU in float64: nothing is downloaded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from sbflow._checks import as_samples, check_int, check_positive
from sbflow._random import rand, randn
from sbflow.groundtruth._mixture import drift_times, mixture_moments, sample_mixture

__all__ = ["EOTBenchmark"]

_INPUT_GRID = (-2.0, 0.0, 2.0)
_INPUT_STD = 0.5
_N_POTENTIAL = 5
_TARGET_SAMPLES = 50_000  # inputs of the Rao–Blackwellised estimate of p1's moments


@dataclass(eq=False)
class EOTBenchmark:
    r"""One instance of the Gaussian-mixture entropic-OT benchmark (see the module docstring).

    Args:
        dim: Dimension :math:`D`.
        eps: :math:`\varepsilon = \sigma^2`, the variance per unit time of the Brownian
            reference, in data units (``reg = 2ε`` on the cost ``‖x − y‖²``).
        seed: Seed of the instance: the same ``(dim, eps, seed)`` gives the same problem.

    Attributes:
        input_weights: :math:`\beta` ``(3,)``.
        input_means: :math:`m_j` ``(3, D)``.
        input_std: :math:`s` (0.5).
        potential_weights: :math:`\alpha` ``(5,)``.
        potential_means: :math:`\mu_k` ``(5, D)``.
        potential_vars: :math:`v_k` ``(5,)``.

    Example:
        >>> bench = EOTBenchmark(dim=2, eps=1.0, seed=0)
        >>> gen = torch.Generator().manual_seed(0)
        >>> x = bench.sample_input(3, gen)
        >>> bench.sample_conditional(x, 100, gen).shape
        torch.Size([3, 100, 2])
        >>> mean, cov = bench.conditional_moments(x)
        >>> mean.shape, cov.shape
        (torch.Size([3, 2]), torch.Size([3, 2, 2]))
    """

    dim: int
    eps: float
    seed: int = 0
    input_weights: torch.Tensor = field(init=False, repr=False)
    input_means: torch.Tensor = field(init=False, repr=False)
    input_std: float = field(init=False, repr=False, default=_INPUT_STD)
    potential_weights: torch.Tensor = field(init=False, repr=False)
    potential_means: torch.Tensor = field(init=False, repr=False)
    potential_vars: torch.Tensor = field(init=False, repr=False)
    _target: tuple[torch.Tensor, torch.Tensor] | None = field(init=False, repr=False, default=None)

    def __post_init__(self) -> None:
        self.dim = check_int(self.dim, "dim", 1)
        self.eps = check_positive(self.eps, "eps", "ε = σ² is the reference's variance rate.")
        self.seed = check_int(self.seed, "seed")
        gen = torch.Generator().manual_seed(self.seed)
        f64 = torch.float64
        grid = torch.tensor(_INPUT_GRID, dtype=f64)
        perms = torch.stack([torch.randperm(3, generator=gen) for _ in range(self.dim)], dim=1)
        self.input_means = grid[perms]  # (3, D): each coordinate a permutation of the grid
        self.input_weights = torch.full((3,), 1.0 / 3.0, dtype=f64)
        alpha = 0.5 + torch.rand(_N_POTENTIAL, generator=gen, dtype=f64)
        self.potential_weights = alpha / alpha.sum()
        self.potential_means = 4.0 * torch.rand(_N_POTENTIAL, self.dim, generator=gen, dtype=f64)
        self.potential_means -= 2.0
        self.potential_vars = 0.25 + 0.75 * torch.rand(_N_POTENTIAL, generator=gen, dtype=f64)

    # ------------------------------------------------------------------ sampling
    def sample_input(
        self,
        n: int,
        generator: torch.Generator | None = None,
        *,
        dtype: torch.dtype | None = None,
        device: Any = None,
    ) -> torch.Tensor:
        """Draw ``n`` inputs ``(n, D)`` from :math:`p_0`.

        Args:
            n: Number of samples.
            generator: Randomness (on the CPU or on ``device``).
            dtype: dtype of the result (default: torch's default dtype).
            device: Device of the result (default: CPU).

        Example:
            >>> EOTBenchmark(dim=4, eps=1.0).sample_input(5).shape
            torch.Size([5, 4])
        """
        n = check_int(n, "n", 1)
        dtype = dtype or torch.get_default_dtype()
        device = torch.device(device) if device is not None else torch.device("cpu")
        f64 = torch.float64
        u = rand((n,), dtype=f64, device=device, generator=generator)
        comp = torch.bucketize(u, self.input_weights.cumsum(0)[:-1].to(device), right=True)
        z = randn((n, self.dim), dtype=f64, device=device, generator=generator)
        return (self.input_means.to(device)[comp] + self.input_std * z).to(dtype)

    def sample_conditional(
        self, x: Any, n: int, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        r"""Draw ``n`` exact samples of :math:`\pi^*(\cdot|x)` for every row of ``x``.

        Args:
            x: Inputs ``(m, D)``.
            n: Samples per input.
            generator: Randomness.

        Returns:
            ``(m, n, D)``, in the dtype and on the device of ``x``.

        Example:
            >>> bench = EOTBenchmark(dim=2, eps=0.1)
            >>> bench.sample_conditional(torch.zeros(1, 2), 4).shape
            torch.Size([1, 4, 2])
        """
        x_t = self._inputs(x)
        logits, means, variances = self._plan(x_t)
        return sample_mixture(logits, means, variances, check_int(n, "n", 1), generator, x_t.dtype)

    def sample_target(
        self,
        n: int,
        generator: torch.Generator | None = None,
        *,
        dtype: torch.dtype | None = None,
        device: Any = None,
    ) -> torch.Tensor:
        r"""Draw ``n`` samples ``(n, D)`` of :math:`p_1`: an input, then one draw of
        :math:`\pi^*(\cdot|x)`.

        Example:
            >>> EOTBenchmark(dim=3, eps=1.0).sample_target(6).shape
            torch.Size([6, 3])
        """
        x = self.sample_input(n, generator, dtype=torch.float64, device=device)
        y = self.sample_conditional(x, 1, generator)[:, 0]
        return y.to(dtype or torch.get_default_dtype())

    def sample_plan(
        self, n: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw ``n`` pairs ``(x, y)`` of the plan :math:`\\pi^*`, each ``(n, D)``.

        Example:
            >>> x, y = EOTBenchmark(dim=2, eps=1.0).sample_plan(8)
            >>> x.shape == y.shape
            True
        """
        x = self.sample_input(n, generator)
        return x, self.sample_conditional(x, 1, generator)[:, 0]

    # ------------------------------------------------------------------ closed forms
    def conditional_moments(self, x: Any) -> tuple[torch.Tensor, torch.Tensor]:
        r"""Exact mean ``(m, D)`` and covariance ``(m, D, D)`` of :math:`\pi^*(\cdot|x)`.

        :math:`E[y|x] = \sum_k \gamma_k(x) M_k(x)` and
        :math:`\operatorname{Cov}[y|x] = \sum_k \gamma_k (\tilde\Sigma_k + (M_k - E[y|x])
        (M_k - E[y|x])^\top)`, with the component means :math:`M_k(x)` and weights
        :math:`\gamma_k(x)` of the module docstring. Results in the dtype of ``x``.

        Example:
            >>> bench = EOTBenchmark(dim=2, eps=1.0)
            >>> mean, cov = bench.conditional_moments(torch.zeros(4, 2))
            >>> bool((torch.linalg.eigvalsh(cov) > 0).all())
            True
        """
        x_t = self._inputs(x)
        mean, cov = mixture_moments(*self._plan(x_t))
        return mean.to(x_t.dtype), cov.to(x_t.dtype)

    def drift(self, x: Any, t: Any) -> torch.Tensor:
        r"""Exact Schrödinger-bridge drift :math:`v^*(x, t) = \varepsilon\nabla_x\log h(x, t)`.

        The bridge is :math:`dX_t = v^*(X_t, t)\,dt + \sqrt\varepsilon\, dW_t` from
        :math:`X_0 \sim p_0`; its end points follow :math:`\pi^*`.

        Args:
            x: States ``(n, D)``.
            t: A time in ``[0, 1]`` or ``n`` times ``(n,)``.

        Returns:
            ``(n, D)`` in the dtype of ``x``.

        Example:
            >>> bench = EOTBenchmark(dim=2, eps=1.0)
            >>> bench.drift(torch.zeros(3, 2), 0.5).shape
            torch.Size([3, 2])
        """
        x_t = self._inputs(x)
        x64 = x_t.to(torch.float64)
        tt = drift_times(t, x64)
        mu, v, alpha = self._potential(x64.device)
        var = v + self.eps * (1.0 - tt.unsqueeze(-1))  # (n or 1, K)
        diff = mu.unsqueeze(0) - x64.unsqueeze(1)  # (n, K, D)
        logits = alpha.log() - 0.5 * self.dim * var.log() - 0.5 * diff.pow(2).sum(-1) / var
        w = torch.softmax(logits, dim=-1) / var * self.eps  # (n, K)
        return torch.einsum("nk,nkd->nd", w, diff).to(x_t.dtype)

    def target_moments(self) -> tuple[torch.Tensor, torch.Tensor]:
        r"""Mean ``(D,)`` and covariance ``(D, D)`` of :math:`p_1`, float64.

        Estimated once per instance (then cached) without sampling :math:`y`: from 50 000
        seeded inputs and the exact conditional moments,
        :math:`E[y] = E_x[E[y|x]]` and :math:`\operatorname{Cov}[y] = E_x[\operatorname{Cov}
        [y|x]] + \operatorname{Cov}_x[E[y|x]]`; its relative error is about 0.5 %.

        Example:
            >>> mean, cov = EOTBenchmark(dim=2, eps=1.0).target_moments()
            >>> cov.shape
            torch.Size([2, 2])
        """
        if self._target is None:
            gen = torch.Generator().manual_seed(self.seed + 7_919)
            x = self.sample_input(_TARGET_SAMPLES, gen, dtype=torch.float64)
            total_mean = torch.zeros(self.dim, dtype=torch.float64)
            second = torch.zeros(self.dim, self.dim, dtype=torch.float64)
            for chunk in x.split(max(1, 4_000_000 // (_N_POTENTIAL * self.dim))):
                logits, means, variances = self._plan(chunk)
                w = torch.softmax(logits, dim=-1)  # (m, K)
                total_mean += torch.einsum("mk,mkd->d", w, means)
                # E[yyᵀ|x] = Σ_k w_k (M_k M_kᵀ + Σ̃_k), summed over the inputs as one product.
                rows = (means * w.sqrt().unsqueeze(-1)).reshape(-1, self.dim)
                second += rows.T @ rows + torch.diag(w.sum(0) @ variances)
            total_mean /= _TARGET_SAMPLES
            cov = second / _TARGET_SAMPLES - torch.outer(total_mean, total_mean)
            self._target = (total_mean, 0.5 * (cov + cov.T))
        return self._target

    # ------------------------------------------------------------------ internals
    def _potential(self, device: torch.device) -> tuple[torch.Tensor, ...]:
        return (
            self.potential_means.to(device),
            self.potential_vars.to(device),
            self.potential_weights.to(device),
        )

    def _inputs(self, x: Any) -> torch.Tensor:
        x_t = as_samples(x, "x")
        if x_t.dim() != 2 or x_t.shape[1] != self.dim:
            raise ValueError(
                f"x must have shape (n, {self.dim}) for this {self.dim}-D benchmark; "
                f"got {tuple(x_t.shape)}."
            )
        return x_t

    def _plan(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Logits ``(m, K)``, means ``(m, K, D)`` and variances ``(K, D)`` of π*(·|x), float64."""
        x64 = x.to(torch.float64)
        mu, v, alpha = self._potential(x64.device)
        eps = self.eps
        var = v + eps
        logits = (
            alpha.log()
            - 0.5 * self.dim * var.log()
            - 0.5 * (x64.unsqueeze(1) - mu).pow(2).sum(-1) / var
        )
        post_var = eps * v / (eps + v)  # (1/ε + 1/v_k)⁻¹
        means = (v.unsqueeze(-1) * x64.unsqueeze(1) + eps * mu) / var.unsqueeze(-1)
        variances = post_var.unsqueeze(-1).expand(-1, self.dim)
        return logits, means, variances

    def __repr__(self) -> str:
        return f"EOTBenchmark(dim={self.dim}, eps={self.eps:g}, seed={self.seed})"

    @property
    def sigma(self) -> float:
        r"""Noise level :math:`\sigma = \sqrt\varepsilon` of the reference :math:`dX = \sigma dW`.

        Example:
            >>> EOTBenchmark(dim=2, eps=4.0).sigma
            2.0
        """
        return math.sqrt(self.eps)
