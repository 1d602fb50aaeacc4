"""Time-conditioned networks called ``model(x, t)``: MLPs for vectors, a small U-Net for images.

Example:
    >>> import torch
    >>> from sbflow.models import TimeMLP
    >>> TimeMLP(2)(torch.zeros(4, 2), torch.rand(4)).shape
    torch.Size([4, 2])
"""

from sbflow.models._time import FourierTime
from sbflow.models.mlp import FlowScoreMLP, TimeMLP
from sbflow.models.unet import SmallUNet

__all__ = ["FlowScoreMLP", "FourierTime", "SmallUNet", "TimeMLP"]
