"""``sbflow benchmark``: fits a method on the entropic-OT benchmark, prints scores and floors."""

from __future__ import annotations

import pytest

from sbflow.cli import main

SMALL = ["--n-train", "2000", "--n-inputs", "20", "--n-samples", "100", "--n-marginal", "500"]


def test_light_sb_benchmark_prints_scores_beside_the_floor(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["benchmark", "--method", "light-sb", "--dims", "2", "--steps", "300", *SMALL]
    assert main([*argv, "--no-progress"]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.split()[:1] == ["D"])
    assert header.split().count("floor") == 2
    row = out.strip().splitlines()[-1].split()
    dim, eps, _seconds, cbw, floor, bw, bw_floor = row
    assert (dim, float(eps)) == ("2", 1.0)
    values = [float(v) for v in (cbw, floor, bw, bw_floor)]
    assert all(v >= 0 for v in values)
    # The exact plan of a light model is scored, not a point mass: near its floor at D = 2.
    assert values[0] < values[1] + 1.0


def test_benchmark_refuses_ode_methods_and_bad_eps(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["benchmark", "--method", "ot-cfm", "--dims", "2"]) == 2
    assert "deterministic map" in capsys.readouterr().err
    assert main(["benchmark", "--eps", "0", "--dims", "2"]) == 2
    assert "--eps must be > 0" in capsys.readouterr().err
