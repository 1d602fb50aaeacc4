"""The ``light-sb`` method behind ``fit``/``Bridge``: units, exact conditional plans, files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import sbflow
from sbflow.gaussian import GaussianBridge
from sbflow.methods.light_sb import LightSBField, LightSBMethod


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_fit_transport_sample_conditional_save_load(tmp_path: Path) -> None:
    x0 = torch.randn(400, 2, generator=_gen(0)) * 3 + 10
    x1 = torch.randn(400, 2, generator=_gen(1)) - 5
    bridge = sbflow.fit(x0, x1, method="light-sb", sigma=1.5, steps=30, progress=False)
    assert bridge.simulation == "sde" and bridge.sigma == 1.5
    assert isinstance(bridge.model, LightSBField) and bridge.history
    y = bridge.transport(x0[:8], steps=10, generator=_gen(2))
    draws = bridge.sample_conditional(x0[:3], 5, generator=_gen(3))
    assert y.shape == (8, 2) and y.dtype == x0.dtype and draws.shape == (3, 5, 2)
    loaded = sbflow.load(bridge.save(tmp_path / "light.pt"))
    assert loaded.method == "light-sb" and loaded.sigma == 1.5
    torch.testing.assert_close(loaded.transport(x0[:8], steps=10, generator=_gen(2)), y)
    torch.testing.assert_close(loaded.sample_conditional(x0[:3], 5, generator=_gen(3)), draws)
    # A forward drift alone has no ODE and no time reversal: both refuse clearly.
    with pytest.raises(ValueError, match="no probability-flow ODE"):
        loaded.transport(x0[:2], sde=False)
    with pytest.raises(ValueError, match="cannot run backward"):
        loaded.transport(x1[:2], reverse=True)
    # Without an ODE, evaluate scores the SDE samples and leaves the ODE-only metrics out.
    metrics = loaded.evaluate(x0[:100], x1[:100], sde_steps=10)
    assert metrics["w2"] == metrics["w2_sde"] > 0 and "nfe" not in metrics


def test_one_component_reproduces_the_gaussian_bridge_in_data_units() -> None:
    """Between two diagonal Gaussians (data ×10, σ in data units, normalise=True) the fitted
    plan is the closed-form Gaussian Schrödinger bridge: exactly sampled and simulated."""
    sigma = 8.0
    m0, v0 = torch.tensor([10.0, -20.0]), torch.tensor([50.0, 200.0])
    m1, v1 = torch.tensor([30.0, 5.0]), torch.tensor([300.0, 70.0])
    g = _gen(9)
    n = 20_000
    x0 = (m0 + v0.sqrt() * torch.randn(n, 2, generator=g, dtype=torch.float64)).float()
    x1 = (m1 + v1.sqrt() * torch.randn(n, 2, generator=g, dtype=torch.float64)).float()
    method = LightSBMethod(sigma=sigma, n_components=1, lr=5e-2, init_scale=1.0)
    bridge = sbflow.fit(x0, x1, method=method, steps=800, batch_size=512, progress=False)
    assert bridge.sigma == sigma

    oracle = GaussianBridge(m0, torch.diag(v0), m1, torch.diag(v1), sigma)
    c = oracle.cross_covariance().double()
    s0_inv = torch.diag(1 / v0).double()
    x = torch.tensor([[10.0, -20.0], [25.0, -30.0], [0.0, 5.0]], dtype=torch.float64)
    want_mean = m1.double() + (x - m0.double()) @ (c.T @ s0_inv).T
    want_cov = torch.diag(v1).double() - c.T @ s0_inv @ c
    scale = want_cov.diagonal().sqrt()  # conditional sd per coordinate

    draws = bridge.sample_conditional(x, 20_000, generator=_gen(1))
    assert draws.shape == (3, 20_000, 2) and draws.dtype == torch.float64
    mean = draws.mean(1)
    assert bool(((mean - want_mean).abs() < 0.1 * scale).all()), (mean, want_mean)
    for i in range(3):
        cov = torch.cov(draws[i].T)
        assert bool(((cov - want_cov).abs() < 0.08 * scale.outer(scale)).all()), (cov, want_cov)

    # The closed-form drift, simulated with σ converted by the bridge, lands on the same law.
    sim = bridge.transport(x.repeat_interleave(4000, 0), steps=200, generator=_gen(2))
    sim = sim.reshape(3, 4000, 2)
    assert bool(((sim.mean(1) - want_mean).abs() < 0.15 * scale).all()), sim.mean(1)
    torch.testing.assert_close(sim.var(1), want_cov.diagonal().expand(3, 2), rtol=0.15, atol=0.0)


def test_light_sb_options_are_checked() -> None:
    with pytest.raises(ValueError, match="leave coupling out"):
        LightSBMethod(coupling="exact")
    with pytest.raises(ValueError, match="n_components"):
        LightSBMethod(n_components=0)
    x = torch.randn(50, 2, generator=_gen(0))
    with pytest.raises(ValueError, match="two sample sets"):
        sbflow.fit([x, x + 1, x + 2], times=[0, 1, 2], method="light-sb", steps=2, progress=False)


def test_paired_rows_fit_by_bridge_matching() -> None:
    """With paired=True the mixture is fitted by bridge matching on the given rows."""
    g = _gen(4)
    x0 = torch.randn(4000, 1, generator=g) * 2 + 10
    x1 = torch.randn(4000, 1, generator=g) - 10  # independent pairs: still the same bridge
    method = LightSBMethod(sigma=2.0, n_components=1, init_scale=1.0)
    bridge = sbflow.fit(x0, x1, method=method, paired=True, steps=400, progress=False)
    y = bridge.sample_conditional(x0[:500], 4, generator=_gen(5)).reshape(-1)
    assert abs(float(y.mean()) + 10) < 0.3 and abs(float(y.std()) - 1) < 0.15
