"""Known answers: POT in float64, the Gaussian closed form, convergence where POT fails."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sbflow.couplings import (
    ExactOT,
    PartialOT,
    Sinkhorn,
    UnbalancedSinkhorn,
    couple,
    sigma_to_reg,
    sq_euclidean,
)
from sbflow.couplings._pot import pot

ot = pot()


def _points(n: int, m: int, d: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(n, d, generator=g, dtype=torch.float64)
    x1 = torch.randn(m, d, generator=g, dtype=torch.float64) * 0.8 + 2.0
    a = torch.rand(n, generator=g, dtype=torch.float64) + 0.1
    b = torch.rand(m, generator=g, dtype=torch.float64) + 0.1
    return x0, x1, a / a.sum(), b / b.sum()


def _cost(x0: torch.Tensor, x1: torch.Tensor) -> np.ndarray:
    return sq_euclidean(x0, x1).numpy()


@pytest.mark.parametrize("d", [1, 3])
def test_exact_uniform_square_is_optimal_permutation(d: int) -> None:
    x0, x1, _, _ = _points(60, 60, d)
    c = ExactOT()(x0, x1)
    ref = ot.emd2([], [], _cost(x0, x1), numItermax=10**7)
    assert c.is_permutation
    assert sorted(c.permutation.tolist()) == list(range(60))
    assert c.cost == pytest.approx(ref, rel=1e-10, abs=1e-12)
    i, j = c.pairs()
    assert torch.equal(i, torch.arange(60)) and torch.equal(j, c.permutation)


@pytest.mark.parametrize("d", [1, 3])
def test_exact_weighted_matches_emd2_and_is_sparse(d: int) -> None:
    x0, x1, a, b = _points(40, 55, d, seed=1)
    c = ExactOT()(x0, x1, a, b)
    ref = ot.emd2(a.numpy(), b.numpy(), _cost(x0, x1), numItermax=10**7)
    assert c.cost == pytest.approx(ref, rel=1e-10)
    assert c.sparse()._nnz() <= 40 + 55 - 1
    assert c.marginal_error < 1e-12


def test_exact_unequal_sizes_uniform() -> None:
    x0, x1, _, _ = _points(30, 45, 2, seed=2)
    c = couple(x0, x1, "exact")
    assert not c.is_permutation
    assert c.cost == pytest.approx(ot.emd2([], [], _cost(x0, x1), numItermax=10**7), rel=1e-10)


def test_exact_potentials_are_dual_feasible_and_tight() -> None:
    x0, x1, a, b = _points(25, 35, 2, seed=3)
    c = ExactOT()(x0, x1, a, b)
    f, g = c.potentials
    cost = sq_euclidean(x0, x1)
    assert bool((f[:, None] + g[None, :] <= cost + 1e-9).all())
    assert float(a @ f + b @ g) == pytest.approx(c.cost, rel=1e-9)


@pytest.mark.parametrize("weighted", [False, True])
def test_sinkhorn_matches_pot_sinkhorn_log(weighted: bool) -> None:
    x0, x1, a, b = _points(40, 50, 3, seed=4)
    if not weighted:
        a, b = (
            torch.full((40,), 1 / 40, dtype=torch.float64),
            torch.full((50,), 1 / 50, dtype=torch.float64),
        )
    reg = 0.1 * float(sq_euclidean(x0, x1).mean())
    c = Sinkhorn(reg, tol=1e-10)(x0, x1, a, b)
    ref = ot.sinkhorn(
        a.numpy(),
        b.numpy(),
        _cost(x0, x1),
        reg,
        method="sinkhorn_log",
        stopThr=1e-13,
        numItermax=100_000,
    )
    assert c.converged and c.reg == pytest.approx(reg)
    np.testing.assert_allclose(c.plan().numpy(), ref, atol=1e-9, rtol=1e-6)
    assert c.cost == pytest.approx(float((ref * _cost(x0, x1)).sum()), rel=1e-7)


def test_unbalanced_matches_pot_kl_formulation() -> None:
    x0, x1, a, b = _points(30, 40, 2, seed=5)
    b = b * 1.7  # unequal masses are allowed
    c = UnbalancedSinkhorn(1.0, reg_marginal=2.0, tol=1e-11)(x0, x1, a, b)
    ref = ot.sinkhorn_unbalanced(
        a.numpy(),
        b.numpy(),
        _cost(x0, x1),
        1.0,
        2.0,
        method="sinkhorn_stabilized",
        reg_type="kl",
        stopThr=1e-14,
        numItermax=100_000,
    )
    np.testing.assert_allclose(c.plan().numpy(), ref, atol=1e-9, rtol=1e-6)
    assert torch.allclose(c.b, b)  # weights not normalised


def test_unbalanced_tends_to_balanced_for_large_tau() -> None:
    x0, x1, a, b = _points(30, 30, 2, seed=6)
    p = Sinkhorn(1.0, tol=1e-10)(x0, x1, a, b).plan()
    q = UnbalancedSinkhorn(1.0, reg_marginal=1e6, tol=1e-10)(x0, x1, a, b).plan()
    assert torch.allclose(p, q, atol=1e-4 * float(p.max()))


@pytest.mark.parametrize("mass", [0.5, 0.85, 1.0])
def test_partial_matches_pot_partial_wasserstein(mass: float) -> None:
    x0, x1, a, b = _points(30, 40, 2, seed=7)
    c = PartialOT(mass=mass)(x0, x1, a, b)
    ref = ot.partial.partial_wasserstein2(a.numpy(), b.numpy(), _cost(x0, x1), m=mass)
    assert c.cost == pytest.approx(float(ref), rel=1e-8)
    assert float(c.plan().sum()) == pytest.approx(mass, rel=1e-10)


def test_partial_mass_one_equals_balanced() -> None:
    x0, x1, a, b = _points(30, 40, 2, seed=8)
    assert PartialOT(mass=1.0)(x0, x1, a, b).cost == pytest.approx(ExactOT()(x0, x1, a, b).cost)


def test_entropic_partial_approaches_exact_partial() -> None:
    x0, x1, a, b = _points(30, 30, 2, seed=9)
    exact = PartialOT(mass=0.6)(x0, x1, a, b)
    soft = PartialOT(mass=0.6, rel_reg=0.01)(x0, x1, a, b)
    assert soft.converged
    assert float(soft.plan().sum()) == pytest.approx(0.6, abs=1e-5)
    assert soft.cost == pytest.approx(exact.cost, rel=0.1)
    assert soft.cost >= exact.cost - 1e-9


def test_partial_drops_outliers() -> None:
    x0 = torch.tensor([[0.0, 0.0], [1.0, 0.0], [50.0, 50.0]], dtype=torch.float64)
    x1 = torch.tensor([[0.0, 0.1], [1.0, 0.1], [-50.0, 50.0]], dtype=torch.float64)
    c = PartialOT(mass=2 / 3)(x0, x1)
    i, j = c.pairs()
    assert i.tolist() == [0, 1] and j.tolist() == [0, 1]
    assert c.cost == pytest.approx(2 / 3 * 0.01)


def _sqrtm(mat: torch.Tensor) -> torch.Tensor:
    w, v = torch.linalg.eigh(mat)
    return v @ torch.diag(w.sqrt()) @ v.T


def _closed_form_cross_cov(s0: torch.Tensor, s1: torch.Tensor, s: float) -> torch.Tensor:
    eye = torch.eye(s0.shape[0], dtype=s0.dtype)
    r = _sqrtm(s0)
    d = _sqrtm(4 * r @ s1 @ r + s**2 * eye)
    return 0.5 * (r @ d @ torch.linalg.inv(r) - s * eye)


def _cross_cov_error(n: int, sigma: float, reg: float, seed: int) -> float:
    g = torch.Generator().manual_seed(seed)
    s0 = torch.tensor([[1.0, 0.3], [0.3, 0.6]], dtype=torch.float64)
    s1 = torch.tensor([[0.8, -0.2], [-0.2, 1.2]], dtype=torch.float64)
    x0 = torch.randn(n, 2, generator=g, dtype=torch.float64) @ _sqrtm(s0)
    x1 = torch.randn(n, 2, generator=g, dtype=torch.float64) @ _sqrtm(s1) + torch.tensor(
        [2.0, -1.0], dtype=torch.float64
    )
    plan = Sinkhorn(reg)(x0, x1).plan()
    m0, m1 = plan.sum(1) @ x0, plan.sum(0) @ x1
    emp = (x0 - m0).T @ plan @ (x1 - m1)
    # closed form at the empirical covariances removes the first-order sampling noise
    e0, e1 = torch.cov(x0.T, correction=0), torch.cov(x1.T, correction=0)
    return float((emp - _closed_form_cross_cov(e0, e1, sigma**2)).abs().max())


def test_gaussian_cross_covariance_matches_closed_form_with_reg_two_sigma_squared() -> None:
    sigma = 0.7
    reg = sigma_to_reg(sigma)
    errors = {
        n: max(_cross_cov_error(n, sigma, reg, seed) for seed in range(2)) for n in (200, 800)
    }
    for n, err in errors.items():
        assert err <= 0.5 / math.sqrt(n), errors
    assert errors[800] < errors[200]
    # the other conventions (reg = σ², reg = 4σ²) are far off: the test discriminates them
    assert _cross_cov_error(200, sigma, sigma**2, 0) > 0.05
    assert _cross_cov_error(200, sigma, 4 * sigma**2, 0) > 0.05


@pytest.mark.parametrize("d", [2, 64])
def test_sinkhorn_converges_at_small_relative_reg(d: int) -> None:
    g = torch.Generator().manual_seed(d)
    x0 = torch.randn(1000, d, generator=g, dtype=torch.float64)
    x1 = torch.randn(1000, d, generator=g, dtype=torch.float64) + 3.0
    c = Sinkhorn(rel_reg=0.01, tol=1e-4, strict=True)(x0, x1)
    assert c.converged and c.marginal_error <= 1e-4
    plan = c.plan(max_bytes=2**27)
    assert torch.allclose(plan.sum(1), c.a, atol=1e-4 / 1000 * 5) or c.marginal_error <= 1e-4
    # a useful plan: far from independent (cost well below the independent coupling's)
    assert c.cost < 0.9 * couple(x0, x1, "independent").cost or d == 64
    assert c.cost >= couple(x0, x1, "exact").cost


@pytest.mark.slow
def test_exact_is_optimal_where_pot_default_iteration_cap_is_not() -> None:
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(4096, 2, generator=g, dtype=torch.float64)
    x1 = torch.randn(4096, 2, generator=g, dtype=torch.float64) + 3.0
    c = ExactOT(strict=True)(x0, x1)
    cost = _cost(x0, x1)
    with pytest.warns(UserWarning, match="numItermax"):
        capped = float(ot.emd2([], [], cost))  # POT's default numItermax=1e5
    assert c.is_permutation and c.converged
    assert c.cost == pytest.approx(ot.emd2([], [], cost, numItermax=10**8), rel=1e-10)
    assert c.cost < capped
