"""``Bridge.sample_conditional``: exact for closed forms, simulated for SDE bridges, refused
for ODE-only bridges."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import sbflow
from sbflow.bridge import Bridge
from sbflow.gaussian import GaussianBridge

TINY = dict(steps=4, batch_size=32, hidden=8, depth=1, progress=False, prefetch=0)


def test_sb_cfm_draws_have_the_documented_shape_and_type() -> None:
    bridge = sbflow.fit("8gaussians", "moons", method="sb-cfm", **TINY)
    x = torch.randn(3, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    draws = bridge.sample_conditional(x, 7, steps=5, generator=torch.Generator().manual_seed(1))
    assert draws.shape == (3, 7, 2) and draws.dtype == torch.float64
    assert torch.isfinite(draws).all()
    assert bool(draws.std(1).min() > 0)  # a stochastic plan, not a repeated point
    again = bridge.sample_conditional(x, 7, steps=5, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(again, draws)
    as_numpy = bridge.sample_conditional(x.numpy(), 2, steps=5)
    assert isinstance(as_numpy, np.ndarray) and as_numpy.shape == (3, 2, 2)


def test_ode_only_bridge_refuses_conditional_sampling() -> None:
    bridge = sbflow.fit("8gaussians", "moons", method="ot-cfm", **TINY)
    with pytest.raises(ValueError, match=r"deterministic map.*point mass"):
        bridge.sample_conditional(torch.zeros(2, 2), 3)


def test_simulated_draws_match_the_gaussian_conditional() -> None:
    """SDE draws from x repeated n times have the closed-form conditional moments."""
    gb = GaussianBridge([1.0], [[4.0]], [-3.0], [[0.25]], 0.7)
    bridge = Bridge.from_gaussian(gb)
    x = torch.tensor([[1.0], [3.0]], dtype=torch.float64)
    draws = bridge.sample_conditional(
        x, 4000, steps=100, generator=torch.Generator().manual_seed(2)
    )
    c = gb.cross_covariance().double()
    want_mean = -3.0 + (x - 1.0) * float(c) / 4.0
    want_var = 0.25 - float(c) ** 2 / 4.0
    torch.testing.assert_close(draws.mean(1), want_mean, atol=0.03, rtol=0)
    torch.testing.assert_close(
        draws.var(1), torch.full((2, 1), want_var, dtype=torch.float64), rtol=0.1, atol=0
    )


def test_arguments_are_checked() -> None:
    bridge = Bridge.from_gaussian(GaussianBridge([0.0], [[1.0]], [1.0], [[1.0]], 0.5))
    with pytest.raises(ValueError, match="n must"):
        bridge.sample_conditional(torch.zeros(2, 1), 0)
    with pytest.raises(ValueError, match="shape"):
        bridge.sample_conditional(torch.zeros(2, 3), 2)
    with pytest.raises(TypeError, match="generator"):
        bridge.sample_conditional(torch.zeros(2, 1), 2, generator=0)
