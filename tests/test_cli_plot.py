"""``sbflow plot``: a PNG from a saved bridge, for 2-D and for 64-D data (PCA or named features)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from sbflow.cli import main
from sbflow.data import save_samples

FAST = ["--steps", "20", "--batch-size", "32", "--hidden", "8", "--depth", "1", "--no-progress"]
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def bridges(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("cli_plot")
    g = torch.Generator().manual_seed(0)
    paths = {
        "a64": save_samples(d / "a64.npy", 3 * torch.rand(60, 64, generator=g)),
        "b64": save_samples(d / "b64.npy", 3 * torch.rand(50, 64, generator=g) + 1),
        "bridge2": d / "b2.pt",
        "bridge64": d / "b64.pt",
    }
    assert main(["fit", "8gaussians", "moons", "--out", str(paths["bridge2"]), *FAST]) == 0
    assert (
        main(["fit", str(paths["a64"]), str(paths["b64"]), "-o", str(paths["bridge64"]), *FAST])
        == 0
    )
    return paths


def test_plot_2d_writes_a_png(bridges, tmp_path: Path, capsys) -> None:
    out = tmp_path / "fig.png"
    args = ["plot", str(bridges["bridge2"]), "--source", "8gaussians", "--target", "moons"]
    assert main([*args, "-o", str(out), "-n", "150", "--paths", "20"]) == 0
    assert out.read_bytes()[:8] == PNG
    assert str(out) in capsys.readouterr().out


@pytest.mark.parametrize("extra", [[], ["--features", "3", "40"], ["--image-shape", "8", "8"]])
def test_plot_64d_files(bridges, tmp_path: Path, extra) -> None:
    out = tmp_path / "fig.png"
    args = ["plot", str(bridges["bridge64"]), "-s", str(bridges["a64"]), "-t", str(bridges["b64"])]
    assert main([*args, "-o", str(out), *extra]) == 0  # -n 1000 > rows in the files: all rows
    assert out.read_bytes()[:8] == PNG


def test_plot_reports_bad_input(bridges, tmp_path: Path, capsys) -> None:
    out = tmp_path / "fig.png"
    base = ["plot", str(bridges["bridge64"]), "-s", str(bridges["a64"])]
    assert main([*base, "-o", str(tmp_path / "fig.txt")]) == 2
    assert "suffix" in capsys.readouterr().err
    assert main([*base, "-o", str(out), "--features", "0", "64"]) == 2
    assert "features" in capsys.readouterr().err
    wrong = save_samples(tmp_path / "w.npy", np.zeros((5, 3), dtype=np.float32))
    assert main(["plot", str(bridges["bridge64"]), "-s", str(wrong), "-o", str(out)]) == 2
    assert "shape" in capsys.readouterr().err
    assert not out.exists()  # nothing half-written


def test_plot_help_lists_the_projection(capsys) -> None:
    assert main(["plot", "--help"]) == 0
    assert "principal components" in capsys.readouterr().out
