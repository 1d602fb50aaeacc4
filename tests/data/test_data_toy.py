"""Built-in sample sets: shapes, dtypes, seeding and geometry."""

from __future__ import annotations

import pytest
import torch

from sbflow.data import DATASETS, dataset_names, sample_dataset


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("name", list(DATASETS))
def test_shape_dtype_and_finite(name: str) -> None:
    x = sample_dataset(name, 257, generator=gen(), dtype=torch.float64)
    assert x.shape == (257, 2)
    assert x.dtype == torch.float64
    assert torch.isfinite(x).all()
    assert sample_dataset(name, 3).dtype == torch.get_default_dtype()


@pytest.mark.parametrize("name", list(DATASETS))
def test_seeded_reproducible_and_seed_sensitive(name: str) -> None:
    a = sample_dataset(name, 100, generator=gen(1))
    b = sample_dataset(name, 100, generator=gen(1))
    c = sample_dataset(name, 100, generator=gen(2))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_unseeded_calls_do_not_touch_global_rng() -> None:
    torch.manual_seed(0)
    before = torch.get_rng_state()
    sample_dataset("moons", 10)
    assert torch.equal(before, torch.get_rng_state())


def test_normal_any_dim_and_moments() -> None:
    x = sample_dataset("normal", 20000, generator=gen(), dim=5, dtype=torch.float64)
    assert x.shape == (20000, 5)
    assert x.mean(0).abs().max() < 0.05
    assert (x.std(0) - 1).abs().max() < 0.05


def test_eight_gaussians_modes_on_circle_of_radius_5() -> None:
    x = sample_dataset("8gaussians", 8000, generator=gen(), dtype=torch.float64)
    angle = torch.atan2(x[:, 1], x[:, 0])
    mode = torch.round(angle / (torch.pi / 4)).remainder(8)
    counts = torch.bincount(mode.long(), minlength=8)
    assert counts.min() > 800  # about 1000 each
    assert (x.norm(dim=1).mean() - 5.0).abs() < 0.1


def test_checkerboard_only_dark_squares() -> None:
    x = sample_dataset("checkerboard", 5000, generator=gen(), dtype=torch.float64)
    assert x.abs().max() <= 4.0
    cells = torch.floor((x + 4.0) / 2.0).long()
    assert ((cells[:, 0] + cells[:, 1]) % 2 == 0).all()


def test_names_and_errors() -> None:
    assert {"normal", "8gaussians", "moons", "scurve", "checkerboard"} <= set(dataset_names())
    assert sample_dataset("MOONS", 2).shape == (2, 2)
    with pytest.raises(ValueError, match=r"unknown dataset 'mooons'.*moons"):
        sample_dataset("mooons", 5)
    with pytest.raises(ValueError, match="positive integer"):
        sample_dataset("moons", 0)
    with pytest.raises(ValueError, match="only supported by 'normal'"):
        sample_dataset("moons", 5, dim=3)
    with pytest.raises(TypeError):
        sample_dataset("moons", 5, generator=123)  # type: ignore[arg-type]
