"""How inference runs: torch threads, chunks with a progress bar, and the caller's array type.

One policy for everything that runs a trained model on user data (``Bridge.transport``,
``trajectory``, ``sample``, ``log_prob``, ``evaluate``, the CLI) and for training:

- **Threads.** Small networks on the CPU run fastest on one intra-op thread: thread start-up
  costs more than the work, badly so on a busy machine (``Bridge.evaluate`` on 2 000 points
  took 22 s with torch's default of 2 threads on a loaded 2-core machine, 0.26 s with 1).
  :func:`inference_threads` pins the count on the CPU and restores it afterwards, also when
  the work raises. On a GPU the setting is left alone.
- **Chunks.** :func:`map_chunks` runs a batched function on slices of the input so that memory
  stays bounded, and shows a progress bar on an interactive terminal when the work is long.
- **Types.** :func:`to_caller` returns NumPy for NumPy (or list) input and a tensor with the
  input's dtype and device for tensor input. :func:`clip_to_range` clips to the per-feature
  range observed in the training data (:func:`data_range`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

__all__ = [
    "clip_to_range",
    "data_range",
    "default_chunk_size",
    "inference_threads",
    "map_chunks",
    "pin_threads",
    "resolve_threads",
    "to_caller",
]

# A chunk holds at most this many numbers of one state (16 MiB in float32), and at most
# _MAX_CHUNK_ROWS samples so that long runs report progress. A small MLP is already at full
# speed with a few thousand rows per call, so the split costs nothing measurable.
_CHUNK_ELEMENTS = 2**22
_MAX_CHUNK_ROWS = 16_384
# In auto mode a progress bar appears only once the work has run this long (tqdm's ``delay``).
_PROGRESS_DELAY_S = 2.0


def resolve_threads(
    num_threads: int | None, device: torch.device | str | None = None
) -> int | None:
    """The intra-op thread count to pin for work on ``device`` (``None``: leave torch's).

    Threads only matter on the CPU; on any other device the setting is left alone.

    Args:
        num_threads: Requested count (an integer ≥ 1), or ``None`` to keep torch's setting.
        device: Where the work runs (default: the CPU).

    Returns:
        ``num_threads`` for CPU work, ``None`` otherwise.

    Raises:
        ValueError: If ``num_threads`` is not ``None`` or an integer ≥ 1.

    Example:
        >>> resolve_threads(1, "cpu"), resolve_threads(1, "meta")
        (1, None)
    """
    if num_threads is not None and (
        isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 1
    ):
        raise ValueError(f"num_threads must be an integer ≥ 1 or None; got {num_threads!r}.")
    if device is not None and torch.device(device).type != "cpu":
        return None
    return num_threads


def pin_threads(num_threads: int | None) -> int:
    """Set torch's intra-op thread count (``None``: leave it) and return the previous one.

    The low-level half of :func:`inference_threads`, for code that restores the count in
    its own ``finally`` block (the trainer): ``before = pin_threads(n)`` …
    ``torch.set_num_threads(before)``.

    Example:
        >>> before = pin_threads(1)
        >>> torch.get_num_threads()
        1
        >>> torch.set_num_threads(before)
    """
    before = torch.get_num_threads()
    if num_threads is not None and num_threads != before:
        torch.set_num_threads(num_threads)
    return before


@contextmanager
def inference_threads(
    num_threads: int | None = 1, device: torch.device | str | None = None
) -> Iterator[None]:
    """Run the block with ``num_threads`` torch intra-op threads on the CPU, then restore.

    The thread policy of :func:`sbflow.fit`, shared by inference. The previous count is
    restored when the block ends, also when it raises or is interrupted.

    Args:
        num_threads: Threads inside the block (default 1, fastest for small networks);
            ``None`` leaves torch's setting alone.
        device: Where the work runs; on a GPU the setting is left alone.

    Example:
        >>> before = torch.get_num_threads()
        >>> with inference_threads(1):
        ...     torch.get_num_threads()
        1
        >>> torch.get_num_threads() == before
        True
    """
    before = pin_threads(resolve_threads(num_threads, device))
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def default_chunk_size(x: torch.Tensor) -> int:
    """Rows per chunk for ``x`` of shape ``(n, *dims)``: bounded memory, visible progress.

    At most 2²² numbers (16 MiB of float32) and at most 16 384 samples per chunk.

    Example:
        >>> default_chunk_size(torch.zeros(10, 2)), default_chunk_size(torch.zeros(10, 3, 32, 32))
        (16384, 1365)
    """
    per_row = max(1, int(x[0].numel())) if x.shape[0] > 0 else 1
    return max(1, min(_MAX_CHUNK_ROWS, _CHUNK_ELEMENTS // per_row))


def _show_progress(progress: bool | None) -> bool:
    if progress is None:
        stream = sys.stderr
        return bool(stream is not None and hasattr(stream, "isatty") and stream.isatty())
    if not isinstance(progress, bool):
        raise TypeError(f"progress must be True, False or None (auto); got {progress!r}.")
    return progress


def map_chunks(
    fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    *,
    chunk_size: int | None = None,
    progress: bool | None = None,
    desc: str = "",
    out_dim: int = 0,
) -> torch.Tensor:
    """Apply a batched ``fn`` to ``x`` in chunks of rows and concatenate the results.

    ``fn`` must treat rows independently (a network, an ODE solved per sample); then the
    result equals ``fn(x)`` up to solver tolerances (an adaptive solver picks its steps per
    chunk) while at most one chunk's intermediate states are held in memory. ``fn`` is
    called on the chunks in order, so a random generator it draws from gives the same
    result for the same chunk size.

    Args:
        fn: Maps a tensor of ``m`` rows to a tensor whose axis ``out_dim`` has length ``m``.
        x: Input of shape ``(n, *dims)``.
        chunk_size: Rows per call; ``None`` picks :func:`default_chunk_size`.
        progress: ``None`` (auto): show a bar on an interactive terminal (stderr is a TTY)
            once the work has run 2 s; ``True``: always; ``False``: never.
        desc: Label of the progress bar.
        out_dim: Axis of ``fn``'s output that indexes the rows (``1`` for trajectories of
            shape ``(n_times, m, *dims)``).

    Returns:
        The chunks' results concatenated along ``out_dim``.

    Raises:
        ValueError: If ``chunk_size`` is not a positive integer, or ``fn`` returns a result
            whose axis ``out_dim`` does not match its chunk.

    Example:
        >>> x = torch.arange(10.0).reshape(5, 2)
        >>> map_chunks(lambda c: 2 * c, x, chunk_size=2, progress=False).equal(2 * x)
        True
    """
    n = int(x.shape[0])
    if chunk_size is None:
        chunk_size = default_chunk_size(x)
    elif isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer or None; got {chunk_size!r}.")
    show = _show_progress(progress)
    if n <= chunk_size and not show:
        return _checked(fn(x), n, out_dim)
    bar = None
    if show:
        from tqdm.auto import tqdm

        bar = tqdm(
            total=n,
            desc=desc or None,
            unit="sample",
            unit_scale=True,
            dynamic_ncols=True,
            delay=_PROGRESS_DELAY_S if progress is None else 0.0,
            file=sys.stderr,
        )
    parts: list[torch.Tensor] = []
    try:
        for start in range(0, n, chunk_size):
            chunk = x[start : start + chunk_size]
            parts.append(_checked(fn(chunk), int(chunk.shape[0]), out_dim))
            if bar is not None:
                bar.update(int(chunk.shape[0]))
    finally:
        if bar is not None:
            bar.close()
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=out_dim)


def _checked(out: torch.Tensor, rows: int, out_dim: int) -> torch.Tensor:
    if not isinstance(out, torch.Tensor) or out.dim() <= out_dim or out.shape[out_dim] != rows:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(
            f"map_chunks: fn returned {got} for a chunk of {rows} rows; its axis {out_dim} "
            f"must index the rows (set out_dim)."
        )
    return out


def to_caller(result: torch.Tensor, like: Any) -> Any:
    """Return ``result`` in the array type the caller passed as ``like``.

    - ``torch.Tensor`` input: a tensor on the input's device, in the input's dtype when that
      is floating (integer input, e.g. ``uint8`` pixels, keeps the result's float dtype).
    - NumPy input: a NumPy array, in the input's dtype when that is floating.
    - Anything else (lists, tuples, pandas frames): a NumPy array, since the caller did not
      choose torch.

    The result is detached from autograd in the NumPy cases.

    Args:
        result: The computed tensor.
        like: The caller's original input.

    Example:
        >>> to_caller(torch.ones(2), np.zeros(3, dtype=np.float64)).dtype
        dtype('float64')
        >>> to_caller(torch.ones(2), [[0.0, 1.0]]).dtype
        dtype('float32')
        >>> to_caller(torch.ones(2, dtype=torch.float64), torch.zeros(1)).dtype
        torch.float32
    """
    if isinstance(like, torch.Tensor):
        dtype = like.dtype if like.is_floating_point() else result.dtype
        return result.to(device=like.device, dtype=dtype)
    out = result.detach()
    if out.dtype == torch.bfloat16:  # NumPy has no bfloat16
        out = out.to(torch.float32)
    array = out.cpu().numpy()
    if isinstance(like, np.ndarray) and np.issubdtype(like.dtype, np.floating):
        array = array.astype(like.dtype, copy=False)
    return array


def data_range(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-feature minimum and maximum over the samples of ``x`` (shape ``(n, *dims)``).

    What a bridge stores to offer clipping to the training data's observed range.

    Example:
        >>> low, high = data_range(torch.tensor([[0.0, 5.0], [2.0, -1.0]]))
        >>> low.tolist(), high.tolist()
        ([0.0, -1.0], [2.0, 5.0])
    """
    if x.dim() < 2 or x.shape[0] == 0:
        raise ValueError(f"x must have shape (n, *dims) with n ≥ 1; got {tuple(x.shape)}.")
    return x.amin(dim=0), x.amax(dim=0)


def clip_to_range(x: torch.Tensor, low: Any, high: Any) -> torch.Tensor:
    """Clip samples to ``[low, high]`` feature by feature.

    ``x`` has shape ``(..., *dims)`` (samples, or a trajectory ``(n_times, n, *dims)``);
    ``low`` and ``high`` have shape ``dims`` (from :func:`data_range`) or are scalars.

    Raises:
        ValueError: If a bound does not broadcast against one sample, or ``low > high``.

    Example:
        >>> clip_to_range(torch.tensor([[-3.0, 0.5], [9.0, 2.0]]), 0.0, 1.0).tolist()
        [[0.0, 0.5], [1.0, 1.0]]
    """
    lo = torch.as_tensor(low, dtype=x.dtype, device=x.device)
    hi = torch.as_tensor(high, dtype=x.dtype, device=x.device)
    for name, bound in (("low", lo), ("high", hi)):
        if bound.dim() > x.dim() or (bound.dim() and bound.shape != x.shape[-bound.dim() :]):
            raise ValueError(
                f"{name} has shape {tuple(bound.shape)}, which does not match the end of the "
                f"samples' shape {tuple(x.shape)}; pass a scalar or bounds of one sample's shape."
            )
    if bool((lo > hi).any()):
        raise ValueError("low exceeds high for some features; pass low ≤ high.")
    return torch.clamp(x, min=lo, max=hi)
