"""The two dense iteration schemes agree; zero weights and budgets are handled."""

from __future__ import annotations

import math

import pytest
import torch

from sbflow.couplings import Sinkhorn, sq_euclidean
from sbflow.couplings._sinkhorn_core import DenseOps, log_sinkhorn, stabilized_sinkhorn


def _ops(n: int, m: int, dtype: torch.dtype = torch.float64) -> DenseOps:
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(n, 3, generator=g, dtype=dtype)
    x1 = torch.randn(m, 3, generator=g, dtype=dtype) + 2
    la = torch.full((n,), -math.log(n), dtype=dtype)
    lb = torch.full((m,), -math.log(m), dtype=dtype)
    return DenseOps(sq_euclidean(x0, x1), la, lb)


@pytest.mark.parametrize("tau", [None, 3.0])
def test_stabilized_and_log_domain_reach_the_same_fixed_point(tau: float | None) -> None:
    ops = _ops(50, 60)
    kw = dict(eps_start=20.0, anneal_factor=0.5, stage_iters=5, tol=1e-10, max_iter=5000, tau=tau)
    r1 = log_sinkhorn(ops, 0.3, **kw)
    r2 = stabilized_sinkhorn(ops, 0.3, **kw)
    assert r1.converged and r2.converged
    p1, p2 = ops.plan(r1.f, r1.g, 0.3), r2.plan
    assert torch.allclose(p1, p2, atol=1e-10 * float(p1.max()) * 1e3)
    assert torch.allclose(ops.plan(r2.f, r2.g, 0.3), p2, rtol=1e-8, atol=1e-14)


def test_budget_spent_while_annealing_is_reported() -> None:
    ops = _ops(30, 30)
    r = stabilized_sinkhorn(
        ops, 0.01, eps_start=20.0, anneal_factor=0.5, stage_iters=5, tol=1e-8, max_iter=4
    )
    assert not r.converged and r.error > 1e-8 and r.n_iter == 4


def test_zero_weights_are_allowed() -> None:
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(20, 2, generator=g, dtype=torch.float64)
    x1 = torch.randn(25, 2, generator=g, dtype=torch.float64)
    a = torch.ones(20, dtype=torch.float64)
    a[:5] = 0
    b = torch.ones(25, dtype=torch.float64)
    b[-3:] = 0
    c = Sinkhorn(rel_reg=0.2)(x0, x1, a / a.sum(), b / b.sum())
    plan = c.plan()
    assert c.converged and torch.isfinite(plan).all()
    assert float(plan[:5].sum()) == 0.0 and float(plan[:, -3:].sum()) == 0.0
    i, _ = c.pairs()
    assert i.min() >= 5


def test_float32_converges_to_its_default_tolerance() -> None:
    g = torch.Generator().manual_seed(2)
    x0 = torch.randn(300, 8, generator=g)
    x1 = torch.randn(300, 8, generator=g) + 3
    c = Sinkhorn(rel_reg=0.01)(x0, x1)
    assert c.converged and c.marginal_error <= 1e-4
    plan = c.plan()
    assert plan.dtype == torch.float32
    assert float((plan.sum(1) - c.a).abs().sum() + (plan.sum(0) - c.b).abs().sum()) < 2e-4


def _true_error(plan: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> float:
    return float(((plan.sum(1) - a).abs().sum() + (plan.sum(0) - b).abs().sum()) / a.sum())


@pytest.mark.parametrize("reg", [0.05, 0.3])
def test_overrelaxation_reaches_the_same_plan_in_fewer_sweeps(reg: float) -> None:
    ops = _ops(60, 70)
    kw = dict(eps_start=20.0, anneal_factor=0.5, stage_iters=5, tol=1e-9, max_iter=20_000)
    plain = stabilized_sinkhorn(ops, reg, overrelax=False, **kw)
    fast = stabilized_sinkhorn(ops, reg, **kw)
    assert plain.converged and fast.converged
    assert torch.allclose(fast.plan, plain.plan, atol=1e-9 * float(plain.plan.max()) * 10)
    assert fast.n_iter < plain.n_iter
    # the reported error is the plan's own (columns exact after the last plain v update)
    a, b = torch.exp(ops.log_a), torch.exp(ops.log_b)
    assert _true_error(fast.plan, a, b) <= 2 * fast.error + 1e-14


@pytest.mark.parametrize("check_every", [1, 3, 8])
def test_checking_every_k_sweeps_keeps_the_error_honest(check_every: int) -> None:
    ops = _ops(40, 40, torch.float32)
    r = stabilized_sinkhorn(
        ops,
        0.2,
        eps_start=20.0,
        anneal_factor=0.5,
        stage_iters=5,
        tol=1e-4,
        max_iter=5000,
        check_every=check_every,
    )
    a, b = torch.exp(ops.log_a), torch.exp(ops.log_b)
    assert r.converged and r.error <= 1e-4
    assert _true_error(r.plan, a, b) <= 2e-4


def test_budget_spent_at_the_final_eps_reports_the_plans_error() -> None:
    ops = _ops(50, 50)
    r = stabilized_sinkhorn(
        ops, 0.01, eps_start=0.01, anneal_factor=0.5, stage_iters=5, tol=1e-12, max_iter=37
    )
    assert not r.converged and r.n_iter == 37
    a, b = torch.exp(ops.log_a), torch.exp(ops.log_b)
    plan = ops.plan(r.f, r.g, 0.01)
    assert _true_error(plan, a, b) == pytest.approx(r.error, rel=1e-6, abs=1e-12)


def test_minibatch_tolerance_is_met_and_reported() -> None:
    from sbflow.couplings.sinkhorn import MINIBATCH_TOL

    g = torch.Generator().manual_seed(4)
    x0 = torch.randn(256, 16, generator=g)
    x1 = 0.5 * torch.randn(256, 16, generator=g) + 1
    loose = Sinkhorn(reg=0.5, tol=MINIBATCH_TOL)(x0, x1)
    tight = Sinkhorn(reg=0.5)(x0, x1)
    assert loose.converged and loose.marginal_error <= MINIBATCH_TOL
    assert loose.n_iter <= tight.n_iter
    assert float((loose.plan() - tight.plan()).abs().sum()) < 4 * MINIBATCH_TOL
