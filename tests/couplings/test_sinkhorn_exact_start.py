"""Sinkhorn started from the exact-OT duals: the same plans, and no stall at small reg."""

from __future__ import annotations

import math

import pytest
import torch

from sbflow.couplings import Sinkhorn, UnbalancedSinkhorn
from sbflow.couplings._sinkhorn_core import DenseOps, annealing_start
from sbflow.couplings.cost import sq_euclidean
from sbflow.couplings.sinkhorn import EXACT_START_EPS, EXACT_START_RATIO, MINIBATCH_TOL
from sbflow.groundtruth import EOTBenchmark


def clouds(n: int, dim: int, seed: int = 0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(n, dim, generator=g, dtype=dtype)
    return x0, 0.7 * torch.randn(n, dim, generator=g, dtype=dtype) + 0.5


def small_reg(x0: torch.Tensor, x1: torch.Tensor) -> float:
    """A reg 120 times below where annealing would start: past EXACT_START_RATIO."""
    ops = dense_ops(x0, x1)
    return annealing_start(ops.cost, 1e-12, float(ops.cost.mean())) / 120


def dense_ops(x0: torch.Tensor, x1: torch.Tensor, a=None, b=None) -> DenseOps:
    n, m = len(x0), len(x1)
    a = torch.full((n,), 1 / n, dtype=x0.dtype) if a is None else a
    b = torch.full((m,), 1 / m, dtype=x0.dtype) if b is None else b
    return DenseOps(sq_euclidean(x0, x1), a.log(), b.log())


def test_small_reg_problems_start_from_duals_that_are_feasible_and_tight() -> None:
    x0, x1 = clouds(30, 8)
    reg = small_reg(x0, x1)
    ops = dense_ops(x0, x1)
    assert annealing_start(ops.cost, reg, float(ops.cost.mean())) >= EXACT_START_RATIO * reg
    eps, init = Sinkhorn(reg=reg)._start(ops, reg, float(ops.cost.mean()))
    assert init is not None and eps == EXACT_START_EPS * reg
    slack = ops.cost - init[0][:, None] - init[1][None, :]
    assert float(slack.min()) > -1e-9  # u_i + v_j <= C_ij
    assert int((slack.abs() < 1e-9).sum()) >= 30  # tight on an optimal plan's support


@pytest.mark.parametrize("weighted", [False, True])
def test_exact_start_reaches_the_plan_of_plain_sweeps(weighted: bool) -> None:
    x0, x1 = clouds(30, 8)
    g = torch.Generator().manual_seed(1)
    a = torch.rand(30, generator=g, dtype=torch.float64) + 0.5 if weighted else None
    reg = small_reg(x0, x1)
    # plain sweeps from zero potentials are slow here but independent of the new start
    fast = Sinkhorn(reg=reg, max_iter=100_000, strict=True)(x0, x1, a=a)
    plain = Sinkhorn(reg=reg, max_iter=100_000, anneal=False, strict=True)(x0, x1, a=a)
    mass = float(fast.plan().sum())
    assert float((fast.plan() - plain.plan()).abs().sum()) / mass < 1e-4  # tol is 1e-6
    # the potentials still generate the plan: P_ij = a_i b_j exp((f_i + g_j − C_ij) / reg)
    f, g_ = fast.potentials
    ops = dense_ops(x0, x1, a=fast.a, b=fast.b)
    log_plan = ops.log_a[:, None] + ops.log_b[None, :] + (f[:, None] + g_[None, :] - ops.cost) / reg
    torch.testing.assert_close(log_plan.exp(), fast.plan(), rtol=1e-6, atol=1e-12)


def test_high_dimensional_batch_at_small_reg_converges() -> None:
    # The entropic-OT benchmark's training batches at D = 64, ε = 0.1 (reg = 2ε): annealing
    # from zero potentials stopped at a 2–6 % marginal error after 10 000 sweeps.
    bench = EOTBenchmark(64, 0.1, 0)
    g = torch.Generator().manual_seed(0)
    x0, x1 = bench.sample_input(256, g), bench.sample_target(256, g)
    coupling = Sinkhorn(reg=0.2, tol=MINIBATCH_TOL, strict=True)(x0, x1)
    assert coupling.converged and coupling.n_iter <= 2_000
    assert float((coupling.plan().sum(1) - 1 / 256).abs().sum()) <= 2 * MINIBATCH_TOL


def test_problems_the_exact_start_does_not_fit_anneal_as_before() -> None:
    x0, x1 = clouds(30, 8)
    reg = small_reg(x0, x1)
    ops = dense_ops(x0, x1)
    scale = float(ops.cost.mean())
    start = annealing_start(ops.cost, reg, scale)
    for solver in (
        Sinkhorn(reg=reg, anneal=False),  # plain sweeps were asked for
        UnbalancedSinkhorn(reg=reg, reg_marginal=1.0),  # no exact plan to start from
        Sinkhorn(reg=10 * start),  # annealing is short anyway
    ):
        assert solver._start(ops, solver.reg, scale)[1] is None
    infinite = dense_ops(x0, x1)
    infinite.cost[0, 0] = math.inf
    assert Sinkhorn(reg=reg)._start(infinite, reg, scale)[1] is None


def test_exact_start_plan_is_unchanged_by_data_units() -> None:
    # Data ×10 and shifted, reg ×100 (reg is in squared data units): the same problem.
    x0, x1 = clouds(30, 8)
    reg = small_reg(x0, x1)
    base = Sinkhorn(reg=reg, max_iter=100_000, strict=True)(x0, x1)
    scaled = Sinkhorn(reg=100 * reg, max_iter=100_000, strict=True)(10 * x0 + 3, 10 * x1 + 3)
    ops = dense_ops(10 * x0, 10 * x1)
    assert Sinkhorn(reg=100 * reg)._start(ops, 100 * reg, float(ops.cost.mean()))[1] is not None
    assert float((base.plan() - scaled.plan()).abs().sum()) < 1e-4  # tol is 1e-6
