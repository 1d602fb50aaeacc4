"""The closed-form bridge's fields, simulated, reproduce its marginals (SDE and ODE)."""

from __future__ import annotations

import math

import pytest
import torch

from sbflow.gaussian import GaussianBridge
from sbflow.simulation import integrate_ode, integrate_sde

D = torch.float64
N = 4000
TIMES = [0.0, 0.25, 0.5, 0.75, 1.0]


@pytest.fixture(scope="module")
def bridge() -> GaussianBridge:
    m0 = torch.tensor([-1.0, 0.5, 0.0], dtype=D)
    m1 = torch.tensor([1.0, 0.0, 2.0], dtype=D)
    c0 = torch.tensor([[1.0, 0.3, 0.0], [0.3, 0.5, 0.1], [0.0, 0.1, 0.8]], dtype=D)
    c1 = torch.tensor([[0.6, -0.2, 0.1], [-0.2, 1.5, 0.0], [0.1, 0.0, 0.4]], dtype=D)
    return GaussianBridge(m0, c0, m1, c1, sigma=0.8)


def assert_moments(samples: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor, bias=0.02):
    n = samples.shape[0]
    var = cov.diagonal()
    se_mean = (var / n).sqrt()
    assert bool(((samples.mean(0) - mean).abs() < 4.5 * se_mean + bias).all()), (
        samples.mean(0),
        mean,
    )
    se_cov = ((var[:, None] * var[None, :] + cov**2) / n).sqrt()
    emp = samples.T.cov()
    assert bool(((emp - cov).abs() < 4.5 * se_cov + bias).all()), (emp, cov)


def check_trajectory(br: GaussianBridge, times, trajectory):
    for k, t in enumerate(times):
        mean, cov = br.marginal(float(t))
        assert_moments(trajectory[k], mean, cov)


@pytest.mark.parametrize("g", ["sigma", 0.4, "schedule"])
def test_forward_sde_reproduces_marginals(bridge, g):
    # Any diffusion g gives the same marginals with drift v + (g²/2)·score.
    g_value = {"sigma": bridge.sigma, "schedule": lambda t: 0.5 + t}.get(g, g)
    gen = torch.Generator().manual_seed(0)
    x0 = bridge.sample_marginal(0.0, N, generator=gen)
    res = integrate_sde(
        bridge.velocity, bridge.score, x0, g=g_value, times=TIMES, steps=100, generator=gen
    )
    check_trajectory(bridge, res.times, res.trajectory)


def test_sb_drift_with_sigma_is_the_same_sde(bridge):
    gen = torch.Generator().manual_seed(1)
    x0 = bridge.sample_marginal(0.0, N, generator=gen)
    res = integrate_sde(
        bridge.drift,
        lambda x, t: torch.zeros_like(x),
        x0,
        g=bridge.sigma,
        times=TIMES,
        steps=100,
        generator=gen,
    )
    check_trajectory(bridge, res.times, res.trajectory)


def test_backward_sde_reproduces_marginals(bridge):
    gen = torch.Generator().manual_seed(2)
    x1 = bridge.sample_marginal(1.0, N, generator=gen)
    res = integrate_sde(
        bridge.velocity,
        bridge.score,
        x1,
        g=bridge.sigma,
        times=TIMES,
        steps=100,
        direction="backward",
        generator=gen,
    )
    assert res.times[0] == 1.0 and res.times[-1] == 0.0
    check_trajectory(bridge, res.times, res.trajectory)


def test_probability_flow_ode_reproduces_marginals_and_inverts(bridge):
    gen = torch.Generator().manual_seed(3)
    x0 = bridge.sample_marginal(0.0, N, generator=gen)
    res = integrate_ode(bridge.velocity, x0, TIMES, method="rk4", steps=20)
    check_trajectory(bridge, res.times, res.trajectory)
    back = integrate_ode(bridge.velocity, res.x, method="rk4", steps=20, reverse=True)
    torch.testing.assert_close(back.x, x0, atol=1e-6, rtol=0)


def test_probability_flow_is_the_monge_map_without_noise():
    # σ = 0: the ODE flow of the OT displacement interpolation is the Monge map.
    m0 = torch.zeros(2, dtype=D)
    c0 = torch.tensor([[1.0, 0.4], [0.4, 0.7]], dtype=D)
    c1 = torch.tensor([[2.0, -0.3], [-0.3, 0.5]], dtype=D)
    br = GaussianBridge(m0, c0, torch.tensor([1.0, -1.0], dtype=D), c1, 0.0)
    x0 = br.sample_marginal(0.0, 50, generator=torch.Generator().manual_seed(4))
    res = integrate_ode(br.velocity, x0, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(res.x, br.monge_map(x0), atol=1e-7, rtol=0)


def test_gaussian_marginal_log_likelihood(bridge):
    # The probability-flow CNF started at p0 has log-density log p_1 at t = 1.
    from sbflow.simulation import log_likelihood

    x1 = bridge.sample_marginal(1.0, 10, generator=torch.Generator().manual_seed(5))
    lp = log_likelihood(
        bridge.velocity, x1, lambda z: bridge.log_prob(z, 0.0), atol=1e-8, rtol=1e-8
    )
    torch.testing.assert_close(lp, bridge.log_prob(x1, 1.0), atol=1e-5, rtol=0)
    assert math.isfinite(float(lp.sum()))
