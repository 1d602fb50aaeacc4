"""What several benchmark scripts share (imported as ``_common``: run them as scripts)."""

from __future__ import annotations

__all__ = ["TORCHCFM_RECIPE"]

TORCHCFM_RECIPE = {
    "normalise": False,
    "lr_schedule": "constant",
    "warmup_steps": 0,
    "grad_clip": None,
    "weight_decay": 0.01,
}
"""torchcfm's training recipe as ``sbflow.fit`` options: raw data, AdamW with torch's default
weight decay 0.01 at a constant rate, no warm-up, no gradient clipping."""
