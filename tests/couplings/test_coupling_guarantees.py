"""Issue 13: no crash, no silent wrong answer; memory is checked before dense allocations.

Each reproduction of the issue is pinned here with the reference optimum computed by POT in
float64 on the rescaled problem (masses summing to one, data of unit size), where POT is right.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import ot
import pytest
import torch

import sbflow._memory as memory
from sbflow._memory import InsufficientMemoryError, require_memory
from sbflow.couplings import (
    ConvergenceError,
    ConvergenceWarning,
    Coupling,
    CouplingSolver,
    ExactOT,
    couple,
)
from sbflow.couplings._network_simplex import network_simplex
from sbflow.couplings._stores import DenseStore
from sbflow.metrics import wasserstein


def _issue_data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(13)
    x0 = torch.randn(20, 2, dtype=torch.float64, generator=g)
    return x0, torch.randn(20, 2, dtype=torch.float64, generator=g) + 2


def _reference(x0, x1, a=None, b=None) -> float:
    """Optimal <C, P> by POT on the rescaled problem, mapped back to the caller's units."""
    x0, x1 = np.asarray(x0, dtype=np.float64), np.asarray(x1, dtype=np.float64)
    scale = np.abs(np.concatenate([x0, x1])).max()
    a = np.full(len(x0), 1 / len(x0)) if a is None else np.asarray(a, dtype=np.float64)
    b = np.full(len(x1), 1 / len(x1)) if b is None else np.asarray(b, dtype=np.float64)
    mass = a.sum()
    cost = ot.dist(x0 / scale, x1 / scale)
    value = ot.emd2(a / mass, b / b.sum(), cost, numItermax=10**7)
    return float(value) * mass * scale**2


def test_tiny_partial_weights_do_not_crash() -> None:
    """Reproduction 1: weights 1e-300 reached ot.emd unnormalised and crashed it (SIGSEGV)."""
    x0, x1 = _issue_data()
    w = torch.full((20,), 1e-300, dtype=torch.float64)
    c = couple(x0, x1, method="partial", a=w, b=w)
    assert c.converged
    assert float(c.row_mass().sum()) == pytest.approx(0.9 * 20e-300, rel=1e-9)
    assert c.cost == pytest.approx(1e-300 * 20 * couple(x0, x1, method="partial").cost, rel=1e-9)


@pytest.mark.parametrize("scale", [1e-180, 1e-300, 1e15, 1e200, 1e300])
def test_extreme_exact_weights_give_the_optimum(scale: float) -> None:
    """Reproductions 1 and 2: tiny weights crashed; large ones gave an all-zero plan."""
    x0, x1 = _issue_data()
    g = torch.Generator().manual_seed(1)
    a = (torch.rand(20, dtype=torch.float64, generator=g) + 0.1) * scale
    b = a.flip(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        c = couple(x0, x1, method="exact", a=a, b=b)
    assert c.converged
    assert c.marginal_error < 1e-12
    assert torch.allclose(c.row_mass(), a, rtol=1e-12, atol=0)
    assert c.cost == pytest.approx(_reference(x0, x1, a, b), rel=1e-9)


def test_small_coordinates_give_the_optimum() -> None:
    """Reproduction 3: data at scale 1e-7 gave 2.1x (exact), 10.3x (partial) the optimum."""
    rs = np.random.RandomState(74)
    x0, x1 = rs.randn(35, 2) * 1e-7, rs.randn(32, 2) * 1e-7
    best = _reference(x0, x1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        c = couple(x0, x1, method="exact")
    assert c.converged and c.cost == pytest.approx(best, rel=1e-9)
    assert wasserstein(x0, x1) ** 2 == pytest.approx(best, rel=1e-9)

    part = couple(x0, x1, method="partial", mass=0.5)
    scale = np.abs(np.concatenate([x0, x1])).max()
    ref = ot.partial.partial_wasserstein2(
        np.full(35, 1 / 35), np.full(32, 1 / 32), ot.dist(x0 / scale, x1 / scale), m=0.5
    )
    assert part.converged
    assert part.cost == pytest.approx(float(ref) * scale**2, rel=1e-7)


def test_network_simplex_result_is_verified() -> None:
    """A plan that fails the optimality conditions is reported, never converged=True."""
    rs = np.random.RandomState(0)
    cost = ot.dist(rs.randn(30, 2), rs.randn(40, 2))
    a, b = np.full(30, 1 / 30), np.full(40, 1 / 40)
    # a budget of 5 pivots cannot reach the optimum of a 30 x 40 problem
    sol = network_simplex(a, b, cost, max_iter=5)
    assert not sol.optimal and sol.out_of_iterations and "max_iter=5" in sol.reason
    x0, x1 = torch.as_tensor(rs.randn(30, 2)), torch.as_tensor(rs.randn(40, 2))
    with pytest.warns(ConvergenceWarning, match="verified optimum.*max_iter"):
        c = ExactOT(max_iter=5)(x0, x1)
    assert not c.converged
    with pytest.raises(ConvergenceError, match="max_iter"):
        ExactOT(max_iter=5, strict=True)(x0, x1)
    with pytest.raises(ConvergenceError, match="max_iter"):
        wasserstein(x0, x1, max_iter=5)


def test_wrong_duals_fail_the_check() -> None:
    """The check itself: POT on the unnormalised tiny-cost problem returns a wrong vertex."""
    from sbflow.couplings._network_simplex import _check

    rs = np.random.RandomState(74)
    cost = ot.dist(rs.randn(35, 2) * 1e-7, rs.randn(32, 2) * 1e-7)
    a, b = np.full(35, 1 / 35), np.full(32, 1 / 32)
    plan, log = ot.emd(a, b, cost, log=True)
    top = cost.max()
    reason = _check(plan, log["u"] / top, log["v"] / top, a, b, cost / top, 1, 100)
    assert reason  # POT said "optimal"; the duals say otherwise
    good, glog = ot.emd(a, b, cost / top, log=True)
    assert _check(good, glog["u"], glog["v"], a, b, cost / top, 1, 100) == ""


class _BrokenEntropic(CouplingSolver):
    """A solver whose plan overflowed, as a too-small reg makes Sinkhorn's."""

    name = "broken"

    def __init__(self, reg: float | None) -> None:
        self.reg = reg

    def _solve(self, x0, x1, a, b, **options) -> Coupling:
        plan = torch.full((x0.shape[0], x1.shape[0]), math.inf, dtype=x0.dtype)
        return Coupling(DenseStore(plan), a=a, b=b, method=self.name, cost=math.inf, reg=self.reg)


def test_non_finite_plans_always_raise() -> None:
    """Reproduction 8, library side: a plan with inf/NaN entries is never returned."""
    x0, x1 = _issue_data()
    with pytest.raises(ConvergenceError, match=r"reg=1e-08 is too small.*rel_reg"):
        _BrokenEntropic(1e-8)(x0, x1)
    with pytest.raises(ConvergenceError, match="please report"):
        _BrokenEntropic(None)(x0, x1)


@pytest.mark.parametrize("shift", [0.0, 30.0])
def test_sinkhorn_with_tiny_reg_is_finite_or_raises(shift: float) -> None:
    x0, x1 = _issue_data()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            c = couple(x0, x1 + shift, method="sinkhorn", reg=1e-8)
    except ConvergenceError as err:
        assert "reg" in str(err)
        return
    plan = c.plan()
    assert bool(torch.isfinite(plan).all()) and math.isfinite(c.cost)


@pytest.mark.parametrize("method", ["exact", "sinkhorn", "unbalanced", "partial"])
def test_inputs_requiring_grad_are_detached(method: str) -> None:
    x0, x1 = _issue_data()
    x0.requires_grad_(True)
    c = couple(x0, x1, method=method)
    assert math.isfinite(c.cost)
    assert not c.a.requires_grad and not c.plan().requires_grad


@pytest.mark.parametrize(
    ("method", "value", "dtype", "match"),
    [
        ("exact", 1e154, torch.float64, "squared distances.*reach about.*float64.*Rescale"),
        ("sinkhorn", 1e154, torch.float64, "squared distances.*Rescale"),
        ("independent", 1e154, torch.float64, "squared distances.*Rescale"),
        ("sinkhorn", 1e20, torch.float32, "float32.*float64 samples"),
        ("exact", 1e-160, torch.float64, "below the range"),
    ],
)
def test_costs_out_of_range_name_the_cause(method, value, dtype, match) -> None:
    x0, x1 = _issue_data()
    with pytest.raises(ValueError, match=match):
        couple((x0 * value).to(dtype), (x1 * value).to(dtype), method=method)


def test_float32_exact_handles_large_coordinates() -> None:
    # exact computes its cost in float64: float32 inputs at 1e20 are fine
    x0, x1 = _issue_data()
    c = couple((x0 * 1e20).float(), (x1 * 1e20).float(), method="exact")
    ref = _reference(x0.float().double() * 1e20, x1.float().double() * 1e20)
    assert c.cost == pytest.approx(ref, rel=1e-6)


def test_weights_that_underflow_the_sample_dtype_are_refused() -> None:
    x0, x1 = _issue_data()
    w = torch.full((20,), 1e-300, dtype=torch.float64)
    for method in ("partial", "exact"):
        with pytest.raises(ValueError, match=r"weights a .*float32.*common factor"):
            couple(x0.float(), x1.float(), method=method, a=w, b=w)
    # a single weight vector is normalised in float64 first: only the ratios matter
    c = wasserstein(x0.float(), x1.float(), a=w)
    assert c == pytest.approx(wasserstein(x0.float(), x1.float()), rel=1e-6)


# -- memory ------------------------------------------------------------------------------


@pytest.fixture
def one_gib(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "available_bytes", lambda device=None: 2**30)


def test_require_memory_passes_and_refuses(one_gib: None) -> None:
    require_memory(2**28, what="a buffer", hint="n/a")
    with pytest.raises(InsufficientMemoryError, match=r"a matrix needs 1\.0 GiB.*smaller"):
        require_memory(2**30, what="a matrix", hint="Use a smaller one.")
    assert issubclass(InsufficientMemoryError, MemoryError)
    assert issubclass(InsufficientMemoryError, ValueError)


def test_unknown_free_memory_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "available_bytes", lambda device=None: None)
    require_memory(2**60, what="anything", hint="")


def test_available_bytes_reads_this_machine() -> None:
    free = memory.available_bytes()
    assert free is None or 0 < free < 2**50


@pytest.mark.parametrize(
    ("method", "options"),
    [("exact", {}), ("sinkhorn", {"backend": "dense"}), ("partial", {}), ("exact", {"b": 1})],
)
def test_large_couplings_fail_before_allocating(one_gib, method, options) -> None:
    """n = 30 000 in float64 needs 7 GiB for the cost matrix alone: refused up front."""
    n = 30_000
    x0 = torch.zeros(n, 2, dtype=torch.float64)
    x1 = torch.ones(n, 2, dtype=torch.float64)
    if options.pop("b", None):
        options["b"] = torch.rand(n, dtype=torch.float64, generator=torch.Generator())
        options["b"] *= 1 / float(options["b"].sum())
    with pytest.raises(InsufficientMemoryError, match=r"GiB.*smaller batches.*keops"):
        couple(x0, x1, method=method, **options)


def test_dense_plan_checks_memory(one_gib: None) -> None:
    n = 20_000
    c = couple(torch.zeros(n, 1), torch.ones(n, 1), method="independent")
    with pytest.raises(InsufficientMemoryError, match=r"dense \(20000, 20000\) plan.*pairs\(\)"):
        c.plan(max_bytes=2**40)
    with pytest.raises(ValueError, match=r"limit of 1024 MiB \(max_bytes\)"):
        c.plan()
