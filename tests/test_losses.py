"""Losses: zero at the exact target, analytic values, gradients, errors."""

from __future__ import annotations

import pytest
import torch

from sbflow.losses import bridge_loss, flow_matching_loss, score_matching_loss
from sbflow.models import FlowScoreMLP, TimeMLP
from sbflow.paths import BrownianBridgePath, LinearPath


def _sample(path=None, n=64, shape=(2,), t=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(n, *shape, generator=g, dtype=torch.float64)
    x1 = torch.randn(n, *shape, generator=g, dtype=torch.float64) + 1
    return (path or BrownianBridgePath(0.7)).sample(x0, x1, t, generator=g)


def test_zero_loss_at_exact_targets():
    s = _sample()
    assert flow_matching_loss(lambda x, t: s.ut, s).item() == 0.0
    assert score_matching_loss(lambda x, t: s.score, s).item() < 1e-28
    assert score_matching_loss(lambda x, t: s.score, s, weighting="none").item() == 0.0
    assert bridge_loss(lambda x, t: (s.ut, s.score), s).item() < 1e-28


def test_flow_loss_is_mean_squared_error():
    s = _sample(LinearPath(), shape=(1, 3, 2))
    loss = flow_matching_loss(lambda x, t: torch.zeros_like(x), s)
    torch.testing.assert_close(loss, (s.ut**2).mean())


def test_score_loss_analytic_value_for_constant_model():
    s = _sample()
    c = torch.tensor([0.5, -2.0], dtype=torch.float64)
    loss = score_matching_loss(lambda x, t: c.expand_as(x), s)
    expected = ((s.std[:, None] * c + s.noise) ** 2).mean()
    torch.testing.assert_close(loss, expected)
    # λ-weighted residual is σ_t² (s − score target)²
    alt = (s.std[:, None] ** 2 * (c - s.score) ** 2).mean()
    torch.testing.assert_close(loss, alt)
    # the zero model gives E ε² ≈ 1
    zero = score_matching_loss(lambda x, t: torch.zeros_like(x), _sample(n=20000))
    assert abs(zero.item() - 1.0) < 0.03


def test_score_loss_skips_rows_without_noise():
    s = _sample(t=torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64), n=3)
    loss = score_matching_loss(lambda x, t: torch.zeros_like(x), s)
    torch.testing.assert_close(loss, (s.noise[1] ** 2).sum() / s.noise.numel())


def test_bridge_loss_is_sum_of_both_terms():
    s = _sample()
    v = torch.ones_like(s.ut)
    sc = torch.zeros_like(s.ut)
    total = bridge_loss(lambda x, t: (v, sc), s, score_weight=2.0)
    parts = flow_matching_loss(lambda x, t: v, s) + 2 * score_matching_loss(lambda x, t: sc, s)
    torch.testing.assert_close(total, parts)


def test_gradients_flow_into_models():
    s = _sample().to(torch.float32)
    net = TimeMLP(2, hidden=16)
    flow_matching_loss(net, s).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())
    two = FlowScoreMLP(2, hidden=16)
    bridge_loss(two, s).backward()
    assert all(p.grad is not None for p in two.parameters())
    assert two.s_net.net[0].weight.grad.abs().sum() > 0


def test_loss_errors():
    s = _sample(LinearPath())
    with pytest.raises(ValueError, match="no score target"):
        score_matching_loss(lambda x, t: x, s)
    with pytest.raises(ValueError, match="shape"):
        flow_matching_loss(lambda x, t: x[:, :1], s)
    with pytest.raises(TypeError, match="two-head"):
        bridge_loss(lambda x, t: x, _sample())
    with pytest.raises(ValueError, match="weighting"):
        score_matching_loss(lambda x, t: x, _sample(), weighting="sigma2")
