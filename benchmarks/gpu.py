"""GPU benchmarks: entropic couplings at scale, training throughput, coupling scope.

Three sections, each printing a table of medians (ratios are the figure to quote; the
machines are shared, absolute times are hints):

``coupling``
    :class:`sbflow.couplings.Sinkhorn` on one GPU for ``n`` source and ``n`` target points,
    ``n`` = 1e3 … 1e6: the dense backend where the ``n × n`` cost fits in memory, KeOps
    (``O(n)`` memory) everywhere it is installed. Reports the solve time, the peak GPU memory
    allocated by torch, the sweeps, the time per sweep, convergence, the time to draw the
    pairs, and GeomLoss (``SamplesLoss("sinkhorn")`` with the same ε, ``debias=False``) side
    by side. Large ``n`` use a sweep budget (``--max-iter``); a row that hit it says so.
``train``
    Steps per second of OT-CFM training (8gaussians → moons, ``TimeMLP``) on one GPU with the
    library's :class:`~sbflow.training.Trainer`: exact OT on the CPU without and with the
    prefetch thread (the coupling of step k + 1 overlaps the GPU step k), Sinkhorn on the GPU,
    independent pairs, each in fp32 and bf16 autocast.
``scope``
    Local vs global couplings in a multi-process run: the time of one local exact-OT solve
    (each rank, its own batch) against gather + solve on rank 0 + broadcast of the pairs for
    the gathered batch. Runs on CPUs with gloo, so it needs no GPU; it launches its own
    processes on 127.0.0.1 unless started by torchrun.

Usage::

    python benchmarks/gpu.py --quick                       # coupling + train (needs CUDA)
    python benchmarks/gpu.py coupling --sizes 1000 100000 1000000
    python benchmarks/gpu.py train --batch-sizes 256 1024 4096
    python benchmarks/gpu.py scope --nproc 2 --batch 256   # CPU, gloo
    torchrun --nproc-per-node=4 benchmarks/gpu.py scope --device cuda
"""

from __future__ import annotations

import argparse
import math
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

import torch

__all__ = ["bench_coupling", "bench_scope", "bench_train", "main"]

MiB = 2**20


def _need_cuda(section: str, device: str = "cuda") -> None:
    if torch.device(device).type == "cuda" and not torch.cuda.is_available():
        sys.exit(
            f"benchmarks/gpu.py {section}: no CUDA device is available (torch "
            f"{torch.__version__}, cuda={torch.version.cuda}). Run it on a machine with an "
            f"NVIDIA GPU; the 'scope' section runs on CPUs."
        )


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4g}"
        return str(v)

    cells = [[fmt(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[k]) for row in cells)) for k, c in enumerate(columns)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.rjust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


# -- coupling ---------------------------------------------------------------------------------


def _free_bytes(dev: torch.device) -> int:
    if dev.type == "cuda":
        return torch.cuda.mem_get_info(dev)[0]
    return 4 * 2**30  # CPU runs (smoke tests): allow dense problems up to a few GiB


def _timed(fn: Callable[[], Any], reps: int) -> tuple[float, Any, float]:
    """Median seconds over ``reps`` calls, the last result, peak MiB allocated by one call.

    The peak is torch's CUDA allocator high-water mark (NaN without CUDA).
    """
    times, out, peak = [], None, math.nan
    cuda = torch.cuda.is_available()
    for _ in range(reps):
        out = None
        _sync()
        if cuda:
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
        tic = time.perf_counter()
        out = fn()
        _sync()
        times.append(time.perf_counter() - tic)
        if cuda:
            used = (torch.cuda.max_memory_allocated() - base) / MiB
            peak = used if math.isnan(peak) else max(peak, used)
    return statistics.median(times), out, peak


def bench_coupling(
    sizes: list[int],
    *,
    dim: int = 2,
    reps: int = 3,
    rel_reg: float = 0.05,
    max_iter: int = 2000,
    big_n: int = 100_000,
    big_max_iter: int = 60,
    pairs_max_n: int = 100_000,
    geomloss: bool = True,
    device: str = "cuda",
) -> list[dict[str, Any]]:
    """Time entropic couplings on the GPU; one row per (n, backend).

    Above ``big_n`` points a full solve takes minutes to hours (each sweep is two kernel
    reductions over ``n²`` pairs), so the sweeps are capped at ``big_max_iter`` and the row
    reports the time per sweep; GeomLoss and the pair draws run up to ``big_n`` /
    ``pairs_max_n`` only.

    Example:
        >>> rows = bench_coupling([1000], reps=1)  # doctest: +SKIP
    """
    from sbflow.couplings import Sinkhorn, keops_available, reg_to_blur

    _need_cuda("coupling", device)
    dev = torch.device(device)
    has_keops = keops_available()
    if not has_keops:
        print("pykeops is not usable here: only the dense backend runs (n limited by memory).")
    rows: list[dict[str, Any]] = []
    gen = torch.Generator(device=dev).manual_seed(0)
    if has_keops:  # compile the KeOps formulas once, outside the timings
        warm = torch.randn(2000, dim, device=dev, generator=gen)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tic = time.perf_counter()
            Sinkhorn(rel_reg=rel_reg, backend="keops", max_iter=50)(warm, warm + 1)
            _sync()
        print(f"KeOps first call (compilation): {time.perf_counter() - tic:.1f} s")
    for n in sizes:
        x0 = torch.randn(n, dim, device=dev, generator=gen)
        x1 = 0.5 * torch.randn(n, dim, device=dev, generator=gen) + 1.0
        free = _free_bytes(dev)
        backends = []
        # cost, one temporary of the same size and the plan
        if 3 * n * n * x0.element_size() < 0.7 * free:
            backends.append("dense")
        if has_keops:
            backends.append("keops")
        if not backends:
            rows.append({"n": n, "backend": "-", "note": "dense does not fit; no KeOps"})
            continue
        big = n > big_n
        reps_n = 1 if big else reps
        for backend in backends:
            budget = big_max_iter if big else max_iter
            solver = Sinkhorn(rel_reg=rel_reg, backend=backend, max_iter=budget)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a capped run is reported in the table
                seconds, coupling, peak = _timed(lambda s=solver, a=x0, b=x1: s(a, b), reps_n)
            row: dict[str, Any] = {
                "n": n,
                "backend": backend,
                "solve_s": seconds,
                "peak_MiB": peak,
                "sweeps": coupling.n_iter,
                "ms_per_sweep": 1e3 * seconds / max(coupling.n_iter, 1),
                "converged": coupling.converged,
                "marg_err": coupling.marginal_error,
                "note": f"sweeps capped at {budget}" if big else "",
            }
            if n <= pairs_max_n:
                g = torch.Generator(device=dev).manual_seed(1)
                row["pairs_s"], _, _ = _timed(lambda c=coupling, g=g: c.pairs(generator=g), 1)
            reg = coupling.reg
            del coupling
            rows.append(row)
        if geomloss and not big:
            rows.extend(_geomloss_rows(x0, x1, reg, n, has_keops, reps_n, reg_to_blur))
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    print(_table(rows, _COUPLING_COLUMNS))
    return rows


_COUPLING_COLUMNS = [
    "n",
    "backend",
    "solve_s",
    "peak_MiB",
    "sweeps",
    "ms_per_sweep",
    "converged",
    "marg_err",
    "pairs_s",
    "note",
]


def _geomloss_rows(
    x0: torch.Tensor,
    x1: torch.Tensor,
    reg: float,
    n: int,
    has_keops: bool,
    reps: int,
    reg_to_blur: Callable[[float], float],
) -> list[dict[str, Any]]:
    try:
        from geomloss import SamplesLoss
    except ImportError:
        return [{"n": n, "backend": "geomloss", "note": "geomloss not installed"}]
    free = _free_bytes(x0.device)
    modes = []
    if 3 * n * n * x0.element_size() < 0.7 * free:
        modes.append("tensorized")
    if has_keops:
        modes.append("online")
    rows = []
    for mode in modes:
        # Same ε: GeomLoss's cost is ‖x − y‖²/2 and ε = blur², i.e. blur = reg_to_blur(reg).
        loss = SamplesLoss(
            "sinkhorn", p=2, blur=reg_to_blur(reg), scaling=0.9, debias=False, backend=mode
        )
        seconds, _, peak = _timed(lambda fn=loss: fn(x0, x1), reps)
        rows.append(
            {
                "n": n,
                "backend": f"geomloss-{mode}",
                "solve_s": seconds,
                "peak_MiB": peak,
                "note": "fixed ε-schedule, no tolerance",
            }
        )
    return rows


# -- training throughput ----------------------------------------------------------------------


def bench_train(
    batch_sizes: list[int],
    *,
    steps: int = 200,
    hidden: int = 256,
    depth: int = 4,
    device: str = "cuda",
) -> list[dict[str, Any]]:
    """Steps per second of OT-CFM training on one GPU; one row per configuration.

    Example:
        >>> rows = bench_train([256], steps=20)  # doctest: +SKIP
    """
    from sbflow.data import sample_dataset
    from sbflow.losses import flow_matching_loss
    from sbflow.matching import Matcher
    from sbflow.models import TimeMLP
    from sbflow.paths import LinearPath
    from sbflow.training import TrainConfig, Trainer, step_seed

    _need_cuda("train", device)
    dev = torch.device(device)
    configs = [
        # (name, coupling, where the coupling runs, prefetch depth)
        ("exact (cpu), no prefetch", "exact", "cpu", 0),
        ("exact (cpu), prefetch 4", "exact", "cpu", 4),
        ("sinkhorn (on device), prefetch 4", "sinkhorn", "device", 4),
        ("independent", None, "cpu", 4),
    ]
    rows = []
    for batch in batch_sizes:
        for name, coupling, where, depth_ahead in configs:
            matcher = Matcher(coupling, LinearPath())

            def make_batch(step: int, m: Matcher = matcher, w: str = where, n: int = batch):
                g = torch.Generator().manual_seed(step_seed(0, step))
                x0 = sample_dataset("8gaussians", n, generator=g)
                x1 = sample_dataset("moons", n, generator=g)
                if w == "device":
                    x0, x1 = x0.to(dev), x1.to(dev)
                    gg = torch.Generator(device=dev).manual_seed(step_seed(0, step, 1))
                    i, j = m.couple(x0, x1, generator=gg)  # pairs drawn on the GPU
                    return m.sample_path(x0[i], x1[j], generator=gg)
                return m.sample(x0, x1, generator=g)

            for precision in ("fp32", "bf16"):
                torch.manual_seed(0)
                model = TimeMLP(2, hidden=hidden, depth=depth).to(dev)
                cfg = TrainConfig(
                    steps=steps,
                    warmup_steps=10,
                    progress=False,
                    prefetch=depth_ahead,
                    log_every=steps,
                    precision=precision,
                )
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    # warm-up: cuBLAS handles, autocast caches, KeOps/POT imports
                    Trainer(model, flow_matching_loss, make_batch, _replace(cfg, steps=10)).train()
                    trainer = Trainer(model, flow_matching_loss, make_batch, cfg)
                    _sync()
                    tic = time.perf_counter()
                    trainer.train()
                    _sync()
                seconds = time.perf_counter() - tic
                rows.append(
                    {
                        "batch": batch,
                        "coupling": name,
                        "precision": precision,
                        "steps_per_s": steps / seconds,
                        "pairs_per_s": steps * batch / seconds,
                        "final_loss": trainer.history[-1][1] if trainer.history else math.nan,
                    }
                )
    print(
        _table(rows, ["batch", "coupling", "precision", "steps_per_s", "pairs_per_s", "final_loss"])
    )
    return rows


def _replace(cfg: Any, **changes: Any) -> Any:
    import dataclasses

    return dataclasses.replace(cfg, **changes)


# -- coupling scope (multi-process) -----------------------------------------------------------


def _launch_local(nproc: int, argv: list[str]) -> int:
    """Start ``nproc`` copies of this script on 127.0.0.1 with torchrun's variables."""
    from sbflow.training.distributed import loopback_rank_envs

    procs = [
        subprocess.Popen([sys.executable, __file__, *argv], env=env)
        for env in loopback_rank_envs(nproc)
    ]
    return max(p.wait() for p in procs)


def bench_scope(
    *, batch: int = 256, dim: int = 2, reps: int = 20, method: str = "exact", device: str = "cpu"
) -> dict[str, float] | None:
    """Local vs global coupling cost; call in every process of a distributed run.

    Returns the medians on rank 0 (``None`` elsewhere): the local solve, and the global
    coupling split into gather, solve (rank 0) and broadcast; each is the maximum over ranks
    of one repetition, except the broadcast (rank 0's send: the others wait there for the
    solve).

    Example:
        >>> bench_scope(reps=3)  # doctest: +SKIP
    """
    import torch.distributed as dist

    from sbflow.matching import Matcher
    from sbflow.training.distributed import GlobalCouplingSampler, init_distributed
    from sbflow.training.prefetch import step_seed

    torch.set_num_threads(1)
    ctx = init_distributed(True, device=device)
    assert ctx is not None
    matcher = Matcher(method)
    sampler = GlobalCouplingSampler(matcher, ctx)
    keys = ("local", "global", "gather", "solve", "broadcast")
    samples: dict[str, list[float]] = {k: [] for k in keys}
    for rep in range(reps + 2):  # two warm-up repetitions (imports, connections)
        g = torch.Generator().manual_seed(step_seed(0, rep, ctx.rank))
        x0 = torch.randn(batch, dim, generator=g)
        x1 = 0.5 * torch.randn(batch, dim, generator=g) + 1.0
        ctx.barrier()
        tic = time.perf_counter()
        matcher.couple(x0, x1, generator=g)
        local = time.perf_counter() - tic
        ctx.barrier()
        tic = time.perf_counter()
        sampler.pairs(x0, x1, g)
        total = time.perf_counter() - tic
        t = sampler.timings
        values = torch.tensor(
            [local, total, t["gather"], t["solve"], t["broadcast"]], dtype=torch.float64
        )
        dist.all_reduce(values, op=dist.ReduceOp.MAX, group=ctx.coupling_group)
        # The other ranks wait for rank 0's solve inside the broadcast: report rank 0's own.
        sent = torch.tensor([t["broadcast"]], dtype=torch.float64)
        dist.all_reduce(sent, op=dist.ReduceOp.MIN, group=ctx.coupling_group)
        values[4] = sent[0]
        if rep >= 2:
            for k, v in zip(keys, values.tolist(), strict=True):
                samples[k].append(v)
    if not ctx.is_main:
        return None
    med = {k: statistics.median(v) for k, v in samples.items()}
    world = ctx.world_size
    print(
        f"coupling scope, {world} processes ({ctx.backend}), {method} OT, batch {batch} per "
        f"rank (global problem {world * batch} × {world * batch}), dim {dim}, "
        f"median of {reps}:"
    )
    rows = [
        {"what": "local solve (each rank)", "ms": 1e3 * med["local"], "x local": 1.0},
        {
            "what": "global: total",
            "ms": 1e3 * med["global"],
            "x local": med["global"] / med["local"],
        },
        {"what": "  all_gather", "ms": 1e3 * med["gather"]},
        {"what": "  solve on rank 0", "ms": 1e3 * med["solve"]},
        {"what": "  broadcast of the pairs", "ms": 1e3 * med["broadcast"]},
    ]
    print(_table(rows, ["what", "ms", "x local"]))
    return med


# -- command line -----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and run the chosen sections.

    Example:
        >>> main(["scope", "--help"])  # doctest: +SKIP
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "section", nargs="?", default="all", choices=["all", "coupling", "train", "scope"]
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, few repetitions")
    parser.add_argument("--sizes", type=int, nargs="+", help="coupling: numbers of points")
    parser.add_argument("--dim", type=int, default=2)
    parser.add_argument("--reps", type=int, default=None)
    parser.add_argument("--max-iter", type=int, default=2000, help="coupling: sweep budget")
    parser.add_argument("--no-geomloss", action="store_true")
    parser.add_argument("--batch-sizes", type=int, nargs="+", help="train: batch sizes")
    parser.add_argument("--steps", type=int, default=None, help="train: timed steps")
    parser.add_argument("--nproc", type=int, default=2, help="scope: processes to launch")
    parser.add_argument("--batch", type=int, default=256, help="scope: batch per process")
    parser.add_argument("--method", default="exact", help="scope: coupling solver")
    parser.add_argument(
        "--device",
        default=None,
        help="scope: cpu (gloo, default) or cuda (nccl); coupling/train: cuda (default) or cpu "
        "for a smoke run",
    )
    args = parser.parse_args(argv)

    if args.section == "scope":
        from sbflow.training.distributed import launched_by_torchrun

        if not launched_by_torchrun():
            return _launch_local(args.nproc, sys.argv[1:] if argv is None else argv)
        bench_scope(
            batch=args.batch,
            dim=args.dim,
            reps=args.reps or (5 if args.quick else 20),
            method=args.method,
            device=args.device or "cpu",
        )
        return 0
    device = args.device or "cuda"
    _need_cuda(args.section, device)
    where = torch.cuda.get_device_name() if device.startswith("cuda") else "cpu (smoke run)"
    if args.section in ("all", "coupling"):
        _need_cuda("coupling", device)
        sizes = args.sizes or (
            [1_000, 10_000, 100_000]
            if args.quick
            else [1_000, 10_000, 30_000, 100_000, 300_000, 1_000_000]
        )
        print(f"== entropic coupling on {where} ==")
        bench_coupling(
            sizes,
            dim=args.dim,
            reps=args.reps or (1 if args.quick else 3),
            max_iter=args.max_iter,
            geomloss=not args.no_geomloss,
            device=device,
        )
    if args.section in ("all", "train"):
        _need_cuda("train", device)
        batch_sizes = args.batch_sizes or ([256, 1024] if args.quick else [256, 1024, 4096])
        print(f"== OT-CFM training throughput on {where} ==")
        bench_train(batch_sizes, steps=args.steps or (50 if args.quick else 300), device=device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
