"""Benchmark the coupling solvers against POT and torchcfm, side by side.

Problem: x0 ~ N(0, I), x1 ~ N(3·1, I) in d dimensions, n samples each, float32 tensors for
sbflow and torchcfm (the usual training batch), float64 NumPy for POT. For every (n, d) it
prints, per method:

* time: median wall time over ``--repeats`` runs (solve + pairs where the method gives pairs);
* peak MB: growth of the process's resident memory during one extra run, sampled every
  millisecond from /proc/self/statm (covers torch and NumPy allocations alike);
* plan gap: (<C, P> − OT) / OT, OT being the exact optimum (POT emd with numItermax=1e8);
* pair gap: (mean cost of the returned pairs − OT/n·n) / OT, i.e. what a training step sees;
* marg err: relative L1 marginal error of the plan;
* distinct: share of source points that appear in the pairs (100 % means no source dropped).

Run ``python benchmarks/couplings.py --quick`` for n ∈ {256, 1024}; the full run adds n = 4096
and a large-n entropic section (dense vs KeOps). Ratios from one run are figures: the machine
is shared and timings are noisy.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import os
import statistics
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from sbflow.couplings import Sinkhorn, cost_scale, couple, keops_available, sq_euclidean

with contextlib.redirect_stdout(io.StringIO()):
    import ot

try:
    with contextlib.redirect_stdout(io.StringIO()):
        from torchcfm.optimal_transport import OTPlanSampler
except ImportError:  # optional
    OTPlanSampler = None

_PAGE = os.sysconf("SC_PAGE_SIZE")


def _rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * _PAGE


def peak_mb(fn: Callable[[], Any]) -> float:
    """Peak resident-memory growth (MB) while ``fn`` runs, sampled every millisecond."""
    base = _rss()
    peak = [base]
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss())
            time.sleep(0.001)

    th = threading.Thread(target=watch, daemon=True)
    th.start()
    try:
        fn()
    finally:
        done.set()
        th.join()
    peak[0] = max(peak[0], _rss())
    return (peak[0] - base) / 2**20


def timed(fn: Callable[[], Any], repeats: int) -> tuple[float, Any, float]:
    """Median time over ``repeats`` runs, the last result, and the largest peak memory."""
    times, mems, out = [], [], [None]

    def once() -> None:
        t = time.perf_counter()
        out[0] = fn()
        times.append(time.perf_counter() - t)

    for _ in range(repeats):
        mems.append(peak_mb(once))
    return statistics.median(times), out[0], max(mems)


def plan_stats(plan: np.ndarray, cost: np.ndarray, opt: float) -> tuple[float, float]:
    n, m = plan.shape
    if not np.isfinite(plan).all() or plan.sum() <= 0:
        return math.nan, math.nan
    err = np.abs(plan.sum(1) - 1 / n).sum() + np.abs(plan.sum(0) - 1 / m).sum()
    return (float((plan * cost).sum()) - opt) / opt, float(err)


def pair_stats(i: np.ndarray, j: np.ndarray, cost: np.ndarray, opt: float) -> tuple[float, float]:
    gap = (float(cost[i, j].mean()) - opt) / opt
    return gap, len(np.unique(i)) / cost.shape[0]


ROW = "{:<38} {:>5} {:>3} {:>9} {:>8} {:>10} {:>10} {:>9} {:>9}  {}"


def fmt(v: float | None, spec: str) -> str:
    if v is None:
        return "-"
    if isinstance(v, float) and math.isnan(v):
        return "nan"
    return format(v, spec)


def show(name, n, d, t, mem, plan_gap=None, pair_gap=None, err=None, distinct=None, note=""):
    if err is not None and not err < 0.5:
        note = "FAILED: not a coupling; " + note
    print(
        ROW.format(
            name,
            n,
            d,
            fmt(t, ".3f"),
            fmt(mem, ".0f"),
            fmt(None if plan_gap is None else 100 * plan_gap, ".3f"),
            fmt(None if pair_gap is None else 100 * pair_gap, ".2f"),
            fmt(err, ".1e"),
            fmt(None if distinct is None else 100 * distinct, ".1f"),
            note,
        ),
        flush=True,
    )


def bench_size(n: int, d: int, repeats: int, seed: int) -> tuple[float, float | None]:
    """Print the rows for one (n, d); return the exact-pairs times of sbflow and torchcfm."""
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(n, d, generator=g)
    x1 = torch.randn(n, d, generator=g) + 3.0
    cost = sq_euclidean(x0.double(), x1.double()).numpy()
    u = np.full(n, 1.0 / n)

    # reference optimum, and the POT exact rows
    t, (plan, log), mem = timed(lambda: ot.emd(u, u, cost, numItermax=10**8, log=True), repeats)
    opt = float(log["cost"])
    pg, err = plan_stats(plan, cost, opt)
    show("POT emd (numItermax=1e8)", n, d, t, mem, pg, None, err, None, "reference optimum")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t, (plan, log), mem = timed(lambda: ot.emd(u, u, cost, log=True), repeats)
    pg, err = plan_stats(plan, cost, opt)
    note = "default numItermax" + (": " + log["warning"] if log["warning"] else "")
    show("POT emd (default)", n, d, t, mem, pg, None, err, None, note[:60])

    # sbflow exact: couple + pairs
    def sb_exact():
        c = couple(x0, x1, "exact")
        return c, c.pairs()

    t, (c, (i, j)), mem = timed(sb_exact, repeats)
    exact_times: tuple[float, float | None] = (t, None)
    pg_, dist = pair_stats(i.numpy(), j.numpy(), cost, opt)
    show(
        "sbflow exact",
        n,
        d,
        t,
        mem,
        (c.cost - opt) / opt,
        pg_,
        c.marginal_error,
        dist,
        f"permutation, {c.backend}" if c.is_permutation else c.backend,
    )

    # torchcfm exact sample_plan (samples pairs with replacement from the POT plan)
    if OTPlanSampler is None:
        show("torchcfm exact sample_plan", n, d, None, None, note="not installed")
    else:
        sampler = OTPlanSampler(method="exact")
        np.random.seed(seed)  # noqa: NPY002 (torchcfm samples with the global NumPy RNG)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t, _, mem = timed(lambda: sampler.sample_plan(x0, x1), repeats)
            exact_times = (exact_times[0], t)
            plan = sampler.get_map(x0, x1)
            idx = sampler.sample_map(plan, n)
        pg, err = plan_stats(plan, cost, opt)
        pgap, dist = pair_stats(idx[0], idx[1], cost, opt)
        show("torchcfm exact sample_plan", n, d, t, mem, pg, pgap, err, dist)

    # entropic: sbflow (relative reg) vs POT sinkhorn_log (same absolute reg) vs torchcfm
    scale = cost_scale(x0.double(), x1.double())
    for rel in (0.05, 0.01):
        reg = rel * scale
        solver = Sinkhorn(rel_reg=rel, backend="dense")

        def sb_sink(solver=solver):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                c = solver(x0, x1)
            return c, c.pairs(generator=torch.Generator().manual_seed(0))

        t, (c, (i, j)), mem = timed(sb_sink, repeats)
        plan = c.plan(max_bytes=2**32).double().numpy()
        pg, err = plan_stats(plan, cost, opt)
        pgap, dist = pair_stats(i.numpy(), j.numpy(), cost, opt)
        note = f"reg={rel}·mean(C) it={c.n_iter}" + ("" if c.converged else " NOT CONVERGED")
        show(f"sbflow sinkhorn f32 rel_reg={rel}", n, d, t, mem, pg, pgap, err, dist, note)

        for method in ("sinkhorn_log", "sinkhorn"):
            if method == "sinkhorn_log" and n > 1024:
                show(f"POT {method} reg={rel}·mean(C)", n, d, None, None, note="skipped: slow")
                continue
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                with np.errstate(all="ignore"):
                    t, plan, mem = timed(
                        lambda method=method, reg=reg: ot.sinkhorn(u, u, cost, reg, method=method),
                        1,
                    )
            pg, err = plan_stats(plan, cost, opt)
            msgs = {str(w.message).split(".")[0][:40] for w in caught}
            show(
                f"POT {method} reg={rel}·mean(C)",
                n,
                d,
                t,
                mem,
                pg,
                None,
                err,
                None,
                "; ".join(sorted(msgs)),
            )

        # what a torch user gets: POT's kernel-mode Sinkhorn on float32 tensors
        c32 = sq_euclidean(x0, x1)
        u32 = torch.full((n,), 1.0 / n)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            t, plan, mem = timed(lambda c=c32, w=u32, reg=reg: ot.sinkhorn(w, w, c, reg), 1)
        pg, err = plan_stats(plan.double().numpy(), cost, opt)
        msgs = {str(w.message).split(".")[0][:40] for w in caught}
        note = "; ".join(sorted(msgs))
        show(f"POT sinkhorn f32 torch reg={rel}·mean", n, d, t, mem, pg, None, err, None, note)

    if OTPlanSampler is not None:
        sampler = OTPlanSampler(method="sinkhorn")  # its default reg=0.05 on the raw cost
        np.random.seed(seed)  # noqa: NPY002
        with warnings.catch_warnings(record=True) as caught, np.errstate(all="ignore"):
            warnings.simplefilter("always")
            t, _, mem = timed(lambda: sampler.sample_plan(x0, x1), 1)
            plan = sampler.get_map(x0, x1)
            idx = sampler.sample_map(plan, n)
        pg, err = plan_stats(plan, cost, opt)
        pgap, dist = pair_stats(idx[0], idx[1], cost, opt)
        msgs = {str(w.message).split(".")[0][:40] for w in caught}
        show(
            "torchcfm sinkhorn sample_plan",
            n,
            d,
            t,
            mem,
            pg,
            pgap,
            err,
            dist,
            "reg=0.05 abs; " + "; ".join(sorted(msgs)),
        )
    return exact_times


def bench_large(n: int, d: int, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(n, d, generator=g)
    x1 = torch.randn(n, d, generator=g) + 3.0
    backends = ["dense"] + (["keops"] if keops_available() else [])
    for backend in backends:
        solver = Sinkhorn(rel_reg=0.05, backend=backend)

        def run(solver=solver):
            c = solver(x0, x1)
            return c, c.pairs(generator=torch.Generator().manual_seed(0))

        t, (c, (i, _)), mem = timed(run, 1)
        show(
            f"sbflow sinkhorn f32 {backend}",
            n,
            d,
            t,
            mem,
            None,
            None,
            c.marginal_error,
            len(torch.unique(i)) / n,
            f"it={c.n_iter} converged={c.converged}",
        )
    if not keops_available():
        show("sbflow sinkhorn f32 keops", n, d, None, None, note="pykeops not usable here")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="n ∈ {256, 1024}, no large-n")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dims", type=int, nargs="+", default=[2, 64])
    parser.add_argument("--sizes", type=int, nargs="+", default=None)
    parser.add_argument("--large", type=int, nargs="*", default=None, help="large-n sizes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (1: fair vs single-threaded POT)"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = args.sizes or ([256, 1024] if args.quick else [256, 1024, 4096])
    large = args.large if args.large is not None else ([] if args.quick else [10_000])
    print(
        f"torch {torch.__version__}, POT {ot.__version__}, threads {torch.get_num_threads()}, "
        f"torchcfm {'yes' if OTPlanSampler else 'not installed'}, "
        f"keops {'yes' if keops_available() else 'no'}"
    )
    print(
        ROW.format(
            "method",
            "n",
            "d",
            "time s",
            "peak MB",
            "plan gap%",
            "pair gap%",
            "marg err",
            "distinct%",
            "note",
        )
    )
    # compile (or load from numba's cache) the auction once, outside the timings
    couple(torch.randn(8, 2), torch.randn(8, 2), "exact")
    ratios = []
    for n in sizes:
        for d in args.dims:
            reps = args.repeats if n <= 1024 else max(1, args.repeats // 2)
            ratios.append((n, d, *bench_size(n, d, reps, args.seed)))
    print("\nexact pairs, median time: torchcfm sample_plan / sbflow (> 1: sbflow faster)")
    for n, d, t_sb, t_cfm in ratios:
        ratio = "torchcfm not installed" if t_cfm is None else f"{t_cfm / t_sb:.2f}×"
        print(f"  n={n:<6d} d={d:<3d} sbflow {t_sb:.3f} s   {ratio}")
    for n in large:
        bench_large(n, 2, args.seed)


if __name__ == "__main__":
    main()
