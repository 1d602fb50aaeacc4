"""File loaders and writers: round trips per format, clear errors, atomic writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from sbflow.data import atomic_path, load_samples, save_samples


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
