# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Couplings on their own
#
# Every flow-matching method in sbflow starts by *coupling* a batch of source samples with a
# batch of target samples. The coupling solvers are useful on their own too: matching cells
# between two experiments, colour transfer, domain adaptation. This tutorial compares the four
# solvers on a small problem where the differences are visible, checks them against POT, and
# then transfers the colours of one photograph onto another.
#
# Set `SBFLOW_QUICK=1` to run everything with fewer samples.

# %%
import os

import matplotlib.pyplot as plt
import numpy as np
import ot
import torch

from sbflow.couplings import ExactOT, PartialOT, Sinkhorn, UnbalancedSinkhorn

QUICK = os.environ.get("SBFLOW_QUICK", "0") == "1"
g = torch.Generator().manual_seed(0)

# %% [markdown]
# ## A problem with outliers
#
# The source is one Gaussian blob. The target is a similar blob, shifted to the right, plus a
# small cluster of outliers far above it. Balanced optimal transport must move mass onto the
# outliers, since every target point has to receive its share; unbalanced and partial transport
# are allowed to leave them out.

# %%
n, n_out = 40, 8
x0 = torch.randn(n, 2, generator=g, dtype=torch.float64) * 0.6
x1 = torch.cat(
    [
        torch.randn(n - n_out, 2, generator=g, dtype=torch.float64) * 0.6
        + torch.tensor([3.0, 0.0], dtype=torch.float64),
        torch.randn(n_out, 2, generator=g, dtype=torch.float64) * 0.3
        + torch.tensor([1.5, 6.0], dtype=torch.float64),
    ]
)

# %% [markdown]
# `sbflow.couple(x0, x1, method=...)` runs a solver by name; the solver classes take the same
# options as keywords. The cost is always the squared Euclidean distance, and `reg` is in the
# same units, here set relative to the mean cost (`rel_reg`), so it means the same amount of
# blur whatever the scale of the data.

# %%
solvers = {
    "exact": ExactOT(),
    "sinkhorn": Sinkhorn(rel_reg=0.01),
    "unbalanced": UnbalancedSinkhorn(rel_reg=0.01, reg_marginal=10.0),
    "partial": PartialOT(mass=0.8),
}
couplings = {name: solver(x0, x1) for name, solver in solvers.items()}

header = ("method", "cost", "mass", "to outliers", "converged", "marg. err")
print("{:<11} {:>7} {:>6} {:>11} {:>9} {:>9}".format(*header))
for name, c in couplings.items():
    P = c.plan()
    mass, outliers = P.sum().item(), P[:, n - n_out :].sum().item()
    print(
        f"{name:<11} {c.cost:7.3f} {mass:6.3f} {outliers:11.3f} {c.converged!s:>9} "
        f"{c.marginal_error:9.1e}"
    )

# %% [markdown]
# Each result is a `Coupling`: the plan with the numbers needed to trust it — the transport
# cost $\langle C, P\rangle$, whether the solver met its tolerance, and how far the plan's
# marginals are from the requested ones. Now the plans, drawn as segments whose opacity is the
# mass they carry, and as matrices:

# %%
fig, axes = plt.subplots(2, 4, figsize=(13, 6.5))
for col, (name, c) in enumerate(couplings.items()):
    P = c.plan()
    ax = axes[0, col]
    i, j = torch.nonzero(P > 0.02 * P.max(), as_tuple=True)
    alpha = P[i, j] / P.max()
    for k in range(len(i)):
        a, b = x0[i[k]], x1[j[k]]
        ax.plot([a[0], b[0]], [a[1], b[1]], color="k", alpha=float(alpha[k]), lw=0.8)
    ax.scatter(*x0.T, s=14, c="tab:blue", label="source", zorder=3)
    ax.scatter(*x1.T, s=14, c="tab:orange", label="target", zorder=3)
    ax.set_title(f"{name}  (cost {c.cost:.2f})")
    ax.set_aspect("equal")
    axes[1, col].imshow(P.numpy(), cmap="Greys", aspect="auto")
    axes[1, col].axhline(-0.5, color="k")
    axes[1, col].axvline(n - n_out - 0.5, color="tab:red", lw=1, ls="--")
    axes[1, col].set_xlabel("target j (outliers right of the dashed line)")
axes[0, 0].legend(loc="upper left")
axes[1, 0].set_ylabel("source i")
fig.tight_layout()
plt.show()

# %% [markdown]
# - **exact**: a permutation (uniform weights, as many sources as targets): each source goes to
#   exactly one target, and some sources must travel to the outliers.
# - **sinkhorn**: the entropic plan blurs each row over nearby targets; it still covers the
#   outliers, because its marginals are the same as the exact plan's.
# - **unbalanced**: the marginals become soft penalties (`reg_marginal`, in cost units), so the
#   plan carries less mass wherever transport is expensive: it keeps most of the mass between
#   the two blobs and drops most of the outliers' share (their fair share would be
#   8/40 = 0.2). Mass is destroyed everywhere, though, not only at the outliers: larger
#   `reg_marginal` brings it closer to balanced transport.
# - **partial**: transports only 80 % of the mass, the cheapest 80 %.
#
# ## Checked against POT
#
# On small problems POT, in float64, is the reference. The exact cost and the entropic plan
# agree with it (POT's `reg` uses the same units as sbflow's, see
# [Concepts](../../concepts/#conventions)):

# %%
a = np.full(n, 1.0 / n)
C = ot.dist(x0.numpy(), x1.numpy())  # squared Euclidean, like sbflow
exact_pot = ot.emd2(a, a, C, numItermax=10**7)
reg = couplings["sinkhorn"].reg
P_pot = ot.sinkhorn(a, a, C, reg, method="sinkhorn_log", numItermax=10**5, stopThr=1e-12)
P_sb = couplings["sinkhorn"].plan().numpy()
print(f"exact cost:  sbflow {couplings['exact'].cost:.10f}   POT {exact_pot:.10f}")
print(f"Sinkhorn (reg = {reg:.4f}): max |P_sbflow - P_POT| = {np.abs(P_sb - P_pot).max():.2e}")
assert abs(couplings["exact"].cost - exact_pot) < 1e-8
assert np.abs(P_sb - P_pot).max() < 1e-6

# %% [markdown]
# ## Pairs, not plans
#
# Flow matching never needs the dense plan, only pairs `(i, j)` drawn from it. For a uniform
# square batch the exact plan is a permutation, and `pairs()` returns it as is: every source and
# every target appears exactly once. Resampling the plan with replacement instead — a common
# shortcut — drops about a third of the batch:

# %%
c = couplings["exact"]
i, j = c.pairs()
print("permutation:", c.is_permutation, "| distinct targets:", j.unique().numel(), "of", n)
i2, j2 = c.pairs(n, mode="plan", replace=True, generator=g)
print("resampled with replacement: distinct targets", j2.unique().numel(), "of", n)

# %% [markdown]
# ## Which exact solver runs
#
# For uniform square batches (the training case) `ExactOT` runs an ε-scaling auction compiled
# with numba; weighted or rectangular problems go to POT's network simplex. Both give the
# optimum; the auction is several times faster and releases the GIL, so the trainer can solve
# the next batch in a background thread. `backend` says which ran and `n_iter` counts the
# auction's bids:

# %%
import time

gb = torch.Generator().manual_seed(1)
y0 = torch.randn(1000, 2, generator=gb, dtype=torch.float64)
y1 = torch.randn(1000, 2, generator=gb, dtype=torch.float64) + 3.0
for solver in ("auction", "network-simplex"):
    start = time.perf_counter()
    cc = ExactOT(solver=solver)(y0, y1)
    seconds = time.perf_counter() - start
    print(f"{solver:16s} backend={cc.backend:8s} cost={cc.cost:.10f}  {seconds:.3f} s")
assert abs(ExactOT()(y0, y1).cost - ot.emd2([], [], ot.dist(y0.numpy(), y1.numpy()))) < 1e-9

# %% [markdown]
# ## Colour transfer between two photographs
#
# A larger example with real data: the colours of an image are a cloud of points in RGB space,
# one per pixel. Coupling the colours of the astronaut photograph with those of a cup of coffee
# and moving every pixel to its coupled colour gives the astronaut the coffee's palette. Both
# photographs ship with scikit-image, nothing is downloaded.

# %%
from skimage import data as skdata

source_img = skdata.astronaut()[::2, ::2] / 255.0  # 256 x 256 x 3, in [0, 1]
target_img = skdata.coffee()[::2, ::2] / 255.0  # 200 x 300 x 3
source_px = torch.tensor(source_img.reshape(-1, 3), dtype=torch.float32)
target_px = torch.tensor(target_img.reshape(-1, 3), dtype=torch.float32)
print("pixels:", source_px.shape[0], "source,", target_px.shape[0], "target")

# %% [markdown]
# Coupling all 65 536 × 60 000 pixels is unnecessary: the palette is well described by a
# random subset. `OTMap` (a scikit-learn style estimator) couples `max_samples` random pixels
# of each image in `fit`, and `transform` maps *every* pixel, also those outside the coupled
# sample:
#
# - for the exact plan, each pixel moves by the displacement of its nearest coupled source
#   colour (the convention of POT's `ot.da.EMDTransport`);
# - for the entropic plan, the Sinkhorn potential $g$ defines the map everywhere: the plan is
#   $P_{ij} = a_i b_j \exp\big((f_i + g_j - C_{ij})/\mathrm{reg}\big)$, so the conditional law
#   of the target given a source colour $x$ is a softmax over $j$ of
#   $(g_j - \lVert x - y_j \rVert^2)/\mathrm{reg} + \log b_j$, and its mean is the entropic map
#   $T(x)$. On the coupled samples it equals `barycentric_projection`.
#
# Both are two calls, `fit` and `transform` (the same maps are `Coupling.transform` on any
# coupling).

# %%
from sbflow.estimators import OTMap

k = 600 if QUICK else 2000
exact = OTMap("exact", max_samples=k).fit(source_px, target_px)
entropic = OTMap("sinkhorn", reg=0.01, max_samples=k).fit(source_px, target_px)
print(exact.coupling_)
print(entropic.coupling_)

recoloured = {
    "exact OT": exact.transform(source_px),
    "entropic OT (reg = 0.01)": entropic.transform(source_px),
}

# %%
fig, axes = plt.subplots(1, 4, figsize=(18, 4.8))
axes[0].imshow(source_img)
axes[0].set_title("source: astronaut")
axes[1].imshow(target_img)
axes[1].set_title("target palette: coffee")
for ax, (name, px) in zip(axes[2:], recoloured.items()):
    ax.imshow(px.clamp(0, 1).reshape(source_img.shape).numpy())
    ax.set_title(name)
for ax in axes:
    ax.axis("off")
fig.tight_layout()
plt.show()

# %% [markdown]
# The exact map reproduces the coffee palette most faithfully but is noisy: neighbouring
# pixels of similar colour can be sent to quite different colours. The entropic map averages
# over nearby target colours, which gives smoother images at the price of slightly washed-out
# colours; larger `reg` means smoother and greyer.
#
# The colour clouds themselves, before and after (a random subset of pixels):

# %%
show = torch.randperm(source_px.shape[0], generator=g)[:3000]
fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
clouds = [
    ("source colours", source_px[show]),
    ("target colours", target_px[show[show < target_px.shape[0]]]),
    ("entropic map", recoloured["entropic OT (reg = 0.01)"][show]),
]
for ax, (name, px) in zip(axes, clouds):
    px = px.clamp(0, 1)
    ax.scatter(px[:, 0], px[:, 2], c=px.numpy(), s=3)
    ax.set_xlabel("red")
    ax.set_ylabel("blue")
    ax.set_title(name)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## What to take away
#
# - `sbflow.couple(x0, x1, method=...)` with `"exact"`, `"sinkhorn"`, `"unbalanced"` or
#   `"partial"`; every result says whether it converged and how far its marginals are off.
# - Use `rel_reg` (relative to the mean cost) unless you know `reg` in cost units; for a
#   Schrödinger bridge with noise σ, `reg = 2σ²`.
# - Use `pairs()` to draw pairs, `barycentric_projection()` for a deterministic map of the
#   coupled points and `transform()` / `OTMap` for new points; none needs the dense matrix of
#   `plan()` (see
#   [GPU and large couplings](../../how-to/gpu-and-large-couplings/)).
