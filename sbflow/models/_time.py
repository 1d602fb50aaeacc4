"""Time handling shared by the models: broadcast ``t`` and embed it."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

__all__ = ["FourierTime", "as_batch_times", "make_activation"]

_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "selu": nn.SELU,
    "relu": nn.ReLU,
    "silu": nn.SiLU,
    "gelu": nn.GELU,
    "elu": nn.ELU,
    "tanh": nn.Tanh,
    "softplus": nn.Softplus,
    "leaky_relu": nn.LeakyReLU,
}


def make_activation(activation: Any) -> nn.Module:
    """Build an activation module from a name (``"selu"``, ``"silu"``, ...) or a module class.

    Example:
        >>> make_activation("silu")
        SiLU()
    """
    if isinstance(activation, str):
        key = activation.lower()
        if key not in _ACTIVATIONS:
            raise ValueError(
                f"unknown activation {activation!r}; choose one of {sorted(_ACTIVATIONS)} or "
                f"pass an nn.Module class."
            )
        return _ACTIVATIONS[key]()
    if isinstance(activation, type) and issubclass(activation, nn.Module):
        return activation()
    if isinstance(activation, nn.Module):
        return activation
    raise TypeError(f"activation must be a name or an nn.Module class; got {activation!r}.")


def as_batch_times(t: Any, x: torch.Tensor) -> torch.Tensor:
    """Times as a ``(n,)`` tensor in ``x``'s dtype and device; scalars are broadcast.

    Accepts a Python number, a 0-d tensor, a ``(1,)``, ``(n,)`` or ``(n, 1)`` tensor
    (ODE solvers pass a scalar ``t``).

    Example:
        >>> as_batch_times(0.5, torch.zeros(3, 2)).tolist()
        [0.5, 0.5, 0.5]
    """
    n = x.shape[0]
    tt = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    if tt.dim() == 2 and tt.shape[1] == 1:
        tt = tt[:, 0]
    if tt.dim() == 0 or (tt.dim() == 1 and tt.shape[0] == 1):
        return tt.reshape(1).expand(n)
    if tt.dim() != 1 or tt.shape[0] != n:
        raise ValueError(
            f"t must be a scalar or have shape ({n},) to match x of shape {tuple(x.shape)}; "
            f"got {tuple(tt.shape)}."
        )
    return tt


class FourierTime(nn.Module):
    """Embed ``t`` as ``[t, sin(2π k t), cos(2π k t)]`` for ``k = 1..n_frequencies``.

    Args:
        n_frequencies: Number of frequencies (0: the embedding is ``t`` alone).

    Example:
        >>> FourierTime(1)(torch.tensor([0.125])).round(decimals=4).tolist()  # t, sin 2πt, cos 2πt
        [[0.125, 0.7071, 0.7071]]
        >>> FourierTime(2)(torch.zeros(5)).shape  # 1 + 2 · 2 features
        torch.Size([5, 5])
    """

    def __init__(self, n_frequencies: int = 0) -> None:
        super().__init__()
        if int(n_frequencies) < 0:
            raise ValueError(f"n_frequencies must be >= 0; got {n_frequencies!r}.")
        self.n_frequencies = int(n_frequencies)

    @property
    def dim(self) -> int:
        """Width of the embedding, ``1 + 2 n_frequencies``."""
        return 1 + 2 * self.n_frequencies

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        """Map times ``(n,)`` to features ``(n, dim)``."""
        t = t.reshape(-1, 1)
        if self.n_frequencies == 0:
            return t
        k = torch.arange(1, self.n_frequencies + 1, dtype=t.dtype, device=t.device)
        arg = 2 * math.pi * t * k
        return torch.cat([t, torch.sin(arg), torch.cos(arg)], dim=1)
