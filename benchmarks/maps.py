"""Out-of-sample maps: sbflow's OTMap against POT's ``ot.da`` transport classes, side by side.

Task: colour transfer of a full photograph. The colours of scikit-image's ``astronaut`` (the
source, 512 × 512 = 262 144 pixels) are mapped onto the palette of ``coffee`` (the target).
Both estimators are fitted on the same ``k`` random pixels of each image (k = 2 000; 500 with
``--quick``), then map every source pixel:

* exact OT: sbflow ``OTMap("exact")`` against POT ``ot.da.EMDTransport``; both use the
  barycentric map of the coupled pixels with the displacement of the nearest coupled pixel for
  the others (the "Ferradans" extension);
* entropic OT at ``reg = 0.01`` (on ‖x − y‖², colours in [0, 1]): sbflow ``OTMap("sinkhorn")``
  (the entropic map from the Sinkhorn potential) against POT ``ot.da.SinkhornTransport``
  (``reg_e = 0.01``, whose default ``out_of_sample_map="continuous"`` is the same map), and
  ``OTMap("sinkhorn", kind="barycentric")`` against POT with ``out_of_sample_map="ferradans"``.

Pixel colours are quantised (multiples of 1/255), so a pixel is often exactly as far from two
coupled pixels of different colours; the nearest-neighbour maps then break the tie by
rounding, differently in the two libraries. The table shows the share of pixels that differ by
more than 1e-6 beside the max / mean difference; the entropic map has no ties.

It prints median fit and transform times, their ratios, and the max / mean absolute
difference between the mapped pixels (colour values in [0, 1]). POT runs in float64 NumPy
(its usual use); sbflow is given the same float64 arrays. One torch thread.

Usage:
    python benchmarks/maps.py            # k = 2000, full image, 3 repeats
    python benchmarks/maps.py --quick    # k = 500, a 256 × 256 image, 1 repeat
"""

from __future__ import annotations

import argparse
import os
import warnings

import numpy as np
import torch
from _common import timed

from sbflow.estimators import OTMap


def main() -> None:
    """Run the comparison and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="k = 500, 256 × 256 image")
    parser.add_argument("--k", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import ot
    from skimage import data as skdata

    torch.set_num_threads(1)
    k, repeats, step = args.k, args.repeats, 1
    if args.quick:
        k, repeats, step = 500, 1, 2
    src_img = skdata.astronaut()[::step, ::step] / 255.0
    tgt_img = skdata.coffee() / 255.0
    src = src_img.reshape(-1, 3).astype(np.float64)
    tgt = tgt_img.reshape(-1, 3).astype(np.float64)
    rng = np.random.default_rng(0)
    xs = src[rng.choice(src.shape[0], k, replace=False)]
    xt = tgt[rng.choice(tgt.shape[0], k, replace=False)]
    print(
        f"colour transfer astronaut → coffee: k = {k} coupled pixels, {src.shape[0]} pixels "
        f"mapped, {repeats} repeat(s), 1 torch thread, load {os.getloadavg()[0]:.1f}"
    )
    reg = 0.01
    cases = [
        (
            "exact (nearest neighbour)",
            lambda: OTMap("exact", max_samples=None).fit(xs, xt),
            lambda: ot.da.EMDTransport().fit(Xs=xs, Xt=xt),
        ),
        (
            "sinkhorn, entropic map",
            lambda: OTMap("sinkhorn", reg=reg, max_samples=None).fit(xs, xt),
            lambda: ot.da.SinkhornTransport(reg_e=reg, max_iter=10_000).fit(Xs=xs, Xt=xt),
        ),
        (
            "sinkhorn, nearest neighb.",
            lambda: OTMap("sinkhorn", reg=reg, kind="barycentric", max_samples=None).fit(xs, xt),
            lambda: ot.da.SinkhornTransport(
                reg_e=reg, max_iter=10_000, out_of_sample_map="ferradans"
            ).fit(Xs=xs, Xt=xt),
        ),
    ]
    OTMap("exact").fit(xs[:50], xt[:50])  # warm-up: loads the compiled auction once
    header = (
        f"{'map':26s} {'fit sbflow':>11s} {'fit POT':>9s} {'ratio':>7s} {'map sbflow':>11s} "
        f"{'map POT':>9s} {'ratio':>7s} {'max |Δ|':>9s} {'mean |Δ|':>9s}"
    )
    print(header)
    for name, ours_fit, pot_fit in cases:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t_fit, model = timed(ours_fit, repeats)
            t_map, out = timed(lambda m=model: m.transform(src), repeats)
            tp_fit, pot = timed(pot_fit, repeats)
            tp_map, pot_out = timed(lambda p=pot: p.transform(Xs=src), repeats)
        diff = np.abs(out - pot_out).max(axis=1)
        print(
            f"{name:26s} {t_fit:10.3f}s {tp_fit:8.3f}s {tp_fit / t_fit:6.1f}× {t_map:10.3f}s "
            f"{tp_map:8.3f}s {tp_map / t_map:6.1f}× {diff.max():9.2e} {diff.mean():9.2e} "
            f"{(diff > 1e-6).mean():7.2%}",
            flush=True,
        )
        if name.startswith("exact"):
            costs = (model.coupling_.cost, float((pot.coupling_ * ot.dist(xs, xt)).sum()))
    print(
        f"exact plan cost: sbflow {costs[0]:.10g}, POT {costs[1]:.10g} (both optimal; with "
        f"repeated colours the optimal plan is not unique, so coupled pixels may differ too)"
    )


if __name__ == "__main__":
    main()
