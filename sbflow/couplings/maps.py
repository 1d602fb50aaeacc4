"""Out-of-sample maps of a coupling: send new source points to the target side, and back.

A coupling is a plan between the points it was computed on. Two maps extend it to points
that were not in the coupled sample:

* **barycentric** (any plan, the convention of POT's ``ot.da`` transport classes): a coupled
  source goes to the plan-weighted mean of its targets, ``B(x0_i) = Σ_j P_ij x1_j / Σ_j P_ij``,
  and a new point ``x`` moves by the displacement of its nearest coupled source,

  .. math:: T(x) = x + B(x0_k) − x0_k, \\qquad k = \\arg\\min_i ‖x − x0_i‖²;

* **entropic** (entropic plans, which carry dual potentials ``(f, g)``): the conditional of the
  plan extended to any point (Pooladian & Niles-Weed, *Entropic estimation of optimal
  transport maps*, 2021),

  .. math:: T(x) = Σ_j w_j(x)\\, x1_j, \\qquad
            w_j(x) ∝ b_j \\exp\\big((g_j − ‖x − x1_j‖²) / \\mathrm{reg}\\big),

  which equals ``B`` on the coupled sources and is smooth in ``x``.

The inverse maps swap the roles of the two sides (``Pᵀ``, ``x0``, ``a`` and ``f``). Work is done
in chunks of new points so that the ``(chunk, n)`` distance block stays within ``max_bytes``,
and the result has the caller's array type (NumPy in, NumPy out). Distances enter through
inner products with the centred coupled points (``‖x‖²`` is the same for every candidate), one
matrix product per chunk.
"""

from __future__ import annotations

from typing import Any

import torch

from sbflow._checks import as_samples
from sbflow._inference import map_chunks, to_caller
from sbflow._memory import require_memory
from sbflow.couplings._stores import SparseStore
from sbflow.couplings.base import Coupling

__all__ = ["MAP_KINDS", "MAX_BYTES", "inverse_transform", "transform"]

MAP_KINDS = ("auto", "barycentric", "entropic")
"""Accepted ``kind`` values; ``"auto"`` is entropic where the plan has potentials."""

MAX_BYTES = 2**26
"""Default memory budget of one chunk's ``(chunk, n)`` distance block (64 MiB)."""

_ENTROPIC_METHODS = ("sinkhorn", "unbalanced")


def transform(
    coupling: Coupling,
    x: Any,
    *,
    x0: Any,
    x1: Any,
    kind: str = "auto",
    max_bytes: int = MAX_BYTES,
    progress: bool | None = None,
) -> Any:
    """Map new source points ``x`` to the target side of ``coupling``.

    Args:
        coupling: A coupling of ``x0`` with ``x1``.
        x: New points ``(k, *dims)`` with the features of ``x0``.
        x0: The coupled sources ``(n, *dims)``.
        x1: The coupled targets ``(m, *dims)``.
        kind: ``"barycentric"``, ``"entropic"`` (plans from ``method="sinkhorn"`` or
            ``"unbalanced"`` without class labels) or ``"auto"`` (entropic where possible).
        max_bytes: Memory budget of one chunk's distance block.
        progress: Progress bar: ``None`` (on an interactive terminal when long), ``True``,
            ``False``.

    Returns:
        ``(k, *dims)`` mapped points, NumPy for NumPy input, else a tensor like ``x``.

    Example:
        >>> from sbflow.couplings import couple
        >>> x0, x1 = torch.tensor([[0.0], [1.0]]), torch.tensor([[10.0], [11.0]])
        >>> c = couple(x0, x1, method="exact")
        >>> transform(c, torch.tensor([[0.2], [5.0]]), x0=x0, x1=x1).tolist()
        [[10.199999809265137], [15.0]]
    """
    return _map(coupling, x, x0, x1, kind, max_bytes, progress, inverse=False)


def inverse_transform(
    coupling: Coupling,
    y: Any,
    *,
    x0: Any,
    x1: Any,
    kind: str = "auto",
    max_bytes: int = MAX_BYTES,
    progress: bool | None = None,
) -> Any:
    """Map new target points ``y`` back to the source side of ``coupling``.

    The mirror image of :func:`transform`: barycentres of the plan's columns
    ``Σ_i P_ij x0_i / Σ_i P_ij`` with the nearest-coupled-target displacement, or the entropic
    map ``Σ_i w_i(y) x0_i`` with ``w_i(y) ∝ a_i exp((f_i − ‖x0_i − y‖²)/reg)``.

    Args:
        coupling: A coupling of ``x0`` with ``x1``.
        y: New points ``(k, *dims)`` with the features of ``x1``.
        x0: The coupled sources ``(n, *dims)``.
        x1: The coupled targets ``(m, *dims)``.
        kind: As for :func:`transform`.
        max_bytes: Memory budget of one chunk's distance block.
        progress: As for :func:`transform`.

    Returns:
        ``(k, *dims)`` mapped points in the caller's array type.

    Example:
        >>> from sbflow.couplings import couple
        >>> x0, x1 = torch.tensor([[0.0], [1.0]]), torch.tensor([[10.0], [11.0]])
        >>> c = couple(x0, x1, method="sinkhorn", reg=0.01)
        >>> inverse_transform(c, torch.tensor([[11.0]]), x0=x0, x1=x1).round().tolist()
        [[1.0]]
    """
    return _map(coupling, y, x0, x1, kind, max_bytes, progress, inverse=True)


def _map(
    coupling: Coupling,
    x: Any,
    x0: Any,
    x1: Any,
    kind: str,
    max_bytes: int,
    progress: bool | None,
    *,
    inverse: bool,
) -> Any:
    if not isinstance(coupling, Coupling):
        raise TypeError(f"coupling must be a Coupling; got {type(coupling).__name__}.")
    if kind not in MAP_KINDS:
        raise ValueError(f"kind must be one of {MAP_KINDS}; got {kind!r}.")
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
        raise ValueError(f"max_bytes must be a positive integer; got {max_bytes!r}.")
    dtype, device = coupling.dtype, coupling.device
    s0 = as_samples(x0, "x0", dtype=dtype, device=device)
    s1 = as_samples(x1, "x1", dtype=dtype, device=device)
    if s0.shape[0] != coupling.n or s1.shape[0] != coupling.m:
        raise ValueError(
            f"x0 and x1 have {s0.shape[0]} and {s1.shape[0]} samples but the coupling is "
            f"({coupling.n}, {coupling.m}); pass the points the coupling was computed on."
        )
    name = "y" if inverse else "x"
    pts = as_samples(x, name, dtype=dtype, device=device)
    src, dst = (s1, s0) if inverse else (s0, s1)
    if pts.shape[1:] != src.shape[1:]:
        raise ValueError(
            f"{name} has samples of shape {tuple(pts.shape[1:])} but the coupled "
            f"{'targets' if inverse else 'sources'} have {tuple(src.shape[1:])}."
        )
    flat = pts.reshape(pts.shape[0], -1)
    src_flat, dst_flat = src.reshape(src.shape[0], -1), dst.reshape(dst.shape[0], -1)
    entropic = _use_entropic(coupling, kind)
    if entropic:
        f, g = coupling.potentials  # type: ignore[misc]
        pot, w = (f, coupling.a) if inverse else (g, coupling.b)
        log_w = torch.log(w) + pot / coupling.reg  # type: ignore[operator]
        reg = float(coupling.reg)  # type: ignore[arg-type]
        rows = _chunk_rows(max_bytes, dst_flat.shape[0], pts.element_size())
        # ‖x − y_j‖² = ‖x‖² − 2x·y_j + ‖y_j‖², and ‖x‖² drops out of the softmax over j
        centre, dst_c = _centred(dst_flat)
        bias = log_w - (dst_c * dst_c).sum(1) / reg

        def fn(chunk: torch.Tensor) -> torch.Tensor:
            logits = torch.addmm(bias, chunk - centre, dst_c.T, alpha=2.0 / reg)
            return torch.softmax(logits, dim=1) @ dst_flat

    else:
        bary, keep = _barycentres(coupling, src_flat, dst_flat, inverse)
        src_kept, shift = src_flat[keep], bary[keep] - src_flat[keep]
        rows = _chunk_rows(max_bytes, src_kept.shape[0], pts.element_size())
        centre, src_c = _centred(src_kept)
        half_sq = 0.5 * (src_c * src_c).sum(1)

        def fn(chunk: torch.Tensor) -> torch.Tensor:
            # argmin_i ‖x − x0_i‖² = argmax_i x·x0_i − ‖x0_i‖²/2
            nearest = torch.addmm(-half_sq, chunk - centre, src_c.T).argmax(dim=1)
            return chunk + shift[nearest]

    support = src_kept.shape[0] if not entropic else dst_flat.shape[0]
    require_memory(
        3 * rows * support * pts.element_size(),
        what=f"a ({rows}, {support}) block of the out-of-sample map",
        hint="Pass a smaller max_bytes.",
        device=device,
    )
    with torch.no_grad():
        out = map_chunks(
            fn, flat, chunk_size=rows, progress=progress, desc="inverse map" if inverse else "map"
        )
    return to_caller(out.reshape(pts.shape), x)


def _centred(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    # inner products of centred points keep their precision for data far from the origin
    centre = y.mean(0)
    return centre, y - centre


def _chunk_rows(max_bytes: int, support: int, itemsize: int) -> int:
    # a (rows, support) distance block and two temporaries of its size
    return max(1, max_bytes // (3 * max(support, 1) * itemsize))


def _use_entropic(coupling: Coupling, kind: str) -> bool:
    # Label-aware plans are assembled from one solve per class (a SparseStore): potentials of
    # different classes are not comparable, so the entropic formula would mix classes.
    has = (
        coupling.potentials is not None
        and coupling.reg is not None
        and coupling.method in _ENTROPIC_METHODS
        and not isinstance(coupling._store, SparseStore)
    )
    if kind == "entropic" and not has:
        raise ValueError(
            f"kind='entropic' needs an entropic plan with dual potentials (method='sinkhorn' "
            f"or 'unbalanced', without class labels); this coupling comes from "
            f"method={coupling.method!r}. Use kind='barycentric'."
        )
    return has and kind != "barycentric"


def _barycentres(
    coupling: Coupling, src: torch.Tensor, dst: torch.Tensor, inverse: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Barycentres of the plan's rows (or columns) and which of them have mass."""
    if not inverse:
        mass, bary = coupling.row_mass(), coupling._store.matmul(dst)
    else:
        mass, bary = coupling.col_mass(), coupling._store.rmatmul(dst)
    keep = mass > 0
    if not bool(keep.any()):
        raise ValueError("the plan has no mass, so it maps nothing; check the coupling.")
    return bary / torch.where(keep, mass, torch.ones_like(mass))[:, None], keep
