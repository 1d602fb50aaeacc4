"""Closed forms to check a bridge against.

* :class:`GaussianBridge` — the Gaussian-to-Gaussian Schrödinger bridge (lives in
  :mod:`sbflow.gaussian`, re-exported here).
* :class:`EOTBenchmark` — the Gaussian-mixture entropic-OT benchmark (Gushchin et al.,
  NeurIPS 2023), regenerated from a seed for any dimension and ε: exact conditional plans,
  their moments and the exact bridge drift.
* Scores: :func:`score_conditional_sampler` (cBW2-UVP and BW2-UVP beside the exact sampler's
  floor, as an :class:`EOTScore`), :func:`path_kl`, and the metrics they are built from.

Example:
    >>> from sbflow.groundtruth import EOTBenchmark, score_conditional_sampler
    >>> bench = EOTBenchmark(dim=2, eps=1.0, seed=0)
    >>> gen = torch.Generator().manual_seed(0)
    >>> exact = lambda x, n: bench.sample_conditional(x, n, gen)
    >>> score = score_conditional_sampler(bench, exact, 20, 100, 500, gen)
    >>> score.n_inputs, score.dim
    (20, 2)
"""

from sbflow.gaussian import GaussianBridge
from sbflow.groundtruth.eot_benchmark import EOTBenchmark
from sbflow.groundtruth.metrics import (
    EOTScore,
    bures_wasserstein2,
    bw2_uvp,
    cbw2_uvp,
    path_kl,
    sample_moments,
    score_conditional_sampler,
)

__all__ = [
    "EOTBenchmark",
    "EOTScore",
    "GaussianBridge",
    "bures_wasserstein2",
    "bw2_uvp",
    "cbw2_uvp",
    "path_kl",
    "sample_moments",
    "score_conditional_sampler",
]
