"""Mixtures of diagonal Gaussians with per-input weights: exact sampling and moments (private).

Both the benchmark's conditional plan and the light solver's write
:math:`\\pi(\\cdot|x) = \\sum_k \\gamma_k(x)\\, \\mathcal N(m_k(x), \\operatorname{diag} c_k)`;
this module knows how to draw from such a law and how to take its first two moments, and
reads the times at which their closed-form bridge drifts are asked for.
"""

from __future__ import annotations

from typing import Any

import torch

from sbflow._random import rand, randn

__all__ = ["drift_times", "mixture_moments", "sample_mixture"]


def sample_mixture(
    logits: torch.Tensor,
    means: torch.Tensor,
    variances: torch.Tensor,
    n: int,
    generator: torch.Generator | None,
    dtype: torch.dtype,
) -> torch.Tensor:
    """Draw ``n`` samples per row: component by Gumbel-max on ``logits``, then the Gaussian.

    Args:
        logits: Unnormalised log-weights ``(m, K)`` (any finite values; float64 advised).
        means: Component means ``(m, K, D)``.
        variances: Diagonal variances ``(K, D)``, shared by every row.
        n: Samples per row.
        generator: Randomness.
        dtype: dtype of the result.

    Returns:
        Samples ``(m, n, D)`` in ``dtype``, on the device of ``logits``.
    """
    m, k = logits.shape
    dev = logits.device
    u = rand((m, n, k), dtype=logits.dtype, device=dev, generator=generator)
    # Gumbel-max: argmax(logits + G) is a draw from softmax(logits); the clamp keeps log(0) out.
    gumbel = -torch.log(-torch.log(u.clamp_min(torch.finfo(u.dtype).tiny)))
    comp = (logits.unsqueeze(1) + gumbel).argmax(-1)  # (m, n)
    mean = torch.gather(means, 1, comp.unsqueeze(-1).expand(m, n, means.shape[-1]))
    std = variances.sqrt()[comp]  # (m, n, D)
    z = randn(mean.shape, dtype=mean.dtype, device=dev, generator=generator)
    return (mean + std * z).to(dtype)


def mixture_moments(
    logits: torch.Tensor, means: torch.Tensor, variances: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Mean ``(m, D)`` and covariance ``(m, D, D)`` of each row's mixture.

    :math:`\bar m = \sum_k \gamma_k m_k`, :math:`C = \sum_k \gamma_k(\operatorname{diag} c_k +
    (m_k - \bar m)(m_k - \bar m)^\top)`, computed around the mean to avoid cancellation.
    """
    w = torch.softmax(logits, dim=-1)  # (m, K)
    mean = torch.einsum("mk,mkd->md", w, means)
    centred = (means - mean.unsqueeze(1)) * w.sqrt().unsqueeze(-1)
    cov = centred.transpose(1, 2) @ centred
    cov = cov + torch.diag_embed(w @ variances)
    return mean, cov


def drift_times(t: Any, x64: torch.Tensor) -> torch.Tensor:
    """Times ``t`` of a drift query at the states ``x64`` ``(n, D)``, checked.

    Returns:
        ``t`` as float64 ``(1,)`` or ``(n,)`` on the device of ``x64``.

    Raises:
        ValueError: ``t`` is neither a scalar nor ``n`` times, or leaves ``[0, 1]``.
    """
    tt = torch.as_tensor(t, dtype=torch.float64, device=x64.device).reshape(-1)
    if tt.numel() not in (1, x64.shape[0]):
        raise ValueError(f"t must be a scalar or have shape ({x64.shape[0]},); got {tt.shape}.")
    if bool((tt < 0).any()) or bool((tt > 1).any()):
        raise ValueError("t must lie in [0, 1].")
    return tt
