"""POT's network simplex on a normalised problem, with its answer verified.

POT's ``ot.emd`` compares reduced costs and supplies against fixed absolute tolerances, so it
stops at a wrong vertex when the costs are tiny (data at scale 1e-7: costs 2× the optimum),
reports infeasibility or returns an all-zero plan for masses far from one, and can crash on
weights near 1e-300. Here every problem reaches it as masses summing to one and costs with
maximum one; the plan, the duals and the cost are mapped back afterwards.

Its answer is then checked against the optimality conditions of the linear program, in the
normalised units: the plan meets both marginals, the duals are feasible
(``u_i + v_j ≤ C_ij``) and complementary slackness holds on the plan's support
(``u_i + v_j = C_ij`` where ``P_ij > 0``). Together these prove the plan optimal up to the
tolerance, whatever POT's result code says.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from sbflow._memory import require_memory
from sbflow.couplings._pot import pot
from sbflow.couplings.cost import DENSE_HINT

__all__ = ["BYTES_PER_ENTRY", "SimplexSolution", "network_simplex"]

BYTES_PER_ENTRY = 56
"""Memory per cost entry: the normalised cost and the plan (8 B each), POT's arc arrays
(about 33 B) and the reduced costs of the optimality check (8 B)."""

# Tolerances in normalised units (costs in [0, 1], masses summing to one).
_MARGINAL_TOL = 1e-9
_DUAL_TOL = 1e-9

_CODES = {0: "POT reported the problem infeasible", 2: "POT reported it unbounded"}


@dataclass(frozen=True)
class SimplexSolution:
    """Result of :func:`network_simplex`, in the caller's units.

    Attributes:
        plan: Dense plan ``(n, m)`` with row sums ``a``.
        u: Row duals in cost units.
        v: Column duals in cost units.
        total: Transport cost ``<C, P>``.
        optimal: Whether the plan passed the optimality check.
        reason: Why it did not (empty when ``optimal``).
        out_of_iterations: Whether POT stopped at its iteration budget.
    """

    plan: np.ndarray
    u: np.ndarray
    v: np.ndarray
    total: float
    optimal: bool
    reason: str
    out_of_iterations: bool

    def advice(self, max_iter: int, alternative: str) -> str:
        """What the caller can do about a solution that is not ``optimal``.

        Args:
            max_iter: The pivot budget the solver ran with.
            alternative: An approximate alternative in the caller's own API, for a solver
                failure that more iterations would not fix.

        Example:
            >>> cost = np.arange(16.0).reshape(4, 4)[::-1]
            >>> sol = network_simplex(np.ones(4), np.ones(4), cost, max_iter=1)
            >>> sol.out_of_iterations, sol.advice(1, "Use sinkhorn.")
            (True, 'Raise max_iter (now 1).')
        """
        if self.out_of_iterations:
            return f"Raise max_iter (now {max_iter})."
        return (
            f"This is a solver failure, not an input error: please report it with the data. "
            f"{alternative}"
        )


def _normalised(w: np.ndarray) -> tuple[np.ndarray, float]:
    # divide by the maximum first: the sum of weights near 1e308 would overflow
    top = float(w.max())
    scaled = w / top
    total = float(scaled.sum())
    return scaled / total, top * total


def network_simplex(
    a: np.ndarray, b: np.ndarray, cost: np.ndarray, *, max_iter: int
) -> SimplexSolution:
    """Exact OT between ``a`` and ``b`` (equal total masses) by POT's network simplex.

    Args:
        a: Source masses ``(n,)``, float64, non-negative, positive sum.
        b: Target masses ``(m,)``; rescaled to the total of ``a``.
        cost: Finite non-negative cost matrix ``(n, m)``, float64.
        max_iter: Pivot budget (POT's ``numItermax``).

    Returns:
        A :class:`SimplexSolution`; ``optimal`` is ``False`` when POT stopped early, failed,
        or returned a plan that fails the optimality check (``reason`` says which).

    Example:
        >>> sol = network_simplex(
        ...     np.array([1e-300, 1e-300]), np.array([1e-300, 1e-300]),
        ...     np.array([[0.0, 1e-14], [1e-14, 0.0]]), max_iter=1000)
        >>> sol.optimal, float(sol.plan.sum()), sol.total
        (True, 2e-300, 0.0)
    """
    n, m = cost.shape
    require_memory(
        n * m * BYTES_PER_ENTRY,
        what=f"exact OT (network simplex) on a ({n}, {m}) problem",
        hint=DENSE_HINT,
    )
    an, mass = _normalised(a)
    bn, _ = _normalised(b)
    scale = float(cost.max())
    if not scale > 0:
        scale = 1.0
    cn = cost / scale
    with warnings.catch_warnings():
        # POT's warnings (iteration limit, infeasibility) are replaced by the check below
        warnings.simplefilter("ignore", UserWarning)
        plan, log = pot().emd(an, bn, cn, numItermax=int(max_iter), log=True)
    u, v = np.asarray(log["u"], dtype=np.float64), np.asarray(log["v"], dtype=np.float64)
    code = int(log["result_code"])
    reason = _check(plan, u, v, an, bn, cn, code, max_iter)
    rows, cols = np.nonzero(plan)
    total = float((cn[rows, cols] * plan[rows, cols]).sum()) * scale * mass
    return SimplexSolution(
        plan=plan * mass,
        u=u * scale,
        v=v * scale,
        total=total,
        optimal=not reason,
        reason=reason,
        out_of_iterations=code == 3,
    )


def _check(
    plan: np.ndarray,
    u: np.ndarray,
    v: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    cost: np.ndarray,
    code: int,
    max_iter: int,
) -> str:
    """Why the normalised solution is not optimal, or ``""`` if it is."""
    if code == 3:
        return f"it used its iteration budget (max_iter={max_iter}) before the optimum"
    if code in _CODES:
        return _CODES[code]
    if not (np.isfinite(plan).all() and np.isfinite(u).all() and np.isfinite(v).all()):
        return "its plan or duals hold non-finite values"
    if (plan < 0).any():
        return "its plan has negative entries"
    marg = np.abs(plan.sum(1) - a).sum() + np.abs(plan.sum(0) - b).sum()
    if not marg <= _MARGINAL_TOL:
        return f"its plan misses the marginals by {marg:.1e} (relative L1)"
    reduced = cost - u[:, None]
    reduced -= v[None, :]
    tol = _DUAL_TOL * max(1.0, float(np.abs(u).max()), float(np.abs(v).max()))
    infeasible = -float(reduced.min())
    if infeasible > tol:
        return f"its duals violate u_i + v_j <= C_ij by {infeasible:.1e} of the largest cost"
    slack = float(np.abs(reduced[plan > 0]).max(initial=0.0))
    if slack > tol:
        return f"complementary slackness fails by {slack:.1e} of the largest cost"
    return ""
