"""Squared Euclidean cost between flattened samples, and robust scales of it.

The cost convention of sbflow is ``C_ij = ‖x0_i − x1_j‖²`` on samples flattened to vectors
(the POT and torchcfm convention). Relative regularisation ``reg = rel_reg × scale(C)`` uses
one of the scales here, computed over all pairs ``(i, j)`` and ignoring the weights.
"""

from __future__ import annotations

import math

import torch

from sbflow._memory import require_memory

__all__ = ["DENSE_HINT", "REG_SCALES", "check_cost_range", "cost_scale", "sq_euclidean"]

DENSE_HINT = (
    "Couple smaller batches (a few thousand samples each), or use method='sinkhorn' with the "
    "KeOps backend (backend='keops'), which never stores the (n, m) matrix."
)
"""What to do instead of a dense ``(n, m)`` allocation that does not fit."""

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
    n, m = x0.shape[0], x1.shape[0]
    require_memory(
        n * m * x0.element_size(),
        what=f"the dense ({n}, {m}) {str(x0.dtype).replace('torch.', '')} cost matrix",
        hint=DENSE_HINT,
        device=x0.device,
    )
    shift = 0.5 * (x0.mean(0) + x1.mean(0))
    x0, x1 = x0 - shift, x1 - shift
    sq = x0 @ x1.T  # one (n, m) allocation, then in place
    sq.mul_(-2.0).add_((x0 * x0).sum(1)[:, None]).add_((x1 * x1).sum(1)[None, :])
    return sq.clamp_min_(0.0)


def check_cost_range(x0: torch.Tensor, x1: torch.Tensor, dtype: torch.dtype) -> float:
    """Raise ``ValueError`` if squared distances between the sets overflow ``dtype``.

    The bound ``(max‖x0_i − c‖ + max‖x1_j − c‖)²`` (``c`` the common centre) on every cost
    entry is computed without squaring, so it is itself safe from overflow. Sets whose
    distances are all zero pass; distances so small that their squares fall below the normal
    range of ``dtype`` (no relative precision left) are refused too.

    Args:
        x0: Sources ``(n, d)``.
        x1: Targets ``(m, d)``.
        dtype: Floating dtype the cost will be computed in.

    Returns:
        The bound on the largest cost entry (``0.0`` when all samples coincide).

    Example:
        >>> check_cost_range(torch.zeros(2, 1), torch.ones(2, 1), torch.float32)
        1.0
        >>> check_cost_range(torch.zeros(2, 1), torch.full((2, 1), 1e20), torch.float32)
        Traceback (most recent call last):
        ...
        ValueError: squared distances between x0 and x1 reach about 1.0e+40, ...
    """
    y0, y1 = x0.detach().double(), x1.detach().double()
    shift = 0.5 * (y0.mean(0) + y1.mean(0))
    y0, y1 = y0 - shift, y1 - shift
    scale = float(max(y0.abs().max(), y1.abs().max()))
    if not scale > 0:
        return 0.0
    # the largest distance, computed on unit-scaled coordinates so nothing overflows
    reach = scale * (
        float(torch.linalg.vector_norm(y0 / scale, dim=1).max())
        + float(torch.linalg.vector_norm(y1 / scale, dim=1).max())
    )
    info = torch.finfo(dtype)
    name = str(dtype).replace("torch.", "")
    if reach > math.sqrt(info.max / 2):
        hint = " or pass float64 samples" if info.bits < 64 else ""
        raise ValueError(
            f"squared distances between x0 and x1 reach about {_square(reach)}, beyond the "
            f"range of {name} (largest number {info.max:.1e}). Rescale both sets by one "
            f"common factor (e.g. divide by their standard deviation; multiply an absolute reg "
            f"by the factor squared){hint}."
        )
    if reach < math.sqrt(info.tiny / info.eps):
        raise ValueError(
            f"squared distances between x0 and x1 are at most about {_square(reach)}, below "
            f"the range where {name} keeps relative precision ({info.tiny / info.eps:.1e}). "
            f"Rescale both sets by one common factor (e.g. divide by their standard deviation)."
        )
    return reach * reach


def _square(r: float) -> str:
    # r² in scientific notation, computed through its logarithm where it would overflow
    sq = r * r
    if math.isfinite(sq) and sq > 0:
        return f"{sq:.1e}"
    exponent = 2 * math.log10(r)
    whole = math.floor(exponent)
    return f"{10 ** (exponent - whole):.1f}e{whole:+03d}"


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
