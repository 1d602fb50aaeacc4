"""SB-CFM training speed on the CPU: sbflow against torchcfm's [SF]2M loop, side by side.

Two parts, each printed with medians and ratios from one run:

1. **Training throughput** (optimiser steps per second of wall time), batch 256, at D = 2, 16
   and 64, for

   * ``sbflow SB-CFM``: ``sbflow.fit(method="sb-cfm", sigma=σ)`` with torchcfm's recipe
     (raw data, AdamW with weight decay 0.01, constant rate) and sbflow's flow + score MLP
     (3 × 64), per-batch entropic plans at ``reg = 2σ²`` computed ahead in a background
     thread, eight steps' plans solved as one block where they need no annealing;
   * ``sbflow SB-CFM 0.1``: the same with each plan solved alone and two prefetch threads
     (the pipeline of release 0.1), to show what the blocks buy;
   * ``torchcfm [SF]2M``: the loop of torchcfm's [SF]2M example with
     ``SchrodingerBridgeConditionalFlowMatcher(sigma=σ, ot_method="sinkhorn")`` (POT's
     ``ot.sinkhorn`` on each batch) and two ``torchcfm.models.MLP(D, w=64)`` (flow, score);
     the reference of the ratios;
   * ``sbflow OT-CFM``: ``sbflow.fit(method="ot-cfm")`` with the same recipe (exact pairs,
     one 3 × 64 flow MLP): the speed SB-CFM should reach.

   Data: D = 2 is 8gaussians → moons; D > 2 is N(0, I) → a 4-component Gaussian mixture
   (means at distance 3 from the origin, component scale 0.5), pools of 20 000 points.
   Then an SB-CFM fit at ``σ² = 0.1`` (``reg = 0.2``) at D = 16 against the OT-CFM fit at
   equal steps.

2. **One coupling** of two 256-point batches (float32, as in training), median time and
   marginal error: sbflow ``Sinkhorn(reg)``, POT ``ot.sinkhorn`` (what torchcfm calls),
   POT ``sinkhorn_log`` (float64), GeomLoss potentials (``blur = σ``, ``debias=False``,
   ``scaling=0.5``) and POT's exact ``emd``.

Everything runs on one torch thread. torchcfm (``pip install torchcfm``; install it with
``--no-deps`` next to an existing torch: its dependencies pull a CUDA torch) and GeomLoss are
optional.

Usage:
    python benchmarks/sb_speed.py              # 1000 steps per run, medians of 3; 20 couplings
    python benchmarks/sb_speed.py --part train # the throughput table only
    python benchmarks/sb_speed.py --quick      # 200 steps, one run each, 7 couplings
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time
import warnings
from collections.abc import Callable
from functools import partial

import torch
from _common import TORCHCFM_RECIPE, plan_error

import sbflow
from sbflow.couplings import Sinkhorn, sigma_to_reg
from sbflow.couplings.sinkhorn import MINIBATCH_TOL
from sbflow.data import sample_dataset
from sbflow.training.batches import PathBatches

SAME_RECIPE = {**TORCHCFM_RECIPE, "progress": False}
BATCH = 256


def pools(dim: int, n: int = 20_000, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Source and target pools of ``n`` points in ``dim`` dimensions."""
    g = torch.Generator().manual_seed(seed)
    if dim == 2:
        return sample_dataset("8gaussians", n, generator=g), sample_dataset("moons", n, generator=g)
    centres = torch.randn(4, dim, generator=g)
    centres = 3 * centres / centres.norm(dim=1, keepdim=True)
    k = torch.randint(4, (n,), generator=g)
    return torch.randn(n, dim, generator=g), centres[k] + 0.5 * torch.randn(n, dim, generator=g)


def sbflow_rate(
    method: str,
    x0: torch.Tensor,
    x1: torch.Tensor,
    sigma: float,
    steps: int,
    blocks: bool = True,
) -> float:
    """Steps/s of ``sbflow.fit`` (whole call); ``blocks=False``: per-step couplings, 2 workers.

    ``blocks=False`` is the pipeline of release 0.1 (each batch coupled alone, two prefetch
    threads), kept to show what solving the couplings in blocks buys.
    """
    kw: dict = {"sigma": sigma} if method == "sb-cfm" else {}
    if not blocks:
        kw["prefetch_workers"] = 2
    saved = PathBatches.BLOCK
    PathBatches.BLOCK = PathBatches.BLOCK if blocks else 1
    try:
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sbflow.fit(
                x0, x1, method=method, steps=steps, batch_size=BATCH, seed=0, **kw, **SAME_RECIPE
            )
        return steps / (time.perf_counter() - t0)
    finally:
        PathBatches.BLOCK = saved


def torchcfm_rate(x0: torch.Tensor, x1: torch.Tensor, sigma: float, steps: int) -> float:
    """Steps/s of torchcfm's [SF]2M loop (Sinkhorn pairs, flow and score networks)."""
    from torchcfm.conditional_flow_matching import SchrodingerBridgeConditionalFlowMatcher
    from torchcfm.models import MLP

    torch.manual_seed(0)
    dim = x0.shape[1]
    flow = MLP(dim, w=64, time_varying=True)
    score = MLP(dim, w=64, time_varying=True)
    opt = torch.optim.AdamW(list(flow.parameters()) + list(score.parameters()), lr=1e-3)
    matcher = SchrodingerBridgeConditionalFlowMatcher(sigma=sigma, ot_method="sinkhorn")
    g = torch.Generator().manual_seed(0)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # POT warns when its Sinkhorn does not converge
        for _ in range(steps):
            a = x0[torch.randint(x0.shape[0], (BATCH,), generator=g)]
            b = x1[torch.randint(x1.shape[0], (BATCH,), generator=g)]
            t, xt, ut, eps = matcher.sample_location_and_conditional_flow(a, b, return_noise=True)
            lam = matcher.compute_lambda(t)
            inp = torch.cat([xt, t[:, None]], dim=-1)
            loss = (flow(inp) - ut).pow(2).mean() + (lam[:, None] * score(inp) + eps).pow(2).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return steps / (time.perf_counter() - t0)


def _medians(runs: dict[str, Callable[[], float]], reps: int) -> dict[str, float]:
    """Median of ``reps`` calls of each runner, the runners interleaved round by round."""
    got: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(reps):
        for name, run in runs.items():
            got[name].append(run())
    return {name: statistics.median(v) for name, v in got.items()}


def training(
    steps: int, dims: tuple[int, ...], sigma: float, have_torchcfm: bool, reps: int
) -> None:
    """Part 1: throughput table (medians of ``reps`` interleaved runs)."""
    reg = sigma_to_reg(sigma)
    print(
        f"\n== Training throughput, batch {BATCH}, σ = {sigma} (reg = {reg}), {steps} steps, "
        f"median of {reps} interleaved runs =="
    )
    print("SB-CFM: default (plans solved in blocks of 8 steps, 1 prefetch thread);")
    print("SB-CFM 0.1: each plan solved alone, 2 prefetch threads (the 0.1 pipeline)")
    print(
        f"{'D':>3s} {'SB-CFM':>9s} {'SB-CFM 0.1':>11s} {'torchcfm':>9s} {'OT-CFM':>9s}"
        f" {'SB/torchcfm':>12s} {'SB 0.1/torchcfm':>16s} {'SB/OT-CFM':>10s}"
    )
    for dim in dims:
        x0, x1 = pools(dim)
        runs = {
            "sb": partial(sbflow_rate, "sb-cfm", x0, x1, sigma, steps),
            "sb01": partial(sbflow_rate, "sb-cfm", x0, x1, sigma, steps, blocks=False),
            "ot": partial(sbflow_rate, "ot-cfm", x0, x1, sigma, steps),
        }
        if have_torchcfm:
            runs["tc"] = partial(torchcfm_rate, x0, x1, sigma, steps)
        r = _medians(runs, reps)
        tc = r.get("tc", math.nan)
        print(
            f"{dim:3d} {r['sb']:7.1f}/s {r['sb01']:9.1f}/s {tc:7.1f}/s {r['ot']:7.1f}/s"
            f" {r['sb'] / tc:11.2f}× {r['sb01'] / tc:15.2f}× {r['sb'] / r['ot']:9.2f}×",
            flush=True,
        )


def small_eps(steps: int, reps: int) -> None:
    """Part 1b: SB-CFM at σ² = 0.1, D = 16, against OT-CFM at equal steps."""
    x0, x1 = pools(16)
    sigma = math.sqrt(0.1)
    r = _medians(
        {
            "sb": partial(sbflow_rate, "sb-cfm", x0, x1, sigma, steps),
            "ot": partial(sbflow_rate, "ot-cfm", x0, x1, sigma, steps),
        },
        reps,
    )
    t_sb, t_ot = steps / r["sb"], steps / r["ot"]
    print(f"\n== SB-CFM at σ² = 0.1 (reg = 0.2), D = 16, {steps} steps, median of {reps} ==")
    print(f"SB-CFM fit {t_sb:.1f} s ({t_sb / t_ot:.2f}× OT-CFM); OT-CFM fit {t_ot:.1f} s")


def _median_ms(fn, reps: int) -> float:
    fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def couplings(reps: int, dims: tuple[int, ...], regs: tuple[float, ...]) -> None:
    """Part 2: one 256-point coupling."""
    import ot

    try:
        from geomloss import SamplesLoss
    except ImportError:
        SamplesLoss = None
    print(f"\n== One coupling of two {BATCH}-point batches: median ms (marginal error) ==")
    print(
        "sbflow: default tol / MINIBATCH_TOL; ratios: POT sinkhorn time / sbflow time "
        "('failed': POT's plan is NaN or zero, and torchcfm then pairs independently)"
    )
    print(
        f"{'D':>3s} {'reg':>5s} {'sbflow':>17s} {'sbflow mb':>17s} {'POT sinkhorn':>19s}"
        f" {'POT sinkhorn_log':>19s} {'GeomLoss':>9s} {'POT emd':>8s} {'ratio':>9s}"
        f" {'ratio mb':>9s}"
    )
    u = ot.unif(BATCH)
    for dim in dims:
        x0, x1 = pools(dim)
        a, b = x0[:BATCH], x1[:BATCH]
        cost = torch.cdist(a, b) ** 2
        c32, c64 = cost.numpy(), cost.double().numpy()
        for reg in regs:
            solver, fast = Sinkhorn(reg=reg), Sinkhorn(reg=reg, tol=MINIBATCH_TOL)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ours, ours_mb = solver(a, b), fast(a, b)
                t_ours = _median_ms(partial(solver, a, b), reps)
                t_mb = _median_ms(partial(fast, a, b), reps)
                p_sk = ot.sinkhorn(u, u, c32, reg)
                t_sk = _median_ms(partial(ot.sinkhorn, u, u, c32, reg), reps)
                log = partial(ot.sinkhorn, u, u, c64, reg, method="sinkhorn_log")
                p_log = log()
                t_log = _median_ms(log, min(reps, 2))  # seconds per call: two runs suffice
            t_gl = math.nan
            if SamplesLoss is not None:
                loss = SamplesLoss(
                    "sinkhorn",
                    p=2,
                    blur=math.sqrt(reg / 2),
                    scaling=0.5,
                    debias=False,
                    potentials=True,
                    backend="tensorized",
                )
                t_gl = _median_ms(partial(loss, a, b), reps)
            t_emd = _median_ms(partial(ot.emd, u, u, c64, numItermax=10**6), reps)
            failed = plan_error(p_sk) > 0.5  # NaN/zero plan: torchcfm pairs independently
            ratio = "   failed" if failed else f"{t_sk / t_ours:8.2f}×"
            ratio_mb = "   failed" if failed else f"{t_sk / t_mb:8.2f}×"
            print(
                f"{dim:3d} {reg:5.2f} {t_ours:7.2f} ({ours.marginal_error:7.1e})"
                f" {t_mb:7.2f} ({ours_mb.marginal_error:7.1e})"
                f" {t_sk:8.2f} ({plan_error(p_sk):7.1e})"
                f" {t_log:8.2f} ({plan_error(p_log):7.1e})"
                f" {t_gl:9.2f} {t_emd:8.2f} {ratio} {ratio_mb}",
                flush=True,
            )


def main() -> None:
    """Run both parts."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="200 steps, 7 couplings")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--reps", type=int, default=20, help="couplings timed per cell")
    parser.add_argument("--train-reps", type=int, default=3, help="training runs per cell")
    parser.add_argument("--sigma", type=float, default=1.0, help="σ of part 1 (reg = 2σ²)")
    parser.add_argument("--part", choices=("all", "train", "couplings"), default="all")
    args = parser.parse_args()
    steps, reps = (200, 7) if args.quick else (args.steps, args.reps)
    train_reps = 1 if args.quick else args.train_reps
    torch.set_num_threads(1)
    try:
        import torchcfm  # noqa: F401

        have_torchcfm = True
    except ImportError:
        have_torchcfm = False
        print("torchcfm not installed (pip install --no-deps torchcfm): no [SF]2M reference.")
    print(f"1 torch thread, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    dims = (2, 16, 64)
    if args.part in ("all", "train"):
        x0, x1 = pools(2, 1000)
        sbflow_rate("sb-cfm", x0, x1, 1.0, 20)  # warm-up: imports, numba cache
        training(steps, dims, args.sigma, have_torchcfm, train_reps)
        small_eps(steps, train_reps)
    if args.part in ("all", "couplings"):
        couplings(reps, dims, (2.0, 0.5, 0.2))


if __name__ == "__main__":
    main()
