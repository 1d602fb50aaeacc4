"""Every failing command prints one line on stderr, exits 2 and names the flag or file to fix.

Issue 13's reproductions: none of these may print a traceback, exit 0 with a wrong result, or
train for minutes before failing to write.
"""

from __future__ import annotations

import functools
import re
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

import sbflow
from sbflow import cli
from sbflow.cli import EXIT_INTERNAL, EXIT_USAGE, main
from sbflow.data import sample_dataset, save_samples
from sbflow.training import StopTraining
from sbflow.training.checkpoint import read_state

FAST = ["--steps", "6", "--batch-size", "16", "--hidden", "8", "--depth", "1", "--no-progress"]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("cli-errors")
    g = torch.Generator().manual_seed(0)
    paths = {
        "a": save_samples(d / "a.npy", sample_dataset("8gaussians", 30, generator=g)),
        "b": save_samples(d / "b.npy", sample_dataset("moons", 30, generator=g)),
        "bridge": d / "bridge.pt",
    }
    code = main(["fit", str(paths["a"]), str(paths["b"]), "-o", str(paths["bridge"]), *FAST])
    assert code == 0
    return paths


def _one_error_line(capsys: pytest.CaptureFixture[str], command: str) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert lines[0].startswith(f"sbflow {command}: error: "), err
    return lines[0]


def _damaged(files: dict[str, Path], tmp: Path, how: str) -> Path:
    path = tmp / f"{how}.pt"
    raw = bytearray(files["bridge"].read_bytes())
    if how == "flipped":
        with zipfile.ZipFile(files["bridge"]) as archive:
            info = max(
                archive.infolist(), key=lambda i: i.file_size if "/data/" in i.filename else 0
            )
        off = info.header_offset
        start = off + 30 + int.from_bytes(raw[off + 26 : off + 28], "little")
        start += int.from_bytes(raw[off + 28 : off + 30], "little")
        raw[start + info.file_size // 2] ^= 0x10
        path.write_bytes(bytes(raw))
    elif how == "truncated":
        path.write_bytes(bytes(raw[: len(raw) // 3]))
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "random":
        path.write_bytes(torch.randint(0, 256, (4000,), dtype=torch.uint8).numpy().tobytes())
    else:  # an entry removed or NaN weights, in an otherwise well-formed file
        state = read_state(files["bridge"], "bridge file")
        if how == "no-model":
            del state["model"]
        else:
            weights = state["model"]["state"]
            name = next(k for k, v in weights.items() if v.is_floating_point())
            weights[name] = torch.full_like(weights[name], float("nan"))
        torch.save(state, path)
    return path


@pytest.mark.parametrize(
    ("how", "expect"),
    [
        ("flipped", "corrupt bridge file: .*CRC"),
        ("truncated", "not an sbflow bridge file|damaged"),
        ("empty", r"empty \(0 bytes\)"),
        ("random", "not an sbflow bridge file"),
        ("no-model", "not a valid sbflow bridge file|model"),
        ("nan", "NaN/infinite"),
    ],
)
def test_damaged_bridge_files(
    files: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    how: str,
    expect: str,
) -> None:
    bridge = _damaged(files, tmp_path, how)
    out = tmp_path / "y.npy"
    assert main(["transport", str(bridge), str(files["a"]), str(out)]) == EXIT_USAGE
    line = _one_error_line(capsys, "transport")
    assert str(bridge) in line
    assert re.search(expect, line), line
    assert "Bridge.save" not in line  # the command line's way: sbflow fit
    assert not out.exists()


def _fit(files: dict[str, Path], *extra: str) -> list[str]:
    return ["fit", str(files["a"]), str(files["b"]), *FAST, *extra]


@pytest.mark.parametrize(
    ("make_args", "flag"),
    [
        (lambda f, t: _fit(f, "-o", str(t / "b.pt"), "--lr", "1e30", "--steps", "10"), "--lr"),
        (lambda f, t: _fit(f, "-o", str(t / "b.pt"), "--tensorboard"), "--run-dir"),
        (lambda f, t: _fit(f, "-o", str(t / "b.txt")), ".pt"),
        (lambda f, t: _fit(f, "-o", str(t / "a-file" / "b.pt")), "is not a directory"),
        (lambda f, t: _fit(f, "-o", str(t / "ro.pt")), "read-only"),
        (lambda f, t: _fit(f, "-o", str(t / "b.pt"), "--run-dir", str(t / "a-file")), "--run-dir"),
        (
            lambda f, t: ["couple", str(f["a"]), str(f["b"]), str(t / "p.npy"), "--reg", "1"],
            "--reg",
        ),
        (
            lambda f, t: [
                "couple",
                str(f["a"]),
                str(f["b"]),
                str(t / "p.npy"),
                "--method",
                "sinkhorn",
                "--reg",
                "1e-8",
                "--write",
                "plan",
            ],
            "--reg",
        ),
        (lambda f, t: ["datasets", "--name", "moons", "-o", str(t / "ro.pt")], "read-only"),
        (
            lambda f, t: ["evaluate", str(f["bridge"]), "a", "b", "--json", str(t / "m.txt")],
            ".json",
        ),
    ],
    ids=[
        "lr-diverges",
        "tensorboard-without-run-dir",
        "bad-suffix",
        "parent-is-a-file",
        "read-only-output",
        "run-dir-is-a-file",
        "reg-with-exact",
        "unconverged-plan",
        "read-only-samples",
        "metrics-suffix",
    ],
)
def test_bad_settings_name_the_flag(
    files: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    make_args: Callable[[dict[str, Path], Path], list[str]],
    flag: str,
) -> None:
    (tmp_path / "a-file").write_text("")
    (tmp_path / "ro.pt").write_text("keep")
    (tmp_path / "ro.pt").chmod(0o444)
    before = sorted(p.name for p in tmp_path.iterdir())
    args = make_args(files, tmp_path)
    assert main(args) == EXIT_USAGE
    line = _one_error_line(capsys, args[0])
    assert flag in line
    for api_only in ("resume=False", "max_bytes", "backend=", "grad_clip", "__init__()"):
        assert api_only not in line
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written
    assert (tmp_path / "ro.pt").read_text() == "keep"


@pytest.mark.parametrize("write", ["plan", "pairs"])
def test_unconverged_results_are_written_only_when_allowed(
    files: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    write: str,
) -> None:
    import sbflow.couplings

    real = sbflow.couplings.couple

    def unconverged(*args: Any, **kwargs: Any) -> Any:
        coupling = real(*args, **kwargs)
        coupling.converged = False
        warnings.warn("did not converge", RuntimeWarning, stacklevel=1)
        return coupling

    monkeypatch.setattr(sbflow.couplings, "couple", unconverged)
    out = tmp_path / "p.npy"
    args = ["couple", str(files["a"]), str(files["b"]), str(out), "--method", "sinkhorn"]
    args += ["--reg", "0.5", "--write", write]
    assert main(args) == EXIT_USAGE
    line = _one_error_line(capsys, "couple")  # the warning is not repeated before the error
    assert "did not converge" in line and "--reg (now 0.5)" in line
    assert "--allow-unconverged" in line
    assert not out.exists()
    assert main([*args, "--allow-unconverged"]) == 0
    assert out.exists()
    captured = capsys.readouterr()
    assert "converged False" in captured.out
    assert captured.err == "sbflow: warning: did not converge\n"


def test_fit_checks_the_destination_before_training(
    files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sbflow.bridge

    @functools.wraps(sbflow.bridge.fit)  # keeps the signature the parser reads defaults from
    def no_training(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("fit started although the output cannot be written")

    monkeypatch.setattr(sbflow, "fit", no_training)
    monkeypatch.setattr(sbflow.bridge, "fit", no_training)
    (tmp_path / "a-file").write_text("")
    assert main(_fit(files, "-o", str(tmp_path / "a-file" / "b.pt"))) == EXIT_USAGE


def test_resuming_with_other_settings_names_the_flags(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = str(tmp_path / "run")
    assert main(_fit(files, "-o", str(tmp_path / "b.pt"), "--run-dir", run_dir)) == 0
    capsys.readouterr()
    args = _fit(files, "-o", str(tmp_path / "b.pt"), "--run-dir", run_dir, "--steps", "9")
    assert main(args) == EXIT_USAGE
    line = _one_error_line(capsys, "fit")
    assert "--run-dir" in line and "resume=False" not in line


def test_garbage_log_is_named(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "run"

    def stop(trainer: Any, step: int, loss: Any) -> None:
        if step == 3:
            raise StopTraining

    sbflow.fit(
        str(files["a"]),
        str(files["b"]),
        steps=6,
        batch_size=16,
        hidden=8,
        depth=1,
        progress=False,
        run_dir=run_dir,
        callbacks=[stop],
    )
    (run_dir / "log.csv").write_bytes(b"step,loss\n\xff\xfe garbage \x00\n")
    assert main(_fit(files, "-o", str(tmp_path / "b.pt"), "--run-dir", str(run_dir))) == 2
    line = _one_error_line(capsys, "fit")
    assert str(run_dir / "log.csv") in line and "not a readable training log" in line


def test_unexpected_errors_are_one_line_with_exit_70_and_debug_shows_them(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    def bug(args: Any) -> int:
        raise KeyError("oops")

    monkeypatch.setattr(cli, "_cmd_datasets", bug)
    assert main(["datasets"]) == EXIT_INTERNAL
    err = capsys.readouterr().err
    assert err.strip() == (
        "sbflow datasets: internal error, please report: KeyError: 'oops' "
        "(rerun with --debug for the traceback)."
    )
    for argv in (["--debug", "datasets"], ["datasets", "--debug"]):
        with pytest.raises(KeyError, match="oops"):
            main(argv)


@pytest.mark.parametrize(
    ("command", "message", "wanted", "unwanted"),
    [
        (
            "couple",
            "the dense (9, 9) plan needs 9 MiB, more than the limit of 1 MiB (max_bytes). Use "
            "pairs() or barycentric_projection(), which never build it (or sparse() for a plan "
            "from exact or partial OT), or allow more memory through max_bytes.",
            "--write pairs",
            "max_bytes",
        ),
        (
            "couple",
            "sinkhorn did not converge (max_iter=100, reg=0.001). To fix: raise max_iter, "
            "increase reg (or rel_reg).",
            "increase --reg",
            "rel_reg",
        ),
        (
            "fit",
            "x.pt was written with other training settings; use another run directory, or "
            "resume=False to start over.",
            "another --run-dir",
            "resume=False",
        ),
        ("fit", "batch_size must be a positive integer; got 0.", "--batch-size must", "batch_size"),
        (
            "fit",
            "training loss became nan; lower lr, enable grad_clip or normalise the data.",
            "lower --lr",
            "grad_clip",
        ),
        (
            "transport",
            "x.npz holds several arrays (a, b); choose one with key=...",
            "--key",
            "key=",
        ),
    ],
)
def test_api_advice_is_rewritten_into_flags(
    command: str, message: str, wanted: str, unwanted: str
) -> None:
    parser = cli._subparser(cli.build_parser(), command)
    text = cli._flag_advice(message, parser)
    assert wanted in text and unwanted not in text, text


@pytest.mark.parametrize("command", ["fit", "demo"])
def test_an_unwritable_destination_stops_before_any_work(
    files: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    command: str,
) -> None:
    import os

    real_access = os.access

    def access(path: Any, mode: int, **kwargs: Any) -> bool:  # as for a non-root user
        return False if Path(path) == tmp_path else real_access(path, mode, **kwargs)

    monkeypatch.setattr(os, "access", access)
    out = tmp_path / "unwritable" / ("b.pt" if command == "fit" else "demo")
    args = _fit(files, "-o", str(out)) if command == "fit" else ["demo", "-o", str(out)]
    assert main(args) == EXIT_USAGE
    line = _one_error_line(capsys, command)
    assert f"no permission to create files in {tmp_path}" in line
    assert list(tmp_path.iterdir()) == []


def _scaled(tree: Any, factor: float) -> Any:
    if isinstance(tree, torch.Tensor):
        return tree * factor if tree.is_floating_point() else tree
    if isinstance(tree, dict):
        return {k: _scaled(v, factor) for k, v in tree.items()}
    return tree


@pytest.mark.parametrize(
    ("solver", "expect"),
    [([], "the ODE solver failed"), (["--steps", "10"], "NaN or infinite values")],
    ids=["adaptive", "fixed-steps"],
)
def test_a_bridge_whose_velocity_overflows_writes_nothing(
    files: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    solver: list[str],
    expect: str,
) -> None:
    from sbflow.training.checkpoint import write_state

    state = read_state(files["bridge"], "bridge file")
    state["model"] = _scaled(state["model"], 1e15)  # finite weights, absurd velocities
    bridge = write_state(tmp_path / "huge.pt", state)
    out = tmp_path / "y.npy"
    assert main(["transport", str(bridge), str(files["a"]), str(out), *solver]) == EXIT_USAGE
    assert expect in _one_error_line(capsys, "transport")
    assert not out.exists()
