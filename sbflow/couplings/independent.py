"""The independent coupling ``P = a ⊗ b`` (the baseline of every matching method)."""

from __future__ import annotations

from typing import Any

import torch

from sbflow._checks import check_bool
from sbflow.couplings._stores import OuterStore
from sbflow.couplings.base import Coupling, CouplingSolver

__all__ = ["IndependentCoupling"]


class IndependentCoupling(CouplingSolver):
    """Pair sources and targets independently: ``P_ij = a_i b_j / sum(b)``.

    ``pairs()`` draws one target per source from ``b``; for uniform weights and ``n == m`` it
    returns ``(arange(n), randperm(n))`` instead (every target used once), unless
    ``permute=False``. The plan is never materialised unless asked for.

    Args:
        permute: Use a random permutation for uniform square batches.

    Example:
        >>> c = IndependentCoupling()(torch.zeros(4, 2), torch.ones(4, 2))
        >>> i, j = c.pairs(generator=torch.Generator().manual_seed(0))
        >>> sorted(j.tolist())
        [0, 1, 2, 3]
    """

    name = "independent"
    balanced = True

    def __init__(self, *, permute: bool = True) -> None:
        self.permute = check_bool(permute, "permute")

    def _solve(
        self, x0: torch.Tensor, x1: torch.Tensor, a: torch.Tensor, b: torch.Tensor, **options: Any
    ) -> Coupling:
        store = OuterStore(a, b, permute=self.permute)
        shift = 0.5 * (x0.mean(0) + x1.mean(0))
        y0, y1 = x0 - shift, x1 - shift
        mass = float(a.sum())
        bn = b / b.sum()
        # <C, a⊗b> = sum a_i |y0_i|^2 + mass * sum b_j |y1_j|^2 - 2 (a·y0)·(b·y1)
        cost = float(
            a @ (y0 * y0).sum(1) + mass * (bn @ (y1 * y1).sum(1)) - 2 * (a @ y0) @ (bn @ y1)
        )
        return Coupling(
            store,
            a=a,
            b=b,
            method=self.name,
            cost=max(cost, 0.0),
            is_permutation=False,
            backend="torch",
        )
