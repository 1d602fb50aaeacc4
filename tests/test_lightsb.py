"""The light Gaussian-mixture Schrödinger bridge: closed forms, Gaussian oracle, benchmark."""

from __future__ import annotations

import math

import pytest
import torch

from sbflow.gaussian import GaussianBridge
from sbflow.groundtruth import EOTBenchmark, sample_moments, score_conditional_sampler
from sbflow.lightsb import LightSB, fit_light_sb, fit_light_sb_matching
from sbflow.simulation import integrate_sde


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _random_model(dim: int, k: int, eps: float, seed: int = 0) -> LightSB:
    gen = _gen(seed)
    model = LightSB(dim, k, eps)
    with torch.no_grad():
        model.log_alpha.copy_(torch.randn(k, generator=gen, dtype=torch.float64))
        model.loc.copy_(torch.randn(k, dim, generator=gen, dtype=torch.float64))
        model.log_s.copy_(0.7 * torch.randn(k, dim, generator=gen, dtype=torch.float64))
    return model


def _from_benchmark(bench: EOTBenchmark) -> LightSB:
    """The benchmark's potential written in the light parameterisation (derived by hand).

    exp(−‖y‖²/2ε)·N(y | μ, vI) = Z · N(y | εμ/(v+ε), ε·v/(v+ε) I) with
    log Z = (D/2) log(ε/(v+ε)) − ‖μ‖²/(2(v+ε)).
    """
    eps, v, mu = bench.eps, bench.potential_vars, bench.potential_means
    model = LightSB(bench.dim, len(v), eps)
    with torch.no_grad():
        model.log_s.copy_(torch.log(v / (v + eps)).unsqueeze(-1).expand_as(mu))
        model.loc.copy_(eps * mu / (v + eps).unsqueeze(-1))
        model.log_alpha.copy_(
            bench.potential_weights.log()
            + 0.5 * bench.dim * torch.log(eps / (v + eps))
            - mu.pow(2).sum(-1) / (2 * (v + eps))
        )
    return model


def test_the_benchmark_is_a_light_model_with_five_components():
    """Two independent derivations (benchmark and light drift/plan) agree."""
    bench = EOTBenchmark(3, 0.8, seed=2)
    model = _from_benchmark(bench)
    x = bench.sample_input(7, _gen(1), dtype=torch.float64)
    for got, want in zip(model.conditional_moments(x), bench.conditional_moments(x)):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    for t in (0.0, 0.5, 0.99, 1.0):
        torch.testing.assert_close(model.drift(x, t), bench.drift(x, t), rtol=1e-9, atol=1e-12)


def test_drift_is_eps_grad_log_h_by_quadrature():
    """h(x, t) = ∫ N(y | x, ε(1−t)) exp(y²/2ε) v(y) dy on a grid, differentiated by autograd."""
    model = _random_model(1, 3, eps=0.6, seed=3)
    y = torch.linspace(-30, 30, 120_001, dtype=torch.float64)
    with torch.no_grad():
        log_tilted = model.log_potential(y.unsqueeze(-1)) + y.pow(2) / (2 * model.eps)
    x = torch.tensor([[-1.3], [0.2], [0.9]], dtype=torch.float64)
    for t in (0.0, 0.35, 0.8):
        xr = x.clone().requires_grad_(True)
        var = model.eps * (1 - t)
        log_kernel = -0.5 * (y - xr).pow(2) / var - 0.5 * math.log(2 * math.pi * var)
        log_h = torch.logsumexp(log_kernel + log_tilted, dim=-1) + math.log(float(y[1] - y[0]))
        (grad,) = torch.autograd.grad(log_h.sum(), xr)
        torch.testing.assert_close(model.drift(x, t), model.eps * grad, rtol=1e-6, atol=1e-8)


def test_simulated_drift_reproduces_the_conditional_moments():
    """Euler–Maruyama of dX = f dt + √ε dW from x lands on π_θ(·|x) at t = 1."""
    model = _random_model(2, 3, eps=0.5, seed=4)
    with torch.no_grad():
        model.loc.mul_(0.5)
    x = torch.tensor([[0.5, -0.3], [-0.8, 0.6]], dtype=torch.float64)
    n = 4000
    rep = x.repeat_interleave(n, 0)
    zero = lambda z, t: torch.zeros_like(z)  # noqa: E731
    drift = lambda z, t: model.drift(z, t).detach()  # noqa: E731
    res = integrate_sde(drift, zero, rep, g=math.sqrt(model.eps), steps=200, generator=_gen(5))
    m_hat, c_hat = sample_moments(res.x.reshape(2, n, 2))
    mean, cov = model.conditional_moments(x)
    sd = cov.diagonal(dim1=-2, dim2=-1).sqrt()
    # five standard errors, plus a little for the Euler bias
    assert bool(((m_hat - mean).abs() <= 5 * sd / math.sqrt(n) + 0.01).all())
    scale = sd.unsqueeze(-1) * sd.unsqueeze(-2)
    assert bool(((c_hat - cov).abs() <= 7 * scale / math.sqrt(n) + 0.02 * scale).all())


def test_the_center_reparameterisation_keeps_the_model():
    model = _random_model(3, 4, eps=0.7, seed=14)
    moved = _random_model(3, 4, eps=0.7, seed=14)
    c = torch.tensor([2.0, -1.0, 0.5], dtype=torch.float64)
    with torch.no_grad():
        moved.center.copy_(c)
        moved.loc.add_(moved.log_s.exp() * c)  # same r = loc − S·center
    x = torch.randn(5, 3, generator=_gen(15), dtype=torch.float64)
    for got, want in zip(moved.conditional_moments(x), model.conditional_moments(x)):
        torch.testing.assert_close(got, want)
    torch.testing.assert_close(moved.drift(x, 0.6), model.drift(x, 0.6))
    torch.testing.assert_close(moved.loss(x, x + 1), model.loss(x, x + 1))


def test_conditional_moments_match_the_sampler():
    model = _random_model(3, 4, eps=0.3, seed=6)
    x = 0.5 * torch.randn(3, 3, generator=_gen(7), dtype=torch.float64)
    n = 40_000
    m_hat, c_hat = sample_moments(model.sample_conditional(x, n, _gen(8)))
    mean, cov = model.conditional_moments(x)
    sd = cov.diagonal(dim1=-2, dim2=-1).sqrt()
    assert bool(((m_hat - mean).abs() <= 5 * sd / math.sqrt(n)).all())
    scale = sd.unsqueeze(-1) * sd.unsqueeze(-2)
    assert bool(((c_hat - cov).abs() <= 5 * math.sqrt(2.0) * scale / math.sqrt(n)).all())


@pytest.mark.parametrize("fitter", [fit_light_sb, fit_light_sb_matching])
def test_one_component_fit_matches_the_gaussian_bridge(fitter):
    """Between two (diagonal, not unit-scaled) Gaussians the optimum is the Gaussian SB.

    The matching variant gets independent pairs: restricted to the bridge family, the
    Markovian projection of any coupling is the Schrödinger bridge.
    """
    sigma = 0.8  # GaussianBridge takes σ; the light solver ε = σ²
    m0, v0 = torch.tensor([1.0, -2.0]), torch.tensor([0.5, 2.0])
    m1, v1 = torch.tensor([3.0, 0.5]), torch.tensor([3.0, 0.7])
    gen = _gen(9)
    n = 20_000
    x0 = m0 + v0.sqrt() * torch.randn(n, 2, generator=gen, dtype=torch.float64)
    x1 = m1 + v1.sqrt() * torch.randn(n, 2, generator=gen, dtype=torch.float64)
    fit = fitter(
        x0, x1, eps=sigma**2, n_components=1, steps=800, lr=5e-2, init_scale=1.0, generator=gen
    )
    oracle = GaussianBridge(m0, torch.diag(v0), m1, torch.diag(v1), sigma)
    c = oracle.cross_covariance().double()
    s0_inv = torch.diag(1 / v0).double()
    x = torch.tensor([[0.0, 0.0], [1.5, -1.0], [2.0, -4.0]], dtype=torch.float64)
    want_mean = m1.double() + (x - m0.double()) @ (c.T @ s0_inv).T
    want_cov = torch.diag(v1).double() - c.T @ s0_inv @ c
    mean, cov = fit.model.conditional_moments(x)
    torch.testing.assert_close(mean, want_mean, atol=0.05, rtol=0)
    torch.testing.assert_close(cov[0], want_cov, atol=0.03, rtol=0)


def _assert_reaches_the_floor(fitter, dim: int, n: int, seed: int, **options) -> None:
    """Fit ``n`` samples of each side of the ε = 1 benchmark (unpaired, so independent pairs
    for the matching fit); its cBW2-UVP must come within 0.1 of the exact sampler's floor."""
    bench = EOTBenchmark(dim, 1.0, seed=0)
    gen = _gen(seed)
    x0, x1 = bench.sample_input(n, gen), bench.sample_target(n, gen)
    fit = fitter(x0, x1, eps=bench.eps, generator=gen, **options)
    sampler = lambda x, n: fit.model.sample_conditional(x, n, gen)  # noqa: E731
    score = score_conditional_sampler(bench, sampler, generator=_gen(seed + 1))
    assert score.cbw2_uvp < score.floor_cbw2_uvp + 0.1, score


def test_fit_reaches_the_floor_on_the_benchmark_d2():
    _assert_reaches_the_floor(fit_light_sb, 2, 20_000, seed=10, n_components=10, steps=800)


@pytest.mark.slow
def test_fit_reaches_the_floor_on_the_benchmark_d16():
    _assert_reaches_the_floor(fit_light_sb, 16, 50_000, seed=12)


@pytest.mark.slow
def test_matching_on_independent_pairs_reaches_the_floor_d2():
    _assert_reaches_the_floor(fit_light_sb_matching, 2, 100_000, seed=16)


def test_dtype_and_shapes_follow_the_inputs():
    model = _random_model(2, 2, eps=1.0)
    x32 = torch.zeros(3, 2)
    assert model.transport(x32).dtype == torch.float32
    assert model.drift(x32.double(), 0.2).dtype == torch.float64
    assert model.conditional_moments(x32)[1].shape == (3, 2, 2)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="n_components"):
        LightSB(2, 0, 1.0)
    with pytest.raises(ValueError, match="eps"):
        LightSB(2, 2, 0.0)
    model = LightSB(2, 2, 1.0)
    with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
        model.sample_conditional(torch.zeros(3, 4), 2)
    with pytest.raises(ValueError, match="t must lie"):
        model.drift(torch.zeros(3, 2), -0.1)
    with pytest.raises(ValueError, match="same feature shape"):
        fit_light_sb(torch.zeros(5, 2), torch.zeros(5, 3), eps=1.0)
    with pytest.raises(ValueError, match="same number of rows"):
        fit_light_sb_matching(torch.zeros(5, 2), torch.zeros(4, 2), eps=1.0)
    with pytest.raises(ValueError, match="steps"):
        fit_light_sb(torch.zeros(5, 2), torch.zeros(5, 2), eps=1.0, steps=0)
