"""Files written by sbflow 0.1 (format sbflow-bridge-1) load as the same bridges.

tests/data/legacy/*.pt were written by tests/data/legacy/make_legacy.py with sbflow 0.1,
together with the transports that version computed for fixed inputs (``*_expected.pt``).
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

import sbflow

LEGACY = Path(__file__).parents[1] / "data" / "legacy"
NAMES = ["sb_cfm_2sets", "ot_cfm_2sets", "sb_cfm_days"]


@pytest.mark.parametrize("name", NAMES)
def test_legacy_file_gives_the_recorded_transports(name: str, tmp_path: Path) -> None:
    bridge = sbflow.load(LEGACY / f"{name}.pt")
    exp = torch.load(LEGACY / f"{name}_expected.pt")
    x = exp["x"]
    torch.testing.assert_close(bridge.transport(x, sde=False), exp["ode"])
    torch.testing.assert_close(bridge.transport(x, reverse=True, sde=False), exp["ode_reverse"])
    torch.testing.assert_close(
        bridge.trajectory(x, [None, None], sde=False, steps=10), exp["ode_euler"]
    )
    if "sde" in exp:
        gen = torch.Generator().manual_seed(3)
        torch.testing.assert_close(
            bridge.transport(x, sde=True, steps=20, generator=gen), exp["sde"]
        )
    # Saved again in the new format, it is still the same bridge.
    again = sbflow.load(bridge.save(tmp_path / "new.pt"))
    assert torch.load(tmp_path / "new.pt")["format"] == "sbflow-bridge-2"
    torch.testing.assert_close(again.transport(x, sde=False), exp["ode"])
    assert again.sigma == pytest.approx(bridge.sigma)


def test_legacy_sigma_is_converted_to_data_units() -> None:
    old = torch.load(LEGACY / "sb_cfm_days.pt")
    bridge = sbflow.load(LEGACY / "sb_cfm_days.pt")
    scale = float(old["normalizer"]["scale"][0])
    span = old["times"][-1] - old["times"][0]
    # sbflow 0.1 read σ in standardised units per unit of normalised time.
    assert bridge.sigma == pytest.approx(old["sigma"] * scale / math.sqrt(span))
    assert bridge.sigma_internal == pytest.approx(old["sigma"])
    assert bridge.simulation == "sde" and bridge.times == [0.0, 2.0, 5.0]
