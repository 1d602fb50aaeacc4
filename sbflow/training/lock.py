"""A run-directory lock: one training process per ``run_dir`` at a time.

Two processes training into the same run directory would overwrite each other's checkpoint
and log. :class:`RunLock` takes an exclusive :func:`fcntl.flock` on ``run_dir/.lock`` for the
whole training; the kernel releases it when the process exits, however it exits (a SIGKILL
leaves no stale lock). The file records the holder's pid and host for the message a second
process gets. On platforms without :mod:`fcntl` (Windows) the lock is a no-op.
"""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path
from types import TracebackType

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["LOCK_NAME", "RunDirectoryLocked", "RunLock"]

LOCK_NAME = ".lock"


class RunDirectoryLocked(RuntimeError):
    """Another process holds the run directory's lock.

    Example:
        >>> issubclass(RunDirectoryLocked, RuntimeError)  # the CLI reports it with exit 2
        True
    """


class RunLock:
    """Exclusive lock on a run directory, held from :meth:`acquire` to :meth:`release`.

    Args:
        run_dir: The directory (created if missing).

    Raises:
        RunDirectoryLocked: From :meth:`acquire`, naming the directory and the holder's pid,
            when another process holds the lock.

    Example:
        >>> import tempfile
        >>> d = tempfile.mkdtemp()
        >>> with RunLock(d):
        ...     try:
        ...         RunLock(d).acquire()
        ...     except RunDirectoryLocked:
        ...         print("busy")
        busy
        >>> RunLock(d).acquire().release()  # free again once released
    """

    def __init__(self, run_dir: str | os.PathLike[str]) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock.

        Example:
            >>> import tempfile
            >>> RunLock(tempfile.mkdtemp()).held
            False
        """
        return self._fd is not None

    def acquire(self) -> RunLock:
        """Take the lock without waiting; return ``self``.

        Example:
            >>> import tempfile
            >>> RunLock(tempfile.mkdtemp()).acquire().held
            True
        """
        if self._fd is not None:
            return self
        self.run_dir.mkdir(parents=True, exist_ok=True)
        # Not an atomic_path write: the lock is on this very inode, which must never change.
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        self._take(fd)
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode())
        self._fd = fd
        return self

    def check(self) -> None:
        """Raise :class:`RunDirectoryLocked` if another process holds the lock now.

        Creates nothing: a missing directory or lock file means the lock is free.

        Example:
            >>> import tempfile
            >>> RunLock(tempfile.mkdtemp()).check()
        """
        if self._fd is not None:
            return
        try:
            fd = os.open(self.path, os.O_RDWR)
        except OSError:
            return
        self._take(fd)
        os.close(fd)

    def _take(self, fd: int) -> None:
        """flock ``fd`` without waiting; on failure close it and raise, naming the holder."""
        if fcntl is None:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = b""
            with contextlib.suppress(OSError):
                os.lseek(fd, 0, os.SEEK_SET)
                holder = os.read(fd, 200)
            os.close(fd)
            who = holder.decode("utf-8", "replace").strip() or "another process"
            raise RunDirectoryLocked(
                f"run directory {self.run_dir} is in use by {who}; wait for that run to "
                f"finish (or stop it), or use another run directory."
            ) from None

    def release(self) -> None:
        """Release the lock (no-op if not held).

        Example:
            >>> import tempfile
            >>> RunLock(tempfile.mkdtemp()).release()
        """
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)  # closing the descriptor drops the flock

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.release()
