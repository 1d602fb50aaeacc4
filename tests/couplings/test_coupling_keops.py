"""KeOps backend: same plan as dense on small problems; bounded-memory plan access."""

from __future__ import annotations

import pytest
import torch

from sbflow.couplings import Sinkhorn, UnbalancedSinkhorn, keops_available
from sbflow.couplings._keops import keops_status

pytestmark = [
    pytest.mark.keops,
    pytest.mark.skipif(not keops_available(), reason=f"pykeops not usable: {keops_status()[1]}"),
]


def _xy(n: int, m: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(n, 2, generator=g, dtype=torch.float64)
    x1 = torch.randn(m, 2, generator=g, dtype=torch.float64) + 1.5
    return x0, x1


@pytest.mark.parametrize("solver_cls", [Sinkhorn, UnbalancedSinkhorn])
def test_keops_plan_equals_dense(solver_cls) -> None:
    x0, x1 = _xy(40, 50)
    dense = solver_cls(rel_reg=0.05, backend="dense")(x0, x1)
    lazy = solver_cls(rel_reg=0.05, backend="keops")(x0, x1)
    assert lazy.backend == "keops" and dense.backend == "torch"
    assert lazy.n_iter == dense.n_iter
    assert torch.allclose(lazy.plan(), dense.plan(), atol=1e-12, rtol=1e-8)
    assert lazy.cost == pytest.approx(dense.cost, rel=1e-10)
    assert torch.allclose(lazy.barycentric_projection(x1), dense.barycentric_projection(x1))
    assert torch.allclose(lazy.row_mass(), dense.row_mass())


def test_keops_pairs_are_seeded_and_follow_the_plan() -> None:
    x0, x1 = _xy(30, 30, seed=1)
    c = Sinkhorn(reg=1.0, backend="keops")(x0, x1)
    gen = torch.Generator()
    i1, j1 = c.pairs(500, mode="plan", generator=gen.manual_seed(3))
    i2, j2 = c.pairs(500, mode="plan", generator=gen.manual_seed(3))
    assert torch.equal(i1, i2) and torch.equal(j1, j2)
    dense = Sinkhorn(reg=1.0, backend="dense")(x0, x1)
    i3, j3 = dense.pairs(500, mode="plan", generator=gen.manual_seed(3))
    assert torch.equal(i1, i3) and torch.equal(j1, j3)
