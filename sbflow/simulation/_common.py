"""Helpers shared by the ODE, SDE and likelihood integrators (private)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

__all__ = ["CountingField", "resolve_times", "uniform_grid_with"]


def resolve_times(
    times: Any, reverse: bool, *, like: torch.Tensor, name: str = "times"
) -> torch.Tensor:
    """Return the output time grid in integration order, as a 1-D tensor like ``like``.

    ``None`` gives ``[0, 1]`` (or ``[1, 0]`` when ``reverse``). A given grid must be strictly
    monotone, inside ``[0, 1]``, with at least two points; it is sorted ascending for a
    forward and descending for a reverse integration.
    """
    if times is None:
        grid = torch.tensor([0.0, 1.0], dtype=like.dtype, device=like.device)
    else:
        if isinstance(times, torch.Tensor):
            grid = times.detach().to(dtype=like.dtype, device=like.device).reshape(-1)
        else:  # lists / NumPy: read at the states' precision, not via float32
            grid = torch.as_tensor(times, dtype=like.dtype, device=like.device).reshape(-1)
        if grid.numel() < 2:
            raise ValueError(
                f"{name} needs at least two time points (start and end); got {grid.numel()}."
            )
        if not bool(torch.isfinite(grid).all()):
            raise ValueError(f"{name} holds NaN or infinite values.")
        diffs = grid[1:] - grid[:-1]
        if not (bool((diffs > 0).all()) or bool((diffs < 0).all())):
            raise ValueError(
                f"{name} must be strictly increasing or strictly decreasing (no repeats); "
                f"got {grid.tolist()}."
            )
        if bool((grid < 0).any()) or bool((grid > 1).any()):
            raise ValueError(f"{name} must lie in [0, 1]; got {grid.tolist()}.")
        grid = grid.sort().values
    return grid.flip(0) if reverse else grid


def uniform_grid_with(points: torch.Tensor, steps: int) -> torch.Tensor:
    """Union of ``steps`` equal steps from ``points[0]`` to ``points[-1]`` and ``points``.

    Works for increasing and decreasing ``points``; the result is monotone in the same
    direction and contains every entry of ``points`` exactly.
    """
    start, end = points[0], points[-1]
    frac = torch.linspace(0.0, 1.0, steps + 1, dtype=points.dtype, device=points.device)
    uniform = start + (end - start) * frac
    grid = torch.cat([uniform[1:-1], points]).unique()  # ascending
    # Drop uniform points closer than a rounding error to an output point.
    tol = 1e-9 * float(abs(end - start))
    keep = torch.ones_like(grid, dtype=torch.bool)
    for p in points[1:-1] if points.numel() > 2 else []:
        close = (grid - p).abs() <= tol
        close &= grid != p
        keep &= ~close
    grid = grid[keep]
    return grid if bool(end > start) else grid.flip(0)


class CountingField:
    """Wrap ``field(x, t)``: broadcast the solver's scalar time to ``(n,)`` and count calls."""

    def __init__(self, field: Callable[..., torch.Tensor], shape: torch.Size) -> None:
        self.field = field
        self.shape = shape
        self.nfe = 0

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Evaluate the field at states ``x`` (flat or not) and time ``t`` (scalar or ``(n,)``)."""
        n = self.shape[0]
        x = x.reshape(self.shape)
        tt = torch.as_tensor(t, dtype=x.dtype, device=x.device)
        tt = tt.reshape(()).expand(n) if tt.numel() == 1 else tt.reshape(n)
        self.nfe += 1
        out = self.field(x, tt)
        if not isinstance(out, torch.Tensor):
            raise TypeError(
                f"the field must return a torch.Tensor of shape {tuple(self.shape)}; "
                f"got {type(out).__name__}."
            )
        if out.shape != self.shape:
            raise ValueError(
                f"the field returned shape {tuple(out.shape)} for input of shape "
                f"{tuple(self.shape)}; it must return one vector per sample, same shape as x."
            )
        return out
