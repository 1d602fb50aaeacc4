"""The sbflow command line, in-process via main([...]) plus one subprocess smoke test."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from sbflow.cli import build_parser, main
from sbflow.data import load_samples, sample_dataset, save_samples

FAST = ["--steps", "20", "--batch-size", "32", "--hidden", "8", "--depth", "1", "--no-progress"]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("cli")
    g = torch.Generator().manual_seed(0)
    paths = {
        "a": save_samples(d / "a.npy", sample_dataset("8gaussians", 120, generator=g)),
        "b": save_samples(d / "b.csv", sample_dataset("moons", 100, generator=g)),
    }
    paths["bridge"] = d / "bridge.pt"
    assert (
        main(["fit", str(paths["a"]), str(paths["b"]), "--out", str(paths["bridge"]), *FAST]) == 0
    )
    return paths


def only_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_help_for_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    subparsers = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    commands = sorted(subparsers[0].choices)
    assert {"fit", "transport", "couple", "evaluate", "plot", "benchmark", "demo"} <= set(commands)
    for command in commands:
        assert main([command, "--help"]) == 0
        assert "usage: sbflow " + command in capsys.readouterr().out


def test_datasets_list_and_write(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ("normal", "8gaussians", "moons", "scurve", "checkerboard"))
    target = tmp_path / "m.npz"
    assert (
        main(["datasets", "--name", "moons", "-n", "50", "--seed", "3", "--out", str(target)]) == 0
    )
    expected = sample_dataset("moons", 50, generator=torch.Generator().manual_seed(3))
    assert torch.equal(load_samples(target), expected)


def test_fit_transport_evaluate_round_trip(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import sbflow.bridge as sb

    out = tmp_path / "y.npy"
    assert main(["transport", str(files["bridge"]), str(files["a"]), str(out)]) == 0
    expected = sb.load(files["bridge"]).transport(load_samples(files["a"]))
    assert torch.equal(load_samples(out), expected)
    back = tmp_path / "x.csv"
    assert main(["transport", str(files["bridge"]), str(out), str(back), "--reverse"]) == 0
    assert load_samples(back).shape == (120, 2)
    metrics = tmp_path / "m.json"
    code = main(
        [
            "evaluate",
            str(files["bridge"]),
            str(files["a"]),
            str(files["b"]),
            "-n",
            "100",
            "--json",
            str(metrics),
        ]
    )
    assert code == 0
    values = json.loads(metrics.read_text())
    assert {"w2", "nfe", "normalized_path_energy"} <= set(values)
    assert "w2" in capsys.readouterr().out


def test_couple_pairs_and_plan(files: dict[str, Path], tmp_path: Path) -> None:
    a = load_samples(files["a"])[:100]
    save_samples(tmp_path / "a100.npy", a)
    out = tmp_path / "pairs.npy"
    assert main(["couple", str(tmp_path / "a100.npy"), str(files["b"]), str(out)]) == 0
    pairs = np.load(out)
    assert pairs.shape == (100, 2)
    assert sorted(pairs[:, 0]) == list(range(100)) and sorted(pairs[:, 1]) == list(range(100))
    plan = tmp_path / "plan.npz"
    assert (
        main(
            [
                "couple",
                str(files["a"]),
                str(files["b"]),
                str(plan),
                "--write",
                "plan",
                "--method",
                "sinkhorn",
                "--reg",
                "1.0",
            ]
        )
        == 0
    )
    p = np.load(plan)["plan"]
    assert p.shape == (120, 100) and abs(p.sum() - 1) < 1e-3
    csv = tmp_path / "pairs.csv"
    assert (
        main(["couple", str(files["a"]), str(files["b"]), str(csv), "--method", "independent"]) == 0
    )
    assert csv.read_text().startswith("x0,x1")


def test_fit_multi_snapshot_and_run_dir(tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(0)
    paths = []
    for k in range(3):
        paths.append(str(save_samples(tmp_path / f"d{k}.npy", torch.randn(80, 2, generator=g) + k)))
    out = tmp_path / "traj.pt"
    run = tmp_path / "run"
    assert (
        main(
            [
                "fit",
                *paths,
                "--times",
                "0",
                "2",
                "5",
                "--out",
                str(out),
                "--run-dir",
                str(run),
                *FAST,
            ]
        )
        == 0
    )
    assert out.is_file() and (run / "checkpoint.pt").is_file()
    y = tmp_path / "y.npy"
    assert main(["transport", str(out), paths[1], str(y), "--t-start", "2", "--t-end", "5"]) == 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["fit", "{missing}", "moons"], "file not found"),
        (["fit", "moons", "mooons"], "neither an existing file nor a built-in"),
        (["fit", "{nan}", "moons"], "NaN"),
        (["fit", "{three}", "moons"], "2-D samples"),
        (["fit", "moons", "scurve", "--out", "{dir}/b.txt"], "unsupported suffix"),
        (["fit", "moons", "scurve", "--method", "nope"], "invalid choice"),
        (["fit", "moons", "scurve", "--steps", "0"], "positive integer"),
        (["transport", "{missing}", "moons", "{dir}/y.npy"], "bridge file not found"),
        (["transport", "{bridge}", "moons", "{dir}/y.bin"], "unsupported suffix"),
        (["transport", "{bridge}", "{three}", "{dir}/y.npy"], "shape"),
        (["couple", "{three}", "moons", "{dir}/p.npy"], "same dimension"),
        (["couple", "moons", "scurve", "{dir}/p.npy", "--method", "magic"], "invalid choice"),
        (["evaluate", "{bridge}", "moons", "{missing}"], "file not found"),
        (["datasets", "--name", "mooons"], "unknown dataset"),
        (["datasets", "--out", "{dir}/x.npy"], "--out needs --name"),
        (["demo", "--out", "{nan}"], "not a directory"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_inputs_exit_2_without_traceback_or_files(
    argv: list[str],
    message: str,
    files: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    np.save(tmp_path / "nan.npy", np.array([[0.0, np.nan], [1.0, 2.0]]))
    np.save(tmp_path / "three.npy", np.zeros((5, 3)))
    subs = {
        "{missing}": str(tmp_path / "missing.npy"),
        "{nan}": str(tmp_path / "nan.npy"),
        "{three}": str(tmp_path / "three.npy"),
        "{dir}": str(out_dir),
        "{bridge}": str(files["bridge"]),
    }
    args = []
    for a in argv:
        for k, v in subs.items():
            a = a.replace(k, v)
        args.append(a)
    if args[0] == "fit":
        args += [*FAST, "--out", str(out_dir / "b.pt")] if "--out" not in args else FAST
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
    assert only_files(out_dir) == []


def test_demo_writes_plot_and_prints_metrics(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "demo"
    assert (
        main(["demo", "--steps", "20", "--n-test", "150", "--out", str(out), "--no-progress"]) == 0
    )
    text = capsys.readouterr().out
    assert "ot-cfm" in text and "sb-cfm" in text and "NFE" in text
    png = out / "trajectories.png"
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert (out / "ot-cfm.pt").is_file() and (out / "sb-cfm.pt").is_file()


def test_entry_point_help_in_a_subprocess() -> None:
    script = Path(sys.executable).with_name("sbflow")
    cmd = (
        [str(script), "--help"]
        if script.exists()
        else [sys.executable, "-m", "sbflow.cli", "--help"]
    )
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert res.returncode == 0
    assert "demo" in res.stdout and "couple" in res.stdout
