"""Write the legacy bridge files and their recorded outputs (run ONCE with sbflow 0.1.0).

Kept to document how ``tests/data/legacy/*.pt`` were made; rerunning it with a newer sbflow
would overwrite the record of the old behaviour, so it refuses unless ``--force`` is given.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

import sbflow

HERE = Path(__file__).parent


def main() -> None:
    if "--force" not in sys.argv:
        raise SystemExit("refusing to overwrite the legacy record; pass --force.")
    torch.set_num_threads(1)
    common = dict(steps=30, hidden=16, depth=2, progress=False, prefetch=0, batch_size=64)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(16, 2, generator=g) * 3.0 + torch.tensor([1.0, -2.0])
    cases = {
        "sb_cfm_2sets": lambda: sbflow.fit("8gaussians", "moons", method="sb-cfm", **common),
        "ot_cfm_2sets": lambda: sbflow.fit("8gaussians", "moons", method="ot-cfm", **common),
        "sb_cfm_days": lambda: sbflow.fit(
            [
                torch.randn(200, 2, generator=torch.Generator().manual_seed(k)) * (1 + k) + 5 * k
                for k in range(3)
            ],
            times=[0.0, 2.0, 5.0],
            method="sb-cfm",
            sigma=0.3,
            **common,
        ),
    }
    for name, make in cases.items():
        bridge = make()
        bridge.save(HERE / f"{name}.pt")
        out = {"x": x, "ode": bridge.transport(x, sde=False)}
        out["ode_reverse"] = bridge.transport(x, reverse=True, sde=False)
        out["ode_euler"] = bridge.trajectory(x, [None, None], sde=False, steps=10)
        if bridge.needs_score:
            out["sde"] = bridge.transport(
                x, sde=True, steps=20, generator=torch.Generator().manual_seed(3)
            )
        torch.save(out, HERE / f"{name}_expected.pt")
        print(name, bridge)


if __name__ == "__main__":
    main()
