"""integrate_ode on fields with known solutions."""

from __future__ import annotations

import pytest
import torch

from sbflow.simulation import integrate_ode

D = torch.float64
A = torch.tensor([[-0.3, 1.0], [-1.0, -0.2]], dtype=D)


def linear(x, t):
    return x @ A.T


def test_constant_field_and_time_shape():
    seen = []

    def field(x, t):
        seen.append(t.shape)
        return torch.full_like(x, 2.0)

    x0 = torch.zeros(5, 3, dtype=D)
    res = integrate_ode(field, x0, method="euler", steps=4)
    torch.testing.assert_close(res.x, torch.full((5, 3), 2.0, dtype=D))
    assert res.trajectory is None
    assert res.times.tolist() == [0.0, 1.0]
    assert set(seen) == {torch.Size([5])}
    assert res.nfe == len(seen) == 4


@pytest.mark.parametrize(
    ("method", "steps", "tol"),
    [("dopri5", None, 1e-6), ("rk4", 20, 1e-6), ("midpoint", 200, 1e-4), ("euler", 2000, 2e-3)],
)
def test_linear_field_matches_matrix_exponential(method, steps, tol):
    x0 = torch.randn(7, 2, dtype=D, generator=torch.Generator().manual_seed(0))
    times = torch.tensor([0.0, 0.25, 0.6, 1.0], dtype=D)
    res = integrate_ode(linear, x0, times, method=method, steps=steps, atol=1e-9, rtol=1e-9)
    assert res.trajectory.shape == (4, 7, 2)
    for k, t in enumerate(times):
        expected = x0 @ torch.linalg.matrix_exp(t * A).T
        torch.testing.assert_close(res.trajectory[k], expected, atol=tol, rtol=0)
    torch.testing.assert_close(res.x, res.trajectory[-1])


def test_time_dependent_field_and_image_shapes():
    # dx/dt = 2t on (n, C, H, W) states: x(1) = x(0) + 1.
    x0 = torch.randn(3, 2, 4, 4, dtype=D, generator=torch.Generator().manual_seed(1))
    res = integrate_ode(lambda x, t: 2 * t.view(-1, 1, 1, 1) * torch.ones_like(x), x0)
    torch.testing.assert_close(res.x, x0 + 1.0)


@pytest.mark.parametrize(("method", "steps"), [("dopri5", None), ("rk4", 50)])
def test_reverse_round_trip(method, steps):
    x0 = torch.randn(6, 2, dtype=D, generator=torch.Generator().manual_seed(2))
    times = [0.0, 0.5, 1.0]
    fwd = integrate_ode(linear, x0, times, method=method, steps=steps, atol=1e-10, rtol=1e-10)
    back = integrate_ode(
        linear, fwd.x, times, method=method, steps=steps, atol=1e-10, rtol=1e-10, reverse=True
    )
    assert back.times.tolist() == [1.0, 0.5, 0.0]
    torch.testing.assert_close(back.x, x0, atol=1e-7, rtol=0)
    torch.testing.assert_close(back.trajectory[1], fwd.trajectory[1], atol=1e-7, rtol=0)


def test_nfe_counts_every_call():
    calls = 0

    def field(x, t):
        nonlocal calls
        calls += 1
        return -x

    res = integrate_ode(field, torch.ones(3, 1))
    assert res.nfe == calls > 0


def test_grad_option_and_dtype():
    x0 = torch.ones(2, 2, requires_grad=True)
    scale = torch.tensor(0.5, requires_grad=True)
    res = integrate_ode(lambda x, t: scale * x, x0, method="rk4", steps=10)
    assert not res.x.requires_grad
    assert res.x.dtype == torch.float32
    res = integrate_ode(lambda x, t: scale * x, x0, method="rk4", steps=10, grad=True)
    res.x.sum().backward()
    # d/dscale of 4·exp(scale) = 4·exp(0.5)
    assert scale.grad.item() == pytest.approx(4 * torch.exp(torch.tensor(0.5)).item(), rel=1e-4)


def test_errors():
    x = torch.zeros(2, 2)
    with pytest.raises(ValueError, match="steps"):
        integrate_ode(linear, x, method="euler")
    with pytest.raises(ValueError, match="fixed-step"):
        integrate_ode(linear, x, method="dopri5", steps=10)
    with pytest.raises(ValueError, match="unknown ODE method"):
        integrate_ode(linear, x, method="nope")
    with pytest.raises(ValueError, match=r"monotone|increasing"):
        integrate_ode(linear, x, [0.0, 0.5, 0.2])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        integrate_ode(linear, x, [0.0, 2.0])
    with pytest.raises(ValueError, match="shape"):
        integrate_ode(lambda x, t: x[:, :1], x)
