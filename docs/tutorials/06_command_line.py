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
# Python: draw or read sample sets, couple them, fit a flow or a bridge, transport new samples
# and evaluate the result. Every command reads samples from `.npy`, `.npz`, `.csv`, `.pt` or
# `.h5ad` files or takes the name of a built-in set, checks its inputs before doing any work,
# reports a problem as one line on stderr with exit code 2, and writes its outputs atomically.
#
# This page runs the real command in a subprocess, in a temporary directory. In a terminal,
# type the same lines after `sbflow`.

# %%
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

QUICK = os.environ.get("SBFLOW_QUICK", "0") == "1"
STEPS = 300 if QUICK else 2000

# The `sbflow` script installed next to this Python (works without activating the venv).
SBFLOW = shutil.which("sbflow", path=str(Path(sys.executable).parent)) or shutil.which("sbflow")
assert SBFLOW is not None, "the sbflow command is not installed: pip install -e ."
workdir = Path(tempfile.mkdtemp(prefix="sbflow-cli-"))


def run(command: str) -> subprocess.CompletedProcess:
    """Run `sbflow <command>` in the work directory and print what it prints."""
    print(f"$ sbflow {command}")
    result = subprocess.run(
        [SBFLOW, *shlex.split(command)], cwd=workdir, capture_output=True, text=True
    )
    print(result.stdout + result.stderr, end="")
    return result


def sbflow(command: str) -> None:
    """Run `sbflow <command>`; stop this page with an error if the command fails."""
    result = run(command)
    if result.returncode != 0:
        raise RuntimeError(f"sbflow {command} failed with exit code {result.returncode}")


# %% [markdown]
# ## Help and built-in sample sets

# %%
sbflow("--help")

# %%
sbflow("datasets")

# %% [markdown]
# `sbflow datasets --name NAME --out FILE` draws samples of a built-in set into a file. We make
# a source and a target set:

# %%
sbflow("datasets --name 8gaussians -n 2000 --seed 0 --out source.npy")
sbflow("datasets --name moons -n 2000 --seed 1 --out target.npy")

# %% [markdown]
# Held-out samples for the evaluation can come from Python just as well; files are files:

# %%
import torch

from sbflow.data import sample_dataset, save_samples

g = torch.Generator().manual_seed(2)
_ = save_samples(workdir / "source_test.npy", sample_dataset("8gaussians", 1000, generator=g))
_ = save_samples(workdir / "target_test.npy", sample_dataset("moons", 1000, generator=g))

# %% [markdown]
# ## Couple two sample sets
#
# `sbflow couple` runs one of the coupling solvers and writes the pairs `(i, j)` (or, with
# `--write plan`, the dense plan):

# %%
sbflow("couple source.npy target.npy pairs.npy --method exact")
pairs = np.load(workdir / "pairs.npy")
print("pairs:", pairs.shape, "| every source used once:", len(np.unique(pairs[:, 0])) == 2000)

# %% [markdown]
# ## Fit, transport, evaluate
#
# `sbflow fit` trains a flow (here OT-CFM) between the sets and saves it in one file.

# %%
sbflow(
    f"fit source.npy target.npy --method ot-cfm --steps {STEPS} --seed 0 "
    f"--out bridge.pt --no-progress"
)

# %% [markdown]
# `sbflow transport` pushes new samples through the saved bridge; `sbflow evaluate` compares
# transported held-out sources with held-out targets (Wasserstein distances, energy distance,
# MMD, the number of function evaluations of the adaptive ODE solver and the path energy):

# %%
sbflow("transport bridge.pt source_test.npy moved.npy")
sbflow("evaluate bridge.pt source_test.npy target_test.npy --json metrics.json")
metrics = json.loads((workdir / "metrics.json").read_text())
print({k: round(v, 3) for k, v in metrics.items() if isinstance(v, float)})

# %%
src = np.load(workdir / "source_test.npy")
moved = np.load(workdir / "moved.npy")
tgt = np.load(workdir / "target_test.npy")
fig, axes = plt.subplots(1, 3, figsize=(13, 4.2), sharex=True, sharey=True)
for ax, (title, pts) in zip(
    axes, [("source_test.npy", src), ("moved.npy", moved), ("target_test.npy", tgt)]
):
    ax.scatter(pts[:, 0], pts[:, 1], s=2, alpha=0.5)
    ax.set_title(title)
    ax.set_aspect("equal")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Errors are one line, with a hint
#
# A mistake costs no traceback and no half-written file: the command says what is wrong and
# exits with code 2.

# %%
result = run("transport bridge.pt missing.npy out.npy")
print("exit code:", result.returncode, "| out.npy written:", (workdir / "out.npy").exists())
assert result.returncode == 2

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

# %%
shutil.rmtree(workdir)
