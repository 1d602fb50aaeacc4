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
# # A Schrödinger bridge, checked against the closed form
#
# A Schrödinger bridge is the stochastic process closest (in relative entropy) to a Brownian
# motion $\mathrm dX = \sigma\,\mathrm dW$ whose marginals at $t = 0$ and $t = 1$ are the
# source and the target. SB-CFM ([SF]2M) learns it without simulation: couple minibatches with
# entropic OT at `reg = 2σ²`, sample Brownian bridges between the pairs, and regress two heads,
# a velocity $v_\theta(x, t)$ and a score $s_\theta(x, t) \approx \nabla_x \log p_t(x)$.
# The bridge is then the SDE
#
# $$
# \mathrm dx = \Big[v_\theta(x, t) + \frac{g^2}{2}\,s_\theta(x, t)\Big]\mathrm dt + g\,\mathrm dW_t
# $$
#
# with $g = \sigma$; with $g = 0$ it is the *probability-flow ODE*, which has the same
# marginals but moves each sample deterministically.
#
# Between two Gaussians everything is known in closed form (`sbflow.gaussian.GaussianBridge`),
# so we can check each of these statements, first with the exact fields and then with learned
# ones.

# %%
import os

import matplotlib.pyplot as plt
import numpy as np
import torch

import sbflow
from sbflow.gaussian import GaussianBridge, gaussian_kl
from sbflow.simulation import integrate_ode, integrate_sde

QUICK = os.environ.get("SBFLOW_QUICK", "0") == "1"
STEPS = 800 if QUICK else 6000
g = torch.Generator().manual_seed(0)

# %% [markdown]
# ## The problem
#
# Two Gaussians in 2-D with different shapes, and a Brownian reference with $\sigma = 1$.

# %%
mean0 = torch.tensor([-3.0, 0.0])
cov0 = torch.tensor([[0.6, 0.25], [0.25, 0.4]])
mean1 = torch.tensor([3.0, 1.0])
cov1 = torch.tensor([[0.5, -0.35], [-0.35, 1.2]])
sigma = 1.0
oracle = GaussianBridge(mean0, cov0, mean1, cov1, sigma)

print("cross-covariance of the entropic plan, Cov(x0, x1):")
print(oracle.cross_covariance())


def empirical(x):
    """Mean and covariance of samples (n, d)."""
    return x.mean(0), torch.cov(x.T)


def kl_to_oracle(x, t):
    """KL divergence between the Gaussian fitted to samples x and the true marginal p_t."""
    m, c = empirical(x.double())
    mt, ct = oracle.marginal(t)
    return gaussian_kl(m, c, mt.double(), ct.double())


# %% [markdown]
# ## The exact fields: SDE and probability flow
#
# `GaussianBridge` gives the probability-flow velocity $v$ and the score
# $\nabla \log p_t$ of the bridge. Simulating them with `integrate_sde` (drift
# $v + \tfrac{g^2}{2}\,\text{score}$) and `integrate_ode` must reproduce the marginals
# $p_t$ at every time — and with *any* diffusion $g$, not only the $\sigma$ of the
# reference: $g$ only changes how much each sample wanders, not the marginals.

# %%
n = 1500 if QUICK else 5000
sde_steps = 100 if QUICK else 400
x0 = oracle.sample_marginal(0.0, n, generator=g)
times = torch.linspace(0, 1, 5)

print(f"{'simulation':<22}" + "".join(f"  KL at t={t:.2f}" for t in times[1:]))
for g_diff in [0.0, 0.5, 1.0, 2.0]:
    if g_diff == 0.0:
        traj = integrate_ode(oracle.velocity, x0, times).trajectory
        name = "ODE (g = 0)"
    else:
        traj = integrate_sde(
            oracle.velocity, oracle.score, x0, g=g_diff, times=times, steps=sde_steps, generator=g
        ).trajectory
        name = f"SDE, g = {g_diff}"
    kls = [kl_to_oracle(traj[k], float(t)) for k, t in enumerate(times) if k > 0]
    print(f"{name:<22}" + "".join(f"{kl:13.4f}" for kl in kls))

# %% [markdown]
# All Kullback–Leibler divergences are at the level of the sampling error of a few thousand
# points: the drift convention is right, and the marginals do not depend on $g$.
#
# What does depend on $g$ is the *coupling* between start and end points. Only $g = \sigma$
# reproduces the entropic OT plan of the Schrödinger bridge; the ODE gives a deterministic
# coupling with the same marginals:


# %%
def cross_cov(a, b):
    return ((a - a.mean(0)).T @ (b - b.mean(0)) / (a.shape[0] - 1)).double()


true_c = oracle.cross_covariance().double()
for name, g_diff in [("ODE (g = 0)", 0.0), ("SDE, g = σ", sigma), ("SDE, g = 2σ", 2 * sigma)]:
    if g_diff == 0.0:
        x1 = integrate_ode(oracle.velocity, x0).x
    else:
        x1 = integrate_sde(
            oracle.velocity, oracle.score, x0, g=g_diff, steps=sde_steps, generator=g
        ).x
    err = (cross_cov(x0, x1) - true_c).norm() / true_c.norm()
    print(f"{name:<12}  relative error of Cov(x0, x1) against the entropic plan: {err:.3f}")

# %% [markdown]
# ## Learning the bridge from samples
#
# Now forget the closed form and learn the bridge from samples of the two Gaussians with
# SB-CFM. `sigma` is in the data's units per unit of time, so it is the $\sigma$ above
# whatever the standardisation; `normalise=False` also keeps the *network* in the data's
# units, so that the learned fields can be compared with the oracle's directly.

# %%
n_train = 5000 if QUICK else 20000
x0_train = oracle.sample_marginal(0.0, n_train, generator=g)
x1_train = oracle.sample_marginal(1.0, n_train, generator=g)
bridge = sbflow.fit(
    x0_train,
    x1_train,
    method="sb-cfm",
    sigma=sigma,
    normalise=False,
    steps=STEPS,
    seed=0,
    progress=False,
)
print(bridge)

# %% [markdown]
# `Bridge.trajectory` simulates the SDE by default for a Schrödinger bridge; `sde=False`
# solves the probability-flow ODE instead.

# %%
traj_sde = bridge.trajectory(x0, times, sde=True, generator=g)
traj_ode = bridge.trajectory(x0, times, sde=False)

print(f"{'learned':<10}" + "".join(f"  KL at t={t:.2f}" for t in times[1:]))
for name, traj in [("SDE", traj_sde), ("ODE", traj_ode)]:
    kls = [kl_to_oracle(traj[k], float(t)) for k, t in enumerate(times) if k > 0]
    print(f"{name:<10}" + "".join(f"{kl:13.4f}" for kl in kls))
err_sde = (cross_cov(x0, traj_sde[-1]) - true_c).norm() / true_c.norm()
print(f"relative error of Cov(x0, x1) of the learned SDE: {err_sde:.3f}")

# %% [markdown]
# The learned fields themselves, at $t = 1/2$, on samples of the true marginal.
# `bridge.model(x, t)` returns both heads, the velocity and the score:

# %%
xt = oracle.sample_marginal(0.5, 2000, generator=g)
tt = torch.full((xt.shape[0],), 0.5)
with torch.no_grad():
    v_learned, s_learned = bridge.model(xt, tt)


def rel_err(a, b):
    return ((a - b).norm(dim=1).mean() / b.norm(dim=1).mean()).item()


print(f"velocity: relative error {rel_err(v_learned, oracle.velocity(xt, tt)):.3f}")
print(f"score:    relative error {rel_err(s_learned, oracle.score(xt, tt)):.3f}")

# %% [markdown]
# ## Pictures
#
# Left: sample paths of the learned SDE and of its probability-flow ODE. Right: the covariance
# ellipses (two standard deviations) of the learned SDE's samples against the exact marginals.


# %%
def ellipse(mean, cov, k=2.0):
    angles = torch.linspace(0, 2 * np.pi, 100, dtype=torch.float64)
    circle = torch.stack([angles.cos(), angles.sin()], 1)
    chol = torch.linalg.cholesky(cov.double())
    return (mean.double() + k * circle @ chol.T).numpy()


fine = torch.linspace(0, 1, 51)
few = x0[:40]
paths_sde = bridge.trajectory(few, fine, sde=True, generator=g)
paths_ode = bridge.trajectory(few, fine, sde=False)

fig, axes = plt.subplots(1, 3, figsize=(17, 5), sharex=True, sharey=True)
for ax, paths, title in [
    (axes[0], paths_sde, "learned SDE (g = σ)"),
    (axes[1], paths_ode, "learned probability-flow ODE"),
]:
    ax.plot(paths[:, :, 0], paths[:, :, 1], lw=0.7, alpha=0.6)
    ax.scatter(*paths[0].T, s=8, c="k", zorder=3)
    ax.scatter(*paths[-1].T, s=8, c="tab:red", zorder=3)
    ax.set_title(title)
ax = axes[2]
for k, t in enumerate(times):
    mt, ct = oracle.marginal(float(t))
    true_xy = ellipse(mt, ct)
    ax.plot(true_xy[:, 0], true_xy[:, 1], "k-", lw=1.5, label="exact" if k == 0 else None)
    m, c = empirical(traj_sde[k])
    fit_xy = ellipse(m, c)
    ax.plot(
        fit_xy[:, 0],
        fit_xy[:, 1],
        "--",
        color="tab:orange",
        lw=1.5,
        label="learned SDE" if k == 0 else None,
    )
    ax.annotate(f"t={t:.2f}", (mt[0].item(), mt[1].item()), ha="center")
ax.set_title("marginals at t = 0, 1/4, 1/2, 3/4, 1")
ax.legend(loc="lower right")
for ax in axes:
    ax.set_aspect("equal")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## What to take away
#
# - `sbflow.fit(..., method="sb-cfm", sigma=σ)` learns a velocity and a score; `Bridge.transport`
#   and `Bridge.trajectory` simulate the SDE $\mathrm dx = [v + \tfrac{\sigma^2}{2} s]\,\mathrm
#   dt + \sigma\,\mathrm dW$ by default, or the probability-flow ODE with `sde=False`.
# - Both have the marginals of the bridge; only the SDE has its coupling (the entropic OT plan
#   with `reg = 2σ²`).
# - The score head predicts the raw score $\nabla_x \log p_t$, so the sampling diffusion can
#   differ from the training σ; `sbflow.simulation.integrate_sde(velocity, score, x, g=...)`
#   takes any $g$.
# - `GaussianBridge` is the closed-form ground truth for all of this, handy for testing your
#   own models too.
