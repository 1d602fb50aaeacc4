"""sbflow: optimal-transport couplings and Schrödinger bridges between sample sets."""

__version__ = "0.1.0"

__all__ = ["__version__"]
