"""Iterative Markovian fitting (DSBM): drift targets, rounds, save/load and exact resume."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import sbflow
from sbflow.gaussian import GaussianBridge
from sbflow.methods import get_method
from sbflow.methods.imf import IMF, drift_matching_loss, drift_targets, simulate_drift
from sbflow.paths import BrownianBridgePath
from sbflow.training.batches import PathBatches, SampleSet

TINY = dict(batch_size=32, hidden=8, depth=1, progress=False, prefetch=0)


def _gaussians() -> GaussianBridge:
    cov0 = torch.tensor([[4.0, 1.0], [1.0, 2.0]], dtype=torch.float64)
    cov1 = torch.tensor([[1.0, -0.3], [-0.3, 0.5]], dtype=torch.float64)
    mean0 = torch.tensor([3.0, -1.0], dtype=torch.float64)
    mean1 = torch.tensor([-2.0, 0.5], dtype=torch.float64)
    return GaussianBridge(mean0, cov0, mean1, cov1, 0.8)


@pytest.mark.parametrize("t", [0.2, 0.7])
def test_drift_targets_regress_onto_the_gaussian_bridge_drifts(t: float) -> None:
    # On pairs of the exact plan, E[(x1 − x_t)/(1 − t) | x_t] is the SB drift f and
    # E[(x0 − x_t)/t | x_t] Anderson's backward drift −v + (σ²/2) s; both are affine in x_t
    # for Gaussians, so a least-squares fit on [x_t, 1] recovers them.
    oracle = _gaussians()
    g = torch.Generator().manual_seed(0)
    x0, x1 = oracle.sample_plan(100_000, generator=g)
    sample = BrownianBridgePath(oracle.sigma).sample(x0, x1, t, generator=g)
    forward, backward = drift_targets(sample, oracle.sigma)
    design = torch.cat([sample.xt, torch.ones(len(sample), 1, dtype=torch.float64)], 1)
    probe = torch.tensor([[3.0, -1.0], [0.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    probe_design = torch.cat([probe, torch.ones(3, 1, dtype=torch.float64)], 1)
    exact_f = oracle.drift(probe, t)
    exact_b = -oracle.velocity(probe, t) + 0.5 * oracle.sigma**2 * oracle.score(probe, t)
    for target, exact in ((forward, exact_f), (backward, exact_b)):
        coef = torch.linalg.lstsq(design, target).solution
        torch.testing.assert_close(probe_design @ coef, exact, atol=0.05, rtol=0)


def test_drift_targets_are_the_bridge_formulas_in_global_time_for_several_snapshots() -> None:
    # PathBatches maps each interval's local time to the global one (ut / Δτ); the targets
    # must then be (x1 − x_t)/(τ_{k+1} − τ) and (x0 − x_t)/(τ − τ_k) at the global σ.
    sigma, taus = 1.5, [0.0, 0.25, 1.0]
    g = torch.Generator().manual_seed(1)
    sets = [SampleSet(torch.randn(64, 3, generator=g) * 3 + k) for k in range(3)]
    samplers = [
        (
            lambda a, b, gen, s=sigma * (taus[k + 1] - taus[k]) ** 0.5: BrownianBridgePath(
                s
            ).sample(a, b, generator=gen)
        )
        for k in range(2)
    ]
    batch = PathBatches(sets, taus, samplers, 16, seed=0)(3)
    forward, backward = drift_targets(batch, sigma)
    ends = torch.tensor([taus[1]] * 16 + [taus[2]] * 16)[:, None]
    starts = torch.tensor([taus[0]] * 16 + [taus[1]] * 16)[:, None]
    t = batch.t[:, None]
    torch.testing.assert_close(forward, (batch.x1 - batch.xt) / (ends - t), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(backward, (batch.x0 - batch.xt) / (t - starts), rtol=1e-4, atol=1e-4)


def test_drift_matching_loss_is_zero_at_the_targets_and_checks_shapes() -> None:
    s = BrownianBridgePath(0.7).sample(torch.zeros(5, 2), torch.ones(5, 2), t=0.4)
    f, b = drift_targets(s, 0.7)
    assert drift_matching_loss(lambda x, t: b, s, 0.7, ("backward",)).item() < 1e-12
    wrong = drift_matching_loss(lambda x, t: (f, f), s, 0.7).item()
    assert wrong == pytest.approx((f - b).pow(2).mean().item())
    with pytest.raises(ValueError, match="returned 1 drifts"):
        drift_matching_loss(lambda x, t: f, s, 0.7)


def test_time_weighting_uses_each_rows_time_within_its_interval() -> None:
    from sbflow.methods.imf import _DriftLoss

    s = BrownianBridgePath(1.0).sample(torch.zeros(2, 1), torch.ones(2, 1), t=0.5)
    s.t = torch.tensor([0.1, 0.5])  # global times in intervals [0, 0.25] and [0.25, 1]
    f, b = drift_targets(s, 1.0)

    def off(x, t):  # errors 1 (forward) and 2 (backward) on every row
        return f + 1.0, b + 2.0

    local = torch.tensor([0.4, 1 / 3])
    expected = ((1 - local) * 1.0 + local * 4.0).mean()
    loss = _DriftLoss(1.0, ("forward", "backward"), [0.0, 0.25, 1.0])(off, s)
    torch.testing.assert_close(loss, expected)
    unweighted = drift_matching_loss(off, s, 1.0)
    assert unweighted.item() == pytest.approx(5.0)


def test_simulate_drift_runs_the_backward_sde_with_the_backward_drift() -> None:
    # Backward from x1 = 0 with b = 1 (per unit of reversed time) and σ = 0.5.
    g = torch.Generator().manual_seed(0)
    y = simulate_drift(
        lambda x, t: torch.ones_like(x), torch.zeros(8000, 1), 0.5, start=1.0, end=0.25,
        steps=10, generator=g,
    )  # fmt: skip
    assert y.mean().item() == pytest.approx(0.75, abs=0.02)
    assert y.std().item() == pytest.approx(0.5 * 0.75**0.5, abs=0.02)


def test_imf_rounds_alternate_and_the_bridge_simulates_both_drifts() -> None:
    m = get_method("imf", sigma=0.5, rounds=3, pool=64, sim_steps=5)
    assert [m.round_direction(r) for r in range(4)] == ["both", "backward", "forward", "backward"]
    reports = []
    m.on_round = reports.append
    bridge = sbflow.fit("8gaussians", "moons", method=m, steps=4, **TINY)
    assert [r.direction for r in reports] == ["both", "backward", "forward"]
    assert len(bridge.history) == 3 and bridge.simulation == "sde"
    pair = bridge.model
    x, t = torch.randn(6, 2), torch.rand(6)
    v, s = pair(x, t)  # the SDE's forward drift v + (σ²/2) s is f, its backward one b
    sig = bridge.sigma_internal
    torch.testing.assert_close(v + 0.5 * sig**2 * s, pair.forward_drift(x, t))
    torch.testing.assert_close(-v + 0.5 * sig**2 * s, pair.backward_drift(x, t))


def test_imf_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="sigma > 0"):
        IMF(sigma=0.0)
    with pytest.raises(ValueError, match="rounds"):
        IMF(rounds=0)
    with pytest.raises(ValueError, match="t_margin"):
        IMF(t_margin=0.5)
    with pytest.raises(TypeError, match="on_round"):
        IMF(on_round=3)
    with pytest.raises(ValueError, match="weighting"):
        IMF(weighting="snr")
    with pytest.raises(ValueError, match="round0_factor"):
        IMF(round0_factor=0.5)
    with pytest.raises(TypeError, match="round0_factor"):
        IMF(round0_factor="2")


def test_imf_round_zero_runs_round0_factor_times_the_steps() -> None:
    steps_seen: list[int] = []
    m = IMF(sigma=0.5, rounds=3, round0_factor=2.5, pool=64, sim_steps=5)
    m.on_round = lambda report: steps_seen.append(len(calls))
    calls: list[int] = []
    sbflow.fit(
        "8gaussians", "moons", method=m, steps=4, callbacks=[lambda *a: calls.append(1)], **TINY
    )
    assert steps_seen == [10, 14, 18]


def test_bridge_methods_pick_a_wider_network_with_the_dimension_unless_hidden_is_given() -> None:
    g = torch.Generator().manual_seed(0)
    x0, x1 = torch.randn(64, 16, generator=g), torch.randn(64, 16, generator=g) + 1
    opts = dict(steps=1, batch_size=16, depth=1, progress=False, prefetch=0)

    def width(method, **kw) -> int:
        return sbflow.fit(x0, x1, method=method, **opts, **kw).options["model"]["config"]["hidden"]

    imf = lambda: IMF(sigma=0.5, rounds=1)  # noqa: E731
    assert width(imf()) == IMF().default_width(16) > 64
    assert width(imf(), hidden=32) == 32
    assert width("sb-cfm") == IMF().default_width(16)  # IMF inherits SB-CFM's rule
    assert width("ot-cfm") == 64  # the flow methods keep width 64


def test_imf_bridge_saves_and_loads(tmp_path: Path) -> None:
    m = get_method("imf", sigma=0.3, rounds=2, pool=64, sim_steps=5)
    bridge = sbflow.fit("8gaussians", "moons", method=m, steps=4, **TINY)
    loaded = sbflow.load(bridge.save(tmp_path / "imf.pt"))
    assert loaded.method == "imf" and loaded.sigma == bridge.sigma
    x = torch.randn(16, 2, generator=torch.Generator().manual_seed(0))
    for reverse in (False, True):
        a, b = (
            br.transport(x, reverse=reverse, steps=5, generator=torch.Generator().manual_seed(1))
            for br in (bridge, loaded)
        )
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_imf_resumes_across_rounds_exactly(tmp_path: Path) -> None:
    opts = dict(steps=5, checkpoint_every=2, **TINY)

    def method() -> IMF:
        return IMF(sigma=0.5, rounds=3, pool=64, sim_steps=5)

    full = sbflow.fit("8gaussians", "moons", method=method(), run_dir=tmp_path / "a", **opts)
    calls = []

    def interrupt(trainer, step, loss) -> None:
        calls.append(step)
        if len(calls) == method().round_steps(opts["steps"], 0) + 3:  # third step of round 1
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sbflow.fit(
            "8gaussians", "moons", method=method(), run_dir=tmp_path / "b",
            callbacks=[interrupt], **opts,
        )  # fmt: skip
    assert not (tmp_path / "b" / "round-2").exists()
    resumed = sbflow.fit("8gaussians", "moons", method=method(), run_dir=tmp_path / "b", **opts)
    assert resumed.history == full.history
    for key, value in full.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[key], value), key


@pytest.mark.slow
def test_imf_rounds_decrease_the_benchmark_error_in_2d() -> None:
    from sbflow.groundtruth import EOTBenchmark, score_conditional_sampler

    bench = EOTBenchmark(dim=2, eps=1.0, seed=0)
    g = torch.Generator().manual_seed(0)
    x0, x1 = bench.sample_input(20_000, g), bench.sample_target(20_000, g)
    scores = {}

    def on_round(report) -> None:
        if report.direction == "backward":
            return  # the forward drift (what is scored) did not change
        gen = torch.Generator().manual_seed(5)

        def sampler(x: torch.Tensor, n: int) -> torch.Tensor:
            xx = x.repeat_interleave(n, 0)
            y = simulate_drift(report.field.forward_drift, xx, 1.0, steps=50, generator=gen)
            return y.reshape(x.shape[0], n, 2)

        s = score_conditional_sampler(bench, sampler, 100, 500, 2000, torch.Generator())
        scores[report.round] = s.cbw2_uvp

    m = IMF(sigma=1.0, coupling="independent", rounds=5, pool=5000, sim_steps=50)
    m.on_round = on_round
    sbflow.fit(x0, x1, method=m, steps=600, batch_size=256, normalise=False, progress=False)
    assert scores[4] < 0.5 * scores[0], scores


def _conditional_moments(bridge, x: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and covariance of the bridge's X1 | X0 = x (forward SDE), per row of x."""
    rep = x.repeat_interleave(n, 0)
    y = bridge.transport(rep, steps=50, generator=torch.Generator().manual_seed(4))
    y = y.reshape(len(x), n, -1).double()
    centred = y - y.mean(1, keepdim=True)
    return y.mean(1), centred.transpose(1, 2) @ centred / (n - 1)


@pytest.mark.slow
def test_imf_rounds_approach_the_gaussian_bridge_from_the_independent_coupling() -> None:
    # Data far from unit scale, σ in data units: after a few rounds the conditional law of
    # X1 | X0 is the closed-form Schrödinger bridge's; the first round (the Markovian
    # projection of the independent coupling) is not.
    import copy

    scale = 10.0
    oracle = _gaussians()
    sigma = 0.8 * scale
    g = torch.Generator().manual_seed(0)
    z0 = torch.randn(20_000, 2, generator=g, dtype=torch.float64)
    z1 = torch.randn(20_000, 2, generator=g, dtype=torch.float64)
    x0 = scale * (oracle.mean0 + z0 @ torch.linalg.cholesky(oracle.cov0).T)
    x1 = scale * (oracle.mean1 + z1 @ torch.linalg.cholesky(oracle.cov1).T)
    cov = oracle.plan_covariance() * scale**2
    gain = cov[2:, :2] @ torch.linalg.inv(cov[:2, :2])
    cond_cov = cov[2:, 2:] - gain @ cov[:2, 2:]
    probe = scale * torch.tensor([[3.0, -1.0], [5.0, 0.0], [1.0, -2.0]], dtype=torch.float64)
    exact_mean = scale * oracle.mean1 + (probe - scale * oracle.mean0) @ gain.T

    first = {}

    def keep_first(report) -> None:
        if report.round == 0:
            first["f"] = copy.deepcopy(report.field.forward_drift.state_dict())

    m = IMF(sigma=sigma, coupling="independent", rounds=5, on_round=keep_first)
    bridge = sbflow.fit(x0.float(), x1.float(), method=m, steps=800, progress=False)
    start = copy.deepcopy(bridge)
    start.model.forward_drift.load_state_dict(first["f"])  # the forward SDE uses f only

    def errors(br) -> tuple[float, float]:
        mean, covs = _conditional_moments(br, probe.float(), 4000)
        mean_err = (mean - exact_mean).norm(dim=1).max() / scale
        cov_err = (covs - cond_cov).norm(dim=(1, 2)).max() / cond_cov.norm()
        return float(mean_err), float(cov_err)

    (mean0, cov0), (mean1, cov1) = errors(start), errors(bridge)
    assert mean1 < 0.1 and cov1 < 0.2, (mean1, cov1)
    assert mean0 > 2 * mean1 or cov0 > 2 * cov1, (mean0, cov0, mean1, cov1)
