"""Partial optimal transport: move only a fraction of the mass, leave outliers unmatched."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from sbflow._checks import (
    check_bool,
    check_positive,
    check_positive_int,
    check_unit_interval,
)
from sbflow._memory import require_memory
from sbflow.couplings._network_simplex import BYTES_PER_ENTRY, network_simplex
from sbflow.couplings._sinkhorn_core import DenseOps, default_tol, stabilized_sinkhorn
from sbflow.couplings._stores import DenseStore, SparseStore
from sbflow.couplings.base import Coupling, CouplingSolver
from sbflow.couplings.cost import DENSE_HINT, REG_SCALES, cost_scale, sq_euclidean
from sbflow.couplings.exact import marginal_error

__all__ = ["PartialOT"]


class PartialOT(CouplingSolver):
    """Partial OT: transport mass ``s = mass × min(sum(a), sum(b))`` at least cost.

    Solves ``min <C, P>`` over ``P ≥ 0`` with ``P1 ≤ a``, ``Pᵀ1 ≤ b``, ``sum(P) = s``. The
    problem is rewritten as balanced OT with one dummy point on each side (the dummy source
    has mass ``sum(b) − s`` and the dummy target ``sum(a) − s``, both at zero cost to every
    real point; between the two dummies the entropic problem forbids transport and the exact
    one charges ``2·max C``, which no optimum pays); this is exact for the linear program.
    ``mass=1`` with equal total masses is balanced OT.

    * Exact (default, ``reg`` and ``rel_reg`` both ``None``): network simplex on the extended
      problem (POT ``ot.emd`` on a normalised copy, its answer verified against the
      optimality conditions, as for :class:`~sbflow.couplings.ExactOT`); the plan is stored
      sparse.
    * Entropic (``reg`` or ``rel_reg`` given): annealed log-domain Sinkhorn on the extended
      problem, with the entropy taken relative to the extended weights. This is not the same
      objective as POT's ``entropic_partial_wasserstein``; both tend to exact partial OT as
      ``reg → 0``.

    Weights are taken as given (not normalised). Sources left untransported have zero row
    mass; ``pairs(mode="rows")`` leaves them out.

    Args:
        mass: Fraction in ``(0, 1]`` of the smaller total mass to transport.
        reg: Absolute entropic regularisation (cost units).
        rel_reg: Relative entropic regularisation (times the ``reg_scale`` of the cost).
        reg_scale: ``"mean"``, ``"median"`` or ``"std"``.
        tol: Marginal-error tolerance of the entropic solver (dtype default if ``None``).
        max_iter: Sinkhorn sweeps (entropic) or network-simplex pivots (exact).
        strict: Raise :class:`~sbflow.couplings.ConvergenceError` instead of warning.

    Example:
        >>> x0 = torch.tensor([[0.0], [1.0], [10.0]], dtype=torch.float64)
        >>> x1 = torch.tensor([[0.0], [1.0], [-10.0]], dtype=torch.float64)
        >>> c = PartialOT(mass=2 / 3)(x0, x1)
        >>> round(c.cost, 12), c.row_mass().tolist()[2]
        (0.0, 0.0)
    """

    name = "partial"
    balanced = False
    releases_gil = False

    def __init__(
        self,
        mass: float = 0.9,
        reg: float | None = None,
        *,
        rel_reg: float | None = None,
        reg_scale: str = "mean",
        tol: float | None = None,
        max_iter: int | None = None,
        strict: bool = False,
    ) -> None:
        self.mass = check_unit_interval(mass, "mass")
        self.reg = None if reg is None else check_positive(reg, "reg")
        self.rel_reg = None if rel_reg is None else check_positive(rel_reg, "rel_reg")
        if reg_scale not in REG_SCALES:
            raise ValueError(f"reg_scale must be one of {REG_SCALES}; got {reg_scale!r}.")
        self.reg_scale = reg_scale
        self.tol = None if tol is None else check_positive(tol, "tol")
        self.entropic = self.reg is not None or self.rel_reg is not None
        default = 10_000 if self.entropic else 100_000_000
        self.max_iter = default if max_iter is None else check_positive_int(max_iter, "max_iter")
        self.strict = check_bool(strict, "strict")

    def _cost_dtype(self, dtype: torch.dtype) -> torch.dtype:
        return dtype if self.entropic else torch.float64

    def _resolve(
        self, x0: torch.Tensor, x1: torch.Tensor, a: torch.Tensor, b: torch.Tensor
    ) -> dict[str, Any]:
        if not self.entropic:
            return {}
        scale = cost_scale(x0, x1, "mean")
        if self.reg is not None:
            return {"reg": self.reg, "eps_start": scale}
        assert self.rel_reg is not None
        rscale = scale if self.reg_scale == "mean" else cost_scale(x0, x1, self.reg_scale)
        if not rscale > 0:
            raise ValueError("the cost scale is zero (identical samples?); pass an absolute reg.")
        return {"reg": self.rel_reg * rscale, "eps_start": scale}

    def _solve(
        self,
        x0: torch.Tensor,
        x1: torch.Tensor,
        a: torch.Tensor,
        b: torch.Tensor,
        *,
        reg: float | None = None,
        eps_start: float | None = None,
        **options: Any,
    ) -> Coupling:
        n, m = x0.shape[0], x1.shape[0]
        sa, sb = float(a.sum()), float(b.sum())
        s = self.mass * min(sa, sb)
        tiny = 1e-12 * max(sa, sb)
        extra_a, extra_b = sb - s, sa - s
        add_row, add_col = extra_a > tiny, extra_b > tiny
        per_entry = 16 + BYTES_PER_ENTRY if reg is None else 4 * x0.element_size()
        require_memory(
            (n + 1) * (m + 1) * per_entry,
            what=f"partial OT on a ({n}, {m}) problem",
            hint=DENSE_HINT,
            device=None if reg is None else x0.device,
        )
        cost = sq_euclidean(x0.double() if reg is None else x0, x1.double() if reg is None else x1)
        ne, me = n + int(add_row), m + int(add_col)
        # any positive cost keeps mass off the dummy-to-dummy entry of the exact problem
        # (moving it through a real pair instead saves that cost); 2·max keeps the cost scale
        big = float("inf") if reg is not None else 2.0 * float(cost.max()) or 1.0
        cext = cost.new_zeros(ne, me)
        cext[:n, :m] = cost
        if add_row and add_col:
            cext[n, m] = big
        aext = torch.cat([a.to(cost.dtype), a.new_full((int(add_row),), extra_a).to(cost.dtype)])
        bext = torch.cat([b.to(cost.dtype), b.new_full((int(add_col),), extra_b).to(cost.dtype)])
        if reg is None:
            return self._exact(x0, a, b, cost, cext, aext, bext)
        assert eps_start is not None
        return self._entropic(x0, a, b, cost, cext, aext, bext, reg, eps_start)

    def _exact(self, x0, a, b, cost, cext, aext, bext) -> Coupling:
        n, m = cost.shape
        sol = network_simplex(
            aext.cpu().numpy(), bext.cpu().numpy(), cext.cpu().numpy(), max_iter=self.max_iter
        )
        if not sol.optimal:
            self._warn_or_raise(
                f"partial OT (network simplex) did not return a verified optimum: "
                f"{sol.reason}. "
                + sol.advice(
                    self.max_iter,
                    "A small rel_reg (entropic partial OT) is an approximate alternative.",
                )
            )
        bext_scaled = bext * (aext.sum() / bext.sum())
        ext_err = marginal_error(
            DenseStore(torch.as_tensor(sol.plan)), aext.cpu(), bext_scaled.cpu()
        )
        real = sol.plan[:n, :m]
        rows, cols = np.nonzero(real)
        vals = real[rows, cols]
        store = SparseStore(
            torch.as_tensor(rows, device=x0.device),
            torch.as_tensor(cols, device=x0.device),
            torch.as_tensor(vals, dtype=x0.dtype).to(x0.device),
            n,
            m,
        )
        u = torch.as_tensor(sol.u[:n], dtype=x0.dtype).to(x0.device)
        v = torch.as_tensor(sol.v[:m], dtype=x0.dtype).to(x0.device)
        cost_np = cost.cpu().numpy()
        return Coupling(
            store,
            a=a,
            b=b,
            method=self.name,
            cost=float((cost_np[rows, cols] * vals).sum()),
            converged=sol.optimal,
            marginal_error=ext_err * float(aext.sum()) / float(a.sum()),
            potentials=(u, v),
            backend="pot",
        )

    def _entropic(self, x0, a, b, cost, cext, aext, bext, reg, eps_start) -> Coupling:
        n, m = cost.shape
        tol = self.tol if self.tol is not None else default_tol(x0.dtype)
        ops = DenseOps(cext, torch.log(aext), torch.log(bext))
        res = stabilized_sinkhorn(
            ops,
            reg,
            eps_start=eps_start,
            anneal_factor=0.5,
            stage_iters=5,
            tol=tol,
            max_iter=self.max_iter,
        )
        if not res.converged:
            what = (
                "non-finite values"
                if not math.isfinite(res.error)
                else (f"marginal error {res.error:.2e} > tol {tol:.1e} after {res.n_iter} sweeps")
            )
            self._warn_or_raise(
                f"entropic partial OT did not converge ({what}, reg={reg:.4g}). Raise max_iter, "
                f"increase reg (or rel_reg), or use float64 inputs."
            )
        full = res.plan if res.plan is not None else ops.plan(res.f, res.g, reg)
        plan = full[:n, :m]
        return Coupling(
            DenseStore(plan),
            a=a,
            b=b,
            method=self.name,
            cost=float((plan * cost).sum()),
            reg=reg,
            converged=res.converged,
            n_iter=res.n_iter,
            marginal_error=res.error * float(aext.sum()) / float(a.sum()),
            potentials=(res.f[:n], res.g[:m]),
            backend="torch",
        )
