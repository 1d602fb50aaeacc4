"""Pair a minibatch with a coupling solver, then sample a probability path on the pairs.

:class:`Matcher` composes the three stages of (generalised) conditional flow matching:
a coupling solver from :mod:`sbflow.couplings`, a :class:`~sbflow.paths.ProbabilityPath` and
a :class:`~sbflow.paths.TimeSampler`. The two halves are exposed separately so that a trainer
can compute couplings ahead of time (e.g. in a background worker):

    i, j = matcher.couple(x0, x1, generator=g)       # solve the coupling, draw pairs
    sample = matcher.sample_path(x0[i], x1[j], generator=g)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from sbflow.paths import LinearPath, PathSample, ProbabilityPath, TimeSampler
from sbflow.paths.base import _as_pair

__all__ = ["Matcher"]

_INDEPENDENT = ("independent", "none")


class Matcher:
    """Couple a batch, draw pairs and sample the path: the batch step of flow matching.

    Args:
        coupling: ``None`` or ``"independent"`` for independent pairing without solving
            anything (row ``k`` of ``x0`` is paired with row ``k`` of ``x1``: the two batches
            are independent draws already; for ``n != m`` each source gets a uniformly drawn
            target), a solver name accepted by :func:`sbflow.couplings.get_solver`
            (``"exact"``, ``"sinkhorn"``, ...) or a
            :class:`~sbflow.couplings.CouplingSolver` instance.
        path: The conditional path (default ``LinearPath()``).
        time_sampler: Draws training times (default: ``path.time_sampler()``, which keeps
            ``t`` away from the end points where the path's targets are singular).
        pair_mode: ``mode`` passed to :meth:`Coupling.pairs` (``"rows"``: one target per
            source; ``"plan"``: pairs drawn from the whole plan).
        **coupling_options: Options of the named solver (e.g. ``reg`` for ``"sinkhorn"``).

    Example:
        >>> import torch
        >>> from sbflow.paths import LinearPath
        >>> m = Matcher("exact", LinearPath())
        >>> g = torch.Generator().manual_seed(0)
        >>> s = m.sample(torch.randn(16, 2, generator=g), torch.randn(16, 2, generator=g) + 3,
        ...              generator=g)
        >>> s.xt.shape, s.t.shape
        (torch.Size([16, 2]), torch.Size([16]))
    """

    def __init__(
        self,
        coupling: Any = None,
        path: ProbabilityPath | None = None,
        time_sampler: TimeSampler | None = None,
        *,
        pair_mode: str = "rows",
        **coupling_options: Any,
    ) -> None:
        if isinstance(coupling, str) and coupling.lower() in _INDEPENDENT:
            coupling = None
        if coupling is None:
            if coupling_options:
                raise TypeError(
                    f"coupling options {sorted(coupling_options)} were given without a coupling "
                    f"solver; pass coupling='sinkhorn' (or another solver) to use them."
                )
            self.solver = None
        else:
            from sbflow.couplings import get_solver

            self.solver = get_solver(coupling, **coupling_options)
        if path is None:
            path = LinearPath()
        if not isinstance(path, ProbabilityPath):
            raise TypeError(f"path must be a ProbabilityPath; got {type(path).__name__}.")
        self.path = path
        if time_sampler is None:
            time_sampler = path.time_sampler()
        if not callable(time_sampler):
            raise TypeError("time_sampler must be a TimeSampler (callable n -> times (n,)).")
        self.time_sampler = time_sampler
        if pair_mode not in ("rows", "plan"):
            raise ValueError(f"pair_mode must be 'rows' or 'plan'; got {pair_mode!r}.")
        self.pair_mode = pair_mode

    def couple(
        self,
        x0: torch.Tensor,
        x1: torch.Tensor,
        *,
        y0: Any = None,
        y1: Any = None,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Solve the coupling of a batch and draw index pairs ``(i, j)``.

        Args:
            x0: Source batch ``(n, *dims)``.
            x1: Target batch ``(m, *dims)``.
            y0: Optional source labels ``(n,)``; pairs form within a class only.
            y1: Optional target labels ``(m,)``.
            generator: Seeds the pair draws.

        Returns:
            Two ``long`` tensors on ``x0``'s device; pass ``x0[i]``, ``x1[j]`` to
            :meth:`sample_path`.

        Example:
            >>> i, j = Matcher().couple(torch.zeros(3, 2), torch.ones(3, 2))
            >>> i.tolist(), j.tolist()
            ([0, 1, 2], [0, 1, 2])
        """
        if x0.dim() < 2 or x1.dim() < 2 or x0.shape[1:] != x1.shape[1:]:
            raise ValueError(
                f"x0 and x1 must have shapes (n, *dims) and (m, *dims); got {tuple(x0.shape)} "
                f"and {tuple(x1.shape)}."
            )
        n, m = x0.shape[0], x1.shape[0]
        if self.solver is None and y0 is None and y1 is None:
            i = torch.arange(n, device=x0.device)
            if n == m:
                return i, i.clone()
            src = x0.device if generator is None else generator.device
            j = torch.randint(m, (n,), generator=generator, device=src).to(x0.device)
            return i, j
        solver = self.solver
        if solver is None:
            from sbflow.couplings import IndependentCoupling

            solver = IndependentCoupling()
        coupling = solver(x0.detach(), x1.detach(), y0=y0, y1=y1)
        i, j = coupling.pairs(mode=self.pair_mode, generator=generator)
        return i.to(x0.device), j.to(x0.device)

    def sample_path(
        self,
        x0: torch.Tensor,
        x1: torch.Tensor,
        *,
        generator: torch.Generator | None = None,
    ) -> PathSample:
        """Sample times and the path on already paired rows ``(x0[k], x1[k])``.

        Example:
            >>> s = Matcher().sample_path(torch.zeros(5, 2), torch.ones(5, 2))
            >>> bool((s.ut == 1).all())
            True
        """
        x0, x1 = _as_pair(x0, x1)
        t = self.time_sampler(x0.shape[0], dtype=x0.dtype, device=x0.device, generator=generator)
        return self.path.sample(x0, x1, t, generator=generator)

    def sample(
        self,
        x0: torch.Tensor,
        x1: torch.Tensor,
        *,
        pairs: tuple[torch.Tensor, torch.Tensor] | None = None,
        y0: Any = None,
        y1: Any = None,
        generator: torch.Generator | None = None,
    ) -> PathSample:
        """Couple the batch (unless ``pairs`` are given), then sample the path on the pairs.

        Args:
            x0: Source batch ``(n, *dims)``.
            x1: Target batch ``(m, *dims)``.
            pairs: Precomputed index pairs ``(i, j)`` (e.g. from :meth:`couple` run ahead).
            y0: Optional source labels for class-conditional couplings.
            y1: Optional target labels.
            generator: Seeds pairs, times and noise, in that order.

        Example:
            >>> s = Matcher().sample(torch.zeros(4, 1), torch.ones(4, 1),
            ...                      pairs=(torch.tensor([0, 1]), torch.tensor([3, 2])))
            >>> len(s)
            2
        """
        if pairs is None:
            i, j = self.couple(x0, x1, y0=y0, y1=y1, generator=generator)
        else:
            i, j = pairs
        return self.sample_path(x0[i], x1[j], generator=generator)

    def sample_block(
        self,
        x0s: Sequence[torch.Tensor],
        x1s: Sequence[torch.Tensor],
        generators: Sequence[torch.Generator | None],
    ) -> list[PathSample]:
        """:meth:`sample` on several batches, their couplings solved together where possible.

        ``[sample(x0s[k], x1s[k], generator=generators[k]) for k …]``, with the same draws
        from each generator in the same order; only the plans may differ, within the solver's
        tolerance, when the solver couples the batches as one block (entropic plans of
        equal-sized, well-conditioned batches, see :class:`~sbflow.couplings.Sinkhorn`). That
        divides the Python work of coupling by the number of batches, which is what keeps a
        background thread from stalling training.

        Example:
            >>> from sbflow.couplings import Sinkhorn
            >>> m = Matcher(Sinkhorn(reg=4.0))
            >>> x = torch.randn(2, 8, 2, generator=torch.Generator().manual_seed(0))
            >>> gens = [torch.Generator().manual_seed(k) for k in range(2)]
            >>> [s.xt.shape for s in m.sample_block(list(x), list(x + 1), gens)]
            [torch.Size([8, 2]), torch.Size([8, 2])]
        """
        block = getattr(self.solver, "_solve_block", None)
        couplings = None
        same = all(a.shape == x0s[0].shape for a in x0s) and all(
            b.shape == x1s[0].shape for b in x1s
        )
        if block is not None and len(x0s) > 1 and same and x0s[0].dim() == 2:
            couplings = block(torch.stack(list(x0s)).detach(), torch.stack(list(x1s)).detach())
        if couplings is None:
            return [self.sample(a, b, generator=g) for a, b, g in zip(x0s, x1s, generators)]
        out = []
        for coupling, a, b, g in zip(couplings, x0s, x1s, generators):
            i, j = coupling.pairs(mode=self.pair_mode, generator=g)
            out.append(self.sample_path(a[i.to(a.device)], b[j.to(a.device)], generator=g))
        return out

    def __call__(
        self, x0: torch.Tensor, x1: torch.Tensor, generator: torch.Generator | None = None
    ) -> PathSample:
        """Shorthand for :meth:`sample` (the ``sampler(x0, x1, generator)`` trainer protocol)."""
        return self.sample(x0, x1, generator=generator)

    def __repr__(self) -> str:
        solver = "independent" if self.solver is None else type(self.solver).__name__
        return f"Matcher(coupling={solver}, path={self.path!r}, time_sampler={self.time_sampler!r})"
