"""Methods as objects, with a public registry.

=========  ==================================  ===========================  ======  ===========
name       coupling                            path                         heads   default σ
=========  ==================================  ===========================  ======  ===========
i-cfm      independent                         ``LinearPath(σ)``            v       0
ot-cfm     exact OT (``ExactOT``)              ``LinearPath(σ)``            v       0
sb-cfm     entropic OT, ``reg = 2σ²``          ``BrownianBridgePath(σ)``    v, s    0.5 s_data/√T
fm         independent, Gaussian source        ``TargetPath(σ_min = σ)``    v       1e-3 (σ_min)
vp-cfm     independent                         ``VPPath(σ)``                v       0
imf        SB-CFM's, then simulated (rounds)   ``BrownianBridgePath(σ)``    f, b    0.5 s_data/√T
light-sb   none (fits the entropic plan)       Gaussian-mixture potential   f       0.5 s_data/√T
=========  ==================================  ===========================  ======  ===========

σ is in the data's units per unit of the user's time (``s_data``: pooled standard deviation
of the data; ``T = t_K − t_0``). One module per method; a new method is a
:class:`Method` subclass plus :func:`register` (see the how-to *Write your own method*).

Example:
    >>> from sbflow.methods import get_method, method_names
    >>> "ot-cfm" in method_names(), get_method("ot-cfm").sigma
    (True, 0.0)
"""

from sbflow.methods._training import Shaped, TrainingRun
from sbflow.methods.base import Method, Problem
from sbflow.methods.registry import METHODS, get_method, get_method_class, method_names, register

# isort: off
# Built-in methods register themselves on import, in this order (the CLI lists them so).
from sbflow.methods import i_cfm, ot_cfm, sb_cfm, fm, vp_cfm  # noqa: F401
from sbflow.methods import imf  # noqa: F401
from sbflow.methods import light_sb  # noqa: F401
# isort: on

MethodSpec = Method
"""Former name of :class:`Method` (kept so that old imports work)."""

__all__ = [
    "METHODS",
    "Method",
    "MethodSpec",
    "Problem",
    "Shaped",
    "TrainingRun",
    "get_method",
    "get_method_class",
    "method_names",
    "register",
]
