"""Per-batch entropic plans solved as one block: same plans as one solve each, within tol."""

from __future__ import annotations

import math

import pytest
import torch

from sbflow.couplings import Sinkhorn, UnbalancedSinkhorn
from sbflow.couplings._sinkhorn_core import (
    ANNEAL_RATIO,
    DenseOps,
    annealing_start,
    block_sinkhorn,
    stabilized_sinkhorn,
)
from sbflow.couplings.cost import cost_scale, sq_euclidean
from sbflow.couplings.sinkhorn import BLOCK_MAX_ENTRIES


def batches(k: int, n: int, dim: int, seed: int = 0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(k, n, dim, generator=g, dtype=dtype)
    x1 = 0.5 * torch.randn(k, n, dim, generator=g, dtype=dtype) + 1.0
    return x0, x1


@pytest.mark.parametrize("dim", [2, 16])
def test_block_plans_match_one_solve_each(dim: int) -> None:
    x0, x1 = batches(4, 64, dim)
    solver = Sinkhorn(reg=2.0, tol=1e-9)
    block = solver._solve_block(x0, x1)
    assert block is not None and len(block) == 4
    for k, c in enumerate(block):
        ref = solver(x0[k], x1[k])
        plan = c.plan()
        assert c.converged and c.marginal_error <= 1e-9
        assert float((plan - ref.plan()).abs().sum()) < 1e-7
        assert c.cost == pytest.approx(ref.cost, rel=1e-8)
        # the potentials describe the plan: P = a b exp((f + g − C)/reg)
        f, g = c.potentials
        cost = sq_euclidean(x0[k], x1[k])
        gibbs = torch.exp((f[:, None] + g[None, :] - cost) / 2.0) / 64**2
        assert torch.allclose(gibbs, plan, rtol=1e-6, atol=1e-15)


def test_block_declines_problems_that_need_annealing() -> None:
    x0, x1 = batches(3, 32, 2)
    x1 = x1 * 20  # the centred cost spreads far beyond ANNEAL_RATIO · reg
    assert Sinkhorn(reg=0.5)._solve_block(x0, x1) is None
    cost = torch.cdist(x0, x1) ** 2
    assert block_sinkhorn(cost, 0.5, tol=1e-6, max_iter=100) is None


def test_block_is_only_for_balanced_absolute_reg_dense_solves() -> None:
    x0, x1 = batches(2, 16, 2)
    assert UnbalancedSinkhorn(reg=2.0)._solve_block(x0, x1) is None
    assert Sinkhorn(rel_reg=0.1)._solve_block(x0, x1) is None
    assert Sinkhorn(reg=2.0, backend="keops")._solve_block(x0, x1) is None
    assert Sinkhorn(reg=2.0)._solve_block(x0.half(), x1.half()) is None
    big = torch.zeros(BLOCK_MAX_ENTRIES // 16**2 + 1, 16, 2)
    assert Sinkhorn(reg=2.0)._solve_block(big, big) is None  # too large for one block

    class Rescaled(Sinkhorn):  # a subclass that changes the problem keeps its own solve
        def _solve(self, x0, x1, a, b, **options):
            return super()._solve(2 * x0, x1, a, b, **options)

    assert Rescaled(reg=2.0)._solve_block(x0, x1) is None


def test_unconverged_block_problems_are_solved_alone() -> None:
    x0, x1 = batches(3, 32, 4)
    # two sweeps cannot reach 1e-12: every problem falls back to the single solver
    solver = Sinkhorn(reg=2.0, tol=1e-12, max_iter=2, strict=False)
    with pytest.warns(Warning, match="did not converge"):
        block = solver._solve_block(x0, x1)
    assert block is not None
    single = Sinkhorn(reg=2.0, tol=1e-12, max_iter=2)
    with pytest.warns(Warning):
        ref = single(x0[0], x1[0])
    assert block[0].n_iter == ref.n_iter and not block[0].converged


def test_annealing_start_is_reg_for_easy_problems_and_never_costs_sweeps() -> None:
    x0, x1 = batches(1, 128, 16, dtype=torch.float32)
    cost = sq_euclidean(x0[0], x1[0])
    scale = cost_scale(x0[0], x1[0])
    log_w = torch.full((128,), -math.log(128))
    for reg in (0.05, 0.5, 5.0):
        start = annealing_start(cost, reg, scale)
        centred = cost - cost.mean(1, keepdim=True) - cost.mean(0, keepdim=True) + cost.mean()
        easy = 2 * float(centred.square().mean().sqrt()) <= ANNEAL_RATIO * reg
        assert (start == reg) == easy and start <= max(scale, reg)
        runs = [
            stabilized_sinkhorn(
                DenseOps(cost, log_w, log_w),
                reg,
                eps_start=eps,
                anneal_factor=0.5,
                stage_iters=5,
                tol=1e-3,
                max_iter=5000,
            )
            for eps in (start, scale)
        ]
        assert all(r.converged for r in runs)
        assert runs[0].n_iter <= runs[1].n_iter
