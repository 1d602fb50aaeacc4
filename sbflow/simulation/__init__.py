"""Simulation of learned flows and bridges: ODE, SDE and CNF log-likelihood.

* :func:`integrate_ode` — probability-flow / flow-matching ODE ``dx = v dt`` (torchdiffeq).
* :func:`integrate_sde` — bridge SDE ``dx = [v + (g²/2)·score] dt + g dW`` forward, and its
  time reversal backward (torchsde).
* :func:`log_likelihood` — ``log p_1(x)`` of the flow pushing a base density forward.
"""

from sbflow.simulation.likelihood import divergence, log_likelihood
from sbflow.simulation.ode import ODEResult, integrate_ode
from sbflow.simulation.sde import BridgeSDE, SDEResult, integrate_sde

__all__ = [
    "BridgeSDE",
    "ODEResult",
    "SDEResult",
    "divergence",
    "integrate_ode",
    "integrate_sde",
    "log_likelihood",
]
