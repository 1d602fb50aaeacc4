"""log_likelihood of an affine flow of a Gaussian against the closed form."""

from __future__ import annotations

import math

import pytest
import torch

from sbflow.simulation import divergence, log_likelihood

D = torch.float64
A = torch.tensor([[0.2, 0.5, 0.0], [-0.4, -0.1, 0.3], [0.1, 0.0, 0.4]], dtype=D)
B = torch.tensor([1.0, -0.5, 0.25], dtype=D)


def affine(x, t):
    return x @ A.T + B


def std_normal(z):
    return -0.5 * (z**2).sum(1) - 0.5 * z.shape[1] * math.log(2 * math.pi)


def pushforward():
    # x(1) = e^A x0 + A^{-1}(e^A - I) b for x0 ~ N(0, I).
    ea = torch.linalg.matrix_exp(A)
    mean = torch.linalg.solve(A, (ea - torch.eye(3, dtype=D)) @ B)
    return torch.distributions.MultivariateNormal(mean, covariance_matrix=ea @ ea.T)


def test_exact_trace_matches_closed_form():
    target = pushforward()
    x = target.sample((20,))
    lp = log_likelihood(affine, x, std_normal, atol=1e-9, rtol=1e-9)
    torch.testing.assert_close(lp, target.log_prob(x), atol=1e-6, rtol=0)


def test_fixed_step_method():
    target = pushforward()
    x = target.sample((5,))
    lp = log_likelihood(affine, x, std_normal, method="rk4", steps=50)
    torch.testing.assert_close(lp, target.log_prob(x), atol=1e-5, rtol=0)


@pytest.mark.parametrize("probe", ["rademacher", "gaussian"])
def test_hutchinson_is_unbiased(probe):
    target = pushforward()
    x = target.sample((1,)).expand(400, 3)
    gen = torch.Generator().manual_seed(0)
    lp = log_likelihood(
        affine,
        x,
        std_normal,
        trace="hutchinson",
        probe=probe,
        n_probes=2,
        generator=gen,
        method="rk4",
        steps=20,
    )
    exact = target.log_prob(x[:1])
    se = float(lp.std()) / math.sqrt(lp.numel())
    assert se > 0  # the estimate is genuinely random across samples
    assert abs(float(lp.mean()) - float(exact)) < 4 * se + 1e-4


def test_hutchinson_seeded_and_image_shapes():
    x = torch.randn(4, 1, 2, 2, dtype=D, generator=torch.Generator().manual_seed(1))

    def field(z, t):
        return 0.5 * z

    def base(z):
        return std_normal(z.flatten(1))

    runs = [
        log_likelihood(
            field, x, base, trace="hutchinson", generator=torch.Generator().manual_seed(2)
        )
        for _ in range(2)
    ]
    torch.testing.assert_close(runs[0], runs[1])
    exact = log_likelihood(field, x, base)
    # v = z/2: x0 = x e^{-1/2}, divergence 2 (4 dims · 1/2).
    torch.testing.assert_close(exact, base(x * math.exp(-0.5)) - 2.0, atol=1e-4, rtol=0)
    # For an isotropic field the Rademacher estimate is exact.
    torch.testing.assert_close(runs[0], exact, atol=1e-5, rtol=0)


def test_divergence_of_a_nonlinear_field():
    x = torch.randn(6, 2, dtype=D, generator=torch.Generator().manual_seed(3))
    t = torch.full((6,), 0.3, dtype=D)

    def field(z, tt):
        return torch.stack([torch.sin(z[:, 0]) * z[:, 1], z[:, 1] ** 2 * tt], 1)

    _, div = divergence(field, x, t)
    expected = torch.cos(x[:, 0]) * x[:, 1] + 2 * x[:, 1] * 0.3
    torch.testing.assert_close(div, expected)


def test_errors():
    x = torch.zeros(2, 3, dtype=D)
    with pytest.raises(ValueError, match="trace"):
        log_likelihood(affine, x, std_normal, trace="nope")
    with pytest.raises(ValueError, match="n_probes"):
        log_likelihood(affine, x, std_normal, trace="hutchinson", n_probes=0)
    with pytest.raises(ValueError, match="shape"):
        log_likelihood(affine, x, lambda z: z)
