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
  steps=--steps)``, π(·|x) by simulating the bridge SDE (100 Euler–Maruyama steps) from x
  repeated n times;
* ``sbflow imf``: iterative Markovian fitting (:class:`sbflow.methods.imf.IMF` with its
  defaults, σ = √ε, ``normalise=False``, MLP width ``max(64, 4D)``: at width 64 the drift
  networks are too small from D = 16 on), ``--steps`` optimiser steps in all, split evenly
  over its rounds; π(·|x) by simulating its forward drift (100 Euler–Maruyama steps);
* ``torchcfm [SF]2M`` (if ``torchcfm`` imports): torchcfm's
  ``SchrodingerBridgeConditionalFlowMatcher(sigma=√ε)`` (exact-OT default of the matcher
  replaced by its entropic ``ot_method="sinkhorn"``, reg = 2σ²), torchcfm ``MLP`` flow and
  score networks (width 64), Adam 1e-3, batch 256, ``--steps`` steps, the same SDE sampling.

Machines are shared and noisy: fit times are hints, the scores are the result.

Usage::

    python benchmarks/eot.py --quick                   # ε = 1, D ∈ {2, 16}
    python benchmarks/eot.py                           # ε ∈ {0.1, 1, 10}, D ∈ {2, 16, 64, 128}
    python benchmarks/eot.py --methods light --seeds 0 1 2 --json eot.json
"""

from __future__ import annotations

import argparse
import json
import math
import time
import warnings
from collections.abc import Callable

import torch

from sbflow.groundtruth import EOTBenchmark, EOTScore, score_conditional_sampler
from sbflow.lightsb import fit_light_sb

__all__ = ["main", "run"]

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

    return sample, seconds, steps


def fit_sf2m(bench: EOTBenchmark, x0, x1, seed: int, steps: int) -> tuple[Sampler, float, int]:
    from torchcfm.conditional_flow_matching import SchrodingerBridgeConditionalFlowMatcher
    from torchcfm.models import MLP

    torch.manual_seed(seed)
    dim, sigma = bench.dim, bench.sigma
    matcher = SchrodingerBridgeConditionalFlowMatcher(sigma=sigma, ot_method="sinkhorn")
    flow = MLP(dim=dim, out_dim=dim, w=64, time_varying=True)
    score = MLP(dim=dim, out_dim=dim, w=64, time_varying=True)
    opt = torch.optim.Adam([*flow.parameters(), *score.parameters()], lr=1e-3)
    gen = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    for _ in range(steps):
        a = x0[torch.randint(0, len(x0), (256,), generator=gen)]
        b = x1[torch.randint(0, len(x1), (256,), generator=gen)]
        t, xt, ut, noise = matcher.sample_location_and_conditional_flow(a, b, return_noise=True)
        lam = matcher.compute_lambda(t)
        inp = torch.cat([xt, t[:, None]], dim=-1)
        loss = (flow(inp) - ut).pow(2).mean() + (lam[:, None] * score(inp) + noise).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    seconds = time.perf_counter() - start

    def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return flow(torch.cat([x, t[:, None]], dim=-1))

    def raw_score(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        # torchcfm's score head predicts (σ²/2)·∇log p_t; integrate_sde wants ∇log p_t.
        return score(torch.cat([x, t[:, None]], dim=-1)) * (2.0 / sigma**2)

    sim_gen = torch.Generator().manual_seed(seed + 1)
    return _sde_sampler(velocity, raw_score, sigma, sim_gen), seconds, steps


def fit_imf(bench: EOTBenchmark, x0, x1, seed: int, steps: int) -> tuple[Sampler, float, int]:
    import sbflow
    from sbflow.methods.imf import IMF, simulate_drift

    method = IMF(sigma=bench.sigma)
    start = time.perf_counter()
    bridge = sbflow.fit(
        x0, x1, method=method, normalise=False, steps=max(1, steps // method.rounds),
        hidden=max(64, 4 * bench.dim), seed=seed, progress=False,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    gen = torch.Generator().manual_seed(seed + 1)

    def sample(x: torch.Tensor, n: int) -> torch.Tensor:
        # The bridge's forward SDE has drift f (data units here: normalise=False, times [0, 1]).
        rep = x.repeat_interleave(n, 0)
        forward = bridge.model.forward_drift
        y = simulate_drift(forward, rep, bench.sigma, steps=SDE_STEPS, generator=gen)
        return y.reshape(x.shape[0], n, -1)

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
) -> list[dict]:
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
                    try:
                        m_steps = light_steps if method == "light" else steps
                        sampler, seconds, m_steps = FITTERS[method](bench, x0, x1, seed, m_steps)
                        with torch.no_grad():
                            score: EOTScore = score_conditional_sampler(
                                bench,
                                sampler,
                                n_inputs,
                                n_samples,
                                n_marginal,
                                torch.Generator().manual_seed(2000 + seed),
                            )
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
    return rows


def _print_row(row: dict) -> None:
    head = f"{LABELS[row['method']]:<18} {row['eps']:>5g} {row['dim']:>4} {row['seed']:>4}"
    if "error" in row:
        print(f"{head}  ERROR {row['error'][:90]}", flush=True)
        return
    print(
        f"{head} {row['cbw2_uvp']:>9.3f} {row['floor_cbw2_uvp']:>7.3f} "
        f"{row['cbw2_uvp'] - row['floor_cbw2_uvp']:>+8.3f} {row['bw2_uvp']:>8.3f} "
        f"{row['floor_bw2_uvp']:>7.3f} {row['fit_s']:>7.1f}",
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
    parser.add_argument("--json", default=None, help="write the rows to this JSON file")
    args = parser.parse_args(argv)
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
        f"{'excess':>8} {'BW2-UVP':>8} {'floor':>7} {'fit s':>7}"
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
    )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"rows": rows, "n_inputs": n_inputs, "n_samples": n_samples}, fh, indent=1)
    if any(math.isnan(r.get("cbw2_uvp", 0.0)) for r in rows):
        print("warning: some scores are NaN")


if __name__ == "__main__":
    main()
