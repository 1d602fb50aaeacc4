"""Conditional probability paths (bridges) between coupled pairs, and time samplers.

Example:
    >>> import torch
    >>> from sbflow.paths import BrownianBridgePath
    >>> g = torch.Generator().manual_seed(0)
    >>> s = BrownianBridgePath(sigma=0.5).sample(torch.zeros(8, 2), torch.ones(8, 2), generator=g)
    >>> s.xt.shape, s.ut.shape, s.score.shape
    (torch.Size([8, 2]), torch.Size([8, 2]), torch.Size([8, 2]))
"""

from sbflow.paths.base import AffinePath, PathSample, ProbabilityPath
from sbflow.paths.schedules import BrownianBridgePath, LinearPath, TargetPath, VPPath
from sbflow.paths.time import TimeSampler, UniformTime

__all__ = [
    "AffinePath",
    "BrownianBridgePath",
    "LinearPath",
    "PathSample",
    "ProbabilityPath",
    "TargetPath",
    "TimeSampler",
    "UniformTime",
    "VPPath",
]
