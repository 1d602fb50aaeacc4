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
        >>> rand((2,), dtype=torch.float64, device=torch.device("cpu")).dtype
        torch.float64
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
        >>> randn((2, 3), dtype=torch.float32, device=torch.device("cpu")).shape
        torch.Size([2, 3])
    """
    src = _device_of(generator, device)
    return torch.randn(shape, dtype=dtype, device=src, generator=generator).to(device)
