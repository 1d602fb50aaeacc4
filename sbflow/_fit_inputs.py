"""Input handling of :func:`sbflow.fit`: which sets, at which times, on which device."""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from sbflow.data.io import load_samples
from sbflow.data.toy import DATASETS

__all__ = ["is_dataset_name", "resolve_device", "resolve_sets", "split_sets"]


def is_dataset_name(x: Any) -> bool:
    """Whether ``x`` names a built-in set (and is not a file of that name)."""
    return isinstance(x, str) and x.strip().lower() in DATASETS and not os.path.exists(x)


def _looks_like_array(x: Sequence[Any]) -> bool:
    """A list of numbers / lists of numbers (one array), rather than a list of sample sets."""
    first = x[0] if len(x) else None
    return isinstance(first, (int, float)) or (
        isinstance(first, (list, tuple)) and len(first) > 0 and isinstance(first[0], (int, float))
    )


def split_sets(
    source: Any, target: Any, times: Sequence[float] | None, gaussian_source: bool
) -> tuple[list[Any], list[float]]:
    """The list of sets and their times, from ``fit``'s ``source``/``target``/``times``."""
    if times is not None and (
        isinstance(times, (str, bytes))
        or not isinstance(times, (Sequence, torch.Tensor, np.ndarray))
    ):
        raise TypeError(
            f"times must be a list of numbers, one per sample set (e.g. [0, 1]); got {times!r}."
        )
    if isinstance(source, (list, tuple)) and not _looks_like_array(source):
        if target is not None:
            raise ValueError(
                "pass either a list of sample sets (with times) or a source and a target, not both."
            )
        sets_in = list(source)
        if len(sets_in) < 2:
            raise ValueError("a list of sample sets needs at least two sets.")
        times = list(range(len(sets_in))) if times is None else list(times)
    else:
        if gaussian_source and source is None:
            source = "normal"
        if target is None:
            raise ValueError("fit needs a target (or a list of sample sets with times).")
        sets_in = [source, target]
        times = [0.0, 1.0] if times is None else list(times)
    try:
        times = [float(t) for t in times]
    except (TypeError, ValueError) as err:
        raise TypeError(
            f"times must be a list of numbers, one per sample set (e.g. [0, 1]); got {times!r}."
        ) from err
    if len(times) != len(sets_in):
        raise ValueError(f"got {len(sets_in)} sample sets but {len(times)} times.")
    if any(not math.isfinite(t) for t in times) or any(
        b <= a for a, b in itertools.pairwise(times)
    ):
        raise ValueError(f"times must be finite and strictly increasing; got {times}.")
    if not math.isfinite(times[-1] - times[0]):
        raise ValueError(
            f"times span {times[0]:g} … {times[-1]:g}, a range too wide for floating point; "
            f"use smaller time units."
        )
    return sets_in, times


def resolve_sets(
    sets: Sequence[Any], key: str | None, dim: int | None
) -> tuple[list[torch.Tensor | str], tuple[int, ...]]:
    """Load every set (built-in names stay names) and check they share one sample shape."""
    loaded: list[torch.Tensor | str] = []
    data_shape: tuple[int, ...] | None = None
    for k, s in enumerate(sets):
        if is_dataset_name(s):
            loaded.append(s.strip().lower())
            continue
        try:
            x = load_samples(s, key=key)
        except ValueError as err:
            raise ValueError(f"sample set {k}: {err}") from err
        if data_shape is not None and tuple(x.shape[1:]) != data_shape:
            raise ValueError(
                f"sample sets must live in one space, but the data sets have samples of shapes "
                f"{data_shape} and {tuple(x.shape[1:])} (set {k}); check the files."
            )
        data_shape = tuple(x.shape[1:])
        loaded.append(x)
    names = [s for s in loaded if isinstance(s, str)]
    if data_shape is None:
        dims = {(dim or 2) if DATASETS[s].any_dim else DATASETS[s].default_dim for s in names}
        if len(dims) > 1:
            raise ValueError(
                f"built-in sets of different dimensions cannot be bridged ({', '.join(names)}); "
                f"'normal' takes dim=..., the others are 2-D."
            )
        return loaded, (dims.pop(),)
    features = math.prod(data_shape)
    for s in names:
        info = DATASETS[s]
        if info.any_dim:
            if dim is not None and dim != features:
                raise ValueError(f"dim={dim} but the data have {features} features.")
        elif data_shape != (info.default_dim,):
            raise ValueError(
                f"built-in set {s!r} has {info.default_dim}-D samples but the data have samples "
                f"of shape {data_shape}."
            )
    return loaded, data_shape


def resolve_device(device: Any) -> torch.device:
    """``"cpu"``, ``"cuda"``, ``"auto"`` or a ``torch.device`` → an available device."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"unknown device {device!r}; use 'cpu', 'cuda' or 'auto'.") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was requested but CUDA is not available; use 'cpu'.")
    return dev
