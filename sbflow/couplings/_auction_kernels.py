"""The compiled loops behind :mod:`sbflow.couplings._auction` (imported on first use).

They live at module level, not in a closure, so that numba's on-disk cache can key them: a
jitted function that calls another one held in a closure variable is recompiled in every
process.
"""

import numba
import numpy as np

__all__ = ["auction", "row_minima", "value_range"]


@numba.njit(nogil=True, cache=True)
def row_min(cost, prices, i):
    """``min_j cost[i, j] + prices[j]``."""
    best = np.inf
    for j in range(cost.shape[1]):
        best = min(best, cost[i, j] + prices[j])
    return best


@numba.njit(nogil=True, cache=True)
def auction(cost, eps_start, eps_end, factor, max_bids):
    """ε-scaling auction; returns ``(col_of_row, prices, bids, converged)``."""
    n = cost.shape[0]
    prices = np.zeros(n)
    row_of_col = np.full(n, -1, np.int64)
    col_of_row = np.full(n, -1, np.int64)
    stack = np.empty(n, np.int64)
    eps = eps_start
    bids = 0
    while True:
        # Start each phase from the previous assignment, releasing only the sources that
        # violate ε-complementary slackness at the new, smaller ε.
        top = 0
        for i in range(n):
            j0 = col_of_row[i]
            if j0 >= 0:
                if cost[i, j0] + prices[j0] <= row_min(cost, prices, i) + eps:
                    continue
                row_of_col[j0] = -1
                col_of_row[i] = -1
            stack[top] = i
            top += 1
        while top > 0:
            if bids >= max_bids:
                return col_of_row, prices, bids, False
            top -= 1
            i = stack[top]
            best = np.inf
            second = np.inf
            j_best = 0
            for j in range(n):
                v = cost[i, j] + prices[j]
                if v < second:
                    if v < best:
                        second = best
                        best = v
                        j_best = j
                    else:
                        second = v
            if second == np.inf:  # n == 1
                second = best
            prices[j_best] += second - best + eps
            bids += 1
            k = row_of_col[j_best]
            if k >= 0:
                col_of_row[k] = -1
                stack[top] = k
                top += 1
            row_of_col[j_best] = i
            col_of_row[i] = j_best
        if eps <= eps_end:
            return col_of_row, prices, bids, True
        eps = max(eps / factor, eps_end)


@numba.njit(nogil=True, cache=True)
def value_range(cost):
    """``(min, max)`` of ``cost`` in one pass, ``(nan, nan)`` if any entry is not finite."""
    # (min, max) in one pass; NaN or ±inf anywhere makes the range non-finite
    lo = np.inf
    hi = -np.inf
    bad = False
    for v in cost.ravel():
        if not np.isfinite(v):
            bad = True
        lo = min(lo, v)
        hi = max(hi, v)
    return (np.nan, np.nan) if bad else (lo, hi)


@numba.njit(nogil=True, cache=True)
def row_minima(cost, prices):
    """The source potentials ``f_i = min_j cost[i, j] + prices[j]`` for every row."""
    out = np.empty(cost.shape[0])
    for i in range(cost.shape[0]):
        out[i] = row_min(cost, prices, i)
    return out
