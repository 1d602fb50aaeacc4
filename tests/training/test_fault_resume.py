"""Faults during training: SIGKILL at random moments, stale temporary files, a second process.

A checkpointing ``sbflow.fit`` is killed (SIGKILL, no chance to clean up) at random points
and restarted until it finishes: the final weights, optimiser state and log must be exactly
those of a run that was never interrupted, and the run directory must hold no temporary file.
"""

from __future__ import annotations

import contextlib
import csv
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from sbflow.cli import main
from sbflow.training import TrainConfig, Trainer
from sbflow.training.checkpoint import read_state, state_digest
from sbflow.training.lock import RunDirectoryLocked, RunLock

unix_only = pytest.mark.skipif(
    not hasattr(signal, "SIGKILL") or "fork" not in multiprocessing.get_all_start_methods(),
    reason="needs SIGKILL and fork",
)

FIT = dict(
    hidden=16, depth=2, batch_size=32, checkpoint_every=3, log_every=3, warmup_steps=5, seed=0
)
# A fresh interpreter: checks that nothing depends on state a forked child would inherit.
CHILD = textwrap.dedent(
    f"""
    import sys
    import torch
    torch.set_num_threads(1)
    import sbflow
    run_dir, method, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(64, 2, generator=g)
    x1 = torch.randn(64, 2, generator=g) * 0.5 + 3.0
    said = []

    def started(trainer, step, loss):  # the first step of this process is done
        if not said:
            said.append(step)
            print("go", flush=True)

    sbflow.fit(x0, x1, method=method, steps=steps, run_dir=run_dir, progress=False,
               callbacks=[started], **{FIT!r})
    """
)


def _forked_fit(run_dir: str, method: str, steps: int, started: Any) -> None:
    import sbflow

    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(64, 2, generator=g)
    x1 = torch.randn(64, 2, generator=g) * 0.5 + 3.0

    def go(trainer: Any, step: int, loss: Any) -> None:
        if not started.is_set():
            started.set()

    sbflow.fit(x0, x1, method=method, steps=steps, run_dir=run_dir, progress=False,
               callbacks=[go], **FIT)  # fmt: skip


class _Run:
    """A training process: forked from this one (fast) or a fresh interpreter."""

    def __init__(self, run_dir: Path, method: str, steps: int, *, fresh: bool) -> None:
        self.fresh = fresh
        if fresh:
            env = {**os.environ, "OMP_NUM_THREADS": "1"}
            argv = [sys.executable, "-c", CHILD, str(run_dir), method, str(steps)]
            self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=env)
        else:
            # Pay the one-time imports (torch's optimisers load torch._dynamo) once, here,
            # rather than in every child.
            torch.optim.AdamW(torch.nn.Linear(1, 1).parameters())
            ctx = multiprocessing.get_context("fork")
            self.event = ctx.Event()
            self.proc = ctx.Process(
                target=_forked_fit, args=(str(run_dir), method, steps, self.event), daemon=True
            )
            self.proc.start()

    @property
    def pid(self) -> int:
        return int(self.proc.pid)

    def wait_started(self) -> bool:
        """Wait until the first training step is done (False if the process ended first)."""
        if self.fresh:
            assert self.proc.stdout is not None
            return self.proc.stdout.readline().strip() == "go"
        while not self.event.wait(0.05):
            if not self.proc.is_alive():
                return False
        return True

    def alive(self) -> bool:
        return self.proc.poll() is None if self.fresh else self.proc.is_alive()

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        self.finish(check=False)

    def finish(self, check: bool = True) -> None:
        if self.fresh:
            self.proc.communicate(timeout=300)
            code = self.proc.returncode
        else:
            self.proc.join(timeout=300)
            code = self.proc.exitcode
        if check:
            assert code == 0, f"training process exited with {code}"


def _log_rows(run_dir: Path) -> list[tuple[str, str, str]]:
    with open(run_dir / "log.csv", newline="", encoding="utf-8") as fh:
        return [(r["step"], r["loss"], r["lr"]) for r in csv.DictReader(fh)]


def _final(run_dir: Path) -> tuple[str, int]:
    state = read_state(run_dir / "checkpoint.pt", "checkpoint")
    keep = {k: state[k] for k in ("step", "model", "ema", "optimizer", "scheduler", "history")}
    return state_digest(keep), state["step"]


def _kill_and_resume(
    tmp_path: Path, method: str, steps: int, kills: int, seed: int, fresh: bool
) -> None:
    reference = tmp_path / "reference"
    uninterrupted = _Run(reference, method, steps, fresh=fresh)  # alongside the killed ones
    run_dir = tmp_path / "killed"
    rng = random.Random(seed)
    landed = 0
    for _ in range(kills):
        run = _Run(run_dir, method, steps, fresh=fresh)
        if run.wait_started():  # training has started: kill it soon
            time.sleep(rng.uniform(0.0, 0.5))
        landed += run.alive()
        run.kill()
    # what a kill in the middle of a write leaves behind; the next run must remove it
    (run_dir / ".checkpoint.pt.k1ll3d_x.tmp").write_bytes(b"half a checkpoint")
    (run_dir / ".log.csv.k1ll3d_x.tmp").write_text("step,lo")
    (run_dir / ".bridge.pt.k1ll3d_x.tmp").write_bytes(b"half a bridge")
    _Run(run_dir, method, steps, fresh=fresh).finish()
    uninterrupted.finish()
    assert landed > 0, "no kill landed while training; the test proves nothing"
    assert _final(run_dir) == _final(reference)
    assert _final(run_dir)[1] == steps
    assert _log_rows(run_dir) == _log_rows(reference)
    left = sorted(p.name for p in run_dir.iterdir())
    assert not [n for n in left if n.endswith(".tmp")], left
    assert left == sorted(p.name for p in reference.iterdir())


@unix_only
def test_sigkill_at_random_points_resumes_bit_identically(tmp_path: Path) -> None:
    _kill_and_resume(tmp_path, "i-cfm", steps=300, kills=3, seed=0, fresh=False)


@unix_only
@pytest.mark.slow
@pytest.mark.parametrize("method", ["ot-cfm", "sb-cfm"])
def test_sigkill_many_times_resumes_bit_identically(tmp_path: Path, method: str) -> None:
    _kill_and_resume(tmp_path, method, steps=600, kills=12, seed=1, fresh=True)


# -- the run-directory lock -------------------------------------------------------------------


def _trainer(run_dir: Path, seed: int, steps: int = 6) -> Trainer:
    torch.manual_seed(seed)
    net = torch.nn.Linear(2, 1)

    def batch(step: int) -> torch.Tensor:
        return torch.randn(8, 2, generator=torch.Generator().manual_seed(seed * 1000 + step))

    def loss(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        return (model(x) - x.sum(1, keepdim=True)).pow(2).mean()

    config = TrainConfig(steps=steps, progress=False, checkpoint_every=2, log_every=2)
    return Trainer(net, loss, batch, config, run_dir=run_dir, meta={"seed": seed})


def test_a_second_trainer_in_the_same_run_dir_is_refused(tmp_path: Path) -> None:
    with RunLock(tmp_path):
        with pytest.raises(RunDirectoryLocked, match=rf"{tmp_path} is in use by pid {os.getpid()}"):
            _trainer(tmp_path, seed=1).train()
    assert not (tmp_path / "checkpoint.pt").exists()
    assert _trainer(tmp_path, seed=1).train().step == 6  # free once released


def test_lock_is_released_when_training_fails(tmp_path: Path) -> None:
    t = _trainer(tmp_path, seed=1)
    t.loss_fn = lambda model, x: torch.tensor(float("nan"), requires_grad=True)
    with pytest.raises(FloatingPointError):
        t.train()
    RunLock(tmp_path).acquire().release()


def test_a_trainer_catches_up_with_a_checkpoint_written_after_it_was_built(
    tmp_path: Path,
) -> None:
    late = _trainer(tmp_path, seed=1)  # built while the directory was empty
    first = _trainer(tmp_path, seed=1).train()
    late.train()
    assert late.resumed_from == 6
    for a, b in zip(first.model.parameters(), late.model.parameters()):
        assert torch.equal(a, b)


def test_cli_fit_refuses_a_run_dir_in_use(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "run"
    fast = ["--steps", "4", "--hidden", "8", "--depth", "1", "--no-progress"]
    with RunLock(run_dir):
        code = main(
            [
                "fit",
                "8gaussians",
                "moons",
                "-o",
                str(tmp_path / "b.pt"),
                "--run-dir",
                str(run_dir),
                *fast,
            ]
        )
    err = capsys.readouterr().err
    assert code == 2
    assert f"run directory {run_dir} is in use by pid {os.getpid()}" in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "b.pt").exists()


def test_in_use_is_reported_before_a_settings_mismatch(tmp_path: Path) -> None:
    _trainer(tmp_path, seed=1).train()  # a checkpoint of another run is already there
    with RunLock(tmp_path), pytest.raises(RunDirectoryLocked, match="is in use"):
        _trainer(tmp_path, seed=2)
    with pytest.raises(ValueError, match="other"):
        _trainer(tmp_path, seed=2)  # free: now the mismatch is what is wrong


def _cli_fit(run_dir: str, out: str, seed: int) -> None:
    fast = [
        "--steps",
        "100",
        "--batch-size",
        "64",
        "--hidden",
        "16",
        "--depth",
        "1",
        "--no-progress",
    ]
    args = ["fit", "8gaussians", "moons", "-o", out, "--run-dir", run_dir, "--seed", str(seed)]
    os._exit(main([*args, *fast]))


@unix_only
def test_two_fits_in_one_run_dir_one_wins_and_the_directory_stays_consistent(
    tmp_path: Path,
) -> None:
    # Issue 13 #9: both used to exit 0, leaving one run's checkpoint and the other's log.
    torch.optim.AdamW(torch.nn.Linear(1, 1).parameters())  # one-time imports, before forking
    ctx = multiprocessing.get_context("fork")
    run_dir = tmp_path / "run"
    outs = [tmp_path / "seed1.pt", tmp_path / "seed2.pt"]
    procs = [
        ctx.Process(target=_cli_fit, args=(str(run_dir), str(out), seed))
        for seed, out in zip((1, 2), outs)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
    codes = [p.exitcode for p in procs]
    assert sorted(codes) == [0, 2], codes
    winner = codes.index(0)
    assert outs[winner].exists() and not outs[1 - winner].exists()
    saved = read_state(outs[winner], "bridge file")
    in_run_dir = read_state(run_dir / "bridge.pt", "bridge file")
    assert state_digest(saved) == state_digest(in_run_dir)
    checkpoint = read_state(run_dir / "checkpoint.pt", "checkpoint")
    assert checkpoint["step"] == 100
    assert _log_rows(run_dir)[-1][0] == "100"
    assert len({row[0] for row in _log_rows(run_dir)}) == len(_log_rows(run_dir))
