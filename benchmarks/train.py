"""OT-CFM training on the CPU: sbflow.fit against a torchcfm training loop, side by side.

Task: 8gaussians → moons (sbflow's built-in generators for both), batch 256, the same
3 × 64 SELU MLP (``sbflow.models.TimeMLP``), AdamW at lr 1e-3 and the same weight EMA (0.999)
for all. torchcfm runs its usual loop on the raw data at a constant learning rate. sbflow runs
``sbflow.fit`` twice:

* ``sbflow (defaults)``: 100 warm-up steps, cosine decay, gradient clipping at 1, no weight
  decay, standardised data;
* ``sbflow (same recipe)``: torchcfm's recipe, i.e. the same optimiser (AdamW with torch's
  default weight decay 0.01, constant rate, no warm-up, no clipping) on the raw data.

Each repeat trains all of them for the same number of steps from the same seed, then measures

* throughput: optimiser steps per second of wall time (sbflow: the whole ``fit`` call,
  couplings prefetched in background threads; torchcfm: its
  ``ExactOptimalTransportConditionalFlowMatcher`` in the usual loop), and
* quality: W2 (exact, POT) between the adaptive-ODE transport of held-out 8gaussians samples
  and held-out moons samples.

Both use one intra-op torch thread (fastest for this model size on a small CPU; sbflow's
default). Before the timed repeats each side runs once for 20 steps, so that one-time costs
of the process (importing POT and ``torch._dynamo``, which the first AdamW pulls in, and
loading sbflow's compiled auction from numba's cache) count for neither side. Reports
medians over repeats and the sbflow/torchcfm ratios. torchcfm is optional
(``pip install torchcfm``); without it only sbflow runs.

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

import sbflow.bridge as sb
from sbflow.data import sample_dataset
from sbflow.metrics import wasserstein
from sbflow.models import TimeMLP
from sbflow.simulation import integrate_ode
from sbflow.training import EMA, step_seed

# torchcfm's training recipe expressed as sbflow.fit options
SAME_RECIPE = {
    "normalise": False,
    "lr_schedule": "constant",
    "warmup_steps": 0,
    "grad_clip": None,
    "weight_decay": 0.01,
}


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


def torchcfm_run(steps: int, seed: int, x0: torch.Tensor, x1: torch.Tensor) -> tuple[float, float]:
    """Steps/s and W2 of the standard torchcfm loop with the same model and optimiser."""
    from torchcfm.conditional_flow_matching import (
        ExactOptimalTransportConditionalFlowMatcher,
    )

    torch.manual_seed(seed)  # torchcfm draws times and plan samples from the global RNGs
    model = TimeMLP(2, hidden=64, depth=3)
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
    names = ("sbflow (defaults)", "sbflow (same recipe)", "torchcfm")
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
    for r in range(repeats):
        results[names[0]].append(sbflow_run(steps, r, x0, x1))
        results[names[1]].append(sbflow_run(steps, r, x0, x1, **SAME_RECIPE))
        if have_torchcfm:
            results["torchcfm"].append(torchcfm_run(steps, r, x0, x1))
        row = "  ".join(
            f"{name}: {v[-1][0]:.0f} steps/s, W2 {v[-1][1]:.4f}" for name, v in results.items() if v
        )
        print(f"repeat {r}: {row}", flush=True)
    print(f"{'':22s} {'steps/s':>9s} {'W2':>8s}   (medians)")
    med = {}
    for name, rows in results.items():
        if rows:
            med[name] = (
                statistics.median(r[0] for r in rows),
                statistics.median(r[1] for r in rows),
            )
            print(f"{name:22s} {med[name][0]:9.1f} {med[name][1]:8.4f}")
    if "torchcfm" in med:
        ref = med["torchcfm"]
        for name in names[:2]:
            print(
                f"ratio {name} / torchcfm: throughput {med[name][0] / ref[0]:.2f}×, "
                f"W2 {med[name][1] / ref[1]:.3f}"
            )


if __name__ == "__main__":
    main()
