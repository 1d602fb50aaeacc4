"""A fit with a solver instance resumes from its checkpoint with an equal, new instance."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import sbflow
from sbflow.couplings import Sinkhorn

OPTS = dict(steps=12, batch_size=32, hidden=8, depth=1, checkpoint_every=4, progress=False)


def test_resume_with_a_new_but_equal_solver_instance(tmp_path: Path) -> None:
    def stop(trainer: object, step: int, loss: torch.Tensor) -> None:
        if step == 6:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sbflow.fit("8gaussians", "moons", method="sb-cfm", coupling=Sinkhorn(reg=0.3),
                   run_dir=tmp_path, callbacks=[stop], **OPTS)  # fmt: skip
    seen: list[int | None] = []
    bridge = sbflow.fit(
        "8gaussians", "moons", method="sb-cfm", coupling=Sinkhorn(reg=0.3), run_dir=tmp_path,
        callbacks=[lambda trainer, step, loss: seen.append(trainer.resumed_from)], **OPTS,
    )  # fmt: skip
    assert seen == [6] * 6  # continued from the interrupted step, not restarted
    assert bridge.options["coupling"]["name"] == "sinkhorn"
    assert bridge.options["coupling"]["reg"] == 0.3
    assert "0x" not in repr(bridge.options)  # no memory addresses in the record
    with pytest.raises(ValueError, match="different run"):
        sbflow.fit("8gaussians", "moons", method="sb-cfm", coupling=Sinkhorn(reg=0.4),
                   run_dir=tmp_path, **OPTS)  # fmt: skip
