"""Sinkhorn at small reg in high dimension: the exact-OT start against annealing, side by side.

The per-batch plans of SB-CFM on the entropic-OT benchmark at ε = σ² = 0.1 (``reg = 2σ²`` on
‖x − y‖²): 256 × 256 batches drawn from the benchmark's input and target (instance seed 0),
float32, ``tol = MINIBATCH_TOL`` (relative L1 marginal error 1e-3), at most 10 000 sweeps.
Where annealing would start at 100 × reg or more, ``Sinkhorn`` starts from the exact plan's
duals (POT's network simplex, included in the time) and anneals from 8 × reg. Rows:

* ``sbflow``: ``Sinkhorn(reg, tol=MINIBATCH_TOL)`` as shipped;
* ``sbflow, annealing only``: the same with the exact-OT start switched off (the 0.2.0
  development state before it): ε-annealing from zero potentials at 5 sweeps per halving;
* ``POT eps-scaling``: ``ot.bregman.sinkhorn_epsilon_scaling`` (float64, stopThr 1e-3, its
  default schedule), POT's own annealed log-domain solver.

Per D: median and 90th-percentile time per batch, median sweeps (sbflow's), the share of
batches whose marginal error reached 1e-3 and the worst error reached (sbflow: its
``marginal_error``, the rows' L1 error after an exact column update; POT: the L1 error of
both marginals of its plan). Everything on one torch thread.

Usage::

    python benchmarks/sinkhorn_start.py            # D = 16, 64, 128; 20 batches each
    python benchmarks/sinkhorn_start.py --quick    # D = 64; 5 batches
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time
import warnings
from collections.abc import Callable
from unittest import mock

import numpy as np
import torch
from _common import plan_error

from sbflow.couplings import Sinkhorn
from sbflow.couplings import sinkhorn as sinkhorn_module
from sbflow.couplings.sinkhorn import MINIBATCH_TOL
from sbflow.groundtruth import EOTBenchmark

BATCH = 256
EPS = 0.1


def batches(dim: int, count: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``count`` pairs of 256-point float32 batches from the benchmark's input and target."""
    bench = EOTBenchmark(dim, EPS, 0)
    g = torch.Generator().manual_seed(0)
    return [
        (bench.sample_input(BATCH, g).float(), bench.sample_target(BATCH, g).float())
        for _ in range(count)
    ]


def sbflow_solve(exact_start: bool) -> Callable:
    solver = Sinkhorn(reg=2 * EPS, tol=MINIBATCH_TOL)

    def solve(a: torch.Tensor, b: torch.Tensor) -> tuple[int, float]:
        ratio = sinkhorn_module.EXACT_START_RATIO if exact_start else math.inf
        with mock.patch.object(sinkhorn_module, "EXACT_START_RATIO", ratio):
            c = solver(a, b)
        return c.n_iter, c.marginal_error

    return solve


def pot_solve(a: torch.Tensor, b: torch.Tensor) -> tuple[int | None, float]:
    import ot

    u = np.full(BATCH, 1.0 / BATCH)
    cost = (torch.cdist(a.double(), b.double()) ** 2).numpy()
    plan = ot.bregman.sinkhorn_epsilon_scaling(
        u, u, cost, 2 * EPS, stopThr=MINIBATCH_TOL, warn=False
    )
    return None, plan_error(plan)  # its iteration count is not one of sweeps


def measure(solve: Callable, pairs: list) -> dict:
    times, sweeps, errors = [], [], []
    for a, b in pairs:
        t0 = time.perf_counter()
        n, err = solve(a, b)
        times.append(1e3 * (time.perf_counter() - t0))
        sweeps.append(n)
        errors.append(err)
    times.sort()
    return {
        "median_ms": statistics.median(times),
        "p90_ms": times[max(0, math.ceil(0.9 * len(times)) - 1)],
        "sweeps": math.nan if None in sweeps else statistics.median(sweeps),
        "converged": sum(e <= MINIBATCH_TOL * (1 + 1e-6) for e in errors) / len(errors),
        "worst_error": max(errors),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="D = 64, 5 batches")
    parser.add_argument("--batches", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(1)
    dims, count = ((64,), 5) if args.quick else ((16, 64, 128), args.batches)
    rows = {
        "sbflow": sbflow_solve(True),
        "sbflow, annealing only": sbflow_solve(False),
        "POT eps-scaling": pot_solve,
    }
    print(f"1 torch thread, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    print(f"ε = {EPS} (reg = {2 * EPS}), {count} batches of {BATCH} × {BATCH} per D")
    solve_once = batches(2, 1)[0]
    for solve in rows.values():  # warm-up: imports
        solve(*solve_once)
    print(
        f"{'D':>4s} {'solver':24s} {'median ms':>10s} {'p90 ms':>8s} {'sweeps':>7s}"
        f" {'converged':>10s} {'worst error':>12s} {'time / sbflow':>14s}"
    )
    for dim in dims:
        pairs = batches(dim, count)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # unconverged runs are counted, not warned about
            results = {name: measure(solve, pairs) for name, solve in rows.items()}
        ref = results["sbflow"]["median_ms"]
        for name, r in results.items():
            sweeps = "—" if math.isnan(r["sweeps"]) else f"{r['sweeps']:.0f}"
            print(
                f"{dim:4d} {name:24s} {r['median_ms']:10.1f} {r['p90_ms']:8.1f} {sweeps:>7s}"
                f" {r['converged']:10.0%} {r['worst_error']:12.1e}"
                f" {r['median_ms'] / ref:13.1f}×",
                flush=True,
            )


if __name__ == "__main__":
    main()
