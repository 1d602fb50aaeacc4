"""Memory checks before large dense allocations.

sbflow checks the size of every dense ``(n, m)`` matrix (cost matrices, transport plans,
batches) against the memory the device has free *before* allocating it, so that a too-large
problem fails at once with a message naming the alternatives, instead of dying in the
allocator (or being killed by the operating system) minutes later.

Free memory is read from ``MemAvailable`` in ``/proc/meminfo`` on Linux (``os.sysconf``
elsewhere) and from :func:`torch.cuda.mem_get_info` on CUDA devices. Only a fraction
(:data:`SAFETY_FRACTION`) of it is granted to one allocation: intermediate tensors of the
same size are common (a cost matrix and its exponential, a plan and its copy).
"""

from __future__ import annotations

import os

import torch

__all__ = [
    "SAFETY_FRACTION",
    "UNCHECKED_BYTES",
    "InsufficientMemoryError",
    "available_bytes",
    "format_bytes",
    "require_memory",
]

SAFETY_FRACTION = 0.5
"""Share of the currently free memory that one requested allocation may use."""

UNCHECKED_BYTES = 2**20
"""Allocations up to this size pass without probing free memory (the probe reads
``/proc/meminfo``, which costs more than a minibatch coupling's own small buffers)."""


class InsufficientMemoryError(MemoryError, ValueError):
    """A requested allocation would not fit in the memory that is free.

    Subclasses both :class:`MemoryError` and :class:`ValueError`, so callers that treat bad
    sizes as input errors and callers that treat them as memory errors both catch it.

    Example:
        >>> issubclass(InsufficientMemoryError, MemoryError)
        True
    """


def format_bytes(nbytes: float) -> str:
    """A human-readable size with binary prefixes.

    Example:
        >>> format_bytes(3 * 2**30)
        '3.0 GiB'
    """
    value = float(nbytes)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"  # pragma: no cover


def _read_int(path: str) -> int | None:
    try:
        with open(path, encoding="ascii") as fh:
            return int(fh.read().strip())
    except (OSError, ValueError):
        return None


def _cgroup_available() -> int | None:
    # A container's memory limit is invisible in /proc/meminfo, which shows the host's.
    for limit_path, usage_path in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        (
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "/sys/fs/cgroup/memory/memory.usage_in_bytes",
        ),
    ):
        limit, usage = _read_int(limit_path), _read_int(usage_path)
        if limit is not None and usage is not None and limit < 2**60:
            return max(0, limit - usage)
    return None


def _cpu_available() -> int | None:
    free = None
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    free = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    if free is None:
        try:
            free = int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError, AttributeError):
            free = None
    limited = _cgroup_available()
    if limited is None:
        return free
    return limited if free is None else min(free, limited)


def available_bytes(device: torch.device | str | None = None) -> int | None:
    """Bytes currently free on ``device`` (CPU when ``None``), or ``None`` if unknown.

    Example:
        >>> available_bytes("cpu") is None or available_bytes("cpu") > 0
        True
    """
    dev = torch.device("cpu") if device is None else torch.device(device)
    if dev.type == "cuda":
        try:
            free, _ = torch.cuda.mem_get_info(dev)
        except (RuntimeError, AssertionError):
            return None
        return int(free)
    if dev.type == "cpu":
        return _cpu_available()
    return None


def require_memory(
    nbytes: int,
    *,
    what: str,
    hint: str,
    device: torch.device | str | None = None,
) -> None:
    """Raise :class:`InsufficientMemoryError` unless ``nbytes`` fit in free memory.

    The request must fit in ``SAFETY_FRACTION`` of the memory currently free on ``device``.
    Where free memory cannot be determined (e.g. on MPS), the check passes.

    Args:
        nbytes: Size of the planned allocation in bytes.
        what: What would be allocated, e.g. ``"the dense (30000, 30000) float64 cost
            matrix"``; starts the message.
        hint: What the user can do instead, e.g. ``"use backend='keops' or a smaller
            batch"``; ends the message.
        device: Device of the allocation (CPU when ``None``).

    Raises:
        InsufficientMemoryError: If the allocation would not fit.

    Example:
        >>> require_memory(1024, what="a small buffer", hint="none needed")
        >>> try:
        ...     require_memory(2**50, what="a huge matrix", hint="Use a smaller batch.")
        ... except InsufficientMemoryError as err:
        ...     print(str(err).split(",")[0])
        a huge matrix needs 1024.0 TiB
    """
    nbytes = int(nbytes)
    if nbytes <= UNCHECKED_BYTES:
        return
    free = available_bytes(device)
    if free is None or nbytes <= SAFETY_FRACTION * free:
        return
    dev = "cpu" if device is None else str(torch.device(device))
    raise InsufficientMemoryError(
        f"{what} needs {format_bytes(nbytes)}, but only {format_bytes(free)} are free on "
        f"{dev}. {hint}".rstrip()
    )
