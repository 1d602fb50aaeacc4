"""Input validation shared by every public entry point.

Every check raises :class:`ValueError` or :class:`TypeError` with a message that says what
was wrong and what to do about it. Nothing here uses ``assert``: user input is validated
even under ``python -O``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

__all__ = [
    "as_samples",
    "as_weights",
    "check_finite",
    "check_positive",
    "check_same_feature_shape",
    "check_unit_interval",
]


def as_samples(
    x: Any,
    name: str,
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Convert ``x`` to a floating tensor of samples with shape ``(n, *dims)``.

    Args:
        x: A ``torch.Tensor``, a NumPy array or a nested sequence of numbers.
        name: How the argument is called in the public API, for error messages.
        dtype: Target floating dtype. Defaults to the input's own floating dtype, or
            ``torch.get_default_dtype()`` for integer input.
        device: Target device. Defaults to the input's device (CPU for NumPy).

    Returns:
        A tensor of shape ``(n, *dims)`` with ``n >= 1``, finite entries and a floating dtype.

    Raises:
        TypeError: If ``x`` cannot be read as an array of numbers.
        ValueError: If ``x`` is a scalar, has no samples or holds NaN/Inf.

    Example:
        >>> as_samples([[0.0, 1.0], [2.0, 3.0]], "x0").shape
        torch.Size([2, 2])
    """
    if isinstance(x, torch.Tensor):
        t = x
    elif isinstance(x, np.ndarray):
        if x.dtype == object:
            raise TypeError(f"{name} is a NumPy array of Python objects; pass a numeric array.")
        t = torch.from_numpy(np.ascontiguousarray(x))
    else:
        try:
            t = torch.as_tensor(np.asarray(x, dtype=np.float64))
        except (TypeError, ValueError) as err:
            raise TypeError(
                f"{name} must be a torch.Tensor or a NumPy array of shape (n, *dims); "
                f"got {type(x).__name__}."
            ) from err
    if t.is_complex():
        raise TypeError(f"{name} is complex; sbflow works with real-valued samples.")
    if not t.is_floating_point():
        t = t.to(torch.get_default_dtype())
    if dtype is not None or device is not None:
        t = t.to(dtype=dtype or t.dtype, device=device or t.device)
    if t.dim() == 0:
        raise ValueError(f"{name} is a scalar; samples must have shape (n, *dims).")
    if t.dim() == 1:
        raise ValueError(
            f"{name} has shape {tuple(t.shape)}: samples must have shape (n, *dims). "
            f"For n one-dimensional points use x.reshape(-1, 1)."
        )
    if t.shape[0] == 0:
        raise ValueError(f"{name} is empty (shape {tuple(t.shape)}); pass at least one sample.")
    check_finite(t, name)
    return t


def check_finite(t: torch.Tensor, name: str) -> None:
    """Raise ``ValueError`` if ``t`` holds NaN or infinite entries.

    Example:
        >>> check_finite(torch.zeros(3), "x")
    """
    if not bool(torch.isfinite(t).all()):
        n_bad = int((~torch.isfinite(t)).sum())
        raise ValueError(
            f"{name} has {n_bad} NaN or infinite entries; remove or impute them before coupling."
        )


def check_same_feature_shape(x0: torch.Tensor, x1: torch.Tensor) -> None:
    """Raise ``ValueError`` unless both sample sets live in the same space.

    Example:
        >>> check_same_feature_shape(torch.zeros(3, 2), torch.zeros(5, 2))
    """
    if x0.shape[1:] != x1.shape[1:]:
        raise ValueError(
            f"x0 has samples of shape {tuple(x0.shape[1:])} but x1 has {tuple(x1.shape[1:])}; "
            f"both sets must have the same feature shape (n, *dims) and (m, *dims)."
        )
    if x0.device != x1.device:
        raise ValueError(f"x0 is on {x0.device} but x1 is on {x1.device}; move both to one device.")


def as_weights(
    w: Any,
    n: int,
    name: str,
    *,
    like: torch.Tensor,
    normalize: bool = True,
) -> torch.Tensor:
    """Validate sample weights, defaulting to uniform.

    Args:
        w: ``None`` for uniform weights, or a 1-D array of ``n`` non-negative numbers.
        n: Number of samples the weights belong to.
        name: Argument name for error messages (``"a"`` or ``"b"``).
        like: A tensor whose dtype and device the weights should take.
        normalize: Rescale to total mass one. Unbalanced solvers pass ``False``.

    Returns:
        A tensor of shape ``(n,)``.

    Example:
        >>> as_weights(None, 4, "a", like=torch.zeros(1)).tolist()
        [0.25, 0.25, 0.25, 0.25]
    """
    if w is None:
        return torch.full((n,), 1.0 / n if normalize else 1.0, dtype=like.dtype, device=like.device)
    t = torch.as_tensor(w if not isinstance(w, np.ndarray) else np.ascontiguousarray(w))
    t = t.to(dtype=like.dtype, device=like.device)
    if t.dim() != 1 or t.shape[0] != n:
        raise ValueError(
            f"weights {name} have shape {tuple(t.shape)} but there are {n} samples; "
            f"pass a 1-D array of length {n}."
        )
    check_finite(t, f"weights {name}")
    if bool((t < 0).any()):
        raise ValueError(f"weights {name} have negative entries; weights must be non-negative.")
    total = float(t.sum())
    if total <= 0:
        raise ValueError(f"weights {name} sum to zero; give at least one sample positive mass.")
    return t / total if normalize else t


def check_positive(value: float, name: str, hint: str = "") -> float:
    """Return ``value`` as a float if it is finite and > 0, else raise ``ValueError``.

    Example:
        >>> check_positive(0.5, "reg")
        0.5
    """
    try:
        v = float(value)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be a number; got {value!r}.") from err
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be a finite number > 0; got {value!r}. {hint}".rstrip())
    return v


def check_unit_interval(value: float, name: str, *, closed_left: bool = False) -> float:
    """Return ``value`` if it lies in ``(0, 1]`` (or ``[0, 1]``), else raise ``ValueError``.

    Example:
        >>> check_unit_interval(0.3, "mass")
        0.3
    """
    v = float(value)
    ok = (0.0 <= v <= 1.0) if closed_left else (0.0 < v <= 1.0)
    if not ok:
        interval = "[0, 1]" if closed_left else "(0, 1]"
        raise ValueError(f"{name} must lie in {interval}; got {value!r}.")
    return v
