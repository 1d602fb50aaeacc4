"""Input validation shared by every public entry point.

Every check raises :class:`ValueError` or :class:`TypeError` with a message that says what
was wrong and what to do about it. Nothing here uses ``assert``: user input is validated
even under ``python -O``.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np
import torch

__all__ = [
    "as_samples",
    "as_weights",
    "check_bool",
    "check_finite",
    "check_generator",
    "check_int",
    "check_path",
    "check_positive",
    "check_positive_int",
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
        ValueError: If ``x`` is a scalar, has no samples, holds NaN/Inf, or holds values
            that overflow ``dtype``.

    Example:
        >>> as_samples([[0.0, 1.0], [2.0, 3.0]], "x0").shape
        torch.Size([2, 2])
    """
    if x is None or isinstance(x, (str, bytes)):
        raise TypeError(
            f"{name} must be a torch.Tensor or a NumPy array of shape (n, *dims); "
            f"got {type(x).__name__}."
        )
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
        raise TypeError(
            f"{name} is complex; sbflow works with real-valued samples: pass the real and "
            f"imaginary parts as separate features (torch.view_as_real)."
        )
    _reject_single_image(t, name)
    if not t.is_floating_point():
        t = t.to(torch.get_default_dtype())
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
    if dtype is not None or device is not None:
        target = dtype or t.dtype
        t = t.to(dtype=target, device=device or t.device)
        if not bool(torch.isfinite(t).all()):
            raise ValueError(
                f"{name} has finite values too large for {str(target).replace('torch.', '')} "
                f"(largest number {torch.finfo(target).max:.1e}): converting them gives "
                f"infinities. Rescale the data (e.g. standardise it) or use float64."
            )
    return t


def _reject_single_image(t: torch.Tensor, name: str) -> None:
    """Refuse one ``(H, W, C)`` picture, which would silently become ``H`` samples.

    It looks like an image when it is 3-D with a trailing RGB(A) axis, at least 8 × 8, and
    holds pixel values (``uint8``/``bool``, floats in [0, 1], or whole numbers in [0, 255]).
    Batches of images, ``(n, C, H, W)``, ``(n, H, W)`` or ``(n, H, W, C)``, are not affected.
    """
    if t.dim() != 3 or t.shape[2] not in (3, 4) or min(t.shape[0], t.shape[1]) < 8:
        return
    if t.dtype in (torch.uint8, torch.bool):
        pixel_values = True
    else:
        v = t.detach()
        low, high = float(v.min()), float(v.max())  # NaN compares False: not an image
        in_unit = 0.0 <= low and high <= 1.0
        whole = 0.0 <= low and high <= 255.0 and bool((v == v.round()).all())
        pixel_values = in_unit or whole
    if not pixel_values:
        return
    h, w, c = t.shape
    kind = "an RGB" if c == 3 else "an RGBA"
    raise ValueError(
        f"{name} has shape {(h, w, c)} and holds pixel values: it looks like {kind} image, "
        f"which would be read as {h} samples of shape {(w, c)}. To use its pixels as samples, "
        f"pass sbflow.data.pixels({name}) (shape (H·W, {c}), values in [0, 1]; "
        f"sbflow.data.unpixels turns results back into an image). If these really are {h} "
        f"samples of shape {(w, c)}, pass {name}.reshape(len({name}), -1) (the cost of "
        f"flattened samples is the same)."
    )


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


def check_same_feature_shape(
    x0: torch.Tensor, x1: torch.Tensor, names: tuple[str, str] = ("x0", "x1")
) -> None:
    """Raise ``ValueError`` unless both sample sets live in the same space.

    Args:
        x0: First sample set ``(n, *dims)``.
        x1: Second sample set ``(m, *dims)``.
        names: How the two arguments are called in the public API.

    Example:
        >>> check_same_feature_shape(torch.zeros(3, 2), torch.zeros(5, 2))
    """
    n0, n1 = names
    if x0.shape[1:] != x1.shape[1:]:
        raise ValueError(
            f"{n0} has samples of shape {tuple(x0.shape[1:])} but {n1} has "
            f"{tuple(x1.shape[1:])}; both sets must have the same feature shape (n, *dims) and "
            f"(m, *dims)."
        )
    if x0.device != x1.device:
        raise ValueError(
            f"{n0} is on {x0.device} but {n1} is on {x1.device}; move both to one device."
        )


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
    t = _weights64(w, name)
    if t.dim() != 1 or t.shape[0] != n:
        raise ValueError(
            f"weights {name} have shape {tuple(t.shape)} but there are {n} samples; "
            f"pass a 1-D array of length {n}."
        )
    check_finite(t, f"weights {name}")
    if bool((t < 0).any()):
        raise ValueError(f"weights {name} have negative entries; weights must be non-negative.")
    top = float(t.max())
    if top <= 0:
        raise ValueError(f"weights {name} sum to zero; give at least one sample positive mass.")
    # normalise in float64 through the maximum: the plain sum of weights near 1e308 overflows
    scaled = t / top
    total = float(scaled.sum())
    if normalize:
        out = scaled / total
    else:
        out = t
        if not math.isfinite(top * total):
            raise ValueError(
                f"weights {name} sum to more than the largest float64 number; divide them by "
                f"a common factor."
            )
    cast = out.to(dtype=like.dtype, device=like.device)
    lost = (cast == 0) & (out > 0)
    if not bool(torch.isfinite(cast).all()) or bool(lost.any()):
        dt = str(like.dtype).replace("torch.", "")
        raise ValueError(
            f"weights {name} span {float(t[t > 0].min()):.1e} to {top:.1e}, outside the range "
            f"of {dt} (the samples' dtype): some would become 0 or infinite. Divide the "
            f"weights by a common factor (only their ratios matter for balanced methods), or "
            f"pass float64 samples."
        )
    return cast


def _weights64(w: Any, name: str) -> torch.Tensor:
    if isinstance(w, torch.Tensor):
        if w.is_complex() or w.dtype == torch.bool:
            raise TypeError(f"weights {name} must be real numbers; got a {w.dtype} tensor.")
        return w.detach().cpu().to(torch.float64)
    if isinstance(w, (str, bytes)):
        raise TypeError(
            f"weights {name} must be a 1-D array of non-negative numbers (or None for "
            f"uniform); got {type(w).__name__}."
        )
    try:
        arr = np.asarray(w, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(
            f"weights {name} must be a 1-D array of non-negative numbers (or None for "
            f"uniform); got {type(w).__name__}."
        ) from err
    return torch.from_numpy(np.ascontiguousarray(arr))


def check_positive(value: float, name: str, hint: str = "") -> float:
    """Return ``value`` as a float if it is finite and > 0, else raise ``ValueError``.

    Example:
        >>> check_positive(0.5, "reg")
        0.5
    """
    v = _number(value, name)
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be a finite number > 0; got {value!r}. {hint}".rstrip())
    return v


def check_unit_interval(value: float, name: str, *, closed_left: bool = False) -> float:
    """Return ``value`` if it lies in ``(0, 1]`` (or ``[0, 1]``), else raise ``ValueError``.

    Example:
        >>> check_unit_interval(0.3, "mass")
        0.3
    """
    v = _number(value, name)
    ok = (0.0 <= v <= 1.0) if closed_left else (0.0 < v <= 1.0)
    if not ok:
        interval = "[0, 1]" if closed_left else "(0, 1]"
        raise ValueError(f"{name} must lie in {interval}; got {value!r}.")
    return v


def check_positive_int(value: Any, name: str) -> int:
    """Return ``value`` as an ``int`` if it is a whole number ≥ 1, else raise.

    ``2.0`` is accepted; ``2.5``, ``0``, ``True`` and ``"3"`` are not.

    Example:
        >>> check_positive_int(1000, "max_iter")
        1000
    """
    return check_int(value, name, low=1)


def check_int(value: Any, name: str, low: int = 0, high: int = 2**63 - 1) -> int:
    """Return ``value`` as an ``int`` if it is a whole number in ``[low, high]``, else raise.

    Non-numbers (and booleans) raise ``TypeError``; fractions, infinities and numbers out of
    range raise ``ValueError``. Whole floats such as ``2.0`` are accepted. The default
    ``high`` is the largest int64, beyond which torch cannot take a size or a seed.

    Example:
        >>> check_int(0, "warmup_steps"), check_int(3.0, "n_times", low=2)
        (0, 3)
    """
    wanted = {0: "a non-negative integer (0, 1, 2, ...)", 1: "a positive integer (1, 2, ...)"}
    what = wanted.get(low, f"an integer ≥ {low}")
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be {what}; got {value!r}.")
    if not math.isfinite(float(value)) or int(value) != value or value < low:
        raise ValueError(f"{name} must be {what}; got {value!r}.")
    if value > high:
        raise ValueError(f"{name} must be at most {high}; got {value!r}.")
    return int(value)


def check_generator(value: Any, name: str = "generator") -> torch.Generator | None:
    """Return ``value`` if it is a ``torch.Generator`` or ``None``, else raise ``TypeError``.

    Example:
        >>> check_generator(None) is None
        True
    """
    if value is None or isinstance(value, torch.Generator):
        return value
    raise TypeError(
        f"{name} must be a torch.Generator (e.g. torch.Generator().manual_seed(0)) or None; "
        f"got {value!r}."
    )


def check_path(value: Any, name: str) -> os.PathLike[str] | str:
    """Return ``value`` if it is a file-system path (``str`` or ``os.PathLike``), else raise.

    Example:
        >>> check_path("bridge.pt", "path")
        'bridge.pt'
    """
    if isinstance(value, (str, os.PathLike)) and str(value):
        return value
    raise TypeError(f"{name} must be a file path (a non-empty str or pathlib.Path); got {value!r}.")


def check_bool(value: Any, name: str) -> bool:
    """Return ``value`` if it is a boolean (Python or NumPy), else raise ``TypeError``.

    Catches options such as ``strict="no"``, which ``bool()`` would turn into ``True``.

    Example:
        >>> check_bool(False, "strict")
        False
    """
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise TypeError(f"{name} must be True or False; got {value!r}.")


def _number(value: Any, name: str) -> float:
    if isinstance(value, (bool, str, bytes)) or value is None:
        raise TypeError(f"{name} must be a number; got {value!r}.")
    try:
        return float(value)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be a number; got {value!r}.") from err
