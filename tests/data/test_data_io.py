"""File loaders and writers: round trips per format, clear errors, atomic writes."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from sbflow.data import atomic_path, load_samples, save_samples
from sbflow.data.io import check_writable, remove_temp_files


@pytest.fixture
def x() -> torch.Tensor:
    return torch.randn(13, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


@pytest.mark.parametrize("suffix", [".npy", ".npz", ".csv", ".pt"])
def test_round_trip(tmp_path: Path, x: torch.Tensor, suffix: str) -> None:
    path = save_samples(tmp_path / f"s{suffix}", x)
    y = load_samples(path)
    assert y.dtype == torch.float64
    assert torch.equal(y, x)
    assert not list(tmp_path.glob(".*.tmp")), "temporary file left behind"


def test_npz_and_pt_keys(tmp_path: Path, x: torch.Tensor) -> None:
    for suffix in (".npz", ".pt"):
        path = save_samples(tmp_path / f"k{suffix}", x, key="a", extra={"b": 2 * x})
        assert torch.equal(load_samples(path, key="b"), 2 * x)
        with pytest.raises(ValueError, match="several"):
            load_samples(path)
        with pytest.raises(ValueError, match=r"no .* named 'c'"):
            load_samples(path, key="c")


def test_csv_with_header_and_integers(tmp_path: Path) -> None:
    path = tmp_path / "h.csv"
    path.write_text("gene_a,gene_b\n1,2\n3,4\n")
    y = load_samples(path)
    assert y.dtype == torch.float64
    assert y.tolist() == [[1.0, 2.0], [3.0, 4.0]]


def test_integer_npy_becomes_float32(tmp_path: Path) -> None:
    np.save(tmp_path / "i.npy", np.arange(6).reshape(3, 2))
    assert load_samples(tmp_path / "i.npy").dtype == torch.float32


def test_arrays_names_and_subsampling(x: torch.Tensor) -> None:
    assert torch.equal(load_samples(x.numpy()), x)
    sub = load_samples(x, n=5, generator=torch.Generator().manual_seed(1))
    assert sub.shape == (5, 3)
    assert all(any(torch.equal(r, row) for row in x) for r in sub)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    first = load_samples("moons", n=7, generator=g1)
    assert torch.equal(first, load_samples("moons", n=7, generator=g2))
    assert load_samples("normal").shape == (10_000, 2)


def test_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="file not found"):
        load_samples(tmp_path / "missing.npy")
    with pytest.raises(ValueError, match="neither an existing file nor a built-in dataset"):
        load_samples("no-such-thing")
    with pytest.raises(ValueError, match="unsupported file type"):
        (tmp_path / "a.txt").write_text("1,2")
        load_samples(tmp_path / "a.txt")
    bad = tmp_path / "nan.npy"
    np.save(bad, np.array([[0.0, np.nan]]))
    with pytest.raises(ValueError, match="NaN"):
        load_samples(bad)
    flat = tmp_path / "flat.npy"
    np.save(flat, np.zeros(4))
    with pytest.raises(ValueError, match=r"shape \(n, \*dims\)"):
        load_samples(flat)
    corrupt = tmp_path / "c.npz"
    corrupt.write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="could not read"):
        load_samples(corrupt)
    text = tmp_path / "t.csv"
    text.write_text("a,b\nx,y\n")
    with pytest.raises(ValueError, match="numeric CSV"):
        load_samples(text)
    with pytest.raises(ValueError, match="only has"):
        load_samples(torch.zeros(3, 2), n=4)
    with pytest.raises(TypeError):
        load_samples(3.5)


def test_h5ad_needs_anndata_or_reads_obsm(tmp_path: Path, x: torch.Tensor) -> None:
    try:
        import anndata
    except ImportError:
        path = tmp_path / "a.h5ad"
        path.write_bytes(b"")
        with pytest.raises(ImportError, match="pip install anndata"):
            load_samples(path)
        return
    adata = anndata.AnnData(X=x.numpy().astype(np.float32))
    adata.obsm["X_pca"] = 2 * x.numpy()
    path = tmp_path / "a.h5ad"
    adata.write_h5ad(path)
    assert torch.allclose(load_samples(path).double(), x, atol=1e-6)
    assert torch.equal(load_samples(path, key="X_pca"), 2 * x)


def test_atomic_write_leaves_old_file_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "out.npy"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.npy"]
    with pytest.raises(ValueError, match="unsupported file type"):
        save_samples(tmp_path / "x.txt", torch.zeros(2, 2))
    assert not (tmp_path / "x.txt").exists()


# -- atomic writes: modes, read-only targets, error messages, durability, leftovers -----------


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_written_files_honour_the_umask(tmp_path: Path, x: torch.Tensor, umask: int) -> None:
    old = os.umask(umask)
    try:
        path = save_samples(tmp_path / "s.npy", x)
    finally:
        os.umask(old)
    assert _mode(path) == 0o666 & ~umask


def test_replacing_a_file_keeps_its_mode(tmp_path: Path, x: torch.Tensor) -> None:
    path = tmp_path / "s.npy"
    path.write_text("old")
    path.chmod(0o640)
    save_samples(path, x)
    assert _mode(path) == 0o640
    assert torch.equal(load_samples(path), x)


def test_a_read_only_file_is_not_replaced(tmp_path: Path, x: torch.Tensor) -> None:
    path = tmp_path / "s.npy"
    path.write_text("keep me")
    path.chmod(0o444)
    with pytest.raises(PermissionError, match=r"s\.npy exists and is read-only"):
        save_samples(path, x)
    assert path.read_text() == "keep me"
    assert only_names(tmp_path) == ["s.npy"]


def test_errors_name_the_target_not_the_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def denied(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", str(tmp_path / ".out.npy.abcd1234.tmp"))

    monkeypatch.setattr(tempfile, "mkstemp", denied)
    with pytest.raises(PermissionError) as info:
        save_samples(tmp_path / "out.npy", torch.zeros(2, 2))
    assert str(tmp_path / "out.npy") in str(info.value)
    assert ".tmp" not in str(info.value)


def test_parent_that_is_a_file_is_reported(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("")
    with pytest.raises(ValueError, match="is not a directory"):
        check_writable(tmp_path / "f" / "sub" / "x.npy")


def test_writes_are_synced_before_and_after_the_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real_fsync(fd)

    def replace(src: object, dst: object) -> None:
        events.append("rename")
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    with atomic_path(tmp_path / "a.txt") as tmp:
        tmp.write_text("data")
    assert events == ["file", "rename", "dir"]


def test_remove_temp_files_touches_only_its_own_pattern(tmp_path: Path) -> None:
    ours = [tmp_path / ".c.pt.k2_9abcd.tmp", tmp_path / ".c.pt.00000000.tmp"]
    others = [".c.pt.tmp", ".c.pt.short.tmp", ".d.pt.k2_9abcd.tmp", "c.pt", ".c.pt.k2_9abcd.bak"]
    for p in ours:
        p.write_text("half")
    for name in others:
        (tmp_path / name).write_text("keep")
    assert sorted(remove_temp_files(tmp_path / "c.pt")) == sorted(ours)
    assert only_names(tmp_path) == sorted(others)


def test_atomic_path_leaves_no_temporary_file_when_the_body_fails(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt), atomic_path(tmp_path / "deep" / "x.npy") as tmp:
        tmp.write_text("half")
        raise KeyboardInterrupt
    assert only_names(tmp_path / "deep") == []


def only_names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_an_unwritable_directory_is_reported_before_anything_is_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_access = os.access

    def access(path: Any, mode: int, **kwargs: Any) -> bool:  # as for a non-root user
        return False if Path(path) == tmp_path else real_access(path, mode, **kwargs)

    monkeypatch.setattr(os, "access", access)
    target = tmp_path / "sub" / "x.npy"
    with pytest.raises(PermissionError, match=f"no permission to create files in {tmp_path}"):
        save_samples(target, torch.zeros(2, 2))
    assert not (tmp_path / "sub").exists()
