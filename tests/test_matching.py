"""Matcher: coupling + pairs + path, independent shortcut, precomputed pairs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment

from sbflow.couplings import ExactOT, IndependentCoupling
from sbflow.matching import Matcher
from sbflow.paths import BrownianBridgePath, LinearPath, UniformTime


def _batch(n=32, m=None, d=2, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.rand(n, d, generator=g, dtype=dtype)
    x1 = torch.rand(n if m is None else m, d, generator=g, dtype=dtype) + 1.0
    return x0, x1


def test_exact_ot_pairs_are_an_optimal_permutation():
    x0, x1 = _batch(40)
    sample = Matcher("exact", LinearPath()).sample(x0, x1, generator=torch.Generator())
    # every source exactly once, every target exactly once
    rows = [int(np.flatnonzero((x0.numpy() == r).all(1))[0]) for r in sample.x0.numpy()]
    cols = [int(np.flatnonzero((x1.numpy() == r).all(1))[0]) for r in sample.x1.numpy()]
    assert sorted(rows) == list(range(40)) and sorted(cols) == list(range(40))
    cost = torch.cdist(x0, x1).pow(2).numpy()
    r, c = linear_sum_assignment(cost)
    ours = float(((sample.x0 - sample.x1) ** 2).sum())
    assert abs(ours - cost[r, c].sum()) < 1e-9


def test_exact_ot_couple_returns_identity_rows_and_a_permutation():
    x0, x1 = _batch(16)
    i, j = Matcher(ExactOT()).couple(x0, x1)
    assert i.tolist() == list(range(16))
    assert sorted(j.tolist()) == list(range(16))


@pytest.mark.parametrize("coupling", [None, "independent", "Independent"])
def test_independent_pairs_rows_as_given(coupling):
    x0, x1 = _batch(10)
    m = Matcher(coupling)
    assert m.solver is None
    i, j = m.couple(x0, x1, generator=torch.Generator().manual_seed(0))
    assert i.tolist() == j.tolist() == list(range(10))
    s = m.sample(x0, x1, generator=torch.Generator().manual_seed(0))
    assert torch.equal(s.x0, x0) and torch.equal(s.x1, x1)


def test_independent_with_unequal_sizes_draws_targets_uniformly_and_seeded():
    x0, x1 = _batch(500, 7)
    m = Matcher()
    i, j = m.couple(x0, x1, generator=torch.Generator().manual_seed(1))
    i2, j2 = m.couple(x0, x1, generator=torch.Generator().manual_seed(1))
    assert i.tolist() == list(range(500)) and torch.equal(i, i2) and torch.equal(j, j2)
    assert set(j.tolist()) == set(range(7))


def test_independent_solver_instance_is_used_when_given():
    x0, x1 = _batch(12)
    g = torch.Generator().manual_seed(0)
    i, j = Matcher(IndependentCoupling()).couple(x0, x1, generator=g)
    assert i.tolist() == list(range(12)) and sorted(j.tolist()) == list(range(12))


def test_labels_pair_within_classes():
    x0, x1 = _batch(20)
    y0 = torch.arange(20) % 2
    y1 = (torch.arange(20) + 1) % 2
    for coupling in (None, "exact"):
        i, j = Matcher(coupling).couple(
            x0, x1, y0=y0, y1=y1, generator=torch.Generator().manual_seed(0)
        )
        assert torch.equal(y0[i], y1[j])


def test_precomputed_pairs_reproduce_sample():
    x0, x1 = _batch(24)
    m = Matcher("exact", BrownianBridgePath(0.5))
    a = m.sample(x0, x1, generator=torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    i, j = m.couple(x0, x1, generator=g)
    b = m.sample_path(x0[i], x1[j], generator=g)
    c = m.sample(x0, x1, pairs=(i, j), generator=torch.Generator().manual_seed(3))
    assert torch.equal(a.xt, b.xt) and torch.equal(a.t, b.t)
    assert torch.equal(a.xt, c.xt) and torch.equal(a.score, c.score)


def test_time_sampler_defaults_to_the_path_and_can_be_replaced():
    assert Matcher(path=BrownianBridgePath(1.0)).time_sampler.eps == 1e-3
    m = Matcher(path=LinearPath(), time_sampler=UniformTime(0.2))
    s = m.sample(*_batch(2000), generator=torch.Generator().manual_seed(0))
    assert s.t.min() >= 0.2 and s.t.max() <= 0.8


def test_sinkhorn_matcher_with_options_and_trainer_protocol():
    x0, x1 = _batch(32)
    m = Matcher("sinkhorn", BrownianBridgePath(0.5), reg=0.5)
    assert m.solver.reg == 0.5
    s = m(x0, x1, torch.Generator().manual_seed(0))
    assert s.xt.shape == (32, 2) and s.score is not None


def test_matcher_errors():
    with pytest.raises(ValueError, match="unknown coupling"):
        Matcher("nope")
    with pytest.raises(TypeError, match="without a coupling"):
        Matcher(None, reg=1.0)
    with pytest.raises(TypeError, match="ProbabilityPath"):
        Matcher(path="linear")
    with pytest.raises(ValueError, match="pair_mode"):
        Matcher(pair_mode="cols")
    x0, _ = _batch(4)
    with pytest.raises(ValueError, match="shapes"):
        Matcher().couple(x0, torch.zeros(4, 3, dtype=torch.float64))
