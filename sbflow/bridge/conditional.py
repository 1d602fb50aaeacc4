r"""Conditional sampling: ``n`` draws of a bridge's learned :math:`\pi(\cdot \mid x)`.

The plan of a Schrödinger bridge is stochastic: a source point :math:`x` at the first time
goes to a *law* :math:`\pi(\cdot \mid x)` at the last time. :func:`sample_conditional` draws
from it in one of two ways:

- **exactly**, when the bridge's field offers ``sample_conditional(z, n, generator)`` in
  training units (``light-sb``: the conditional plan of a Gaussian-mixture potential is a
  Gaussian mixture); the draws are mapped back through the bridge's normaliser;
- **by simulation** otherwise: ``x`` is repeated ``n`` times and the bridge's SDE
  :math:`dX = [v + \tfrac{\sigma^2}{2} s]\,dt + \sigma\,dW` is run from the first time to the
  last (Euler–Maruyama, ``steps`` steps). The draws carry the SDE's time-discretisation error.

A bridge that learns an ODE only (``ot-cfm``, ``i-cfm``, …) is a deterministic map: its
conditional law is a point mass at ``transport(x)``, and asking for draws raises.
"""

from __future__ import annotations

from typing import Any

import torch

from sbflow._checks import as_samples, check_generator, check_positive_int
from sbflow._inference import to_caller

__all__ = ["sample_conditional"]


def sample_conditional(
    bridge: Any,
    x: Any,
    n: int,
    *,
    generator: torch.Generator | None = None,
    steps: int = 100,
    clip: bool = False,
    progress: bool | None = None,
) -> Any:
    r"""Draw ``n`` samples of the bridge's :math:`\pi(\cdot \mid x)` for every row of ``x``.

    Args:
        bridge: A :class:`~sbflow.Bridge` with a stochastic plan (``simulation="sde"``).
        x: Source samples ``(m, *dims)`` in the data's units, at the first time.
        n: Draws per row.
        generator: Randomness of the draws (or of the SDE's Brownian motion).
        steps: Euler–Maruyama steps when the draws are simulated (unused when exact).
        clip: Clip the draws to the range observed in the last sample set
            (:attr:`~sbflow.Bridge.data_range`); raises for a bridge without one.
        progress: Progress bar of the simulation (see :meth:`~sbflow.Bridge.transport`).

    Returns:
        ``(m, n, *dims)``: entry ``[i, j]`` is the ``j``-th draw given ``x[i]``, at the last
        time; a tensor with the input's dtype and device for tensor input, else NumPy.

    Raises:
        ValueError: For a bridge that learns an ODE only (its conditional is a point mass),
            or bad ``n``/``steps``.

    Example:
        >>> from sbflow.gaussian import GaussianBridge
        >>> from sbflow.bridge import Bridge
        >>> gb = GaussianBridge([0.0], [[1.0]], [3.0], [[1.0]], 0.5)
        >>> y = sample_conditional(Bridge.from_gaussian(gb), torch.zeros(2, 1), 500,
        ...                        generator=torch.Generator().manual_seed(0), steps=20)
        >>> y.shape, [round(m, 1) for m in y.mean(1).flatten().tolist()]
        (torch.Size([2, 500, 1]), [3.0, 3.0])
    """
    n = check_positive_int(n, "n")
    steps = check_positive_int(steps, "steps")
    check_generator(generator)
    bridge._check_clip(clip)
    exact = getattr(bridge.model, "sample_conditional", None)
    if not callable(exact) and bridge.simulation != "sde":
        raise ValueError(
            f"the {bridge.method} bridge is a deterministic map (an ODE): its conditional "
            f"π(·|x) is a point mass at transport(x), nothing to sample. Use transport(x), or "
            f"fit a bridge method (e.g. method='sb-cfm', 'imf' or 'light-sb')."
        )
    xs = as_samples(x, "x")
    m = xs.shape[0]
    if callable(exact):
        z, _ = bridge._encode(xs, "x")
        with torch.no_grad():
            draws = exact(z, n, generator=generator)  # (m, n, features)
        out = bridge._decode(draws)
        if clip:
            out = bridge._clip(out[None], [1.0])[0]
    else:
        bridge._encode(xs[:1], "x")  # a shape error names x, not the repeated rows
        repeated = xs.repeat_interleave(n, dim=0)
        out = bridge.transport(
            repeated, sde=True, steps=steps, generator=generator, clip=clip, progress=progress
        )
        out = out.reshape(m, n, *bridge.feature_shape)
    return to_caller(out, x)
