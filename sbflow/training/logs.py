"""Training logs: a CSV file (always available) and TensorBoard (when installed)."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

from sbflow.data.io import atomic_path

__all__ = ["CSVLogger", "TensorBoardLogger", "tensorboard_available"]


class CSVLogger:
    """Append ``step, loss, lr, …`` rows to a CSV file.

    When a run resumes from a checkpoint at step ``k``, rows logged after ``k`` by the
    interrupted run are dropped first, so the file describes exactly one run.

    Args:
        path: The CSV file.
        fields: Column names (``step`` first).
        resume_step: Keep only rows with ``step ≤ resume_step`` from an existing file; ``None``
            starts a new file.

    Raises:
        ValueError: If the existing file is not a readable CSV log (when resuming).

    Example:
        >>> import tempfile, pathlib
        >>> log = CSVLogger(pathlib.Path(tempfile.mkdtemp()) / "log.csv", ["step", "loss"])
        >>> log.log({"step": 1, "loss": 0.5}); log.close()
        >>> log.path.read_text().splitlines()
        ['step,loss', '1,0.5']
    """

    def __init__(
        self, path: str | os.PathLike[str], fields: list[str], *, resume_step: int | None = None
    ) -> None:
        self.path = Path(path)
        self.fields = list(fields)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        kept: list[dict[str, str]] = []
        if resume_step is not None and self.path.is_file():
            try:
                with open(self.path, newline="", encoding="utf-8") as fh:
                    lines = fh.readlines()
                if lines and not lines[-1].endswith("\n"):
                    lines.pop()  # a row cut short by a kill: its numbers may be truncated
                for row in csv.DictReader(lines):
                    try:
                        if int(row.get("step") or "") <= resume_step:
                            kept.append(row)
                    except ValueError:
                        continue
            except (UnicodeDecodeError, csv.Error) as err:
                raise ValueError(
                    f"{self.path} is not a readable training log ({err}); it was damaged or "
                    f"replaced by another file. Move it away to resume with a new log."
                ) from err
        with atomic_path(self.path) as tmp:
            with open(tmp, "w", newline="", encoding="utf-8") as fh:
                writer = csv.DictWriter(fh, fieldnames=self.fields, extrasaction="ignore")
                writer.writeheader()
                writer.writerows(kept)
        self._fh = open(self.path, "a", newline="", encoding="utf-8")
        self._writer = csv.DictWriter(self._fh, fieldnames=self.fields, extrasaction="ignore")

    def log(self, row: dict[str, Any]) -> None:
        """Write one row (missing columns stay empty).

        Example:
            >>> import tempfile, pathlib
            >>> CSVLogger(pathlib.Path(tempfile.mkdtemp()) / "l.csv", ["step"]).log({"step": 0})
        """
        self._writer.writerow(row)

    def flush(self) -> None:
        """Flush buffered rows to disk.

        Example:
            >>> import tempfile, pathlib
            >>> CSVLogger(pathlib.Path(tempfile.mkdtemp()) / "l.csv", ["step"]).flush()
        """
        self._fh.flush()

    def close(self) -> None:
        """Flush and close the file.

        Example:
            >>> import tempfile, pathlib
            >>> CSVLogger(pathlib.Path(tempfile.mkdtemp()) / "l.csv", ["step"]).close()
        """
        if not self._fh.closed:
            self._fh.close()


def tensorboard_available() -> bool:
    """Whether ``torch.utils.tensorboard`` can be imported (needs the ``tensorboard`` package).

    Example:
        >>> isinstance(tensorboard_available(), bool)
        True
    """
    try:
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except Exception:
        return False
    return True


class TensorBoardLogger:
    """Scalars to TensorBoard event files under ``log_dir``.

    Raises:
        ImportError: If TensorBoard is not installed (``pip install tensorboard``).

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> try:
        ...     logger = TensorBoardLogger(d)
        ... except ImportError as err:  # without tensorboard: the message says what to install
        ...     print("pip install tensorboard" in str(err))
        ... else:
        ...     logger.log({"step": 1, "loss": 0.5})
        ...     logger.close()
        ...     print(len(list(d.glob("events.out.tfevents.*"))) == 1)
        True
    """

    def __init__(self, log_dir: str | os.PathLike[str], *, purge_step: int | None = None) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except Exception as err:
            raise ImportError(
                "TensorBoard logging needs the tensorboard package: pip install tensorboard "
                "(or pip install 'sbflow[tensorboard]')."
            ) from err
        self._writer = SummaryWriter(log_dir=str(log_dir), purge_step=purge_step)

    def log(self, row: dict[str, Any]) -> None:
        """Write every numeric entry of ``row`` except ``step`` as a scalar at ``row['step']``.

        Example:
            >>> import tempfile
            >>> if tensorboard_available():
            ...     TensorBoardLogger(tempfile.mkdtemp()).log({"step": 1, "loss": 0.1})
        """
        step = int(row["step"])
        for name, value in row.items():
            if name != "step" and isinstance(value, (int, float)):
                self._writer.add_scalar(f"train/{name}", value, step)

    def flush(self) -> None:
        """Flush events to disk.

        Example:
            >>> import tempfile
            >>> if tensorboard_available():
            ...     TensorBoardLogger(tempfile.mkdtemp()).flush()
        """
        self._writer.flush()

    def close(self) -> None:
        """Close the event file.

        Example:
            >>> import tempfile
            >>> if tensorboard_available():
            ...     TensorBoardLogger(tempfile.mkdtemp()).close()
        """
        self._writer.close()
