"""Seeded draws from non-negative weights (categorical, with or without replacement).

All draws go through an explicit ``torch.Generator`` (or none, for the global stream), are made
on the generator's device and moved to the data's device afterwards, so a CPU generator can
drive draws for CUDA data reproducibly.
"""

from __future__ import annotations

import torch

from sbflow._random import rand as uniform

__all__ = ["gumbel", "sample_categorical", "sample_rows"]


def gumbel(
    shape: tuple[int, ...],
    *,
    dtype: torch.dtype,
    device: torch.device,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """Standard Gumbel draws ``-log(-log U)``.

    Example:
        >>> gumbel((2, 2), dtype=torch.float64, device=torch.device("cpu"), generator=None).shape
        torch.Size([2, 2])
    """
    u = uniform(shape, dtype=dtype, device=device, generator=generator)
    tiny = torch.finfo(dtype).tiny
    return -torch.log(-torch.log(u.clamp_min(tiny)))


def sample_categorical(
    weights: torch.Tensor,
    k: int,
    *,
    replace: bool,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """Draw ``k`` indices with probabilities proportional to the 1-D ``weights``.

    With replacement this inverts the cumulative sum (no size limit, unlike
    ``torch.multinomial``); without replacement it takes the top ``k`` Gumbel-perturbed
    log-weights, which draws ``k`` distinct indices with the sequential probabilities.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> sample_categorical(torch.tensor([0.0, 1.0, 0.0]), 2, replace=True, generator=g)
        tensor([1, 1])
    """
    w = weights.to(torch.float64)
    if replace:
        cum = torch.cumsum(w, 0)
        u = uniform((k,), dtype=torch.float64, device=w.device, generator=generator) * cum[-1]
        idx = torch.searchsorted(cum, u, right=True)
        return idx.clamp_max(w.numel() - 1)
    n_pos = int((w > 0).sum())
    if k > n_pos:
        raise ValueError(
            f"cannot draw {k} distinct pairs: the plan has only {n_pos} entries with positive "
            f"mass. Pass replace=True or ask for at most {n_pos} pairs."
        )
    keys = torch.log(w) + gumbel(w.shape, dtype=torch.float64, device=w.device, generator=generator)
    return torch.topk(keys, k).indices


def sample_rows(rows: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """For each row of a non-negative ``(B, m)`` block, draw one column index ∝ the row.

    Rows must have positive mass.

    Example:
        >>> sample_rows(torch.tensor([[0.0, 2.0], [1.0, 0.0]]), None)
        tensor([1, 0])
    """
    cum = torch.cumsum(rows.to(torch.float64), 1)
    u = uniform((rows.shape[0], 1), dtype=torch.float64, device=rows.device, generator=generator)
    idx = torch.searchsorted(cum, u * cum[:, -1:], right=True)
    return idx.squeeze(1).clamp_max(rows.shape[1] - 1)
