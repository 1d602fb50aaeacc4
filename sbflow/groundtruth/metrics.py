r"""Scores of a learned bridge against the entropic-OT benchmark's exact answer.

* **BW2-UVP** (Bures–Wasserstein unexplained variance percentage) of the target marginal:
  :math:`100\cdot \mathrm{BW}^2(\hat m, \hat S;\, m_1, S_1) / (\tfrac12 \operatorname{tr} S_1)`
  with the model samples' moments :math:`\hat m, \hat S` and :math:`p_1`'s moments.
* **cBW2-UVP**, the same for the conditional plans, averaged over test inputs:
  :math:`100\cdot \operatorname{mean}_x \mathrm{BW}^2(\text{model moments of }\pi(\cdot|x),
  \text{exact moments}) / (\tfrac12 \operatorname{tr}\operatorname{Cov} p_1)`.
* :math:`\mathrm{BW}^2(m, S; m', S') = \tfrac12\|m - m'\|^2 + \tfrac12\operatorname{tr} S +
  \tfrac12\operatorname{tr} S' - \operatorname{tr}(S^{1/2} S' S^{1/2})^{1/2}` (half the squared
  2-Wasserstein distance between the two Gaussians, the cost :math:`\tfrac12\|x-y\|^2`).
* The **floor**: the score of the exact sampler at the same sample sizes. Moments estimated
  from finitely many samples are off even for a perfect model, so a score is only read next to
  its floor.
* **Path KL** by Girsanov: :math:`\mathrm{KL}(P^*\|\hat P) = \frac{1}{2\varepsilon}\int_0^1
  E_{P^*}\|v^*(X_t, t) - \hat v(X_t, t)\|^2 dt`, on simulated paths of the true bridge.

Reference: Gushchin et al., "Building the bridge of Schrödinger: a continuous entropic optimal
transport benchmark", NeurIPS 2023.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from sbflow._checks import as_samples
from sbflow.gaussian import sqrtm_psd
from sbflow.groundtruth.eot_benchmark import EOTBenchmark

__all__ = [
    "EOTScore",
    "bures_wasserstein2",
    "bw2_uvp",
    "cbw2_uvp",
    "path_kl",
    "sample_moments",
    "score_conditional_sampler",
]

ConditionalSampler = Callable[[torch.Tensor, int], torch.Tensor]
Field = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

_CHUNK_ELEMENTS = 4_000_000  # samples (inputs × draws × D) held at once while scoring


def bures_wasserstein2(
    mean_a: torch.Tensor, cov_a: torch.Tensor, mean_b: torch.Tensor, cov_b: torch.Tensor
) -> torch.Tensor:
    r""":math:`\mathrm{BW}^2` between Gaussians, batched over leading dimensions, in float64.

    Args:
        mean_a: Means ``(..., D)``.
        cov_a: Covariances ``(..., D, D)``.
        mean_b: Means ``(..., D)``.
        cov_b: Covariances ``(..., D, D)``.

    Returns:
        ``(...)``: :math:`\tfrac12\|m_a - m_b\|^2 + \tfrac12\operatorname{tr}(S_a + S_b) -
        \operatorname{tr}(S_a^{1/2} S_b S_a^{1/2})^{1/2}`.

    Example:
        >>> eye = torch.eye(2)
        >>> float(bures_wasserstein2(torch.zeros(2), eye, torch.ones(2), 4 * eye))
        2.0
    """
    ma, sa, mb, sb = (t.to(torch.float64) for t in (mean_a, cov_a, mean_b, cov_b))
    root = sqrtm_psd(sa)
    cross = torch.linalg.eigvalsh(root @ sb @ root).clamp_min(0).sqrt().sum(-1)
    trace = sa.diagonal(dim1=-2, dim2=-1).sum(-1) + sb.diagonal(dim1=-2, dim2=-1).sum(-1)
    return 0.5 * (ma - mb).pow(2).sum(-1) + 0.5 * trace - cross


def sample_moments(samples: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean ``(..., D)`` and unbiased covariance ``(..., D, D)`` over the second-to-last axis.

    Example:
        >>> mean, cov = sample_moments(torch.tensor([[0.0], [2.0]]))
        >>> mean.item(), cov.item()
        (1.0, 2.0)
    """
    s = samples.to(torch.float64)
    n = s.shape[-2]
    if n < 2:
        raise ValueError(f"moments need at least 2 samples per set; got {n}.")
    mean = s.mean(-2)
    centred = s - mean.unsqueeze(-2)
    return mean, centred.transpose(-1, -2) @ centred / (n - 1)


def _half_trace(cov: torch.Tensor) -> float:
    return 0.5 * float(cov.to(torch.float64).diagonal().sum())


def bw2_uvp(samples: Any, target_mean: Any, target_cov: Any) -> float:
    r"""BW2-UVP (%) of ``samples`` ``(n, D)`` against the target's mean ``(D,)`` and covariance.

    :math:`100\cdot\mathrm{BW}^2(\hat m, \hat S; m, S) / (\tfrac12\operatorname{tr} S)`.

    Example:
        >>> gen = torch.Generator().manual_seed(0)
        >>> x = torch.randn(20000, 2, generator=gen, dtype=torch.float64)
        >>> bw2_uvp(x, torch.zeros(2), torch.eye(2)) < 0.1
        True
    """
    s = as_samples(samples, "samples")
    if s.dim() != 2:
        raise ValueError(f"samples must have shape (n, D); got {tuple(s.shape)}.")
    mean = torch.as_tensor(target_mean, dtype=torch.float64, device=s.device)
    cov = torch.as_tensor(target_cov, dtype=torch.float64, device=s.device)
    m_hat, s_hat = sample_moments(s)
    return 100.0 * float(bures_wasserstein2(m_hat, s_hat, mean, cov)) / _half_trace(cov)


def cbw2_uvp(samples: Any, true_means: Any, true_covs: Any, target_cov: Any) -> float:
    r"""cBW2-UVP (%) of conditional samples against the exact conditional moments.

    Args:
        samples: Model draws ``(m, n, D)``: ``n`` samples of :math:`\pi(\cdot|x_i)` per input.
        true_means: Exact conditional means ``(m, D)``.
        true_covs: Exact conditional covariances ``(m, D, D)``.
        target_cov: Covariance ``(D, D)`` of :math:`p_1` (the normaliser
            :math:`\tfrac12\operatorname{tr}\operatorname{Cov}p_1`).

    Example:
        >>> gen = torch.Generator().manual_seed(0)
        >>> draws = torch.randn(4, 5000, 2, generator=gen, dtype=torch.float64)
        >>> means, covs = torch.zeros(4, 2), torch.eye(2).expand(4, 2, 2)
        >>> cbw2_uvp(draws, means, covs, 4 * torch.eye(2)) < 0.1
        True
    """
    s = torch.as_tensor(samples)
    if s.dim() != 3:
        raise ValueError(f"samples must have shape (m, n, D); got {tuple(s.shape)}.")
    means = torch.as_tensor(true_means, dtype=torch.float64, device=s.device)
    covs = torch.as_tensor(true_covs, dtype=torch.float64, device=s.device)
    m_hat, s_hat = sample_moments(s)
    bw = bures_wasserstein2(m_hat, s_hat, means, covs)
    return 100.0 * float(bw.mean()) / _half_trace(torch.as_tensor(target_cov))


@dataclass
class EOTScore:
    """Scores of a conditional sampler on an :class:`~sbflow.groundtruth.EOTBenchmark`.

    Attributes:
        cbw2_uvp: cBW2-UVP (%) of the model's conditional plans.
        bw2_uvp: BW2-UVP (%) of the model's target marginal.
        floor_cbw2_uvp: cBW2-UVP of the exact sampler at the same sample sizes.
        floor_bw2_uvp: BW2-UVP of the exact sampler at the same sample size.
        n_inputs: Test inputs ``x``.
        n_samples: Draws of :math:`\\pi(\\cdot|x)` per input.
        n_marginal: Draws of the target marginal for BW2-UVP.
        dim: Dimension of the benchmark.
        eps: Its :math:`\\varepsilon`.

    Example:
        >>> s = EOTScore(0.5, 0.2, 0.1, 0.05, 200, 1000, 10000, 16, 1.0)
        >>> print(s)
        cBW2-UVP 0.500 (floor 0.100), BW2-UVP 0.200 (floor 0.050); D=16, eps=1
    """

    cbw2_uvp: float
    bw2_uvp: float
    floor_cbw2_uvp: float
    floor_bw2_uvp: float
    n_inputs: int
    n_samples: int
    n_marginal: int
    dim: int
    eps: float

    @property
    def excess_cbw2_uvp(self) -> float:
        """cBW2-UVP above the floor: the part a better model could remove."""
        return self.cbw2_uvp - self.floor_cbw2_uvp

    def __str__(self) -> str:
        return (
            f"cBW2-UVP {self.cbw2_uvp:.3f} (floor {self.floor_cbw2_uvp:.3f}), "
            f"BW2-UVP {self.bw2_uvp:.3f} (floor {self.floor_bw2_uvp:.3f}); "
            f"D={self.dim}, eps={self.eps:g}"
        )


def _conditional_score(
    sampler: ConditionalSampler,
    x: torch.Tensor,
    n: int,
    means: torch.Tensor,
    covs: torch.Tensor,
    target_cov: torch.Tensor,
) -> float:
    chunk = max(1, _CHUNK_ELEMENTS // (n * x.shape[1]))
    total = 0.0
    for lo in range(0, x.shape[0], chunk):
        xs = x[lo : lo + chunk]
        draws = sampler(xs, n)
        expected = (xs.shape[0], n, x.shape[1])
        if not isinstance(draws, torch.Tensor) or tuple(draws.shape) != expected:
            got = tuple(draws.shape) if isinstance(draws, torch.Tensor) else type(draws).__name__
            raise ValueError(f"sampler(x, n) must return a tensor of shape {expected}; got {got}.")
        score = cbw2_uvp(draws.detach(), means[lo : lo + chunk], covs[lo : lo + chunk], target_cov)
        total += score * xs.shape[0]
    return total / x.shape[0]


def score_conditional_sampler(
    benchmark: EOTBenchmark,
    sampler: ConditionalSampler,
    n_inputs: int = 200,
    n_samples: int = 1000,
    n_marginal: int = 10_000,
    generator: torch.Generator | None = None,
    *,
    dtype: torch.dtype | None = None,
    device: Any = None,
) -> EOTScore:
    r"""Score any conditional sampler on the benchmark, beside the exact sampler's floor.

    Draws ``n_inputs`` test inputs from :math:`p_0`, asks ``sampler(x, n_samples)`` for
    draws of the model's :math:`\pi(\cdot|x)`, and compares their moments with the exact ones;
    then ``sampler(x, 1)`` on ``n_marginal`` fresh inputs for the target marginal. The exact
    sampler goes through the same steps (same inputs, same sizes) for the floor.

    Args:
        benchmark: The problem.
        sampler: ``sampler(x, n) -> (len(x), n, D)``: n draws of the model's
            :math:`\pi(\cdot|x)` per row of ``x``. Called on chunks of inputs.
        n_inputs: Test inputs (published: 200).
        n_samples: Draws per input (published: 1000).
        n_marginal: Draws of the target marginal for BW2-UVP.
        generator: Randomness of the inputs and of the floor's exact draws.
        dtype: dtype of the inputs handed to ``sampler`` (default: torch's default).
        device: Their device (default: CPU).

    Returns:
        An :class:`EOTScore`.

    Example:
        >>> bench = EOTBenchmark(dim=2, eps=1.0)
        >>> gen = torch.Generator().manual_seed(0)
        >>> exact = lambda x, n: bench.sample_conditional(x, n, gen)
        >>> s = score_conditional_sampler(bench, exact, 50, 200, 1000, gen)
        >>> s.cbw2_uvp < 2 and s.floor_cbw2_uvp < 2
        True
    """
    if not callable(sampler):
        raise TypeError(f"sampler must be a callable sampler(x, n); got {type(sampler).__name__}.")
    for name, value, least in (
        ("n_inputs", n_inputs, 1),
        ("n_samples", n_samples, 2),
        ("n_marginal", n_marginal, 2),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValueError(f"{name} must be an integer >= {least}; got {value!r}.")
    kw = {"dtype": dtype, "device": device}
    target_mean, target_cov = benchmark.target_moments()
    x = benchmark.sample_input(n_inputs, generator, **kw)
    means, covs = benchmark.conditional_moments(x.to(torch.float64))
    x_marg = benchmark.sample_input(n_marginal, generator, **kw)
    exact: ConditionalSampler = lambda xs, n: benchmark.sample_conditional(xs, n, generator)  # noqa: E731

    def marginal(fn: ConditionalSampler) -> float:
        draws = torch.cat([fn(xs, 1)[:, 0] for xs in x_marg.split(50_000)])
        return bw2_uvp(draws.detach(), target_mean, target_cov)

    args = (means.to(x.device), covs.to(x.device), target_cov)
    return EOTScore(
        cbw2_uvp=_conditional_score(sampler, x, n_samples, *args),
        bw2_uvp=marginal(sampler),
        floor_cbw2_uvp=_conditional_score(exact, x, n_samples, *args),
        floor_bw2_uvp=marginal(exact),
        n_inputs=n_inputs,
        n_samples=n_samples,
        n_marginal=n_marginal,
        dim=benchmark.dim,
        eps=benchmark.eps,
    )


def path_kl(
    benchmark: EOTBenchmark,
    drift: Field,
    n_paths: int = 1000,
    steps: int = 100,
    generator: torch.Generator | None = None,
    *,
    dtype: torch.dtype | None = None,
) -> float:
    r"""Girsanov path KL :math:`\mathrm{KL}(P^*\|\hat P)` of a model drift, in nats.

    :math:`\frac{1}{2\varepsilon}\int_0^1 E\|v^*(X_t, t) - \hat v(X_t, t)\|^2 dt` on
    ``n_paths`` Euler–Maruyama paths of the true bridge (``steps`` steps, trapezoid rule in
    time). The model SDE must use the benchmark's noise :math:`\sqrt\varepsilon` for the
    formula to hold.

    Args:
        benchmark: The problem.
        drift: Model drift ``drift(x, t)`` with ``x`` ``(n, D)`` and ``t`` ``(n,)``.
        n_paths: Simulated paths.
        steps: Time steps.
        generator: Randomness.
        dtype: dtype of the states handed to ``drift`` (default: torch's default dtype).

    Example:
        >>> bench = EOTBenchmark(dim=2, eps=1.0)
        >>> path_kl(bench, bench.drift, n_paths=10, steps=10) < 1e-8
        True
    """
    from sbflow.simulation import integrate_sde

    grid = torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float64)
    x0 = benchmark.sample_input(n_paths, generator, dtype=torch.float64)
    zero = lambda x, t: torch.zeros_like(x)  # noqa: E731
    res = integrate_sde(
        benchmark.drift, zero, x0, g=benchmark.sigma, times=grid, steps=steps, generator=generator
    )
    assert res.trajectory is not None  # times were given
    dtype = dtype or torch.get_default_dtype()
    values = []
    for t, xt in zip(grid, res.trajectory):
        tt = t.expand(n_paths)
        with torch.no_grad():
            model = drift(xt.to(dtype), tt.to(dtype))
        diff = benchmark.drift(xt, tt) - model.to(torch.float64)
        values.append(diff.pow(2).sum(-1).mean())
    integrand = torch.stack(values)
    integral = torch.trapezoid(integrand, grid)
    return float(integral) / (2.0 * benchmark.eps) if math.isfinite(float(integral)) else math.inf
