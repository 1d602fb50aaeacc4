"""Training batches for bridge fitting: sample sets, normalisation and per-step path samples.

A batch is a pure function of the step number: every random draw of step ``k`` comes from a
generator seeded with ``step_seed(seed, k)``. That is what lets the prefetcher compute
batches ahead in a thread and a resumed run see exactly the batches it would have seen.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from sbflow.data.toy import sample_dataset
from sbflow.pairs import IndependentPairs, PairSource
from sbflow.pairs.sources import sample_rows
from sbflow.training.prefetch import step_seed

__all__ = ["Normalizer", "PathBatches", "SampleSet", "concat_samples"]


@dataclass
class Normalizer:
    """Affine standardisation ``z = (x − shift) / scale`` of flattened samples.

    ``scale`` is a single number by default, which keeps the optimal-transport geometry
    (squared Euclidean costs are only multiplied by ``1 / scale²``); per-feature scales
    change which coupling is optimal.

    Attributes:
        shift: ``(features,)`` mean.
        scale: ``(features,)`` standard deviation (all equal for a scalar scale).

    Example:
        >>> norm = Normalizer.fit([torch.tensor([[0.0, 0.0], [2.0, 4.0]])])
        >>> norm.encode(torch.tensor([[1.0, 2.0]])).tolist()
        [[0.0, 0.0]]
    """

    shift: torch.Tensor
    scale: torch.Tensor

    def __post_init__(self) -> None:
        for name in ("shift", "scale"):
            value = getattr(self, name)
            if not isinstance(value, torch.Tensor) or value.dim() != 1:
                raise TypeError(
                    f"normalizer {name} must be a 1-D tensor (one entry per feature); got "
                    f"{type(value).__name__} {tuple(getattr(value, 'shape', ()))}."
                )
        if self.shift.shape != self.scale.shape:
            raise ValueError(
                f"normalizer shift has {self.shift.shape[0]} features but scale has "
                f"{self.scale.shape[0]}; pass one entry per feature in both."
            )
        if not bool(torch.isfinite(self.shift).all()):
            raise ValueError("normalizer shift must be finite; rescale the data.")
        if not bool((torch.isfinite(self.scale) & (self.scale > 0)).all()):
            raise ValueError(
                f"normalizer scale must be finite and > 0 for every feature; got entries "
                f"from {float(self.scale.min()):g} to {float(self.scale.max()):g}. Rescale the "
                f"data (or, for a file, re-create it: it was edited or damaged)."
            )

    @classmethod
    def identity(cls, features: int, dtype: torch.dtype = torch.float32) -> Normalizer:
        """No-op normaliser.

        Example:
            >>> Normalizer.identity(2).scale.tolist()
            [1.0, 1.0]
        """
        return cls(torch.zeros(features, dtype=dtype), torch.ones(features, dtype=dtype))

    @classmethod
    def fit(cls, sets: Sequence[torch.Tensor], *, per_feature: bool = False) -> Normalizer:
        """Pooled mean and standard deviation of flattened sample sets (each set counts by size).

        Example:
            >>> Normalizer.fit([torch.tensor([[1.0], [3.0]])]).shift.tolist()
            [2.0]
        """
        pooled = torch.cat([s.reshape(s.shape[0], -1).to(torch.float64) for s in sets])
        shift = pooled.mean(0)
        var = pooled.var(0, unbiased=False)
        scale = var.sqrt() if per_feature else var.mean().sqrt().expand_as(var).clone()
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        return cls(shift.float(), scale.float())

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``(x − shift) / scale`` on flat ``(n, features)`` samples.

        Example:
            >>> Normalizer.identity(1).encode(torch.ones(2, 1)).tolist()
            [[1.0], [1.0]]
        """
        return (x - self.shift.to(x)) / self.scale.to(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """``shift + scale · z``.

        Example:
            >>> Normalizer.identity(1).decode(torch.ones(2, 1)).tolist()
            [[1.0], [1.0]]
        """
        return z * self.scale.to(z) + self.shift.to(z)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Tensors to save.

        Example:
            >>> sorted(Normalizer.identity(1).state_dict())
            ['scale', 'shift']
        """
        return {"shift": self.shift.clone(), "scale": self.scale.clone()}


class SampleSet:
    """One sample set used in training: a finite tensor, or a built-in generator.

    Args:
        data: Flat ``(n, features)`` tensor, or ``None`` for a built-in set.
        name: Built-in dataset name when ``data`` is ``None``.
        dim: Dimension for built-in sets.

    Example:
        >>> s = SampleSet(torch.arange(6.0).reshape(3, 2))
        >>> s.draw(2, torch.Generator().manual_seed(0)).shape
        torch.Size([2, 2])
    """

    def __init__(
        self, data: torch.Tensor | None = None, *, name: str | None = None, dim: int = 2
    ) -> None:
        if (data is None) == (name is None):
            raise ValueError("a SampleSet holds either data or a built-in dataset name.")
        self.data = data.reshape(data.shape[0], -1) if data is not None else None
        self.name = name
        self.dim = dim if data is None else int(self.data.shape[1])  # type: ignore[union-attr]

    def draw(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` samples: fresh points of a built-in set, or rows of the data.

        Rows are picked by :func:`~sbflow.pairs.sources.sample_rows` (without replacement
        when the set has enough of them).

        Example:
            >>> SampleSet(name="moons").draw(3, torch.Generator().manual_seed(0)).shape
            torch.Size([3, 2])
        """
        if self.data is None:
            return sample_dataset(
                self.name,  # type: ignore[arg-type]
                n,
                generator=generator,
                dtype=torch.float32,
                dim=self.dim,
            )
        return self.data[sample_rows(self.data.shape[0], n, generator)]

    def drawer(
        self, encode: Callable[[torch.Tensor], torch.Tensor] | None = None
    ) -> Callable[[int, torch.Generator], torch.Tensor]:
        """``draw(n, generator)`` in training units (built-in points pass through ``encode``).

        Data rows are stored standardised already; fresh points of a built-in set are not,
        so they go through ``encode`` (the normaliser's).

        Example:
            >>> draw = SampleSet(name="moons").drawer(lambda x: 0 * x)
            >>> draw(3, torch.Generator().manual_seed(0)).abs().max().item()
            0.0
        """
        if self.data is not None or encode is None:
            return self.draw

        def draw(n: int, generator: torch.Generator) -> torch.Tensor:
            return encode(self.draw(n, generator))

        return draw

    def fingerprint(self) -> str:
        """A short hash identifying the set (for checking that a resumed run has the same data).

        Example:
            >>> SampleSet(name="moons").fingerprint()
            'builtin:moons:2'
        """
        if self.data is None:
            return f"builtin:{self.name}:{self.dim}"
        digest = hashlib.sha256(self.data.detach().cpu().contiguous().numpy().tobytes())
        return f"data:{tuple(self.data.shape)}:{digest.hexdigest()[:16]}"


def concat_samples(samples: Sequence[Any]) -> Any:
    """Concatenate dataclass batches (e.g. ``PathSample``) field by field along dim 0.

    ``None`` fields stay ``None``; tensors of shape ``()`` are not allowed.

    Example:
        >>> from dataclasses import dataclass
        >>> @dataclass
        ... class B:
        ...     x: torch.Tensor
        >>> concat_samples([B(torch.zeros(2)), B(torch.ones(1))]).x.tolist()
        [0.0, 0.0, 1.0]
    """
    if len(samples) == 1:
        return samples[0]
    first = samples[0]
    changes = {}
    for f in dataclasses.fields(first):
        values = [getattr(s, f.name) for s in samples]
        if all(v is None for v in values):
            continue
        if any(v is None for v in values):
            raise ValueError(f"cannot concatenate batches: field {f.name} is None in some.")
        changes[f.name] = torch.cat(values)
    return dataclasses.replace(first, **changes)


class PathBatches:
    """``batches(step) -> PathSample``: couple snapshots, sample the path, rescale time.

    With snapshots ``X_0, …, X_K`` at normalised times ``0 = τ_0 < … < τ_K = 1``, each batch
    holds ``batch_size`` pairs from every interval ``[τ_k, τ_{k+1}]``: a batch of each set,
    coupled and sampled by the interval's matcher on local time ``s ∈ [0, 1]``, then mapped to
    global time ``τ = τ_k + s Δτ_k`` with velocity targets divided by ``Δτ_k``. Scores are
    unchanged (they do not depend on how time is parametrised).

    Args:
        sets: The ``K + 1`` sample sets (already normalised when they hold data).
        taus: Their normalised times.
        samplers: One ``sample(x0, x1, generator) -> PathSample`` per interval; it is handed
            the rows of the interval's pair source (and may still couple them).
        batch_size: Pairs per interval per step.
        seed: Run seed.
        encode: Applied to samples of built-in sets (the normaliser's ``encode``).
        rank: Process rank in distributed training; the generator of step ``k`` is seeded
            from ``step_seed(seed, k, rank)``, so every rank draws its own batches (rank 0
            draws the single-process ones).
        pairs: One :class:`~sbflow.pairs.PairSource` per interval (default: independent
            batches of the two sets, source first, see :class:`~sbflow.pairs.IndependentPairs`).

    Example:
        >>> from dataclasses import dataclass
        >>> @dataclass
        ... class S:
        ...     t: torch.Tensor
        ...     ut: torch.Tensor
        >>> pb = PathBatches([SampleSet(name="normal")] * 2, [0.0, 1.0],
        ...                  [lambda a, b, g: S(torch.zeros(len(a)), b - a)], 4, seed=0)
        >>> pb(0).ut.shape
        torch.Size([4, 2])
    """

    def __init__(
        self,
        sets: Sequence[SampleSet],
        taus: Sequence[float],
        samplers: Sequence[Callable[[torch.Tensor, torch.Tensor, torch.Generator], Any]],
        batch_size: int,
        *,
        seed: int,
        encode: Callable[[torch.Tensor], torch.Tensor] | None = None,
        rank: int = 0,
        pairs: Sequence[PairSource] | None = None,
    ) -> None:
        if len(sets) != len(taus) or len(samplers) != len(sets) - 1:
            raise ValueError("need one time per sample set and one sampler per interval.")
        if pairs is not None and len(pairs) != len(samplers):
            raise ValueError(f"need one pair source per interval ({len(samplers)}).")
        self.sets = list(sets)
        self.taus = [float(t) for t in taus]
        self.samplers = list(samplers)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.encode = encode
        self.rank = int(rank)
        if pairs is None:
            pairs = [
                IndependentPairs(self.sets[k].drawer(encode), self.sets[k + 1].drawer(encode))
                for k in range(len(self.samplers))
            ]
        self.pairs = list(pairs)

    BLOCK = 8
    """Steps whose couplings are solved together where the solver can (:meth:`block`)."""

    @property
    def block_size(self) -> int:
        """Steps that :class:`~sbflow.training.Trainer` makes together: :attr:`BLOCK` when
        one interval's coupling can be solved for several batches at once, else 1."""
        return self.BLOCK if self._block_solver() is not None else 1

    def _block_solver(self) -> Any:
        if len(self.samplers) != 1 or not hasattr(self.samplers[0], "block"):
            return None
        solver = _solver_of(self.samplers[0])
        return solver if hasattr(solver, "_solve_block") else None

    @property
    def prefetch_workers(self) -> int:
        """Prefetch threads that pay off: 1 if a coupling solve holds the GIL, else 2.

        A solver whose work is a Python loop of small torch ops (``releases_gil = False``,
        e.g. Sinkhorn) holds the GIL most of the time, and a second such thread slows the
        training thread more than it helps.
        """
        for sampler in self.samplers:
            solver = _solver_of(sampler)
            if solver is not None and not getattr(solver, "releases_gil", True):
                return 1
        return 2

    def __call__(self, step: int) -> Any:
        g = self._generator(step)
        parts = []
        for k, sampler in enumerate(self.samplers):
            x0, x1 = self.pairs[k].draw(self.batch_size, g)
            parts.append(self._to_global(k, sampler(x0, x1, g)))
        return concat_samples(parts)

    def block(self, steps: Sequence[int]) -> list[Any]:
        """``[self(step) for step in steps]``, with the couplings of the steps solved together.

        Each step draws from its own generator exactly as :meth:`__call__` does; only the
        plans may differ within the solver's tolerance (see
        :meth:`sbflow.matching.Matcher.sample_block`). One interval only: with several, the
        steps are made one by one.

        Example:
            >>> from sbflow.training.batches import SampleSet
            >>> from sbflow.matching import Matcher
            >>> from sbflow.training.distributed import LocalSampler
            >>> pb = PathBatches([SampleSet(name="normal")] * 2, [0.0, 1.0],
            ...                  [LocalSampler(Matcher())], 4, seed=0)
            >>> bool(torch.equal(pb.block([3, 4])[1].xt, pb(4).xt))
            True
        """
        if len(self.samplers) > 1 or not hasattr(self.samplers[0], "block"):
            return [self(step) for step in steps]
        make_block = self.samplers[0].block
        gens = [self._generator(step) for step in steps]
        drawn = [self.pairs[0].draw(self.batch_size, g) for g in gens]
        samples = make_block([d[0] for d in drawn], [d[1] for d in drawn], gens)
        return [self._to_global(0, sample) for sample in samples]

    def _generator(self, step: int) -> torch.Generator:
        return torch.Generator().manual_seed(step_seed(self.seed, step, self.rank))

    def _to_global(self, k: int, sample: Any) -> Any:
        """Map interval ``k``'s local time ``s ∈ [0, 1]`` to global time (targets ÷ Δτ)."""
        start, width = self.taus[k], self.taus[k + 1] - self.taus[k]
        if len(self.samplers) > 1 or start != 0.0 or width != 1.0:
            changes = {"t": start + width * sample.t, "ut": sample.ut / width}
            sample = dataclasses.replace(sample, **changes)
        return sample


def _solver_of(sampler: Any) -> Any:
    """The coupling solver behind an interval's sampler (``None``: uncoupled or unknown)."""
    return getattr(getattr(sampler, "matcher", None), "solver", None)
