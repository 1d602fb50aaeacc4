"""Transport throughput: ``Bridge.transport`` against a plain torchdiffeq / torchsde loop.

Both sides run the SAME trained network on the same standardised inputs:

* ODE: adaptive ``dopri5`` at ``atol = rtol = 1e-5`` on an OT-CFM bridge (8gaussians → moons,
  200 steps). The plain loop is one ``torchdiffeq.odeint`` call on ``model(x, t)`` over
  ``[0, 1]`` with the same tolerances, wrapped in the normaliser's encode/decode.
* SDE: 100 Euler–Maruyama steps of ``dx = [v + (σ²/2) s] dt + σ dW`` on an SB-CFM bridge
  (same sets, 200 steps). The plain loop is one ``torchsde.sdeint`` call with a diagonal-noise
  SDE module and ``dt = 1/100``, written as a user would (no step hint to the
  ``BrownianInterval``, ``dt`` exactly 0.01, so torchsde adds a rounding-sized 101st step).

What ``Bridge.transport`` adds on top of the bare solver: input checks, the thread policy,
chunking (one chunk of ≤ 16 384 rows here), the finiteness check and the caller's array type.
The table shows the median samples/s over the repeats and the ratio (> 1: sbflow faster),
plus the largest difference between the two ODE results (solver tolerance, not zero:
``transport`` makes dopri5 step exactly onto ``t = 1``, ``odeint`` steps past it and
interpolates back). One torch thread.

Usage:
    python benchmarks/transport.py            # n = 10 000, 5 repeats
    python benchmarks/transport.py --quick    # n = 10 000, 3 repeats
"""

from __future__ import annotations

import argparse

import torch
import torchdiffeq
import torchsde
from _common import timed

import sbflow
from sbflow.data import sample_dataset


def velocity(model):
    """``v(x, t)`` of a field returning ``v`` or ``(v, s)``, with a per-row time."""

    def v(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        out = model(x, t.expand(x.shape[0]))
        return out[0] if isinstance(out, tuple) else out

    return v


def plain_ode(bridge, x0: torch.Tensor, atol: float, rtol: float) -> torch.Tensor:
    """One ``torchdiffeq.odeint`` call on the bridge's network, in its training units."""
    v = velocity(bridge.model)
    norm = bridge.normalizer
    with torch.no_grad():
        z0 = norm.encode(x0)
        grid = torch.tensor([0.0, 1.0])
        z = torchdiffeq.odeint(lambda t, z: v(z, t), z0, grid, atol=atol, rtol=rtol)[-1]
        return norm.decode(z)


class _SDE(torch.nn.Module):
    noise_type = "diagonal"
    sde_type = "ito"

    def __init__(self, model, g: float) -> None:
        super().__init__()
        self.model, self.g2, self.gv = model, g * g, g

    def f(self, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        v, s = self.model(z, t.expand(z.shape[0]))
        return v + 0.5 * self.g2 * s

    def g(self, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return torch.full_like(z, self.gv)


def plain_sde(bridge, x0: torch.Tensor, steps: int, seed: int) -> torch.Tensor:
    """One ``torchsde.sdeint`` call (Euler, ``dt = 1/steps``) on the bridge's network."""
    norm = bridge.normalizer
    with torch.no_grad():
        z0 = norm.encode(x0)
        bm = torchsde.BrownianInterval(
            t0=0.0, t1=1.0, size=z0.shape, entropy=seed, dtype=z0.dtype, device=z0.device
        )
        grid = torch.tensor([0.0, 1.0])
        sde = _SDE(bridge.model, bridge.sigma_internal)
        z = torchsde.sdeint(sde, z0, grid, method="euler", dt=1.0 / steps, bm=bm)[-1]
        return norm.decode(z)


def main() -> None:
    """Fit the two bridges, time both sides and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 repeats")
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    repeats = 3 if args.quick else args.repeats
    torch.set_num_threads(1)
    fit_opts = dict(steps=200, progress=False, prefetch=0, seed=0)
    ode_bridge = sbflow.fit("8gaussians", "moons", method="ot-cfm", **fit_opts)
    sde_bridge = sbflow.fit("8gaussians", "moons", method="sb-cfm", **fit_opts)
    gen = torch.Generator().manual_seed(0)
    x0 = sample_dataset("8gaussians", args.n, generator=gen)
    atol = rtol = 1e-5
    steps = 100

    rows = []
    t_sb, y_sb = timed(
        lambda: ode_bridge.transport(x0, sde=False, atol=atol, rtol=rtol, progress=False),
        repeats,
    )
    t_pl, y_pl = timed(lambda: plain_ode(ode_bridge, x0, atol, rtol), repeats)
    diff = float((y_sb - y_pl).abs().max())
    rows.append(("ODE dopri5 (1e-5)", t_sb, t_pl, f"{diff:.1e}"))

    def sb_sde():
        g = torch.Generator().manual_seed(1)
        return sde_bridge.transport(x0, sde=True, steps=steps, generator=g, progress=False)

    t_sb, y_sb = timed(sb_sde, repeats)
    t_pl, y_pl = timed(lambda: plain_sde(sde_bridge, x0, steps, 1), repeats)
    mean_gap = float((y_sb.mean(0) - y_pl.mean(0)).abs().max())
    rows.append((f"SDE Euler ({steps} steps)", t_sb, t_pl, f"means {mean_gap:.1e}"))

    n = args.n
    print(f"n = {n} points (8gaussians → moons, 2-D), median of {repeats}, 1 torch thread")
    head = f"{'simulation':<22} {'sbflow [samples/s]':>19} {'plain loop [samples/s]':>23} "
    print(head + f"{'ratio':>6}  difference")
    for name, ts, tp, d in rows:
        print(f"{name:<22} {n / ts:>19,.0f} {n / tp:>23,.0f} {tp / ts:>6.2f}  {d}")


if __name__ == "__main__":
    main()
