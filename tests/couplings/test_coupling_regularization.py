"""The regularisation conventions, checked by solving the same problem both ways."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sbflow.couplings import (
    Sinkhorn,
    blur_to_reg,
    eps_half_to_reg,
    reg_to_blur,
    reg_to_eps_half,
    reg_to_sigma,
    sigma_to_reg,
    sq_euclidean,
)
from sbflow.couplings._pot import pot


@pytest.mark.parametrize("value", [0.1, 0.7, 3.0])
def test_round_trips(value: float) -> None:
    assert reg_to_sigma(sigma_to_reg(value)) == pytest.approx(value)
    assert reg_to_blur(blur_to_reg(value)) == pytest.approx(value)
    assert reg_to_eps_half(eps_half_to_reg(value)) == pytest.approx(value)
    assert sigma_to_reg(value) == pytest.approx(2 * value**2)
    assert blur_to_reg(value) == sigma_to_reg(value)  # blur = σ


def test_conversions_reject_non_positive() -> None:
    for fn in (sigma_to_reg, reg_to_sigma, blur_to_reg, reg_to_blur, eps_half_to_reg):
        with pytest.raises(ValueError):
            fn(0.0)


def _problem(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(40, 2, generator=g, dtype=torch.float64)
    x1 = torch.randn(45, 2, generator=g, dtype=torch.float64) + 1.0
    return x0, x1


def test_half_cost_eps_equals_full_cost_two_eps_against_pot() -> None:
    x0, x1 = _problem()
    eps = 0.4
    half = 0.5 * sq_euclidean(x0, x1).numpy()
    ref = pot().sinkhorn([], [], half, eps, method="sinkhorn_log", stopThr=1e-13, numItermax=10**5)
    c = Sinkhorn(eps_half_to_reg(eps), tol=1e-11)(x0, x1)
    np.testing.assert_allclose(c.plan().numpy(), ref, atol=1e-10, rtol=1e-6)


def test_geomloss_blur_is_sigma() -> None:
    geomloss = pytest.importorskip("geomloss")
    x0, x1 = _problem(1)
    sigma = 0.8
    loss = geomloss.SamplesLoss(
        "sinkhorn", p=2, blur=sigma, debias=False, scaling=0.99, backend="tensorized"
    )
    value_half = float(loss(x0, x1))  # dual value of the half-cost problem at ε = blur²
    c = Sinkhorn(blur_to_reg(sigma), tol=1e-11)(x0, x1)
    f, g = c.potentials
    value_full = float(c.a @ f + c.b @ g)  # dual value of the full-cost problem at reg
    assert value_half == pytest.approx(0.5 * value_full, rel=2e-3)
    # and a wrong convention (reg = blur²) is clearly off
    f2, g2 = Sinkhorn(sigma**2, tol=1e-11)(x0, x1).potentials
    assert abs(value_half - 0.5 * float(c.a @ f2 + c.b @ g2)) > 1e-2 * value_half


def test_brownian_reference_kernel_gives_reg_two_sigma_squared() -> None:
    # The plan of entropic OT is a b exp((f + g − C)/reg); for reg = 2σ² its kernel is the
    # Brownian transition density exp(−‖x − y‖²/(2σ²)) up to the potentials.
    x0, x1 = _problem(2)
    sigma = 0.6
    c = Sinkhorn(sigma_to_reg(sigma), tol=1e-11)(x0, x1)
    plan = c.plan()
    kernel = torch.exp(-sq_euclidean(x0, x1) / (2 * sigma**2))
    ratio = plan / kernel
    # rank one: ratio_ij = u_i v_j
    s = torch.linalg.svdvals(ratio / ratio.max())
    assert float(s[1] / s[0]) < 1e-9
