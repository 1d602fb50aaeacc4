"""plot_bridge on 1-D, 2-D, 64-D (digits) and image data, through the bridge's public API only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from sbflow.plotting import pca_projection, plot_bridge


class FakeBridge:
    """Only what plot_bridge may use: trajectory, feature_shape, method, times."""

    def __init__(self, feature_shape, shift=1.0, times=(0.0, 1.0)):
        self.feature_shape = tuple(feature_shape)
        self.method = "fake"
        self.times = list(times)
        self.shift = shift
        self.calls = []

    def trajectory(self, x, times=None, *, sde=None, generator=None):
        self.calls.append((tuple(x.shape), times, sde))
        s = torch.linspace(0.0, 1.0, 101, dtype=x.dtype).reshape(-1, *[1] * x.dim())
        return x.unsqueeze(0) * (1 - 0.5 * s) + self.shift * s


def _offsets(ax, label):
    for coll in ax.collections:
        if coll.get_label() == label:
            return np.asarray(coll.get_offsets())
    raise AssertionError(f"no {label!r} points on {ax.get_title()!r}")


def test_2d_two_panels_show_target_and_transported(tmp_path: Path):
    g = torch.Generator().manual_seed(0)
    x0, x1 = torch.randn(60, 2, generator=g), torch.randn(40, 2, generator=g) + 3
    fig = plot_bridge(FakeBridge((2,), shift=3.0), x0, x1, path=tmp_path / "f.png", n_paths=10)
    assert (tmp_path / "f.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    left, right = fig.axes
    assert [left.get_xlabel(), left.get_ylabel()] == ["feature 0", "feature 1"]
    np.testing.assert_allclose(_offsets(left, "source"), x0.numpy(), rtol=1e-6)
    np.testing.assert_allclose(_offsets(right, "target"), x1.numpy(), rtol=1e-6)
    np.testing.assert_allclose(_offsets(right, "transported"), 0.5 * x0.numpy() + 3, rtol=1e-6)
    assert len(left.lines) == 10


def test_single_axes_draws_target_as_outlines():
    import matplotlib.figure

    ax = matplotlib.figure.Figure().subplots()
    x0 = torch.randn(30, 2, generator=torch.Generator().manual_seed(1))
    fig = plot_bridge(FakeBridge((2,)), x0, x0 + 1, ax=ax)
    assert fig is ax.figure and len(fig.axes) == 1
    target = next(c for c in ax.collections if c.get_label() == "target")
    assert target.get_facecolor().size == 0  # hollow markers: what lies below stays visible


def test_64d_digits_use_pca_fitted_on_the_data():
    datasets = pytest.importorskip("sklearn.datasets")
    decomposition = pytest.importorskip("sklearn.decomposition")
    digits = datasets.load_digits()
    x0 = digits.data[digits.target == 0].astype(np.float32)
    x1 = digits.data[digits.target == 1].astype(np.float32)
    fig = plot_bridge(FakeBridge((64,), shift=4.0), x0, x1, n_paths=20)
    left, right = fig.axes
    assert left.get_xlabel().startswith("PC1 (") and left.get_ylabel().startswith("PC2 (")
    assert "PCA projection of 64-D samples" in fig.get_suptitle()
    for points in (_offsets(left, "source"), _offsets(right, "target")):
        assert points.std(axis=0).min() > 1.0  # digits' features 0 and 1 are always 0
    pca = decomposition.PCA(2).fit(np.concatenate([x0, x1]).astype(np.float64))
    ours = pca_projection(np.concatenate([x0, x1]))
    np.testing.assert_allclose(np.abs(ours(x0)), np.abs(pca.transform(x0)), atol=1e-6)
    share = round(100 * pca.explained_variance_ratio_[0])
    assert left.get_xlabel() == f"PC1 ({share} % var.)"


def test_named_features_are_plotted_as_is():
    x0 = torch.randn(25, 5, generator=torch.Generator().manual_seed(2))
    fig = plot_bridge(FakeBridge((5,)), x0, features=(3, 1), n_paths=0)
    (ax,) = fig.axes
    assert [ax.get_xlabel(), ax.get_ylabel()] == ["feature 3", "feature 1"]
    np.testing.assert_allclose(_offsets(ax, "source"), x0[:, [3, 1]].numpy(), rtol=1e-6)
    assert "features 3 and 1" in fig.get_suptitle()


def test_one_dimensional_data_against_time():
    x0 = torch.randn(50, 1, generator=torch.Generator().manual_seed(3))
    bridge = FakeBridge((1,), times=(2.0, 6.0))
    fig = plot_bridge(bridge, x0, x0 + 1)
    left, right = fig.axes
    assert left.get_xlabel() == "time" and right.get_xlabel() == "density"
    src = _offsets(left, "source")
    assert np.all(src[:, 0] == 2.0)  # drawn at the first snapshot's time, in the fit's units


@pytest.mark.parametrize(
    ("shape", "image_shape", "cells"),
    [((8, 8), None, 6 * 6 + 6), ((3, 16, 16), None, 6 * 6 + 6), ((64,), (8, 8), 6 * 6 + 6)],
)
def test_images_are_drawn_as_grids(shape, image_shape, cells, tmp_path: Path):
    g = torch.Generator().manual_seed(4)
    x0, x1 = torch.rand(10, *shape, generator=g), torch.rand(10, *shape, generator=g)
    bridge = FakeBridge(shape, shift=0.5)
    fig = plot_bridge(bridge, x0, x1, image_shape=image_shape, path=tmp_path / "g.png")
    assert len(fig.axes) == cells
    assert [c[0] for c in bridge.calls] == [(6, *shape)]  # only the rows shown are simulated
    assert fig.axes[0].get_title() == "t = 0" and "target" in fig.axes[6].get_title()
    first = fig.axes[0].get_images()[0].get_array()
    assert first.shape[:2] == (image_shape or shape[-2:])[-2:]


def test_bad_requests_raise_clear_errors():
    bridge = FakeBridge((4,))
    x0 = torch.zeros(5, 4)
    with pytest.raises(ValueError, match="features"):
        plot_bridge(bridge, x0, features=(0, 4))
    with pytest.raises(ValueError, match="features"):
        plot_bridge(bridge, x0, features=(1, 1))
    with pytest.raises(ValueError, match="image_shape"):
        plot_bridge(bridge, x0, image_shape=(3, 3))
    with pytest.raises(ValueError, match="projection='images'"):
        plot_bridge(bridge, x0, projection="images")
    with pytest.raises(ValueError, match="projection must be"):
        plot_bridge(bridge, x0, projection="tsne")
    with pytest.raises(ValueError, match="shape"):
        plot_bridge(bridge, torch.zeros(5, 3))
    with pytest.raises(TypeError, match="Bridge"):
        plot_bridge(object(), x0)
    import matplotlib.figure

    ax = matplotlib.figure.Figure().subplots()
    with pytest.raises(ValueError, match="own figure"):
        plot_bridge(FakeBridge((8, 8)), torch.zeros(3, 8, 8), ax=ax)


def test_pca_with_fewer_samples_than_features_matches_the_covariance():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 200)) * np.linspace(3.0, 0.1, 200)
    proj = pca_projection(x)
    values, vectors = np.linalg.eigh(np.cov(x.T))
    top = vectors[:, ::-1][:, :2].T
    np.testing.assert_allclose(np.abs(proj.components @ top.T), np.eye(2), atol=1e-8)
    assert proj.labels[0] == f"PC1 ({100 * values[-1] / values.sum():.0f} % var.)"
