"""integrate_sde: Ornstein–Uhlenbeck closed forms, reversal, seeding and argument checks."""

from __future__ import annotations

import math

import pytest
import torch

from sbflow.simulation import BridgeSDE, integrate_sde

D = torch.float64
N = 4000


def zeros(x, t):
    return torch.zeros_like(x)


def ou_moments(m0: float, theta: float, g: float, t: float) -> tuple[float, float]:
    return m0 * math.exp(-theta * t), g**2 / (2 * theta) * (1 - math.exp(-2 * theta * t))


@pytest.mark.parametrize("method", ["euler", "srk"])
def test_ornstein_uhlenbeck_moments(method):
    # dx = -θ x dt + g dW, written as velocity -θx and score 0.
    theta, g = 1.5, 0.8
    x0 = torch.full((N, 2), 2.0, dtype=D)
    gen = torch.Generator().manual_seed(0)
    times = [0.0, 0.3, 1.0]
    res = integrate_sde(
        lambda x, t: -theta * x,
        zeros,
        x0,
        g=g,
        times=times,
        steps=200,
        method=method,
        generator=gen,
    )
    assert res.trajectory.shape == (3, N, 2)
    assert res.times.tolist() == times
    for k, t in enumerate(times[1:], start=1):
        mean, var = ou_moments(2.0, theta, g, t)
        xs = res.trajectory[k]
        se_mean = math.sqrt(var / xs.numel())
        assert abs(float(xs.mean()) - mean) < 4 * se_mean + 0.01  # + Euler bias
        se_var = var * math.sqrt(2 / xs.numel())
        assert abs(float(xs.var()) - var) < 4 * se_var + 0.01


def test_score_term_enters_with_g_squared_over_two():
    # velocity 0, score -x: forward drift -(g²/2) x -> OU with θ = g²/2.
    g = 1.2
    theta = g**2 / 2
    x0 = torch.full((N, 1), 1.0, dtype=D)
    res = integrate_sde(
        zeros, lambda x, t: -x, x0, g=g, steps=200, generator=torch.Generator().manual_seed(1)
    )
    mean, var = ou_moments(1.0, theta, g, 1.0)
    assert abs(float(res.x.mean()) - mean) < 4 * math.sqrt(var / N) + 0.01
    assert abs(float(res.x.var()) - var) < 4 * var * math.sqrt(2 / N) + 0.01


def test_backward_direction_reverses_the_velocity_and_keeps_the_score_sign():
    # Backward with velocity c·x, score 0, g = 0: in τ = 1 - t, dx/dτ = -c x.
    c = 0.7
    x1 = torch.ones(3, 2, dtype=D)
    res = integrate_sde(lambda x, t: c * x, None, x1, g=0.0, steps=400, direction="backward")
    assert res.times.tolist() == [1.0, 0.0]
    torch.testing.assert_close(res.x, x1 * math.exp(-c), atol=2e-3, rtol=0)
    # velocity 0, score -x: backward drift +(g²/2)·(-x): OU again.
    g = 1.0
    out = integrate_sde(
        zeros,
        lambda x, t: -x,
        torch.ones(N, 1, dtype=D),
        g=g,
        steps=200,
        direction="backward",
        generator=torch.Generator().manual_seed(2),
    )
    mean, var = ou_moments(1.0, g**2 / 2, g, 1.0)
    assert abs(float(out.x.mean()) - mean) < 4 * math.sqrt(var / N) + 0.01


def test_time_seen_by_the_fields():
    seen = []

    def field(x, t):
        seen.append(float(t[0]))
        assert t.shape == (x.shape[0],)
        return torch.zeros_like(x)

    integrate_sde(field, field, torch.zeros(4, 3), g=1.0, steps=10, direction="backward")
    assert max(seen) == pytest.approx(1.0) and min(seen) >= 0.0
    assert seen[0] == pytest.approx(1.0)


def test_seeded_runs_are_reproducible_and_seeds_differ():
    x0 = torch.zeros(50, 2, 2)  # (n, *dims) with dims of rank 2

    def run(seed):
        return integrate_sde(
            zeros,
            zeros,
            x0,
            g=1.0,
            times=[0.0, 0.5, 1.0],
            steps=20,
            generator=torch.Generator().manual_seed(seed),
        )

    a, b, c = run(3), run(3), run(4)
    assert a.x.shape == (50, 2, 2)
    assert torch.equal(a.trajectory, b.trajectory)
    assert not torch.equal(a.x, c.x)


def test_brownian_increments_have_unit_rate():
    res = integrate_sde(
        zeros,
        zeros,
        torch.zeros(N, 2, dtype=D),
        g=2.0,
        steps=50,
        generator=torch.Generator().manual_seed(5),
    )
    assert abs(float(res.x.var()) - 4.0) < 4 * 4.0 * math.sqrt(2 / res.x.numel())


def test_callable_g():
    # g(t) = t: variance at 1 is ∫ t² dt = 1/3.
    res = integrate_sde(
        zeros,
        zeros,
        torch.zeros(N, 2, dtype=D),
        g=lambda t: t,
        steps=200,
        generator=torch.Generator().manual_seed(6),
    )
    assert abs(float(res.x.var()) - 1 / 3) < 4 * (1 / 3) * math.sqrt(2 / res.x.numel()) + 0.005


def test_zero_g_is_the_probability_flow_ode():
    res = integrate_sde(lambda x, t: -x, None, torch.ones(2, 2, dtype=D), g=0.0, steps=1000)
    torch.testing.assert_close(res.x, torch.full((2, 2), math.exp(-1), dtype=D), atol=1e-3, rtol=0)
    assert res.nfe >= 1000


def test_errors():
    x = torch.zeros(3, 2)
    with pytest.raises(ValueError, match="score"):
        integrate_sde(zeros, None, x, g=1.0)
    with pytest.raises(ValueError, match="score"):
        integrate_sde(zeros, None, x, g=lambda t: 0.0)
    with pytest.raises(ValueError, match="direction"):
        integrate_sde(zeros, zeros, x, direction="sideways")
    with pytest.raises(ValueError, match="method"):
        integrate_sde(zeros, zeros, x, method="heun")
    with pytest.raises(ValueError, match="steps"):
        integrate_sde(zeros, zeros, x, steps=0)
    with pytest.raises(ValueError, match=">= 0"):
        integrate_sde(zeros, zeros, x, g=-1.0)
    with pytest.raises(ValueError, match=">= 0"):
        integrate_sde(zeros, zeros, x, g=lambda t: -1.0, steps=2)


def test_bridge_sde_module_interface():
    sde = BridgeSDE(lambda x, t: torch.ones_like(x), zeros, 0.5, torch.Size([4, 3]), "forward")
    assert sde.noise_type == "diagonal" and sde.sde_type == "ito"
    y = torch.zeros(4, 3)
    torch.testing.assert_close(sde.f(torch.tensor(0.2), y), torch.ones(4, 3))
    torch.testing.assert_close(sde.g(torch.tensor(0.2), y), torch.full((4, 3), 0.5))
    back = BridgeSDE(lambda x, t: torch.ones_like(x), zeros, 0.5, torch.Size([4, 3]), "backward")
    torch.testing.assert_close(back.f(torch.tensor(0.2), y), -torch.ones(4, 3))
