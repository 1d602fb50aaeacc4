"""Pairs, dense-plan refusal, barycentric projection, sparse storage and class labels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sbflow.couplings import (
    Coupling,
    ExactOT,
    IndependentCoupling,
    PartialOT,
    Sinkhorn,
    UnbalancedSinkhorn,
    couple,
    get_solver,
    sq_euclidean,
)
from sbflow.couplings._pot import pot


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_permutation_pairs_use_every_source_and_target_once() -> None:
    x0 = torch.randn(257, 3, generator=_gen())
    x1 = torch.randn(257, 3, generator=_gen(1)) + 2
    c = couple(x0, x1)
    i, j = c.pairs()
    assert torch.equal(i, torch.arange(257))
    assert torch.equal(torch.sort(j).values, torch.arange(257))


def test_independent_uniform_square_pairs_are_a_random_permutation() -> None:
    c = IndependentCoupling()(torch.zeros(50, 2), torch.ones(50, 2))
    i, j = c.pairs(generator=_gen())
    assert torch.equal(i, torch.arange(50)) and sorted(j.tolist()) == list(range(50))
    assert not torch.equal(j, torch.arange(50))
    assert c.cost == pytest.approx(2.0)


def test_independent_targets_follow_b() -> None:
    b = torch.tensor([0.7, 0.0, 0.3], dtype=torch.float64)
    c = IndependentCoupling()(torch.zeros(4000, 1, dtype=torch.float64), torch.ones(3, 1), b=b)
    _, j = c.pairs(generator=_gen())
    counts = torch.bincount(j, minlength=3).double() / 4000
    assert counts[1] == 0 and abs(float(counts[0]) - 0.7) < 0.03


def test_row_pairs_follow_the_conditional_plan() -> None:
    x0 = torch.randn(3, 2, generator=_gen(), dtype=torch.float64)
    x1 = torch.randn(4, 2, generator=_gen(1), dtype=torch.float64)
    c = Sinkhorn(reg=2.0)(x0, x1)
    plan = c.plan()
    src = torch.zeros(20000, dtype=torch.long)
    j = c._store.sample_targets(src, _gen(3))
    freq = torch.bincount(j, minlength=4).double() / 20000
    assert torch.allclose(freq, plan[0] / plan[0].sum(), atol=0.02)


def test_plan_pairs_without_replacement_are_distinct_and_too_many_is_an_error() -> None:
    x0 = torch.randn(10, 2, generator=_gen(), dtype=torch.float64)
    x1 = torch.randn(10, 2, generator=_gen(1), dtype=torch.float64)
    c = ExactOT()(x0, x1)
    i, j = c.pairs(10, mode="plan", replace=False, generator=_gen())
    assert len(set(zip(i.tolist(), j.tolist()))) == 10
    assert torch.equal(j[torch.argsort(i)], c.permutation)
    with pytest.raises(ValueError, match="distinct"):
        c.pairs(11, mode="plan", replace=False, generator=_gen())
    with pytest.raises(ValueError, match="mode"):
        c.pairs(mode="diagonal")


def test_rows_mode_skips_sources_with_no_mass() -> None:
    x0 = torch.tensor([[0.0], [1.0], [10.0]], dtype=torch.float64)
    x1 = torch.tensor([[0.0], [1.0], [-10.0]], dtype=torch.float64)
    c = PartialOT(mass=2 / 3)(x0, x1)
    i, _ = c.pairs()
    assert i.tolist() == [0, 1]
    proj = c.barycentric_projection(x1)
    assert torch.isnan(proj[2]).all() and torch.allclose(proj[:2], x1[:2])


def test_plan_refuses_when_too_large() -> None:
    c = couple(torch.zeros(100, 1), torch.ones(100, 1), method="independent")
    with pytest.raises(ValueError, match="max_bytes"):
        c.plan(max_bytes=1000)
    assert c.plan(max_bytes=10**6).shape == (100, 100)


def test_barycentric_projection_keeps_feature_shape_and_matches_dense() -> None:
    g = _gen()
    x0 = torch.randn(12, 2, 3, generator=g, dtype=torch.float64)
    x1 = torch.randn(15, 2, 3, generator=g, dtype=torch.float64)
    for method in ("exact", "sinkhorn", "independent"):
        c = couple(x0, x1, method=method)
        proj = c.barycentric_projection(x1)
        plan = c.plan()
        ref = (plan @ x1.reshape(15, -1)) / plan.sum(1, keepdim=True)
        assert proj.shape == (12, 2, 3)
        assert torch.allclose(proj.reshape(12, -1), ref)


def test_exact_plan_stays_sparse_for_general_weights() -> None:
    g = _gen(5)
    x0, x1 = torch.randn(200, 2, generator=g), torch.randn(300, 2, generator=g)
    a = torch.rand(200, generator=g) + 0.1
    b = torch.rand(300, generator=g) + 0.1
    c = ExactOT()(x0.double(), x1.double(), a / a.sum(), b / b.sum())
    assert c.sparse()._nnz() <= 499
    assert c._store.__class__.__name__ == "SparseStore"


def test_numpy_inputs_give_float64_tensors() -> None:
    rng = np.random.default_rng(0)
    c = couple(rng.normal(size=(8, 2)), rng.normal(size=(8, 2)), method="sinkhorn")
    assert c.dtype == torch.float64 and c.potentials[0].dtype == torch.float64
    assert c.pairs()[0].dtype == torch.long


def test_get_solver_passes_instances_and_rejects_unknown_names() -> None:
    s = Sinkhorn(reg=1.0)
    assert get_solver(s) is s
    assert isinstance(get_solver("unbalanced"), UnbalancedSinkhorn)
    with pytest.raises(ValueError, match="unknown coupling method"):
        get_solver("emd")
    with pytest.raises(TypeError, match="instance"):
        get_solver(s, reg=2.0)


# --- labels ---------------------------------------------------------------------------------


def _labelled(seed: int = 0):
    g = _gen(seed)
    x0 = torch.randn(30, 2, generator=g, dtype=torch.float64)
    x1 = torch.randn(30, 2, generator=g, dtype=torch.float64) + 1
    y0 = torch.tensor([0] * 10 + [1] * 20)[torch.randperm(30, generator=g)]
    y1 = torch.tensor([0] * 10 + [1] * 20)[torch.randperm(30, generator=g)]
    return x0, x1, y0, y1


def test_labelled_exact_is_a_permutation_within_classes() -> None:
    x0, x1, y0, y1 = _labelled()
    c = couple(x0, x1, y0=y0, y1=y1)
    assert c.is_permutation
    i, j = c.pairs()
    assert torch.equal(y0[i], y1[j])
    # equals the sum of the per-class optimal costs
    ot = pot()
    ref = 0.0
    for k in (0, 1):
        m0, m1 = y0 == k, y1 == k
        cost = sq_euclidean(x0[m0], x1[m1]).numpy()
        ref += ot.emd2([], [], cost) * int(m0.sum()) / 30
    assert c.cost == pytest.approx(ref, rel=1e-9)


@pytest.mark.parametrize("method", ["sinkhorn", "exact", "unbalanced", "partial", "independent"])
def test_labelled_plans_have_no_mass_across_classes(method: str) -> None:
    x0, x1, y0, y1 = _labelled(1)
    y1 = torch.tensor([0] * 12 + [1] * 18)  # class sizes differ between the sides
    c = couple(x0, x1, method, y0=y0.numpy(), y1=y1.tolist())
    plan = c.plan()
    assert float(plan[y0[:, None] != y1[None, :]].abs().sum()) == 0.0
    if method in ("sinkhorn", "exact", "independent"):
        # each class keeps its source mass; target weights rescaled within the class
        assert torch.allclose(plan.sum(1), c.a, atol=1e-6)
        assert torch.allclose(plan.sum(0), c.b, atol=1e-6)
        assert float(c.b[y1 == 0].sum()) == pytest.approx(10 / 30)
    i, j = c.pairs(generator=_gen())
    assert torch.equal(y0[i], y1[j])


def test_labels_with_strings() -> None:
    x0, x1, _, _ = _labelled(2)
    y0 = np.array(["a", "b"] * 15)
    y1 = np.array(["b", "a"] * 15)
    c = couple(x0, x1, y0=y0, y1=y1)
    i, j = c.pairs()
    assert (y0[i.numpy()] == y1[j.numpy()]).all()


def test_labelled_sinkhorn_uses_one_reg_for_all_classes() -> None:
    x0, x1, y0, y1 = _labelled(3)
    c = couple(x0, x1, "sinkhorn", y0=y0, y1=y1, rel_reg=0.1)
    assert isinstance(c, Coupling) and c.converged
    assert c.reg == pytest.approx(0.1 * float(sq_euclidean(x0, x1).mean()), rel=1e-9)


@pytest.mark.parametrize("kind", ["mean", "median", "std"])
def test_relative_reg_uses_the_chosen_cost_scale(kind: str) -> None:
    g = _gen(4)
    x0 = torch.randn(30, 2, generator=g, dtype=torch.float64)
    x1 = torch.randn(35, 2, generator=g, dtype=torch.float64) + 1
    cost = sq_euclidean(x0, x1).reshape(-1)
    expected = {"mean": cost.mean(), "median": cost.median(), "std": cost.std()}[kind]
    c = Sinkhorn(rel_reg=0.2, reg_scale=kind)(x0, x1)
    assert c.reg == pytest.approx(0.2 * float(expected), rel=1e-9)
    assert Sinkhorn(reg=0.7)(x0, x1).reg == 0.7


def test_independent_without_permutation_draws_targets_independently() -> None:
    c = IndependentCoupling(permute=False)(torch.zeros(200, 1), torch.ones(200, 1))
    _, j = c.pairs(generator=_gen())
    assert len(set(j.tolist())) < 200  # i.i.d. draws repeat targets
