"""Conditional paths: end points, velocity = d x_t / dt, score = ∇ log N, shapes, dtype, seeds."""

from __future__ import annotations

import math

import pytest
import torch

from sbflow.paths import (
    AffinePath,
    BrownianBridgePath,
    LinearPath,
    PathSample,
    TargetPath,
    UniformTime,
    VPPath,
)

PATHS = {
    "linear0": lambda: LinearPath(),
    "linear": lambda: LinearPath(sigma=0.3),
    "bridge": lambda: BrownianBridgePath(sigma=0.7),
    "target": lambda: TargetPath(sigma_min=0.05),
    "vp0": lambda: VPPath(),
    "vp": lambda: VPPath(sigma=0.2),
}
NOISY = ["linear", "bridge", "vp"]
SHAPES = [(7, 3), (5, 1, 4, 4)]


class _Cubic(AffinePath):
    """A custom schedule relying on the autodiff derivatives."""

    def alpha(self, t):
        return t**3

    def beta(self, t):
        return 1 - t**2

    def sigma(self, t):
        return 0.5 * torch.sin(math.pi * t)


def _pair(shape, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(shape, generator=g, dtype=dtype)
    x1 = torch.randn(shape, generator=g, dtype=dtype) + 2.0
    return x0, x1


def _sample_at(path, x0, x1, t, seed=1):
    return path.sample(x0, x1, t, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", ["linear0", "bridge", "vp0"])
@pytest.mark.parametrize("shape", SHAPES)
def test_zero_noise_at_end_points_hits_them_exactly(name, shape):
    x0, x1 = _pair(shape)
    path = PATHS[name]()
    assert torch.equal(_sample_at(path, x0, x1, 0.0).xt, x0)
    torch.testing.assert_close(_sample_at(path, x0, x1, 1.0).xt, x1, rtol=0, atol=1e-15)


@pytest.mark.parametrize("name", ["linear", "vp"])
def test_constant_noise_paths_hit_end_points_up_to_sigma(name):
    x0, x1 = _pair((4000, 2))
    path = PATHS[name]()
    for t, end in ((0.0, x0), (1.0, x1)):
        s = _sample_at(path, x0, x1, t)
        resid = s.xt - end
        torch.testing.assert_close(resid, path.sigma_value * s.noise, rtol=0, atol=1e-12)
        assert abs(resid.std().item() - path.sigma_value) < 0.02


def test_target_path_end_points():
    x0, x1 = _pair((6, 2))
    path = TargetPath(sigma_min=0.05)
    assert torch.equal(_sample_at(path, x0, x1, 0.0).xt, x0)
    torch.testing.assert_close(_sample_at(path, x0, x1, 1.0).xt, x1 + 0.05 * x0)


@pytest.mark.parametrize("name", [*PATHS, "cubic"])
@pytest.mark.parametrize("shape", SHAPES)
def test_velocity_target_is_time_derivative_at_fixed_noise(name, shape):
    path = _Cubic() if name == "cubic" else PATHS[name]()
    x0, x1 = _pair(shape)
    t = torch.rand(shape[0], generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    t = 0.05 + 0.9 * t

    def xt_of(tt):
        return _sample_at(path, x0, x1, tt).xt

    _, dxdt = torch.func.jvp(xt_of, (t,), (torch.ones_like(t),))
    torch.testing.assert_close(_sample_at(path, x0, x1, t).ut, dxdt, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", [*NOISY, "cubic"])
@pytest.mark.parametrize("shape", SHAPES)
def test_score_target_is_gradient_of_gaussian_log_density(name, shape):
    path = _Cubic() if name == "cubic" else PATHS[name]()
    x0, x1 = _pair(shape)
    t = 0.05 + 0.9 * torch.rand(shape[0], generator=torch.Generator().manual_seed(4)).double()
    s = _sample_at(path, x0, x1, t)
    mu = path.mean(x0, x1, t)
    std = path.std(t).reshape(-1, *([1] * (len(shape) - 1)))
    x = s.xt.clone().requires_grad_(True)
    logp = (-0.5 * ((x - mu) / std) ** 2 - torch.log(std) - 0.5 * math.log(2 * math.pi)).sum()
    (grad,) = torch.autograd.grad(logp, x)
    torch.testing.assert_close(s.score, grad, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(s.std, path.std(t))


@pytest.mark.parametrize("name", ["linear0", "target", "vp0"])
def test_noise_free_paths_have_no_score(name):
    s = _sample_at(PATHS[name](), *_pair((3, 2)), 0.5)
    assert s.noise is None and s.score is None
    assert torch.equal(s.std, torch.zeros(3, dtype=torch.float64))


def test_closed_form_targets():
    x0, x1 = _pair((5, 2))
    t = torch.linspace(0.1, 0.9, 5, dtype=torch.float64)
    tc = t[:, None]
    s = _sample_at(LinearPath(), x0, x1, t)
    torch.testing.assert_close(s.xt, tc * x1 + (1 - tc) * x0)
    torch.testing.assert_close(s.ut, x1 - x0)
    s = _sample_at(TargetPath(0.1), x0, x1, t)
    torch.testing.assert_close(s.ut, x1 - 0.9 * x0)
    s = _sample_at(VPPath(), x0, x1, t)
    a = 0.5 * math.pi * tc
    torch.testing.assert_close(s.xt, torch.cos(a) * x0 + torch.sin(a) * x1)
    # Brownian bridge: u_t = x1 − x0 + (1 − 2t) / (2t(1 − t)) (x_t − μ_t)
    s = _sample_at(BrownianBridgePath(0.8), x0, x1, t)
    mu = tc * x1 + (1 - tc) * x0
    torch.testing.assert_close(s.ut, x1 - x0 + (1 - 2 * tc) / (2 * tc * (1 - tc)) * (s.xt - mu))
    torch.testing.assert_close(s.std, 0.8 * torch.sqrt(t * (1 - t)))


@pytest.mark.parametrize("name", [*PATHS])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dtype_and_shapes_are_preserved(name, dtype):
    x0, x1 = _pair((6, 1, 4, 4), dtype=dtype)
    s = PATHS[name]().sample(x0, x1, generator=torch.Generator().manual_seed(0))
    assert isinstance(s, PathSample) and len(s) == 6
    assert s.t.shape == (6,) and s.std.shape == (6,)
    for v in (s.t, s.xt, s.ut, s.std, s.x0, s.x1):
        assert v.dtype == dtype
    assert s.xt.shape == s.ut.shape == x0.shape
    if s.score is not None:
        assert s.score.dtype == dtype and s.score.shape == x0.shape


@pytest.mark.parametrize("name", NOISY)
def test_seeded_reproducibility(name):
    x0, x1 = _pair((9, 2))
    path = PATHS[name]()

    def draw(seed):
        return path.sample(x0, x1, generator=torch.Generator().manual_seed(seed))

    a, b, c = draw(5), draw(5), draw(6)
    assert torch.equal(a.t, b.t) and torch.equal(a.xt, b.xt) and torch.equal(a.noise, b.noise)
    assert not torch.equal(a.t, c.t) and not torch.equal(a.noise, c.noise)


def test_brownian_bridge_times_avoid_singular_end_points():
    path = BrownianBridgePath(1.0)
    assert path.t_eps > 0 and path.time_sampler().eps == path.t_eps
    x0, x1 = _pair((20000, 1), dtype=torch.float32)
    s = path.sample(x0, x1, generator=torch.Generator().manual_seed(0))
    assert s.t.min() >= path.t_eps and s.t.max() <= 1 - path.t_eps
    assert bool(torch.isfinite(s.ut).all()) and bool((s.std > 0).all())


def test_brownian_bridge_at_end_points_is_guarded():
    x0, x1 = _pair((4, 2))
    for t in (0.0, 1.0):
        s = _sample_at(BrownianBridgePath(1.0), x0, x1, t)
        assert bool(torch.isfinite(s.ut).all())
        assert torch.equal(s.score, torch.zeros_like(s.score))


def test_scalar_and_column_times_broadcast():
    x0, x1 = _pair((3, 2))
    a = _sample_at(LinearPath(), x0, x1, 0.25)
    b = _sample_at(LinearPath(), x0, x1, torch.tensor(0.25))
    c = _sample_at(LinearPath(), x0, x1, torch.full((3, 1), 0.25))
    assert torch.equal(a.xt, b.xt) and torch.equal(a.xt, c.xt)
    assert a.t.tolist() == [0.25] * 3


def test_uniform_time_range_and_mean():
    t = UniformTime(0.1)(50000, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert t.min() >= 0.1 and t.max() <= 0.9
    assert abs(t.mean().item() - 0.5) < 0.01
    with pytest.raises(ValueError, match="eps"):
        UniformTime(0.5)


def test_input_errors():
    x0, x1 = _pair((4, 2))
    with pytest.raises(ValueError, match="equal shape"):
        LinearPath().sample(x0, x1[:3])
    with pytest.raises(ValueError, match="shape"):
        LinearPath().sample(x0, x1, t=torch.zeros(3))
    with pytest.raises(ValueError, match="n, \\*dims"):
        LinearPath().sample(x0[:, 0], x1[:, 0])
    with pytest.raises(ValueError, match="sigma > 0"):
        BrownianBridgePath(0.0)
    with pytest.raises(ValueError, match=">= 0"):
        LinearPath(-1.0)
    with pytest.raises(ValueError, match="< 1"):
        TargetPath(1.5)


def test_mixed_dtypes_are_promoted_and_numpy_accepted():
    x0, x1 = _pair((3, 2))
    s = LinearPath().sample(x0.float(), x1, t=0.5)
    assert s.xt.dtype == torch.float64
    s = LinearPath().sample(x0.numpy(), x1.numpy(), t=0.5)
    torch.testing.assert_close(s.xt, 0.5 * (x0 + x1))


def test_sample_to_moves_every_field():
    s = _sample_at(BrownianBridgePath(), *_pair((3, 2)), 0.5).to(torch.float32)
    assert s.xt.dtype == s.score.dtype == s.std.dtype == torch.float32


def test_autodiff_derivatives_of_a_custom_schedule():
    t = torch.linspace(0.1, 0.9, 7, dtype=torch.float64)
    path = _Cubic()
    torch.testing.assert_close(path.d_alpha(t), 3 * t**2)
    torch.testing.assert_close(path.d_beta(t), -2 * t)
    torch.testing.assert_close(path.d_sigma(t), 0.5 * math.pi * torch.cos(math.pi * t))
    assert path.has_noise


class _Constant(AffinePath):
    def alpha(self, t):
        return torch.ones_like(t)

    def beta(self, t):
        return torch.zeros_like(t)


def test_schedule_without_sigma_has_no_noise_and_constant_derivative_is_zero():
    path = _Constant()
    assert not path.has_noise
    s = path.sample(torch.zeros(3, 2), torch.ones(3, 2), t=0.4)
    assert s.noise is None and torch.equal(s.ut, torch.zeros(3, 2))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_tensors_with_a_cpu_generator():
    from sbflow.matching import Matcher
    from sbflow.models import FlowScoreMLP

    x0, x1 = (v.cuda() for v in _pair((16, 2), dtype=torch.float32))
    g = torch.Generator().manual_seed(0)
    s = Matcher("exact", BrownianBridgePath(0.5)).sample(x0, x1, generator=g)
    assert s.xt.device.type == s.score.device.type == s.t.device.type == "cuda"
    v, sc = FlowScoreMLP(2, hidden=8).cuda()(s.xt, 0.5)
    assert v.device.type == sc.device.type == "cuda"
