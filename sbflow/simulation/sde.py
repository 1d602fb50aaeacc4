r"""Simulate a learned Schrödinger bridge as an SDE with torchsde.

Conventions (project-wide). A bridge model gives the probability-flow velocity
:math:`v(x, t)` of the marginals :math:`p_t` (what flow matching on a Brownian-bridge path
learns) and the *raw* score :math:`s(x, t) = \nabla_x \log p_t(x)`. For any diffusion
coefficient :math:`g(t) \ge 0` (it may differ from the training :math:`\sigma`),

* forward, :math:`t: 0 \to 1`:

  .. math:: dx = \Big[v(x, t) + \tfrac{g(t)^2}{2}\, s(x, t)\Big]\, dt + g(t)\, dW_t ;

* backward, from :math:`t = 1` down to :math:`t = 0`, written in the reversed time
  :math:`\tau = 1 - t` (so :math:`\tau: 0 \to 1`):

  .. math:: dx = \Big[-v(x, 1-\tau) + \tfrac{g^2}{2}\, s(x, 1-\tau)\Big]\, d\tau + g\, dW_\tau .

Both have the marginals :math:`p_t`: with drift :math:`f = v + \tfrac{g^2}{2} s`, the
Fokker–Planck equation :math:`\partial_t p = -\nabla\cdot(p f) + \tfrac{g^2}{2}\Delta p =
-\nabla\cdot(p v)` because :math:`p\, s = \nabla p`; the backward drift is Anderson's
time reversal :math:`-(f - g^2 s) = -v + \tfrac{g^2}{2} s`. With :math:`g = 0` both reduce
to the probability-flow ODE :math:`dx = v\, dt` (then ``score`` may be ``None``).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torchsde

from sbflow._checks import as_samples
from sbflow.simulation._common import CountingField, resolve_times

__all__ = ["SDE_METHODS", "BridgeSDE", "SDEResult", "integrate_sde"]

#: torchsde Itô methods accepted by :func:`integrate_sde`.
SDE_METHODS = ("euler", "milstein", "srk")

Field = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Diffusion = float | Callable[[torch.Tensor], Any]


@dataclass
class SDEResult:
    """Result of :func:`integrate_sde`.

    Attributes:
        x: States at the last time, shape ``(n, *dims)``.
        trajectory: States at every entry of ``times``, shape ``(len(times), n, *dims)``, or
            ``None`` when no ``times`` were requested.
        times: Output times (in bridge time ``t``), in integration order.
        nfe: Number of calls of the velocity field.

    Example:
        >>> import torch
        >>> zero = lambda x, t: torch.zeros_like(x)
        >>> res = integrate_sde(zero, zero, torch.zeros(4, 2), times=[1.0, 0.5, 0.0], steps=10,
        ...                     direction="backward")
        >>> res.trajectory.shape, res.times.tolist()
        (torch.Size([3, 4, 2]), [1.0, 0.5, 0.0])
    """

    x: torch.Tensor
    trajectory: torch.Tensor | None
    times: torch.Tensor
    nfe: int = 0


class BridgeSDE(torch.nn.Module):
    r"""torchsde wrapper of the bridge SDE (diagonal noise, Itô) in the solver's time.

    The solver time is :math:`t` for ``direction="forward"`` and :math:`\tau = 1 - t` for
    ``"backward"``; the drift is :math:`\pm v + \tfrac{g^2}{2} s` (see the module docstring)
    and the diffusion :math:`g(t)` on every coordinate. States are flat ``(n, D)`` for
    torchsde and reshaped to ``shape`` before the fields are called.

    Args:
        velocity: ``velocity(x, t)`` with ``x`` ``(n, *dims)``, ``t`` ``(n,)``.
        score: ``score(x, t)`` (raw score), or ``None`` when ``g`` is zero.
        g: Diffusion coefficient, a number ``>= 0`` or a callable of the time ``t`` (0-d
            tensor) returning a number.
        shape: Sample shape ``(n, *dims)``.
        direction: ``"forward"`` or ``"backward"``.

    Example:
        >>> import torch
        >>> v, s = (lambda x, t: torch.ones_like(x)), (lambda x, t: -x)
        >>> sde = BridgeSDE(v, s, 2.0, torch.Size([1, 2]), direction="backward")
        >>> y = torch.ones(1, 2)  # backward drift: −v + (g²/2) s = −1 + 2 · (−1)
        >>> sde.f(torch.tensor(0.0), y).tolist(), sde.g(torch.tensor(0.0), y).tolist()
        ([[-3.0, -3.0]], [[2.0, 2.0]])
    """

    noise_type = "diagonal"
    sde_type = "ito"

    def __init__(
        self,
        velocity: Field,
        score: Field | None,
        g: Diffusion,
        shape: torch.Size,
        direction: str = "forward",
    ) -> None:
        super().__init__()
        if direction not in ("forward", "backward"):
            raise ValueError(f"direction must be 'forward' or 'backward'; got {direction!r}.")
        if callable(g):
            if score is None:
                raise ValueError(
                    "score is None but g is a function of time: a score model is needed "
                    "unless g == 0 (pass g=0.0 for the probability-flow ODE)."
                )
        else:
            try:
                g = float(g)
            except (TypeError, ValueError) as err:
                raise TypeError(f"g must be a number >= 0 or a callable g(t); got {g!r}.") from err
            if not g >= 0.0 or g == float("inf"):
                raise ValueError(f"g must be a finite number >= 0; got {g!r}.")
            if score is None and g != 0.0:
                raise ValueError(
                    f"score is None but g = {g}: simulating an SDE needs the score "
                    f"∇log p_t(x). Pass a score model, or g=0.0 for the probability-flow ODE."
                )
        self.velocity = CountingField(velocity, shape)
        self.score = CountingField(score, shape) if score is not None else None
        self.g_spec = g
        self.shape = shape
        self.sign = 1.0 if direction == "forward" else -1.0

    def bridge_time(self, s: torch.Tensor) -> torch.Tensor:
        """Map the solver time to the bridge time ``t``."""
        return s if self.sign > 0 else 1.0 - s

    def diffusion(self, t: torch.Tensor) -> torch.Tensor:
        """``g(t)`` as a 0-d tensor."""
        value = self.g_spec(t) if callable(self.g_spec) else self.g_spec
        out = torch.as_tensor(value, dtype=t.dtype, device=t.device)
        if out.dim() != 0:
            raise ValueError(f"g(t) must return a scalar; got shape {tuple(out.shape)}.")
        if not bool(out >= 0):
            raise ValueError(f"g(t) must be >= 0; got {float(out)} at t = {float(t)}.")
        return out

    def f(self, s: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Drift in the solver time: ``±v + (g²/2)·score`` on flat states."""
        t = self.bridge_time(torch.as_tensor(s, dtype=y.dtype, device=y.device))
        drift = self.sign * self.velocity(y, t)
        g = self.diffusion(t)
        if self.score is not None and bool(g != 0):
            drift = drift + 0.5 * g**2 * self.score(y, t)
        return drift.reshape(y.shape)

    def g(self, s: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Diagonal diffusion ``g(t)`` on every coordinate."""
        t = self.bridge_time(torch.as_tensor(s, dtype=y.dtype, device=y.device))
        return self.diffusion(t).expand(y.shape)


def integrate_sde(
    velocity: Field,
    score: Field | None,
    x: Any,
    *,
    g: Diffusion = 1.0,
    times: Any = None,
    steps: int = 100,
    direction: str = "forward",
    method: str = "euler",
    generator: torch.Generator | None = None,
    grad: bool = False,
) -> SDEResult:
    r"""Simulate the bridge SDE :math:`dx = [\pm v + \tfrac{g^2}{2} s]\,dt + g\,dW`.

    See the module docstring for the drift conventions. The Brownian path is a
    ``torchsde.BrownianInterval`` whose entropy is drawn from ``generator``, so a seeded
    generator reproduces the same paths.

    Args:
        velocity: Probability-flow velocity ``velocity(x, t)``; ``x`` ``(n, *dims)``, ``t``
            ``(n,)``.
        score: Raw score ``score(x, t)`` of the marginals, or ``None`` when ``g == 0``.
        x: Initial states ``(n, *dims)`` at the first time (``t = 0`` forward, ``t = 1``
            backward by default).
        g: Diffusion coefficient: a number ``>= 0`` or a callable ``g(t)`` of the bridge time
            (a 0-d tensor) returning a number. ``0`` gives the probability-flow ODE.
        times: Output times in ``[0, 1]``, strictly monotone; visited ascending forward and
            descending backward. ``None`` integrates the whole interval, no trajectory.
        steps: Number of equal solver steps over the whole span (split over the output
            segments so that every output time is hit exactly).
        direction: ``"forward"`` (0 → 1) or ``"backward"`` (1 → 0).
        method: torchsde Itô method: ``"euler"`` (Euler–Maruyama), ``"milstein"``, ``"srk"``.
        generator: Seeds the Brownian motion; ``None`` uses torch's global generator.
        grad: Keep the autograd graph. By default the solve runs under ``torch.no_grad()``.

    Returns:
        An :class:`SDEResult` (end states, trajectory at ``times``, times, velocity calls).

    Example:
        >>> import torch
        >>> zero = lambda x, t: torch.zeros_like(x)
        >>> gen = torch.Generator().manual_seed(0)
        >>> res = integrate_sde(zero, zero, torch.zeros(2000, 1), g=1.0, generator=gen)
        >>> abs(float(res.x.var()) - 1.0) < 0.1
        True
    """
    x = as_samples(x, "x")
    if direction not in ("forward", "backward"):
        raise ValueError(f"direction must be 'forward' or 'backward'; got {direction!r}.")
    if method not in SDE_METHODS:
        raise ValueError(f"unknown SDE method {method!r}; choose one of {SDE_METHODS}.")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer; got {steps!r}.")
    grid = resolve_times(times, direction == "backward", like=x)
    sde = BridgeSDE(velocity, score, g, x.shape, direction)
    solver_grid = grid if direction == "forward" else 1.0 - grid  # increasing
    span = float(solver_grid[-1] - solver_grid[0])

    gen_device = generator.device if generator is not None else torch.device("cpu")
    entropy = int(torch.randint(0, 2**31 - 1, (1,), generator=generator, device=gen_device))
    n = x.shape[0]
    flat = x.reshape(n, -1)
    bm = torchsde.BrownianInterval(
        t0=float(solver_grid[0]),
        t1=float(solver_grid[-1]),
        size=flat.shape,
        dtype=x.dtype,
        device=x.device,
        entropy=entropy,
        dt=span / steps,
        levy_area_approximation="space-time" if method == "srk" else "none",
    )
    states = [flat]
    with torch.set_grad_enabled(grad and torch.is_grad_enabled()):
        y = flat
        for a, b in itertools.pairwise(solver_grid):
            n_seg = max(1, round(steps * float(b - a) / span))
            # A hair above the nominal step, so the last step lands on b (torchsde clamps
            # to the final time) instead of leaving a rounding-error-sized extra step.
            dt = float(b - a) / n_seg * (1.0 + 1e-6)
            ts = torch.stack([a, b]).detach()
            y = torchsde.sdeint(sde, y, ts, bm=bm, method=method, dt=dt)[-1]
            states.append(y)
    traj = torch.stack(states).reshape(len(states), *x.shape)
    return SDEResult(
        x=traj[-1],
        trajectory=traj if times is not None else None,
        times=grid,
        nfe=sde.velocity.nfe,
    )
