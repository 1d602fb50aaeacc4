"""Properties of the exact couplings against POT in float64, across scales of data and mass.

The reference is POT's ``emd2`` on the *rescaled* problem (data of unit size, masses summing
to one), where its fixed tolerances are safe, mapped back by ``mass × scale²``. sbflow must
match it for coordinates from 1e-8 to 1e8 and weights from 1e-300 to 1e300, return exact
marginals, and not depend on the order of the samples.

The default profile runs few examples (see tests/conftest.py); ``HYPOTHESIS_PROFILE=long``
runs many, and ``-m slow`` adds the long-only variants below.
"""

from __future__ import annotations

import warnings

import numpy as np
import ot
import pytest
import torch

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from sbflow.couplings import ConvergenceWarning, couple  # noqa: E402
from sbflow.metrics import wasserstein  # noqa: E402


@st.composite
def problems(draw, *, balanced: bool = True, square: bool | None = None):
    """Two point clouds and weights at random coordinate and weight scales."""
    n = draw(st.integers(2, 12))
    m = n if square else draw(st.integers(2, 12))
    d = draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**31 - 1))
    coord_exp = draw(st.integers(-8, 8))
    # total costs ~ weights x coordinates² must stay in the normal float64 range
    weight_exp = draw(st.integers(max(-300, -290 - 2 * coord_exp), min(300, 290 - 2 * coord_exp)))
    coord_scale, weight_scale = 10.0**coord_exp, 10.0**weight_exp
    kind = draw(st.sampled_from(["uniform", "random", "sparse"]))
    rs = np.random.RandomState(seed)
    x0 = rs.randn(n, d) * coord_scale
    x1 = (rs.randn(m, d) + rs.randn(d) * 2) * coord_scale
    if kind == "uniform":
        a, b = np.ones(n), np.ones(m)
    else:
        a, b = rs.rand(n) + 0.05, rs.rand(m) + 0.05
        if kind == "sparse":  # a few zero weights
            a[rs.rand(n) < 0.3] = 0.0
            a[0] = max(a[0], 0.5)
    a = a / a.sum() * weight_scale
    b = b / b.sum() * weight_scale * (1.0 if balanced else draw(st.floats(0.5, 2.0)))
    return x0, x1, a, b


def _reference(x0, x1, a, b) -> float:
    scale = np.abs(np.concatenate([x0 - x0.mean(0), x1 - x0.mean(0)])).max()
    centre = x0.mean(0)
    cost = ot.dist((x0 - centre) / scale, (x1 - centre) / scale)
    mass = a.sum()
    value = ot.emd2(a / mass, b / b.sum(), cost, numItermax=10**7)
    return float(value) * mass * scale**2


def _tolerance(x0, x1, a) -> float:
    # absolute slack: the auction is optimal to 1e-9 of the cost range, POT to ~1e-12
    spread = np.abs(np.concatenate([x0, x1]) - x0.mean(0)).max()
    return 1e-8 * (2 * spread) ** 2 * x0.shape[1] * a.sum()


def check_exact(problem) -> None:
    x0, x1, a, b = problem
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        c = couple(x0, x1, method="exact", a=a, b=b)
    assert c.converged
    ref = _reference(x0, x1, a, b)
    assert abs(c.cost - ref) <= 1e-9 * ref + _tolerance(x0, x1, a)
    mass = a.sum()
    assert np.abs(c.row_mass().numpy() - a).sum() <= 1e-9 * mass
    assert np.abs(c.col_mass().numpy() - b).sum() <= 1e-9 * mass


@given(problems())
def test_exact_matches_pot_across_scales(problem) -> None:
    check_exact(problem)


@pytest.mark.slow
@settings(max_examples=300)
@given(problems())
def test_exact_matches_pot_across_scales_long(problem) -> None:
    check_exact(problem)


@given(problems(square=True), st.data())
def test_exact_is_permutation_equivariant(problem, data) -> None:
    x0, x1, a, b = problem
    perm0 = np.array(data.draw(st.permutations(range(len(x0)))))
    perm1 = np.array(data.draw(st.permutations(range(len(x1)))))
    c = couple(x0, x1, method="exact", a=a, b=b)
    cp = couple(x0[perm0], x1[perm1], method="exact", a=a[perm0], b=b[perm1])
    assert abs(cp.cost - c.cost) <= 1e-9 * c.cost + 2 * _tolerance(x0, x1, a)
    # the marginals follow the samples
    assert np.allclose(cp.row_mass().numpy(), c.row_mass().numpy()[perm0], rtol=1e-9, atol=0)
    assert np.allclose(cp.col_mass().numpy(), c.col_mass().numpy()[perm1], rtol=1e-9, atol=0)


@given(problems())
def test_wasserstein_matches_pot_across_scales(problem) -> None:
    x0, x1, a, b = problem
    ref = _reference(x0, x1, a, b) / a.sum()
    w2 = wasserstein(x0, x1, a=a, b=b) ** 2
    assert abs(w2 - ref) <= 1e-9 * ref + _tolerance(x0, x1, a) / a.sum()


@given(problems(balanced=False), st.floats(0.2, 1.0))
def test_partial_matches_pot_across_scales(problem, mass) -> None:
    x0, x1, a, b = problem
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        c = couple(x0, x1, method="partial", a=a, b=b, mass=mass)
    assert c.converged
    k = max(a.sum(), b.sum())
    scale = np.abs(np.concatenate([x0, x1]) - x0.mean(0)).max()
    centre = x0.mean(0)
    cost = ot.dist((x0 - centre) / scale, (x1 - centre) / scale)
    an, bn = a / k, b / k
    s = min(mass * min(an.sum(), bn.sum()), an.sum(), bn.sum())
    ref = ot.partial.partial_wasserstein2(an, bn, cost, m=s, numItermax=10**7)
    ref = float(ref) * k * scale**2
    assert abs(c.cost - ref) <= 1e-7 * ref + _tolerance(x0, x1, a)
    # the constraints: P1 <= a, P^T 1 <= b, total mass s
    rows, cols = c.row_mass().numpy(), c.col_mass().numpy()
    assert (rows <= a * (1 + 1e-9)).all() and (cols <= b * (1 + 1e-9)).all()
    assert rows.sum() == pytest.approx(s * k, rel=1e-9)


@given(problems(square=True), st.sampled_from([torch.float32, torch.float64]))
def test_sinkhorn_plans_are_finite_couplings(problem, dtype) -> None:
    """Entropic plans at any data scale: finite, marginals within tolerance, cost near POT."""
    x0, x1, _, _ = problem
    t0, t1 = torch.as_tensor(x0, dtype=dtype), torch.as_tensor(x1, dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        c = couple(t0, t1, method="sinkhorn", rel_reg=0.1)
    plan = c.plan().double()
    assert bool(torch.isfinite(plan).all())
    if c.converged:
        n = len(x0)
        assert float((plan.sum(1) - 1 / n).abs().sum()) <= c.marginal_error + 1e-5
        assert c.cost >= 0.0
