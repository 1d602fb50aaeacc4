"""σ is in the data's units per unit of the user's time, whatever the standardisation.

Fast checks use invariances (the standardised problem, hence the fit, must not change when
the data are rescaled together with σ, or time is rescaled together with σ²); the slow ones
compare with the closed-form Gaussian Schrödinger bridge.
"""

from __future__ import annotations

import math

import pytest
import torch

import sbflow
from sbflow.gaussian import GaussianBridge

TINY = dict(steps=40, batch_size=64, hidden=16, depth=2, progress=False, prefetch=0)
SHIFT = torch.tensor([40.0, -25.0])


def _sets(n: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(n, 2, generator=g) * torch.tensor([1.0, 0.5])
    x1 = torch.randn(n, 2, generator=g) + torch.tensor([3.0, 0.0])
    return x0, x1


def test_rescaled_data_with_rescaled_sigma_give_the_same_bridge() -> None:
    x0, x1 = _sets()
    small = sbflow.fit(x0, x1, method="sb-cfm", sigma=0.4, **TINY)
    big = sbflow.fit(10 * x0 + SHIFT, 10 * x1 + SHIFT, method="sb-cfm", sigma=4.0, **TINY)
    assert big.sigma == 4.0 and small.sigma == 0.4
    assert big.sigma_internal == pytest.approx(small.sigma_internal, rel=1e-5)
    probe = x0[:32]
    torch.testing.assert_close(
        big.transport(10 * probe + SHIFT, sde=False),
        10 * small.transport(probe, sde=False) + SHIFT,
        atol=2e-3 * 10,
        rtol=0,
    )


def test_times_in_days_with_sigma_per_day() -> None:
    """Over T days a σ per day spreads like σ·√T per unit of normalised time."""
    x0, x1 = _sets()
    unit = sbflow.fit(x0, x1, method="sb-cfm", sigma=0.6, **TINY)
    days = sbflow.fit([x0, x1], times=[0.0, 4.0], method="sb-cfm", sigma=0.3, **TINY)
    assert days.sigma_internal == pytest.approx(unit.sigma_internal, rel=1e-6)
    probe = x0[:32]
    torch.testing.assert_close(
        days.transport(probe, t_end=4.0, sde=False), unit.transport(probe, sde=False)
    )


def test_default_sigma_is_resolved_in_data_units() -> None:
    x0, x1 = _sets()
    bridge = sbflow.fit(10 * x0, 10 * x1, method="sb-cfm", **{**TINY, "steps": 1})
    pooled = torch.cat([10 * x0, 10 * x1])
    s_data = math.sqrt(float(pooled.var(0, unbiased=False).mean()))
    assert bridge.sigma == pytest.approx(0.5 * s_data, rel=1e-5)
    assert bridge.sigma_internal == pytest.approx(0.5, rel=1e-5)
    assert bridge.options["sigma"] == bridge.sigma


def test_per_feature_standardisation_is_refused_with_noise() -> None:
    x0, x1 = _sets()
    with pytest.raises(ValueError, match="anisotropic"):
        sbflow.fit(x0, x1, method="sb-cfm", normalise="features", **TINY)
    with pytest.raises(ValueError, match="anisotropic"):
        sbflow.fit(x0, x1, method="i-cfm", sigma=0.1, normalise="features", **TINY)
    bridge = sbflow.fit(x0, x1, method="ot-cfm", normalise="features", **{**TINY, "steps": 2})
    assert bridge.sigma == 0.0


# -- known answer: the closed-form Gaussian Schrödinger bridge -------------------------------

MU0, MU1 = torch.tensor([50.0, -20.0]), torch.tensor([80.0, -10.0])
COV0 = 100.0 * torch.tensor([[1.0, 0.4], [0.4, 0.6]])
COV1 = 100.0 * torch.tensor([[0.5, -0.2], [-0.2, 1.2]])


def _conditional(oracle: GaussianBridge, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean ``(k, d)`` and covariance ``(d, d)`` of X1 | X0 = x under the oracle's plan."""
    c = oracle.cross_covariance().double()  # Cov(X0, X1)
    k = c.T @ torch.linalg.inv(oracle.cov0.double())
    mean = oracle.mean1.double() + (x.double() - oracle.mean0.double()) @ k.T
    return mean, oracle.cov1.double() - k @ c


def _check_conditionals(bridge: sbflow.Bridge, oracle: GaussianBridge, tol: float) -> None:
    probes = oracle.mean0 + torch.tensor([[0.0, 0.0], [8.0, 4.0], [-6.0, 5.0]])
    mean, cov = _conditional(oracle, probes)
    scale = float(torch.linalg.eigvalsh(cov).max().sqrt())
    for k in range(len(probes)):
        x = probes[k].expand(2000, 2)
        y = bridge.transport(x, steps=100, generator=torch.Generator().manual_seed(k)).double()
        err_mean = float((y.mean(0) - mean[k]).norm()) / scale
        err_cov = float((torch.cov(y.T) - cov).norm() / cov.norm())
        assert err_mean < tol and err_cov < 1.5 * tol, (k, err_mean, err_cov)


@pytest.mark.slow
@pytest.mark.parametrize("normalise", [True, False])
def test_sb_cfm_matches_the_gaussian_bridge_in_data_units(normalise: bool) -> None:
    sigma = 6.0  # data units; the data have a scale of ~10
    oracle = GaussianBridge(MU0, COV0, MU1, COV1, sigma)
    g = torch.Generator().manual_seed(0)
    x0 = oracle.sample_marginal(0.0, 4000, generator=g).float()
    x1 = oracle.sample_marginal(1.0, 4000, generator=g).float()
    bridge = sbflow.fit(x0, x1, method="sb-cfm", sigma=sigma, normalise=normalise,
                        steps=1500, progress=False, lr=3e-3)  # fmt: skip
    _check_conditionals(bridge, oracle, tol=0.2)


@pytest.mark.slow
def test_three_snapshots_in_days_match_the_gaussian_bridge() -> None:
    """Snapshots at days 0, 1 and 3 of one Gaussian bridge over 3 days (σ per day)."""
    sigma_day = 6.0 / math.sqrt(3.0)
    oracle = GaussianBridge(MU0, COV0, MU1, COV1, 6.0)  # on τ = t / 3 days: σ_τ = σ_day·√3
    g = torch.Generator().manual_seed(1)
    snaps = [oracle.sample_marginal(t / 3.0, 4000, generator=g).float() for t in (0.0, 1.0, 3.0)]
    bridge = sbflow.fit(snaps, times=[0.0, 1.0, 3.0], method="sb-cfm", sigma=sigma_day,
                        steps=1500, progress=False, lr=3e-3)  # fmt: skip
    assert bridge.sigma == pytest.approx(sigma_day)
    _check_conditionals(bridge, oracle, tol=0.25)
