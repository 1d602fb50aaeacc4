"""Built-in sample sets: small, seeded, vectorised generators of 2-D (and N-D) point clouds.

Every generator takes the number of points ``n``, a ``torch.Generator`` (``None`` uses a fresh,
unseeded one: no global RNG is touched) and a dtype, and returns a tensor of shape ``(n, dim)``.
The shapes and scales follow the usual flow-matching benchmarks: the eight Gaussians sit on a
circle of radius 5, the moons and the S curve are scaled to a similar spread.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

__all__ = ["DATASETS", "DatasetInfo", "dataset_names", "sample_dataset"]


def _fresh_generator(generator: torch.Generator | None) -> torch.Generator:
    if generator is not None:
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator or None; got {generator!r}.")
        return generator
    g = torch.Generator()
    g.seed()
    return g


def _normal(n: int, g: torch.Generator, dim: int) -> torch.Tensor:
    return torch.randn(n, dim, generator=g, dtype=torch.float64)


def _eight_gaussians(n: int, g: torch.Generator, dim: int) -> torch.Tensor:
    # Centres at radius 5 on the unit circle's eight compass points, isotropic std 0.5.
    k = torch.randint(0, 8, (n,), generator=g)
    angle = k.to(torch.float64) * (math.pi / 4)
    centres = 5.0 * torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)
    return centres + 0.5 * torch.randn(n, 2, generator=g, dtype=torch.float64)


def _moons(n: int, g: torch.Generator, dim: int) -> torch.Tensor:
    # Two interleaving half circles (upper: centre (0, 0); lower: centre (1, 0.5)), Gaussian
    # noise of std 0.2, then scaled by 3 and shifted so the set is roughly centred.
    upper = torch.rand(n, generator=g, dtype=torch.float64) < 0.5
    theta = math.pi * torch.rand(n, generator=g, dtype=torch.float64)
    x = torch.where(upper, torch.cos(theta), 1.0 - torch.cos(theta))
    y = torch.where(upper, torch.sin(theta), 0.5 - torch.sin(theta))
    pts = torch.stack([x, y], dim=1) + 0.2 * torch.randn(n, 2, generator=g, dtype=torch.float64)
    return 3.0 * (pts - torch.tensor([0.5, 0.25], dtype=torch.float64))


def _scurve(n: int, g: torch.Generator, dim: int) -> torch.Tensor:
    # The S curve seen from the side: s ∈ [-3π/2, 3π/2], x = sin s, y = sign(s)(cos s − 1).
    s = 3.0 * math.pi * (torch.rand(n, generator=g, dtype=torch.float64) - 0.5)
    x = torch.sin(s)
    y = torch.sign(s) * (torch.cos(s) - 1.0)
    pts = torch.stack([x, y], dim=1) + 0.1 * torch.randn(n, 2, generator=g, dtype=torch.float64)
    return 2.0 * pts


def _checkerboard(n: int, g: torch.Generator, dim: int) -> torch.Tensor:
    # Uniform on the 8 dark squares of a 4 × 4 board of side-2 squares covering [-4, 4]².
    cell = torch.randint(0, 8, (n,), generator=g)
    row = cell // 2
    col = 2 * (cell % 2) + (row % 2)
    corner = torch.stack([col, row], dim=1).to(torch.float64) * 2.0 - 4.0
    return corner + 2.0 * torch.rand(n, 2, generator=g, dtype=torch.float64)


def _circles(n: int, g: torch.Generator, dim: int) -> torch.Tensor:
    # Two concentric rings of radii 4 and 2 (half the points on each), noise std 0.2.
    outer = torch.rand(n, generator=g, dtype=torch.float64) < 0.5
    radius = torch.where(outer, 4.0, 2.0)
    angle = 2.0 * math.pi * torch.rand(n, generator=g, dtype=torch.float64)
    pts = radius[:, None] * torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)
    return pts + 0.2 * torch.randn(n, 2, generator=g, dtype=torch.float64)


def _swissroll(n: int, g: torch.Generator, dim: int) -> torch.Tensor:
    # 2-D Swiss roll: r = θ / 3 with θ uniform on [1.5π, 4.5π], noise std 0.2.
    theta = math.pi * (1.5 + 3.0 * torch.rand(n, generator=g, dtype=torch.float64))
    r = theta / 3.0
    pts = r[:, None] * torch.stack([torch.cos(theta), torch.sin(theta)], dim=1)
    return pts + 0.2 * torch.randn(n, 2, generator=g, dtype=torch.float64)


@dataclass(frozen=True)
class DatasetInfo:
    """A registered built-in sample set.

    Attributes:
        name: Registry name.
        description: One-line description.
        default_dim: Dimension of the samples when ``dim`` is not given.
        any_dim: Whether ``dim`` may be chosen freely (only ``"normal"``).
        sampler: ``sampler(n, generator, dim) -> Tensor`` in float64.

    Example:
        >>> info = DATASETS["normal"]
        >>> info.default_dim, info.any_dim
        (2, True)
        >>> info.sampler(4, torch.Generator().manual_seed(0), 3).shape
        torch.Size([4, 3])
    """

    name: str
    description: str
    default_dim: int
    any_dim: bool
    sampler: Callable[[int, torch.Generator, int], torch.Tensor]


DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in [
        DatasetInfo("normal", "standard normal N(0, I) in any dimension", 2, True, _normal),
        DatasetInfo(
            "8gaussians",
            "eight Gaussians (std 0.5) on a circle of radius 5",
            2,
            False,
            _eight_gaussians,
        ),
        DatasetInfo("moons", "two interleaving half circles, scaled by 3", 2, False, _moons),
        DatasetInfo("scurve", "2-D S curve (side view of the 3-D S curve)", 2, False, _scurve),
        DatasetInfo(
            "checkerboard",
            "uniform on the dark squares of a 4 × 4 board on [-4, 4]²",
            2,
            False,
            _checkerboard,
        ),
        DatasetInfo("circles", "two concentric rings of radii 4 and 2", 2, False, _circles),
        DatasetInfo("swissroll", "2-D Swiss roll spiral", 2, False, _swissroll),
    ]
}


def dataset_names() -> list[str]:
    """Names of the built-in sample sets, in registry order.

    Example:
        >>> "moons" in dataset_names()
        True
    """
    return list(DATASETS)


def sample_dataset(
    name: str,
    n: int,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
    dim: int | None = None,
) -> torch.Tensor:
    """Draw ``n`` points from a built-in sample set.

    Args:
        name: One of :data:`DATASETS` (``normal``, ``8gaussians``, ``moons``, ``scurve``,
            ``checkerboard``, ``circles``, ``swissroll``); case-insensitive.
        n: Number of points (≥ 1).
        generator: Source of randomness; the same seeded generator gives the same points.
        dtype: Floating dtype of the result (default: ``torch.get_default_dtype()``).
        dim: Dimension; only ``"normal"`` accepts a value other than 2.

    Returns:
        Tensor of shape ``(n, dim)`` on the CPU.

    Raises:
        ValueError: Unknown name, ``n < 1`` or an unsupported ``dim``.

    Example:
        >>> x = sample_dataset("moons", 100, generator=torch.Generator().manual_seed(0))
        >>> x.shape, x.dtype
        (torch.Size([100, 2]), torch.float32)
        >>> y = sample_dataset("moons", 100, generator=torch.Generator().manual_seed(0))
        >>> torch.equal(x, y)  # seeded: the same points again
        True
        >>> sample_dataset("normal", 3, dim=5, dtype=torch.float64).shape
        torch.Size([3, 5])
    """
    if not isinstance(name, str):
        raise TypeError(f"dataset name must be a string; got {type(name).__name__}.")
    key = name.strip().lower()
    if key not in DATASETS:
        raise ValueError(
            f"unknown dataset {name!r}; built-in sample sets are: {', '.join(DATASETS)}."
        )
    info = DATASETS[key]
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer number of samples; got {n!r}.")
    if dim is None:
        dim = info.default_dim
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise ValueError(f"dim must be a positive integer; got {dim!r}.")
    if not info.any_dim and dim != info.default_dim:
        raise ValueError(
            f"dataset {key!r} is {info.default_dim}-dimensional; dim={dim} is only supported "
            f"by 'normal'."
        )
    x = info.sampler(n, _fresh_generator(generator), dim)
    return x.to(dtype or torch.get_default_dtype())
