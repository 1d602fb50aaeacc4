"""Scores against the benchmark: BW², (c)BW2-UVP, the floor and the path KL."""

from __future__ import annotations

import math

import pytest
import torch

from sbflow.gaussian import sqrtm_psd
from sbflow.groundtruth import (
    EOTBenchmark,
    bures_wasserstein2,
    bw2_uvp,
    cbw2_uvp,
    path_kl,
    score_conditional_sampler,
)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_bw2_closed_form_for_commuting_covariances():
    a = torch.tensor([0.5, 2.0, 3.0], dtype=torch.float64)
    b = torch.tensor([1.5, 0.2, 3.0], dtype=torch.float64)
    ma, mb = torch.tensor([1.0, 0.0, -1.0]), torch.tensor([0.0, 2.0, -1.0])
    expected = 0.5 * float((ma - mb).pow(2).sum()) + 0.5 * float((a.sqrt() - b.sqrt()).pow(2).sum())
    got = float(bures_wasserstein2(ma, torch.diag(a), mb, torch.diag(b)))
    assert math.isclose(got, expected, rel_tol=1e-12)


def test_bw2_is_symmetric_and_matches_the_other_root_order():
    gen = _gen(1)
    ra, rb = (
        torch.randn(4, 4, generator=gen, dtype=torch.float64),
        torch.randn(4, 4, generator=gen, dtype=torch.float64),
    )
    sa, sb = ra @ ra.T + 0.1 * torch.eye(4), rb @ rb.T + 0.1 * torch.eye(4)
    m = torch.zeros(4)
    ab, ba = bures_wasserstein2(m, sa, m, sb), bures_wasserstein2(m, sb, m, sa)
    # tr (S_a^½ S_b S_a^½)^½ also equals the nuclear norm of S_a^½ S_b^½
    nuclear = torch.linalg.svdvals(sqrtm_psd(sa) @ sqrtm_psd(sb)).sum()
    expected = 0.5 * (sa.trace() + sb.trace()) - nuclear
    torch.testing.assert_close(ab, ba)
    torch.testing.assert_close(ab, expected)
    assert float(bures_wasserstein2(m, sa, m, sa)) == pytest.approx(0.0, abs=1e-10)


def test_uvp_of_a_shifted_sampler_adds_half_the_squared_shift():
    bench = EOTBenchmark(4, 1.0, seed=0)
    shift = torch.tensor([0.3, 0.0, -0.2, 0.1])
    gen = _gen(2)
    shifted = lambda x, n: bench.sample_conditional(x, n, gen) + shift  # noqa: E731
    score = score_conditional_sampler(bench, shifted, 100, 500, 20_000, _gen(3))
    half_trace = 0.5 * float(bench.target_moments()[1].trace())
    expected = 100 * 0.5 * float(shift.pow(2).sum()) / half_trace
    # the floor's sampling error adds to the shift only at second order
    assert score.cbw2_uvp - score.floor_cbw2_uvp == pytest.approx(expected, rel=0.15)
    assert score.bw2_uvp - score.floor_bw2_uvp == pytest.approx(expected, rel=0.15)
    assert score.excess_cbw2_uvp == pytest.approx(score.cbw2_uvp - score.floor_cbw2_uvp)


def test_uvp_functions_on_direct_inputs():
    gen = _gen(4)
    draws = 2.0 + torch.randn(3, 4000, 2, generator=gen, dtype=torch.float64)
    means = torch.zeros(3, 2)
    covs = torch.eye(2).expand(3, 2, 2)
    # mean off by (2, 2): BW² = ½·8 = 4, normaliser ½ tr(I) = 1 → 400 %
    assert cbw2_uvp(draws, means, covs, torch.eye(2)) == pytest.approx(400, rel=0.02)
    assert bw2_uvp(draws[0], torch.zeros(2), torch.eye(2)) == pytest.approx(400, rel=0.02)


def test_score_rejects_a_sampler_with_the_wrong_shape():
    bench = EOTBenchmark(2, 1.0)
    with pytest.raises(ValueError, match="must return a tensor of shape"):
        score_conditional_sampler(bench, lambda x, n: torch.zeros(len(x), n), 5, 10, 10)
    with pytest.raises(TypeError, match="callable"):
        score_conditional_sampler(bench, "exact")
    with pytest.raises(ValueError, match="n_samples"):
        score_conditional_sampler(bench, lambda x, n: x, 5, 1, 10)


def test_path_kl_of_a_constant_drift_error_is_exact():
    bench = EOTBenchmark(3, 0.5, seed=1)
    delta = torch.tensor([0.2, -0.1, 0.4], dtype=torch.float64)
    off = lambda x, t: bench.drift(x, t) + delta  # noqa: E731
    kl = path_kl(bench, off, n_paths=50, steps=20, generator=_gen(5), dtype=torch.float64)
    assert kl == pytest.approx(float(delta.pow(2).sum()) / (2 * bench.eps), rel=1e-9)
    assert path_kl(bench, bench.drift, 50, 20, _gen(5), dtype=torch.float64) == 0.0
