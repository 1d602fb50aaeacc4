"""What several benchmark scripts share (imported as ``_common``: run them as scripts)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

__all__ = ["TORCHCFM_RECIPE", "timed"]

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
