"""Conversions between the entropic-regularisation conventions in use.

sbflow's ``reg`` multiplies the entropy against the cost ``C = ‖x − y‖²``. Three other
conventions are common:

* a Brownian reference ``dX = σ dW`` over unit time: the Schrödinger bridge between the
  marginals is entropic OT with ``reg = 2σ²`` (the Brownian transition density is
  ``∝ exp(−‖x − y‖² / (2σ²))``);
* GeomLoss (``p=2``) uses the cost ``‖x − y‖²/2`` and ``ε = blur²``: since
  ``min <C/2, P> + ε·KL = ½·min <C, P> + 2ε·KL``, the same plan has ``reg = 2·blur²``, so
  ``blur = σ``;
* the EOT literature often writes ``ε`` on ``½‖x − y‖²``; likewise ``reg = 2ε`` (and
  ``ε = σ²`` for the Brownian bridge).

Dual potentials scale with the cost: potentials for ``C/2`` are half of ours.
"""

from __future__ import annotations

import math

from sbflow._checks import check_positive

__all__ = [
    "blur_to_reg",
    "eps_half_to_reg",
    "reg_to_blur",
    "reg_to_eps_half",
    "reg_to_sigma",
    "sigma_to_reg",
]


def sigma_to_reg(sigma: float) -> float:
    """``reg = 2σ²`` for a Brownian reference ``dX = σ dW`` on unit time.

    Example:
        >>> sigma_to_reg(0.5)
        0.5
    """
    return 2.0 * check_positive(sigma, "sigma") ** 2


def reg_to_sigma(reg: float) -> float:
    """``σ = sqrt(reg / 2)``, the inverse of :func:`sigma_to_reg`.

    Example:
        >>> reg_to_sigma(0.5)
        0.5
    """
    return math.sqrt(check_positive(reg, "reg") / 2.0)


def blur_to_reg(blur: float) -> float:
    """``reg = 2·blur²`` for a GeomLoss ``SamplesLoss("sinkhorn", p=2, blur=blur)`` plan.

    Example:
        >>> blur_to_reg(1.0)
        2.0
    """
    return 2.0 * check_positive(blur, "blur") ** 2


def reg_to_blur(reg: float) -> float:
    """``blur = sqrt(reg / 2)``, the inverse of :func:`blur_to_reg`.

    Example:
        >>> reg_to_blur(2.0)
        1.0
    """
    return math.sqrt(check_positive(reg, "reg") / 2.0)


def eps_half_to_reg(eps: float) -> float:
    """``reg = 2ε`` for ``ε`` applied to the half cost ``½‖x − y‖²``.

    Example:
        >>> eps_half_to_reg(0.25)
        0.5
    """
    return 2.0 * check_positive(eps, "eps")


def reg_to_eps_half(reg: float) -> float:
    """``ε = reg / 2`` on the half cost, the inverse of :func:`eps_half_to_reg`.

    Example:
        >>> reg_to_eps_half(0.5)
        0.25
    """
    return check_positive(reg, "reg") / 2.0
