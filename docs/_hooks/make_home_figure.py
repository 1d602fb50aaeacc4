"""Draw docs/assets/home.png, the picture on the home page (run by hand, not by the build).

    .venv/bin/python docs/_hooks/make_home_figure.py

Fits OT-CFM and SB-CFM between eight Gaussians and two moons and draws their trajectories.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

import sbflow
from sbflow.data import sample_dataset

OUT = Path(__file__).resolve().parents[1] / "assets" / "home.png"


def main() -> None:
    g = torch.Generator().manual_seed(0)
    x0 = sample_dataset("8gaussians", 300, generator=g)
    x1 = sample_dataset("moons", 2000, generator=g)
    times = torch.linspace(0, 1, 61)
    fig, axes = plt.subplots(1, 2, figsize=(11, 5.2), sharex=True, sharey=True)
    for ax, method in zip(axes, ("ot-cfm", "sb-cfm")):
        bridge = sbflow.fit(
            "8gaussians", "moons", method=method, steps=3000, seed=0, progress=False
        )
        traj = bridge.trajectory(x0, times, generator=g)
        ax.scatter(*x1.T, s=4, c="tab:orange", alpha=0.25, label="target samples")
        ax.plot(traj[:, :, 0], traj[:, :, 1], color="olive", alpha=0.25, lw=0.6)
        ax.scatter(*traj[0].T, s=5, c="black", zorder=3, label="source samples")
        ax.scatter(*traj[-1].T, s=5, c="tab:blue", zorder=3, label="transported")
        kind = "ODE" if method == "ot-cfm" else "SDE"
        ax.set_title(f"{method.upper()}: 8 Gaussians → moons ({kind})")
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0].legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(OUT, dpi=90, bbox_inches="tight")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
