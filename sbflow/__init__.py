"""sbflow: optimal-transport couplings and Schrödinger bridges between sample sets.

The top level holds the one-call entry points; each stage of the pipeline lives in its own
subpackage:

- :mod:`sbflow.couplings` — exact, entropic, unbalanced, partial and label-aware OT solvers;
- :mod:`sbflow.pairs`, :mod:`sbflow.paths`, :mod:`sbflow.matching`, :mod:`sbflow.losses` —
  where pairs come from, probability paths and flow/score matching targets over them;
- :mod:`sbflow.methods` — methods as objects in a public registry (I-CFM, OT-CFM, SB-CFM, …);
- :mod:`sbflow.models` — networks, registered by name so that bridge files rebuild them;
- :mod:`sbflow.bridge`, :mod:`sbflow.fitting` — the :class:`Bridge` type and :func:`fit`;
- :mod:`sbflow.simulation` — ODE/SDE integration and exact CNF log-likelihoods;
- :mod:`sbflow.groundtruth` — closed forms to check against: the Gaussian Schrödinger bridge
  and the Gaussian-mixture entropic-OT benchmark; :mod:`sbflow.lightsb` — the light solver;
- :mod:`sbflow.estimators` — :class:`~sbflow.estimators.OTMap`, a scikit-learn style map;
- :mod:`sbflow.data`, :mod:`sbflow.metrics`, :mod:`sbflow.plotting`, :mod:`sbflow.training`,
  :mod:`sbflow.cli`.

Example:
    >>> import torch, sbflow
    >>> g = torch.Generator().manual_seed(0)
    >>> x0, x1 = torch.randn(64, 2, generator=g), torch.randn(64, 2, generator=g) + 3
    >>> coupling = sbflow.couple(x0, x1, method="exact")
    >>> coupling.is_permutation
    True
"""

from sbflow.bridge import Bridge, fit, leave_one_out, load
from sbflow.couplings import Coupling, couple

__version__ = "0.2.0"

__all__ = ["Bridge", "Coupling", "__version__", "couple", "fit", "leave_one_out", "load"]
