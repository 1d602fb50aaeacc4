"""Reading and writing sample sets: arrays, files and built-in names, with atomic writes.

Supported files: ``.npy``, ``.npz`` (pick the array with ``key``), ``.csv`` (numbers, an
optional header row), ``.pt``/``.pth`` (a tensor, or a dict of tensors with ``key``) and AnnData
``.h5ad`` (``key`` names an ``obsm`` entry such as ``"X_pca"``; without it ``X`` is used).
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sbflow._checks import as_samples
from sbflow.data.toy import DATASETS, sample_dataset

__all__ = [
    "SAMPLE_SUFFIXES",
    "atomic_path",
    "check_writable",
    "load_samples",
    "remove_temp_files",
    "save_samples",
    "subsample",
]

SAMPLE_SUFFIXES = (".npy", ".npz", ".csv", ".pt", ".pth", ".h5ad")

DEFAULT_N = 10_000


def _umask() -> int:
    """The process umask, read without changing it where the platform allows."""
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    mask = os.umask(0o022)  # elsewhere: read by setting, then restore at once
    os.umask(mask)
    return mask


def _fsync_directory(directory: Path) -> None:
    # Makes the rename itself durable; some platforms and file systems cannot open or sync a
    # directory, and there the rename is as durable as the file system makes it.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def check_writable(path: str | os.PathLike[str], what: str = "output file") -> Path:
    """Check, before any long work, that ``path`` can be written by :func:`atomic_path`.

    The nearest existing ancestor of ``path`` must be a writable directory (missing
    directories are created on writing), and an existing ``path`` must be a file that is not
    read-only: sbflow refuses to replace a read-only file, as ``cp`` does.

    Args:
        path: The file to be written.
        what: What the file is, for messages.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: If ``path`` is a directory or a parent is not a directory.
        PermissionError: If the file is read-only or its directory is not writable.

    Example:
        >>> import tempfile, pathlib
        >>> check_writable(pathlib.Path(tempfile.mkdtemp()) / "new" / "x.npy").name
        'x.npy'
    """
    final = Path(path)
    if final.is_dir():
        raise ValueError(f"{what} {final} is a directory; give a file name.")
    if final.exists():
        mode = final.stat().st_mode
        if not mode & stat.S_IWUSR or not os.access(final, os.W_OK):
            raise PermissionError(
                f"{what} {final} exists and is read-only; sbflow does not replace read-only "
                f"files: remove it or make it writable (chmod u+w) first, or choose another name."
            )
    ancestor = final.parent if str(final.parent) else Path(".")
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ValueError(f"cannot write {what} {final}: {ancestor} is not a directory.")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise PermissionError(
            f"cannot write {what} {final}: no permission to create files in {ancestor}; choose "
            f"another location."
        )
    return final


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it onto ``path`` only on success.

    Readers never see a half-written file: the data goes to a hidden temporary file
    ``.NAME.XXXXXXXX.tmp`` in the same directory (created if missing), which is flushed to
    disk (fsync), renamed atomically onto ``path`` with :func:`os.replace` once the block
    exits cleanly, after which the directory is synced too. On an exception (including
    ``KeyboardInterrupt``) the temporary file is removed and ``path`` is left untouched; only
    a hard kill can leave the temporary file behind (:func:`remove_temp_files` cleans it).

    The new file gets the mode ``0o666`` less the umask, or keeps the mode of the file it
    replaces; a read-only ``path`` is not replaced (see :func:`check_writable`). Errors name
    ``path``, not the temporary file.

    Example:
        >>> import tempfile, pathlib
        >>> target = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
        >>> with atomic_path(target) as tmp:
        ...     _ = tmp.write_text("done")
        >>> target.read_text()
        'done'
    """
    final = check_writable(path, "file")
    directory = final.parent if str(final.parent) else Path(".")
    mode = stat.S_IMODE(final.stat().st_mode) if final.exists() else 0o666 & ~_umask()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=directory)
    except OSError as err:
        raise type(err)(f"cannot write {final}: {err.strerror or err}") from err
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        try:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            os.chmod(tmp, mode)
            os.replace(tmp, final)
        except OSError as err:
            raise type(err)(f"cannot write {final}: {err.strerror or err}") from err
        _fsync_directory(directory)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def remove_temp_files(path: str | os.PathLike[str]) -> list[Path]:
    """Delete the temporary files that :func:`atomic_path` left next to ``path`` when killed.

    Only names of :func:`atomic_path`'s own pattern (``.NAME.XXXXXXXX.tmp``) are touched. Call
    it only when no other process can be writing ``path`` (for a run directory: under its
    lock, see :mod:`sbflow.training.lock`).

    Returns:
        The files removed.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (d / ".c.pt.ab_c1234.tmp").write_text("half")
        >>> [p.name for p in remove_temp_files(d / "c.pt")]
        ['.c.pt.ab_c1234.tmp']
    """
    final = Path(path)
    directory = final.parent if str(final.parent) else Path(".")
    pattern = re.compile(rf"\.{re.escape(final.name)}\.[A-Za-z0-9_]{{8}}\.tmp")
    removed = []
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        for entry in directory.iterdir():
            if pattern.fullmatch(entry.name) and entry.is_file() and not entry.is_symlink():
                with contextlib.suppress(FileNotFoundError):
                    entry.unlink()
                    removed.append(entry)
    return removed


def subsample(
    x: torch.Tensor, n: int | None, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Return ``n`` rows of ``x`` drawn without replacement (all rows when ``n`` is None).

    Example:
        >>> subsample(torch.arange(10.0).reshape(5, 2), 2,
        ...           generator=torch.Generator().manual_seed(0)).shape
        torch.Size([2, 2])
    """
    if n is None:
        return x
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer; got {n!r}.")
    if n > x.shape[0]:
        raise ValueError(
            f"asked for n={n} samples but the data only has {x.shape[0]}; pass a smaller n."
        )
    if n == x.shape[0]:
        return x
    idx = torch.randperm(x.shape[0], generator=generator)[:n]
    return x[idx.to(x.device)]


class _FileError(ValueError):
    """A ValueError whose message is already meant for the user."""


def _pick_key(arrays: dict[str, Any], key: str | None, path: Path, what: str) -> Any:
    names = list(arrays)
    if key is None:
        if len(names) == 1:
            return arrays[names[0]]
        raise _FileError(
            f"{path} holds several {what} ({', '.join(names)}); choose one with key=..."
            f" (--key on the command line)."
        )
    if key not in arrays:
        raise _FileError(
            f"{path} has no {what[:-1]} named {key!r}; available: {', '.join(names) or 'none'}."
        )
    return arrays[key]


def _read_csv(path: Path) -> np.ndarray:
    with open(path, encoding="utf-8") as fh:
        first = fh.readline()
    delimiter = "\t" if "\t" in first and "," not in first else ","
    try:
        [float(v) for v in first.strip().split(delimiter) if v.strip()]
        skip = 0
    except ValueError:
        skip = 1  # a header row
    try:
        data = np.loadtxt(path, delimiter=delimiter, skiprows=skip, ndmin=2, dtype=np.float64)
    except ValueError as err:
        raise _FileError(
            f"{path} is not a numeric CSV table ({err}); expect one sample per row, one number "
            f"per column and at most one header row."
        ) from err
    return data


def _read_h5ad(path: Path, key: str | None) -> np.ndarray:
    try:
        import anndata
    except ImportError as err:
        raise ImportError(
            f"reading {path} needs the optional package anndata: pip install anndata "
            f"(or pip install 'sbflow[anndata]')."
        ) from err
    adata = anndata.read_h5ad(path)
    if key is None or key == "X":
        matrix = adata.X
    else:
        matrix = _pick_key(dict(adata.obsm), key, path, "obsm entries")
    if hasattr(matrix, "toarray"):
        matrix = matrix.toarray()
    return np.asarray(matrix, dtype=np.float64)


def _read_file(path: Path, key: str | None) -> Any:
    suffix = path.suffix.lower()
    if suffix not in SAMPLE_SUFFIXES:
        raise ValueError(
            f"cannot read {path}: unsupported file type {suffix or '(none)'}; use one of "
            f"{', '.join(SAMPLE_SUFFIXES)}."
        )
    try:
        if suffix == ".npy":
            return np.load(path, allow_pickle=False)
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                return np.array(_pick_key(dict(archive), key, path, "arrays"))
        if suffix == ".csv":
            return _read_csv(path)
        if suffix in (".pt", ".pth"):
            obj = torch.load(path, map_location="cpu", weights_only=True)
            if isinstance(obj, dict):
                obj = _pick_key(obj, key, path, "entries")
            return obj
        return _read_h5ad(path, key)
    except (_FileError, ImportError):
        raise
    except Exception as err:  # corrupt or truncated files raise many different types
        raise ValueError(f"could not read {path}: {type(err).__name__}: {err}") from err


def load_samples(
    source: Any,
    *,
    key: str | None = None,
    n: int | None = None,
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Load a sample set from an array, a file or the name of a built-in set.

    Args:
        source: A tensor or NumPy array of shape ``(n, *dims)``; a path to a ``.npy``,
            ``.npz``, ``.csv``, ``.pt`` or ``.h5ad`` file; or a built-in name from
            :data:`sbflow.data.DATASETS`.
        key: Which array to take from an ``.npz``/``.pt`` dict, or which ``obsm`` entry of an
            AnnData file (``"X"`` or ``None`` for the expression matrix).
        n: For a built-in name, how many points to draw (default 10 000); for data, draw this
            many rows without replacement (default: all rows).
        generator: Randomness for drawing points or rows.
        dtype: Floating dtype of the result (default: the data's own floating dtype; float32
            for binary files holding integers; float64 for CSV).

    Returns:
        A finite floating tensor of shape ``(n, *dims)``.

    Raises:
        ValueError: Unknown name, missing or unreadable file, wrong shape, NaN/Inf.
        ImportError: An ``.h5ad`` file without ``anndata`` installed.

    Example:
        >>> load_samples("moons", n=5, generator=torch.Generator().manual_seed(0)).shape
        torch.Size([5, 2])
    """
    if isinstance(source, (torch.Tensor, np.ndarray)):
        x = as_samples(source, "samples", dtype=dtype)
        return subsample(x, n, generator=generator)
    if isinstance(source, (list, tuple)):
        x = as_samples(source, "samples", dtype=dtype)
        return subsample(x, n, generator=generator)
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(
            f"samples must be a tensor, an array, a file path or a dataset name; got "
            f"{type(source).__name__}."
        )
    text = os.fspath(source)
    path = Path(text)
    if path.suffix.lower() not in SAMPLE_SUFFIXES and text.strip().lower() in DATASETS:
        return sample_dataset(text, DEFAULT_N if n is None else n, generator=generator, dtype=dtype)
    if not path.exists():
        if path.suffix:
            raise ValueError(f"file not found: {path}")
        raise ValueError(
            f"{text!r} is neither an existing file nor a built-in dataset; built-in sample sets "
            f"are: {', '.join(DATASETS)}."
        )
    if path.is_dir():
        raise ValueError(f"{path} is a directory; pass a file of samples.")
    raw = _read_file(path, key)
    if isinstance(raw, np.ndarray) and raw.dtype.kind not in "fiub":
        raise ValueError(f"{path} holds a non-numeric array (dtype {raw.dtype}).")
    if isinstance(raw, np.ndarray) and raw.dtype.kind in "iub" and dtype is None:
        dtype = torch.float32
    if not isinstance(raw, (np.ndarray, torch.Tensor)):
        raise ValueError(f"{path} does not hold an array (found {type(raw).__name__}).")
    x = as_samples(raw, str(path), dtype=dtype)
    return subsample(x, n, generator=generator)


def save_samples(
    path: str | os.PathLike[str], x: Any, *, key: str = "x", extra: dict[str, Any] | None = None
) -> Path:
    """Write samples to ``path`` atomically, in the format given by its suffix.

    ``.npy`` holds ``x`` alone; ``.npz`` and ``.pt`` hold ``{key: x, **extra}``; ``.csv`` holds
    ``x`` flattened to ``(n, features)`` with a header (``extra`` is not allowed there).

    Args:
        path: Output file (``.npy``, ``.npz``, ``.csv`` or ``.pt``).
        x: Tensor or array of shape ``(n, *dims)``.
        key: Name of ``x`` inside ``.npz``/``.pt`` files.
        extra: More named arrays for ``.npz``/``.pt`` files.

    Returns:
        The path written.

    Example:
        >>> import tempfile, pathlib
        >>> p = save_samples(pathlib.Path(tempfile.mkdtemp()) / "x.npy", torch.zeros(3, 2))
        >>> load_samples(p).shape
        torch.Size([3, 2])
    """
    path = Path(path)
    suffix = path.suffix.lower()
    arrays = {key: x, **(extra or {})}
    np_arrays = {
        k: (v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v))
        for k, v in arrays.items()
    }
    if suffix == ".npy" and extra:
        raise ValueError(f"{path}: .npy holds one array; use .npz to store several.")
    if suffix == ".csv" and extra:
        raise ValueError(f"{path}: .csv holds one table; use .npz to store several arrays.")
    if suffix not in (".npy", ".npz", ".csv", ".pt", ".pth"):
        raise ValueError(
            f"cannot write {path}: unsupported file type {suffix or '(none)'}; use .npy, .npz, "
            f".csv or .pt."
        )
    with atomic_path(path) as tmp:
        if suffix == ".npy":
            with open(tmp, "wb") as fh:
                np.save(fh, np_arrays[key])
        elif suffix == ".npz":
            with open(tmp, "wb") as fh:
                np.savez(fh, **np_arrays)
        elif suffix == ".csv":
            table = np_arrays[key].reshape(np_arrays[key].shape[0], -1)
            header = ",".join(f"x{i}" for i in range(table.shape[1]))
            fmt = "%.9g" if table.dtype.itemsize <= 4 else "%.17g"  # exact round trip
            np.savetxt(tmp, table, delimiter=",", header=header, comments="", fmt=fmt)
        else:
            torch.save({k: torch.as_tensor(v) for k, v in np_arrays.items()}, tmp)
    return path
