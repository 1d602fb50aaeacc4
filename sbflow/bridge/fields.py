r"""The field protocol behind :class:`~sbflow.Bridge`: ``field(x, t) -> v`` or ``(v, s)``.

A bridge simulates any ``nn.Module`` called as ``field(x, t)`` (``x`` of shape
``(n, *dims)``, ``t`` of shape ``(n,)``) that returns the probability-flow velocity ``v``, or
``(v, s)`` with the score ``s = ∇ log p_t``. Two adaptors cover the other common shapes:

- :class:`DriftPair`: two networks, the forward drift ``f`` of ``dX = f dt + σ dW`` and the
  backward drift ``b`` of the time-reversed SDE (in reversed time). Anderson's reversal
  ``b = −f + σ² s`` gives ``v = (f − b)/2`` and ``s = (f + b)/σ²``.
- :class:`GaussianField`: the closed-form Gaussian bridge (:class:`sbflow.gaussian.GaussianBridge`)
  as a field without weights.

Both are registered models, so bridges over them save and load like any other.

Example:
    >>> f = lambda x, t: torch.ones_like(x)
    >>> pair = DriftPair(f, f, sigma=1.0)
    >>> [o.tolist() for o in pair(torch.zeros(1, 2), torch.zeros(1))]
    [[[0.0, 0.0]], [[2.0, 2.0]]]
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from sbflow.models.registry import build_model, register_model

__all__ = ["DriftPair", "GaussianField"]


@register_model("drift-pair")
class DriftPair(nn.Module):
    """Forward and backward drift networks seen as ``(v, s)`` (see the module docstring).

    Args:
        forward: ``f(x, t)``, the drift of ``dX = f dt + σ dW`` forward in time; a module,
            or a dict ``{"name", "config"}`` of a registered model (how files rebuild it).
        backward: ``b(x, t)``, the drift of the reversed SDE, evaluated at the forward time.
        sigma: σ of both SDEs in the units the networks work in (> 0).

    Example:
        >>> pair = DriftPair({"name": "time-mlp", "config": {"dim": 2, "hidden": 8}},
        ...                  {"name": "time-mlp", "config": {"dim": 2, "hidden": 8}}, 0.5)
        >>> [o.shape for o in pair(torch.zeros(3, 2), torch.zeros(3))]
        [torch.Size([3, 2]), torch.Size([3, 2])]
    """

    def __init__(self, forward: Any, backward: Any, sigma: float) -> None:
        super().__init__()
        if not float(sigma) > 0:
            raise ValueError(f"sigma must be > 0 for a drift pair; got {sigma!r}.")
        self.forward_drift = _module(forward, "forward")
        self.backward_drift = _module(backward, "backward")
        self.sigma = float(sigma)

    def forward(self, x: torch.Tensor, t: Any) -> tuple[torch.Tensor, torch.Tensor]:
        f, b = self.forward_drift(x, t), self.backward_drift(x, t)
        return 0.5 * (f - b), (f + b) / self.sigma**2


def _module(spec: Any, name: str) -> Any:
    if isinstance(spec, dict):
        return build_model(spec["name"], **spec.get("config", {}))
    if not callable(spec):
        raise TypeError(f"{name} must be a module / callable f(x, t) or a model dict.")
    return spec


@register_model("gaussian-bridge")
class GaussianField(nn.Module):
    """The closed-form Gaussian Schrödinger bridge as a ``(v, s)`` field.

    Args:
        mean0: Source mean ``(d,)`` (list or tensor).
        cov0: Source covariance ``(d, d)``.
        mean1: Target mean ``(d,)``.
        cov1: Target covariance ``(d, d)``.
        sigma: σ of the reference Brownian motion (> 0: the score needs noise).

    Example:
        >>> field = GaussianField([0.0], [[1.0]], [2.0], [[1.0]], 1.0)
        >>> field(torch.zeros(1, 1), torch.zeros(1))[0].tolist()
        [[2.0]]
    """

    def __init__(self, mean0: Any, cov0: Any, mean1: Any, cov1: Any, sigma: float) -> None:
        super().__init__()
        from sbflow.gaussian import GaussianBridge

        self.oracle = GaussianBridge(mean0, cov0, mean1, cov1, sigma)
        if not self.oracle.sigma > 0:
            raise ValueError("a Gaussian bridge field needs sigma > 0 (the score is undefined).")

    @staticmethod
    def count_parameters(**config: Any) -> int:
        """No trainable parameters (the config holds the Gaussians)."""
        return 0

    @classmethod
    def from_bridge(cls, bridge: Any) -> nn.Module:
        """The registered field of a :class:`~sbflow.gaussian.GaussianBridge` (saveable).

        Example:
            >>> from sbflow.gaussian import GaussianBridge
            >>> gb = GaussianBridge([0.0], [[1.0]], [1.0], [[1.0]], 0.5)
            >>> GaussianField.from_bridge(gb).oracle.sigma
            0.5
        """
        config = {
            "mean0": bridge.mean0.tolist(),
            "cov0": bridge.cov0.tolist(),
            "mean1": bridge.mean1.tolist(),
            "cov1": bridge.cov1.tolist(),
            "sigma": float(bridge.sigma),
        }
        return build_model("gaussian-bridge", **config)

    def forward(self, x: torch.Tensor, t: Any) -> tuple[torch.Tensor, torch.Tensor]:
        return self.oracle.velocity(x, t), self.oracle.score(x, t)
