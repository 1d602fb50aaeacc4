"""Batches made in blocks: aligned, whole, in step order, and invisible to resumption."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import sbflow as sb
from sbflow.couplings import ExactOT, Sinkhorn
from sbflow.couplings._sinkhorn_core import block_sinkhorn
from sbflow.matching import Matcher
from sbflow.training import Prefetcher
from sbflow.training.batches import PathBatches, SampleSet
from sbflow.training.distributed import LocalSampler

OPTS = dict(steps=21, batch_size=32, hidden=16, depth=2, progress=False, log_every=7)


@pytest.mark.parametrize(("depth", "workers"), [(0, 1), (2, 1), (5, 3)])
@pytest.mark.parametrize("start", [0, 3, 8, 13])
def test_prefetcher_blocks_are_aligned_whole_and_in_order(
    start: int, depth: int, workers: int
) -> None:
    asked: list[list[int]] = []

    def make_block(steps: list[int]) -> list[int]:
        asked.append(steps)
        return [10 * k for k in steps]

    with Prefetcher(
        lambda k: -1, start, 21, depth=depth, workers=workers, make_block=make_block, block=4
    ) as batches:
        got = list(batches)
    assert got == [10 * k for k in range(start, 21)]
    assert all(s[0] % 4 == 0 and s == list(range(s[0], s[0] + 4)) for s in asked)
    assert sorted(s[0] for s in asked) == list(range(start // 4 * 4, 21, 4))


def test_prefetcher_hands_over_a_block_error() -> None:
    def make_block(steps: list[int]) -> list[int]:
        if steps[0] >= 8:
            raise RuntimeError("boom")
        return steps

    with Prefetcher(lambda k: k, 0, 12, workers=2, make_block=make_block, block=4) as batches:
        with pytest.raises(RuntimeError, match="boom"):
            list(batches)


def path_batches(solver) -> PathBatches:
    sampler = LocalSampler(Matcher(solver))
    return PathBatches([SampleSet(name="8gaussians"), SampleSet(name="moons")], [0.0, 1.0],
                       [sampler], 64, seed=3)  # fmt: skip


def test_entropic_batches_are_made_in_blocks_with_one_worker() -> None:
    sink = path_batches(Sinkhorn(reg=1.0))
    assert sink.block_size == PathBatches.BLOCK and sink.prefetch_workers == 1
    exact = path_batches(ExactOT())
    assert exact.block_size == 1 and exact.prefetch_workers == 2
    block = sink.block(list(range(8)))
    for step in (0, 5):
        alone = sink(step)
        # same draws, plans equal within tol: the sampled times and noise are identical
        assert torch.equal(block[step].t, alone.t)
        assert block[step].xt.shape == alone.xt.shape


def test_sb_cfm_interrupted_inside_a_block_resumes_bit_identically(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sbflow.couplings.sinkhorn as sinkhorn

    solved: list[bool] = []

    def counted(*args, **kwargs):
        result = block_sinkhorn(*args, **kwargs)
        solved.append(result is not None)
        return result

    monkeypatch.setattr(sinkhorn, "block_sinkhorn", counted)
    g = torch.Generator().manual_seed(0)
    x0, x1 = torch.randn(400, 8, generator=g), 0.5 * torch.randn(400, 8, generator=g) + 1
    reference = sb.fit(x0, x1, method="sb-cfm", sigma=1.0, prefetch=0, **OPTS)
    assert solved and all(solved)  # the plans really were solved in blocks
    threaded = sb.fit(x0, x1, method="sb-cfm", sigma=1.0, prefetch_workers=2, **OPTS)

    def interrupt(trainer: object, step: int, loss: torch.Tensor) -> None:
        if step == 13:  # inside the block of steps 8–15
            raise KeyboardInterrupt

    run = dict(OPTS, run_dir=tmp_path, checkpoint_every=5, sigma=1.0)
    with pytest.raises(KeyboardInterrupt):
        sb.fit(x0, x1, method="sb-cfm", callbacks=[interrupt], **run)
    resumed = sb.fit(x0, x1, method="sb-cfm", **run)
    for other in (threaded, resumed):
        for a, b in zip(reference.model.state_dict().values(), other.model.state_dict().values()):
            assert torch.equal(a, b)
