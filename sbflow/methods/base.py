"""What a method is: pairs, path, loss and heads, how its bridge simulates, how it trains.

A :class:`Method` composes the stages of the pipeline (see the design notes): a pair source
and coupling, a probability path, a loss with the heads the model must return (``("v",)``
for a velocity, ``("v", "s")`` for velocity and score), the simulator its bridge uses by
default (ODE or SDE) and how many training rounds it runs. Subclasses set class attributes
and override :meth:`Method.path` (and, for closed-form or iterative methods,
:meth:`Method.train` or :meth:`Method.pair_sources`); register them with
:func:`sbflow.methods.register`.

Units: ``sigma`` is in the user's data units per unit of the user's time (σ² is the
variance rate of the reference Brownian motion, ``reg = 2σ²`` on ‖x − y‖²). Methods whose σ is
a dimensionless path setting (``fm``'s ``σ_min``) set ``sigma_units = "none"``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from sbflow.matching import Matcher
from sbflow.paths import PathSample, ProbabilityPath

__all__ = ["Method", "Problem"]


@dataclass
class Problem:
    """A fitting problem in the units a network trains in (what :meth:`Method.train` gets).

    Attributes:
        sets: The ``K + 1`` sample sets (:class:`~sbflow.training.batches.SampleSet`),
            standardised and flattened.
        taus: Their times mapped to ``τ ∈ [0, 1]``.
        sigma: The method's σ in training units: per unit of τ, in standardised units
            (σ·√T / scale, see :mod:`sbflow.bridge.timemap`); per interval of width Δτ the
            local σ is ``sigma · √Δτ``.
        feature_shape: Shape of one sample.
        encode: Standardises samples drawn from built-in sets.
        paired: Rows of consecutive sets belong together (matched samples).
        batch_size: Pairs per interval per step.
        seed: Run seed.
        extras: What ``fit`` knows beyond this (device, distributed context, …).

    Example:
        >>> from sbflow.training.batches import SampleSet
        >>> sets = [SampleSet(torch.zeros(4, 2)), SampleSet(torch.ones(4, 2))]
        >>> problem = Problem(sets, [0.0, 1.0], 0.5, (2,), None, True, 4, 0)
        >>> problem.interval_sigma(0), problem.sampler(1)(2, torch.Generator()).tolist()
        (0.5, [[1.0, 1.0], [1.0, 1.0]])
    """

    sets: list[Any]
    taus: list[float]
    sigma: float
    feature_shape: tuple[int, ...]
    encode: Callable[[torch.Tensor], torch.Tensor] | None
    paired: bool
    batch_size: int
    seed: int
    extras: dict[str, Any] = field(default_factory=dict)

    def sampler(self, k: int) -> Callable[[int, torch.Generator], torch.Tensor]:
        """``draw(n, generator)`` of set ``k`` in training units (standardised, flat).

        Example:
            >>> from sbflow.training.batches import SampleSet
            >>> p = Problem([SampleSet(torch.ones(4, 2))], [0.0], 0.0, (2,), None, False, 8, 0)
            >>> p.sampler(0)(3, torch.Generator()).shape
            torch.Size([3, 2])
        """
        return self.sets[k].drawer(self.encode)

    def interval_sigma(self, k: int) -> float:
        """σ of interval ``k`` per unit of its local time ``s ∈ [0, 1]``: ``σ √Δτ_k``.

        Example:
            >>> Problem([], [0.0, 0.25, 1.0], 2.0, (1,), None, False, 8, 0).interval_sigma(0)
            1.0
        """
        return self.sigma * math.sqrt(self.taus[k + 1] - self.taus[k])


class Method:
    """Base class of flow-matching and bridge methods (see the module docstring).

    Args:
        sigma: σ in data units per unit of time (method default if ``None``).
        coupling: Overrides the method's coupling: a solver name or a
            :class:`~sbflow.couplings.CouplingSolver` instance.
        **coupling_options: Options of the coupling solver (e.g. ``reg``, ``max_iter``).

    Example:
        >>> from sbflow.methods import get_method
        >>> m = get_method("sb-cfm", sigma=0.2)
        >>> m.heads, m.simulation, round(m.matcher.solver.reg, 4)
        (('v', 's'), 'sde', 0.08)
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    heads: ClassVar[tuple[str, ...]] = ("v",)
    simulation: ClassVar[str] = "ode"
    default_sigma: ClassVar[float] = 0.0
    sigma_units: ClassVar[str] = "data"
    default_coupling: ClassVar[str] = "independent"
    gaussian_source: ClassVar[bool] = False
    rounds: ClassVar[int] = 1

    def __init__(
        self, sigma: float | None = None, coupling: Any = None, **coupling_options: Any
    ) -> None:
        if isinstance(sigma, (bool, str, bytes)):
            raise TypeError(f"sigma must be a number ≥ 0 (or None for the default); got {sigma!r}.")
        if sigma is not None:
            try:
                sigma = float(sigma)
            except (TypeError, ValueError) as err:
                raise TypeError(f"sigma must be a number ≥ 0; got {sigma!r}.") from err
            if not (math.isfinite(sigma) and sigma >= 0):
                raise ValueError(f"sigma must be a finite number ≥ 0; got {sigma!r}.")
            if sigma > 0 and not (0 < sigma * sigma < math.inf):
                raise ValueError(
                    f"sigma={sigma!r} cannot be squared in floating point (σ² is the variance "
                    f"rate); pass σ in the data's units, or rescale the data."
                )
        self.sigma_given = sigma
        self.coupling = self.default_coupling if coupling is None else coupling
        self.coupling_options = dict(coupling_options)
        if type(self).path is not Method.path:
            self.matcher_for(self.sigma)  # fail now on bad coupling options

    # -- what the method is -----------------------------------------------------------------

    @property
    def sigma(self) -> float:
        """σ as given, else the method's default (``default_sigma``)."""
        return self.default_sigma if self.sigma_given is None else self.sigma_given

    @property
    def needs_score(self) -> bool:
        """Whether the model has a score head."""
        return "s" in self.heads

    def path(self, sigma: float) -> ProbabilityPath:
        """The conditional path for σ in the units of the data it is sampled on."""
        raise NotImplementedError(f"method {self.name!r} does not define a path.")

    def solver_options(self, sigma: float) -> dict[str, Any]:
        """Options of the coupling solver for σ (e.g. the entropic ``reg = 2σ²``)."""
        return dict(self.coupling_options)

    def matcher_for(self, sigma: float, *, coupled: bool = True) -> Matcher:
        """The :class:`~sbflow.matching.Matcher` of one interval (σ in its units).

        ``coupled=False`` keeps the rows as they come (for pair sources that pair them).
        """
        if not coupled:
            return Matcher(None, self.path(sigma))
        return Matcher(self.coupling, self.path(sigma), **self.solver_options(sigma))

    @property
    def matcher(self) -> Matcher:
        """The matcher at :attr:`sigma`, on data in σ's units."""
        return self.matcher_for(self.sigma)

    def loss(self, model: Callable[..., Any], sample: PathSample) -> torch.Tensor:
        """Bridge loss (velocity + score) with a score head, else the flow-matching loss.

        Example:
            >>> from sbflow.methods import get_method
            >>> m = get_method("i-cfm")
            >>> s = m.matcher.sample(torch.zeros(4, 2), torch.ones(4, 2))
            >>> m.loss(lambda x, t: torch.ones_like(x), s).item()
            0.0
        """
        from sbflow.losses import bridge_loss, flow_matching_loss

        return bridge_loss(model, sample) if self.needs_score else flow_matching_loss(model, sample)

    def default_model(
        self, features: int, feature_shape: Sequence[int]
    ) -> tuple[str, dict[str, Any]] | None:
        """``(registered model name, config)`` built when ``fit`` gets no model.

        ``None`` for methods without a network to train (``fit`` then passes ``model=None``
        to :meth:`train`).

        Example:
            >>> from sbflow.methods import get_method
            >>> get_method("ot-cfm").default_model(2, (2,))
            ('time-mlp', {'dim': 2})
        """
        return ("flow-score-mlp" if self.needs_score else "time-mlp"), {"dim": features}

    def default_width(self, features: int) -> int:
        """Width of the default MLP when ``fit`` gets ``hidden=None`` (64 unless overridden).

        Example:
            >>> from sbflow.methods import get_method
            >>> get_method("ot-cfm").default_width(100)
            64
        """
        return 64

    def resolve_sigma(self, data_scale: float, span: float) -> float:
        """σ in data units per unit time for data of pooled scale ``data_scale`` over ``span``.

        A given σ is kept. The default is relative: ``default_sigma · data_scale / √span``,
        so that the reference Brownian motion spreads by ``default_sigma`` data scales over
        the fitted time range (whatever the units).

        Example:
            >>> from sbflow.methods import get_method
            >>> get_method("sb-cfm").resolve_sigma(10.0, 4.0)
            2.5
        """
        if self.sigma_given is not None or self.sigma_units == "none":
            return self.sigma
        return self.default_sigma * data_scale / math.sqrt(span)

    def describe(self) -> dict[str, Any]:
        """Name, σ and coupling as JSON-like values (run metadata, saved files).

        Example:
            >>> from sbflow.methods import get_method
            >>> get_method("ot-cfm").describe()["coupling"]
            'exact'
        """
        coupling = self.coupling
        if not (coupling is None or isinstance(coupling, str)):
            describe = getattr(coupling, "describe", None)
            coupling = describe() if callable(describe) else type(coupling).__name__
        return {
            "name": self.name,
            "sigma": self.sigma_given,
            "coupling": coupling,
            "coupling_options": dict(self.coupling_options),
        }

    # -- how it trains ------------------------------------------------------------------------

    def pair_sources(self, problem: Problem, round: int, previous: nn.Module | None) -> list[Any]:
        """One :class:`~sbflow.pairs.PairSource` per interval for training round ``round``.

        The default pairs consecutive sets: given pairs when ``problem.paired``, else
        independent batches that the method's coupling then pairs. An iterative method
        overrides this to return :class:`~sbflow.pairs.GeneratedPairs` from ``previous``
        (the last round's field, called on flat rows in training units) when ``round > 0``.
        """
        from sbflow.pairs import GivenPairs, IndependentPairs

        out = []
        for k in range(len(problem.sets) - 1):
            a, b = problem.sets[k], problem.sets[k + 1]
            if problem.paired:
                out.append(GivenPairs(a.data, b.data))
            else:
                out.append(IndependentPairs(problem.sampler(k), problem.sampler(k + 1)))
        return out

    def train(
        self, problem: Problem, model: nn.Module | None, run: Any
    ) -> tuple[nn.Module, list[tuple[int, float]]]:
        """Train ``model`` on ``problem``; return the field for the bridge and the history.

        The default runs :attr:`rounds` rounds of the :class:`~sbflow.training.Trainer`,
        warm-started from the previous round's EMA weights. A closed-form method overrides
        this and returns its own (registered) module.
        """
        from sbflow.methods._training import train_rounds

        return train_rounds(self, problem, model, run)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(sigma={self.sigma:g}, coupling={self.coupling!r})"
