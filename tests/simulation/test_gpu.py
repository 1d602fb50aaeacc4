"""Device handling on CUDA (skipped without a GPU)."""

from __future__ import annotations

import pytest
import torch

from sbflow.gaussian import GaussianBridge
from sbflow.simulation import integrate_ode, integrate_sde, log_likelihood

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def test_integrators_stay_on_the_device():
    dev = torch.device("cuda")
    eye = torch.eye(2, dtype=torch.float64, device=dev)
    br = GaussianBridge(
        torch.zeros(2, device=dev, dtype=torch.float64),
        eye,
        torch.ones(2, device=dev, dtype=torch.float64),
        eye,
        1.0,
    )
    x0 = br.sample_marginal(0.0, 2000, generator=torch.Generator(device=dev).manual_seed(0))
    assert x0.device.type == "cuda"
    ode = integrate_ode(br.velocity, x0, method="rk4", steps=10)
    sde = integrate_sde(
        br.velocity,
        br.score,
        x0,
        g=1.0,
        steps=50,
        generator=torch.Generator(device=dev).manual_seed(1),
    )
    assert ode.x.device.type == "cuda" and sde.x.device.type == "cuda"
    mean1, _ = br.marginal(1.0)
    assert float((sde.x.mean(0) - mean1).abs().max()) < 0.15
    lp = log_likelihood(br.velocity, x0[:10], lambda z: br.log_prob(z, 0.0))
    torch.testing.assert_close(lp, br.log_prob(x0[:10], 1.0), atol=1e-4, rtol=0)
