r"""Maps between the user's units and the units a network trains in.

Data: ``z = (x − μ) / scale`` (one pooled scale, or none). Time: ``τ = (t − t_0) / T`` with
``T = t_K − t_0``, so every bridge trains on ``τ ∈ [0, 1]``.

σ: the reference Brownian motion ``dX = σ dW`` has variance rate σ² per unit of the user's
time, in data units. In training units it is

.. math:: \sigma_z = \sigma \sqrt{T} / \text{scale}

per unit of τ, and on an interval of width Δτ, per unit of the interval's own time,
``σ_z √Δτ``. These three lines are the only place that converts σ.

Example:
    >>> to_internal(2.0, scale=4.0, span=4.0), from_internal(1.0, scale=4.0, span=4.0)
    (1.0, 2.0)
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch

__all__ = ["TimeMap", "from_internal", "scalar_scale", "to_internal"]


def to_internal(sigma: float, *, scale: float, span: float) -> float:
    """σ in data units per user time → per unit τ in standardised units: ``σ √T / scale``.

    Example:
        >>> to_internal(0.3, scale=10.0, span=4.0)  # 0.3 per √day, data scale 10, 4 days
        0.06
    """
    return float(sigma) * math.sqrt(span) / float(scale)


def from_internal(sigma_z: float, *, scale: float, span: float) -> float:
    """Inverse of :func:`to_internal`: ``σ_z · scale / √T``.

    Example:
        >>> from_internal(0.06, scale=10.0, span=4.0)
        0.3
    """
    return float(sigma_z) * float(scale) / math.sqrt(span)


def scalar_scale(scale: torch.Tensor) -> float | None:
    """The common value of a per-feature scale vector, or ``None`` when the entries differ.

    Example:
        >>> scalar_scale(torch.tensor([2.0, 2.0])), scalar_scale(torch.tensor([1.0, 2.0]))
        (2.0, None)
    """
    first = float(scale.reshape(-1)[0])
    return first if bool((scale == first).all()) else None


class TimeMap:
    """The fitted time range and the map ``t ↦ τ = (t − t_0) / (t_K − t_0)``.

    Args:
        times: Snapshot times in the user's units, strictly increasing.

    Example:
        >>> tm = TimeMap([0.0, 2.0, 4.0])
        >>> tm.span, tm.tau(1.0), tm.resolve([None, 3.0])
        (4.0, 0.25, [0.0, 0.75])
    """

    def __init__(self, times: Sequence[float]) -> None:
        self.times = [float(t) for t in times]
        if len(self.times) < 2 or any(b <= a for a, b in zip(self.times, self.times[1:])):
            raise ValueError(f"times must be strictly increasing; got {self.times}.")

    @property
    def span(self) -> float:
        """``T = t_K − t_0``."""
        return self.times[-1] - self.times[0]

    def tau(self, t: float, name: str = "time") -> float:
        """``τ`` of a time in the user's units (must lie in the fitted range).

        Args:
            t: The time.
            name: How the time is called in the public API, for error messages.

        Raises:
            TypeError: If ``t`` is not a number.
            ValueError: If ``t`` is NaN or outside the fitted range.
        """
        t0, t1 = self.times[0], self.times[-1]
        if isinstance(t, (bool, str, bytes)) or t is None:
            raise TypeError(f"{name} must be a number (a time in the fit's units); got {t!r}.")
        try:
            t = float(t)
        except (TypeError, ValueError) as err:
            raise TypeError(
                f"{name} must be a number (a time in the fit's units); got {t!r}."
            ) from err
        if not (math.isfinite(t) and t0 - 1e-9 * self.span <= t <= t1 + 1e-9 * self.span):
            raise ValueError(
                f"{name}={t} lies outside the fitted range [{t0}, {t1}]; pass a time within it."
            )
        return min(max((t - t0) / self.span, 0.0), 1.0)

    def resolve(
        self,
        values: Sequence[float | None],
        *,
        reverse: bool = False,
        names: Sequence[str] | None = None,
    ) -> list[float]:
        """τ of times in integration order; ``None`` at the start / end is the range's end.

        Forward, a ``None`` start is ``t_0`` and a ``None`` end ``t_K``; with ``reverse``
        the other way round. The times must be strictly monotone: increasing integrates
        forward, decreasing backward.

        ``names`` (one per value) name the times in messages; default ``times[k]``.

        Raises:
            TypeError: A time that is not a number.
            ValueError: ``None`` inside the list, times out of range, not strictly
                monotone, or increasing times with ``reverse=True``.
        """
        values = list(values)
        if len(values) < 2:
            raise ValueError("times needs at least two entries (start and end); pass a list.")
        if any(v is None for v in values[1:-1]):
            raise ValueError("only the first and last of times may be None (the range's ends).")
        labels = list(names) if names is not None else [f"times[{k}]" for k in range(len(values))]
        start, end = (1.0, 0.0) if reverse else (0.0, 1.0)
        first = start if values[0] is None else self.tau(values[0], labels[0])
        last = end if values[-1] is None else self.tau(values[-1], labels[-1])
        inner = [self.tau(v, labels[k + 1]) for k, v in enumerate(values[1:-1])]
        taus = [first, *inner, last]
        steps = [b - a for a, b in itertools.pairwise(taus)]
        if not (all(s > 0 for s in steps) or all(s < 0 for s in steps)):
            raise ValueError(
                f"times must be strictly increasing (forward) or strictly decreasing (backward) "
                f"and distinct; got {[self.times[0] + x * self.span for x in taus]}."
            )
        if reverse and steps[0] > 0:
            raise ValueError(
                "reverse=True integrates backward, from a later time to an earlier one, but "
                "the times increase; give t_start > t_end (then reverse is not needed)."
            )
        return taus
