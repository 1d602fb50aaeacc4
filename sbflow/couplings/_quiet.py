"""Muting the banners that optional back ends print on import, safely across threads."""

from __future__ import annotations

import contextlib
import io
import threading
from collections.abc import Iterator

__all__ = ["muted_stdout"]

# redirect_stdout swaps the process-wide sys.stdout: two threads interleaving their
# enter/exit (the trainer's prefetch workers import POT lazily) would leave it redirected.
_LOCK = threading.RLock()


@contextlib.contextmanager
def muted_stdout() -> Iterator[None]:
    """Swallow what the body prints to stdout, holding a process-wide lock meanwhile.

    Example:
        >>> with muted_stdout():
        ...     print("not shown")
    """
    with _LOCK, contextlib.redirect_stdout(io.StringIO()):
        yield
