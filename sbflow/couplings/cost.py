"""Squared Euclidean cost between flattened samples, and robust scales of it.

The cost convention of sbflow is ``C_ij = ‖x0_i − x1_j‖²`` on samples flattened to vectors
(the POT and torchcfm convention). Relative regularisation ``reg = rel_reg × scale(C)`` uses
one of the scales here, computed over all pairs ``(i, j)`` and ignoring the weights.
"""

from __future__ import annotations

import torch

__all__ = ["REG_SCALES", "cost_scale", "sq_euclidean"]

REG_SCALES = ("mean", "median", "std")
_MAX_PAIRS = 4_000_000


def sq_euclidean(x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
    """Dense cost matrix ``C_ij = ‖x0_i − x1_j‖²`` of shape ``(n, m)``.

    Both sets are shifted by the same vector first (the cost is translation invariant), which
    keeps the expansion ``‖x‖² + ‖y‖² − 2 x·y`` accurate for data far from the origin.

    Example:
        >>> sq_euclidean(torch.tensor([[0.0, 0.0]]), torch.tensor([[3.0, 4.0]])).item()
        25.0
    """
    x0 = x0.reshape(x0.shape[0], -1)
    x1 = x1.reshape(x1.shape[0], -1)
    shift = 0.5 * (x0.mean(0) + x1.mean(0))
    x0, x1 = x0 - shift, x1 - shift
    sq = x0 @ x1.T  # one (n, m) allocation, then in place
    sq.mul_(-2.0).add_((x0 * x0).sum(1)[:, None]).add_((x1 * x1).sum(1)[None, :])
    return sq.clamp_min_(0.0)


def cost_scale(x0: torch.Tensor, x1: torch.Tensor, kind: str = "mean") -> float:
    """A scale of the cost over all pairs: its mean, median or standard deviation.

    ``"mean"`` is exact and cheap: ``mean_ij ‖x0_i − x1_j‖² = mean‖x0‖² + mean‖x1‖² −
    2 mean(x0)·mean(x1)`` (after centring). ``"median"`` and ``"std"`` are computed on all
    pairs when ``n·m`` ≤ 4·10⁶, else on an evenly strided subset of rows and columns (no
    randomness).

    Args:
        x0: Sources ``(n, d)``.
        x1: Targets ``(m, d)``.
        kind: ``"mean"``, ``"median"`` or ``"std"``.

    Example:
        >>> cost_scale(torch.zeros(4, 2), torch.ones(3, 2))
        2.0
    """
    if kind not in REG_SCALES:
        raise ValueError(f"reg_scale must be one of {REG_SCALES}; got {kind!r}.")
    x0 = x0.reshape(x0.shape[0], -1)
    x1 = x1.reshape(x1.shape[0], -1)
    if kind == "mean":
        shift = 0.5 * (x0.mean(0) + x1.mean(0))
        y0, y1 = x0 - shift, x1 - shift
        value = (y0 * y0).sum(1).mean() + (y1 * y1).sum(1).mean() - 2 * y0.mean(0) @ y1.mean(0)
        return max(float(value), 0.0)
    n, m = x0.shape[0], x1.shape[0]
    if n * m > _MAX_PAIRS:
        side = int(_MAX_PAIRS**0.5)
        x0 = x0[:: max(1, n // side)]
        x1 = x1[:: max(1, m // side)]
    c = sq_euclidean(x0, x1).reshape(-1)
    if kind == "median":
        return float(c.median())
    return float(c.std()) if c.numel() > 1 else 0.0
