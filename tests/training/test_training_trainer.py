"""Trainer: exact resumption, interruption handling, checkpoints, logs, EMA, prefetching."""

from __future__ import annotations

import csv
import os
import signal
from pathlib import Path

import pytest
import torch

from sbflow.training import (
    EMA,
    Prefetcher,
    StopTraining,
    TrainConfig,
    Trainer,
    load_checkpoint,
    step_seed,
)


def make_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.SiLU(), torch.nn.Linear(16, 2))


def make_batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(step_seed(7, step))
    x = torch.randn(32, 2, generator=g)
    return x, torch.stack([x[:, 1], -x[:, 0]], 1) + 0.1 * torch.randn(32, 2, generator=g)


def loss_fn(model: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    x, y = batch
    return (model(x) - y).pow(2).mean()


def config(**kw: object) -> TrainConfig:
    base = dict(steps=40, lr=1e-2, warmup_steps=5, checkpoint_every=7, log_every=5, progress=False)
    base.update(kw)
    return TrainConfig(**base)  # type: ignore[arg-type]


def trainer(run_dir: Path | None, callbacks=(), **kw: object) -> Trainer:
    return Trainer(
        make_model(),
        loss_fn,
        make_batch,
        config(**kw),
        run_dir=run_dir,
        callbacks=callbacks,
        meta={"task": "rotate"},
    )


def assert_same_state(a: Trainer, b: Trainer) -> None:
    for (ka, va), (kb, vb) in zip(a.model.state_dict().items(), b.model.state_dict().items()):
        assert ka == kb and torch.equal(va, vb), ka
    for va, vb in zip(a.ema.model.state_dict().values(), b.ema.model.state_dict().values()):
        assert torch.equal(va, vb)
    assert (
        a.optimizer.state_dict()["state"][0]["step"] == b.optimizer.state_dict()["state"][0]["step"]
    )
    assert a.history == b.history


def stop_with(exc: type[BaseException], at: int):
    def callback(trainer: Trainer, step: int, loss: torch.Tensor) -> None:
        if step == at:
            raise exc

    return callback


@pytest.mark.parametrize(("prefetch", "workers"), [(0, 1), (3, 1), (2, 3)])
def test_interrupted_and_resumed_run_is_bit_identical(
    tmp_path: Path, prefetch: int, workers: int
) -> None:
    reference = trainer(tmp_path / "ref", prefetch=0).train()  # the plain loop
    assert reference.step == 40
    with pytest.raises(KeyboardInterrupt):
        trainer(
            tmp_path / "run",
            [stop_with(KeyboardInterrupt, 13)],
            prefetch=prefetch,
            prefetch_workers=workers,
        ).train()
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["step"] == 13
    resumed = trainer(tmp_path / "run", prefetch=prefetch, prefetch_workers=workers)
    assert resumed.resumed_from == 13
    resumed.train()
    assert_same_state(reference, resumed)
    steps = [int(r["step"]) for r in csv.DictReader(open(tmp_path / "run" / "log.csv"))]
    assert steps == sorted(set(steps)) and steps[-1] == 40
    assert not list((tmp_path / "run").glob(".*.tmp"))


def test_crash_loses_only_steps_since_last_checkpoint(tmp_path: Path) -> None:
    reference = trainer(None).train()
    with pytest.raises(RuntimeError, match="crash"):

        def crash(t: Trainer, step: int, loss: torch.Tensor) -> None:
            if step == 17:
                raise RuntimeError("crash")

        trainer(tmp_path, [crash]).train()
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 14  # last multiple of 7
    resumed = trainer(tmp_path)
    assert resumed.step == 14
    assert_same_state(reference, resumed.train())


def test_sigint_is_deferred_to_the_end_of_the_step(tmp_path: Path) -> None:
    def ctrl_c(t: Trainer, step: int, loss: torch.Tensor) -> None:
        if step == 9:
            os.kill(os.getpid(), signal.SIGINT)

    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        trainer(tmp_path, [ctrl_c]).train()
    assert signal.getsignal(signal.SIGINT) is before
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 9
    assert_same_state(trainer(None).train(), trainer(tmp_path).train())


def test_stop_training_and_extending_a_finished_run(tmp_path: Path) -> None:
    t = trainer(tmp_path, [stop_with(StopTraining, 20)]).train()
    assert t.step == 20
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 20
    done = trainer(tmp_path).train()
    assert done.step == 40
    longer = Trainer(
        make_model(),
        loss_fn,
        make_batch,
        config(steps=50),
        run_dir=tmp_path,
        meta={"task": "rotate"},
    )
    assert longer.step == 40
    assert longer.train().step == 50


def test_resume_refuses_a_different_run(tmp_path: Path) -> None:
    trainer(tmp_path, steps=7).train()
    with pytest.raises(ValueError, match="other training settings"):
        trainer(tmp_path, lr=0.5)
    with pytest.raises(ValueError, match="different run") as err:
        Trainer(make_model(), loss_fn, make_batch, config(), run_dir=tmp_path, meta={"task": "x"})
    assert "earlier sbflow release" not in str(err.value)
    # A checkpoint without a description entry the current run has: an older release's.
    newer = {"task": "rotate", "paired": False}
    with pytest.raises(ValueError, match="lacks paired: an earlier sbflow release"):
        Trainer(make_model(), loss_fn, make_batch, config(), run_dir=tmp_path, meta=newer)
    fresh = Trainer(
        make_model(),
        loss_fn,
        make_batch,
        config(lr=0.5),
        run_dir=tmp_path,
        resume=False,
        meta={"task": "x"},
    )
    assert fresh.step == 0


def test_training_reduces_the_loss_and_nan_is_reported() -> None:
    t = trainer(None, steps=200).train()
    assert t.history[-1][1] < 0.5 * t.history[0][1]

    def nan_loss(model: torch.nn.Module, batch: object) -> torch.Tensor:
        return model(torch.full((1, 2), float("nan"))).sum()

    with pytest.raises(FloatingPointError, match="loss became nan"):
        Trainer(make_model(), nan_loss, make_batch, config()).train()


def test_bad_config_values() -> None:
    for bad in ({"steps": -1}, {"lr": 0.0}, {"ema_decay": 1.0}, {"grad_clip": 0.0}):
        with pytest.raises(ValueError):
            config(**bad).validate()


def test_ema_average() -> None:
    net = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        net.weight.fill_(0.0)
    ema = EMA(net, decay=0.5)
    with torch.no_grad():
        net.weight.fill_(1.0)
    ema.update(net)  # warm-up decay min(0.5, 1/10) = 0.1
    assert ema.model.weight.item() == pytest.approx(0.9)
    ema.update(net)  # decay min(0.5, 2/11)
    assert ema.model.weight.item() == pytest.approx(1 - 0.1 * 2 / 11)


def test_prefetcher_order_errors_and_early_close() -> None:
    with Prefetcher(lambda k: k * 2, 3, 9, depth=2) as it:
        assert list(it) == [6, 8, 10, 12, 14, 16]

    def fail(k: int) -> int:
        if k == 2:
            raise ValueError("bad batch")
        return k

    with pytest.raises(ValueError, match="bad batch"), Prefetcher(fail, 0, 5) as it:
        list(it)
    p = Prefetcher(lambda k: k, 0, 10**6, depth=2)
    next(iter(p))
    p.close()
    assert p._threads == []
    with Prefetcher(lambda k: k + 1, 0, 50, depth=1, workers=3) as it:
        assert list(it) == list(range(1, 51))
    assert len({step_seed(0, k) for k in range(1000)}) == 1000
