"""Named flow-matching methods: a coupling, a path and whether a score head is trained.

=========  ==================================  ===========================  ======  ===========
name       coupling                            path                         score   default σ
=========  ==================================  ===========================  ======  ===========
i-cfm      independent                         ``LinearPath(σ)``            no      0.0
ot-cfm     exact OT (``ExactOT``)              ``LinearPath(σ)``            no      0.0
sb-cfm     entropic OT, ``reg = 2σ²``          ``BrownianBridgePath(σ)``    yes     0.5
fm         independent, Gaussian source        ``TargetPath(σ_min = σ)``    no      1e-3
vp-cfm     independent                         ``VPPath(σ)``                no      0.0
=========  ==================================  ===========================  ======  ===========

Defaults: I-CFM and OT-CFM use ``σ = 0`` (deterministic straight conditional paths, so an
exact-OT coupling gives the straightest learned flow; pass ``sigma=0.1`` for the smoothing used
in some of Tong et al.'s experiments). SB-CFM uses ``σ = 0.5`` in the units of the training
data — with data standardised to unit variance this is a moderate amount of diffusion (entropic
``reg = 0.5``); larger σ approaches the independent coupling. For ``fm`` the ``sigma`` argument
is ``σ_min``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from sbflow.matching import Matcher
from sbflow.paths import BrownianBridgePath, LinearPath, PathSample, TargetPath, VPPath

__all__ = ["METHODS", "MethodSpec", "get_method"]


@dataclass
class MethodSpec:
    """A named method ready to train: its matcher and what the model must predict.

    Attributes:
        name: Method name (a key of :data:`METHODS`).
        matcher: Couples a batch and samples the path (:class:`~sbflow.matching.Matcher`).
        needs_score: Whether the model needs a score head (two-head model, :func:`bridge_loss`).
        sigma: Noise of the path (the Brownian diffusion for ``sb-cfm``; ``σ_min`` for ``fm``).
        gaussian_source: Whether the source must be a standard Gaussian (``fm``).
        description: One line for ``--help`` texts and logs.

    Example:
        >>> spec = get_method("ot-cfm")
        >>> spec.needs_score, spec.sigma
        (False, 0.0)
    """

    name: str
    matcher: Matcher
    needs_score: bool
    sigma: float
    gaussian_source: bool
    description: str

    def loss(self, model: Callable[..., Any], sample: PathSample) -> torch.Tensor:
        """The training loss: :func:`bridge_loss` with a score head, else flow matching.

        Example:
            >>> spec = get_method("i-cfm")
            >>> s = spec.matcher.sample(torch.zeros(4, 2), torch.ones(4, 2))
            >>> spec.loss(lambda x, t: torch.ones_like(x), s).item()
            0.0
        """
        from sbflow.losses import bridge_loss, flow_matching_loss

        return bridge_loss(model, sample) if self.needs_score else flow_matching_loss(model, sample)


def _solver(default: str, coupling: Any) -> Any:
    return default if coupling is None else coupling


def _i_cfm(sigma: float | None, coupling: Any, options: dict[str, Any]) -> MethodSpec:
    s = 0.0 if sigma is None else float(sigma)
    m = Matcher(_solver("independent", coupling), LinearPath(s), **options)
    return MethodSpec("i-cfm", m, False, s, False, METHODS["i-cfm"])


def _ot_cfm(sigma: float | None, coupling: Any, options: dict[str, Any]) -> MethodSpec:
    s = 0.0 if sigma is None else float(sigma)
    m = Matcher(_solver("exact", coupling), LinearPath(s), **options)
    return MethodSpec("ot-cfm", m, False, s, False, METHODS["ot-cfm"])


def _sb_cfm(sigma: float | None, coupling: Any, options: dict[str, Any]) -> MethodSpec:
    from sbflow.couplings import sigma_to_reg

    s = 0.5 if sigma is None else float(sigma)
    path = BrownianBridgePath(s)
    solver = _solver("sinkhorn", coupling)
    if isinstance(solver, str) and solver.lower() in ("sinkhorn", "unbalanced", "partial"):
        if "reg" not in options and "rel_reg" not in options:
            options = {**options, "reg": sigma_to_reg(s)}
    m = Matcher(solver, path, **options)
    return MethodSpec("sb-cfm", m, True, s, False, METHODS["sb-cfm"])


def _fm(sigma: float | None, coupling: Any, options: dict[str, Any]) -> MethodSpec:
    s = 1e-3 if sigma is None else float(sigma)
    m = Matcher(_solver("independent", coupling), TargetPath(s), **options)
    return MethodSpec("fm", m, False, s, True, METHODS["fm"])


def _vp_cfm(sigma: float | None, coupling: Any, options: dict[str, Any]) -> MethodSpec:
    s = 0.0 if sigma is None else float(sigma)
    m = Matcher(_solver("independent", coupling), VPPath(s), **options)
    return MethodSpec("vp-cfm", m, False, s, False, METHODS["vp-cfm"])


METHODS: dict[str, str] = {
    "i-cfm": "independent pairs, straight paths (I-CFM)",
    "ot-cfm": "exact-OT minibatch pairs, straight paths (OT-CFM)",
    "sb-cfm": "entropic-OT pairs (reg = 2σ²), Brownian bridges, flow + score ([SF]2M / SB-CFM)",
    "fm": "flow matching from a standard Gaussian source (Lipman et al.)",
    "vp-cfm": "independent pairs, trigonometric variance-preserving paths",
}
"""Method names and one-line descriptions, as accepted by :func:`get_method`."""

_BUILDERS: dict[str, Callable[[float | None, Any, dict[str, Any]], MethodSpec]] = {
    "i-cfm": _i_cfm,
    "ot-cfm": _ot_cfm,
    "sb-cfm": _sb_cfm,
    "fm": _fm,
    "vp-cfm": _vp_cfm,
}


def get_method(
    name: str, *, sigma: float | None = None, coupling: Any = None, **coupling_options: Any
) -> MethodSpec:
    """Build a named method (see the table in the module docstring).

    Args:
        name: One of :data:`METHODS` (case-insensitive; ``_`` is read as ``-``).
        sigma: Path noise (method default if ``None``).
        coupling: Overrides the method's coupling: a solver name or
            :class:`~sbflow.couplings.CouplingSolver` instance.
        **coupling_options: Options of the coupling solver (e.g. ``reg``, ``max_iter``).

    Raises:
        ValueError: For an unknown name (the message lists the valid ones).

    Example:
        >>> spec = get_method("sb-cfm", sigma=0.5)
        >>> spec.needs_score, spec.matcher.solver.reg
        (True, 0.5)
    """
    if not isinstance(name, str):
        raise TypeError(f"method name must be a string; got {type(name).__name__}.")
    key = name.strip().lower().replace("_", "-")
    if key not in _BUILDERS:
        raise ValueError(f"unknown method {name!r}; choose one of {sorted(_BUILDERS)}.")
    return _BUILDERS[key](sigma, coupling, dict(coupling_options))
