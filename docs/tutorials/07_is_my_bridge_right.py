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
# # Is my bridge right?
#
# A learned Schrödinger bridge can move the source onto the target and still be the wrong
# bridge: the *conditional plans* $\pi(\cdot \mid x)$ — where a given source point goes — may be
# off while the marginals look fine. To see it we need a problem whose answer is known.
#
# `sbflow.groundtruth.EOTBenchmark` is one: the Gaussian-mixture entropic-OT construction of
# Gushchin et al. (NeurIPS 2023), regenerated from a seed for any dimension $D$ and any
# $\varepsilon = \sigma^2$. Its input $p_0$ is a 3-component Gaussian mixture and its
# Schrödinger potential a 5-component one, so that the optimal conditional plan
# $\pi^*(\cdot \mid x)$ is a Gaussian mixture in closed form: exact samples, exact moments and
# the exact drift of the bridge.
#
# In this tutorial we fit two bridges on samples of $p_0$ and $p_1$ and score them:
#
# * the light solver (`sbflow.fit(..., method="light-sb")`; LightSB: the potential as a
#   Gaussian mixture; exact conditional sampling);
# * SB-CFM with a neural field (`sbflow.fit(..., method="sb-cfm")`), sampled by simulating its
#   SDE.

# %%
import math
import os

import matplotlib.pyplot as plt
import torch

import sbflow
from sbflow.groundtruth import EOTBenchmark, score_conditional_sampler

QUICK = os.environ.get("SBFLOW_QUICK", "0") == "1"
torch.set_num_threads(1)
g = torch.Generator().manual_seed(0)

# %% [markdown]
# ## The problem
#
# A 2-D instance with $\varepsilon = 1$ (reference $\mathrm dX = \mathrm dW$, cost
# $\tfrac12\|x - y\|^2$). We only hand the solvers unpaired samples of the two marginals.

# %%
bench = EOTBenchmark(dim=2, eps=1.0, seed=0)
n_train = 5000 if QUICK else 20000
x0 = bench.sample_input(n_train, g)
x1 = bench.sample_target(n_train, g)

fig, ax = plt.subplots(figsize=(4.5, 4.5))
ax.scatter(*x0[:2000].T, s=2, alpha=0.4, label="$p_0$")
ax.scatter(*x1[:2000].T, s=2, alpha=0.4, label="$p_1$")
ax.legend(markerscale=5)
ax.set_aspect("equal")
plt.show()

# %% [markdown]
# ## Two fits
#
# Both through `sbflow.fit`, with $\sigma = \sqrt\varepsilon$ in the data's units: the light
# solver (`method="light-sb"`, in quick mode with fewer steps) and SB-CFM with a neural
# field. `bridge.sample_conditional(x, n)` draws from each bridge's $\pi(\cdot \mid x)$:
# exactly for the light solver, by simulating the SDE for SB-CFM. The light bridge is fitted
# with `normalise=False` only so that its field works in the data's units, which the drift
# check at the end uses; σ means the same either way.

# %%
light = sbflow.fit(
    x0,
    x1,
    method="light-sb",
    sigma=bench.sigma,
    normalise=False,
    steps=800 if QUICK else 3000,
    progress=False,
)
bridge = sbflow.fit(
    x0, x1, method="sb-cfm", sigma=bench.sigma, steps=400 if QUICK else 3000, progress=False
)


def light_sampler(x, n):
    return light.sample_conditional(x, n, generator=g)


def sbcfm_sampler(x, n):
    return bridge.sample_conditional(x, n, generator=g)


# %% [markdown]
# ## Scores, beside the floor
#
# `score_conditional_sampler` draws test inputs $x \sim p_0$, asks each model for samples of
# its $\pi(\cdot \mid x)$, and compares their mean and covariance with the exact ones
# (cBW2-UVP, in % of the target's variance). Even the *exact* sampler does not score zero: its
# moments are estimated from finitely many samples too. That score, the **floor**, is printed
# beside every model's; only the excess over it is model error.

# %%
n_inputs, n_samples = (50, 300) if QUICK else (200, 1000)
with torch.no_grad():
    for name, sampler in (("light", light_sampler), ("sb-cfm", sbcfm_sampler)):
        score = score_conditional_sampler(bench, sampler, n_inputs, n_samples, 5000, g)
        print(f"{name:>7}: {score}")

# %% [markdown]
# ## Conditional samples next to the exact ones
#
# For three source points, the exact conditional plan (grey) and each model's.

# %%
xs = torch.tensor([[-2.0, 2.0], [0.0, 0.0], [2.0, -2.0]])
exact = bench.sample_conditional(xs, 400, g)
models = {"light": light_sampler(xs, 400), "sb-cfm": sbcfm_sampler(xs, 400)}
fig, axes = plt.subplots(1, 2, figsize=(9, 4.5), sharex=True, sharey=True)
for ax, (name, ys) in zip(axes, models.items()):
    for i, color in enumerate(("C0", "C1", "C2")):
        ax.scatter(*exact[i].T, s=3, color="0.6", alpha=0.5)
        ax.scatter(*ys[i].detach().T, s=3, color=color, alpha=0.5)
        ax.scatter(*xs[i], marker="x", s=80, color=color)
    ax.set_title(f"{name} (colour) vs exact (grey)")
    ax.set_aspect("equal")
plt.show()

# %% [markdown]
# ## The drift, too
#
# The benchmark also knows the bridge's drift $v^*(x, t) = \varepsilon\nabla_x \log h(x, t)$,
# so a model drift can be scored by the path KL
# $\mathrm{KL}(P^* \| \hat P) = \frac{1}{2\varepsilon}\int_0^1 E\|v^* - \hat v\|^2\,\mathrm dt$
# (`sbflow.groundtruth.path_kl`). The light solver's drift is in closed form:

# %%
from sbflow.groundtruth import path_kl

kl = path_kl(bench, light.model.drift, n_paths=500, steps=50, generator=g)
print(f"path KL of the light solver's bridge: {kl:.4f} nats (ε = {bench.eps:g})")
print(f"σ = √ε = {math.sqrt(bench.eps):g}")
