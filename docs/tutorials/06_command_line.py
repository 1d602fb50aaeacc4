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
# # The command line
#
# Installing sbflow installs the `sbflow` command. It covers the whole workflow without writing
# Python: draw or read sample sets, couple them, fit a flow or a bridge, transport new samples,
# evaluate and plot the result. Every command reads samples from `.npy`, `.npz`, `.csv`, `.pt`
# or `.h5ad` files or takes the name of a built-in set, checks its inputs before doing any work,
# reports a problem as one line on stderr with exit code 2, and writes its outputs atomically.
#
# The lines starting with `!` below are shell commands: in a terminal, type them without the
# `!`. (`{STEPS}` is a Python variable of this page: 2000 steps, fewer when the docs are built
# in quick mode.)

# %%
import os
import sys
import tempfile
from pathlib import Path

QUICK = os.environ.get("SBFLOW_QUICK", "0") == "1"
STEPS = 300 if QUICK else 2000

# Work in a scratch directory, with the `sbflow` installed next to this Python first on the PATH.
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
os.chdir(tempfile.mkdtemp(prefix="sbflow-cli-"))

# %% [markdown]
# ## Help and built-in sample sets

# %%
# !sbflow --help

# %%
# !sbflow datasets

# %% [markdown]
# `sbflow datasets --name NAME --out FILE` draws samples of a built-in set into a file. We make
# a source and a target set for training, and held-out sets for the evaluation:

# %%
# !sbflow datasets --name 8gaussians -n 2000 --seed 0 --out source.npy
# !sbflow datasets --name moons -n 2000 --seed 1 --out target.npy
# !sbflow datasets --name 8gaussians -n 1000 --seed 2 --out source_test.npy
# !sbflow datasets --name moons -n 1000 --seed 3 --out target_test.npy

# %% [markdown]
# ## Couple two sample sets
#
# `sbflow couple` runs one of the coupling solvers and writes the pairs `(i, j)`, one row per
# pair (or, with `--write plan`, the dense plan):

# %%
# !sbflow couple source.npy target.npy pairs.npy --method exact

# %%
import numpy as np

pairs = np.load("pairs.npy")
print("pairs:", pairs.shape, "| every source used once:", len(np.unique(pairs[:, 0])) == 2000)

# %% [markdown]
# ## Fit, transport, evaluate, plot
#
# `sbflow fit` trains a flow (here OT-CFM) between the sets and saves it in one file:

# %%
# !sbflow fit source.npy target.npy --method ot-cfm --steps {STEPS} -o bridge.pt --no-progress

# %% [markdown]
# `sbflow transport` pushes new samples through the saved bridge; `sbflow evaluate` compares
# transported held-out sources with held-out targets (Wasserstein distances, energy distance,
# MMD, the number of function evaluations of the adaptive ODE solver and the path energy):

# %%
# !sbflow transport bridge.pt source_test.npy moved.npy
# !sbflow evaluate bridge.pt source_test.npy target_test.npy --json metrics.json

# %% [markdown]
# `sbflow plot` draws the trajectories over the source and the transported samples beside the
# target. Above two dimensions it projects on the data's first two principal components (or on
# the features given with `--features I J`); image-shaped samples become an image grid.

# %%
# !sbflow plot bridge.pt --source source_test.npy --target target_test.npy -o bridge.png

# %%
from IPython.display import Image

Image("bridge.png")

# %% [markdown]
# ## Errors are one line, with a hint
#
# A mistake costs no traceback and no half-written file: the command says what is wrong and
# exits with code 2.

# %%
# !sbflow transport bridge.pt missing.npy out.npy || echo "exit code $?"

# %%
print("out.npy written:", Path("out.npy").exists())

# %% [markdown]
# ## Long runs: checkpoints and resuming
#
# With `--run-dir`, `sbflow fit` writes checkpoints and a CSV log there. If the run is
# interrupted (Ctrl-C, a killed job), running the same command again continues from the last
# checkpoint instead of starting over:
#
# ```bash
# sbflow fit day0.npy day2.npy day4.npy --times 0 2 4 --method sb-cfm --run-dir runs/eb
# ```
#
# Several sets given in time order, with `--times`, fit one model through all of them (see the
# tutorial [Trajectory inference](../04_trajectory_inference/)).
#
# ## The demo
#
# `sbflow demo` fits OT-CFM and SB-CFM between two built-in sets, prints their metrics and
# writes a plot of the trajectories: the quickest way to check an installation.
