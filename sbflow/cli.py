"""The ``sbflow`` command line: fit, transport, couple, evaluate, datasets, demo.

Every command validates its inputs before doing any work, reports problems as one line on
stderr with exit code 2 (no traceback), and writes its output files atomically: a failed or
interrupted command leaves no half-written file behind.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

__all__ = ["build_parser", "main"]

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

_METHODS = ("i-cfm", "ot-cfm", "sb-cfm", "fm", "vp-cfm")
_COUPLINGS = ("independent", "exact", "sinkhorn", "unbalanced", "partial")
_SAMPLE_OUT = (".npy", ".npz", ".csv", ".pt")


class UsageError(Exception):
    """A problem with the command's inputs, reported without a traceback."""


def _check_output(path: str, suffixes: Sequence[str], what: str) -> Path:
    out = Path(path)
    if out.suffix.lower() not in suffixes:
        raise UsageError(
            f"{what} {out} has an unsupported suffix; use one of {', '.join(suffixes)}."
        )
    if out.is_dir():
        raise UsageError(f"{what} {out} is a directory; give a file name.")
    return out


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
    import sbflow.bridge as sb
    from sbflow.data import load_samples, save_samples

    out = _check_output(args.output, _SAMPLE_OUT, "output file")
    bridge = sb.load(args.bridge)
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
    )
    save_samples(out, y)
    print(f"transported {x.shape[0]} samples to {out}")
    return 0


def _cmd_couple(args: argparse.Namespace) -> int:
    from sbflow.couplings import couple
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
        options["reg"] = args.reg
    coupling = couple(x0, x1, method=args.method, **options)
    if args.write == "plan":
        result = coupling.plan()
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
    import sbflow.bridge as sb
    from sbflow.data import atomic_path, load_samples

    json_out = _check_output(args.json, (".json",), "metrics file") if args.json else None
    bridge = sb.load(args.bridge)
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


def _cmd_demo(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import sbflow.bridge as sb
    from sbflow.data import atomic_path, sample_dataset

    out_dir = Path(args.out)
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"--out {out_dir} exists and is not a directory.")
    source, target = args.source, args.target
    n_test = args.n_test
    g = torch.Generator().manual_seed(10_000 + args.seed)  # held out: not the training seeds
    x0 = sample_dataset(source, n_test, generator=g)
    x1 = sample_dataset(target, n_test, generator=g)
    methods = ["ot-cfm", "sb-cfm"]
    torch.set_num_threads(1)  # small MLPs: one intra-op thread is fastest on a laptop CPU
    fig, axes = plt.subplots(1, len(methods), figsize=(5.5 * len(methods), 5.5))
    rows = []
    print(f"sbflow demo: {source} → {target}, {args.steps} steps per method, CPU")
    for method, ax in zip(methods, axes):
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
        bridge.plot(
            x0,
            x1,
            ax=ax,
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
    plt.close(fig)
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
    key_help = "array name in .npz/.pt files, or AnnData obsm key (default: the only array / X)"

    p = sub.add_parser(
        "fit",
        help="fit a flow or bridge between sample sets and save it",
        description="Fit a flow (OT-CFM, I-CFM, FM, VP-CFM) or a Schrödinger bridge (SB-CFM) "
        "between two or more sample sets (files or built-in names) and save it.",
    )
    p.add_argument("sets", nargs="+", help="sample files or built-in names, in time order")
    p.add_argument("--out", "-o", default="bridge.pt", help="output bridge file (.pt)")
    p.add_argument("--method", "-m", choices=_METHODS, default="ot-cfm")
    p.add_argument("--times", nargs="+", type=_finite_float, help="times of the sets")
    p.add_argument("--coupling", choices=_COUPLINGS, help="override the method's coupling")
    p.add_argument("--sigma", type=_finite_float, help="path noise / diffusion (normalised)")
    fit_default = _fit_defaults()
    p.add_argument("--hidden", type=_positive_int, help=fit_default("hidden", "MLP width"))
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
    p.add_argument("--reverse", action="store_true", help="transport target → source")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--sde", action="store_true", help="simulate the bridge SDE")
    mode.add_argument("--ode", action="store_true", help="solve the probability-flow ODE")
    p.add_argument("--steps", type=_positive_int, help="fixed solver steps (default: adaptive)")
    p.add_argument("--t-start", type=_finite_float, help="start time (multi-snapshot bridges)")
    p.add_argument("--t-end", type=_finite_float, help="end time (multi-snapshot bridges)")
    p.add_argument("--seed", type=int, default=0, help="seed of the SDE noise")
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``sbflow`` command line; return the exit code.

    Example:
        >>> main(["datasets"])  # doctest: +ELLIPSIS
        normal ...
        0
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2)
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        where = getattr(args, "run_dir", None)
        hint = f"; rerun the same command to resume from {where}" if where else ""
        print(f"sbflow {args.command}: interrupted{hint}.", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (UsageError, ValueError, TypeError, ImportError, OSError, RuntimeError) as err:
        if os.environ.get("SBFLOW_DEBUG"):  # developers: show the traceback
            raise
        print(f"sbflow {args.command}: error: {err}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
