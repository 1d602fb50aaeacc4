r"""Iterative Markovian fitting (IMF / DSBM): the Schrödinger bridge as a fixed point.

Shi, De Bortoli, Campbell & Doucet, *Diffusion Schrödinger Bridge Matching* (NeurIPS 2023);
Peluchetti, *Diffusion bridge mixture transports* (JMLR 2023). Two projections alternate,
starting from a coupling :math:`\Pi^0` of the two sets (the SB-CFM entropic minibatch plan
by default, ``coupling="exact"`` for OT-CFM's, ``"independent"``):

1. **Markovian projection** — bridge matching on the current pairs: on Brownian bridges
   :math:`x_t = (1 - t) x_0 + t x_1 + \sigma\sqrt{t(1 - t)}\, z` regress the forward drift
   :math:`f(x_t, t)` on :math:`(x_1 - x_t)/(1 - t)`, or the backward drift :math:`b(x_t, t)`
   (the drift of the reversed SDE) on :math:`(x_0 - x_t)/t`. The regression optimum
   :math:`E[(x_1 - x_t)/(1 - t) \mid x_t]` is the Markov drift with every time marginal of the
   bridge mixture.
2. **Reciprocal projection** — new pairs from the SDE just learned: :math:`(x_0, \hat x_1)`
   with :math:`x_0 \sim p_0` and :math:`dX = f\,dt + \sigma\,dW`, or :math:`(\hat x_0, x_1)`
   with :math:`x_1 \sim p_1` run backward with :math:`b`.

Round 0 fits both drifts on :math:`\Pi^0`; then the rounds alternate (DSBM): odd rounds fit
:math:`b` on pairs simulated forward with :math:`f` from fresh :math:`p_0` samples, even
rounds fit :math:`f` on pairs simulated backward with :math:`b` from fresh :math:`p_1`
samples, so each direction starts from a true marginal. Every round warm-starts from the
EMA weights of the previous fit of the same network. The iterates converge to the
Schrödinger bridge of :math:`dX = \sigma\,dW`.

Targets from a Brownian-bridge :class:`~sbflow.paths.PathSample` (``ut`` the probability-flow
target, ``score`` the bridge's score): :math:`f^* = u_t + \tfrac{\sigma^2}{2}\,\mathrm{score}`
and :math:`b^* = -u_t + \tfrac{\sigma^2}{2}\,\mathrm{score}` — equal to the two formulas above,
and still right after the per-interval time rescaling of several snapshots. The fitted
bridge is a :class:`~sbflow.bridge.DriftPair` (``v = (f − b)/2``, ``s = (f + b)/σ²``), so its
SDE forward has drift ``f`` and backward ``b``.

Cost: ``(rounds − 1 + round0_factor) × steps`` optimiser steps (round 0 trains two
networks) plus, per round after the first, one simulation of ``pool`` pairs with
``sim_steps`` Euler–Maruyama steps.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sbflow.methods._training import Shaped, round_batches
from sbflow.methods.base import Problem
from sbflow.methods.registry import register
from sbflow.methods.sb_cfm import SBCFM
from sbflow.pairs import GivenPairs, PairSource
from sbflow.paths import BrownianBridgePath, PathSample, ProbabilityPath

__all__ = ["IMF", "RoundReport", "drift_matching_loss", "drift_targets", "simulate_drift"]

_DIRECTIONS = ("forward", "backward")


def drift_targets(sample: PathSample, sigma: float) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Forward and backward drift targets of a Brownian-bridge path sample.

    :math:`f^* = (x_1 - x_t)/(1 - t) = u_t + \tfrac{\sigma^2}{2}\,\mathrm{score}` and
    :math:`b^* = (x_0 - x_t)/t = -u_t + \tfrac{\sigma^2}{2}\,\mathrm{score}`, where ``ut`` and
    ``score`` are the sample's probability-flow and score targets. Written through them, the
    targets stay right after :class:`~sbflow.training.batches.PathBatches` maps an interval's
    local time to the global one (``ut`` is divided by the interval's width, the score is
    unchanged, and ``sigma`` is then the global σ per unit time).

    Args:
        sample: A sample of :class:`~sbflow.paths.BrownianBridgePath` with σ = ``sigma``.
        sigma: σ of the reference Brownian motion, in the sample's units.

    Returns:
        ``(forward, backward)`` targets, each shaped like ``sample.xt``.

    Raises:
        ValueError: If the sample has no score (not a noisy path).

    Example:
        >>> s = BrownianBridgePath(0.5).sample(torch.zeros(3, 1), torch.ones(3, 1), t=0.25)
        >>> f, b = drift_targets(s, 0.5)
        >>> torch.allclose(f, (s.x1 - s.xt) / 0.75), torch.allclose(b, (s.x0 - s.xt) / 0.25)
        (True, True)
    """
    if sample.score is None:
        raise ValueError(
            "drift targets need a Brownian-bridge sample (with a score); sample the path "
            "with BrownianBridgePath(sigma)."
        )
    half = 0.5 * float(sigma) ** 2 * sample.score
    return sample.ut + half, half - sample.ut


def drift_matching_loss(
    model: Callable[..., Any],
    sample: PathSample,
    sigma: float,
    directions: Sequence[str] = _DIRECTIONS,
    *,
    local_time: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""Bridge-matching loss of drift networks: ``Σ_d mean w_d (d_θ(x_t, t) − d^*)²``.

    Without ``local_time`` every row weighs 1. With it (``s ∈ [0, 1]`` along each row's
    interval), the forward error is weighted by ``1 − s`` and the backward one by ``s``: the
    targets' noise variance ``σ² s/(1 − s)`` (forward) and ``σ² (1 − s)/s`` (backward) then
    stays bounded near the ends, and the regression optimum is unchanged.

    Args:
        model: ``model(x, t)`` returning one drift per entry of ``directions`` (a tuple, or
            a tensor for a single direction).
        sample: A Brownian-bridge :class:`~sbflow.paths.PathSample`.
        sigma: σ of the bridge in the sample's units.
        directions: Which drifts the model returns, in order: ``"forward"``, ``"backward"``.
        local_time: ``(n,)`` time of each row within its interval, for the weights.

    Example:
        >>> s = BrownianBridgePath(1.0).sample(torch.zeros(4, 2), torch.ones(4, 2), t=0.5)
        >>> exact = lambda x, t: ((s.x1 - x) / 0.5, (s.x0 - x) / 0.5)
        >>> round(drift_matching_loss(exact, s, 1.0).item(), 6)
        0.0
    """
    out = model(sample.xt, sample.t)
    outs = out if isinstance(out, (tuple, list)) else (out,)
    if len(outs) != len(directions):
        raise ValueError(f"the model returned {len(outs)} drifts for directions {directions}.")
    forward, backward = drift_targets(sample, sigma)
    loss = sample.xt.new_zeros(())
    for d, pred in zip(directions, outs):
        target = forward if d == "forward" else backward
        if pred.shape != target.shape:
            raise ValueError(
                f"the {d} drift has shape {tuple(pred.shape)}; expected {tuple(target.shape)}."
            )
        err = (pred - target).pow(2)
        if local_time is not None:
            w = (1.0 - local_time) if d == "forward" else local_time
            err = err * w.reshape(-1, *([1] * (err.dim() - 1))).to(err)
        loss = loss + err.mean()
    return loss


def simulate_drift(
    drift: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    sigma: float,
    *,
    start: float = 0.0,
    end: float = 1.0,
    steps: int = 100,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""Euler–Maruyama end states of ``dX = drift(X, t) dt + σ dW`` from ``start`` to ``end``.

    With ``end < start`` the SDE runs backward: ``drift`` is then the backward drift
    :math:`b`, evaluated at the forward time, of the reversed process
    :math:`dX = b(X, t)\,d\tau + \sigma\,dW_\tau` in :math:`\tau = 1 - t`. One drift call per
    step (the project's SDE simulator :func:`~sbflow.simulation.integrate_sde` with no score).

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> y = simulate_drift(lambda x, t: torch.ones_like(x), torch.zeros(4000, 1), 0.5,
        ...                    steps=10, generator=g)
        >>> round(y.mean().item(), 1), round(y.std().item(), 1)
        (1.0, 0.5)
    """
    from sbflow.simulation import integrate_sde

    backward = end < start
    zero = lambda z, t: torch.zeros_like(z)  # noqa: E731 - no score: the drift is given whole
    velocity = (lambda z, t: -drift(z, t)) if backward else drift  # backward: −v + 0 = b
    return integrate_sde(
        velocity,
        zero,
        x,
        g=float(sigma),
        times=[start, end],
        steps=steps,
        direction="backward" if backward else "forward",
        generator=generator,
    ).x


@dataclass
class RoundReport:
    """What one IMF round did (handed to ``on_round``).

    Attributes:
        round: Round index (0: the initial coupling).
        direction: ``"both"``, ``"forward"`` or ``"backward"``: the drift(s) fitted.
        loss: Mean loss of the round's last log row.
        seconds: Wall time of the round (simulation and training).
        field: The current :class:`~sbflow.bridge.DriftPair` (training units: standardised
            data, time ``τ ∈ [0, 1]``; with ``normalise=False`` and times ``[0, 1]`` these are
            the data's units).

    Example:
        >>> RoundReport(1, "backward", 0.5, 2.0, None).direction
        'backward'
    """

    round: int
    direction: str
    loss: float
    seconds: float
    field: Any


class _Drifts(nn.Module):
    """The drift networks trained in a round, called together: ``(d_1(x, t), …)``."""

    def __init__(self, nets: Sequence[nn.Module]) -> None:
        super().__init__()
        self.nets = nn.ModuleList(nets)

    def forward(self, x: torch.Tensor, t: Any) -> tuple[torch.Tensor, ...]:
        return tuple(net(x, t) for net in self.nets)


class _SimulatedPairs(PairSource):
    """Pairs simulated once per round (a pool), then drawn like matched samples.

    Simulating at every training step would cost ``sim_steps`` network calls per pair and
    step; a pool costs them once per round. The pool is a pure function of its generator's
    seed and the network, so a resumed round rebuilds the same one.
    """

    def __init__(self, make: Callable[[], tuple[torch.Tensor, torch.Tensor]]) -> None:
        self._make = make
        self._given: GivenPairs | None = None
        self._lock = threading.Lock()

    def fill(self) -> None:
        with self._lock:
            if self._given is None:
                self._given = GivenPairs(*self._make())

    def draw(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        self.fill()
        assert self._given is not None
        return self._given.draw(n, generator)


def _count(value: Any, name: str, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ValueError(f"{name} must be an integer ≥ {least}; got {value!r}.")
    return value


@register
class IMF(SBCFM):
    """Iterative Markovian fitting / DSBM (see the module docstring).

    Args:
        sigma: σ in data units per unit time (> 0; default ``0.5 · s_data/√T`` as SB-CFM).
        coupling: Initial coupling :math:`\\Pi^0`: ``"sinkhorn"`` (SB-CFM's entropic plan,
            ``reg = 2σ²``, default), ``"exact"`` (OT-CFM), ``"independent"``, or a solver.
        rounds: Markovian projections: round 0 fits both drifts on the coupling, each later
            round one drift on simulated pairs (about 10 in published runs).
        round0_factor: Round 0 runs this many times ``fit``'s ``steps`` (≥ 1): everything
            after it refines what it learned, and it is most of the final accuracy.
        sim_steps: Euler–Maruyama steps per simulated pair.
        pool: Pairs simulated per round, at most (a round draws ``steps × batch_size``
            pairs; the pool never exceeds that).
        t_margin: Training times are uniform on ``[t_margin, 1 − t_margin]``: the forward
            target's noise variance ``σ² t/(1 − t)`` diverges at ``t = 1`` (the backward one
            at ``t = 0``).
        weighting: ``"none"`` or ``"time"``: weigh the forward error by ``1 − t`` and the
            backward one by ``t`` (see :func:`drift_matching_loss`).
        on_round: ``on_round(report)`` after every round with a :class:`RoundReport` (e.g. to
            score the bridge per round); raise :class:`~sbflow.training.StopTraining` to end
            after this round.
        **coupling_options: Options of the coupling solver.

    Example:
        >>> m = IMF(sigma=0.5, rounds=3)
        >>> m.round_direction(0), m.round_direction(1), m.round_direction(2)
        ('both', 'backward', 'forward')
        >>> m.matcher.solver.reg, m.simulation
        (0.5, 'sde')
    """

    name = "imf"
    description = "iterative Markovian fitting (DSBM): bridge matching on simulated pairs"
    rounds = 6

    def __init__(
        self,
        sigma: float | None = None,
        coupling: Any = None,
        *,
        rounds: int = 6,
        round0_factor: float = 2.0,
        sim_steps: int = 100,
        pool: int = 10_000,
        t_margin: float = 1e-3,
        on_round: Callable[[RoundReport], None] | None = None,
        weighting: str = "none",
        **coupling_options: Any,
    ) -> None:
        if weighting not in ("none", "time"):
            raise ValueError(f"weighting must be 'none' or 'time'; got {weighting!r}.")
        self.weighting = weighting
        self.rounds = _count(rounds, "rounds", 1)
        if isinstance(round0_factor, bool) or not isinstance(round0_factor, (int, float)):
            raise TypeError(f"round0_factor must be a number ≥ 1; got {round0_factor!r}.")
        if not 1.0 <= round0_factor < math.inf:
            raise ValueError(f"round0_factor must be a finite number ≥ 1; got {round0_factor!r}.")
        self.round0_factor = float(round0_factor)
        self.sim_steps = _count(sim_steps, "sim_steps", 1)
        self.pool = _count(pool, "pool", 2)
        try:
            t_margin = float(t_margin)
        except (TypeError, ValueError) as err:
            raise TypeError(f"t_margin must be a number in (0, 0.5); got {t_margin!r}.") from err
        if not 0.0 < t_margin < 0.5:
            raise ValueError(f"t_margin must lie in (0, 0.5); got {t_margin!r}.")
        self.t_margin = t_margin
        if on_round is not None and not callable(on_round):
            raise TypeError("on_round must be a callable on_round(report) or None.")
        self.on_round = on_round
        super().__init__(sigma=sigma, coupling=coupling, **coupling_options)
        if self.sigma_given == 0:
            raise ValueError("imf needs sigma > 0 (the Brownian reference of the bridge).")

    def path(self, sigma: float) -> ProbabilityPath:
        return BrownianBridgePath(sigma, t_eps=self.t_margin)

    def round_direction(self, round: int) -> str:
        """The drift(s) fitted in ``round``: ``"both"`` (0), ``"backward"`` (odd), ``"forward"``."""
        if round == 0:
            return "both"
        return "backward" if round % 2 else "forward"

    def round_steps(self, steps: int, round: int) -> int:
        """Optimiser steps of ``round`` when ``fit`` asks for ``steps`` per round.

        Round 0 runs :attr:`round0_factor` times longer: both drifts start from scratch
        there, and every later round refines what it learned.

        Example:
            >>> IMF(round0_factor=2).round_steps(1000, 0), IMF().round_steps(1000, 3)
            (2000, 1000)
        """
        return math.ceil(steps * self.round0_factor) if round == 0 else steps

    def default_model(
        self, features: int, feature_shape: Sequence[int]
    ) -> tuple[str, dict[str, Any]] | None:
        """One drift network (``time-mlp``); the backward one is a copy of its architecture.

        Example:
            >>> IMF().default_model(2, (2,))
            ('time-mlp', {'dim': 2})
        """
        return "time-mlp", {"dim": features}

    def describe(self) -> dict[str, Any]:
        """:meth:`Method.describe` with the IMF settings (part of a run's resume key).

        Example:
            >>> IMF(rounds=4).describe()["rounds"]
            4
        """
        return {
            **super().describe(),
            "rounds": self.rounds,
            "round0_factor": self.round0_factor,
            "sim_steps": self.sim_steps,
            "pool": self.pool,
            "t_margin": self.t_margin,
            "weighting": self.weighting,
        }

    # -- training ---------------------------------------------------------------------------

    def pair_sources(
        self,
        problem: Problem,
        round: int,
        previous: nn.Module | None,
        *,
        rows: int | None = None,
    ) -> list[Any]:
        """Round 0: the sets' own pairs (coupled); later rounds: pools simulated by ``previous``.

        ``previous`` is the current :class:`~sbflow.bridge.DriftPair` (training units);
        ``rows`` the pool size (default :attr:`pool`).
        """
        rows = self.pool if rows is None else rows
        if round == 0:
            return super().pair_sources(problem, round, previous)
        if previous is None:
            raise ValueError("IMF rounds after the first need the previous round's drifts.")
        forward = self.round_direction(round) == "backward"  # b is fitted on forward pairs
        net = _drift_of(previous, "forward" if forward else "backward")
        shaped = Shaped(net, problem.feature_shape)
        sources: list[Any] = []
        for k in range(len(problem.sets) - 1):
            a, b = problem.taus[k], problem.taus[k + 1]
            start_set = k if forward else k + 1

            def make(k=k, a=a, b=b, start_set=start_set) -> tuple[torch.Tensor, torch.Tensor]:
                g = torch.Generator().manual_seed(_pool_seed(problem.seed, round, k))
                x = problem.sampler(start_set)(rows, g)
                param = next(net.parameters(), None)
                if param is not None:
                    x = x.to(device=param.device, dtype=param.dtype)
                with torch.no_grad():
                    y = simulate_drift(
                        shaped,
                        x,
                        previous.sigma,
                        start=a if forward else b,
                        end=b if forward else a,
                        steps=self.sim_steps,
                        generator=g,
                    )
                x, y = x.cpu(), y.cpu()
                return (x, y) if forward else (y, x)

            sources.append(_SimulatedPairs(make))
        return sources

    def train(
        self, problem: Problem, model: nn.Module | None, run: Any
    ) -> tuple[nn.Module, list[tuple[int, float]]]:
        """Fit the two drifts over :attr:`rounds` rounds; return the DriftPair and history.

        Checkpoints go to ``run_dir/round-<r>`` (the round and direction are in each
        checkpoint's run description); a resumed fit reloads the finished rounds, rebuilds
        the interrupted round's pairs from the same seed and continues it exactly.
        The history holds every round's rows (steps counted within each round).
        """
        from sbflow.training.distributed import is_main
        from sbflow.training.trainer import StopTraining, Trainer

        if not problem.sigma > 0:
            raise ValueError("imf needs sigma > 0 (the Brownian reference of the bridge).")
        pair = _drift_pair(problem, model).to(run.device)
        ctx = run.distributed
        history: list[tuple[int, float]] = []
        show = bool(getattr(run.config, "progress", False)) and is_main(ctx)
        for r in range(self.rounds):
            started = time.perf_counter()
            direction = self.round_direction(r)
            directions = _DIRECTIONS if direction == "both" else (direction,)
            nets = [_drift_of(pair, d) for d in directions]
            config = dataclasses.replace(run.config, steps=self.round_steps(run.config.steps, r))
            # A round draws at most steps × batch_size pairs: simulate no more than that.
            rows = min(self.pool, config.steps * problem.batch_size)
            sources = self.pair_sources(problem, r, pair if r else None, rows=rows)
            batches = round_batches(self, problem, sources, r, run)
            run_dir = None if run.run_dir is None else Path(run.run_dir) / f"round-{r}"
            trainer = Trainer(
                Shaped(_Drifts(nets), problem.feature_shape),
                _DriftLoss(
                    problem.sigma, directions, problem.taus if self.weighting == "time" else None
                ),
                batches,
                config,
                run_dir=run_dir,
                resume=run.resume,
                meta={**run.meta, "round": r, "direction": direction},
                callbacks=run.callbacks,
                device=run.device,
                distributed=ctx,
            )
            if trainer.step < config.steps:
                for src in sources:  # simulate here, not in a prefetch thread
                    if isinstance(src, _SimulatedPairs):
                        src.fill()
            trainer.train()
            history.extend(trainer.history)
            # Warm start: the next round (and the bridge) use the EMA weights.
            for net, ema_net in zip(nets, trainer.ema.model.net.nets):
                net.load_state_dict(ema_net.state_dict())
            report = RoundReport(
                r,
                direction,
                trainer.history[-1][1] if trainer.history else math.nan,
                time.perf_counter() - started,
                pair,
            )
            if show:
                print(
                    f"imf round {r + 1}/{self.rounds} ({direction}): loss {report.loss:.4g}, "
                    f"{report.seconds:.1f} s",
                    file=sys.stderr,
                    flush=True,
                )
            if self.on_round is not None:
                try:
                    self.on_round(report)
                except StopTraining:
                    break
        return pair, history


class _DriftLoss:
    """``loss(model, sample)`` of the Trainer: :func:`drift_matching_loss` at a fixed σ."""

    def __init__(
        self, sigma: float, directions: Sequence[str], taus: Sequence[float] | None = None
    ) -> None:
        self.sigma = float(sigma)
        self.directions = tuple(directions)
        self.taus = None if taus is None else torch.tensor(list(taus), dtype=torch.float64)

    def __call__(self, model: Callable[..., Any], sample: PathSample) -> torch.Tensor:
        local = None
        if self.taus is not None:
            t = sample.t.detach().double().cpu()
            k = torch.bucketize(t, self.taus[1:-1], right=True)
            local = ((t - self.taus[k]) / (self.taus[k + 1] - self.taus[k])).to(sample.t)
        return drift_matching_loss(model, sample, self.sigma, self.directions, local_time=local)


def _drift_of(pair: nn.Module, direction: str) -> nn.Module:
    return pair.forward_drift if direction == "forward" else pair.backward_drift


def _pool_seed(seed: int, round: int, interval: int) -> int:
    # Distinct from the per-step batch seeds (which the Trainer derives from seed + round).
    return (int(seed) * 1_000_003 + 7_919 * (round + 1) + interval) % (2**63 - 1)


def _drift_pair(problem: Problem, model: nn.Module | None) -> nn.Module:
    """A registered DriftPair whose forward drift is ``model`` and backward drift its twin."""
    from sbflow.models.registry import build_model, describe_model

    if model is None:
        raise ValueError("imf trains two drift networks: pass a model (fit builds the default).")
    name, config = describe_model(model)
    spec = {"name": name, "config": config}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(problem.seed) + 1)  # the backward drift's own initialisation
        pair = build_model("drift-pair", forward=spec, backward=spec, sigma=float(problem.sigma))
    pair.forward_drift.load_state_dict(model.state_dict())
    first = next(model.parameters(), None)
    if first is not None:
        pair = pair.to(device=first.device, dtype=first.dtype)
    for p in pair.parameters():
        p.requires_grad_(True)
    return pair
