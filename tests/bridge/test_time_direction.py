"""Which way a bridge integrates: t_start > t_end runs backward, reverse starts at t_start."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import sbflow
from sbflow.bridge import Bridge, GaussianField
from sbflow.cli import main
from sbflow.data import load_samples, save_samples
from sbflow.gaussian import GaussianBridge

ORACLE = GaussianBridge([0.0, 1.0], [[1.0, 0.3], [0.3, 0.5]], [3.0, -1.0], torch.eye(2), 0.5)


@pytest.fixture(scope="module")
def bridge() -> Bridge:
    return Bridge.from_gaussian(ORACLE)


def _x(n: int = 64, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_t_start_after_t_end_integrates_backward(bridge: Bridge) -> None:
    x0 = _x()
    x1 = bridge.transport(x0, sde=False)
    back = bridge.transport(x1, t_start=1.0, t_end=0.0, sde=False)
    torch.testing.assert_close(back, x0, atol=1e-4, rtol=0)
    torch.testing.assert_close(back, bridge.transport(x1, reverse=True, sde=False))
    assert (bridge.transport(x1, sde=False) - back).abs().max() > 1.0  # not forward


def test_reverse_starts_at_t_start(bridge: Bridge) -> None:
    x0 = _x()
    half = bridge.transport(x0, t_end=0.5, sde=False)
    back = bridge.transport(half, reverse=True, t_start=0.5, sde=False)
    torch.testing.assert_close(back, x0, atol=1e-4, rtol=0)


def test_trajectory_keeps_the_order_given_and_refuses_non_monotone_times(bridge: Bridge) -> None:
    x0 = _x(8)
    x1 = bridge.transport(x0, sde=False)
    traj = bridge.trajectory(x1, [1.0, 0.5, 0.0], sde=False)
    torch.testing.assert_close(traj[0], x1)
    torch.testing.assert_close(traj[-1], x0, atol=1e-4, rtol=0)
    torch.testing.assert_close(
        traj[1], bridge.transport(x0, t_end=0.5, sde=False), atol=1e-4, rtol=0
    )
    with pytest.raises(ValueError, match=r"strictly increasing .* or strictly decreasing"):
        bridge.trajectory(x0, [0.0, 1.0, 0.5])
    with pytest.raises(ValueError, match="distinct"):
        bridge.trajectory(x0, [0.0, 0.0, 1.0])
    with pytest.raises(ValueError, match="reverse=True integrates backward"):
        bridge.transport(x0, reverse=True, t_start=0.2, t_end=0.8)


def test_backward_sde_reaches_the_source_marginal(bridge: Bridge) -> None:
    x1 = ORACLE.sample_marginal(1.0, 4000, generator=torch.Generator().manual_seed(1))
    x0 = bridge.transport(x1, t_start=1.0, t_end=0.0, steps=100, generator=torch.Generator())
    torch.testing.assert_close(x0.mean(0), ORACLE.mean0, atol=0.06, rtol=0)
    torch.testing.assert_close(torch.cov(x0.T), ORACLE.cov0, atol=0.08, rtol=0)


def test_sigma_per_day_is_converted_with_the_time_span() -> None:
    """A field trained on τ ∈ [0, 1] behind times in days: σ per day = σ_τ / √T."""
    field = GaussianField.from_bridge(ORACLE)  # σ_τ = 0.5
    days = Bridge(field, method="gaussian", feature_shape=(2,), times=[10.0, 14.0],
                  sigma=0.25, simulation="sde")  # fmt: skip
    assert days.sigma_internal == pytest.approx(0.5)
    x0 = ORACLE.sample_marginal(0.0, 4000, generator=torch.Generator().manual_seed(2))
    x_mid = days.transport(x0, t_end=12.0, steps=100, generator=torch.Generator().manual_seed(3))
    mean, cov = ORACLE.marginal(0.5)
    torch.testing.assert_close(x_mid.mean(0), mean, atol=0.06, rtol=0)
    torch.testing.assert_close(torch.cov(x_mid.T), cov, atol=0.08, rtol=0)


def test_gaussian_bridge_saves_loads_and_evaluates(bridge: Bridge, tmp_path: Path) -> None:
    loaded = sbflow.load(bridge.save(tmp_path / "g.pt"))
    x0 = _x(300, 4).float()
    gen = [torch.Generator().manual_seed(5) for _ in range(2)]
    torch.testing.assert_close(
        loaded.transport(x0, steps=20, generator=gen[0]),
        bridge.transport(x0, steps=20, generator=gen[1]),
    )
    x1 = ORACLE.sample_marginal(1.0, 300, generator=torch.Generator().manual_seed(6)).float()
    metrics = loaded.evaluate(x0 * torch.tensor([1.0, 0.7]) + torch.tensor([0.0, 1.0]), x1)
    assert {"w2", "w2_sde", "nfe", "path_energy"} <= set(metrics)


def test_cli_backward_and_reverse_from_t_start(bridge: Bridge, tmp_path: Path) -> None:
    path = bridge.save(tmp_path / "g.pt")
    x0 = _x(16, 7).float()
    x1 = bridge.transport(x0, sde=False)
    save_samples(tmp_path / "x1.npy", x1)
    out = tmp_path / "back.npy"
    argv = ["transport", str(path), str(tmp_path / "x1.npy"), str(out), "--ode"]
    assert main([*argv, "--t-start", "1", "--t-end", "0"]) == 0
    torch.testing.assert_close(load_samples(out), x0, atol=1e-3, rtol=0)
    half = bridge.transport(x0, t_end=0.5, sde=False)
    save_samples(tmp_path / "half.npy", half)
    argv[2] = str(tmp_path / "half.npy")
    assert main([*argv, "--reverse", "--t-start", "0.5"]) == 0
    torch.testing.assert_close(load_samples(out), x0, atol=1e-3, rtol=0)
    assert main([*argv, "--reverse", "--t-start", "0.2", "--t-end", "0.8"]) == 2
