"""Scoring a bridge: held-out metrics, path energy and log-densities (original units)."""

from __future__ import annotations

import math
from typing import Any

import torch

from sbflow._checks import (
    as_samples,
    check_generator,
    check_int,
    check_positive,
    check_positive_int,
    check_same_feature_shape,
)
from sbflow._inference import inference_threads, map_chunks, to_caller
from sbflow._memory import require_memory

__all__ = ["evaluate", "log_prob"]


def evaluate(
    bridge: Any,
    x0: Any,
    x1: Any,
    *,
    t_start: float | None = None,
    t_end: float | None = None,
    n_times: int = 101,
    sde: bool | None = None,
    sde_steps: int = 100,
    generator: torch.Generator | None = None,
    atol: float = 1e-5,
    rtol: float = 1e-5,
    progress: bool | None = None,
) -> dict[str, float]:
    """Compare ``x0`` transported by ``bridge`` with held-out target samples ``x1``.

    The ODE is solved with adaptive ``dopri5``. Reported (original units):

    - ``w2``, ``w1``: exact Wasserstein distances (POT ``emd``) between the transported
      samples and ``x1``; ``energy``: energy distance; ``mmd``: squared MMD.
    - ``nfe``: velocity evaluations of the adaptive solver (the largest over the chunks
      when more than 16 384 samples are solved in several).
    - ``path_energy``: ``PE = mean ∫₀¹ ‖dx/ds‖² ds`` along the ODE trajectories (time
      rescaled to ``s ∈ [0, 1]``; trapezoid rule on ``n_times`` points).
    - ``w2_ot``: exact ``W2(x0, x1)``; ``normalized_path_energy``: ``|PE − W2²| / W2²``
      with ``W2 = w2_ot`` (0 for straight, optimal transport).
    - With the SDE (default for bridges that simulate one): ``w2_sde``, ``w1_sde``.
    - A bridge whose field is an SDE drift only (``light-sb``) has no ODE: ``w2``, ``w1``,
      ``energy`` and ``mmd`` are then those of the SDE samples, and ``nfe`` and the path
      energies are left out.

    Args:
        bridge: The :class:`~sbflow.Bridge`.
        x0: Source-side samples at ``t_start``.
        x1: Held-out samples at ``t_end``.
        t_start: Start time (default: the first snapshot).
        t_end: End time (default: the last snapshot); must come after ``t_start``.
        n_times: Points on which the path energy is integrated.
        sde: Also evaluate SDE samples (default: the bridge's ``simulation``).
        sde_steps: Euler–Maruyama steps of the SDE.
        generator: Randomness of the SDE (default: seeded with 0).
        atol: ODE tolerance.
        rtol: ODE tolerance.
        progress: Progress bars of the simulations: ``None`` (auto) on an interactive
            terminal when the work is long, ``True`` always, ``False`` never.

    Returns:
        A dict of floats.

    Example:
        >>> from sbflow import Bridge
        >>> from sbflow.gaussian import GaussianBridge
        >>> bridge = Bridge.from_gaussian(GaussianBridge([0.0], [[1.0]], [2.0], [[1.0]], 0.5))
        >>> x0 = torch.randn(200, 1, generator=torch.Generator().manual_seed(0))
        >>> m = evaluate(bridge, x0, x0 + 2, sde=False)
        >>> m["w2"] < 1e-3, round(m["normalized_path_energy"], 3)
        (True, 0.0)
    """
    from sbflow.metrics import wasserstein

    x0s, x1s = as_samples(x0, "x0"), as_samples(x1, "x1")
    check_same_feature_shape(x0s, x1s.to(x0s.device))
    n_times = check_int(n_times, "n_times", low=2)
    sde_steps = check_positive_int(sde_steps, "sde_steps")
    check_generator(generator)
    atol, rtol = check_positive(atol, "atol"), check_positive(rtol, "rtol")
    use_sde = bridge._use_sde(sde)
    ta, tb = bridge.timemap.resolve([t_start, t_end], names=("t_start", "t_end"))
    if tb <= ta:
        raise ValueError("evaluate runs forward: pass a t_end that comes after t_start.")
    z0, _ = bridge._encode(x0s, "x0")
    require_memory(
        2 * n_times * z0.numel() * z0.element_size(),  # trajectory and velocities
        what=f"the path energy of {z0.shape[0]} samples on n_times={n_times} points",
        hint="Use a smaller n_times (101 is plenty for the trapezoid rule) or fewer samples.",
        device=z0.device,
    )
    x1_cpu = x1s.detach().cpu()
    out = {"w2_ot": wasserstein(x0s.detach().cpu(), x1_cpu)}
    with inference_threads(1, bridge.device):
        if not bridge._drift_only:
            out.update(
                _ode_metrics(
                    bridge, z0, ta, tb, n_times, x1_cpu, out["w2_ot"], atol, rtol, progress
                )
            )
        if use_sde:
            gen = generator if generator is not None else torch.Generator().manual_seed(0)

            def sde_end(chunk: torch.Tensor) -> torch.Tensor:
                res = bridge._simulate(chunk, [ta, tb], sde=True, steps=sde_steps, generator=gen)
                return res.trajectory[-1]

            z_sde = map_chunks(sde_end, z0, progress=progress, desc="evaluate: SDE")
            x_sde = bridge._decode(z_sde).cpu()
            out["w2_sde"] = wasserstein(x_sde, x1_cpu)
            out["w1_sde"] = wasserstein(x_sde, x1_cpu, p=1)
            if bridge._drift_only:  # no ODE: the SDE samples are the transported ones
                out.update(_sample_metrics(x_sde, x1_cpu))
    return out


def _sample_metrics(x_hat: torch.Tensor, x1: torch.Tensor) -> dict[str, float]:
    from sbflow.metrics import energy_distance, mmd, wasserstein

    return {
        "w2": wasserstein(x_hat, x1),
        "w1": wasserstein(x_hat, x1, p=1),
        "energy": energy_distance(x_hat, x1),
        "mmd": mmd(x_hat, x1),
    }


def _ode_metrics(
    bridge: Any,
    z0: torch.Tensor,
    ta: float,
    tb: float,
    n_times: int,
    x1: torch.Tensor,
    w2_ot: float,
    atol: float,
    rtol: float,
    progress: bool | None = None,
) -> dict[str, float]:
    """Sample metrics of the ODE's end points, its NFE and its path energy."""
    from sbflow.metrics import normalized_path_energy, path_energy

    ode = dict(sde=False, method="dopri5", atol=atol, rtol=rtol)
    # NFE of the adaptive solver alone (no output grid), then the trajectory for PE.
    nfes: list[int] = []

    def solve(chunk: torch.Tensor) -> torch.Tensor:
        res = bridge._simulate(chunk, [ta, tb], **ode)
        nfes.append(res.nfe)
        return res.trajectory[-1]

    map_chunks(solve, z0, progress=progress, desc="evaluate: ODE")
    nfe = max(nfes)
    grid = torch.linspace(ta, tb, n_times).tolist()

    def path(chunk: torch.Tensor) -> torch.Tensor:
        return bridge._simulate(chunk, grid, **ode).trajectory

    traj = map_chunks(path, z0, progress=progress, desc="evaluate: path energy", out_dim=1)
    with torch.no_grad():
        taus = torch.tensor(grid, dtype=traj.dtype, device=traj.device)
        flat = traj.reshape(-1, traj.shape[-1])
        v = bridge._velocity(flat, taus.repeat_interleave(traj.shape[1])).reshape(traj.shape)
    speed = v * bridge.normalizer.scale.to(v) * (tb - ta)  # dx/ds in data units
    positions = bridge.normalizer.decode(traj)
    s_grid = torch.linspace(0.0, 1.0, n_times, dtype=torch.float64)
    pe = path_energy(positions, s_grid, velocities=speed)
    x_hat = positions[-1].reshape(-1, *bridge.feature_shape).cpu()
    return {
        **_sample_metrics(x_hat, x1),
        "nfe": float(nfe),
        "path_energy": pe,
        "normalized_path_energy": normalized_path_energy(pe, w2_ot**2),
    }


def log_prob(
    bridge: Any,
    x: Any,
    *,
    trace: str = "exact",
    n_probes: int = 1,
    generator: torch.Generator | None = None,
    atol: float = 1e-5,
    rtol: float = 1e-5,
    progress: bool | None = None,
) -> Any:
    """Log density of ``x`` under a flow's target side (standard-normal source).

    ``log p(x) = log p_base(x_0) − ∫ ∇·v dt`` along the ODE from ``x`` back to the source,
    with the change of variables of the standardisation included.

    Args:
        bridge: A :class:`~sbflow.Bridge` whose ``base`` is ``"normal"``.
        x: Samples ``(n, *dims)`` in the data's units.
        trace: ``"exact"`` (autograd divergence) or ``"hutchinson"``.
        n_probes: Probes of the Hutchinson estimator.
        generator: Randomness of the probes.
        atol: ODE tolerance.
        rtol: ODE tolerance.
        progress: Progress bar (see :func:`evaluate`); the samples are solved in chunks of
            bounded memory.

    Returns:
        ``(n,)`` log densities (tensor or NumPy, like ``x``).

    Raises:
        ValueError: If the source has no known density, or for several snapshots.

    Example:
        >>> from sbflow import Bridge
        >>> from sbflow.gaussian import GaussianBridge
        >>> bridge = Bridge.from_gaussian(GaussianBridge([0.0], [[1.0]], [2.0], [[1.0]], 0.5))
        >>> log_prob(bridge, torch.zeros(2, 1))
        Traceback (most recent call last):
        ...
        ValueError: log_prob needs a source with a known density, ...
    """
    if bridge.base != "normal":
        raise ValueError(
            f"log_prob needs a source with a known density, but this {bridge.method} bridge "
            f"was fitted from samples. Fit with method='fm' (Gaussian source) or "
            f"source='normal' to get densities."
        )
    if len(bridge.times) > 2:
        raise ValueError("log_prob is only defined for bridges between two sample sets.")
    from sbflow.simulation import log_likelihood

    check_generator(generator)
    atol, rtol = check_positive(atol, "atol"), check_positive(rtol, "rtol")
    z, _ = bridge._encode(x, "x")
    norm = bridge.normalizer
    log_scale = float(norm.scale.log().sum())
    d = z.shape[1]

    def base_log_prob(z0: torch.Tensor) -> torch.Tensor:
        x0 = norm.decode(z0)
        return -0.5 * (x0 * x0).sum(1) - 0.5 * d * math.log(2 * math.pi) + log_scale

    def chunk_log_prob(chunk: torch.Tensor) -> torch.Tensor:
        return log_likelihood(
            bridge._velocity, chunk, base_log_prob, trace=trace, n_probes=n_probes,
            generator=generator, atol=atol, rtol=rtol,
        )  # fmt: skip

    with inference_threads(1, bridge.device):
        out = map_chunks(chunk_log_prob, z, progress=progress, desc="log_prob")
    return to_caller(out - log_scale, x)
