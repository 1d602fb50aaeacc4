"""Pair sources: independent, coupled, given and generated pairs, and fit(paired=True)."""

from __future__ import annotations

import pytest
import torch

import sbflow
from sbflow.couplings import couple
from sbflow.pairs import CoupledPairs, GeneratedPairs, GivenPairs, IndependentPairs
from sbflow.training.batches import PathBatches, SampleSet


def _g(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_given_pairs_keep_rows_together_and_are_seeded() -> None:
    x0 = torch.randn(50, 3, generator=_g())
    src = GivenPairs(x0, 2 * x0 + 1)
    a0, a1 = src.draw(20, _g(1))
    torch.testing.assert_close(a1, 2 * a0 + 1)
    b0, _ = src.draw(20, _g(1))
    assert torch.equal(a0, b0) and len({tuple(r) for r in a0.tolist()}) == 20  # no repeats


def test_coupled_pairs_are_the_optimal_assignment_of_the_batch() -> None:
    data0, data1 = torch.randn(64, 2, generator=_g(2)), torch.randn(64, 2, generator=_g(3)) + 3
    x0, x1 = CoupledPairs(data0, data1, "exact").draw(64, _g(4))
    best = couple(x0, x1, method="exact").cost
    assert float(((x0 - x1) ** 2).sum(1).mean()) == pytest.approx(best, rel=1e-5)


def test_generated_pairs_call_the_model_without_gradients() -> None:
    w = torch.ones(2, requires_grad=True)
    src = GeneratedPairs(torch.zeros(10, 2), lambda x, g: x * w + 5)
    _, x1 = src.draw(4, _g())
    assert not x1.requires_grad and torch.equal(x1, torch.full((4, 2), 5.0))
    back = GeneratedPairs(torch.zeros(10, 2), lambda x, g: x + 1, reverse=True)
    y0, y1 = back.draw(3, _g())
    assert torch.equal(y0, torch.ones(3, 2)) and torch.equal(y1, torch.zeros(3, 2))
    with pytest.raises(ValueError, match="shaped like"):
        GeneratedPairs(torch.zeros(10, 2), lambda x, g: x[:, :1]).draw(2, _g())


def test_default_path_batches_equal_independent_pair_sources() -> None:
    sets = [SampleSet(torch.randn(40, 2, generator=_g(k))) for k in range(3)]

    def sampler(a: torch.Tensor, b: torch.Tensor, g: torch.Generator):
        from sbflow.matching import Matcher

        return Matcher().sample(a, b, generator=g)

    default = PathBatches(sets, [0.0, 0.5, 1.0], [sampler] * 2, 8, seed=3)
    pairs = [IndependentPairs(sets[k], sets[k + 1]) for k in range(2)]
    explicit = PathBatches(sets, [0.0, 0.5, 1.0], [sampler] * 2, 8, seed=3, pairs=pairs)
    a, b = default(7), explicit(7)
    assert torch.equal(a.xt, b.xt) and torch.equal(a.ut, b.ut)


def test_fit_on_paired_samples_learns_the_given_matching() -> None:
    """Targets are the sources rotated by 90°; optimal transport would translate instead."""
    x0 = torch.randn(512, 2, generator=_g(5)) * 0.5 + torch.tensor([3.0, 0.0])
    rot = torch.tensor([[0.0, -1.0], [1.0, 0.0]])
    x1 = x0 @ rot.T
    opts = dict(steps=300, batch_size=128, hidden=32, depth=2, lr=3e-3, progress=False)
    paired = sbflow.fit(x0, x1, method="i-cfm", paired=True, **opts)
    probe = x0[:64]
    err = (paired.transport(probe, steps=20) - probe @ rot.T).norm(dim=1).mean()
    translation = (probe - x0.mean(0) + x1.mean(0) - probe @ rot.T).norm(dim=1).mean()
    assert err < 0.25 * translation, (err, translation)
    with pytest.raises(ValueError, match="as many targets as sources"):
        sbflow.fit(x0, x1[:100], paired=True, **{**opts, "steps": 1})
    with pytest.raises(ValueError, match="paired=True needs data"):
        sbflow.fit("8gaussians", "moons", paired=True, **{**opts, "steps": 1})
