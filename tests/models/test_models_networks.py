"""Models: output shapes, scalar-t broadcasting, float64, flattening, U-Net forward."""

from __future__ import annotations

import pytest
import torch

from sbflow.models import FlowScoreMLP, FourierTime, SmallUNet, TimeMLP


@pytest.mark.parametrize("frequencies", [0, 3])
def test_time_mlp_shapes_and_scalar_time(frequencies):
    torch.manual_seed(0)
    net = TimeMLP(3, hidden=16, depth=2, time_frequencies=frequencies)
    x = torch.randn(5, 3)
    out = net(x, torch.full((5,), 0.3))
    assert out.shape == (5, 3)
    for t in (0.3, torch.tensor(0.3), torch.tensor([0.3]), torch.full((5, 1), 0.3)):
        torch.testing.assert_close(net(x, t), out)
    # rows are evaluated at their own times
    t = torch.linspace(0, 1, 5)
    rows = torch.cat([net(x[k : k + 1], t[k]) for k in range(5)])
    torch.testing.assert_close(net(x, t), rows)


def test_time_mlp_flattens_and_restores_sample_shape():
    net = TimeMLP((1, 2, 2), hidden=8)
    assert net.dim == 4
    x = torch.randn(3, 1, 2, 2)
    out = net(x, torch.rand(3))
    assert out.shape == x.shape
    other = TimeMLP(4, hidden=8, out_dim=1)
    assert other(x, 0.0).shape == (3, 1)


def test_time_mlp_flat_and_image_inputs_agree():
    torch.manual_seed(0)
    net = TimeMLP(4, hidden=8)
    x = torch.randn(3, 1, 2, 2)
    t = torch.rand(3)
    torch.testing.assert_close(net(x, t).reshape(3, 4), net(x.reshape(3, 4), t))


def test_models_work_in_float64():
    x = torch.randn(4, 2, dtype=torch.float64)
    assert TimeMLP(2).double()(x, 0.5).dtype == torch.float64
    v, s = FlowScoreMLP(2).double()(x, torch.rand(4, dtype=torch.float64))
    assert v.dtype == s.dtype == torch.float64
    img = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    assert SmallUNet(1, base_channels=8).double()(img, 0.1).dtype == torch.float64


@pytest.mark.parametrize("shared", [False, True])
def test_flow_score_mlp_heads(shared):
    torch.manual_seed(0)
    net = FlowScoreMLP(3, hidden=16, shared_trunk=shared, activation="silu")
    x, t = torch.randn(6, 3), torch.rand(6)
    v, s = net(x, t)
    assert v.shape == s.shape == (6, 3)
    assert not torch.allclose(v, s)
    torch.testing.assert_close(net.velocity(x, t), v)
    torch.testing.assert_close(net.score(x, t), s)
    n_params = sum(p.numel() for p in net.parameters())
    other = sum(p.numel() for p in FlowScoreMLP(3, hidden=16, shared_trunk=not shared).parameters())
    assert (n_params < other) == shared


def test_small_unet_forward_28x28():
    torch.manual_seed(0)
    net = SmallUNet(1, base_channels=16)
    x = torch.randn(2, 1, 28, 28)
    out = net(x, torch.rand(2))
    assert out.shape == (2, 1, 28, 28)
    assert torch.equal(out, torch.zeros_like(out))  # zero-initialised output layer
    torch.nn.init.normal_(net.out.weight)
    out0, out1 = net(x, 0.0), net(x, 1.0)
    assert not torch.allclose(out0, out1)  # time conditioning reaches the output
    out0.sum().backward()
    assert net.inc.weight.grad is not None and net.inc.weight.grad.abs().sum() > 0


def test_small_unet_channels_and_errors():
    net = SmallUNet(3, base_channels=8, out_channels=2)
    assert net(torch.zeros(1, 3, 12, 8), 0.5).shape == (1, 2, 12, 8)
    with pytest.raises(ValueError, match="divisible by 4"):
        net(torch.zeros(1, 3, 10, 8), 0.5)
    with pytest.raises(ValueError, match="images of shape"):
        net(torch.zeros(1, 1, 8, 8), 0.5)


def test_model_input_errors():
    net = TimeMLP(2, hidden=4)
    with pytest.raises(ValueError, match="2 features"):
        net(torch.zeros(3, 3), 0.0)
    with pytest.raises(ValueError, match="t must be"):
        net(torch.zeros(3, 2), torch.zeros(2))
    with pytest.raises(ValueError, match="unknown activation"):
        TimeMLP(2, activation="swishy")
    with pytest.raises(ValueError, match="depth"):
        TimeMLP(2, depth=0)
    assert FourierTime(2).dim == 5


def _hidden_std(trunk: torch.nn.Sequential, x: torch.Tensor) -> float:
    """Standard deviation of the activations after the last hidden layer."""
    with torch.no_grad():
        return float(trunk[:-1](x).std())


@pytest.mark.parametrize("shared_trunk", [False, True])
def test_selu_layers_start_lecun_normal(shared_trunk):
    torch.manual_seed(0)
    nets = [TimeMLP(6, hidden=512, depth=3)]
    pair = FlowScoreMLP(6, hidden=512, depth=3, shared_trunk=shared_trunk)
    nets += [pair] if shared_trunk else [pair.v_net, pair.s_net]
    for net in nets:
        for layer in net.modules():
            if isinstance(layer, torch.nn.Linear):
                expected = layer.in_features**-0.5
                assert float(layer.weight.detach().std()) == pytest.approx(expected, rel=0.1)


def test_selu_init_keeps_unit_scale_through_depth():
    """SELU's fixed point: unit-variance inputs stay at unit variance, layer after layer."""
    torch.manual_seed(0)
    x = torch.randn(4096, 7)  # 6 features + t, all standardised
    net = TimeMLP(6, hidden=256, depth=6)
    assert 0.8 < _hidden_std(net.net, x) < 1.2
    # PyTorch's default Linear init (variance 1 / (3 fan_in)) shrinks the signal instead
    for layer in net.net:
        if isinstance(layer, torch.nn.Linear):
            layer.reset_parameters()
    assert _hidden_std(net.net, x) < 0.3


def test_non_selu_activations_keep_default_init():
    torch.manual_seed(0)
    net = TimeMLP(6, hidden=512, depth=2, activation="silu")
    first = net.net[0]
    bound = first.in_features**-0.5  # PyTorch: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    assert float(first.weight.detach().abs().max()) <= bound
    assert float(first.weight.detach().std()) == pytest.approx(bound / 3**0.5, rel=0.1)
