"""Partial optimal transport: move only a fraction of the mass, leave outliers unmatched."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import torch

from sbflow._checks import check_positive, check_unit_interval
from sbflow.couplings._pot import pot
from sbflow.couplings._sinkhorn_core import DenseOps, default_tol, stabilized_sinkhorn
from sbflow.couplings._stores import DenseStore, SparseStore
from sbflow.couplings.base import Coupling, CouplingSolver
from sbflow.couplings.cost import REG_SCALES, cost_scale, sq_euclidean
from sbflow.couplings.exact import marginal_error

__all__ = ["PartialOT"]


class PartialOT(CouplingSolver):
    """Partial OT: transport mass ``s = mass × min(sum(a), sum(b))`` at least cost.

    Solves ``min <C, P>`` over ``P ≥ 0`` with ``P1 ≤ a``, ``Pᵀ1 ≤ b``, ``sum(P) = s``. The
    problem is rewritten as balanced OT with one dummy point on each side (the dummy source
    has mass ``sum(b) − s`` and the dummy target ``sum(a) − s``, both at zero cost to every
    real point and forbidden to each other); this is exact for the linear program. ``mass=1``
    with equal total masses is balanced OT.

    * Exact (default, ``reg`` and ``rel_reg`` both ``None``): network simplex on the extended
      problem (POT ``ot.emd``, result code checked); the plan is stored sparse.
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
        self.max_iter = default if max_iter is None else int(max_iter)
        if self.max_iter < 1:
            raise ValueError(f"max_iter must be a positive integer; got {max_iter!r}.")
        self.strict = bool(strict)

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
        cost = sq_euclidean(x0.double() if reg is None else x0, x1.double() if reg is None else x1)
        ne, me = n + int(add_row), m + int(add_col)
        big = float("inf") if reg is not None else float(cost.max()) + 1.0
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
        ot = pot()
        n, m = cost.shape
        an, bn = aext.cpu().numpy(), bext.cpu().numpy()
        bn = bn * (an.sum() / bn.sum())
        with warnings.catch_warnings():
            # the result code is checked below and reported as a ConvergenceWarning/Error
            warnings.filterwarnings("ignore", message="numItermax reached")
            plan, log = ot.emd(an, bn, cext.cpu().numpy(), numItermax=self.max_iter, log=True)
        ok = int(log["result_code"]) == 1
        if not ok:
            self._warn_or_raise(
                f"partial OT (network simplex) stopped before optimality ({log['warning']}). "
                f"Raise max_iter (now {self.max_iter})."
            )
        ext_err = marginal_error(
            DenseStore(torch.as_tensor(plan)), torch.as_tensor(an), torch.as_tensor(bn)
        )
        real = plan[:n, :m]
        rows, cols = np.nonzero(real)
        vals = real[rows, cols]
        store = SparseStore(
            torch.as_tensor(rows, device=x0.device),
            torch.as_tensor(cols, device=x0.device),
            torch.as_tensor(vals, dtype=x0.dtype).to(x0.device),
            n,
            m,
        )
        u = torch.as_tensor(np.asarray(log["u"])[:n], dtype=x0.dtype).to(x0.device)
        v = torch.as_tensor(np.asarray(log["v"])[:m], dtype=x0.dtype).to(x0.device)
        return Coupling(
            store,
            a=a,
            b=b,
            method=self.name,
            cost=float((cost.cpu().numpy()[rows, cols] * vals).sum()),
            converged=ok,
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
