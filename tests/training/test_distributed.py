"""Multi-process training: 2 CPU processes with gloo on 127.0.0.1, launched like torchrun.

The parent test starts ``python this_file.py TASK OUT`` twice with the torchrun environment
variables (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR=127.0.0.1, MASTER_PORT), so the code
under test goes through the same ``init_process_group("env://")`` path as a real launch.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from sbflow.bridge import fit, load
from sbflow.couplings import ExactOT
from sbflow.data import sample_dataset
from sbflow.matching import Matcher
from sbflow.metrics import wasserstein
from sbflow.training import TrainConfig, Trainer, step_seed
from sbflow.training.distributed import (
    AutocastForward,
    DistContext,
    GlobalCouplingSampler,
    init_distributed,
    loopback_rank_envs,
    make_sampler,
    prepare_model,
    read_resume_state,
    reduce_mean,
)

WORLD = 2
BATCH = 64  # per rank
STEPS = 100
FIT = {
    "method": "ot-cfm",
    "batch_size": BATCH,
    "steps": STEPS,
    "hidden": 48,
    "warmup_steps": 20,
    "lr_schedule": "constant",  # so that test (c) can extend the run by a few steps
    "lr": 3e-3,
    "ema_decay": 0.98,
    "seed": 3,
    "progress": False,
    "prefetch": 2,
    "log_every": 25,
    "checkpoint_every": 50,
}


# -- worker side (runs in the launched processes) ----------------------------------------------


def _local_batch(rank: int, n: int = BATCH) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(step_seed(11, 0, rank))
    return torch.randn(n, 2, generator=g), torch.randn(n, 2, generator=g) * 0.5 + 2.0


def _worker(task: str, out: Path) -> None:
    ctx = init_distributed(True, device="cuda" if task == "nccl" else "cpu")
    assert ctx is not None and ctx.world_size == WORLD
    rank = ctx.rank
    if task == "main":
        # (a) one coupling of the gathered batch; this rank's slice of the pairs.
        x0, x1 = _local_batch(rank)
        sampler = GlobalCouplingSampler(Matcher("exact"), ctx)
        p0, p1 = sampler.pairs(x0, x1, torch.Generator().manual_seed(0))
        # Logging reduction: the mean over ranks of rank + 1.
        mean = reduce_mean(torch.tensor(float(rank + 1)), ctx)
        # (b, c) a DDP fit with global couplings, checkpoints in run_dir.
        bridge = fit("8gaussians", "moons", run_dir=out / "run", coupling_scope="global", **FIT)
        state = {k: v.clone() for k, v in bridge.model.state_dict().items()}
        torch.save(
            {"p0": p0, "p1": p1, "mean": mean, "history": bridge.history, "state": state},
            out / f"rank{rank}.pt",
        )
    elif task == "local":
        bridge = fit("8gaussians", "moons", coupling_scope="local", **{**FIT, "steps": 400})
        torch.save({"state": bridge.model.state_dict()}, out / f"rank{rank}.pt")
    elif task == "nccl":
        assert ctx.backend == "nccl" and ctx.device == torch.device("cuda", rank)
        bridge = fit(
            "8gaussians", "moons", device="cuda", coupling_scope="global", precision="bf16", **FIT
        )
        assert bridge.device == ctx.device
        torch.save({"state": bridge.model.state_dict()}, out / f"rank{rank}.pt")
    else:  # pragma: no cover
        raise SystemExit(f"unknown task {task}")


# -- parent side --------------------------------------------------------------------------------


def _launch(task: str, out: Path, timeout: float = 240.0, gpus: bool = False) -> None:
    """Start WORLD processes of this file with torchrun's variables and wait for all."""
    procs = []
    for env in loopback_rank_envs(WORLD):
        if not gpus:
            env["CUDA_VISIBLE_DEVICES"] = ""
        cmd = [sys.executable, __file__, task, str(out)]
        procs.append(
            subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        )
    logs = []
    try:
        for p in procs:
            stdout, _ = p.communicate(timeout=timeout)
            logs.append(stdout.decode(errors="replace"))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    failed = [(r, p.returncode) for r, p in enumerate(procs) if p.returncode != 0]
    if failed:
        pytest.fail(f"worker(s) failed {failed}:\n" + "\n----\n".join(x[-3000:] for x in logs))


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    out = tmp_path_factory.mktemp("ddp")
    _launch("main", out)
    return out, [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]


def _w2(bridge: Any) -> float:
    g = torch.Generator().manual_seed(123)
    x0 = sample_dataset("8gaussians", 600, generator=g)
    x1 = sample_dataset("moons", 600, generator=g)
    return wasserstein(bridge.transport(x0, steps=20), x1)


def test_global_coupling_equals_single_process_coupling_of_gathered_batch(ddp_run) -> None:
    _, results = ddp_run
    x0 = torch.cat([_local_batch(r)[0] for r in range(WORLD)])
    x1 = torch.cat([_local_batch(r)[1] for r in range(WORLD)])
    coupling = ExactOT()(x0, x1)
    assert coupling.is_permutation
    perm = coupling.permutation
    # Rank r holds the sources of its own batch, each with its optimal target from any rank.
    got0 = torch.cat([res["p0"] for res in results])
    got1 = torch.cat([res["p1"] for res in results])
    torch.testing.assert_close(got0, x0, rtol=0, atol=0)
    torch.testing.assert_close(got1, x1[perm], rtol=0, atol=0)
    # A permutation: every gathered target used exactly once.
    assert sorted(got1[:, 0].tolist()) == sorted(x1[:, 0].tolist())


def test_loss_is_reduced_and_weights_agree_across_ranks(ddp_run) -> None:
    out, results = ddp_run
    assert all(res["mean"] == pytest.approx(1.5) for res in results)
    # The logged losses are means over ranks: identical on both.
    assert results[0]["history"] == results[1]["history"]
    assert results[0]["history"][-1][0] == STEPS
    for name, value in results[0]["state"].items():
        torch.testing.assert_close(value, results[1]["state"][name], rtol=0, atol=0)
    # Files are written once, by rank 0.
    run = out / "run"
    assert (run / "checkpoint.pt").is_file() and (run / "bridge.pt").is_file()
    rows = (run / "log.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + STEPS // FIT["log_every"]
    saved = load(run / "bridge.pt")
    for name, value in saved.model.state_dict().items():
        torch.testing.assert_close(value, results[0]["state"][name], rtol=0, atol=0)


def test_ddp_fit_matches_single_process_quality(ddp_run) -> None:
    out, _ = ddp_run
    ddp = load(out / "run" / "bridge.pt")
    # Single process with the same global batch (2 × 64).
    single = fit("8gaussians", "moons", **{**FIT, "batch_size": WORLD * BATCH})
    w_ddp, w_single = _w2(ddp), _w2(single)
    g = torch.Generator().manual_seed(123)
    w_start = wasserstein(
        sample_dataset("8gaussians", 600, generator=g), sample_dataset("moons", 600, generator=g)
    )
    assert w_single < 0.5 * w_start
    assert abs(w_ddp - w_single) < 0.1 + 0.3 * w_single, (w_ddp, w_single)


def test_two_process_checkpoint_resumes_in_one_process(ddp_run, tmp_path: Path) -> None:
    out, results = ddp_run
    run = out / "run"
    seen: list[tuple[int | None, int]] = []
    bridge = fit(
        "8gaussians",
        "moons",
        run_dir=run,
        coupling_scope="global",
        callbacks=[lambda trainer, step, loss: seen.append((trainer.resumed_from, step))],
        **{**FIT, "steps": STEPS + 10},
    )
    assert seen[0] == (STEPS, STEPS + 1) and seen[-1] == (STEPS, STEPS + 10)
    # The history of the 2-process run is kept and continued.
    assert bridge.history[: len(results[0]["history"])] == results[0]["history"]
    assert bridge.history[-1][0] == STEPS + 10
    assert bridge.options["world_size"] == 1


@pytest.mark.slow
def test_ddp_local_scope_trains(tmp_path: Path) -> None:
    _launch("local", tmp_path, timeout=500)
    states = [torch.load(tmp_path / f"rank{r}.pt")["state"] for r in range(WORLD)]
    for name, value in states[0].items():
        torch.testing.assert_close(value, states[1][name], rtol=0, atol=0)


# -- single-process pieces ----------------------------------------------------------------------


def test_init_distributed_modes(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    assert init_distributed("auto") is None
    assert init_distributed(False) is None
    with pytest.raises(ValueError, match="torchrun"):
        init_distributed(True)
    with pytest.raises(ValueError, match="distributed must be"):
        init_distributed("yes")


def test_scope_and_precision_are_checked() -> None:
    with pytest.raises(ValueError, match="coupling_scope"):
        make_sampler(Matcher(), None, "everywhere")
    with pytest.raises(ValueError, match="coupling_scope"):
        fit("8gaussians", "moons", steps=1, coupling_scope="all")
    with pytest.raises(ValueError, match="precision"):
        TrainConfig(precision="fp8").validate()


def test_world_of_one_global_sampler_is_the_plain_coupling() -> None:
    ctx = DistContext(
        rank=0, world_size=1, local_rank=0, backend="gloo", device=torch.device("cpu")
    )
    x0, x1 = _local_batch(0, 32)
    p0, p1 = GlobalCouplingSampler(Matcher("exact"), ctx).pairs(x0, x1)
    perm = ExactOT()(x0, x1).permutation
    torch.testing.assert_close(p0, x0)
    torch.testing.assert_close(p1, x1[perm])
    assert reduce_mean(torch.tensor(3.0), ctx) == 3.0
    sampler = GlobalCouplingSampler(Matcher("exact"), ctx)
    sampler._busy.acquire()  # another thread is inside: a second caller must not proceed
    with pytest.raises(RuntimeError, match="prefetch_workers=1"):
        sampler.pairs(x0, x1)
    assert read_resume_state(Path("does-not-exist/checkpoint.pt"), ctx) is None


def test_bf16_forward_keeps_float32_loss_and_trains_on_cpu() -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(2, 32), torch.nn.SiLU(), torch.nn.Linear(32, 2))
    wrapped = prepare_model(net, None, "bf16")
    assert isinstance(wrapped, AutocastForward)
    x = torch.randn(8, 2)
    assert wrapped(x).dtype == torch.float32
    assert net[0].weight.dtype == torch.float32

    def batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(step_seed(0, step))
        x = torch.randn(64, 2, generator=g)
        return x, x.flip(1)

    losses: list[float] = []

    def loss_fn(model: torch.nn.Module, b: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        loss = (model(b[0]) - b[1]).pow(2).mean()
        assert loss.dtype == torch.float32
        losses.append(float(loss.detach()))
        return loss

    cfg = TrainConfig(steps=60, lr=2e-2, warmup_steps=0, progress=False, prefetch=0)
    cfg.precision = "bf16"
    trainer = Trainer(net, loss_fn, batch, cfg)
    assert isinstance(trainer.forward_model, AutocastForward)
    trainer.train()
    assert sum(losses[-10:]) < 0.3 * sum(losses[:10])
    assert net[0].weight.dtype == torch.float32


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_bf16_fit_on_gpu() -> None:
    bridge = fit("8gaussians", "moons", device="cuda", precision="bf16", **{**FIT, "steps": 300})
    assert bridge.device.type == "cuda"
    assert next(bridge.model.parameters()).dtype == torch.float32
    g = torch.Generator().manual_seed(123)
    w_start = wasserstein(
        sample_dataset("8gaussians", 600, generator=g), sample_dataset("moons", 600, generator=g)
    )
    assert _w2(bridge) < 0.5 * w_start


@pytest.mark.gpu
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices")
def test_ddp_nccl_two_gpus(tmp_path: Path) -> None:
    _launch("nccl", tmp_path, gpus=True)
    states = [torch.load(tmp_path / f"rank{r}.pt")["state"] for r in range(WORLD)]
    for name, value in states[0].items():
        torch.testing.assert_close(value, states[1][name], rtol=0, atol=0)


if __name__ == "__main__":
    _worker(sys.argv[1], Path(sys.argv[2]))
