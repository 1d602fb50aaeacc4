"""The ``sbflow`` command line: fit, transport, couple, evaluate, plot, datasets, demo, benchmark.

Every command validates its inputs and its destinations before doing any work, and writes its
output files atomically: a failed or interrupted command leaves no half-written file behind.

Exit codes: 0 success; 2 a problem with the inputs, files or settings, reported as one line
on stderr that names the flag to change (no traceback); 130 interrupted (Ctrl-C or SIGTERM;
with ``--run-dir``, rerunning the command resumes); 70 an internal error (a bug in sbflow:
one line asking for a report; ``--debug`` or ``SBFLOW_DEBUG=1`` shows the traceback).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import time
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

__all__ = ["build_parser", "main"]

EXIT_USAGE = 2
EXIT_INTERNAL = 70  # EX_SOFTWARE of sysexits.h
EXIT_INTERRUPTED = 130


def _methods() -> tuple[str, ...]:
    """Registered methods, after importing the modules named in ``SBFLOW_PLUGINS``.

    ``SBFLOW_PLUGINS="mypkg.methods,other"`` imports those modules first, so methods and
    models they register are accepted by ``--method`` and by bridge files.
    """
    import importlib

    from sbflow.methods import method_names

    for name in filter(None, os.environ.get("SBFLOW_PLUGINS", "").replace(",", " ").split()):
        importlib.import_module(name)
    return method_names()


_COUPLINGS = ("independent", "exact", "sinkhorn", "unbalanced", "partial")
_SAMPLE_OUT = (".npy", ".npz", ".csv", ".pt")


class UsageError(Exception):
    """A problem with the command's inputs, reported without a traceback."""


def _check_writable(path: Path, what: str) -> Path:
    """:func:`~sbflow.data.io.check_writable`, its refusal reported as a usage error."""
    from sbflow.data.io import check_writable

    try:
        return check_writable(path, what)
    except (ValueError, OSError) as err:
        raise UsageError(str(err)) from None


def _check_output(path: str, suffixes: Sequence[str], what: str) -> Path:
    """Check an output file before any work: suffix, and that it can be written."""
    out = Path(path)
    if out.suffix.lower() not in suffixes:
        raise UsageError(
            f"{what} {out} has an unsupported suffix; use one of {', '.join(suffixes)}."
        )
    return _check_writable(out, what)


def _check_run_dir(path: str) -> None:
    """Check ``--run-dir`` before training: a directory (or creatable) that can be written."""
    run_dir = Path(path)
    if run_dir.exists() and not run_dir.is_dir():
        raise UsageError(f"--run-dir {run_dir} exists and is not a directory.")
    _check_writable(run_dir / "checkpoint.pt", "--run-dir checkpoint")


def _load_bridge(path: str) -> Any:
    """:func:`sbflow.load`, with any malformed-file error reported against the file."""
    import sbflow.bridge as sb

    try:
        return sb.load(path)
    except (KeyError, TypeError, AttributeError, IndexError, RuntimeError) as err:
        detail = f"missing entry {err}" if isinstance(err, KeyError) else _one_line(err)
        raise UsageError(
            f"{path} is not a valid sbflow bridge file ({detail}); re-create it with 'sbflow fit'."
        ) from err


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from err
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from err
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _print_metrics(title: str, metrics: dict[str, float]) -> None:
    print(title)
    for name, value in metrics.items():
        print(f"  {name:<24s} {value:.4g}")


# -- commands ---------------------------------------------------------------------------------


def _cmd_fit(args: argparse.Namespace) -> int:
    import sbflow.bridge as sb

    out = _check_output(args.out, (".pt",), "output bridge file")
    if args.tensorboard and args.run_dir is None:
        raise UsageError("--tensorboard writes its files into --run-dir; give --run-dir DIR too.")
    if args.run_dir is not None:
        _check_run_dir(args.run_dir)
    if len(args.sets) < 2:
        raise UsageError("fit needs at least two sample sets (source and target).")
    options: dict[str, Any] = {
        "method": args.method,
        "coupling": args.coupling,
        "sigma": args.sigma,
        "hidden": args.hidden,
        "depth": args.depth,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "lr_schedule": args.lr_schedule,
        "ema_decay": args.ema_decay,
        "seed": args.seed,
        "device": args.device,
        "normalise": {"scalar": True, "features": "features", "none": False}[args.normalise],
        "run_dir": args.run_dir,
        "progress": not args.no_progress,
        "key": args.key,
        "tensorboard": args.tensorboard,
        "paired": args.paired,
    }
    options = {k: v for k, v in options.items() if v is not None or k in ("coupling", "sigma")}
    if args.times is not None or len(args.sets) > 2:
        times = args.times if args.times is not None else list(range(len(args.sets)))
        bridge = sb.fit(list(args.sets), times=times, **options)
    else:
        bridge = sb.fit(args.sets[0], args.sets[1], **options)
    bridge.save(out)
    print(f"saved {bridge!r} to {out}")
    return 0


def _cmd_transport(args: argparse.Namespace) -> int:
    from sbflow.data import load_samples, save_samples

    out = _check_output(args.output, _SAMPLE_OUT, "output file")
    bridge = _load_bridge(args.bridge)
    x = load_samples(args.input, key=args.key)
    sde = True if args.sde else (False if args.ode else None)
    gen = torch.Generator().manual_seed(args.seed)
    y = bridge.transport(
        x,
        reverse=args.reverse,
        sde=sde,
        steps=args.steps,
        t_start=args.t_start,
        t_end=args.t_end,
        generator=gen,
        clip=args.clip,
        progress=False if args.no_progress else None,
    )
    save_samples(out, y)
    print(f"transported {x.shape[0]} samples to {out}")
    return 0


def _cmd_couple(args: argparse.Namespace) -> int:
    import inspect

    from sbflow.couplings import SOLVERS, couple
    from sbflow.data import load_samples, save_samples

    out = _check_output(args.output, (".npy", ".npz", ".csv"), "output file")
    x0 = load_samples(args.x0, key=args.key)
    x1 = load_samples(args.x1, key=args.key)
    if x0.shape[1:] != x1.shape[1:]:
        raise UsageError(
            f"x0 has samples of shape {tuple(x0.shape[1:])} but x1 has {tuple(x1.shape[1:])}; "
            f"both files must hold points of the same dimension."
        )
    options: dict[str, Any] = {}
    if args.reg is not None:
        if "reg" not in inspect.signature(SOLVERS[args.method]).parameters:
            takes = [m for m, cls in SOLVERS.items() if "reg" in inspect.signature(cls).parameters]
            raise UsageError(
                f"--reg does not apply to --method {args.method}; it sets the entropic "
                f"regularisation of --method {' / '.join(takes)}."
            )
        options["reg"] = args.reg
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        coupling = couple(x0, x1, method=args.method, **options)
    if not coupling.converged and not args.allow_unconverged:
        reg = "" if args.reg is None else f" (now {args.reg:g})"
        raise UsageError(
            f"the {args.method} solver did not converge (marginal error "
            f"{coupling.marginal_error:.2g}), so its {args.write} would be wrong; raise "
            f"--reg{reg} or use --method exact, or pass --allow-unconverged to write it anyway."
        )
    for w in caught:  # not before: a refusal above already says what the warning would
        warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    if args.write == "plan":
        result = coupling.plan()
        if not bool(torch.isfinite(result).all()):
            raise UsageError(
                f"the {args.method} plan holds NaN or infinite entries, so it was not written; "
                f"raise --reg or use --method exact."
            )
        save_samples(out, result, key="plan")
    else:
        gen = torch.Generator().manual_seed(args.seed)
        i, j = coupling.pairs(generator=gen)
        pairs = torch.stack([i, j], dim=1).cpu()
        if out.suffix.lower() == ".npz":
            save_samples(out, pairs, key="pairs", extra={"i": i.cpu(), "j": j.cpu()})
        else:
            save_samples(out, pairs, key="pairs")
    print(
        f"{args.method} coupling of {coupling.n} × {coupling.m} points: cost {coupling.cost:.6g}, "
        f"converged {coupling.converged}; wrote {args.write} to {out}"
    )
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from sbflow.data import atomic_path, load_samples

    json_out = _check_output(args.json, (".json",), "metrics file") if args.json else None
    bridge = _load_bridge(args.bridge)
    gen = torch.Generator().manual_seed(args.seed)
    x0 = load_samples(args.x0, key=args.key, n=args.n, generator=gen)
    x1 = load_samples(args.x1, key=args.key, n=args.n, generator=gen)
    metrics = bridge.evaluate(x0, x1, t_start=args.t_start, t_end=args.t_end)
    _print_metrics(f"{bridge.method}: {x0.shape[0]} → {x1.shape[0]} samples", metrics)
    if json_out is not None:
        with atomic_path(json_out) as tmp:
            tmp.write_text(json.dumps(metrics, indent=2))
    return 0


def _cmd_datasets(args: argparse.Namespace) -> int:
    from sbflow.data import DATASETS, sample_dataset, save_samples

    if args.name is None:
        if args.out is not None:
            raise UsageError("--out needs --name: which dataset to write.")
        for info in DATASETS.values():
            dims = "any dim" if info.any_dim else f"{info.default_dim}-D"
            print(f"{info.name:<14s} {dims:<8s} {info.description}")
        return 0
    out = _check_output(args.out, _SAMPLE_OUT, "output file") if args.out else None
    x = sample_dataset(
        args.name, args.n, generator=torch.Generator().manual_seed(args.seed), dim=args.dim
    )
    if out is None:
        print(f"{args.name}: {tuple(x.shape)}, mean {x.mean(0).tolist()}, std {x.std(0).tolist()}")
        return 0
    save_samples(out, x)
    print(f"wrote {x.shape[0]} samples of {args.name} to {out}")
    return 0


def _cmd_plot(args: argparse.Namespace) -> int:
    from sbflow._inference import inference_threads
    from sbflow.data import DATASETS, load_samples, subsample
    from sbflow.plotting import plot_bridge

    out = _check_output(args.out, (".png", ".pdf", ".svg"), "figure file")
    bridge = _load_bridge(args.bridge)
    gen = torch.Generator().manual_seed(args.seed)

    def read(source: str) -> torch.Tensor:
        if source.strip().lower() in DATASETS:  # as in load_samples: a name, never a file
            return load_samples(source, n=args.n, generator=gen)
        x = load_samples(source, key=args.key)
        return subsample(x, min(args.n, x.shape[0]), generator=gen)

    x0 = read(args.source)
    x1 = read(args.target) if args.target is not None else None
    sde = True if args.sde else (False if args.ode else None)
    with inference_threads(1):
        plot_bridge(
            bridge,
            x0,
            x1,
            path=out,
            n_paths=args.paths,
            sde=sde,
            generator=gen,
            title=args.title,
            features=tuple(args.features) if args.features else None,
            image_shape=tuple(args.image_shape) if args.image_shape else None,
        )
    print(f"wrote {out}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from matplotlib.figure import Figure

    import sbflow.bridge as sb
    from sbflow._inference import inference_threads
    from sbflow.data import atomic_path, sample_dataset
    from sbflow.plotting import plot_bridge

    out_dir = Path(args.out)
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"--out {out_dir} exists and is not a directory.")
    for name in ("trajectories.png", "ot-cfm.pt", "sb-cfm.pt"):
        _check_writable(out_dir / name, "demo output")
    source, target = args.source, args.target
    n_test = args.n_test
    g = torch.Generator().manual_seed(10_000 + args.seed)  # held out: not the training seeds
    x0 = sample_dataset(source, n_test, generator=g)
    x1 = sample_dataset(target, n_test, generator=g)
    methods = ["ot-cfm", "sb-cfm"]
    # One row per method: trajectories over the source, and the target beside the result.
    fig = Figure(figsize=(10.5, 5.0 * len(methods) + 0.6), layout="constrained")
    axes = fig.subplots(len(methods), 2)
    rows = []
    print(f"sbflow demo: {source} → {target}, {args.steps} steps per method, CPU")
    with inference_threads(1):  # small MLPs: one intra-op thread is fastest on a CPU
        for method, pair in zip(methods, axes):
            t0 = time.perf_counter()
            bridge = sb.fit(
                source,
                target,
                method=method,
                steps=args.steps,
                lr=args.lr,
                seed=args.seed,
                progress=not args.no_progress,
                device="cpu",
            )
            seconds = time.perf_counter() - t0
            metrics = bridge.evaluate(x0, x1)
            rows.append((method, seconds, metrics))
            plot_bridge(
                bridge,
                x0,
                x1,
                ax=list(pair),
                n_paths=300,
                sde=False,
                title=f"{method}: W2 {metrics['w2']:.3f}, NFE {metrics['nfe']:.0f}",
                generator=torch.Generator().manual_seed(0),
            )
            out_dir.mkdir(parents=True, exist_ok=True)
            bridge.save(out_dir / f"{method}.pt")
    fig.suptitle(f"{source} → {target}: probability-flow ODE trajectories")
    png = out_dir / "trajectories.png"
    with atomic_path(png) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    print(
        f"{'method':<8s} {'fit s':>6s} {'W2':>7s} {'W2 SDE':>7s} {'NFE':>5s} {'PE':>8s} "
        f"{'W2²(x0,x1)':>11s} {'|PE-W2²|/W2²':>13s}"
    )
    for method, seconds, m in rows:
        w2_sde = f"{m['w2_sde']:.3f}" if "w2_sde" in m else "-"
        print(
            f"{method:<8s} {seconds:6.1f} {m['w2']:7.3f} {w2_sde:>7s} {m['nfe']:5.0f} "
            f"{m['path_energy']:8.3f} {m['w2_ot'] ** 2:11.3f} {m['normalized_path_energy']:13.3f}"
        )
    print(f"wrote {png} and the fitted bridges to {out_dir}/")
    return 0


def _cmd_benchmark(args: argparse.Namespace) -> int:
    import sbflow.bridge as sb
    from sbflow._inference import inference_threads
    from sbflow.groundtruth import EOTBenchmark, score_conditional_sampler
    from sbflow.methods import get_method_class

    cls = get_method_class(args.method)
    if cls.simulation != "sde" or cls.gaussian_source:
        raise UsageError(
            f"--method {args.method} learns a deterministic map (an ODE): its conditional "
            f"plan π(·|x) is a point mass, which the entropic-OT benchmark cannot score. "
            f"Choose a bridge method (e.g. --method sb-cfm, imf or light-sb)."
        )
    for eps in args.eps:
        if not eps > 0:
            raise UsageError(f"--eps must be > 0 (ε = σ² of the reference); got {eps:g}.")
    print(
        f"sbflow benchmark: {args.method} on the Gaussian-mixture entropic-OT benchmark "
        f"(seed {args.seed}; {args.n_train} training samples per side, {args.steps} steps; "
        f"cBW2-UVP over {args.n_inputs} inputs x {args.n_samples} draws; floor = exact sampler)"
    )
    header = (
        f"{'D':>4s} {'eps':>6s} {'fit s':>7s} {'cBW2-UVP':>9s} {'floor':>7s} "
        f"{'BW2-UVP':>8s} {'floor':>7s}"
    )
    print(header)
    with inference_threads(1):
        for eps in args.eps:
            for dim in args.dims:
                bench = EOTBenchmark(dim=dim, eps=eps, seed=args.seed)
                gen = torch.Generator().manual_seed(args.seed)
                x0 = bench.sample_input(args.n_train, gen)
                x1 = bench.sample_target(args.n_train, gen)
                start = time.perf_counter()
                bridge = sb.fit(
                    x0, x1, method=args.method, sigma=bench.sigma, steps=args.steps,
                    batch_size=args.batch_size, seed=args.seed, progress=not args.no_progress,
                )  # fmt: skip
                seconds = time.perf_counter() - start
                sim_gen = torch.Generator().manual_seed(args.seed + 1)

                def sampler(x: torch.Tensor, n: int, bridge: Any = bridge, g: Any = sim_gen) -> Any:
                    return bridge.sample_conditional(x, n, generator=g, steps=args.sde_steps)

                score = score_conditional_sampler(
                    bench, sampler, args.n_inputs, args.n_samples, args.n_marginal,
                    torch.Generator().manual_seed(args.seed + 2),
                )  # fmt: skip
                print(
                    f"{dim:4d} {eps:6g} {seconds:7.1f} {score.cbw2_uvp:9.3f} "
                    f"{score.floor_cbw2_uvp:7.3f} {score.bw2_uvp:8.3f} {score.floor_bw2_uvp:7.3f}",
                    flush=True,
                )
    return 0


# -- parser -----------------------------------------------------------------------------------


def _fit_defaults() -> Any:
    """``help(name, text)`` → ``"text (default: <sbflow.fit's default>)"``."""
    import inspect

    import sbflow.bridge as sb

    params = inspect.signature(sb.fit).parameters

    def text(name: str, what: str) -> str:
        return f"{what} (default: {params[name].default})"

    return text


def build_parser() -> argparse.ArgumentParser:
    """The ``sbflow`` argument parser (one sub-parser per command).

    Example:
        >>> build_parser().parse_args(["datasets"]).command
        'datasets'
    """
    parser = argparse.ArgumentParser(
        prog="sbflow",
        description="Optimal-transport couplings and Schrödinger bridges between sample sets.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    methods = _methods()  # once: it imports the SBFLOW_PLUGINS modules
    key_help = "array name in .npz/.pt files, or AnnData obsm key (default: the only array / X)"

    p = sub.add_parser(
        "fit",
        help="fit a flow or bridge between sample sets and save it",
        description="Fit a flow (OT-CFM, I-CFM, FM, VP-CFM) or a Schrödinger bridge (SB-CFM) "
        "between two or more sample sets (files or built-in names) and save it.",
    )
    p.add_argument("sets", nargs="+", help="sample files or built-in names, in time order")
    p.add_argument("--out", "-o", default="bridge.pt", help="output bridge file (.pt)")
    from sbflow.methods import METHODS

    p.add_argument(
        "--method",
        "-m",
        choices=methods,
        default="ot-cfm",
        help="; ".join(f"{k}: {v}" for k, v in METHODS.items()) + " (default: ot-cfm)",
    )
    p.add_argument("--times", nargs="+", type=_finite_float, help="times of the sets")
    p.add_argument("--coupling", choices=_COUPLINGS, help="override the method's coupling")
    p.add_argument(
        "--sigma",
        type=_finite_float,
        help="σ in data units per unit of --times (reg = 2σ²); default: the method's",
    )
    fit_default = _fit_defaults()
    p.add_argument(
        "--hidden",
        type=_positive_int,
        help="MLP width (default: the method's; 64, wider with D for sb-cfm and imf)",
    )
    p.add_argument("--depth", type=_positive_int, help=fit_default("depth", "hidden layers"))
    p.add_argument("--steps", type=_positive_int, help=fit_default("steps", "optimiser steps"))
    p.add_argument("--batch-size", type=_positive_int, help=fit_default("batch_size", "pairs"))
    p.add_argument("--lr", type=_finite_float, help=fit_default("lr", "peak learning rate"))
    p.add_argument(
        "--lr-schedule",
        choices=("cosine", "constant"),
        help=fit_default("lr_schedule", "after warm-up"),
    )
    p.add_argument("--ema-decay", type=_finite_float, help=fit_default("ema_decay", "weight EMA"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    p.add_argument("--normalise", choices=("scalar", "features", "none"), default="scalar")
    p.add_argument("--run-dir", help="checkpoint directory; rerun the command to resume")
    p.add_argument("--key", help=key_help)
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--tensorboard", action="store_true", help="log to TensorBoard in --run-dir")
    p.add_argument(
        "--paired", action="store_true", help="rows of the sets are matched samples (supervised)"
    )
    p.set_defaults(func=_cmd_fit)

    p = sub.add_parser(
        "transport",
        help="push samples through a saved bridge",
        description="Transport samples from the source side to the target side of a saved "
        "bridge (or back with --reverse) and write them to a file.",
    )
    p.add_argument("bridge", help="bridge file written by 'sbflow fit'")
    p.add_argument("input", help="samples (file or built-in name)")
    p.add_argument("output", help="output file (.npy, .npz, .csv, .pt)")
    p.add_argument(
        "--reverse", action="store_true", help="transport target → source (backward in time)"
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--sde", action="store_true", help="simulate the bridge SDE")
    mode.add_argument("--ode", action="store_true", help="solve the probability-flow ODE")
    p.add_argument("--steps", type=_positive_int, help="fixed solver steps (default: adaptive)")
    p.add_argument(
        "--t-start",
        type=_finite_float,
        help="start time (default: first time, last with --reverse)",
    )
    p.add_argument(
        "--t-end",
        type=_finite_float,
        help="end time; before --t-start integrates backward (default: the other end)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the SDE noise")
    p.add_argument(
        "--clip",
        action="store_true",
        help="clip the output to the per-feature range of the training data on that side",
    )
    p.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar (default: one on an interactive terminal for long runs)",
    )
    p.add_argument("--key", help=key_help)
    p.set_defaults(func=_cmd_transport)

    p = sub.add_parser(
        "couple",
        help="couple two sample files with optimal transport",
        description="Compute an OT coupling between two sample files and write the matched "
        "index pairs (one row i, j per pair) or the dense plan.",
    )
    p.add_argument("x0", help="source samples (file or built-in name)")
    p.add_argument("x1", help="target samples (file or built-in name)")
    p.add_argument("output", help="output file (.npy, .npz, .csv)")
    p.add_argument("--method", choices=_COUPLINGS, default="exact")
    p.add_argument("--reg", type=_finite_float, help="entropic regularisation (cost units)")
    p.add_argument("--write", choices=("pairs", "plan"), default="pairs")
    p.add_argument(
        "--allow-unconverged",
        action="store_true",
        help="write the result even if the solver did not converge (default: refuse)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed for drawing pairs from a plan")
    p.add_argument("--key", help=key_help)
    p.set_defaults(func=_cmd_couple)

    p = sub.add_parser(
        "evaluate",
        help="score a saved bridge on held-out samples",
        description="Transport x0 with a saved bridge and compare with held-out x1: W2, W1, "
        "energy distance, MMD, NFE and normalised path energy.",
    )
    p.add_argument("bridge", help="bridge file written by 'sbflow fit'")
    p.add_argument("x0", help="source-side samples (file or built-in name)")
    p.add_argument("x1", help="held-out target samples (file or built-in name)")
    p.add_argument("-n", type=_positive_int, default=None, help="use n samples of each set")
    p.add_argument("--t-start", type=_finite_float)
    p.add_argument("--t-end", type=_finite_float)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="also write the metrics to this .json file")
    p.add_argument("--key", help=key_help)
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser(
        "datasets",
        help="list the built-in sample sets (or write samples of one)",
        description="List the built-in sample sets; with --name, draw samples (and write them "
        "with --out).",
    )
    p.add_argument("--name", help="dataset to draw from")
    p.add_argument("-n", type=_positive_int, default=1000, help="number of samples")
    p.add_argument("--dim", type=_positive_int, help="dimension ('normal' only)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", "-o", help="output file (.npy, .npz, .csv, .pt)")
    p.set_defaults(func=_cmd_datasets)

    p = sub.add_parser(
        "plot",
        help="draw a saved bridge's trajectories and its result beside the target (PNG)",
        description="Transport source samples with a saved bridge and draw the trajectories "
        "and the transported samples beside the target: as is for 2-D data, projected on two "
        "principal components (or --features) above 2-D, against time in 1-D, and as an "
        "image grid for image-shaped samples (or --image-shape).",
    )
    p.add_argument("bridge", help="bridge file written by 'sbflow fit'")
    p.add_argument("--source", "-s", required=True, help="source samples (file or built-in)")
    p.add_argument("--target", "-t", help="target samples to compare with (file or built-in)")
    p.add_argument("--out", "-o", default="bridge.png", help="figure file (.png, .pdf, .svg)")
    p.add_argument(
        "--features", nargs=2, type=int, metavar=("I", "J"), help="plot these two features"
    )
    p.add_argument(
        "--image-shape", nargs="+", type=_positive_int, metavar="N", help="show as images, H W"
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--sde", action="store_true", help="simulate the bridge SDE")
    mode.add_argument("--ode", action="store_true", help="solve the probability-flow ODE")
    p.add_argument("-n", type=_positive_int, default=1000, help="samples per set (default 1000)")
    p.add_argument("--paths", type=int, default=300, help="trajectories drawn (default 300)")
    p.add_argument("--title", help="figure title (default: the method)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampling and SDE noise")
    p.add_argument("--key", help=key_help)
    p.set_defaults(func=_cmd_plot)

    p = sub.add_parser(
        "demo",
        help="fit OT-CFM and SB-CFM on 8gaussians → moons, print metrics, plot",
        description="Fit an OT-CFM flow and an SB-CFM bridge between two built-in sets on the "
        "CPU (about a minute), print W2, NFE and path energy, and write a PNG of trajectories.",
    )
    p.add_argument("--out", "-o", default="sbflow-demo", help="output directory")
    p.add_argument("--source", default="8gaussians")
    p.add_argument("--target", default="moons")
    p.add_argument("--steps", type=_positive_int, default=2000, help="steps per method")
    p.add_argument("--n-test", type=_positive_int, default=2000, help="held-out samples")
    p.add_argument("--lr", type=_finite_float, default=3e-3, help="peak learning rate")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser(
        "benchmark",
        help="score a bridge method against the exact entropic-OT plan (cBW2-UVP, floor)",
        description="Fit a registered bridge method on the Gaussian-mixture entropic-OT "
        "benchmark (Gushchin et al., NeurIPS 2023; regenerated from --seed, nothing is "
        "downloaded) with σ = √ε, and print its cBW2-UVP and BW2-UVP (%) beside the floor: the "
        "score of the exact sampler at the same sample sizes.",
    )
    p.add_argument(
        "--method", "-m", choices=methods, default="light-sb", help="(default: light-sb)"
    )
    p.add_argument(
        "--dims", nargs="+", type=_positive_int, default=[2, 16], help="dimensions (default 2 16)"
    )
    p.add_argument(
        "--eps", nargs="+", type=_finite_float, default=[1.0], help="ε = σ² values (default 1)"
    )
    p.add_argument("--steps", type=_positive_int, default=3000, help="fit steps (default 3000)")
    p.add_argument("--batch-size", type=_positive_int, default=512, help="(default: 512)")
    p.add_argument(
        "--n-train", type=_positive_int, default=50_000, help="samples per side (default 50000)"
    )
    p.add_argument("--n-inputs", type=_positive_int, default=200, help="test inputs (default 200)")
    p.add_argument(
        "--n-samples", type=_positive_int, default=1000, help="draws per input (default 1000)"
    )
    p.add_argument(
        "--n-marginal", type=_positive_int, default=10_000, help="draws for BW2-UVP (default 10000)"
    )
    p.add_argument(
        "--sde-steps", type=_positive_int, default=100, help="SDE steps if simulated (default 100)"
    )
    p.add_argument("--seed", type=int, default=0, help="benchmark instance and fit seed")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_benchmark)
    _add_debug_flag(parser, sub.choices.values())
    return parser


def _add_debug_flag(
    parser: argparse.ArgumentParser, commands: Iterable[argparse.ArgumentParser]
) -> None:
    """``--debug`` before or after the command name: show tracebacks instead of one line."""
    help_text = "on an error, show the Python traceback instead of one line"
    parser.add_argument("--debug", action="store_true", help=help_text)
    for command in commands:
        command.add_argument(
            "--debug", action="store_true", default=argparse.SUPPRESS, help=help_text
        )


# -- errors -----------------------------------------------------------------------------------

# Library messages give Python-API advice; on the command line, the flag to use is named
# instead. Phrases first (options without a flag), then ``name=value`` / ``raise name`` for
# every option the command has (see _flag_advice).
_CLI_PHRASES: tuple[tuple[str, str], ...] = (  # (regular expression, replacement)
    (r"resume=False to start over", "delete the run directory to start over"),
    (r"another run directory", "another --run-dir"),
    (r"enable grad_clip or normalise the data", "or check --normalise"),
    (
        r"Use pairs\(\) or barycentric_projection\(\), which never build it"
        r"( \(or sparse\(\)[^)]*\))?(, or allow more memory through max_bytes)?",
        "Write matched pairs instead (--write pairs), which never builds it",
    ),
    (r" \(max_bytes\)", ""),
    (r"[Rr]aise max_iter, ", ""),
    (r" \(or rel_reg\)", ""),
    (r"a relative one \(rel_reg=[^)]*\), ", ""),
    (r"reg=None with rel_reg > 0", "leave --reg out to use the default"),
    (r"or pass backend='dense' to silence this", "(the command line then uses the dense backend)"),
    (r"backend='keops'", "KeOps (pip install 'sbflow[keops]')"),
    (r"key=\.\.\.", "--key"),
    (r"with Bridge\.save\b", "with 'sbflow fit'"),
)
# Problems with the user's inputs, files or resources: exit 2. Anything else is a bug: exit 70.
_EXPECTED = (
    UsageError,
    ValueError,
    TypeError,
    ImportError,
    OSError,
    RuntimeError,
    ArithmeticError,
    MemoryError,
)
_ADVICE_VERBS = r"(raise|lower|increase|decrease|reduce|set|pass|use|give|choose|larger|smaller)"


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    if isinstance(err, KeyError) and len(err.args) == 1:
        text = repr(err.args[0])
    return text or type(err).__name__


def _flag_advice(message: str, parser: argparse.ArgumentParser | None) -> str:
    """Rewrite API advice in ``message`` into the command's flags (see ``_CLI_PHRASES``)."""
    for api, cli in _CLI_PHRASES:
        message = re.sub(api, cli, message)
    if parser is None:
        return message
    for action in parser._actions:
        long = [o for o in action.option_strings if o.startswith("--")]
        if not long or action.dest in ("help", "debug"):
            continue
        name, flag = re.escape(action.dest), long[0]
        message = re.sub(rf"(?<![\w.-]){name}=(['\"]?)([\w.+-]+)\1", rf"{flag} \2", message)
        message = re.sub(rf"\b{_ADVICE_VERBS} {name}\b(?![(=])", rf"\1 {flag}", message)
        if "_" in action.dest:  # batch_size, run_dir...: unambiguous wherever they appear
            message = re.sub(rf"(?<![\w.-]){name}\b(?![(=])", flag, message)
    return message


def _expected(err: BaseException) -> bool:
    """Whether ``err`` is a problem with the user's inputs, files or resources (not a bug)."""
    if isinstance(err, AssertionError):  # torchdiffeq asserts on a step-size underflow
        return "underflow in dt" in str(err)
    return isinstance(err, _EXPECTED)


def _show_warning(message: Any, category: type[Warning], *args: Any, **kwargs: Any) -> None:
    print(f"sbflow: warning: {' '.join(str(message).split())}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``sbflow`` command line; return the exit code.

    Errors become one line on stderr: exit 2 for problems with inputs, files or settings
    (naming the flag to change), 130 when interrupted, 70 for an internal error. ``--debug``
    (or the environment variable ``SBFLOW_DEBUG=1``) re-raises instead, with the traceback.

    Example:
        >>> main(["datasets"])  # doctest: +ELLIPSIS
        normal ...
        0
        >>> main(["datasets", "--name", "moons", "-o", "out.txt"])
        2
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2)
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    debug = bool(getattr(args, "debug", False) or os.environ.get("SBFLOW_DEBUG"))
    command = f"sbflow {args.command}"
    try:
        with warnings.catch_warnings():
            if not debug:
                warnings.showwarning = _show_warning
            return int(args.func(args))
    except KeyboardInterrupt:
        where = getattr(args, "run_dir", None)
        hint = f"; rerun the same command to resume from {where}" if where else ""
        print(f"{command}: interrupted{hint}.", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as err:
        if debug:
            raise
        message = _one_line(err)
        if not _expected(err):
            print(
                f"{command}: internal error, please report: {type(err).__name__}: {message} "
                f"(rerun with --debug for the traceback).",
                file=sys.stderr,
            )
            return EXIT_INTERNAL
        if isinstance(err, AssertionError):
            message = (
                "the ODE solver failed (its step size underflowed: the model's velocity is "
                "not finite or extreme here); check the bridge file and the input's scale, or "
                "use a fixed-step solver with --steps N"
            )
        sub = _subparser(parser, args.command)
        print(f"{command}: error: {_flag_advice(message, sub)}", file=sys.stderr)
        return EXIT_USAGE


def _subparser(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser | None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices.get(command)
    return None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
