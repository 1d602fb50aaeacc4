"""A simulation that leaves NaN or infinite values raises instead of returning them."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sbflow import Bridge
from sbflow.gaussian import GaussianBridge


class _Exploding(nn.Module):
    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return torch.full_like(x, float("inf"))


def test_transport_refuses_non_finite_results() -> None:
    x = torch.zeros(4, 1)
    fine = Bridge.from_gaussian(GaussianBridge([0.0], [[1.0]], [2.0], [[1.0]], 0.5))
    assert torch.isfinite(fine.transport(x, sde=False)).all()
    bridge = Bridge(_Exploding(), method="exploding", feature_shape=(1,))
    with pytest.raises(FloatingPointError, match="NaN or infinite"):
        bridge.transport(x, steps=5)
    with pytest.raises(FloatingPointError, match="NaN or infinite"):
        bridge.trajectory(x, [0.0, 0.5, 1.0], steps=5)
