"""Seeded draws that work whatever device the generator and the output live on."""

from __future__ import annotations

import torch

__all__ = ["rand", "randn"]


def _device_of(generator: torch.Generator | None, device: torch.device) -> torch.device:
    return device if generator is None else generator.device


def rand(
    shape: tuple[int, ...],
    *,
    dtype: torch.dtype,
    device: torch.device,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Uniform ``[0, 1)`` draws of ``shape`` on ``device``, drawn on the generator's device.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> u = rand((2,), dtype=torch.float64, device=torch.device("cpu"), generator=g)
        >>> u.dtype, torch.equal(u, torch.rand(2, dtype=torch.float64,
        ...                                     generator=torch.Generator().manual_seed(0)))
        (torch.float64, True)
    """
    src = _device_of(generator, device)
    return torch.rand(shape, dtype=dtype, device=src, generator=generator).to(device)


def randn(
    shape: tuple[int, ...],
    *,
    dtype: torch.dtype,
    device: torch.device,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Standard normal draws of ``shape`` on ``device``, drawn on the generator's device.

    Example:
        >>> draw = lambda: randn((2, 3), dtype=torch.float32, device=torch.device("cpu"),
        ...                      generator=torch.Generator().manual_seed(1))
        >>> draw().shape, torch.equal(draw(), draw())  # the same seed, the same draws
        (torch.Size([2, 3]), True)
    """
    src = _device_of(generator, device)
    return torch.randn(shape, dtype=dtype, device=src, generator=generator).to(device)
