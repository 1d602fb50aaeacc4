"""Schrödinger bridges against the entropic-OT ground truth, side by side in one run.

Problem: the Gaussian-mixture benchmark (:class:`sbflow.groundtruth.EOTBenchmark`, the
construction of Gushchin et al., NeurIPS 2023, regenerated from a seed): reference
``dX = √ε dW``, cost ½‖x − y‖², ε = σ² in data units. Each method is trained on the same
``--n-train`` unpaired samples of p0 and p1 and scored by
:func:`sbflow.groundtruth.score_conditional_sampler`: cBW2-UVP (%) of its conditional plans
π(·|x) on ``--n-inputs`` test inputs × ``--n-samples`` draws, BW2-UVP (%) of its target
marginal, each beside the floor (the exact sampler's score at the same sample sizes), and the
fit time.

Rows:

* ``light``: :func:`sbflow.lightsb.fit_light_sb` with its defaults (exact conditional sampling);
* ``sbflow sb-cfm``: ``sbflow.fit(x0, x1, method="sb-cfm", sigma=√ε, normalise=False,
  steps=--steps)``, its default flow-and-score MLP of width from D
  (:meth:`sbflow.methods.sb_cfm.SBCFM.default_width`: 16·D within [64, 256], 4·D beyond
  D = 64), π(·|x) by simulating the bridge SDE (100 Euler–Maruyama steps) from x repeated n
  times;
* ``sbflow imf``: iterative Markovian fitting (:class:`sbflow.methods.imf.IMF` and
  ``sbflow.fit`` with all their defaults: 6 rounds of 3 000 steps, round 0 twice as long,
  MLP width from D; ``--steps`` does not apply), σ = √ε, ``normalise=False``; π(·|x) by
  simulating its forward drift (100 Euler–Maruyama steps);
* ``torchcfm [SF]2M`` (if ``torchcfm`` imports): torchcfm's
  ``SchrodingerBridgeConditionalFlowMatcher(sigma=√ε)`` (exact-OT default of the matcher
  replaced by its entropic ``ot_method="sinkhorn"``, reg = 2σ²), torchcfm ``MLP`` flow and
  score networks (width ``--sf2m-width``, default 64: torchcfm's ``MLP`` default), Adam 1e-3,
  batch 256, ``--steps`` steps, the same SDE sampling.
  Its JSON rows also count the steps whose plan torchcfm replaced by the uniform plan (all
  mass underflowed: ``uniform_plan_steps``) and POT's other solver warnings.

Every network row records its MLP width (``"width"``; rows written before it was recorded have
none). Machines are shared and noisy: fit times are hints, the scores are the result.

Usage::

    python benchmarks/eot.py --quick                   # ε = 1, D ∈ {2, 16}
    python benchmarks/eot.py                           # ε ∈ {0.1, 1, 10}, D ∈ {2, 16, 64, 128}
    python benchmarks/eot.py --methods light --seeds 0 1 2 --json eot.json
    python benchmarks/eot.py --methods sf2m --dims 64 --sf2m-width 256   # a wider [SF]2M
    python benchmarks/eot.py --merge a.json b.json --json all.json   # one table from runs

``--json`` is rewritten after every row, so a stopped run keeps what it finished. ``--merge``
fits nothing: it joins the rows of earlier ``--json`` files (a later file's row replaces an
earlier one for the same method, width, ε, D and seed; all files must share the scoring sizes)
and prints them as one markdown table, as does every run at its end. The table gives each
row's widths; a method met at two widths at one D gets a column per width.
"""

from __future__ import annotations

import argparse
import json
import math
import time
import warnings
from collections.abc import Callable

import torch

from sbflow.data.io import atomic_path
from sbflow.groundtruth import EOTBenchmark, EOTScore, score_conditional_sampler
from sbflow.lightsb import fit_light_sb

__all__ = ["main", "markdown_table", "merge_runs", "run"]

Sampler = Callable[[torch.Tensor, int], torch.Tensor]

SDE_STEPS = 100


def _sde_sampler(
    velocity: Callable, score: Callable, sigma: float, gen: torch.Generator
) -> Sampler:
    """π(·|x) of an SDE model: repeat each x n times and simulate to t = 1."""
    from sbflow.simulation import integrate_sde

    def sample(x: torch.Tensor, n: int) -> torch.Tensor:
        rep = x.repeat_interleave(n, 0)
        res = integrate_sde(velocity, score, rep, g=sigma, steps=SDE_STEPS, generator=gen)
        return res.x.reshape(x.shape[0], n, -1)

    return sample


def fit_light(bench: EOTBenchmark, x0, x1, seed: int, steps: int) -> tuple[Sampler, float, int]:
    gen = torch.Generator().manual_seed(seed)
    kw = {} if steps <= 0 else {"steps": steps}
    fit = fit_light_sb(x0, x1, eps=bench.eps, generator=gen, **kw)
    return (lambda x, n: fit.model.sample_conditional(x, n, gen)), fit.seconds, len(fit.losses)


def fit_sbcfm(bench: EOTBenchmark, x0, x1, seed: int, steps: int) -> tuple[Sampler, float, int]:
    import sbflow

    start = time.perf_counter()
    bridge = sbflow.fit(
        x0,
        x1,
        method="sb-cfm",
        sigma=bench.sigma,
        normalise=False,
        steps=steps,
        seed=seed,
        progress=False,
    )
    seconds = time.perf_counter() - start
    gen = torch.Generator().manual_seed(seed + 1)

    def sample(x: torch.Tensor, n: int) -> torch.Tensor:
        rep = x.repeat_interleave(n, 0)
        y = bridge.transport(rep, sde=True, steps=SDE_STEPS, generator=gen)
        return y.reshape(x.shape[0], n, -1)

    sample.notes = {"width": _width(bridge)}  # type: ignore[attr-defined]
    return sample, seconds, steps


def _width(bridge) -> int | None:
    """The width of the bridge's default MLP, as ``fit`` recorded it (``None``: another net)."""
    return (bridge.options.get("model", {}).get("config") or {}).get("hidden")


def fit_sf2m(
    bench: EOTBenchmark, x0, x1, seed: int, steps: int, width: int = 64
) -> tuple[Sampler, float, int]:
    import numpy as np
    from torchcfm.conditional_flow_matching import SchrodingerBridgeConditionalFlowMatcher
    from torchcfm.models import MLP

    torch.manual_seed(seed)
    np.random.seed(seed)  # noqa: NPY002  (torchcfm draws its pairs with numpy's global RNG)
    dim, sigma = bench.dim, bench.sigma
    matcher = SchrodingerBridgeConditionalFlowMatcher(sigma=sigma, ot_method="sinkhorn")
    flow = MLP(dim=dim, out_dim=dim, w=width, time_varying=True)
    score = MLP(dim=dim, out_dim=dim, w=width, time_varying=True)
    opt = torch.optim.Adam([*flow.parameters(), *score.parameters()], lr=1e-3)
    gen = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(steps):
            _sf2m_step(matcher, flow, score, opt, x0, x1, gen)
    seconds = time.perf_counter() - start
    # torchcfm replaces a plan whose mass underflowed to 0 by the uniform (independent) plan.
    fallbacks = sum("reverting to uniform" in str(w.message) for w in caught)

    def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return flow(torch.cat([x, t[:, None]], dim=-1))

    def raw_score(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        # torchcfm's score head predicts (σ²/2)·∇log p_t; integrate_sde wants ∇log p_t.
        return score(torch.cat([x, t[:, None]], dim=-1)) * (2.0 / sigma**2)

    sim_gen = torch.Generator().manual_seed(seed + 1)
    sampler = _sde_sampler(velocity, raw_score, sigma, sim_gen)
    sampler.notes = {  # type: ignore[attr-defined]
        "width": width,
        "uniform_plan_steps": fallbacks,
        "solver_warnings": len(caught) - fallbacks,
    }
    return sampler, seconds, steps


def _sf2m_step(matcher, flow, score, opt, x0, x1, gen: torch.Generator) -> None:
    """One [SF]2M step as in torchcfm's examples: flow and score regression on a batch."""
    a = x0[torch.randint(0, len(x0), (256,), generator=gen)]
    b = x1[torch.randint(0, len(x1), (256,), generator=gen)]
    t, xt, ut, noise = matcher.sample_location_and_conditional_flow(a, b, return_noise=True)
    lam = matcher.compute_lambda(t)
    inp = torch.cat([xt, t[:, None]], dim=-1)
    loss = (flow(inp) - ut).pow(2).mean() + (lam[:, None] * score(inp) + noise).pow(2).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()


def fit_imf(bench: EOTBenchmark, x0, x1, seed: int, steps: int) -> tuple[Sampler, float, int]:
    import sbflow
    from sbflow.methods.imf import IMF, simulate_drift

    # IMF's own defaults (steps per round, width from D): ``steps`` is SB-CFM's budget.
    method = IMF(sigma=bench.sigma)
    start = time.perf_counter()
    bridge = sbflow.fit(x0, x1, method=method, normalise=False, seed=seed, progress=False)
    seconds = time.perf_counter() - start
    steps = sum(method.round_steps(bridge.options["steps"], r) for r in range(method.rounds))
    gen = torch.Generator().manual_seed(seed + 1)

    def sample(x: torch.Tensor, n: int) -> torch.Tensor:
        # The bridge's forward SDE has drift f (data units here: normalise=False, times [0, 1]).
        rep = x.repeat_interleave(n, 0)
        forward = bridge.model.forward_drift
        y = simulate_drift(forward, rep, bench.sigma, steps=SDE_STEPS, generator=gen)
        return y.reshape(x.shape[0], n, -1)

    sample.notes = {"width": _width(bridge)}  # type: ignore[attr-defined]
    return sample, seconds, steps


FITTERS = {"light": fit_light, "sb-cfm": fit_sbcfm, "imf": fit_imf, "sf2m": fit_sf2m}
LABELS = {
    "light": "light (LightSB)",
    "sb-cfm": "sbflow sb-cfm",
    "imf": "sbflow imf",
    "sf2m": "torchcfm [SF]2M",
}


def run(
    eps_values: list[float],
    dims: list[int],
    methods: list[str],
    seeds: list[int],
    steps: int,
    light_steps: int,
    n_train: int,
    n_inputs: int,
    n_samples: int,
    n_marginal: int,
    on_row: Callable[[list[dict]], None] | None = None,
    sf2m_width: int = 64,
) -> list[dict]:
    """Fit and score every method on every (ε, D, seed); ``on_row(rows)`` after each row."""
    rows = []
    for eps in eps_values:
        for dim in dims:
            for seed in seeds:
                bench = EOTBenchmark(dim, eps, seed)
                gen = torch.Generator().manual_seed(1000 + seed)
                x0 = bench.sample_input(n_train, gen)
                x1 = bench.sample_target(n_train, gen)
                for method in methods:
                    row = {"method": method, "eps": eps, "dim": dim, "seed": seed}
                    if method == "sf2m":  # known before the fit, so error rows keep it too
                        row["width"] = sf2m_width
                    try:
                        m_steps = light_steps if method == "light" else steps
                        kw = {"width": sf2m_width} if method == "sf2m" else {}
                        fitter = FITTERS[method]
                        sampler, seconds, m_steps = fitter(bench, x0, x1, seed, m_steps, **kw)
                        with torch.no_grad():
                            score: EOTScore = score_conditional_sampler(
                                bench,
                                sampler,
                                n_inputs,
                                n_samples,
                                n_marginal,
                                torch.Generator().manual_seed(2000 + seed),
                            )
                        row.update(getattr(sampler, "notes", {}))
                        row.update(
                            steps=m_steps,
                            fit_s=seconds,
                            cbw2_uvp=score.cbw2_uvp,
                            floor_cbw2_uvp=score.floor_cbw2_uvp,
                            bw2_uvp=score.bw2_uvp,
                            floor_bw2_uvp=score.floor_bw2_uvp,
                        )
                    except Exception as err:  # a broken row must not hide the others
                        row["error"] = f"{type(err).__name__}: {err}"
                    rows.append(row)
                    _print_row(row)
                    if on_row is not None:
                        on_row(rows)
    return rows


def _key(row: dict) -> tuple:
    return row["method"], row.get("width"), row["eps"], row["dim"], row["seed"]


def merge_runs(paths: list[str]) -> dict:
    """Join the rows of ``--json`` files; a later file's row replaces an earlier same-key row."""
    merged: dict[tuple, dict] = {}
    sizes = None
    for path in paths:
        with open(path) as fh:
            run_ = json.load(fh)
        these = (run_["n_inputs"], run_["n_samples"])
        if sizes is not None and these != sizes:
            raise ValueError(
                f"--merge: {path} was scored at {these[0]} inputs x {these[1]} samples, the "
                f"files before it at {sizes[0]} x {sizes[1]}; merge runs of one scoring size."
            )
        sizes = these
        for row in run_["rows"]:
            merged[_key(row)] = row
    rows = sorted(merged.values(), key=lambda r: (r["eps"], r["dim"], r["seed"]))
    return {"rows": rows, "n_inputs": sizes[0], "n_samples": sizes[1]}


def _fmt(value: float) -> str:
    return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"


def _cell(row: dict | None, field: str) -> str:
    if row is None:
        return "—"
    if "error" in row:
        return "error"
    return f"{row[field]:.0f}" if field == "fit_s" else _fmt(row[field])


_ANY = "any"  # a column that takes its method's rows at every width


def _columns(rows: list[dict]) -> list[tuple[str, object]]:
    """One column per method, or per (method, width) where it has two widths at one D.

    A width that follows D (SB-CFM's) keeps one column; two widths at one D would otherwise
    share a column and mislead across seeds.
    """
    found: dict[tuple, set] = {}
    for row in rows:
        found.setdefault((row["method"], row["dim"]), set()).add(row.get("width"))
    split = {key[0] for key, widths in found.items() if len(widths) > 1}
    cols: list[tuple[str, object]] = []
    for method in FITTERS:
        widths = {r.get("width") for r in rows if r["method"] == method}
        if method in split:
            cols += [(method, w) for w in sorted(widths, key=lambda w: -1 if w is None else w)]
        elif widths:
            cols.append((method, _ANY))
    return cols


def _column_of(row: dict, cols: list[tuple[str, object]]) -> tuple[str, object]:
    col = (row["method"], _ANY)
    return col if col in cols else (row["method"], row.get("width"))


def _label(col: tuple[str, object]) -> str:
    method, width = col
    name = "torchcfm [SF]2M" if method == "sf2m" else method
    if width == _ANY:
        return name
    return f"{name} w{'?' if width is None else width}"


def markdown_table(rows: list[dict]) -> str:
    """One line per (ε, D, seed): floor and cBW2-UVP per method, BW2-UVP, widths, fit times.

    A method fitted at two widths at one D gets a column per width (``w?``: a row written
    before widths were recorded).
    """
    cols = _columns(rows)
    cells: dict[tuple, dict[tuple, dict]] = {}
    for row in rows:
        cells.setdefault((row["eps"], row["dim"], row["seed"]), {})[_column_of(row, cols)] = row
    seeds = len({r["seed"] for r in rows}) > 1
    short = [_label(c) for c in cols]
    names = " / ".join(short)
    head = ["ε", "D"] + (["seed"] if seeds else []) + ["floor"] + short
    nets = [c for c in cols if c[0] != "light"]  # LightSB has no network width
    head += [f"BW2-UVP: floor / {names}"]
    head += [f"width: {' / '.join(_label(c) for c in nets)}", f"fit s: {names}"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (eps, dim, seed), by_col in sorted(cells.items()):
        scored = [r for r in by_col.values() if "error" not in r]
        # The floor is the exact sampler's score on the same inputs: one per cell.
        floor = _fmt(scored[0]["floor_cbw2_uvp"]) if scored else "—"
        floor_bw = _fmt(scored[0]["floor_bw2_uvp"]) if scored else "—"
        line = [f"{eps:g}", str(dim)] + ([str(seed)] if seeds else []) + [floor]
        line += [_cell(by_col.get(c), "cbw2_uvp") for c in cols]
        line.append(" / ".join([floor_bw] + [_cell(by_col.get(c), "bw2_uvp") for c in cols]))
        line.append(" / ".join(_width_cell(by_col.get(c)) for c in nets))
        line.append(" / ".join(_cell(by_col.get(c), "fit_s") for c in cols))
        lines.append("| " + " | ".join(line) + " |")
    return "\n".join(lines)


def _width_cell(row: dict | None) -> str:
    if row is None:
        return "—"
    width = row.get("width")
    return "?" if width is None else str(width)


def _write_json(path: str, rows: list[dict], n_inputs: int, n_samples: int) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps({"rows": rows, "n_inputs": n_inputs, "n_samples": n_samples}))


def _print_row(row: dict) -> None:
    head = f"{LABELS[row['method']]:<18} {row['eps']:>5g} {row['dim']:>4} {row['seed']:>4}"
    if "error" in row:
        print(f"{head}  ERROR {row['error'][:90]}", flush=True)
        return
    print(
        f"{head} {row['cbw2_uvp']:>9.3f} {row['floor_cbw2_uvp']:>7.3f} "
        f"{row['cbw2_uvp'] - row['floor_cbw2_uvp']:>+8.3f} {row['bw2_uvp']:>8.3f} "
        f"{row['floor_bw2_uvp']:>7.3f} {row['fit_s']:>7.1f} {row.get('width', '—'):>6}",
        flush=True,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="ε = 1, D ∈ {2, 16}, short fits")
    parser.add_argument("--eps", type=float, nargs="+", default=None)
    parser.add_argument("--dims", type=int, nargs="+", default=None)
    parser.add_argument("--methods", nargs="+", default=None, choices=sorted(FITTERS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--steps", type=int, default=None, help="SB-CFM / [SF]2M steps")
    parser.add_argument("--light-steps", type=int, default=0, help="0: the solver's default")
    parser.add_argument("--n-train", type=int, default=200_000)
    parser.add_argument("--n-inputs", type=int, default=None)
    parser.add_argument("--n-samples", type=int, default=None)
    parser.add_argument("--n-marginal", type=int, default=10_000)
    parser.add_argument(
        "--sf2m-width", type=int, default=64, help="width of [SF]2M's MLPs (torchcfm's: 64)"
    )
    parser.add_argument("--json", default=None, help="write the rows to this JSON file")
    parser.add_argument(
        "--merge", nargs="+", default=None, help="fit nothing: join these --json files' rows"
    )
    args = parser.parse_args(argv)
    if args.sf2m_width < 1:
        parser.error(f"--sf2m-width must be a positive integer; got {args.sf2m_width}.")
    if args.merge:
        merged = merge_runs(args.merge)
        if args.json:
            _write_json(args.json, merged["rows"], merged["n_inputs"], merged["n_samples"])
        print(f"{merged['n_inputs']} inputs x {merged['n_samples']} samples; scores in %")
        print(markdown_table(merged["rows"]))
        return
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", category=UserWarning)
    quick = args.quick
    methods = args.methods or ["light", "sb-cfm", "imf", "sf2m"]
    if "sf2m" in methods:
        try:
            import torchcfm  # noqa: F401
        except ImportError:
            print("torchcfm does not import: skipping the [SF]2M rows (pip install torchcfm)")
            methods = [m for m in methods if m != "sf2m"]
    eps_values = args.eps or ([1.0] if quick else [0.1, 1.0, 10.0])
    dims = args.dims or ([2, 16] if quick else [2, 16, 64, 128])
    steps = args.steps or (1000 if quick else 3000)
    n_inputs = args.n_inputs or (50 if quick else 200)
    n_samples = args.n_samples or (500 if quick else 1000)
    print(
        f"EOT benchmark: {n_inputs} inputs x {n_samples} samples, {args.n_train} training "
        f"samples, SDE {SDE_STEPS} steps, SB-CFM/[SF]2M {steps} steps; scores in %"
    )
    print(
        f"{'method':<18} {'eps':>5} {'D':>4} {'seed':>4} {'cBW2-UVP':>9} {'floor':>7} "
        f"{'excess':>8} {'BW2-UVP':>8} {'floor':>7} {'fit s':>7} {'width':>6}"
    )
    rows = run(
        eps_values,
        dims,
        methods,
        args.seeds,
        steps,
        args.light_steps,
        args.n_train,
        n_inputs,
        n_samples,
        args.n_marginal,
        sf2m_width=args.sf2m_width,
        on_row=(lambda rs: _write_json(args.json, rs, n_inputs, n_samples)) if args.json else None,
    )
    print(markdown_table(rows))
    if any(math.isnan(r.get("cbw2_uvp", 0.0)) for r in rows):
        print("warning: some scores are NaN")


if __name__ == "__main__":
    main()
