"""Draw docs/assets/home.png, the picture on the home page (run by hand, not by the build).

    .venv/bin/python docs/_hooks/make_home_figure.py

Fits OT-CFM and SB-CFM between eight Gaussians and two moons and draws, for each, the
trajectories from the source to the transported samples with the target as outlines on top
(:func:`sbflow.plotting.plot_bridge` on one axes), so that both sets stay visible.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import torch
from matplotlib.figure import Figure

import sbflow
from sbflow.data import sample_dataset
from sbflow.plotting import plot_bridge

OUT = Path(__file__).resolve().parents[1] / "assets" / "home.png"


def main() -> None:
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    x0 = sample_dataset("8gaussians", 600, generator=g)
    x1 = sample_dataset("moons", 600, generator=g)
    # Sized for the home page's text column (~650 px): 12 pt text stays legible there.
    with matplotlib.rc_context({"font.size": 12}):
        fig = Figure(figsize=(9.0, 4.7), layout="constrained")
        for ax, method in zip(fig.subplots(1, 2), ("ot-cfm", "sb-cfm")):
            bridge = sbflow.fit(
                "8gaussians", "moons", method=method, steps=3000, seed=0, progress=False
            )
            kind = "ODE" if method == "ot-cfm" else "SDE"
            # One axes per method: the target is drawn as outlines over the trajectories.
            plot_bridge(
                bridge,
                x0,
                x1,
                ax=ax,
                n_paths=60,
                generator=torch.Generator().manual_seed(0),
                title=f"{method.upper()} ({kind}): 8 Gaussians → moons",
            )
            ax.title.set_fontsize(12)
        fig.savefig(OUT, dpi=100, bbox_inches="tight")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
