"""Contract tests run on every solver: marginals, sign, equivariance, dtype, seeding."""

from __future__ import annotations

import pytest
import torch

from sbflow.couplings import (
    ExactOT,
    IndependentCoupling,
    PartialOT,
    Sinkhorn,
    UnbalancedSinkhorn,
    keops_available,
)

SOLVERS = {
    "independent": lambda: IndependentCoupling(),
    "exact": lambda: ExactOT(),
    "sinkhorn": lambda: Sinkhorn(rel_reg=0.1, backend="dense"),
    "unbalanced": lambda: UnbalancedSinkhorn(reg_marginal=5.0, rel_reg=0.1),
    "partial": lambda: PartialOT(mass=0.8),
    "partial-entropic": lambda: PartialOT(mass=0.8, rel_reg=0.1),
    "sinkhorn-keops": lambda: Sinkhorn(rel_reg=0.1, backend="keops"),
}
PARAMS = [
    pytest.param(
        k, marks=[pytest.mark.keops, pytest.mark.skipif(not keops_available(), reason="no pykeops")]
    )
    if k.endswith("keops")
    else k
    for k in SOLVERS
]


def _data(n: int, m: int, d: int, dtype: torch.dtype, weighted: bool, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(n, d, generator=g, dtype=dtype)
    x1 = torch.randn(m, d, generator=g, dtype=dtype) * 0.7 + 1.5
    if not weighted:
        return x0, x1, None, None
    a = torch.rand(n, generator=g, dtype=dtype) + 0.2
    b = torch.rand(m, generator=g, dtype=dtype) + 0.2
    return x0, x1, a / a.sum(), b / b.sum()


def _tol(dtype: torch.dtype) -> float:
    return 1e-5 if dtype == torch.float64 else 1e-3


@pytest.mark.parametrize("name", PARAMS)
@pytest.mark.parametrize("weighted", [False, True])
def test_marginals_and_nonnegative_plan(name: str, weighted: bool) -> None:
    x0, x1, a, b = _data(24, 30, 2, torch.float64, weighted)
    c = SOLVERS[name]()(x0, x1, a, b)
    plan = c.plan()
    assert plan.shape == (24, 30)
    assert bool((plan >= 0).all())
    a_ = c.a if a is None else a
    b_ = c.b if b is None else b
    rows, cols = plan.sum(1), plan.sum(0)
    if name.startswith("partial"):
        assert torch.all(rows <= a_ + 1e-6) and torch.all(cols <= b_ + 1e-6)
        assert abs(float(plan.sum()) - 0.8) < 1e-5
    elif name == "unbalanced":
        # optimality conditions P1 = a exp(-f/tau), P^T1 = b exp(-g/tau)
        f, g = c.potentials
        assert torch.allclose(rows, a_ * torch.exp(-f / 5.0), atol=1e-6)
        assert torch.allclose(cols, b_ * torch.exp(-g / 5.0), atol=1e-6)
    else:
        assert torch.allclose(rows, a_, atol=_tol(torch.float64))
        assert torch.allclose(cols, b_, atol=_tol(torch.float64))
    assert c.converged
    assert c.marginal_error < 1e-5
    assert abs(c.cost - float((plan * torch.cdist(x0, x1) ** 2).sum())) < 1e-6 * max(1.0, c.cost)
    assert torch.allclose(c.row_mass(), rows, atol=1e-10)
    assert torch.allclose(c.col_mass(), cols, atol=1e-10)


@pytest.mark.parametrize("name", PARAMS)
def test_permutation_equivariance(name: str) -> None:
    x0, x1, a, b = _data(20, 20, 2, torch.float64, weighted=True, seed=1)
    perm = torch.randperm(20, generator=torch.Generator().manual_seed(3))
    solver = SOLVERS[name]()
    p = solver(x0, x1, a, b).plan()
    q = solver(x0[perm], x1, a[perm], b).plan()
    assert torch.allclose(q, p[perm], atol=1e-7)


@pytest.mark.parametrize("name", PARAMS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dtype_and_device_follow_inputs(name: str, dtype: torch.dtype) -> None:
    x0, x1, _, _ = _data(16, 16, 2, dtype, weighted=False, seed=2)
    c = SOLVERS[name]()(x0, x1)
    assert c.dtype == dtype and c.a.dtype == dtype and c.b.dtype == dtype
    assert c.plan().dtype == dtype
    assert c.barycentric_projection(x1).dtype == dtype
    if c.potentials is not None:
        assert c.potentials[0].dtype == dtype and c.potentials[1].dtype == dtype
    i, j = c.pairs(generator=torch.Generator().manual_seed(0))
    assert i.dtype == torch.long and j.dtype == torch.long
    assert i.device == x0.device and j.device == x0.device


@pytest.mark.parametrize("name", PARAMS)
@pytest.mark.parametrize(
    ("mode", "n_pairs", "replace"),
    [
        ("rows", None, True),
        ("rows", 10, True),
        ("rows", 10, False),
        ("plan", None, True),
        ("plan", 12, False),
    ],
)
def test_pairs_are_seeded(name: str, mode: str, n_pairs: int | None, replace: bool) -> None:
    x0, x1, _, _ = _data(16, 16, 2, torch.float64, weighted=False, seed=4)
    c = SOLVERS[name]()(x0, x1)
    draws = [
        c.pairs(n_pairs, mode=mode, replace=replace, generator=torch.Generator().manual_seed(7))
        for _ in range(2)
    ]
    assert torch.equal(draws[0][0], draws[1][0]) and torch.equal(draws[0][1], draws[1][1])
    i, j = draws[0]
    plan = c.plan()
    assert bool((plan[i, j] > 0).all())
    if n_pairs is not None:
        assert i.numel() == n_pairs
    if not replace and mode == "plan":
        assert len(set(zip(i.tolist(), j.tolist()))) == n_pairs


def test_different_seeds_give_different_sinkhorn_pairs() -> None:
    x0, x1, _, _ = _data(64, 64, 2, torch.float64, weighted=False)
    c = Sinkhorn(rel_reg=0.5)(x0, x1)
    _, j1 = c.pairs(generator=torch.Generator().manual_seed(1))
    _, j2 = c.pairs(generator=torch.Generator().manual_seed(2))
    assert not torch.equal(j1, j2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.gpu
@pytest.mark.parametrize("name", ["independent", "exact", "sinkhorn", "unbalanced", "partial"])
def test_cuda_inputs_stay_on_cuda(name: str) -> None:
    x0, x1, _, _ = _data(32, 32, 2, torch.float32, weighted=False)
    c = SOLVERS[name]()(x0.cuda(), x1.cuda())
    i, j = c.pairs(generator=torch.Generator().manual_seed(0))
    assert i.is_cuda and j.is_cuda and c.a.is_cuda
    assert c.barycentric_projection(x1.cuda()).is_cuda
