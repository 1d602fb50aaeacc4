"""What several benchmark scripts share (imported as ``_common``: run them as scripts)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from sbflow.couplings._stores import DenseStore
from sbflow.couplings.exact import marginal_error

__all__ = ["TORCHCFM_RECIPE", "plan_error", "timed"]

TORCHCFM_RECIPE = {
    "normalise": False,
    "lr_schedule": "constant",
    "warmup_steps": 0,
    "grad_clip": None,
    "weight_decay": 0.01,
    "hidden": 64,
}
"""torchcfm's training recipe as ``sbflow.fit`` options: raw data, AdamW with torch's default
weight decay 0.01 at a constant rate, no warm-up, no gradient clipping, and the width of its
``MLP`` (64; sbflow's ``sb-cfm`` would pick a wider one from D = 5 on)."""


def timed(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """Median wall time of ``fn()`` over ``repeats`` runs, and its last result."""
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def plan_error(plan: Any) -> float:
    """sbflow's relative L1 marginal error of a dense plan (e.g. POT's) against uniform
    marginals; NaN entries count as zero mass, so a NaN plan scores about 2."""
    p = torch.as_tensor(np.nan_to_num(np.asarray(plan, dtype=np.float64), nan=0.0))
    n, m = p.shape
    return marginal_error(DenseStore(p), p.new_full((n,), 1.0 / n), p.new_full((m,), 1.0 / m))
