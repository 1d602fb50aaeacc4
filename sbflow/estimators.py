"""A scikit-learn style transport map: ``OTMap().fit(X0, X1).transform(X)``.

For users of POT's domain-adaptation classes (``ot.da.EMDTransport``,
``ot.da.SinkhornTransport``): :class:`OTMap` couples (a random subset of) two sample sets with
:func:`sbflow.couplings.couple` and maps any point with the coupling's out-of-sample map
(:mod:`sbflow.couplings.maps`). It follows the scikit-learn estimator conventions
(constructor arguments stored as given, ``get_params``/``set_params``, fitted attributes with
a trailing underscore), so ``sklearn.base.clone`` and ``sklearn.pipeline.Pipeline`` accept it;
when scikit-learn is installed it derives from ``BaseEstimator`` and ``TransformerMixin``,
and without scikit-learn it works the same.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch

from sbflow._checks import as_samples, check_positive_int

__all__ = ["OTMap"]

_METHODS = ("exact", "sinkhorn")


class _Params:
    """``get_params``/``set_params`` in the scikit-learn convention (no scikit-learn needed)."""

    @classmethod
    def _get_param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return sorted(p.name for p in sig.parameters.values() if p.name != "self")

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor arguments as a dict (``deep`` is accepted for compatibility)."""
        return {name: getattr(self, name) for name in self._get_param_names()}

    def set_params(self, **params: Any) -> _Params:
        """Set constructor arguments by name and return the estimator."""
        valid = self._get_param_names()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(
                    f"Invalid parameter {name!r} for {type(self).__name__}; "
                    f"valid parameters are {valid}."
                )
            setattr(self, name, value)
        return self

    def fit_transform(self, X: Any, y: Any = None, **fit_params: Any) -> Any:
        """``fit(X, y).transform(X)``."""
        return self.fit(X, y, **fit_params).transform(X)  # type: ignore[attr-defined]


try:  # derive from scikit-learn's bases where available, for its tags and HTML repr
    from sklearn.base import BaseEstimator, TransformerMixin

    _BASES: tuple[type, ...] = (TransformerMixin, BaseEstimator)
except ImportError:  # pragma: no cover - exercised only without scikit-learn
    _BASES = (_Params,)


class OTMap(*_BASES):  # type: ignore[misc]
    """Optimal-transport map between two sample sets, fitted on at most ``max_samples`` points.

    ``fit(X0, X1)`` draws up to ``max_samples`` points of each set (without replacement,
    seeded by ``seed``) and couples them with ``method``: ``"exact"`` (unregularised OT) or
    ``"sinkhorn"`` (entropic OT with ``reg`` in cost units, ``‖x − y‖²``; ``reg=None`` uses
    the solver's relative default). ``transform(X)`` maps any source points with
    :meth:`Coupling.transform <sbflow.couplings.Coupling.transform>`:

    * exact plans: the barycentric map of the coupled points, moved to a new point by the
      displacement of its nearest coupled source, ``T(x) = x + B(x0_k) − x0_k`` (POT's
      ``ot.da`` convention);
    * entropic plans: the entropic map ``T(x) = Σ_j w_j(x) x1_j`` with
      ``w_j(x) ∝ exp((g_j − ‖x − x1_j‖²)/reg)`` from the dual potentials, defined everywhere.

    ``inverse_transform(Y)`` maps target points back. NumPy in gives NumPy out.

    Args:
        method: ``"exact"`` or ``"sinkhorn"``.
        reg: Entropic regularisation for ``"sinkhorn"`` (``2σ²`` for a Brownian reference
            ``σ``); ``None`` for the solver's relative default.
        max_samples: Fit on at most this many points of each set (the coupling is
            ``O(max_samples²)`` in memory); ``None`` uses all points.
        kind: The map: ``"auto"``, ``"barycentric"`` or ``"entropic"`` (see
            :mod:`sbflow.couplings.maps`).
        seed: Seed of the subsampling.

    Attributes:
        coupling_: The fitted :class:`~sbflow.couplings.Coupling` (its ``support`` holds the
            coupled points).

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> X0, X1 = rng.normal(size=(50, 2)), rng.normal(size=(60, 2)) + 5
        >>> m = OTMap(max_samples=40).fit(X0, X1)
        >>> Y = m.transform(X0)
        >>> type(Y).__name__, Y.shape, bool(abs(Y.mean(0) - 5).max() < 0.5)
        ('ndarray', (50, 2), True)
        >>> m.get_params()["max_samples"]
        40
    """

    def __init__(
        self,
        method: str = "exact",
        reg: float | None = None,
        max_samples: int | None = 2000,
        kind: str = "auto",
        seed: int = 0,
    ) -> None:
        self.method = method
        self.reg = reg
        self.max_samples = max_samples
        self.kind = kind
        self.seed = seed

    def fit(self, X0: Any, X1: Any = None) -> OTMap:
        """Couple (subsets of) the sources ``X0`` ``(n, *dims)`` and targets ``X1``.

        ``X1`` is the second positional argument so that ``Pipeline.fit(X0, X1)`` passes it.
        """
        if X1 is None:
            raise ValueError("OTMap.fit needs the targets: call fit(X0, X1).")
        if self.method not in _METHODS:
            raise ValueError(f"method must be one of {_METHODS}; got {self.method!r}.")
        if self.method == "exact" and self.reg is not None:
            raise ValueError("reg applies to method='sinkhorn' only; drop it or change method.")
        from sbflow.couplings import couple

        g = torch.Generator().manual_seed(int(self.seed))
        x0 = self._subsample(as_samples(X0, "X0"), g)
        x1 = self._subsample(as_samples(X1, "X1"), g)
        options = {} if self.method == "exact" or self.reg is None else {"reg": self.reg}
        self.coupling_ = couple(x0, x1, method=self.method, **options)
        self.n_features_in_ = int(x0[0].numel())
        return self

    def transform(self, X: Any) -> Any:
        """Map source points ``X`` ``(k, *dims)``; NumPy in gives NumPy out."""
        return self._fitted().transform(X, kind=self.kind)

    def inverse_transform(self, Y: Any) -> Any:
        """Map target points ``Y`` ``(k, *dims)`` back to the source side."""
        return self._fitted().inverse_transform(Y, kind=self.kind)

    def _fitted(self):
        coupling = getattr(self, "coupling_", None)
        if coupling is None:
            raise ValueError(f"this {type(self).__name__} is not fitted yet; call fit(X0, X1).")
        return coupling

    def _subsample(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        if self.max_samples is None:
            return x
        k = check_positive_int(self.max_samples, "max_samples")
        if x.shape[0] <= k:
            return x
        return x[torch.randperm(x.shape[0], generator=g)[:k].to(x.device)]
