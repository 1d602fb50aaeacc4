"""The coupling result (:class:`Coupling`) and the solver interface (:class:`CouplingSolver`).

A solver is called on two sample sets ``x0`` of shape ``(n, *dims)`` and ``x1`` of shape
``(m, *dims)``, optional weights ``a`` and ``b`` and optional class labels ``y0`` and ``y1``.
It returns a :class:`Coupling`: a transport plan ``P`` (stored sparse, dense or lazily) with
the numbers a caller needs to trust it (cost, convergence, marginal error).

Conventions (see the concepts page of the docs):

* the cost is the squared Euclidean distance ``C_ij = ‖x0_i − x1_j‖²`` between flattened
  samples; entropic regularisation ``reg`` is in the same units;
* ``marginal_error`` is the relative L1 violation of the plan's optimality conditions on the
  marginals, ``(‖P1 − a‖₁ + ‖Pᵀ1 − b‖₁) / sum(a)`` for balanced problems;
* non-convergence is never silent: the solver warns with :class:`ConvergenceWarning` and sets
  ``converged=False``, or raises :class:`ConvergenceError` when built with ``strict=True``.
"""

from __future__ import annotations

import math
import warnings
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np
import torch

from sbflow._checks import as_samples, as_weights, check_same_feature_shape
from sbflow._memory import require_memory
from sbflow.couplings._sampling import sample_categorical
from sbflow.couplings._stores import DenseStore, PlanStore, SparseStore
from sbflow.couplings.cost import check_cost_range

__all__ = ["ConvergenceError", "ConvergenceWarning", "Coupling", "CouplingSolver"]


class ConvergenceWarning(UserWarning):
    """A solver stopped before meeting its tolerance; the returned coupling is approximate.

    Example:
        >>> issubclass(ConvergenceWarning, UserWarning)
        True
    """


class ConvergenceError(RuntimeError):
    """A solver built with ``strict=True`` stopped before meeting its tolerance.

    Example:
        >>> issubclass(ConvergenceError, RuntimeError)
        True
    """


_MODES = ("rows", "plan")


class Coupling:
    """A transport plan between ``n`` sources and ``m`` targets, with its diagnostics.

    Attributes:
        n: Number of source samples.
        m: Number of target samples.
        a: Source weights ``(n,)`` the solver was given (after defaults).
        b: Target weights ``(m,)`` the solver was given (after defaults and, for label-aware
            balanced problems, the per-class rescaling).
        method: Name of the solver that produced the plan.
        cost: Transport cost ``<C, P> = sum_ij P_ij ‖x0_i − x1_j‖²``.
        reg: Entropic regularisation in cost units, or ``None`` for unregularised solvers.
        converged: Whether the solver met its tolerance.
        n_iter: Iterations used (Sinkhorn sweeps; ``0`` for direct solvers).
        marginal_error: Relative L1 error on the marginals (or on the optimality conditions of
            unbalanced problems).
        potentials: Dual potentials ``(f, g)`` in cost units where the solver has them.
        is_permutation: Whether the plan is ``diag(a)`` composed with a permutation, so that
            every source has exactly one target.
        backend: Where the solver ran (``"scipy"``, ``"pot"``, ``"torch"``, ``"keops"``, ...).

    Example:
        >>> from sbflow.couplings import couple
        >>> c = couple(torch.zeros(3, 2), torch.ones(3, 2), method="exact")
        >>> c.is_permutation, round(c.cost, 6)
        (True, 2.0)
        >>> i, j = c.pairs()
        >>> i.tolist()
        [0, 1, 2]
    """

    def __init__(
        self,
        store: PlanStore,
        *,
        a: torch.Tensor,
        b: torch.Tensor,
        method: str,
        cost: float,
        reg: float | None = None,
        converged: bool = True,
        n_iter: int = 0,
        marginal_error: float = 0.0,
        potentials: tuple[torch.Tensor, torch.Tensor] | None = None,
        is_permutation: bool = False,
        backend: str = "torch",
    ) -> None:
        self._store = store
        self.n, self.m = store.n, store.m
        self.a, self.b = a, b
        self.method = method
        self.cost = float(cost)
        self.reg = None if reg is None else float(reg)
        self.converged = bool(converged)
        self.n_iter = int(n_iter)
        self.marginal_error = float(marginal_error)
        self.potentials = potentials
        self.is_permutation = bool(is_permutation)
        self.backend = backend

    @property
    def dtype(self) -> torch.dtype:
        """Floating dtype of the plan and weights."""
        return self.a.dtype

    @property
    def device(self) -> torch.device:
        """Device of the plan, weights and index tensors."""
        return self.a.device

    @property
    def permutation(self) -> torch.Tensor | None:
        """For a permutation plan, the target index of each source ``(n,)``; else ``None``.

        Example:
            >>> from sbflow.couplings import couple
            >>> couple(torch.tensor([[0.0], [1.0]]), torch.tensor([[1.0], [0.0]])).permutation
            tensor([1, 0])
        """
        if not self.is_permutation:
            return None
        store = self._store
        assert isinstance(store, SparseStore)
        return store.c

    def row_mass(self) -> torch.Tensor:
        """Row sums ``P 1`` of shape ``(n,)`` (equal to ``a`` for balanced plans).

        Example:
            >>> from sbflow.couplings import couple
            >>> couple(torch.zeros(2, 1), torch.ones(2, 1)).row_mass().tolist()
            [0.5, 0.5]
        """
        return self._store.row_mass()

    def col_mass(self) -> torch.Tensor:
        """Column sums ``Pᵀ 1`` of shape ``(m,)`` (equal to ``b`` for balanced plans).

        Example:
            >>> from sbflow.couplings import couple
            >>> couple(torch.zeros(2, 1), torch.ones(2, 1)).col_mass().tolist()
            [0.5, 0.5]
        """
        return self._store.col_mass()

    def plan(self, *, max_bytes: int = 2**30) -> torch.Tensor:
        """The dense plan ``P`` of shape ``(n, m)``.

        Args:
            max_bytes: Refuse (``ValueError``) when the dense plan would need more memory.

        Raises:
            ValueError: If the plan needs more than ``max_bytes``.
            sbflow._memory.InsufficientMemoryError: If it would not fit in free memory.

        Example:
            >>> from sbflow.couplings import couple
            >>> couple(torch.zeros(2, 1), torch.ones(2, 1)).plan().sum().item()
            1.0
        """
        need = self.n * self.m * (torch.finfo(self.dtype).bits // 8)
        what = f"the dense ({self.n}, {self.m}) plan"
        alternatives = (
            "Use pairs() or barycentric_projection(), which never build it (or sparse() for "
            "a plan from exact or partial OT)"
        )
        if need > max_bytes:
            raise ValueError(
                f"{what} needs {need / 2**20:.0f} MiB, more than the limit of "
                f"{max_bytes / 2**20:.0f} MiB (max_bytes). {alternatives}, or allow more "
                f"memory through max_bytes."
            )
        require_memory(need, what=what, hint=f"{alternatives}.", device=self.device)
        return self._store.to_dense()

    def sparse(self) -> torch.Tensor:
        """The plan as a ``torch.sparse_coo_tensor`` holding its nonzero entries.

        Example:
            >>> from sbflow.couplings import couple
            >>> couple(torch.zeros(3, 1), torch.ones(3, 1)).sparse()._nnz()
            3
        """
        r, c, v = self._store.coo()
        idx = torch.stack([r, c])
        return torch.sparse_coo_tensor(idx, v, (self.n, self.m), check_invariants=True).coalesce()

    def pairs(
        self,
        n_pairs: int | None = None,
        *,
        mode: str = "rows",
        replace: bool = True,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Index pairs ``(i, j)`` drawn from the plan.

        * ``mode="rows"`` (default): one target per source, ``j ~ P[i, :] / (P1)_i``. With
          ``n_pairs=None`` every source with positive plan mass appears once, in order (for a
          permutation this is ``(arange(n), perm)``, with no randomness; for the independent
          coupling of a uniform square batch it is ``(arange(n), randperm(n))``). With
          ``n_pairs`` given, sources are first drawn ∝ ``P1``, with or without replacement.
        * ``mode="plan"``: ``n_pairs`` (default ``n``) entries drawn from the whole plan ∝
          ``P_ij``, with replacement or (``replace=False``) as distinct entries.

        Args:
            n_pairs: Number of pairs; see above.
            mode: ``"rows"`` or ``"plan"``.
            replace: Draw with replacement (see above).
            generator: Seeds every random draw; same seed, same pairs.

        Returns:
            Two ``long`` tensors on the plan's device.

        Example:
            >>> from sbflow.couplings import couple
            >>> c = couple(torch.zeros(4, 1), torch.ones(4, 1), method="sinkhorn", reg=1.0)
            >>> i, j = c.pairs(generator=torch.Generator().manual_seed(0))
            >>> i.tolist(), j.shape
            ([0, 1, 2, 3], torch.Size([4]))
        """
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}; got {mode!r}.")
        if n_pairs is not None and (int(n_pairs) != n_pairs or n_pairs < 0):
            raise ValueError(f"n_pairs must be a non-negative integer or None; got {n_pairs!r}.")
        store = self._store
        if mode == "rows":
            if n_pairs is None:
                special = store.default_row_pairs(generator)
                if special is not None:
                    return special
                if self.is_permutation:
                    perm = self.permutation
                    assert perm is not None
                    return torch.arange(self.n, device=self.device), perm.clone()
                src = torch.nonzero(store.row_mass() > 0, as_tuple=True)[0]
            else:
                src = sample_categorical(
                    store.row_mass(), int(n_pairs), replace=replace, generator=generator
                )
            return src, store.sample_targets(src, generator)
        k = self.n if n_pairs is None else int(n_pairs)
        if replace:
            src = sample_categorical(store.row_mass(), k, replace=True, generator=generator)
            return src, store.sample_targets(src, generator)
        return store.sample_distinct(k, generator)

    def barycentric_projection(self, x1: Any) -> torch.Tensor:
        """Map each source to the plan-weighted mean of its targets.

        ``T(x0_i) = sum_j P_ij x1_j / sum_j P_ij``. Sources with no plan mass (possible for
        partial and unbalanced plans) get NaN.

        Args:
            x1: Targets ``(m, *dims)`` (the ``x1`` the coupling was computed on, or any
                features of the targets).

        Returns:
            ``(n, *dims)`` tensor.

        Example:
            >>> from sbflow.couplings import couple
            >>> x1 = torch.tensor([[1.0], [2.0]])
            >>> couple(torch.tensor([[2.0], [1.0]]), x1).barycentric_projection(x1).tolist()
            [[2.0], [1.0]]
        """
        y = as_samples(x1, "x1", dtype=self.dtype, device=self.device)
        if y.shape[0] != self.m:
            raise ValueError(
                f"x1 has {y.shape[0]} samples but the coupling has {self.m} targets; pass the "
                f"targets the coupling was computed on (or features of them, one row each)."
            )
        flat = y.reshape(self.m, -1)
        mass = self._store.row_mass()
        out = self._store.matmul(flat) / mass[:, None]
        out[mass <= 0] = float("nan")
        return out.reshape(self.n, *y.shape[1:])

    def __repr__(self) -> str:
        reg = "" if self.reg is None else f", reg={self.reg:.4g}"
        return (
            f"Coupling(method={self.method!r}, n={self.n}, m={self.m}, cost={self.cost:.6g}"
            f"{reg}, converged={self.converged}, n_iter={self.n_iter}, "
            f"marginal_error={self.marginal_error:.2e}, is_permutation={self.is_permutation}, "
            f"backend={self.backend!r})"
        )

    # -- out-of-sample maps (sbflow.couplings.maps) ----------------------------------------
    support: tuple[torch.Tensor, torch.Tensor] | None = None
    """The coupled points ``(x0, x1)``, attached by the solver that computed the plan."""

    def transform(self, x: Any, *, kind: str = "auto", **options: Any) -> Any:
        """Map new source points to the target side; see :func:`sbflow.couplings.maps.transform`.

        Barycentric map with a nearest-neighbour extension (any plan), or the entropic map
        from the potentials (``kind="auto"`` picks it for entropic plans).

        Example:
            >>> from sbflow.couplings import couple
            >>> c = couple(torch.tensor([[0.0], [1.0]]), torch.tensor([[5.0], [6.0]]))
            >>> c.transform(torch.tensor([[0.0], [3.0]])).tolist()
            [[5.0], [8.0]]
        """
        from sbflow.couplings.maps import transform

        return transform(self, x, **self._support_options(options), kind=kind)

    def inverse_transform(self, y: Any, *, kind: str = "auto", **options: Any) -> Any:
        """Map new target points back; see :func:`sbflow.couplings.maps.inverse_transform`.

        Example:
            >>> from sbflow.couplings import couple
            >>> c = couple(torch.tensor([[0.0], [1.0]]), torch.tensor([[5.0], [6.0]]))
            >>> c.inverse_transform(torch.tensor([[6.0]])).tolist()
            [[1.0]]
        """
        from sbflow.couplings.maps import inverse_transform

        return inverse_transform(self, y, **self._support_options(options), kind=kind)

    def _support_options(self, options: dict[str, Any]) -> dict[str, Any]:
        if self.support is not None:
            options.setdefault("x0", self.support[0])
            options.setdefault("x1", self.support[1])
        if "x0" not in options or "x1" not in options:
            raise ValueError(
                "this coupling does not carry its points; pass x0=... and x1=... (the samples "
                "it was computed on)."
            )
        return options


# Relative tolerance on sum(a) == sum(b): loose enough for weights normalised in float32.
_MASS_RTOL = 1e-4


class CouplingSolver(ABC):
    """Interface of every coupling solver: ``solver(x0, x1, a, b, y0=..., y1=...)``.

    The base class validates and flattens the inputs, fills in default weights, and handles
    class labels by solving one problem per class and assembling the blocks. Subclasses
    implement :meth:`_solve` on flattened ``(n, d)`` tensors.

    Weights: ``None`` means uniform with total mass one. Balanced solvers require equal total
    masses when both ``a`` and ``b`` are given (they do not silently renormalise); if only one
    is given, the other is uniform with the same total. Unbalanced and partial solvers take
    the weights as given.

    Dtype: the common floating dtype of ``x0`` and ``x1`` (float16/bfloat16 are computed and
    returned in float32); the device is the inputs' device.

    Couplings are not differentiable: inputs that require gradients are detached (the plan
    of exact OT is piecewise constant in the samples; use a loss on the pairs instead).

    Guarantees (see the "Errors and guarantees" page): inputs, options and the range of the
    costs are checked before solving, the memory of every dense ``(n, m)`` allocation
    against what is free, and a plan with NaN or infinite entries is never returned
    (:class:`ConvergenceError`, whether or not the solver is ``strict``).

    Labels: with ``y0`` and ``y1``, pairs only form within a class. Every class must occur on
    both sides. Each class keeps the source mass it has in ``a``; for balanced solvers the
    target weights of the class are rescaled to that mass (so a class that is 30 % of the
    sources and 50 % of the targets still transports its 30 %), and ``Coupling.b`` reports the
    rescaled weights.

    Example:
        >>> from sbflow.couplings import ExactOT
        >>> ExactOT()(torch.zeros(2, 3), torch.ones(2, 3)).n
        2
    """

    name: ClassVar[str] = "solver"
    balanced: ClassVar[bool] = True
    #: Whether a solve spends its time in compiled code that releases the GIL (so that two
    #: prefetch threads overlap) rather than in a Python loop of small torch ops.
    releases_gil: ClassVar[bool] = True
    strict: bool = False

    def describe(self) -> dict[str, Any]:
        """The solver as ``{"name": ..., <constructor argument>: value, ...}`` (JSON-like).

        Read from the constructor's signature and the attributes of the same name, so two
        solvers built alike describe themselves alike in any process (unlike ``repr``, which
        holds a memory address). Run metadata and saved files use it.

        Example:
            >>> from sbflow.couplings import Sinkhorn
            >>> Sinkhorn(reg=0.5).describe()["reg"]
            0.5
        """
        import inspect

        out: dict[str, Any] = {"name": self.name}
        params = [  # subclasses that pass **kwargs on: their bases' arguments count too
            p
            for cls in type(self).__mro__
            if "__init__" in vars(cls) and cls is not object
            for p in inspect.signature(vars(cls)["__init__"]).parameters.values()
        ]
        for p in params:
            if p.name in out or p.name == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                continue
            value = getattr(self, p.name, p.default)
            if value is inspect.Parameter.empty:
                continue
            if not (value is None or isinstance(value, (bool, int, float, str))):
                value = repr(value) if type(value).__repr__ is not object.__repr__ else None
            out[p.name] = value
        return out

    def __call__(
        self,
        x0: Any,
        x1: Any,
        a: Any = None,
        b: Any = None,
        *,
        y0: Any = None,
        y1: Any = None,
    ) -> Coupling:
        """Couple ``x0`` ``(n, *dims)`` with ``x1`` ``(m, *dims)``; see the class docstring."""
        # couplings are not differentiable: gradients never flow through a plan
        s0 = as_samples(x0, "x0").detach()
        s1 = as_samples(x1, "x1").detach()
        dtype = torch.promote_types(s0.dtype, s1.dtype)
        if torch.finfo(dtype).bits < 32:
            dtype = torch.float32
        s0, s1 = s0.to(dtype), s1.to(dtype)
        check_same_feature_shape(s0, s1)
        n, m = s0.shape[0], s1.shape[0]
        f0, f1 = s0.reshape(n, -1), s1.reshape(m, -1)
        cost_dtype = self._cost_dtype(dtype)
        top = check_cost_range(f0, f1, cost_dtype)
        wa, wb = self._weights(a, b, n, m, f0)
        mass = max(float(wa.sum()), float(wb.sum()))
        if top * mass > torch.finfo(cost_dtype).max / 2:
            raise ValueError(
                f"the transport cost (total mass {mass:.1e} times squared distances up to "
                f"{top:.1e}) can exceed the largest {str(cost_dtype).replace('torch.', '')} "
                f"number. Divide the weights a and b by a common factor (the plan scales with "
                f"them), or rescale the samples."
            )
        options = self._resolve(f0, f1, wa, wb)
        if y0 is None and y1 is None:
            result = self._solve(f0, f1, wa, wb, **options)
        else:
            result = self._solve_labelled(f0, f1, wa, wb, y0, y1, options)
        _check_finite_result(result)
        result.support = (s0, s1)  # for transform / inverse_transform of new points
        return result

    def _cost_dtype(self, dtype: torch.dtype) -> torch.dtype:
        """The dtype the solver computes costs in, for inputs of ``dtype``."""
        return dtype

    def _resolve(
        self, x0: torch.Tensor, x1: torch.Tensor, a: torch.Tensor, b: torch.Tensor
    ) -> dict[str, Any]:
        """Settings fixed on the whole problem before any split by class (e.g. ``reg``)."""
        return {}

    @abstractmethod
    def _solve(
        self, x0: torch.Tensor, x1: torch.Tensor, a: torch.Tensor, b: torch.Tensor, **options: Any
    ) -> Coupling:
        """Solve on flattened samples ``(n, d)``, ``(m, d)`` with validated weights."""

    def _weights(
        self, a: Any, b: Any, n: int, m: int, like: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if a is None and b is None:
            return as_weights(None, n, "a", like=like), as_weights(None, m, "b", like=like)
        wa = None if a is None else as_weights(a, n, "a", like=like, normalize=False)
        wb = None if b is None else as_weights(b, m, "b", like=like, normalize=False)
        if wa is None:
            assert wb is not None
            wa = torch.full((n,), float(wb.sum()) / n, dtype=like.dtype, device=like.device)
        if wb is None:
            wb = torch.full((m,), float(wa.sum()) / m, dtype=like.dtype, device=like.device)
        if self.balanced:
            sa, sb = float(wa.sum()), float(wb.sum())
            if abs(sa - sb) > _MASS_RTOL * max(sa, sb):
                raise ValueError(
                    f"balanced optimal transport needs equal total masses, but sum(a)={sa:.6g} "
                    f"and sum(b)={sb:.6g}. Normalise both to one (a / a.sum()), or use "
                    f"method='unbalanced' or method='partial' for unequal masses."
                )
            wb = wb * (sa / sb)
        return wa, wb

    def _warn_or_raise(self, message: str) -> None:
        if self.strict:
            raise ConvergenceError(message)
        warnings.warn(message, ConvergenceWarning, stacklevel=4)

    def _solve_labelled(
        self,
        x0: torch.Tensor,
        x1: torch.Tensor,
        a: torch.Tensor,
        b: torch.Tensor,
        y0: Any,
        y1: Any,
        options: dict[str, Any],
    ) -> Coupling:
        if y0 is None or y1 is None:
            raise ValueError("pass both y0 and y1 (class labels of x0 and x1), or neither.")
        n, m = x0.shape[0], x1.shape[0]
        l0, l1 = _labels(y0, n, "y0"), _labels(y1, m, "y1")
        classes0, inv0 = np.unique(l0, return_inverse=True)
        classes1 = np.unique(l1)
        only0 = sorted(set(classes0.tolist()) - set(classes1.tolist()), key=str)
        only1 = sorted(set(classes1.tolist()) - set(classes0.tolist()), key=str)
        if only0 or only1:
            raise ValueError(
                f"label-aware coupling pairs samples only within a class, but classes "
                f"{only0 or only1} occur only in {'y0' if only0 else 'y1'}. Every class must "
                f"have samples on both sides; drop those samples or merge the classes."
            )
        parts = []
        b_out = b.clone()
        for k, cls in enumerate(classes0):
            i0 = torch.as_tensor(np.nonzero(inv0 == k)[0], device=x0.device)
            i1 = torch.as_tensor(np.nonzero(l1 == cls)[0], device=x0.device)
            ak, bk = a[i0], b[i1]
            if self.balanced:
                sa, sb = float(ak.sum()), float(bk.sum())
                if sa <= 0 or sb <= 0:
                    raise ValueError(
                        f"class {cls!r} has zero total weight on the "
                        f"{'source' if sa <= 0 else 'target'} side; give it positive weight "
                        f"or drop its samples."
                    )
                bk = bk * (sa / sb)
                b_out[i1] = bk
            parts.append((i0, i1, self._solve(x0[i0], x1[i1], ak, bk, **options)))
        return _assemble(parts, n, m, a, b_out, x0)


def _check_finite_result(c: Coupling) -> None:
    """Raise :class:`ConvergenceError` if a coupling holds non-finite numbers.

    A plan with NaN or infinite entries is not a coupling under any tolerance, so this
    raises whether or not the solver is ``strict``.
    """
    values = [c.cost, c.marginal_error]
    store = c._store
    if isinstance(store, DenseStore | SparseStore):
        # cheap: these stores hold their entries already
        vals = store.plan if isinstance(store, DenseStore) else store.v
        values.append(float(vals.sum()))
    if all(math.isfinite(v) for v in values):
        return
    if c.reg is not None:
        # partial OT is exact in the same solver; the others have method='exact'
        exact = (
            "no reg or rel_reg (exact partial OT)" if c.method == "partial" else "method='exact'"
        )
        raise ConvergenceError(
            f"{c.method}: the entropic plan holds NaN or infinite values: reg={c.reg:.3g} is "
            f"too small for costs of this size (exp(-cost / reg) leaves the floating-point "
            f"range). Use a larger reg, or a relative one (rel_reg=0.05 sets reg to 5% of the "
            f"mean cost), float64 samples, or {exact} for unregularised OT."
        )
    raise ConvergenceError(
        f"{c.method}: the solver returned NaN or infinite values (cost={c.cost}); this is a "
        f"solver failure, not an input error: please report it with the data."
    )


def _labels(y: Any, n: int, name: str) -> np.ndarray:
    arr = y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(
            f"{name} has shape {arr.shape} but there are {n} samples; pass one label per sample."
        )
    return arr


def _assemble(
    parts: list[tuple[torch.Tensor, torch.Tensor, Coupling]],
    n: int,
    m: int,
    a: torch.Tensor,
    b: torch.Tensor,
    like: torch.Tensor,
) -> Coupling:
    first = parts[0][2]
    total = sum(float(c.a.sum()) for _, _, c in parts)
    err = sum(c.marginal_error * float(c.a.sum()) for _, _, c in parts) / max(total, 1e-300)
    is_perm = n == m and all(c.is_permutation for _, _, c in parts)
    rows, cols, vals = [], [], []
    for i0, i1, c in parts:
        r, cc, v = c._store.coo()
        rows.append(i0[r])
        cols.append(i1[cc])
        vals.append(v)
    store = SparseStore(torch.cat(rows), torch.cat(cols), torch.cat(vals), n, m)
    potentials = None
    if all(c.potentials is not None for _, _, c in parts):
        f = torch.zeros(n, dtype=like.dtype, device=like.device)
        g = torch.zeros(m, dtype=like.dtype, device=like.device)
        for i0, i1, c in parts:
            assert c.potentials is not None
            f[i0], g[i1] = c.potentials
        potentials = (f, g)
    return Coupling(
        store,
        a=a,
        b=b,
        method=first.method,
        cost=sum(c.cost for _, _, c in parts),
        reg=first.reg,
        converged=all(c.converged for _, _, c in parts),
        n_iter=max(c.n_iter for _, _, c in parts),
        marginal_error=err,
        potentials=potentials,
        is_permutation=is_perm,
        backend=first.backend,
    )
