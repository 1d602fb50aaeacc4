"""Entropic optimal transport: log-domain Sinkhorn, balanced and unbalanced, dense or KeOps."""

from __future__ import annotations

import math
from typing import Any

import torch

from sbflow._checks import check_bool, check_positive, check_positive_int
from sbflow._memory import InsufficientMemoryError
from sbflow.couplings._keops import keops_status, warn_fallback_once
from sbflow.couplings._network_simplex import network_simplex
from sbflow.couplings._sinkhorn_core import (
    DenseOps,
    KeOpsOps,
    SinkhornResult,
    annealing_start,
    attainable_tol,
    block_sinkhorn,
    log_sinkhorn,
    stabilized_sinkhorn,
)
from sbflow.couplings._stores import DenseStore, GibbsStore
from sbflow.couplings.base import Coupling, CouplingSolver
from sbflow.couplings.cost import REG_SCALES, cost_scale, sq_euclidean

__all__ = [
    "EXACT_START_EPS",
    "EXACT_START_MAX_ENTRIES",
    "EXACT_START_RATIO",
    "KEOPS_THRESHOLD",
    "MINIBATCH_TOL",
    "Sinkhorn",
    "UnbalancedSinkhorn",
]

KEOPS_THRESHOLD = 25_000_000
"""``backend="auto"`` uses KeOps when it works and ``n·m`` exceeds this."""

MINIBATCH_TOL = 1e-3
"""Marginal tolerance for per-batch plans in training (``Sinkhorn(tol=MINIBATCH_TOL)``).

The plan of a training batch only serves to draw one pair per source. A relative L1 marginal
error of ``1e-3`` moves 0.1 % of the mass (the plan itself moves by about twice that), far
below the sampling noise of the batch: drawing 256 targets from exact marginals already
leaves an L1 deviation of about 0.7 between the drawn and the uniform column counts. At small
``reg`` against the cost it needs 2–4 times fewer sweeps than the float32 default ``1e-4``.
"""

BLOCK_MAX_ENTRIES = 2**24
"""Largest ``K·n·m`` coupled as one block (64 MiB of float32 plans; the sweeps hold a few
such buffers): bigger batches gain nothing from blocks and are coupled one at a time."""

EXACT_START_RATIO = 100.0
"""Balanced dense problems whose annealing would start at this × reg or above start from the
exact-OT duals instead (see :class:`Sinkhorn`)."""

EXACT_START_EPS = 8.0
"""Where annealing starts from the exact-OT duals, in units of reg. The duals sit on a vertex
of the dual polytope; a few stages at larger ε smooth them toward the entropic potentials
(fewer sweeps than starting at reg itself in 7 of 8 measured settings)."""

EXACT_START_MAX_ENTRIES = 2**22
"""Largest ``n·m`` given the exact-OT start: the network simplex takes about 0.8 s and
235 MiB at 2048 × 2048, and its time grows faster than that of Sinkhorn's sweeps."""

_EXACT_START_PIVOTS = 10_000_000

_BACKENDS = ("auto", "dense", "keops")


def _centred(x0: torch.Tensor, x1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Both sets shifted by the midpoint of their means (rows are dim −2): the cost is
    translation invariant, and its expansion is accurate near the origin."""
    shift = 0.5 * (x0.mean(-2, keepdim=True) + x1.mean(-2, keepdim=True))
    return x0 - shift, x1 - shift


class Sinkhorn(CouplingSolver):
    """Entropic optimal transport by log-domain Sinkhorn with ε-annealing.

    Solves ``min_P <C, P> + reg·KL(P | a⊗b)`` subject to ``P1 = a``, ``Pᵀ1 = b``, for the
    squared Euclidean cost ``C``. The plan is ``P_ij = a_i b_j exp((f_i + g_j − C_ij)/reg)``
    and ``Coupling.potentials`` returns ``(f, g)`` in cost units.

    Regularisation: pass ``reg`` in cost units (a Brownian reference ``dX = σ dW`` is
    ``reg = 2σ²``, see :mod:`sbflow.couplings.regularization`), or leave ``reg=None`` for
    ``reg = rel_reg × scale(C)``, where ``scale`` is the ``reg_scale`` statistic of the cost
    over all pairs: ``"mean"`` (default), ``"median"`` or ``"std"``. Do not scale by the
    maximum: ``0.05·max(C)`` is close to the independent coupling.

    Iterations start at ``eps = mean(C)`` (when ``anneal``; on the dense backend at twice the
    spread of the cost that the potentials cannot absorb, or directly at ``reg`` when that
    spread is within ten times ``reg``, see
    :func:`~sbflow.couplings._sinkhorn_core.annealing_start`) and halve it (``anneal_factor``)
    every ``stage_iters`` sweeps down to ``reg``. Where that start is ``EXACT_START_RATIO``
    (100) times ``reg`` or more (balanced, dense, up to ``EXACT_START_MAX_ENTRIES`` entries),
    the potentials start instead from the duals of the exact OT plan and ``eps`` from
    ``8·reg``: such problems (small ``reg`` in high dimension) are close to exact OT, and
    annealing from zero could stall there for thousands of sweeps. Then the sweeps run until
    the relative L1 marginal
    error is ≤ ``tol`` (default ``1e-6`` in float64, ``1e-4`` in float32, loosened to
    ``2·eps_dtype·max(C)/reg`` where the dtype cannot resolve more; see
    :func:`~sbflow.couplings._sinkhorn_core.attainable_tol`). Balanced problems are
    over-relaxed at ``eps = reg`` (successive over-relaxation with a measured step, see
    :func:`~sbflow.couplings._sinkhorn_core.stabilized_sinkhorn`). For the plan of a
    training batch, ``tol=MINIBATCH_TOL`` (``1e-3``) is plenty. Running out of
    ``max_iter`` sweeps gives ``converged=False`` and a
    :class:`~sbflow.couplings.ConvergenceWarning` (:class:`~sbflow.couplings.ConvergenceError`
    with ``strict=True``).

    Backends: ``"dense"`` (torch, ``O(n·m)`` memory, CPU or CUDA; the log-domain updates
    are carried out as matrix-vector products on the current plan, with the scalings absorbed
    into the potentials whenever they grow, which is about ten times cheaper per sweep than
    log-sum-exp), ``"keops"`` (pykeops log-sum-exp reductions,
    ``O(n + m)`` memory; an error if pykeops does not work here) and ``"auto"`` (KeOps when it
    works and ``n·m > 2.5e7``, else dense; if KeOps is wanted but broken it warns once and
    uses dense).

    Args:
        reg: Absolute regularisation in cost units, or ``None`` for relative.
        rel_reg: Relative regularisation used when ``reg`` is ``None``.
        reg_scale: Cost statistic for relative regularisation.
        tol: Tolerance on the marginal error; ``None`` for the dtype default.
        max_iter: Maximum number of Sinkhorn sweeps (annealing included).
        anneal: Start at a large ``eps`` and decrease it geometrically to ``reg``.
        anneal_factor: Factor in ``(0, 1)`` between successive ``eps``.
        stage_iters: Sweeps per intermediate ``eps``.
        backend: ``"auto"``, ``"dense"`` or ``"keops"``.
        strict: Raise :class:`~sbflow.couplings.ConvergenceError` instead of warning.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> x0 = torch.randn(50, 2, generator=g, dtype=torch.float64)
        >>> c = Sinkhorn(rel_reg=0.1)(x0, x0 + 3)
        >>> c.converged, c.marginal_error <= 1e-6
        (True, True)
    """

    name = "sinkhorn"
    balanced = True
    releases_gil = False

    def __init__(
        self,
        reg: float | None = None,
        *,
        rel_reg: float = 0.05,
        reg_scale: str = "mean",
        tol: float | None = None,
        max_iter: int = 10_000,
        anneal: bool = True,
        anneal_factor: float = 0.5,
        stage_iters: int = 5,
        backend: str = "auto",
        strict: bool = False,
    ) -> None:
        hint = "Pass reg > 0 in cost units, or reg=None with rel_reg > 0."
        self.reg = None if reg is None else check_positive(reg, "reg", hint)
        self.rel_reg = check_positive(rel_reg, "rel_reg", hint)
        if reg_scale not in REG_SCALES:
            raise ValueError(f"reg_scale must be one of {REG_SCALES}; got {reg_scale!r}.")
        self.reg_scale = reg_scale
        self.tol = None if tol is None else check_positive(tol, "tol")
        self.max_iter = check_positive_int(max_iter, "max_iter")
        self.anneal = check_bool(anneal, "anneal")
        self.anneal_factor = check_positive(
            anneal_factor, "anneal_factor", "It must lie in (0, 1)."
        )
        if not self.anneal_factor < 1.0:
            raise ValueError(f"anneal_factor must lie in (0, 1); got {anneal_factor!r}.")
        self.stage_iters = check_positive_int(stage_iters, "stage_iters")
        if backend not in _BACKENDS:
            raise ValueError(f"backend must be one of {_BACKENDS}; got {backend!r}.")
        self.backend = backend
        self.strict = check_bool(strict, "strict")

    # -- settings ------------------------------------------------------------------------
    def _resolve(
        self, x0: torch.Tensor, x1: torch.Tensor, a: torch.Tensor, b: torch.Tensor
    ) -> dict[str, Any]:
        scale = cost_scale(x0, x1, "mean")
        if self.reg is not None:
            return {"reg": self.reg, "eps_start": scale}
        rscale = scale if self.reg_scale == "mean" else cost_scale(x0, x1, self.reg_scale)
        if not rscale > 0:
            raise ValueError(
                f"the {self.reg_scale} of the cost is {rscale}: relative regularisation needs "
                f"a positive cost scale (are all samples identical?). Pass an absolute reg."
            )
        return {"reg": self.rel_reg * rscale, "eps_start": scale}

    def _pick_backend(self, n: int, m: int) -> str:
        if self.backend == "dense":
            return "dense"
        ok, reason = keops_status()
        if self.backend == "keops":
            if not ok:
                raise RuntimeError(
                    f"backend='keops' was requested but pykeops is not usable here ({reason}). "
                    f"Install pykeops with a working C++ compiler, or use backend='dense'."
                )
            return "keops"
        if n * m <= KEOPS_THRESHOLD:
            return "dense"
        if not ok:
            warn_fallback_once(reason)
            return "dense"
        return "keops"

    def _tau(self) -> float | None:
        return None

    # -- solve ---------------------------------------------------------------------------
    def _run(
        self,
        ops,
        reg: float,
        eps_start: float,
        tol: float,
        init: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> SinkhornResult:
        options = dict(
            eps_start=eps_start if self.anneal else reg,
            anneal_factor=self.anneal_factor,
            stage_iters=self.stage_iters,
            tol=tol,
            max_iter=self.max_iter,
            tau=self._tau(),
        )
        if isinstance(ops, DenseOps):
            return stabilized_sinkhorn(ops, reg, init=init, **options)
        return log_sinkhorn(ops, reg, **options)

    def _start(
        self, ops: DenseOps, reg: float, scale: float
    ) -> tuple[float, tuple[torch.Tensor, torch.Tensor] | None]:
        """Where a dense solve starts: ``(eps_start, None)`` or ``(eps_start, (f, g))``.

        Annealing from zero potentials loses track of the plan when ``reg`` is far below the
        cost's spread in high dimension: on 256-point batches of the entropic-OT benchmark
        at D = 64 (annealing start 1 750 × ``reg``), plans were still off by 2–6 % after
        10 000 sweeps. There the entropic plan is close to the exact one, so such problems
        (start ≥ ``EXACT_START_RATIO·reg``, balanced, dense, finite cost, at most
        ``EXACT_START_MAX_ENTRIES`` entries) start from the exact plan's duals
        (``u_i + v_j ≤ C_ij``, equal on its support; POT's network simplex, verified) and
        anneal from ``EXACT_START_EPS·reg``: the same plans converged in 200–700 sweeps
        (worst of 8), at D = 16 the slowest of 8 in 335 sweeps instead of 2 317.
        """
        cost = ops.cost
        start = annealing_start(cost, reg, scale)
        if (
            not self.anneal
            or self._tau() is not None
            or start < EXACT_START_RATIO * reg
            or cost.numel() > EXACT_START_MAX_ENTRIES
            or not bool(torch.isfinite(cost).all())
        ):
            return start, None
        try:
            sol = network_simplex(
                ops.log_a.exp().double().cpu().numpy(),
                ops.log_b.exp().double().cpu().numpy(),
                cost.double().cpu().numpy(),
                max_iter=_EXACT_START_PIVOTS,
            )
        except InsufficientMemoryError:  # the start is an accelerator, not a requirement
            return start, None
        if not sol.optimal:  # rare; annealing still gets there, only more slowly
            return start, None
        to = {"dtype": cost.dtype, "device": cost.device}
        duals = (torch.as_tensor(sol.u, **to), torch.as_tensor(sol.v, **to))
        return EXACT_START_EPS * reg, duals

    def _solve(
        self,
        x0: torch.Tensor,
        x1: torch.Tensor,
        a: torch.Tensor,
        b: torch.Tensor,
        *,
        reg: float,
        eps_start: float,
        **options: Any,
    ) -> Coupling:
        y0, y1 = _centred(x0, x1)
        tol = self._tolerance(y0, y1, reg)
        log_a, log_b = torch.log(a), torch.log(b)
        backend = self._pick_backend(x0.shape[0], x1.shape[0])
        res = None
        if backend == "keops":
            try:
                ops = KeOpsOps(y0, y1, log_a, log_b)
                res = self._run(ops, reg, eps_start, tol)
                store = GibbsStore(y0, y1, log_a, log_b, res.f, res.g, reg)
                cost = ops.cost(res.f, res.g, reg)
            except Exception as err:
                if self.backend == "keops":
                    raise RuntimeError(f"the KeOps backend failed: {err}") from err
                warn_fallback_once(f"{type(err).__name__}: {err}")
                backend, res = "dense", None
        if backend == "dense":
            dense = DenseOps(sq_euclidean(y0, y1), log_a, log_b)
            start, init = self._start(dense, reg, eps_start)
            res = self._run(dense, reg, start, tol, init)
            plan = res.plan if res.plan is not None else dense.plan(res.f, res.g, reg)
            store = DenseStore(plan)
            cost = float((plan * dense.cost).sum())
        assert res is not None
        self._check(res, reg, tol, x0.dtype)
        return Coupling(
            store,
            a=a,
            b=b,
            method=self.name,
            cost=cost,
            reg=reg,
            converged=res.converged,
            n_iter=res.n_iter,
            marginal_error=res.error,
            potentials=(res.f, res.g),
            backend="keops" if backend == "keops" else "torch",
        )

    def _solve_block(self, x0: torch.Tensor, x1: torch.Tensor) -> list[Coupling] | None:
        """Couple ``K`` batches at once: ``x0`` ``(K, n, d)`` with ``x1`` ``(K, m, d)``.

        Uniform weights, absolute ``reg``, the dense backend and ``K·n·m ≤ BLOCK_MAX_ENTRIES``
        only; the problems are solved
        together by :func:`~sbflow.couplings._sinkhorn_core.block_sinkhorn` (the same plans
        as one call each, to within ``tol``), and any that it leaves unconverged are solved
        alone. ``None`` when the block is not eligible (then couple one batch at a time).
        Inputs are taken as validated (the training pipeline's batches).

        Example:
            >>> x = torch.randn(3, 8, 2, generator=torch.Generator().manual_seed(0))
            >>> cs = Sinkhorn(reg=2.0)._solve_block(x, x + 1)
            >>> len(cs), all(c.converged for c in cs)
            (3, True)
        """
        own = type(self)._solve is Sinkhorn._solve and type(self)._resolve is Sinkhorn._resolve
        if (
            not own  # a subclass that changes the problem solves it its own way
            or self._tau() is not None
            or self.reg is None
            or self.backend == "keops"
            or x0.dim() != 3
            or x0.dtype not in (torch.float32, torch.float64)
            or x1.dtype != x0.dtype
            or x0.shape[0] * x0.shape[1] * x1.shape[1] > BLOCK_MAX_ENTRIES
        ):
            return None
        reg = self.reg
        y0, y1 = _centred(x0, x1)
        n0, n1 = y0.square().sum(2), y1.square().sum(2)
        cost = torch.baddbmm(n0[:, :, None] + n1[:, None, :], y0, y1.transpose(1, 2), alpha=-2)
        cost = cost.clamp_min_(0.0)
        tol = self._tolerance(y0, y1, reg)
        res = block_sinkhorn(cost, reg, tol=tol, max_iter=self.max_iter)
        if res is None:
            return None
        k, n, m = cost.shape
        a = x0.new_full((n,), 1.0 / n)
        b = x0.new_full((m,), 1.0 / m)
        costs = (res.plan * cost).sum((1, 2)).tolist()
        out = []
        for i in range(k):
            if not bool(res.converged[i]):
                out.append(self(x0[i], x1[i]))
                continue
            coupling = Coupling(
                DenseStore(res.plan[i]),
                a=a,
                b=b,
                method=self.name,
                cost=costs[i],
                reg=reg,
                converged=True,
                n_iter=res.n_iter,
                marginal_error=float(res.errors[i]),
                potentials=(res.f[i], res.g[i]),
            )
            coupling.support = (x0[i], x1[i])
            out.append(coupling)
        return out

    def _tolerance(self, y0: torch.Tensor, y1: torch.Tensor, reg: float) -> float:
        """``tol``, or the dtype's attainable one for costs up to ``(max‖y0‖ + max‖y1‖)²``
        (centred samples; with a leading block dim, the maxima over the whole block)."""
        if self.tol is not None:
            return self.tol
        top = float(y0.norm(dim=-1).max() + y1.norm(dim=-1).max()) ** 2
        return attainable_tol(y0.dtype, top, reg)

    def _check(self, res: SinkhornResult, reg: float, tol: float, dtype: torch.dtype) -> None:
        if res.converged:
            return
        if not math.isfinite(res.error):
            self._warn_or_raise(
                f"{self.name}: the iterations produced non-finite values (reg={reg:.3g}). "
                f"Increase reg (or rel_reg) or use float64 inputs."
            )
            return
        advice = "raise max_iter, increase reg (or rel_reg)"
        if torch.finfo(dtype).bits < 64:
            advice += ", use float64 inputs or loosen tol"
        self._warn_or_raise(
            f"{self.name} did not converge: marginal error {res.error:.2e} > tol {tol:.1e} "
            f"after {res.n_iter} sweeps (max_iter={self.max_iter}, reg={reg:.4g}). "
            f"To fix: {advice}."
        )


class UnbalancedSinkhorn(Sinkhorn):
    """Unbalanced entropic OT: marginals are matched softly through a KL penalty.

    Solves ``min_P <C, P> + reg·KL(P | a⊗b) + τ·KL(P1 | a) + τ·KL(Pᵀ1 | b)`` with
    ``τ = reg_marginal`` in cost units (``τ → ∞`` is balanced OT), by log-domain Sinkhorn
    with the scaling exponent ``λ = τ / (τ + reg)``. Weights are taken as given and need not
    have equal sums (they are not normalised). ``marginal_error`` is the violation of the
    first-order conditions ``P1 = a·exp(−f/τ)``, ``Pᵀ1 = b·exp(−g/τ)``, relative to ``sum(a)``;
    the plan's own marginals are :meth:`~sbflow.couplings.Coupling.row_mass` and
    :meth:`~sbflow.couplings.Coupling.col_mass`.

    Args:
        reg: As for :class:`Sinkhorn`.
        reg_marginal: Marginal penalty ``τ > 0`` in cost units.
        **kwargs: The other options of :class:`Sinkhorn`.

    Example:
        >>> x0 = torch.randn(40, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        >>> c = UnbalancedSinkhorn(reg_marginal=1.0)(x0, x0 + 1, b=torch.full((40,), 0.05))
        >>> c.converged
        True
    """

    name = "unbalanced"
    balanced = False

    def __init__(self, reg: float | None = None, reg_marginal: float = 1.0, **kwargs: Any) -> None:
        super().__init__(reg, **kwargs)
        self.reg_marginal = check_positive(
            reg_marginal, "reg_marginal", "Use a large value for nearly balanced transport."
        )

    def _tau(self) -> float | None:
        return self.reg_marginal
