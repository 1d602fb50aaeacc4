"""OT-CFM training on the CPU: sbflow.fit against a torchcfm training loop, side by side.

Task: 8gaussians → moons (sbflow's built-in generators for both), batch 256, a 3 × 64 SELU
MLP, AdamW at lr 1e-3 and the same weight EMA (0.999) for all. Four runs per repeat:

* ``sbflow (defaults)``: ``sbflow.fit`` as a user calls it: 100 warm-up steps, cosine decay,
  gradient clipping at 1, no weight decay, standardised data, ``TimeMLP`` (LeCun-normal init);
* ``sbflow (torchcfm recipe)``: ``sbflow.fit`` with torchcfm's recipe, i.e. the same optimiser
  (AdamW with torch's default weight decay 0.01, constant rate, no warm-up, no clipping) on
  the raw data;
* ``torchcfm``: the usual torchcfm loop with ``ExactOptimalTransportConditionalFlowMatcher``
  and torchcfm's own ``MLP(2, w=64, time_varying=True)`` (the same layers, PyTorch's default
  initialisation). This is the reference of the ratios;
* ``torchcfm + TimeMLP``: the same loop with sbflow's network, so that the recipe row and this
  one differ only in the coupling code (the exact solver, batching, prefetching), and the
  torchcfm rows differ only in the initialisation.

Each repeat trains all of them for the same number of steps from the same seed, then measures

* throughput: optimiser steps per second of wall time (sbflow: the whole ``fit`` call,
  couplings prefetched in background threads; torchcfm: its loop), and
* quality: W2 (exact) between the adaptive-ODE transport of held-out 8gaussians samples and
  held-out moons samples; besides medians, the per-repeat W2 differences to the reference
  (paired by seed) with their mean and standard error.

Both use one intra-op torch thread (fastest for this model size on a small CPU; sbflow's
default). Before the timed repeats each side runs once for 20 steps, so that one-time costs
of the process (importing POT and ``torch._dynamo``, which the first AdamW pulls in, and
loading sbflow's compiled auction from numba's cache) count for neither side. torchcfm is
optional (``pip install torchcfm``); without it only sbflow runs.

Usage:
    python benchmarks/train.py            # 3 repeats × 3000 steps
    python benchmarks/train.py --quick    # 1 repeat × 300 steps
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from _common import TORCHCFM_RECIPE

import sbflow.bridge as sb
from sbflow.data import sample_dataset
from sbflow.metrics import wasserstein
from sbflow.models import TimeMLP
from sbflow.models._time import as_batch_times
from sbflow.simulation import integrate_ode
from sbflow.training import EMA, step_seed


def sbflow_run(
    steps: int, seed: int, x0: torch.Tensor, x1: torch.Tensor, **options: object
) -> tuple[float, float]:
    """Steps/s and W2 of sbflow.fit (batch 256, 3 × 64 MLP) with its defaults or ``options``."""
    t0 = time.perf_counter()
    bridge = sb.fit(
        "8gaussians", "moons", method="ot-cfm", steps=steps, seed=seed, progress=False, **options
    )
    rate = steps / (time.perf_counter() - t0)
    return rate, wasserstein(bridge.transport(x0), x1)


class TorchcfmMLP(torch.nn.Module):
    """torchcfm's ``MLP`` (input ``[x, t]``) behind sbflow's ``model(x, t)`` call."""

    def __init__(self) -> None:
        super().__init__()
        from torchcfm.models import MLP

        self.net = MLP(2, w=64, time_varying=True)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x, as_batch_times(t, x)[:, None]], dim=1))


def torchcfm_run(
    steps: int, seed: int, x0: torch.Tensor, x1: torch.Tensor, network: str = "torchcfm"
) -> tuple[float, float]:
    """Steps/s and W2 of the standard torchcfm loop with torchcfm's or sbflow's 3 × 64 MLP."""
    from torchcfm.conditional_flow_matching import (
        ExactOptimalTransportConditionalFlowMatcher,
    )

    torch.manual_seed(seed)  # torchcfm draws times and plan samples from the global RNGs
    model = TorchcfmMLP() if network == "torchcfm" else TimeMLP(2, hidden=64, depth=3)
    ema = EMA(model, 0.999)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    matcher = ExactOptimalTransportConditionalFlowMatcher(sigma=0.0)
    t0 = time.perf_counter()
    for step in range(steps):
        g = torch.Generator().manual_seed(step_seed(seed, step))
        a = sample_dataset("8gaussians", 256, generator=g)
        b = sample_dataset("moons", 256, generator=g)
        t, xt, ut = matcher.sample_location_and_conditional_flow(a, b)
        loss = (model(xt, t) - ut).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        ema.update(model)
    rate = steps / (time.perf_counter() - t0)
    net = ema.model
    res = integrate_ode(lambda x, t: net(x, t), x0)
    return rate, wasserstein(res.x, x1)


def main() -> None:
    """Run the comparison and print medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 repeat × 300 steps")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--n-test", type=int, default=2000)
    args = parser.parse_args()
    steps, repeats, n_test = args.steps, args.repeats, args.n_test
    if args.quick:
        steps, repeats, n_test = 300, 1, 500
    torch.set_num_threads(1)
    try:
        import torchcfm  # noqa: F401

        have_torchcfm = True
    except ImportError:
        have_torchcfm = False
        print("torchcfm not installed (pip install torchcfm): running sbflow only.")
    g = torch.Generator().manual_seed(12345)
    x0 = sample_dataset("8gaussians", n_test, generator=g)
    x1 = sample_dataset("moons", n_test, generator=g)
    floor = wasserstein(x1, sample_dataset("moons", n_test, generator=g))
    print(
        f"OT-CFM 8gaussians → moons, batch 256, 3×64 MLP, {steps} steps, {repeats} repeat(s), "
        f"1 torch thread, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}"
    )
    print(f"W2 noise floor (two independent {n_test}-point moons sets): {floor:.4f}")
    sbflow_run(20, 0, x0[:10], x1[:10])  # warm-up: one-time imports and compilation
    if have_torchcfm:
        torchcfm_run(20, 0, x0[:10], x1[:10])
    runs = {
        "sbflow (defaults)": lambda r: sbflow_run(steps, r, x0, x1),
        "sbflow (torchcfm recipe)": lambda r: sbflow_run(steps, r, x0, x1, **TORCHCFM_RECIPE),
    }
    if have_torchcfm:
        runs["torchcfm"] = lambda r: torchcfm_run(steps, r, x0, x1)
        runs["torchcfm + TimeMLP"] = lambda r: torchcfm_run(steps, r, x0, x1, "sbflow")
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in runs}
    for r in range(repeats):
        for name, run in runs.items():
            results[name].append(run(r))
        row = "  ".join(f"{n}: {v[-1][0]:.0f}/s W2 {v[-1][1]:.4f}" for n, v in results.items())
        print(f"repeat {r}: {row}", flush=True)
    print(f"\n{'':26s} {'steps/s':>9s} {'W2':>8s}   (medians)")
    med = {}
    for name, rows in results.items():
        med[name] = (
            statistics.median(r[0] for r in rows),
            statistics.median(r[1] for r in rows),
        )
        print(f"{name:26s} {med[name][0]:9.1f} {med[name][1]:8.4f}")
    if not have_torchcfm:
        return
    # each row against torchcfm, and the recipe row also against the same loop and network
    pairs = [(name, "torchcfm") for name in results if name != "torchcfm"]
    pairs.append(("sbflow (torchcfm recipe)", "torchcfm + TimeMLP"))
    print("\nratios; ΔW2 = W2 difference paired by seed, mean ± standard error")
    for name, ref in pairs:
        diffs = [a[1] - b[1] for a, b in zip(results[name], results[ref])]
        spread = f" ± {statistics.stdev(diffs) / len(diffs) ** 0.5:.4f}" if len(diffs) > 1 else ""
        print(
            f"{name} / {ref}: throughput {med[name][0] / med[ref][0]:.2f}×, "
            f"W2 {med[name][1] / med[ref][1]:.3f}, ΔW2 {statistics.fmean(diffs):+.4f}{spread}"
        )


if __name__ == "__main__":
    main()
