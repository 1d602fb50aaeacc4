r"""Integrate a learned velocity field :math:`\dot x = v(x, t)` with torchdiffeq.

A flow-matching model ``velocity(x, t)`` defines the ODE

.. math:: \frac{dx}{dt} = v(x, t), \qquad t \in [0, 1],

which pushes samples of the source (t = 0) to the target (t = 1). For a bridge trained
with noise (SB-CFM, [SF]2M) ``v`` is the *probability-flow* velocity of the marginals, and
this ODE is the ``g = 0`` member of the SDE family in :mod:`sbflow.simulation.sde`.

``velocity`` is always called with ``x`` of shape ``(n, *dims)`` and ``t`` of shape ``(n,)``
(the solver's scalar time broadcast to every sample), the model convention of sbflow.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torchdiffeq import odeint

from sbflow._checks import as_samples
from sbflow.simulation._common import CountingField, resolve_times, uniform_grid_with

__all__ = ["ADAPTIVE_METHODS", "FIXED_STEP_METHODS", "ODEResult", "integrate_ode"]

#: torchdiffeq methods with a fixed step (need ``steps``).
FIXED_STEP_METHODS = (
    "euler",
    "midpoint",
    "heun2",
    "heun3",
    "rk4",
    "explicit_adams",
    "implicit_adams",
    "fixed_adams",
)
#: torchdiffeq methods with adaptive step size control (use ``atol``/``rtol``).
ADAPTIVE_METHODS = ("dopri5", "dopri8", "bosh3", "fehlberg2", "adaptive_heun")


@dataclass
class ODEResult:
    """Result of :func:`integrate_ode`.

    Attributes:
        x: States at the last time, shape ``(n, *dims)``.
        trajectory: States at every entry of ``times``, shape ``(len(times), n, *dims)``, or
            ``None`` when no ``times`` were requested.
        times: Output times in integration order (``[0, 1]`` or ``[1, 0]`` by default).
        nfe: Number of calls of the user's velocity field.

    Example:
        >>> import torch
        >>> res = integrate_ode(lambda x, t: -x, torch.ones(3, 2), [0.0, 0.5, 1.0])
        >>> res.trajectory.shape, res.times.tolist()
        (torch.Size([3, 3, 2]), [0.0, 0.5, 1.0])
    """

    x: torch.Tensor
    trajectory: torch.Tensor | None
    times: torch.Tensor
    nfe: int


def _check_method(method: str, steps: int | None) -> dict[str, Any]:
    """Validate an ODE method / step count pair and return torchdiffeq options (private use)."""
    if method in FIXED_STEP_METHODS:
        if steps is None:
            raise ValueError(
                f"method={method!r} is a fixed-step solver: pass steps=<number of steps>, "
                f"e.g. steps=100, or use an adaptive method such as 'dopri5'."
            )
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be a positive integer; got {steps!r}.")
        return {"steps": steps}
    if method in ADAPTIVE_METHODS:
        if steps is not None:
            raise ValueError(
                f"steps={steps} only applies to fixed-step methods {FIXED_STEP_METHODS}; "
                f"method={method!r} chooses its own steps from atol/rtol."
            )
        return {}
    raise ValueError(
        f"unknown ODE method {method!r}; choose one of {FIXED_STEP_METHODS + ADAPTIVE_METHODS}."
    )


def _solver_options(method: str, steps: int | None, grid: torch.Tensor) -> dict[str, Any]:
    """torchdiffeq ``options`` so that the solver steps onto every output time exactly.

    Adaptive solvers otherwise step past the last time and interpolate back, evaluating
    the field at times outside ``[0, 1]``, where a model or closed form may be undefined.
    """
    _check_method(method, steps)
    if steps is None:
        return {"step_t": grid}

    def grid(_func: Any, _y0: Any, t: torch.Tensor) -> torch.Tensor:
        return uniform_grid_with(t, steps)

    return {"grid_constructor": grid}


def integrate_ode(
    velocity: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x0: Any,
    times: Any = None,
    *,
    method: str = "dopri5",
    atol: float = 1e-5,
    rtol: float = 1e-5,
    steps: int | None = None,
    reverse: bool = False,
    grad: bool = False,
) -> ODEResult:
    r"""Integrate :math:`dx/dt = v(x, t)` from ``x0`` over ``[0, 1]`` (or back from 1 to 0).

    Args:
        velocity: Field called as ``velocity(x, t)`` with ``x`` of shape ``(n, *dims)`` and
            ``t`` of shape ``(n,)``; returns a tensor shaped like ``x``.
        x0: Initial states ``(n, *dims)`` (tensor or NumPy array) at the first time.
        times: Output times in ``[0, 1]`` (strictly monotone). They are visited in
            integration order: ascending, or descending when ``reverse=True``; the result's
            ``trajectory[k]`` is the state at ``result.times[k]``. ``None`` integrates over
            the whole interval and returns no trajectory.
        method: A torchdiffeq method: adaptive (``"dopri5"``, ``"dopri8"``, ``"bosh3"``, ...)
            or fixed-step (``"euler"``, ``"midpoint"``, ``"rk4"``, ...).
        atol: Absolute tolerance of adaptive methods.
        rtol: Relative tolerance of adaptive methods.
        steps: Number of equal steps over the whole span for fixed-step methods (the output
            times are added to the grid, so they are hit exactly). Required for them, and
            not allowed for adaptive methods.
        reverse: Integrate from ``t = 1`` down to ``t = 0`` (``x0`` is then the state at 1).
        grad: Keep the autograd graph (e.g. to backpropagate through the solve). By default
            the solve runs under ``torch.no_grad()``.

    Returns:
        An :class:`ODEResult` with end points, optional trajectory, times and the number of
        velocity evaluations.

    Example:
        >>> import math, torch
        >>> res = integrate_ode(lambda x, t: -x, torch.ones(4, 2))  # x(1) = x(0) e^{-1}
        >>> torch.allclose(res.x, torch.full((4, 2), math.exp(-1)), atol=1e-5)
        True
        >>> rk4 = integrate_ode(lambda x, t: -x, torch.ones(4, 2), method="rk4", steps=10)
        >>> rk4.nfe  # four velocity calls per step
        40
    """
    x0 = as_samples(x0, "x0")
    grid = resolve_times(times, reverse, like=x0)
    opts = _solver_options(method, steps, grid)
    field = CountingField(velocity, x0.shape)

    def rhs(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return field(x, t)

    with torch.set_grad_enabled(grad and torch.is_grad_enabled()):
        traj = odeint(rhs, x0, grid, rtol=rtol, atol=atol, method=method, options=opts)
    return ODEResult(
        x=traj[-1],
        trajectory=traj if times is not None else None,
        times=grid,
        nfe=field.nfe,
    )
