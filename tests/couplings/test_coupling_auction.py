"""The ε-scaling auction behind exact OT on uniform square batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sbflow.couplings import ExactOT, sq_euclidean
from sbflow.couplings._auction import auction_assignment
from sbflow.couplings._pot import pot

ot = pot()


def _optimum(cost: np.ndarray) -> float:
    n = cost.shape[0]
    return float(ot.emd2(np.full(n, 1.0), np.full(n, 1.0), cost, numItermax=10**8))


def _cloud_cost(n: int, d: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x0 = rng.standard_normal((n, d))
    x1 = rng.standard_normal((n, d)) * 0.7 + 2.0
    return ((x0[:, None, :] - x1[None, :, :]) ** 2).sum(-1)


@pytest.mark.parametrize(("n", "d"), [(1, 2), (2, 2), (7, 3), (64, 2), (300, 2), (300, 32)])
def test_auction_reaches_the_network_simplex_optimum(n: int, d: int) -> None:
    cost = _cloud_cost(n, d, seed=n + d)
    r = auction_assignment(cost)
    assert r.converged
    assert sorted(r.permutation.tolist()) == list(range(n))
    total = cost[np.arange(n), r.permutation].sum()
    spread = cost.max() - cost.min() if n > 1 else 1.0
    assert total == pytest.approx(_optimum(cost), rel=1e-12, abs=2e-9 * spread)


def test_auction_is_exact_on_integer_costs_with_many_ties() -> None:
    # integer costs in {0, ..., 4}: many optimal permutations and many equal bids
    cost = np.random.default_rng(0).integers(0, 5, size=(120, 120)).astype(float)
    r = auction_assignment(cost)
    assert cost[np.arange(120), r.permutation].sum() == _optimum(cost)


def test_auction_potentials_certify_the_gap() -> None:
    cost = _cloud_cost(200, 2, seed=3)
    r = auction_assignment(cost)
    # dual feasibility: f_i + g_j <= C_ij everywhere
    assert (r.f[:, None] + r.g[None, :] <= cost + 1e-12).all()
    primal = cost[np.arange(200), r.permutation].mean()
    assert r.gap == pytest.approx(primal - r.f.mean() - r.g.mean())
    eps_end = 1e-9 * (cost.max() - cost.min()) / 200
    assert -1e-12 <= r.gap <= eps_end


def test_auction_is_permutation_equivariant() -> None:
    cost = _cloud_cost(150, 4, seed=5)
    rows = np.random.default_rng(1).permutation(150)
    cols = np.random.default_rng(2).permutation(150)
    base = auction_assignment(cost).permutation
    moved = auction_assignment(cost[rows][:, cols]).permutation
    # continuous data has a unique optimum: the same pairs, relabelled
    assert np.array_equal(cols[moved], base[rows])


def test_auction_constant_cost_and_bad_input() -> None:
    r = auction_assignment(np.full((4, 4), 2.5))
    assert sorted(r.permutation.tolist()) == [0, 1, 2, 3] and r.gap == 0.0
    with pytest.raises(ValueError, match="square"):
        auction_assignment(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="square"):
        auction_assignment(np.zeros((0, 0)))
    with pytest.raises(ValueError, match="finite"):
        auction_assignment(np.array([[0.0, np.nan], [1.0, 0.0]]))
    with pytest.raises(ValueError, match="factor"):
        auction_assignment(np.eye(3), factor=1.0)
    with pytest.raises(ValueError, match="tol"):
        auction_assignment(np.eye(3), tol=0.0)


def test_auction_bid_budget_returns_a_feasible_permutation() -> None:
    cost = _cloud_cost(80, 2, seed=7)
    r = auction_assignment(cost, max_bids=10)
    assert not r.converged and r.n_bids == 10
    assert sorted(r.permutation.tolist()) == list(range(80))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_exact_ot_auction_agrees_with_network_simplex(dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(11)
    x0 = torch.randn(256, 5, generator=g, dtype=dtype)
    x1 = torch.randn(256, 5, generator=g, dtype=dtype) + 1.0
    fast = ExactOT()(x0, x1)
    simplex = ExactOT(solver="network-simplex")(x0, x1)
    cost = sq_euclidean(x0.double(), x1.double())
    assert fast.backend == "auction" and simplex.backend == "pot"
    assert fast.is_permutation and simplex.is_permutation and fast.converged
    # optimal up to the input dtype's resolution times the cost range
    tol = torch.finfo(dtype).eps if dtype == torch.float32 else 1e-9
    spread = float(cost.max() - cost.min())
    assert fast.cost == pytest.approx(simplex.cost, abs=tol * spread / 256 + 1e-12)
    assert fast.n_iter > 0 and fast.potentials[0].dtype == dtype
    f, g_ = (p.double() for p in fast.potentials)
    assert bool((f[:, None] + g_[None, :] <= cost + 1e-5).all())
    assert float(f.mean() + g_.mean()) == pytest.approx(fast.cost, rel=1e-5)


def test_exact_ot_solver_option_is_checked() -> None:
    with pytest.raises(ValueError, match="solver must be one of"):
        ExactOT(solver="hungarian")
    x0, x1 = torch.randn(5, 2), torch.randn(6, 2)
    with pytest.raises(ValueError, match="uniform problems with n == m"):
        ExactOT(solver="auction")(x0, x1)
    with pytest.raises(ValueError, match="non-uniform weights"):
        ExactOT(solver="auction")(x0, x1[:5], torch.tensor([0.1, 0.2, 0.3, 0.2, 0.2]))
