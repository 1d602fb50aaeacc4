"""A small time-conditioned U-Net for ``(n, C, H, W)`` images (MNIST-sized, CPU friendly)."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sbflow.models._time import as_batch_times

__all__ = ["SmallUNet"]


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(8, channels), channels)


def _sinusoidal(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Transformer-style embedding of ``t ∈ [0, 1]`` (scaled by 1000) into ``dim`` features."""
    half = dim // 2
    freqs = torch.exp(
        -math.log(10_000.0) * torch.arange(half, dtype=t.dtype, device=t.device) / max(half, 1)
    )
    arg = 1000.0 * t.reshape(-1, 1) * freqs
    emb = torch.cat([torch.sin(arg), torch.cos(arg)], dim=1)
    return F.pad(emb, (0, dim - 2 * half))


class _ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, t_dim: int) -> None:
        super().__init__()
        self.norm1, self.conv1 = _norm(c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.time = nn.Linear(t_dim, c_out)
        self.norm2, self.conv2 = _norm(c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time(temb)[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return h + self.skip(x)


class SmallUNet(nn.Module):
    """Two-level U-Net ``f(x, t)`` with residual blocks and a sinusoidal time embedding.

    Resolutions ``H → H/2 → H/4`` with ``base_channels``, ``2 base_channels`` and
    ``2 base_channels`` channels, one residual block per level, skip connections, GroupNorm
    and SiLU. The output convolution starts at zero, so an untrained model predicts 0. ``H``
    and ``W`` must be divisible by 4 (28 × 28 works).

    Args:
        in_channels: Image channels ``C``.
        base_channels: Channels at full resolution.
        out_channels: Output channels (default ``in_channels``).
        time_dim: Width of the time embedding (default ``4 base_channels``).

    Example:
        >>> net = SmallUNet(1, base_channels=8)
        >>> net(torch.zeros(2, 1, 28, 28), 0.5).shape
        torch.Size([2, 1, 28, 28])
    """

    def __init__(
        self,
        in_channels: int,
        base_channels: int = 32,
        out_channels: int | None = None,
        time_dim: int | None = None,
    ) -> None:
        super().__init__()
        if int(in_channels) < 1 or int(base_channels) < 1:
            raise ValueError("in_channels and base_channels must be positive integers.")
        c, c2 = int(base_channels), 2 * int(base_channels)
        self.in_channels = int(in_channels)
        self.out_channels = self.in_channels if out_channels is None else int(out_channels)
        self.base_channels = c
        td = 4 * c if time_dim is None else int(time_dim)
        self.time_dim = td
        self.time_mlp = nn.Sequential(nn.Linear(td, td), nn.SiLU(), nn.Linear(td, td))
        self.inc = nn.Conv2d(self.in_channels, c, 3, padding=1)
        self.down1 = _ResBlock(c, c, td)
        self.pool1 = nn.Conv2d(c, c, 3, stride=2, padding=1)
        self.down2 = _ResBlock(c, c2, td)
        self.pool2 = nn.Conv2d(c2, c2, 3, stride=2, padding=1)
        self.mid = _ResBlock(c2, c2, td)
        self.upconv2 = nn.Conv2d(c2, c2, 3, padding=1)
        self.up2 = _ResBlock(2 * c2, c2, td)
        self.upconv1 = nn.Conv2d(c2, c2, 3, padding=1)
        self.up1 = _ResBlock(c2 + c, c, td)
        self.out_norm = _norm(c)
        self.out = nn.Conv2d(c, self.out_channels, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, t: Any) -> torch.Tensor:
        """Evaluate on images ``x`` ``(n, C, H, W)`` at times ``t`` (``(n,)`` or scalar)."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"SmallUNet expects images of shape (n, {self.in_channels}, H, W); "
                f"got {tuple(x.shape)}."
            )
        if x.shape[2] % 4 or x.shape[3] % 4:
            raise ValueError(
                f"SmallUNet needs H and W divisible by 4; got {tuple(x.shape[2:])}. Pad the images."
            )
        temb = self.time_mlp(_sinusoidal(as_batch_times(t, x), self.time_dim))
        h1 = self.down1(self.inc(x), temb)
        h2 = self.down2(self.pool1(h1), temb)
        h = self.mid(self.pool2(h2), temb)
        h = self.upconv2(F.interpolate(h, scale_factor=2.0, mode="nearest"))
        h = self.up2(torch.cat([h, h2], dim=1), temb)
        h = self.upconv1(F.interpolate(h, scale_factor=2.0, mode="nearest"))
        h = self.up1(torch.cat([h, h1], dim=1), temb)
        return self.out(F.silu(self.out_norm(h)))
