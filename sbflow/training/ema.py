"""Exponential moving average (EMA) of model weights."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

__all__ = ["EMA"]


class EMA:
    """Keep an exponential moving average of a model's parameters and buffers.

    After each optimiser step, ``ema ← d · ema + (1 − d) · θ`` with the effective decay
    ``d = min(decay, (1 + k) / (10 + k))`` at update ``k``: the short warm-up stops the
    average from being dominated by the random initialisation in short runs.

    Args:
        model: The model being trained; a frozen deep copy holds the averaged weights.
        decay: Target decay in ``[0, 1)``; 0 makes the EMA a plain copy of the weights.

    Example:
        >>> net = torch.nn.Linear(1, 1, bias=False)
        >>> _ = torch.nn.init.zeros_(net.weight)
        >>> ema = EMA(net, decay=0.9)
        >>> _ = torch.nn.init.ones_(net.weight)  # a training step moves the weight to 1
        >>> ema.update(net)  # first update: d = 1/10, so ema = 0.1 · 0 + 0.9 · 1
        >>> round(ema.model.weight.item(), 4), ema.num_updates
        (0.9, 1)
    """

    def __init__(self, model: nn.Module, decay: float = 0.999) -> None:
        if not 0.0 <= float(decay) < 1.0:
            raise ValueError(f"ema decay must lie in [0, 1); got {decay!r}.")
        self.decay = float(decay)
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self._params = list(self.model.parameters())
        self._buffers = list(self.model.buffers())
        self._source: tuple[nn.Module, list[torch.Tensor], list[torch.Tensor]] | None = None
        self.num_updates = 0

    def current_decay(self) -> float:
        """The decay used by the next update (warm-up included).

        Example:
            >>> net = torch.nn.Linear(1, 1)
            >>> ema = EMA(net, decay=0.999)
            >>> decays = []
            >>> for _ in range(3):
            ...     decays.append(round(ema.current_decay(), 4))
            ...     ema.update(net)
            >>> decays  # (1 + k) / (10 + k) until it reaches 0.999
            [0.1, 0.1818, 0.25]
        """
        k = self.num_updates
        return min(self.decay, (1.0 + k) / (10.0 + k))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the averaged weights towards ``model``'s current weights.

        Example:
            >>> net = torch.nn.Linear(1, 1, bias=False)
            >>> _ = torch.nn.init.zeros_(net.weight)
            >>> ema = EMA(net, decay=0.5)
            >>> _ = torch.nn.init.constant_(net.weight, 2.0)
            >>> ema.update(net); ema.update(net)  # decays 0.1, then 2/11
            >>> round(ema.model.weight.item(), 4)  # 2 − 2 · 0.1 · (2/11)
            1.9636
        """
        weight = 1.0 - self.current_decay()
        if self._source is None or self._source[0] is not model:
            # walking the module tree costs more than the update itself on small models, so
            # the tensor lists are built once per source model
            self._source = (
                model,
                [p.detach() for p in model.parameters()],
                list(model.buffers()),
            )
        _, params, buffers = self._source
        if self._params:
            torch._foreach_lerp_(self._params, params, weight)
        for b_ema, b in zip(self._buffers, buffers):
            b_ema.copy_(b)
        self.num_updates += 1

    def state_dict(self) -> dict[str, Any]:
        """Averaged weights, decay and update count (for checkpoints).

        Example:
            >>> sorted(EMA(torch.nn.Linear(1, 1)).state_dict())
            ['decay', 'model', 'num_updates']
        """
        return {
            "model": self.model.state_dict(),
            "decay": self.decay,
            "num_updates": self.num_updates,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned.

        Example:
            >>> net = torch.nn.Linear(1, 1)
            >>> a = EMA(net)
            >>> a.update(net)
            >>> b = EMA(torch.nn.Linear(1, 1))  # e.g. rebuilt when resuming a run
            >>> b.load_state_dict(a.state_dict())
            >>> b.num_updates, torch.equal(b.model.weight, net.weight)
            (1, True)
        """
        self.model.load_state_dict(state["model"])
        self.decay = float(state["decay"])
        self.num_updates = int(state["num_updates"])
