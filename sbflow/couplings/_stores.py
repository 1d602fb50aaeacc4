"""Storage formats for transport plans: sparse triplets, dense matrices, products, lazy kernels.

A :class:`~sbflow.couplings.base.Coupling` never assumes a dense plan. It talks to one of these
stores, which can give the row and column masses, dense rows for a set of source indices, a
product ``P @ y``, and draws of target indices, each in memory bounded by ``block_bytes``
(except :class:`DenseStore`, which already holds the plan).
"""

from __future__ import annotations

import torch

from sbflow._random import rand as uniform
from sbflow.couplings._sampling import gumbel, sample_categorical, sample_rows

__all__ = ["DenseStore", "GibbsStore", "OuterStore", "PlanStore", "SparseStore"]

BLOCK_BYTES = 2**26


class PlanStore:
    """Base class: a plan of shape ``(n, m)`` that can produce dense rows on demand.

    Subclasses implement :meth:`rows`; the generic methods below work block-wise on it.

    Example:
        >>> s = DenseStore(torch.eye(2) / 2)
        >>> s.row_mass().tolist()
        [0.5, 0.5]
    """

    n: int
    m: int
    dtype: torch.dtype
    device: torch.device

    def rows(self, idx: torch.Tensor) -> torch.Tensor:
        """Dense plan rows ``P[idx, :]`` of shape ``(len(idx), m)``."""
        raise NotImplementedError

    def _blocks(self, idx: torch.Tensor | None = None):
        if idx is None:
            idx = torch.arange(self.n, device=self.device)
        itemsize = torch.finfo(self.dtype).bits // 8
        step = max(1, BLOCK_BYTES // max(1, self.m * itemsize * 3))
        for start in range(0, idx.numel(), step):
            sub = idx[start : start + step]
            yield sub, self.rows(sub)

    def row_mass(self) -> torch.Tensor:
        """Row sums ``P 1`` of shape ``(n,)``."""
        return torch.cat([blk.sum(1) for _, blk in self._blocks()])

    def col_mass(self) -> torch.Tensor:
        """Column sums ``Pᵀ 1`` of shape ``(m,)``."""
        out = torch.zeros(self.m, dtype=self.dtype, device=self.device)
        for _, blk in self._blocks():
            out += blk.sum(0)
        return out

    def to_dense(self) -> torch.Tensor:
        """The full ``(n, m)`` plan."""
        return torch.cat([blk for _, blk in self._blocks()], 0)

    def matmul(self, y: torch.Tensor) -> torch.Tensor:
        """``P @ y`` for ``y`` of shape ``(m, d)``."""
        return torch.cat([blk @ y for _, blk in self._blocks()], 0)

    def rmatmul(self, y: torch.Tensor) -> torch.Tensor:
        """``Pᵀ @ y`` for ``y`` of shape ``(n, d)``."""
        out = torch.zeros(self.m, y.shape[1], dtype=y.dtype, device=y.device)
        for sub, blk in self._blocks():
            out += blk.T @ y[sub]
        return out

    def sample_targets(self, src: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """One target per entry of ``src``, drawn from ``P[i, :]`` (rows must have mass)."""
        if src.numel() == 0:
            return src.clone()
        return torch.cat([sample_rows(blk, generator) for _, blk in self._blocks(src)])

    def sample_distinct(
        self, k: int, generator: torch.Generator | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``k`` distinct entries ``(i, j)`` drawn from the plan without replacement."""
        best_keys = torch.empty(0, dtype=torch.float64, device=self.device)
        best_flat = torch.empty(0, dtype=torch.long, device=self.device)
        n_pos = 0
        for sub, blk in self._blocks():
            w = blk.to(torch.float64)
            n_pos += int((w > 0).sum())
            keys = torch.log(w) + gumbel(
                tuple(w.shape), dtype=torch.float64, device=w.device, generator=generator
            )
            flat = (sub[:, None] * self.m + torch.arange(self.m, device=self.device)).reshape(-1)
            keys = torch.cat([best_keys, keys.reshape(-1)])
            flat = torch.cat([best_flat, flat])
            top = torch.topk(keys, min(k, keys.numel())).indices
            best_keys, best_flat = keys[top], flat[top]
        if k > n_pos:
            raise ValueError(
                f"cannot draw {k} distinct pairs: the plan has only {n_pos} entries with "
                f"positive mass. Pass replace=True or ask for at most {n_pos} pairs."
            )
        return best_flat // self.m, best_flat % self.m

    def default_row_pairs(
        self, generator: torch.Generator | None
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Pairs for ``pairs(mode="rows")`` when a store has a better answer than row draws."""
        return None

    def coo(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Nonzero entries as ``(rows, cols, values)``, sorted by row."""
        parts = []
        for sub, blk in self._blocks():
            r, c = torch.nonzero(blk, as_tuple=True)
            parts.append((sub[r], c, blk[r, c]))
        return tuple(torch.cat(p) for p in zip(*parts))  # type: ignore[return-value]


class DenseStore(PlanStore):
    """A plan held as a dense ``(n, m)`` tensor.

    Example:
        >>> DenseStore(torch.full((2, 3), 1 / 6)).col_mass().shape
        torch.Size([3])
    """

    def __init__(self, plan: torch.Tensor) -> None:
        self.plan = plan
        self.n, self.m = plan.shape
        self.dtype, self.device = plan.dtype, plan.device

    def rows(self, idx: torch.Tensor) -> torch.Tensor:
        return self.plan[idx]

    def row_mass(self) -> torch.Tensor:
        return self.plan.sum(1)

    def col_mass(self) -> torch.Tensor:
        return self.plan.sum(0)

    def to_dense(self) -> torch.Tensor:
        return self.plan.clone()

    def matmul(self, y: torch.Tensor) -> torch.Tensor:
        return self.plan @ y

    def rmatmul(self, y: torch.Tensor) -> torch.Tensor:
        return self.plan.T @ y


class OuterStore(PlanStore):
    """The product plan ``a bᵀ / sum(a)`` of the independent coupling (never materialised).

    Example:
        >>> OuterStore(torch.ones(2) / 2, torch.ones(4) / 4).rows(torch.tensor([0])).shape
        torch.Size([1, 4])
    """

    def __init__(self, a: torch.Tensor, b: torch.Tensor, *, permute: bool = True) -> None:
        self.a, self.b = a, b / b.sum()
        self.n, self.m = a.numel(), b.numel()
        self.dtype, self.device = a.dtype, a.device
        uniform = bool((a == a[0]).all()) and bool((b == b[0]).all())
        self.square_uniform = permute and uniform and self.n == self.m

    def rows(self, idx: torch.Tensor) -> torch.Tensor:
        return self.a[idx, None] * self.b[None, :]

    def row_mass(self) -> torch.Tensor:
        return self.a.clone()

    def col_mass(self) -> torch.Tensor:
        return self.b * self.a.sum()

    def matmul(self, y: torch.Tensor) -> torch.Tensor:
        return self.a[:, None] * (self.b @ y)[None, :]

    def rmatmul(self, y: torch.Tensor) -> torch.Tensor:
        return self.b[:, None] * (self.a @ y)[None, :]

    def sample_targets(self, src: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        return sample_categorical(self.b, src.numel(), replace=True, generator=generator)

    def default_row_pairs(
        self, generator: torch.Generator | None
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        if not self.square_uniform:
            return None
        gen_device = generator.device if generator is not None else self.device
        perm = torch.randperm(self.n, generator=generator, device=gen_device).to(self.device)
        return torch.arange(self.n, device=self.device), perm


class SparseStore(PlanStore):
    """A plan given by its nonzero entries (network simplex, permutations, label blocks).

    Example:
        >>> s = SparseStore(torch.tensor([0, 1]), torch.tensor([1, 0]), torch.ones(2) / 2, 2, 2)
        >>> s.to_dense().tolist()
        [[0.0, 0.5], [0.5, 0.0]]
    """

    def __init__(
        self, rows: torch.Tensor, cols: torch.Tensor, vals: torch.Tensor, n: int, m: int
    ) -> None:
        keep = vals > 0
        rows, cols, vals = rows[keep], cols[keep], vals[keep]
        order = torch.argsort(rows * m + cols)
        self.r, self.c, self.v = rows[order], cols[order], vals[order]
        self.n, self.m = n, m
        self.dtype, self.device = vals.dtype, vals.device
        self.counts = torch.bincount(self.r, minlength=n)
        self.starts = torch.cumsum(self.counts, 0) - self.counts

    def rows(self, idx: torch.Tensor) -> torch.Tensor:
        pos = torch.full((self.n,), -1, dtype=torch.long, device=self.device)
        pos[idx] = torch.arange(idx.numel(), device=self.device)
        sel = pos[self.r] >= 0
        out = torch.zeros(idx.numel(), self.m, dtype=self.dtype, device=self.device)
        out.index_put_((pos[self.r[sel]], self.c[sel]), self.v[sel], accumulate=True)
        return out

    def row_mass(self) -> torch.Tensor:
        out = torch.zeros(self.n, dtype=self.dtype, device=self.device)
        return out.index_add_(0, self.r, self.v)

    def col_mass(self) -> torch.Tensor:
        out = torch.zeros(self.m, dtype=self.dtype, device=self.device)
        return out.index_add_(0, self.c, self.v)

    def to_dense(self) -> torch.Tensor:
        out = torch.zeros(self.n, self.m, dtype=self.dtype, device=self.device)
        out.index_put_((self.r, self.c), self.v, accumulate=True)
        return out

    def matmul(self, y: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(self.n, y.shape[1], dtype=y.dtype, device=y.device)
        return out.index_add_(0, self.r, self.v[:, None].to(y.dtype) * y[self.c])

    def rmatmul(self, y: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(self.m, y.shape[1], dtype=y.dtype, device=y.device)
        return out.index_add_(0, self.c, self.v[:, None].to(y.dtype) * y[self.r])

    def sample_targets(self, src: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        if src.numel() == 0:
            return src.clone()
        cum = torch.cumsum(self.v.to(torch.float64), 0)
        before = torch.cat([cum.new_zeros(1), cum])
        lo = self.starts[src]
        hi = lo + self.counts[src]
        base, top = before[lo], before[hi]
        u = uniform((src.numel(),), dtype=torch.float64, device=self.device, generator=generator)
        pos = torch.searchsorted(cum, base + u * (top - base), right=True)
        pos = torch.minimum(torch.maximum(pos, lo), hi - 1)
        return self.c[pos]

    def sample_distinct(
        self, k: int, generator: torch.Generator | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        pick = sample_categorical(self.v, k, replace=False, generator=generator)
        return self.r[pick], self.c[pick]

    def coo(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.r, self.c, self.v


class GibbsStore(PlanStore):
    """An entropic plan ``P_ij = a_i b_j exp((f_i + g_j - C_ij) / reg)`` computed block-wise.

    Only the samples and potentials are stored (memory ``O((n + m) d)``); rows are rebuilt on
    demand in blocks of at most ``BLOCK_BYTES``.

    Example:
        >>> x, z = torch.zeros(2, 1), torch.zeros(2)
        >>> s = GibbsStore(x, x, z, z, z, z, 1.0)
        >>> s.rows(torch.tensor([0])).tolist()
        [[1.0, 1.0]]
    """

    def __init__(
        self,
        x0: torch.Tensor,
        x1: torch.Tensor,
        log_a: torch.Tensor,
        log_b: torch.Tensor,
        f: torch.Tensor,
        g: torch.Tensor,
        reg: float,
    ) -> None:
        self.x0, self.x1 = x0, x1
        self.log_a, self.log_b, self.f, self.g, self.reg = log_a, log_b, f, g, reg
        self.n, self.m = x0.shape[0], x1.shape[0]
        self.dtype, self.device = x0.dtype, x0.device
        self._sq1 = (x1 * x1).sum(1)

    def rows(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.x0[idx]
        cost = ((x * x).sum(1)[:, None] + self._sq1[None, :] - 2 * x @ self.x1.T).clamp_min(0)
        logp = (self.f[idx, None] + self.g[None, :] - cost) / self.reg
        return torch.exp(logp + self.log_a[idx, None] + self.log_b[None, :])
