"""Couplings between two sample sets: independent, exact OT, entropic, unbalanced, partial.

Every solver is a :class:`CouplingSolver` called as ``solver(x0, x1, a=None, b=None, *,
y0=None, y1=None)`` and returns a :class:`Coupling`. :func:`couple` does both in one call.

Example:
    >>> import torch
    >>> from sbflow.couplings import couple
    >>> g = torch.Generator().manual_seed(0)
    >>> x0, x1 = torch.randn(8, 2, generator=g), torch.randn(8, 2, generator=g)
    >>> c = couple(x0, x1, method="exact")
    >>> i, j = c.pairs()
    >>> sorted(j.tolist()) == list(range(8))
    True
"""

from sbflow.couplings._keops import keops_available
from sbflow.couplings.api import SOLVERS, couple, get_solver
from sbflow.couplings.base import ConvergenceError, ConvergenceWarning, Coupling, CouplingSolver
from sbflow.couplings.cost import cost_scale, sq_euclidean
from sbflow.couplings.exact import ExactOT
from sbflow.couplings.independent import IndependentCoupling
from sbflow.couplings.partial import PartialOT
from sbflow.couplings.regularization import (
    blur_to_reg,
    eps_half_to_reg,
    reg_to_blur,
    reg_to_eps_half,
    reg_to_sigma,
    sigma_to_reg,
)
from sbflow.couplings.sinkhorn import Sinkhorn, UnbalancedSinkhorn

__all__ = [
    "SOLVERS",
    "ConvergenceError",
    "ConvergenceWarning",
    "Coupling",
    "CouplingSolver",
    "ExactOT",
    "IndependentCoupling",
    "PartialOT",
    "Sinkhorn",
    "UnbalancedSinkhorn",
    "blur_to_reg",
    "cost_scale",
    "couple",
    "eps_half_to_reg",
    "get_solver",
    "keops_available",
    "reg_to_blur",
    "reg_to_eps_half",
    "reg_to_sigma",
    "sigma_to_reg",
    "sq_euclidean",
]
