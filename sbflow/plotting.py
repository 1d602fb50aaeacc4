"""Figures of a fitted bridge for data of any dimension.

:func:`plot_bridge` draws what a bridge does to source samples, using only the bridge's
public API (``trajectory``, ``feature_shape``, ``method`` and, if present, ``times``):

- **2-D data**: trajectories over the source (left), and the target beside the transported
  samples (right), so that both sets stay visible.
- **Above 2-D**: the same two panels in the plane of the first two principal components of
  the data (PCA fitted on source and target together), or on two features the user names;
  axis labels and the title say which projection is shown.
- **1-D data**: trajectories against time, and the target's and the transported samples'
  histograms side by side.
- **Images** (samples of shape ``(H, W)``, ``(C, H, W)`` or ``(H, W, C)``, or flat samples
  with ``image_shape=...``): a grid with a few source samples per row and their transported
  states at several times per column, beside examples of the target.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sbflow._checks import as_samples

__all__ = ["PROJECTIONS", "Projection", "pca_projection", "plot_bridge"]

PROJECTIONS = ("auto", "pca", "images")

_SOURCE, _TRANSPORTED, _TARGET, _PATHS = "tab:blue", "tab:red", "0.15", "0.55"
_IMAGE_ROWS = 6
_IMAGE_FRAMES = 6
_CHANNELS = (1, 3, 4)


@dataclass(frozen=True)
class Projection:
    """A linear map of flattened samples to the plane, with the axis labels that say so.

    Attributes:
        mean: ``(D,)`` centre subtracted before projecting.
        components: ``(2, D)`` rows onto which samples are projected.
        labels: The two axis labels.
        note: One line describing the projection (empty for plain 2-D data).

    Example:
        >>> proj = Projection(np.zeros(3), np.eye(3)[[2, 0]], ("feature 2", "feature 0"), "")
        >>> proj(np.array([[1.0, 2.0, 3.0]])).tolist()
        [[3.0, 1.0]]
    """

    mean: np.ndarray
    components: np.ndarray
    labels: tuple[str, str]
    note: str

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Project ``(..., D)`` to ``(..., 2)``."""
        return (x - self.mean) @ self.components.T


def pca_projection(data: np.ndarray) -> Projection:
    """The plane of the two leading principal components of ``data`` (``(n, D)``, D ≥ 2).

    Components are the top eigenvectors of the sample covariance, signed so that their
    largest loading is positive (the picture does not flip between runs). Axis labels carry
    the share of the variance each explains.

    Example:
        >>> x = np.array([[0.0, 0, 0], [2, 0, 0], [0, 1, 0], [2, 1, 0]])
        >>> proj = pca_projection(x)
        >>> proj.labels
        ('PC1 (80 % var.)', 'PC2 (20 % var.)')
        >>> proj(x)[:, 0].round(2).tolist()
        [-1.0, 1.0, -1.0, 1.0]
    """
    data = np.asarray(data, dtype=np.float64)
    mean = data.mean(axis=0)
    centred = data - mean
    if len(data) < data.shape[1]:  # few samples in many dimensions: SVD of the data
        _, sing, vt = np.linalg.svd(centred, full_matrices=False)
        values, vectors = sing**2 / max(len(data) - 1, 1), vt.T
    else:
        values, vectors = np.linalg.eigh(centred.T @ centred / max(len(data) - 1, 1))
    order = np.argsort(values)[::-1][:2]
    comps = vectors[:, order].T.copy()
    for row in comps:
        if row[np.argmax(np.abs(row))] < 0:
            row *= -1
    total = float(values.clip(min=0).sum())
    share = [float(values[k]) / total if total > 0 else 0.0 for k in order]
    labels = (f"PC1 ({100 * share[0]:.0f} % var.)", f"PC2 ({100 * share[1]:.0f} % var.)")
    note = (
        f"PCA projection of {data.shape[1]}-D samples (fitted on the data shown; "
        f"PC1 + PC2 explain {100 * (share[0] + share[1]):.0f} % of the variance)"
    )
    return Projection(mean, comps, labels, note)


def _feature_projection(dim: int, features: Any, shape: tuple[int, ...]) -> Projection:
    if (
        not isinstance(features, Sequence)
        or isinstance(features, str)
        or len(features) != 2
        or not all(isinstance(i, int) and not isinstance(i, bool) for i in features)
    ):
        raise ValueError(f"features must be two feature indices (i, j); got {features!r}.")
    i, j = features
    if not (0 <= i < dim and 0 <= j < dim) or i == j:
        raise ValueError(
            f"features={features!r}: need two different indices in [0, {dim}) of the "
            f"flattened {dim}-D samples."
        )
    comps = np.zeros((2, dim))
    comps[0, i] = comps[1, j] = 1.0
    flat = f" (flattened from shape {shape})" if len(shape) > 1 else ""
    note = "" if dim == 2 else f"features {i} and {j} of {dim}-D samples{flat}"
    return Projection(np.zeros(dim), comps, (f"feature {i}", f"feature {j}"), note)


def _flat(x: torch.Tensor) -> np.ndarray:
    return x.detach().to("cpu", torch.float64).numpy()


def _image_layout(shape: tuple[int, ...]) -> str | None:
    """``"hw"``, ``"chw"`` or ``"hwc"`` for image-shaped samples, else ``None``."""
    if len(shape) == 2 and min(shape) >= 4:
        return "hw"
    if len(shape) == 3:
        if shape[0] in _CHANNELS and min(shape[1:]) >= 4:
            return "chw"
        if shape[2] in _CHANNELS and min(shape[:2]) >= 4:
            return "hwc"
    return None


def _bridge_shape(bridge: Any) -> tuple[int, ...]:
    try:
        return tuple(int(d) for d in bridge.feature_shape)
    except (AttributeError, TypeError) as err:
        raise TypeError(
            "bridge must be a fitted sbflow Bridge (it needs trajectory() and feature_shape)."
        ) from err


def plot_bridge(
    bridge: Any,
    x0: Any,
    x1: Any | None = None,
    *,
    path: str | os.PathLike[str] | None = None,
    n_paths: int = 300,
    sde: bool | None = None,
    generator: torch.Generator | None = None,
    title: str | None = None,
    ax: Any = None,
    features: tuple[int, int] | None = None,
    projection: str = "auto",
    image_shape: Sequence[int] | None = None,
) -> Any:
    """Draw the trajectories of ``x0`` through ``bridge`` and compare the result with ``x1``.

    What is drawn depends on the samples' shape (see the module description): two panels,
    trajectories over the source and the target beside the transported samples, for vector
    data, shown as is in 2-D, against time in 1-D and projected above 2-D (PCA fitted on
    source and target, or ``features=(i, j)``); an image grid for image-shaped samples.

    Args:
        bridge: A fitted :class:`~sbflow.Bridge`, or any object with ``trajectory(x, times,
            sde=..., generator=...)``, ``feature_shape`` and ``method``.
        x0: Source-side samples ``(n, *feature_shape)`` to transport.
        x1: Optional target samples, drawn beside the transported ones.
        path: Save the figure there (format by suffix; written atomically).
        n_paths: Trajectories drawn (at most ``len(x0)``); every transported sample is shown.
        sde: Simulate the SDE (default per method).
        generator: Randomness of the SDE and of which trajectories are drawn.
        title: Title (default: the method name).
        ax: Draw into existing matplotlib axes: one ``Axes`` (the target is then drawn as
            outlines over the trajectories) or a pair (trajectories, comparison). Not for
            image grids.
        features: Show these two features of the flattened samples instead of a PCA.
        projection: ``"auto"``; ``"pca"`` to project even 2-D or image data; ``"images"``
            to draw an image grid (needs image-shaped samples or ``image_shape``).
        image_shape: Show flat samples as images of this shape, e.g. ``(8, 8)``.

    Returns:
        The matplotlib ``Figure``.

    Raises:
        ValueError: For samples that do not match the bridge, or an impossible view.

    Example:
        >>> class Shift:  # a stand-in bridge: moves every sample by +3 along a line
        ...     feature_shape, method, times = (2,), "shift", [0.0, 1.0]
        ...     def trajectory(self, x, times=None, **kw):
        ...         return torch.stack([x + 3 * s for s in torch.linspace(0, 1, 11)])
        >>> x0 = torch.randn(50, 2, generator=torch.Generator().manual_seed(0))
        >>> fig = plot_bridge(Shift(), x0, x0 + 3)
        >>> [a.get_xlabel() for a in fig.axes]
        ['feature 0', 'feature 0']
    """
    from matplotlib.figure import Figure

    shape = _bridge_shape(bridge)
    dim = math.prod(shape)
    if projection not in PROJECTIONS:
        raise ValueError(f"projection must be one of {PROJECTIONS}; got {projection!r}.")
    if isinstance(n_paths, bool) or not isinstance(n_paths, int) or n_paths < 0:
        raise ValueError(f"n_paths must be an integer ≥ 0; got {n_paths!r}.")
    x0s = _samples(x0, "x0", shape)
    x1s = None if x1 is None else _samples(x1, "x1", shape)
    label = title if title is not None else str(getattr(bridge, "method", "bridge"))

    layout, view_shape = None, shape
    if image_shape is not None:
        view_shape = tuple(int(d) for d in image_shape)
        if math.prod(view_shape) != dim or _image_layout(view_shape) is None:
            raise ValueError(
                f"image_shape={tuple(image_shape)} does not fit {dim}-D samples as an image; "
                f"give (H, W), (C, H, W) or (H, W, C) with H·W·C = {dim}."
            )
    if features is None and projection != "pca":
        layout = _image_layout(view_shape)
        if projection == "images" and layout is None:
            raise ValueError(
                f"projection='images' needs image-shaped samples; these have shape {shape}. "
                f"Pass image_shape=(H, W) to show flat samples as images."
            )
    if layout is not None:
        if ax is not None:
            raise ValueError("image grids need their own figure; call without ax=.")
        fig = _image_grid(bridge, x0s, x1s, view_shape, layout, sde, generator, label)
        return _save(fig, path)

    traj = bridge.trajectory(x0s, None, sde=sde, generator=generator)
    traj = _flat(torch.as_tensor(traj).reshape(traj.shape[0], traj.shape[1], -1))
    target = None if x1s is None else _flat(x1s.reshape(len(x1s), -1))
    pick = torch.randperm(traj.shape[1], generator=generator)[: min(n_paths, traj.shape[1])]

    if ax is None:
        fig = Figure(figsize=(11, 5.2) if target is not None else (5.8, 5.4), layout="tight")
        axes = list(fig.subplots(1, 2 if target is not None else 1, squeeze=False)[0])
    else:
        axes = list(ax) if isinstance(ax, Sequence) else [ax]
        if len(axes) not in (1, 2):
            raise ValueError(f"ax must be one Axes or a pair; got {len(axes)}.")
        fig = axes[0].figure

    if dim == 1 and features is None and projection != "pca":
        note = ""
        _draw_time(axes, traj[..., 0], target, pick.numpy(), bridge)
    else:
        if dim < 2:
            raise ValueError("projection='pca' and features need at least 2 features.")
        if features is not None:
            proj = _feature_projection(dim, features, shape)
        elif dim == 2 and projection != "pca":
            proj = _feature_projection(2, (0, 1), shape)
        else:
            fit_on = traj[0] if target is None else np.concatenate([traj[0], target])
            proj = pca_projection(fit_on)
        note = proj.note
        _draw_plane(
            axes, proj(traj), None if target is None else proj(target), pick.numpy(), proj.labels
        )
        if proj.labels[0].startswith("PC") or dim == 2:
            for a in axes:
                a.set_aspect("equal", adjustable="box")

    if ax is None:
        fig.suptitle(label if not note else f"{label}\n{note}", fontsize=11)
    else:
        axes[0].set_title(label if not note else f"{label}\n{note}", fontsize=9)
    return _save(fig, path)


def _samples(x: Any, name: str, shape: tuple[int, ...]) -> torch.Tensor:
    xs = as_samples(x, name)
    if tuple(xs.shape[1:]) != shape:
        raise ValueError(
            f"{name} has samples of shape {tuple(xs.shape[1:])}, but the bridge works on "
            f"samples of shape {shape}."
        )
    return xs


def _draw_plane(
    axes: list[Any],
    traj: np.ndarray,
    target: np.ndarray | None,
    pick: np.ndarray,
    labels: tuple[str, str],
) -> None:
    """Trajectories over the source; target beside (second axes) or as outlines (one axes)."""
    left = axes[0]
    lines = traj[:, pick]
    left.plot(lines[..., 0], lines[..., 1], color=_PATHS, alpha=0.3, lw=0.6, zorder=1)
    left.scatter(*traj[0].T, s=4, c=_SOURCE, alpha=0.7, lw=0, label="source", zorder=2)
    left.scatter(*traj[-1].T, s=4, c=_TRANSPORTED, alpha=0.7, lw=0, label="transported", zorder=3)
    if target is not None and len(axes) == 1:
        left.scatter(
            *target.T, s=10, facecolors="none", edgecolors=_TARGET, lw=0.4, alpha=0.5,
            label="target", zorder=4,
        )  # fmt: skip
    left.set_title("trajectories", fontsize=10)
    if len(axes) == 2:
        right = axes[1]
        if target is not None:
            right.scatter(*target.T, s=4, c=_TARGET, alpha=0.45, lw=0, label="target", zorder=2)
        right.scatter(
            *traj[-1].T, s=4, c=_TRANSPORTED, alpha=0.45, lw=0, label="transported", zorder=3
        )
        right.set_title("target vs transported", fontsize=10)
        right.sharex(left)
        right.sharey(left)
    for a in axes:
        a.legend(loc="best", fontsize=8, markerscale=2.5, framealpha=0.85)
        a.grid(alpha=0.2)
        a.set_xlabel(labels[0])
        a.set_ylabel(labels[1])


def _draw_time(
    axes: list[Any], traj: np.ndarray, target: np.ndarray | None, pick: np.ndarray, bridge: Any
) -> None:
    """1-D data: value against time, and histograms of target and transported samples."""
    times = list(getattr(bridge, "times", [0.0, 1.0]))
    t = np.linspace(times[0], times[-1], traj.shape[0])
    left = axes[0]
    left.plot(t, traj[:, pick], color=_PATHS, alpha=0.3, lw=0.6)
    left.scatter(np.full(traj.shape[1], t[0]), traj[0], s=4, c=_SOURCE, label="source")
    left.scatter(np.full(traj.shape[1], t[-1]), traj[-1], s=4, c=_TRANSPORTED, label="transported")
    left.set_xlabel("time")
    left.set_ylabel("feature 0")
    left.set_title("trajectories", fontsize=10)
    left.legend(loc="best", fontsize=8, markerscale=2.5)
    if len(axes) == 2:
        right = axes[1]
        values = [traj[-1]] + ([target[:, 0]] if target is not None else [])
        bins = np.histogram_bin_edges(np.concatenate(values), bins=40)
        if target is not None:
            right.hist(target[:, 0], bins=bins, orientation="horizontal", density=True,
                       histtype="stepfilled", color=_TARGET, alpha=0.3, label="target")  # fmt: skip
        right.hist(traj[-1], bins=bins, orientation="horizontal", density=True,
                   histtype="step", color=_TRANSPORTED, lw=1.5, label="transported")  # fmt: skip
        right.sharey(left)
        right.set_xlabel("density")
        right.set_ylabel("feature 0")
        right.set_title("target vs transported", fontsize=10)
        right.legend(loc="best", fontsize=8)
    elif target is not None:
        left.scatter(np.full(len(target), t[-1]), target[:, 0], s=10, facecolors="none",
                     edgecolors=_TARGET, lw=0.4, alpha=0.5, label="target")  # fmt: skip
        left.legend(loc="best", fontsize=8, markerscale=2.5)


def _to_rgb(images: np.ndarray, layout: str, low: float, high: float) -> np.ndarray:
    """``(..., *image)`` → ``(..., H, W)`` or ``(..., H, W, C)`` in ``[0, 1]``."""
    if layout == "chw":
        images = np.moveaxis(images, -3, -1)
    scaled = (images - low) / (high - low if high > low else 1.0)
    scaled = np.clip(scaled, 0.0, 1.0)
    if scaled.ndim >= 3 and scaled.shape[-1] == 1 and layout != "hw":
        scaled = scaled[..., 0]
    return scaled


def _image_grid(
    bridge: Any,
    x0s: torch.Tensor,
    x1s: torch.Tensor | None,
    view_shape: tuple[int, ...],
    layout: str,
    sde: bool | None,
    generator: torch.Generator | None,
    label: str,
) -> Any:
    from matplotlib.figure import Figure

    rows = min(_IMAGE_ROWS, len(x0s))
    traj = bridge.trajectory(x0s[:rows], None, sde=sde, generator=generator)
    traj = torch.as_tensor(traj)
    frames = np.unique(np.linspace(0, traj.shape[0] - 1, _IMAGE_FRAMES).round().astype(int))
    times = list(getattr(bridge, "times", [0.0, 1.0]))
    t_grid = np.linspace(times[0], times[-1], traj.shape[0])
    seq = _flat(traj[frames].reshape(len(frames), rows, -1)).reshape(len(frames), rows, *view_shape)
    examples = None
    if x1s is not None:
        examples = _flat(x1s[:rows].reshape(min(rows, len(x1s)), -1)).reshape(-1, *view_shape)
    # One grey scale for every panel: the data's range (source and target), so that values
    # the model pushes out of range show as saturated rather than rescaled away.
    ref = [_flat(x0s.reshape(len(x0s), -1))]
    if x1s is not None:
        ref.append(_flat(x1s.reshape(len(x1s), -1)))
    low, high = float(min(r.min() for r in ref)), float(max(r.max() for r in ref))
    seq = _to_rgb(seq, layout, low, high)
    extra = 0 if examples is None else 2  # a spacer column and the target column
    ncols = len(frames) + extra
    fig = Figure(figsize=(1.25 * ncols + 0.4, 1.25 * rows + 0.9), layout="constrained")
    width = [1.0] * len(frames) + ([0.25, 1.0] if extra else [])
    grid = fig.add_gridspec(rows, ncols, width_ratios=width)
    cmap = "gray" if seq.ndim == 4 else None
    for r in range(rows):
        for c, k in enumerate(frames):
            a = fig.add_subplot(grid[r, c])
            a.imshow(seq[c, r], cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
            a.set_xticks([])
            a.set_yticks([])
            if r == 0:
                a.set_title(f"t = {t_grid[k]:.2g}", fontsize=9)
        if examples is not None and r < len(examples):
            a = fig.add_subplot(grid[r, ncols - 1])
            a.imshow(_to_rgb(examples[r], layout, low, high), cmap=cmap, vmin=0.0, vmax=1.0,
                     interpolation="nearest")  # fmt: skip
            a.set_xticks([])
            a.set_yticks([])
            if r == 0:
                a.set_title("target\n(examples)", fontsize=9)
    fig.suptitle(
        f"{label}\nrows: source samples (left) transported through time; "
        f"images of shape {view_shape}",
        fontsize=10,
    )
    return fig


def _save(fig: Any, path: str | os.PathLike[str] | None) -> Any:
    if path is not None:
        from sbflow.data.io import atomic_path

        target = Path(path)
        with atomic_path(target) as tmp:
            fig.savefig(tmp, dpi=120, bbox_inches="tight", format=target.suffix[1:] or "png")
    return fig
