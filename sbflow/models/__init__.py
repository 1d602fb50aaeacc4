"""Time-conditioned networks called ``model(x, t)``: MLPs for vectors, a small U-Net for images.

Every built-in network is registered by name (:mod:`sbflow.models.registry`) so that a saved
bridge records ``name + config + weights`` and never a pickle; register your own class with
:func:`register_model`.

Example:
    >>> import torch
    >>> from sbflow.models import TimeMLP
    >>> TimeMLP(2)(torch.zeros(4, 2), torch.rand(4)).shape
    torch.Size([4, 2])
"""

from sbflow.models._time import FourierTime
from sbflow.models.mlp import FlowScoreMLP, TimeMLP
from sbflow.models.registry import (
    MAX_PARAMETERS,
    build_model,
    count_parameters,
    describe_model,
    model_names,
    register_model,
)
from sbflow.models.unet import SmallUNet

register_model("time-mlp")(TimeMLP)
register_model("flow-score-mlp")(FlowScoreMLP)
register_model("small-unet")(SmallUNet)

__all__ = [
    "MAX_PARAMETERS",
    "FlowScoreMLP",
    "FourierTime",
    "SmallUNet",
    "TimeMLP",
    "build_model",
    "count_parameters",
    "describe_model",
    "model_names",
    "register_model",
]
