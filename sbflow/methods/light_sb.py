r"""``light-sb``: the Schrödinger bridge with a Gaussian-mixture potential (LightSB).

Korotin, Gushchin & Burnaev, *Light Schrödinger bridge*, ICLR 2024 (see :mod:`sbflow.lightsb`).
The Schrödinger potential is a ``K``-component mixture
:math:`v_\theta(y) = \sum_k \alpha_k \mathcal N(y \mid r_k, \varepsilon S_k)`, fitted on
unpaired batches of the two sets by minimising :math:`E_{x_0}\log c_\theta(x_0) -
E_{x_1}\log v_\theta(x_1)` (:func:`~sbflow.lightsb.fit_light_sb`); with ``paired=True`` it is
fitted by bridge matching on the given pairs instead
(:func:`~sbflow.lightsb.fit_light_sb_matching`). Nothing else is trained.

Units: the solver works in the units ``fit`` trains in (standardised data, time
:math:`\tau \in [0, 1]`) with :math:`\varepsilon_z = \sigma_z^2`, :math:`\sigma_z` the user's
σ converted by :mod:`sbflow.bridge.timemap`; the bridge maps back, so it is the Schrödinger
bridge of :math:`dX = \sigma\, dW` in the data's units.

The bridge's field is :class:`LightSBField` (the registered model ``"light-sb"``): its
output is the closed-form *forward* drift :math:`f` of :math:`dX = f\,dt + \sigma\,dW`, not a
velocity and a score. Such a bridge simulates the SDE forward in time only — the
probability-flow ODE and the backward SDE need the marginals' score, which the potential does
not give — and :meth:`~sbflow.Bridge.sample_conditional` draws :math:`\pi_\theta(\cdot|x)`
exactly, with no simulation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from sbflow._checks import check_positive, check_positive_int
from sbflow.lightsb import LightSB, fit_light_sb, fit_light_sb_matching
from sbflow.methods.base import Method, Problem
from sbflow.methods.registry import register
from sbflow.models.registry import build_model, register_model

__all__ = ["LightSBField", "LightSBMethod"]


@register_model("light-sb")
class LightSBField(LightSB):
    r"""A :class:`~sbflow.lightsb.LightSB` as a bridge field: ``field(x, t)`` is the drift.

    The output is the closed-form forward drift :math:`f(x, t)` of
    :math:`dX = f\,dt + \sqrt\varepsilon\,dW` (``field_output = "forward-drift"``), so
    :class:`~sbflow.Bridge` simulates it as it is, forward in time. Samples of any shape are
    flattened to ``(n, dim)``.

    Args:
        dim: Number of features :math:`D`.
        n_components: Mixture components :math:`K`.
        eps: :math:`\varepsilon = \sigma^2` in the units the field works in.

    Example:
        >>> field = LightSBField(dim=2, n_components=1, eps=1.0)  # S = I, r = 0: no drift
        >>> field(torch.ones(3, 2), torch.full((3,), 0.5)).abs().max().item()
        0.0
        >>> field.sample_conditional(torch.zeros(4, 2), 5).shape
        torch.Size([4, 5, 2])
    """

    field_output: ClassVar[str] = "forward-drift"  # read by Bridge: simulate f as it is

    def __init__(self, dim: int, n_components: int, eps: float) -> None:
        super().__init__(dim, n_components, eps)

    def forward(self, x: torch.Tensor, t: Any) -> torch.Tensor:
        return self.drift(x.reshape(x.shape[0], -1), t).reshape(x.shape)

    @classmethod
    def from_lightsb(cls, model: LightSB) -> LightSBField:
        """The registered (saveable) field with the parameters of a fitted ``model``.

        Example:
            >>> model = LightSB(2, 3, 0.5)
            >>> LightSBField.from_lightsb(model).n_components
            3
        """
        field = build_model(
            "light-sb", dim=model.dim, n_components=model.n_components, eps=model.eps
        )
        field.load_state_dict(model.state_dict())
        return field.to(model.loc.device)


@register
class LightSBMethod(Method):
    r"""The light Schrödinger bridge (see the module docstring).

    Args:
        sigma: σ in data units per unit of time (default ``0.5 · s_data / √T``, as
            ``sb-cfm``).
        coupling: Must be ``None``: the potential is fitted on unpaired sets directly.
        n_components: Mixture components :math:`K`.
        lr: Peak Adam learning rate (``fit``'s ``lr`` is for networks and is not used).
        init_scale: Initial diagonal of :math:`S_k` (in training units).
        pool: Samples drawn from each built-in set (data sets are used as they are).

    ``fit``'s ``steps``, ``batch_size`` and ``seed`` set the optimisation; its network
    settings (``model``, ``hidden``, ``lr``, EMA, checkpoints) do not apply.

    Example:
        >>> x0 = torch.randn(500, 2, generator=torch.Generator().manual_seed(0))
        >>> method = LightSBMethod(sigma=1.0, n_components=4)
        >>> bridge = sbflow.fit(x0, x0 + 5.0, method=method, steps=200, progress=False)
        >>> y = bridge.sample_conditional(torch.zeros(2, 2), 400,
        ...                               generator=torch.Generator().manual_seed(1))
        >>> y.shape, bool((y.mean(1) - 5.0).abs().max() < 0.5)
        (torch.Size([2, 400, 2]), True)
    """

    name = "light-sb"
    description = "light Schrödinger bridge: Gaussian-mixture potential, exact conditional plans"
    heads = ("f",)
    simulation = "sde"
    default_sigma = 0.5

    def __init__(
        self,
        sigma: float | None = None,
        coupling: Any = None,
        *,
        n_components: int = 50,
        lr: float = 3e-2,
        init_scale: float = 0.1,
        pool: int = 100_000,
    ) -> None:
        if coupling is not None:
            raise ValueError(
                f"method 'light-sb' fits the entropic plan itself from unpaired sets; leave "
                f"coupling out (got {coupling!r})."
            )
        super().__init__(sigma)
        self.n_components = check_positive_int(n_components, "n_components")
        self.lr = check_positive(lr, "lr")
        self.init_scale = check_positive(init_scale, "init_scale")
        self.pool = check_positive_int(pool, "pool")
        self.coupling = None

    def default_model(
        self, features: int, feature_shape: Sequence[int]
    ) -> tuple[str, dict[str, Any]] | None:
        """No network: the mixture is built by :meth:`train`."""
        return None

    def describe(self) -> dict[str, Any]:
        """Name, σ and the mixture's settings (JSON-like)."""
        return {
            **super().describe(),
            "n_components": self.n_components,
            "mixture_lr": self.lr,
            "init_scale": self.init_scale,
        }

    def train(
        self, problem: Problem, model: nn.Module | None, run: Any
    ) -> tuple[nn.Module, list[tuple[int, float]]]:
        """Fit the mixture in training units; return its :class:`LightSBField` and history."""
        if model is not None:
            raise ValueError(
                "method 'light-sb' has no network to train; leave model out (its size is "
                "set by LightSBMethod(n_components=...))."
            )
        if len(problem.sets) != 2:
            raise ValueError(
                f"method 'light-sb' bridges two sample sets; got {len(problem.sets)}. Fit "
                f"each interval on its own, or use method='sb-cfm' or 'imf' for several "
                f"snapshots."
            )
        device = run.device
        gen = torch.Generator().manual_seed(problem.seed)
        x0, x1 = (self._draw(problem, k, gen).to(device) for k in (0, 1))
        solver = fit_light_sb_matching if problem.paired else fit_light_sb
        config = run.config
        result = solver(
            x0,
            x1,
            eps=problem.sigma**2,
            n_components=self.n_components,
            steps=config.steps,
            lr=self.lr,
            batch_size=problem.batch_size,
            init_scale=self.init_scale,
            generator=gen,
            progress=bool(config.progress),
        )
        every = max(1, int(config.log_every))
        losses = result.losses
        history = [
            (min(i + every, len(losses)), float(losses[i : i + every].mean()))
            for i in range(0, len(losses), every)
        ]
        return LightSBField.from_lightsb(result.model), history

    def _draw(self, problem: Problem, k: int, gen: torch.Generator) -> torch.Tensor:
        data = problem.sets[k].data
        if data is not None:
            return data.reshape(data.shape[0], -1)
        return problem.sampler(k)(self.pool, gen).reshape(self.pool, -1)
