r"""Exact and stochastic log-likelihoods of a continuous normalising flow.

The flow :math:`dx/dt = v(x, t)` pushes a base density :math:`p_0` (at t = 0) forward; the
density along a trajectory obeys :math:`\frac{d}{dt}\log p_t(x_t) = -\nabla\cdot v(x_t, t)`,
so

.. math:: \log p_1(x_1) = \log p_0(x_0) - \int_0^1 \nabla\cdot v(x_t, t)\, dt ,

where :math:`x_0` is found by integrating the ODE backwards from :math:`x_1`. We integrate
the augmented state :math:`(x, \Delta)` with :math:`d\Delta/dt = -\nabla\cdot v` from
:math:`t = 1` (:math:`\Delta = 0`) to :math:`t = 0`, so :math:`\Delta(0) = \int_0^1 \nabla\cdot
v\, dt` and :math:`\log p_1(x_1) = \log p_0(x_0) - \Delta(0)`.

The divergence is the exact trace of the Jacobian (one backward pass per dimension; fine
for small ``d``) or Hutchinson's estimate :math:`\mathbb{E}[\varepsilon^\top
(\partial v/\partial x)\, \varepsilon]` with Rademacher or Gaussian probes
:math:`\varepsilon` drawn once per solve (so the ODE stays deterministic) and averaged over
``n_probes``. The Hutchinson estimate is unbiased for the log-likelihood because the
trajectory does not depend on the probes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torchdiffeq import odeint

from sbflow._checks import as_samples
from sbflow.simulation._common import CountingField
from sbflow.simulation.ode import _solver_options

__all__ = ["divergence", "log_likelihood"]

Field = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def divergence(
    velocity: Field,
    x: torch.Tensor,
    t: torch.Tensor,
    *,
    probes: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Velocity and its divergence :math:`\nabla\cdot v(x, t)` per sample.

    Args:
        velocity: ``velocity(x, t)`` with ``x`` ``(n, *dims)`` and ``t`` ``(n,)``.
        x: States ``(n, *dims)``.
        t: Times ``(n,)``.
        probes: ``None`` for the exact trace, or Hutchinson probes ``(k, n, *dims)``; the
            estimate is the mean over the ``k`` probes of :math:`\varepsilon^\top J \varepsilon`.

    Returns:
        ``(v, div)``, with ``v`` detached, shaped like ``x``, and ``div`` of shape ``(n,)``.

    Example:
        >>> import torch
        >>> v, div = divergence(lambda x, t: 3.0 * x, torch.randn(4, 2), torch.zeros(4))
        >>> div.tolist()
        [6.0, 6.0, 6.0, 6.0]
    """
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        v = velocity(x, t)
        n = x.shape[0]
        vf = v.reshape(n, -1)
        if probes is None:
            div = torch.zeros(n, dtype=x.dtype, device=x.device)
            d = vf.shape[1]
            for i in range(d):
                (gi,) = torch.autograd.grad(vf[:, i].sum(), x, retain_graph=i < d - 1)
                div = div + gi.reshape(n, -1)[:, i]
        else:
            k = probes.shape[0]
            div = torch.zeros(n, dtype=x.dtype, device=x.device)
            for j in range(k):
                (vjp,) = torch.autograd.grad((v * probes[j]).sum(), x, retain_graph=j < k - 1)
                div = div + (vjp * probes[j]).reshape(n, -1).sum(1)
            div = div / k
    return v.detach(), div.detach()


def log_likelihood(
    velocity: Field,
    x: Any,
    base_log_prob: Callable[[torch.Tensor], torch.Tensor],
    *,
    trace: str = "exact",
    n_probes: int = 1,
    probe: str = "rademacher",
    method: str = "dopri5",
    atol: float = 1e-5,
    rtol: float = 1e-5,
    steps: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""Log-density at ``t = 1`` of ``x`` under the flow pushing the base forward.

    :math:`\log p_1(x) = \log p_0(x_0) - \int_0^1 \nabla\cdot v(x_t, t)\,dt` with the ODE
    solved backwards from :math:`x_1 = x` (see the module docstring).

    Args:
        velocity: ``velocity(x, t)``; ``x`` ``(n, *dims)``, ``t`` ``(n,)``.
        x: Points ``(n, *dims)`` at ``t = 1``.
        base_log_prob: ``base_log_prob(x0) -> (n,)``, log-density of the base at ``t = 0``.
        trace: ``"exact"`` (autograd trace, one backward pass per dimension) or
            ``"hutchinson"`` (stochastic trace, for large ``d``).
        n_probes: Number of Hutchinson probes averaged at every evaluation.
        probe: ``"rademacher"`` (±1) or ``"gaussian"`` Hutchinson probes.
        method: torchdiffeq method (see :func:`~sbflow.simulation.integrate_ode`).
        atol: Absolute tolerance of adaptive methods.
        rtol: Relative tolerance of adaptive methods.
        steps: Number of steps for fixed-step methods.
        generator: Seeds the Hutchinson probes (drawn once per call).

    Returns:
        Log-likelihoods, shape ``(n,)``, in the dtype of ``x``.

    Example:
        >>> import math, torch
        >>> x = torch.zeros(3, 2)
        >>> base = lambda z: -0.5 * (z**2).sum(1) - math.log(2 * math.pi)
        >>> lp = log_likelihood(lambda z, t: z, x, base)  # x1 = e·x0: log p1 = log p0(x/e) - 2
        >>> torch.allclose(lp, base(x) - 2.0, atol=1e-4)
        True
    """
    x = as_samples(x, "x")
    if trace not in ("exact", "hutchinson"):
        raise ValueError(f"trace must be 'exact' or 'hutchinson'; got {trace!r}.")
    if probe not in ("rademacher", "gaussian"):
        raise ValueError(f"probe must be 'rademacher' or 'gaussian'; got {probe!r}.")
    if isinstance(n_probes, bool) or not isinstance(n_probes, int) or n_probes < 1:
        raise ValueError(f"n_probes must be a positive integer; got {n_probes!r}.")
    grid = torch.tensor([1.0, 0.0], dtype=x.dtype, device=x.device)
    opts = _solver_options(method, steps, grid)
    n = x.shape[0]
    field = CountingField(velocity, x.shape)

    probes = None
    if trace == "hutchinson":
        gen_device = generator.device if generator is not None else x.device
        raw = torch.randn(
            (n_probes, *x.shape), generator=generator, device=gen_device, dtype=x.dtype
        ).to(x.device)
        probes = raw if probe == "gaussian" else torch.sign(raw) + (raw == 0).to(raw.dtype)

    def rhs(t: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        xt = state[0]
        tt = torch.as_tensor(t, dtype=xt.dtype, device=xt.device).reshape(()).expand(n)
        v, div = divergence(field, xt, tt, probes=probes)
        return v, -div

    delta0 = torch.zeros(n, dtype=x.dtype, device=x.device)
    with torch.no_grad():
        xs, deltas = odeint(
            rhs, (x, delta0), grid, rtol=rtol, atol=atol, method=method, options=opts
        )
        base = torch.as_tensor(base_log_prob(xs[-1]), dtype=x.dtype, device=x.device)
    if base.shape != (n,):
        raise ValueError(
            f"base_log_prob returned shape {tuple(base.shape)}; it must return one "
            f"log-density per sample, shape ({n},)."
        )
    return base - deltas[-1]
