"""Internal consistency of the closed-form Gaussian Schrödinger bridge."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sbflow.gaussian import GaussianBridge, gaussian_kl, sqrtm_psd

D = torch.float64


def random_spd(d: int, seed: int, scale: float = 1.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(d, d, generator=g, dtype=D)
    return scale * (a @ a.T / d + 0.3 * torch.eye(d, dtype=D))


def make_bridge(d: int = 3, sigma: float = 0.7) -> GaussianBridge:
    g = torch.Generator().manual_seed(100 + d)
    m0 = torch.randn(d, generator=g, dtype=D)
    m1 = torch.randn(d, generator=g, dtype=D) + 1.0
    return GaussianBridge(m0, random_spd(d, 1), m1, random_spd(d, 2, 2.0), sigma)


def linear_part(field, br: GaussianBridge, t: float) -> torch.Tensor:
    """Matrix B of an affine field x -> c + B (x - m_t), read off by finite differences."""
    mean, _ = br.marginal(t)
    pts = torch.cat([mean[None], mean[None] + torch.eye(br.dim, dtype=D)])
    vals = field(pts, t)
    return (vals[1:] - vals[0]).T


def dcov(br: GaussianBridge, t: float, h: float = 1e-5) -> torch.Tensor:
    return (br.marginal(t + h)[1] - br.marginal(t - h)[1]) / (2 * h)


def test_sqrtm_psd_squares_back():
    m = random_spd(4, 3)
    r = sqrtm_psd(m)
    torch.testing.assert_close(r @ r, m)
    torch.testing.assert_close(r, r.T)


@pytest.mark.parametrize("sigma", [0.0, 0.5, 2.0])
def test_marginals_at_the_ends(sigma):
    br = make_bridge(3, sigma)
    for t, (m, c) in ((0.0, (br.mean0, br.cov0)), (1.0, (br.mean1, br.cov1))):
        mean, cov = br.marginal(t)
        torch.testing.assert_close(mean, m)
        torch.testing.assert_close(cov, c)


@pytest.mark.parametrize("sigma", [0.3, 1.0, 3.0])
def test_plan_has_entropic_ot_structure(sigma):
    # The EOT plan is a(x) b(y) exp(-|x - y|² / (2σ²)): the cross block of its precision
    # matrix is -I / σ², whatever the marginals.
    br = make_bridge(3, sigma)
    prec = torch.linalg.inv(br.plan_covariance())
    torch.testing.assert_close(
        prec[:3, 3:], -torch.eye(3, dtype=D) / sigma**2, atol=1e-8, rtol=1e-7
    )
    assert float(torch.linalg.eigvalsh(br.plan_covariance()).min()) > 0


def test_one_dimensional_correlation_closed_form():
    # Unit variances: rho solves rho / (1 - rho²) = 1 / σ².
    for sigma in (0.5, 1.0, 2.0):
        br = GaussianBridge([0.0], [[1.0]], [0.0], [[1.0]], sigma)
        s = sigma**2
        assert br.cross_covariance().item() == pytest.approx((math.sqrt(s**2 + 4) - s) / 2)


def test_small_sigma_approaches_monge_coupling():
    br0 = make_bridge(3, 0.0)
    a = br0.monge_matrix()
    torch.testing.assert_close(a, a.T)
    torch.testing.assert_close(a @ br0.cov0 @ a, br0.cov1)  # pushes Σ0 to Σ1
    assert float(torch.linalg.eigvalsh(a).min()) > 0
    monge_plan = torch.cat(
        [torch.cat([br0.cov0, br0.cov0 @ a], 1), torch.cat([a @ br0.cov0, br0.cov1], 1)]
    )
    errors = []
    for sigma in (1e-1, 1e-2, 1e-3):
        br = make_bridge(3, sigma)
        errors.append(float((br.plan_covariance() - monge_plan).abs().max()))
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 1e-5
    torch.testing.assert_close(br0.plan_covariance(), monge_plan)
    x = torch.randn(5, 3, dtype=D, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(br0.monge_map(x), br0.mean1 + (x - br0.mean0) @ a)


@pytest.mark.parametrize("sigma", [0.0, 0.7, 1.5])
@pytest.mark.parametrize("t", [0.0, 0.2, 0.5, 0.9, 1.0])
def test_lyapunov_equations(sigma, t):
    br = make_bridge(3, sigma)
    tc = min(max(t, 1e-4), 1 - 1e-4)  # central differences inside [0, 1]
    deriv = dcov(br, tc)
    _, cov = br.marginal(tc)
    bv = linear_part(br.velocity, br, tc)
    bf = linear_part(br.drift, br, tc)
    torch.testing.assert_close(bv @ cov + cov @ bv.T, deriv, atol=1e-7, rtol=1e-6)
    eye = torch.eye(3, dtype=D)
    torch.testing.assert_close(bf @ cov + cov @ bf.T + sigma**2 * eye, deriv, atol=1e-7, rtol=1e-6)


@pytest.mark.parametrize("t", [0.1, 0.5, 0.8])
def test_mean_velocity_and_drift_offsets(t):
    br = make_bridge(3, 0.9)
    mean, _ = br.marginal(t)
    h = 1e-6
    dmean = (br.marginal(t + h)[0] - br.marginal(t - h)[0]) / (2 * h)
    torch.testing.assert_close(br.velocity(mean[None], t)[0], dmean)
    torch.testing.assert_close(br.drift(mean[None], t)[0], dmean)


@pytest.mark.parametrize("t", [0.0, 0.3, 0.75])
def test_drift_is_the_mixture_of_bridges_drift(t):
    # Independent formula: f(x, t) = E[(x1 - x_t) / (1 - t) | x_t = x] from the plan.
    sigma = 0.8
    br = make_bridge(3, sigma)
    c = br.cross_covariance()
    mean, cov = br.marginal(t)
    cov_x1_xt = (1 - t) * c.T + t * br.cov1
    x = torch.randn(6, 3, dtype=D, generator=torch.Generator().manual_seed(1)) + mean
    e_x1 = br.mean1 + (x - mean) @ torch.linalg.solve(cov, cov_x1_xt.T)
    expected = (e_x1 - x) / (1 - t)
    torch.testing.assert_close(br.drift(x, t), expected)


def test_velocity_is_the_regression_of_the_conditional_velocity():
    # Monte Carlo: least squares of u_t on (1, x_t) recovers the affine velocity field.
    sigma, t, n = 1.0, 0.35, 400_000
    br = make_bridge(2, sigma)
    gen = torch.Generator().manual_seed(5)
    x0, x1 = br.sample_plan(n, generator=gen)
    eps = torch.randn(n, 2, generator=gen, dtype=D)
    xt = (1 - t) * x0 + t * x1 + sigma * math.sqrt(t * (1 - t)) * eps
    ut = x1 - x0 + (1 - 2 * t) * sigma / (2 * math.sqrt(t * (1 - t))) * eps
    design = torch.cat([torch.ones(n, 1, dtype=D), xt], 1)
    coef = torch.linalg.lstsq(design, ut).solution
    bv = linear_part(br.velocity, br, t)
    torch.testing.assert_close(coef[1:].T, bv, atol=0.02, rtol=0)
    x_test = torch.tensor([[0.0, 0.0], [1.0, -1.0]], dtype=D)
    fitted = torch.cat([torch.ones(2, 1, dtype=D), x_test], 1) @ coef
    torch.testing.assert_close(fitted, br.velocity(x_test, t), atol=0.03, rtol=0)


def test_score_is_the_gradient_of_log_prob():
    br = make_bridge(3, 0.6)
    x = torch.randn(5, 3, dtype=D, generator=torch.Generator().manual_seed(2)).requires_grad_()
    t = torch.tensor([0.0, 0.2, 0.5, 0.7, 1.0], dtype=D)
    (grad,) = torch.autograd.grad(br.log_prob(x, t).sum(), x)
    torch.testing.assert_close(br.score(x.detach(), t), grad)


def test_log_prob_matches_torch_distribution():
    br = make_bridge(3, 0.6)
    x = torch.randn(4, 3, dtype=D, generator=torch.Generator().manual_seed(3))
    mean, cov = br.marginal(0.4)
    ref = torch.distributions.MultivariateNormal(mean, covariance_matrix=cov).log_prob(x)
    torch.testing.assert_close(br.log_prob(x, 0.4), ref)


def test_vector_times_match_scalar_times():
    br = make_bridge(2, 0.5)
    x = torch.randn(40, 2, dtype=D, generator=torch.Generator().manual_seed(4))
    t = torch.rand(40, dtype=D, generator=torch.Generator().manual_seed(5))  # 40 distinct > 32
    for fn in (br.velocity, br.score, br.drift):
        batched = fn(x, t)
        single = torch.stack([fn(x[i : i + 1], float(t[i]))[0] for i in range(40)])
        torch.testing.assert_close(batched, single)
    means, covs = br.marginal(t[:3])
    assert means.shape == (3, 2) and covs.shape == (3, 2, 2)
    torch.testing.assert_close(covs[1], br.marginal(float(t[1]))[1])


def test_sampling_matches_moments():
    br = make_bridge(2, 1.0)
    gen = torch.Generator().manual_seed(6)
    x0, x1 = br.sample_plan(200_000, generator=gen)
    joint = torch.cat([x0, x1], 1)
    torch.testing.assert_close(joint.T.cov(), br.plan_covariance(), atol=0.03, rtol=0)
    torch.testing.assert_close(joint.mean(0), torch.cat([br.mean0, br.mean1]), atol=0.01, rtol=0)
    xs = br.sample_marginal(0.4, 200_000, generator=gen)
    mean, cov = br.marginal(0.4)
    torch.testing.assert_close(xs.T.cov(), cov, atol=0.03, rtol=0)
    torch.testing.assert_close(xs.mean(0), mean, atol=0.01, rtol=0)
    a = br.sample_plan(10, generator=torch.Generator().manual_seed(1))[1]
    b = br.sample_plan(10, generator=torch.Generator().manual_seed(1))[1]
    assert torch.equal(a, b)


def test_dtypes_and_numpy_inputs():
    br = GaussianBridge(np.zeros(2), np.eye(2), np.ones(2), 2 * np.eye(2), 1.0)
    assert br.dtype == torch.float64
    assert br.cross_covariance().dtype == torch.float64
    x32 = torch.zeros(3, 2)
    assert br.velocity(x32, 0.5).dtype == torch.float32
    assert br.score(np.zeros((3, 2)), 0.5).dtype == torch.float64
    br32 = GaussianBridge(torch.zeros(2), torch.eye(2), torch.ones(2), torch.eye(2), 1.0)
    assert br32.marginal(0.5)[1].dtype == torch.float32


def test_gaussian_kl():
    assert gaussian_kl(torch.zeros(3), torch.eye(3), torch.zeros(3), torch.eye(3)) == 0.0
    # 1-D: KL(N(0, a) || N(0, 1)) = (a - 1 - log a) / 2
    assert gaussian_kl([0.0], [[2.0]], [0.0], [[1.0]]) == pytest.approx(0.5 * (2 - 1 - math.log(2)))


@pytest.mark.parametrize(
    ("kwargs", "err"),
    [
        ({"cov0": [[1.0, 0.5], [0.0, 1.0]]}, ValueError),  # not symmetric
        ({"cov0": [[1.0, 0.0], [0.0, -1.0]]}, ValueError),  # not PD
        ({"mean1": [0.0, 0.0, 0.0]}, ValueError),
        ({"sigma": -1.0}, ValueError),
        ({"sigma": "a"}, TypeError),
        ({"mean0": [0.0, float("nan")]}, ValueError),
    ],
)
def test_invalid_inputs(kwargs, err):
    args = {"mean0": [0.0, 0.0], "cov0": np.eye(2), "mean1": [1.0, 1.0], "cov1": np.eye(2),
            "sigma": 1.0}  # fmt: skip
    args.update(kwargs)
    with pytest.raises(err):
        GaussianBridge(**args)


def test_invalid_call_arguments():
    br = make_bridge(2, 1.0)
    with pytest.raises(ValueError, match="shape"):
        br.velocity(torch.zeros(3, 3, dtype=D), 0.5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        br.score(torch.zeros(3, 2, dtype=D), 1.5)
    with pytest.raises(ValueError, match="entries"):
        br.drift(torch.zeros(3, 2, dtype=D), torch.zeros(2, dtype=D))
    with pytest.raises(ValueError, match="positive integer"):
        br.sample_plan(0)
