"""Atomic checkpoint files: a reader never sees a half-written checkpoint."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from sbflow.data.io import atomic_path

__all__ = [
    "CHECKPOINT_NAME",
    "load_checkpoint",
    "read_state",
    "save_checkpoint",
]

CHECKPOINT_NAME = "checkpoint.pt"


def save_checkpoint(path: str | os.PathLike[str], state: dict[str, Any]) -> Path:
    """Write ``state`` with :func:`torch.save` to a temporary file, then rename it onto ``path``.

    An interruption at any moment leaves either the previous checkpoint or the new one, never
    a truncated file.

    Example:
        >>> import tempfile, pathlib
        >>> p = save_checkpoint(pathlib.Path(tempfile.mkdtemp()) / "c.pt", {"step": 3})
        >>> load_checkpoint(p)["step"]
        3
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return path


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` onto the CPU.

    Raises:
        ValueError: If the file is missing or not a readable checkpoint.

    Example:
        >>> import tempfile, pathlib
        >>> p = save_checkpoint(pathlib.Path(tempfile.mkdtemp()) / "c.pt", {"a": 1})
        >>> load_checkpoint(p)
        {'a': 1}
    """
    return read_state(path, "checkpoint")


def read_state(path: str | os.PathLike[str], what: str) -> dict[str, Any]:
    """Read a dict saved with ``torch.save`` onto the CPU, without unpickling arbitrary code.

    Args:
        path: The file.
        what: What the file should be (``"checkpoint"``, ``"bridge file"``), for messages.

    Raises:
        ValueError: If the file is missing, unreadable or does not hold a dict.

    Example:
        >>> import tempfile, pathlib
        >>> p = save_checkpoint(pathlib.Path(tempfile.mkdtemp()) / "c.pt", {"a": 1})
        >>> read_state(p, "checkpoint")
        {'a': 1}
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{what} not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated or foreign files raise many types
        raise ValueError(f"{path} is not a readable sbflow {what}: {err}") from err
    if not isinstance(state, dict):
        raise ValueError(f"{path} is not an sbflow {what} (found {type(state).__name__}).")
    return state
