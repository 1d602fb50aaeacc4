"""Checkpoint and bridge files that can be trusted: atomic, checksummed, verified on load.

:func:`write_state` stores a dict of tensors and plain values with :func:`torch.save` through
:func:`~sbflow.data.io.atomic_path` (temporary file, fsync, rename, fsync of the directory), and
adds a SHA-256 digest of the content. :func:`read_state` checks, before trusting a byte: that
the file is a zip archive written by ``torch.save``, that every entry passes its CRC-32 (torch's
own reader does not check them), that it unpickles without running code
(``weights_only=True``), that the digest matches, and that every floating tensor is finite.
Files written before digests existed still load, with the CRC check only.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from sbflow.data.io import atomic_path

__all__ = [
    "CHECKPOINT_NAME",
    "CHECKSUM_KEY",
    "check_finite_state",
    "load_checkpoint",
    "read_state",
    "save_checkpoint",
    "state_digest",
    "write_state",
]

CHECKPOINT_NAME = "checkpoint.pt"
CHECKSUM_KEY = "sbflow_sha256"


class _Unhashable(TypeError):
    pass


def _feed(h: Any, obj: Any, where: str) -> None:
    # Every value carries a type tag and, where it has one, a length, so that two different
    # states can never produce the same byte stream.
    if obj is None:
        h.update(b"N")
    elif isinstance(obj, bool):
        h.update(b"T" if obj else b"F")
    elif isinstance(obj, int):
        h.update(b"i%d;" % obj)
    elif isinstance(obj, float):
        h.update(b"f" + obj.hex().encode() + b";")
    elif isinstance(obj, complex):
        h.update(b"c" + obj.real.hex().encode() + b"," + obj.imag.hex().encode() + b";")
    elif isinstance(obj, str):
        data = obj.encode("utf-8", "surrogatepass")
        h.update(b"s%d:" % len(data) + data)
    elif isinstance(obj, bytes):
        h.update(b"b%d:" % len(obj) + obj)
    elif isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous().reshape(-1)
        header = f"{t.dtype}{tuple(obj.shape)}".encode()
        h.update(b"t%d:" % len(header) + header)
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    elif isinstance(obj, (torch.dtype, torch.device)):
        text = str(obj).encode()
        h.update(b"y%d:" % len(text) + text)
    elif isinstance(obj, Mapping):
        h.update(b"d%d:" % len(obj))
        for key, value in obj.items():
            _feed(h, key, where)
            _feed(h, value, f"{where}.{key}" if where else str(key))
    elif isinstance(obj, (list, tuple)):
        h.update((b"l%d:" if isinstance(obj, list) else b"u%d:") % len(obj))
        for k, value in enumerate(obj):
            _feed(h, value, f"{where}[{k}]")
    else:
        raise _Unhashable(
            f"state entry {where or '(top level)'} is a {type(obj).__name__}; sbflow files hold "
            f"only tensors, numbers, strings, None and dicts/lists/tuples of them."
        )


def state_digest(state: Mapping[str, Any]) -> str:
    """SHA-256 of a state's content: tensors (dtype, shape, bytes) and plain values, in order.

    The digest depends on the values only, not on how ``torch.save`` laid them out, so it is
    the same before saving and after loading.

    Raises:
        TypeError: If the state holds something other than tensors, numbers, strings, bytes,
            None, dtypes, devices and dicts/lists/tuples of them.

    Example:
        >>> state_digest({"w": torch.ones(2)}) == state_digest({"w": torch.ones(2)})
        True
        >>> state_digest({"w": torch.ones(2)}) == state_digest({"w": torch.ones(2).double()})
        False
    """
    h = hashlib.sha256()
    _feed(h, state, "")
    return h.hexdigest()


def check_finite_state(state: Any, what: str, *, where: str = "") -> None:
    """Raise if any floating (or complex) tensor inside ``state`` holds NaN or ±inf.

    Args:
        state: A dict/list/tuple tree of tensors and plain values.
        what: What the state is (``"bridge file x.pt"``), for the message.
        where: Prefix of entry names in the message.

    Raises:
        ValueError: Naming the first non-finite entry.

    Example:
        >>> check_finite_state({"w": torch.ones(2)}, "state")
        >>> check_finite_state({"model": {"w": torch.tensor([1.0, float("nan")])}}, "state")
        Traceback (most recent call last):
          ...
        ValueError: state: entry model.w holds 1 NaN/infinite value(s) out of 2; ...
    """
    if isinstance(state, torch.Tensor):
        if state.is_floating_point() or state.is_complex():
            bad = int((~torch.isfinite(state)).sum())
            if bad:
                raise ValueError(
                    f"{what}: entry {where or '(top level)'} holds {bad} NaN/infinite value(s) "
                    f"out of {state.numel()}; the file was saved from a diverged run or damaged. "
                    f"Re-create it (for a checkpoint: resume from an earlier one or start over)."
                )
    elif isinstance(state, Mapping):
        for key, value in state.items():
            check_finite_state(value, what, where=f"{where}.{key}" if where else str(key))
    elif isinstance(state, (list, tuple)):
        for k, value in enumerate(state):
            check_finite_state(value, what, where=f"{where}[{k}]")


def write_state(path: str | os.PathLike[str], state: Mapping[str, Any]) -> Path:
    """Write the dict ``state`` atomically with its SHA-256; :func:`read_state` reads it.

    The write goes through :func:`~sbflow.data.io.atomic_path`: an interruption at any moment
    leaves the previous file or the new one, never a mix; the file honours the umask (or keeps
    the mode of the file it replaces) and a read-only file is not replaced.

    Args:
        path: The file (conventionally ``.pt``).
        state: Tensors and plain values (see :func:`state_digest`); the key ``"sbflow_sha256"``
            is reserved.

    Returns:
        ``path``.

    Raises:
        TypeError: If ``state`` is not a dict of storable values.
        ValueError: If ``state`` uses the reserved key.
        OSError: If the file cannot be written (the message names ``path``).

    Example:
        >>> import tempfile, pathlib
        >>> p = write_state(pathlib.Path(tempfile.mkdtemp()) / "s.pt", {"w": torch.ones(2)})
        >>> read_state(p, "checkpoint")
        {'w': tensor([1., 1.])}
    """
    if not isinstance(state, Mapping):
        raise TypeError(f"state must be a dict; got {type(state).__name__}.")
    if CHECKSUM_KEY in state:
        raise ValueError(f"state must not contain the reserved key {CHECKSUM_KEY!r}.")
    try:
        digest = state_digest(state)
    except _Unhashable as err:
        raise TypeError(str(err)) from None
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        # Through a file object, torch names the archive's records "archive/..." rather than
        # after the hidden temporary file.
        torch.save({**state, CHECKSUM_KEY: digest}, fh)
    return path


def save_checkpoint(path: str | os.PathLike[str], state: dict[str, Any]) -> Path:
    """Write a training checkpoint with :func:`write_state` (atomic, checksummed).

    An interruption at any moment leaves either the previous checkpoint or the new one, never
    a truncated file.

    Example:
        >>> import tempfile, pathlib
        >>> p = save_checkpoint(pathlib.Path(tempfile.mkdtemp()) / "c.pt", {"step": 3})
        >>> load_checkpoint(p)["step"]
        3
    """
    return write_state(path, state)


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and verify a checkpoint written by :func:`save_checkpoint`, onto the CPU.

    Raises:
        ValueError: If the file is missing, damaged or not a checkpoint (see :func:`read_state`).

    Example:
        >>> import tempfile, pathlib
        >>> p = save_checkpoint(pathlib.Path(tempfile.mkdtemp()) / "c.pt", {"a": 1})
        >>> load_checkpoint(p)
        {'a': 1}
    """
    return read_state(path, "checkpoint")


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _open_zip(path: Path, what: str) -> None:
    """Check the container: a zip archive whose entries all pass their CRC-32."""
    damaged = (
        "it was probably cut short while being written or copied, or it is a different kind "
        "of file; re-create it or restore it from a backup."
    )
    try:
        size = path.stat().st_size
        is_zip = size > 0 and zipfile.is_zipfile(path)
        if is_zip:
            with zipfile.ZipFile(path) as archive:
                bad = archive.testzip()
    except PermissionError as err:
        raise ValueError(f"cannot read {what} {path}: permission denied.") from err
    except Exception as err:  # a damaged directory raises BadZipFile, UnicodeDecodeError, ...
        raise ValueError(f"{path} is a damaged {what} ({_first_line(err)}): {damaged}") from err
    if size == 0:
        raise ValueError(f"{path} is empty (0 bytes), not an sbflow {what}: {damaged}")
    if not is_zip:
        raise ValueError(
            f"{path} is not an sbflow {what} (not a zip archive written by torch.save): {damaged}"
        )
    if bad is not None:
        raise ValueError(
            f"{path} is a corrupt {what}: its entry {bad!r} fails its CRC check, so bytes changed "
            f"after it was written (disk, copy or transfer error). Restore it from a backup or "
            f"re-create it."
        )


def read_state(path: str | os.PathLike[str], what: str) -> dict[str, Any]:
    """Read and verify a dict written by :func:`write_state` (or a plain ``torch.save``).

    Checks, in order: the file exists and is a zip archive; every entry passes its CRC-32; it
    unpickles with ``weights_only=True`` (no code ever runs); it holds a dict; its SHA-256
    matches the stored one (files without a digest, from older releases, skip this check);
    every floating tensor is finite. The digest entry is removed from the result.

    Args:
        path: The file.
        what: What the file should be (``"checkpoint"``, ``"bridge file"``), for messages.

    Raises:
        ValueError: One message naming the file and what is wrong with it.

    Example:
        >>> import tempfile, pathlib
        >>> p = write_state(pathlib.Path(tempfile.mkdtemp()) / "c.pt", {"a": 1})
        >>> read_state(p, "checkpoint")
        {'a': 1}
    """
    path = Path(path)
    if not path.exists():
        raise ValueError(f"{what} not found: {path}")
    if path.is_dir():
        raise ValueError(f"{path} is a directory; expected an sbflow {what} file.")
    _open_zip(path, what)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise ValueError(
            f"{path} is not an sbflow {what}: it holds Python objects other than tensors and "
            f"plain values, and sbflow never unpickles code from a file."
        ) from err
    except Exception as err:  # damaged or foreign files raise many types
        raise ValueError(
            f"{path} is not a readable sbflow {what} ({type(err).__name__}: {_first_line(err)})."
        ) from err
    if not isinstance(state, dict):
        raise ValueError(f"{path} is not an sbflow {what} (found {type(state).__name__}).")
    stored = state.pop(CHECKSUM_KEY, None)
    if stored is not None:
        try:
            actual = state_digest(state)
        except _Unhashable:
            actual = None
        if actual != stored:
            raise ValueError(
                f"{path} is a corrupt {what}: its content does not match the SHA-256 stored "
                f"when it was written. Restore it from a backup or re-create it."
            )
    check_finite_state(state, f"{what} {path}")
    return state
