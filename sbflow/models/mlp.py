"""Time-conditioned MLPs for vectors: :class:`TimeMLP` and the two-head :class:`FlowScoreMLP`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from sbflow.models._time import FourierTime, as_batch_times, make_activation

__all__ = ["FlowScoreMLP", "TimeMLP"]


def _flat_dim(dim: int | Sequence[int]) -> int:
    if isinstance(dim, int):
        d = dim
    else:
        d = math.prod(int(k) for k in dim)
    if d < 1:
        raise ValueError(f"dim must be a positive integer (or a sample shape); got {dim!r}.")
    return int(d)


def _trunk(in_dim: int, hidden: int, depth: int, activation: Any) -> list[nn.Module]:
    if int(depth) < 1 or int(hidden) < 1:
        raise ValueError(f"need depth >= 1 and hidden >= 1; got depth={depth}, hidden={hidden}.")
    layers: list[nn.Module] = []
    width = in_dim
    for _ in range(int(depth)):
        layers += [nn.Linear(width, int(hidden)), make_activation(activation)]
        width = int(hidden)
    return layers


def _selu_init_(module: nn.Module) -> None:
    """Give every ``Linear`` of a SELU network LeCun-normal weights, ``N(0, 1 / fan_in)``.

    SELU only self-normalises with this variance (Klambauer et al., 2017). PyTorch's default
    ``Linear`` weights have a third of it, which shrinks unit-variance inputs by about √3 per
    layer, so a fresh network is nearly linear and its spatial resolution grows only as the
    weights do (measured: W2 0.353 → 0.325 for OT-CFM on 8gaussians → moons at 3000 steps).
    Biases keep PyTorch's default. Other activations keep PyTorch's default initialisation.
    """
    if not any(isinstance(layer, nn.SELU) for layer in module.modules()):
        return
    for layer in module.modules():
        # a meta-device build only counts parameters (sbflow.models.count_parameters), and
        # normal_ on meta tensors imports torch._dynamo: seconds spent on nothing
        if isinstance(layer, nn.Linear) and not layer.weight.is_meta:
            nn.init.normal_(layer.weight, 0.0, layer.in_features**-0.5)


class _Flatten:
    """Flatten ``(n, *dims)`` inputs to ``(n, dim)`` and restore the shape of outputs."""

    @staticmethod
    def inputs(x: torch.Tensor, t: Any, dim: int, time: FourierTime) -> torch.Tensor:
        if x.dim() < 2 or math.prod(x.shape[1:]) != dim:
            raise ValueError(
                f"the model was built for samples with {dim} features; got x of shape "
                f"{tuple(x.shape)}. Pass x as (n, dim) or (n, *dims) with prod(dims) = {dim}."
            )
        tt = as_batch_times(t, x)
        return torch.cat([x.reshape(x.shape[0], dim), time(tt)], dim=1)

    @staticmethod
    def outputs(y: torch.Tensor, x: torch.Tensor, dim: int) -> torch.Tensor:
        return y.reshape(x.shape) if y.shape[1] == dim else y


class TimeMLP(nn.Module):
    """MLP ``f(x, t)`` of samples and time: ``[x, emb(t)] → (Linear → act) × depth → Linear``.

    ``emb(t) = [t, sin(2πkt), cos(2πkt)]_{k ≤ time_frequencies}``. Inputs ``(n, *dims)`` are
    flattened and the output reshaped back when ``out_dim == dim``. ``t`` may be ``(n,)`` or a
    scalar (broadcast over the batch, as ODE solvers pass it). With SELU (the default) every
    linear layer starts from LeCun-normal weights ``W ~ N(0, 1 / fan_in)``, the variance under
    which SELU keeps activations at unit scale; PyTorch's default is three times smaller.

    Args:
        dim: Number of features (or the sample shape ``dims``).
        hidden: Width of the hidden layers.
        depth: Number of hidden layers.
        out_dim: Output features (default ``dim``).
        activation: ``"selu"`` (default), ``"silu"``, ``"relu"``, ... or an ``nn.Module`` class.
        time_frequencies: Fourier frequencies of ``t`` added to the input (0: ``t`` only).

    Example:
        >>> net = TimeMLP(2, hidden=16)
        >>> net(torch.zeros(5, 2), 0.5).shape
        torch.Size([5, 2])
    """

    def __init__(
        self,
        dim: int | Sequence[int],
        hidden: int = 64,
        depth: int = 3,
        out_dim: int | None = None,
        activation: Any = "selu",
        time_frequencies: int = 0,
    ) -> None:
        super().__init__()
        self.dim = _flat_dim(dim)
        self.out_dim = self.dim if out_dim is None else _flat_dim(out_dim)
        self.time = FourierTime(time_frequencies)
        layers = _trunk(self.dim + self.time.dim, hidden, depth, activation)
        self.net = nn.Sequential(*layers, nn.Linear(int(hidden), self.out_dim))
        _selu_init_(self.net)

    def forward(self, x: torch.Tensor, t: Any) -> torch.Tensor:
        """Evaluate on ``x`` ``(n, *dims)`` at times ``t`` (``(n,)`` or scalar)."""
        y = self.net(_Flatten.inputs(x, t, self.dim, self.time))
        return _Flatten.outputs(y, x, self.dim)


class FlowScoreMLP(nn.Module):
    """Two-head model returning ``(v, s)``: a velocity and a raw score ``∇_x log p_t``.

    With ``shared_trunk=False`` (default) the heads are two independent :class:`TimeMLP`
    networks (as in [SF]2M, so that the two regressions do not compete for capacity); with
    ``shared_trunk=True`` one trunk of ``depth`` hidden layers feeds two linear heads (half
    the parameters and compute).

    Args:
        dim: Number of features (or the sample shape).
        hidden: Width of the hidden layers.
        depth: Number of hidden layers (per network, or of the shared trunk).
        activation: Activation name or ``nn.Module`` class.
        time_frequencies: Fourier frequencies of ``t`` (see :class:`TimeMLP`).
        shared_trunk: Share the hidden layers between the heads.

    Example:
        >>> net = FlowScoreMLP(3, hidden=8)
        >>> v, s = net(torch.zeros(4, 3), torch.rand(4))
        >>> v.shape, s.shape
        (torch.Size([4, 3]), torch.Size([4, 3]))
    """

    def __init__(
        self,
        dim: int | Sequence[int],
        hidden: int = 64,
        depth: int = 3,
        activation: Any = "selu",
        time_frequencies: int = 0,
        shared_trunk: bool = False,
    ) -> None:
        super().__init__()
        self.dim = _flat_dim(dim)
        self.shared_trunk = bool(shared_trunk)
        if self.shared_trunk:
            self.time = FourierTime(time_frequencies)
            self.trunk = nn.Sequential(*_trunk(self.dim + self.time.dim, hidden, depth, activation))
            self.v_head = nn.Linear(int(hidden), self.dim)
            self.s_head = nn.Linear(int(hidden), self.dim)
            _selu_init_(self)
        else:
            opts = dict(
                hidden=hidden, depth=depth, activation=activation, time_frequencies=time_frequencies
            )
            self.v_net = TimeMLP(self.dim, **opts)
            self.s_net = TimeMLP(self.dim, **opts)

    def forward(self, x: torch.Tensor, t: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(velocity, score)``, each of the shape of ``x``."""
        if not self.shared_trunk:
            return self.v_net(x, t), self.s_net(x, t)
        h = self.trunk(_Flatten.inputs(x, t, self.dim, self.time))
        return self.v_head(h).reshape(x.shape), self.s_head(h).reshape(x.shape)

    def velocity(self, x: torch.Tensor, t: Any) -> torch.Tensor:
        """The velocity head alone (e.g. for the probability-flow ODE).

        Example:
            >>> FlowScoreMLP(2, hidden=8).velocity(torch.zeros(3, 2), 0.0).shape
            torch.Size([3, 2])
        """
        return self.v_net(x, t) if not self.shared_trunk else self(x, t)[0]

    def score(self, x: torch.Tensor, t: Any) -> torch.Tensor:
        """The score head alone.

        Example:
            >>> FlowScoreMLP(2, hidden=8).score(torch.zeros(3, 2), 0.0).shape
            torch.Size([3, 2])
        """
        return self.s_net(x, t) if not self.shared_trunk else self(x, t)[1]
