"""Metrics against known answers and POT."""

from __future__ import annotations

import numpy as np
import ot
import pytest
import torch

from sbflow.metrics import energy_distance, mmd, normalized_path_energy, path_energy, wasserstein


def cloud(n: int, d: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_w2_of_a_shift_is_the_shift() -> None:
    x = cloud(200)
    shift = torch.tensor([1.5, -2.0], dtype=torch.float64)
    assert wasserstein(x, x + shift) == pytest.approx(2.5, abs=1e-9)
    assert wasserstein(x.float(), x.float() + shift.float()) == pytest.approx(2.5, abs=1e-5)


@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("m", [90, 120])  # 120: equal unweighted sets, solved by the auction
def test_wasserstein_matches_pot(p: int, m: int) -> None:
    x, y = cloud(120, 3, 1), cloud(m, 3, 2) * 2 + 1
    metric = "sqeuclidean" if p == 2 else "euclidean"
    cost = ot.dist(x.numpy(), y.numpy(), metric=metric)
    expected = ot.emd2(ot.unif(120), ot.unif(m), cost, numItermax=10**7) ** (1 / p)
    assert wasserstein(x, y, p=p) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("scale", [1e-150, 1e-7, 1e150])
@pytest.mark.parametrize(("p", "m"), [(1, 40), (2, 40), (2, 31), (3, 31)])
def test_wasserstein_scales_with_the_data(scale: float, p: int, m: int) -> None:
    """Issue 13: data at 1e-7 gave W2 off by 45 %; 1e154 overflowed. W_p(s x, s y) = s W_p."""
    x, y = cloud(40, 2, 3), cloud(m, 2, 4) + 1
    metric = "sqeuclidean" if p == 2 else "euclidean"
    cost = ot.dist(x.numpy(), y.numpy(), metric=metric) ** (1 if p == 2 else p)
    expected = ot.emd2(ot.unif(40), ot.unif(m), cost, numItermax=10**7) ** (1 / p)
    assert wasserstein(x * scale, y * scale, p=p) == pytest.approx(scale * expected, rel=1e-9)


def test_weighted_and_errors() -> None:
    x = torch.tensor([[0.0], [1.0]], dtype=torch.float64)
    y = torch.tensor([[0.0]], dtype=torch.float64)
    assert wasserstein(x, y, a=[0.75, 0.25]) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="same feature shape"):
        wasserstein(cloud(5, 2), cloud(5, 3))
    with pytest.raises(ValueError, match="p must be"):
        wasserstein(x, y, p=0.5)
    with pytest.raises(RuntimeError, match="did not reach the optimum"):
        wasserstein(cloud(300), cloud(300, seed=1), max_iter=10)


def test_energy_distance_known_values() -> None:
    x = cloud(150)
    assert energy_distance(x, x) == 0.0
    # One point each: E = 2 |a − b|.
    a, b = torch.tensor([[0.0, 0.0]]), torch.tensor([[3.0, 4.0]])
    assert energy_distance(a, b) == pytest.approx(10.0)
    # Matches a direct float64 NumPy computation.
    y = cloud(100, seed=3) + 1
    xn, yn = x.numpy(), y.numpy()

    def md(u: np.ndarray, v: np.ndarray) -> float:
        return float(np.linalg.norm(u[:, None] - v[None], axis=-1).mean())

    expected = 2 * md(xn, yn) - md(xn, xn) - md(yn, yn)
    assert energy_distance(x, y) == pytest.approx(expected, rel=1e-10)


def test_mmd_known_values() -> None:
    x, y = cloud(100), cloud(100, seed=5) + 3
    assert mmd(x, x) == 0.0
    assert mmd(x, y) > mmd(x, cloud(100, seed=6))
    # Single bandwidth, one point each: MMD² = 2 − 2 exp(−d²/(2h²)).
    a, b = torch.tensor([[0.0, 0.0]]), torch.tensor([[1.0, 0.0]])
    assert mmd(a, b, bandwidths=[1.0]) == pytest.approx(2 - 2 * np.exp(-0.5))
    with pytest.raises(ValueError):
        mmd(a, b, bandwidths=[])


def test_path_energy() -> None:
    ts = torch.linspace(0, 1, 21, dtype=torch.float64)
    start, end = cloud(30), cloud(30, seed=1)
    traj = start + ts[:, None, None] * (end - start)
    expected = float(((end - start) ** 2).sum(1).mean())
    assert path_energy(traj, ts) == pytest.approx(expected, rel=1e-12)
    vel = (end - start).expand(21, -1, -1)
    assert path_energy(traj, ts, velocities=vel) == pytest.approx(expected, rel=1e-12)
    # A detour costs more than the straight line.
    bent = traj + torch.sin(torch.pi * ts)[:, None, None]
    assert path_energy(bent, ts) > expected
    assert normalized_path_energy(expected, expected) == 0.0
    with pytest.raises(ValueError, match="T = len"):
        path_energy(traj, ts[:5])
