"""Multi-process training with ``torch.distributed``: process groups, DDP, global couplings.

Launch a script that calls :func:`sbflow.fit` (or builds a :class:`~sbflow.training.Trainer`)
with ``torchrun --nproc-per-node=N script.py``; torchrun sets ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` and :func:`init_distributed` picks them up
(NCCL on GPUs, gloo on the CPU). What changes under ``N`` processes:

* **data**: every rank draws its own batch; the generator of step ``k`` on rank ``r`` is
  seeded from ``step_seed(seed, k, r)`` (rank 0 draws exactly the single-process batches);
* **model**: wrapped in :class:`~torch.nn.parallel.DistributedDataParallel`; gradients are
  averaged over ranks, so the weights, the optimiser and the EMA stay identical everywhere;
* **couplings**: ``"local"`` couples each rank's batch on its own (no communication);
  ``"global"`` gathers the batches of all ranks, solves one coupling of the gathered batch on
  rank 0, broadcasts the index pairs and hands each rank its slice of them
  (:class:`GlobalCouplingSampler`);
* **checkpoints and logs**: rank 0 reads the checkpoint (and sends it to the others) and is
  the only one that writes checkpoints, log files and progress bars; the logged loss is the
  mean over ranks (:func:`reduce_mean`).

Collectives issued by the coupling step run on a separate gloo group, so they can run in the
prefetch thread while the main thread all-reduces gradients on the default group.

Example:
    >>> init_distributed("auto") is None  # not launched by torchrun
    True
"""

from __future__ import annotations

import atexit
import datetime
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from sbflow.training.checkpoint import load_checkpoint

__all__ = [
    "COUPLING_SCOPES",
    "PRECISIONS",
    "AutocastForward",
    "DistContext",
    "GlobalCouplingSampler",
    "LocalSampler",
    "init_distributed",
    "is_main",
    "launched_by_torchrun",
    "loopback_rank_envs",
    "make_sampler",
    "prepare_model",
    "read_resume_state",
    "reduce_mean",
]

COUPLING_SCOPES = ("local", "global")
PRECISIONS = ("fp32", "bf16")

_ENV_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")

# The gloo group used for coupling collectives, created once per default process group.
_COUPLING_GROUPS: dict[int, Any] = {}


def launched_by_torchrun() -> bool:
    """Whether the torchrun environment variables (``RANK``, ``WORLD_SIZE``…) are all set.

    Example:
        >>> import os
        >>> from unittest import mock
        >>> with mock.patch.dict(os.environ, loopback_rank_envs(1)[0]):  # what torchrun sets
        ...     launched_by_torchrun()
        True
    """
    return all(name in os.environ for name in _ENV_VARS)


def loopback_rank_envs(world_size: int) -> list[dict[str, str]]:
    """The environments of ``world_size`` processes on this machine, as ``torchrun`` sets them.

    Picks a free port on 127.0.0.1 for the rendezvous and returns, for each rank, a copy of
    ``os.environ`` with ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``LOCAL_WORLD_SIZE``,
    ``MASTER_ADDR``/``MASTER_PORT`` (loopback only), ``GLOO_SOCKET_IFNAME=lo`` and
    ``OMP_NUM_THREADS=1``. Start one process per environment (``subprocess.Popen(...,
    env=env)``) to run a multi-process job without ``torchrun``, e.g. in tests.

    Example:
        >>> envs = loopback_rank_envs(2)
        >>> [e["RANK"] for e in envs], envs[0]["MASTER_PORT"] == envs[1]["MASTER_PORT"]
        (['0', '1'], True)
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = str(sock.getsockname()[1])
    envs = []
    for rank in range(world_size):
        env = dict(os.environ)
        env.update(
            RANK=str(rank),
            LOCAL_RANK=str(rank),
            WORLD_SIZE=str(world_size),
            LOCAL_WORLD_SIZE=str(world_size),
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=port,
            GLOO_SOCKET_IFNAME="lo",
            OMP_NUM_THREADS="1",
        )
        envs.append(env)
    return envs


@dataclass
class DistContext:
    """Where this process sits in a distributed run.

    Attributes:
        rank: Global rank in ``[0, world_size)``.
        world_size: Number of processes.
        local_rank: Rank on this machine (selects the GPU).
        backend: Backend of the default process group (``"nccl"`` or ``"gloo"``).
        device: The device this rank trains on (``cuda:local_rank`` or ``cpu``).
        coupling_group: A gloo process group for the CPU-side collectives of the coupling
            step (``None`` for the default group; a separate group lets them run in the
            prefetch thread).

    Example:
        >>> ctx = DistContext(rank=0, world_size=1, local_rank=0, backend="gloo",
        ...                   device=torch.device("cpu"))
        >>> ctx.is_main
        True
    """

    rank: int
    world_size: int
    local_rank: int
    backend: str
    device: torch.device
    coupling_group: Any = field(default=None, repr=False)

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that reads and writes files and shows progress."""
        return self.rank == 0

    def barrier(self) -> None:
        """Wait until every rank gets here (on the gloo coupling group).

        Example:
            >>> DistContext(0, 1, 0, "gloo", torch.device("cpu")).barrier()  # world of 1: no-op
        """
        if self.world_size > 1:
            dist.barrier(group=self.coupling_group)


def is_main(ctx: DistContext | None) -> bool:
    """True outside distributed runs and on rank 0.

    Example:
        >>> is_main(None)
        True
    """
    return ctx is None or ctx.is_main


def _coupling_group() -> Any:
    key = id(dist.group.WORLD)
    if key not in _COUPLING_GROUPS:
        _COUPLING_GROUPS[key] = dist.new_group(backend="gloo")
    return _COUPLING_GROUPS[key]


def _destroy_process_group() -> None:  # pragma: no cover - runs at interpreter exit
    if dist.is_available() and dist.is_initialized():
        _COUPLING_GROUPS.clear()
        dist.destroy_process_group()


def init_distributed(
    mode: bool | str = "auto",
    *,
    device: torch.device | str | None = None,
    backend: str | None = None,
    timeout_s: float = 1800.0,
) -> DistContext | None:
    """Join (or reuse) the default process group and describe this rank.

    Args:
        mode: ``"auto"`` joins when launched by torchrun (its environment variables are set)
            or when a process group already exists, and returns ``None`` otherwise;
            ``True`` requires one of the two (``ValueError`` if neither); ``False`` returns
            ``None``.
        device: ``"cpu"`` or ``"cuda"`` (any index is replaced by ``LOCAL_RANK``); default:
            CUDA when available.
        backend: Process-group backend; default ``"nccl"`` for CUDA, ``"gloo"`` for the CPU.
            Ignored when the group already exists.
        timeout_s: Timeout of collectives in seconds (a rank that died stalls the others
            this long before they fail).

    Returns:
        The :class:`DistContext`, or ``None`` when not running distributed. A group created
        here is destroyed when the interpreter exits.

    Raises:
        ValueError: ``mode=True`` without torchrun variables, a bad ``mode``, or more local
            ranks than GPUs.

    Example:
        >>> init_distributed(False) is None
        True
    """
    if mode not in ("auto", True, False):
        raise ValueError(f"distributed must be 'auto', True or False; got {mode!r}.")
    if mode is False:
        return None
    available = dist.is_available()
    initialised = available and dist.is_initialized()
    if not initialised and not launched_by_torchrun():
        if mode == "auto":
            return None
        missing = [name for name in _ENV_VARS if name not in os.environ]
        raise ValueError(
            f"distributed=True needs a launcher: the environment variables {missing} are not "
            f"set. Run the script with `torchrun --nproc-per-node=N script.py` (or set "
            f"distributed='auto' to train in one process)."
        )
    if not available:  # pragma: no cover - torch builds without distributed support
        raise ValueError("this torch build has no torch.distributed support.")
    dev = torch.device(device) if device is not None else None
    if dev is None:
        dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("device='cuda' was requested but CUDA is not available.")
        if local_rank >= torch.cuda.device_count():
            raise ValueError(
                f"LOCAL_RANK={local_rank} but this machine has {torch.cuda.device_count()} "
                f"GPU(s); start at most one process per GPU (--nproc-per-node)."
            )
        dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
    if not initialised:
        name = backend or ("nccl" if dev.type == "cuda" else "gloo")
        options: dict[str, Any] = {}
        if dev.type == "cuda" and name == "nccl":
            options["device_id"] = dev  # binds the communicator to this GPU up front
        dist.init_process_group(
            backend=name,
            init_method="env://",
            timeout=datetime.timedelta(seconds=timeout_s),
            **options,
        )
        atexit.register(_destroy_process_group)
    ctx = DistContext(
        rank=dist.get_rank(),
        world_size=dist.get_world_size(),
        local_rank=local_rank,
        backend=str(dist.get_backend()),
        device=dev,
    )
    ctx.coupling_group = _coupling_group()
    return ctx


# -- model step ---------------------------------------------------------------------------------


def _upcast(out: Any) -> Any:
    if isinstance(out, torch.Tensor):
        return out.float() if out.is_floating_point() and out.element_size() < 4 else out
    if isinstance(out, tuple):
        return tuple(_upcast(o) for o in out)
    if isinstance(out, list):
        return [_upcast(o) for o in out]
    if isinstance(out, dict):
        return {k: _upcast(v) for k, v in out.items()}
    return out


class AutocastForward(nn.Module):
    """Run a module's forward under ``torch.autocast`` and return float32 outputs.

    Matrix products run in bfloat16 (tensor cores on recent GPUs); the loss that the caller
    computes from the outputs stays in float32, and the weights, gradients and optimiser
    state are never lowered. bfloat16 keeps float32's exponent range, so no loss scaling is
    needed.

    Args:
        module: The wrapped module (possibly a ``DistributedDataParallel``).
        device_type: ``"cuda"`` or ``"cpu"``.
        dtype: The autocast dtype (default ``torch.bfloat16``).

    Example:
        >>> net = AutocastForward(torch.nn.Linear(2, 2), "cpu")
        >>> net(torch.ones(1, 2)).dtype
        torch.float32
    """

    def __init__(
        self, module: nn.Module, device_type: str, dtype: torch.dtype = torch.bfloat16
    ) -> None:
        super().__init__()
        self.module = module
        self.device_type = device_type
        self.dtype = dtype

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """The wrapped forward under autocast, low-precision outputs cast to float32."""
        with torch.autocast(device_type=self.device_type, dtype=self.dtype):
            out = self.module(*args, **kwargs)
        return _upcast(out)


def prepare_model(
    model: nn.Module,
    ctx: DistContext | None,
    precision: str = "fp32",
    *,
    find_unused_parameters: bool = False,
) -> nn.Module:
    """The module the training step calls: ``model``, DDP-wrapped and/or under autocast.

    The returned module shares its parameters with ``model``; keep saving ``model``'s own
    ``state_dict`` (no ``module.`` prefixes, independent of the world size).

    Args:
        model: The network, already on ``ctx.device``.
        ctx: The distributed context, or ``None`` for one process.
        precision: ``"fp32"`` or ``"bf16"`` (autocast forward, float32 loss).
        find_unused_parameters: Passed to DDP (needed when some parameters get no gradient).

    Raises:
        ValueError: Unknown precision, or bf16 on a GPU without bfloat16 support.

    Example:
        >>> net = torch.nn.Linear(1, 1)
        >>> prepare_model(net, None) is net  # one process, fp32: the model itself
        True
        >>> type(prepare_model(net, None, precision="bf16")).__name__
        'AutocastForward'
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}; got {precision!r}.")
    forward = model
    if ctx is not None:
        from torch.nn.parallel import DistributedDataParallel

        ids = [ctx.device.index] if ctx.device.type == "cuda" else None
        forward = DistributedDataParallel(
            model, device_ids=ids, find_unused_parameters=find_unused_parameters
        )
    if precision == "bf16":
        param = next(model.parameters(), None)
        device_type = param.device.type if param is not None else "cpu"
        if device_type == "cuda" and not torch.cuda.is_bf16_supported():
            raise ValueError("this GPU has no bfloat16 support; use precision='fp32'.")
        forward = AutocastForward(forward, device_type)
    return forward


def reduce_mean(value: torch.Tensor, ctx: DistContext | None) -> float:
    """``value`` averaged over ranks, as a Python float (every rank must call it).

    Runs on the default group (a CUDA tensor for NCCL, a CPU one for gloo), from the main
    thread.

    Example:
        >>> reduce_mean(torch.tensor(2.0), None)
        2.0
    """
    if ctx is None or ctx.world_size == 1:
        return float(value)
    total = value.detach().to(torch.float64).clone()
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return float(total) / ctx.world_size


def read_resume_state(path: Path, ctx: DistContext | None) -> dict[str, Any] | None:
    """The checkpoint at ``path`` (``None`` if there is none), read by rank 0 and sent to all.

    Only rank 0 touches the file, so a multi-machine run needs the run directory on rank 0's
    machine only, and every rank resumes from the same state even when another process is
    rewriting the file. Errors on rank 0 are raised on every rank.

    Example:
        >>> read_resume_state(Path("no-such-dir/checkpoint.pt"), None) is None
        True
    """
    if ctx is None or ctx.world_size == 1:
        return load_checkpoint(path) if path.is_file() else None
    box: list[Any] = [None]
    if ctx.is_main:
        try:
            box[0] = ("ok", load_checkpoint(path) if path.is_file() else None)
        except ValueError as err:
            box[0] = ("error", str(err))
    dist.broadcast_object_list(box, src=0, group=ctx.coupling_group)
    status, payload = box[0]
    if status == "error":
        raise ValueError(payload)
    return payload


# -- couplings ----------------------------------------------------------------------------------


def _all_gather(x: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Concatenate the equally shaped ``x`` of every rank in rank order (on the CPU, gloo)."""
    local = x.detach().cpu().contiguous()
    parts = [torch.empty_like(local) for _ in range(ctx.world_size)]
    dist.all_gather(parts, local, group=ctx.coupling_group)
    return torch.cat(parts).to(x.device)


class GlobalCouplingSampler:
    """``sampler(x0, x1, generator) -> PathSample`` with one coupling of all ranks' batches.

    Every rank passes its local batches (equal sizes on every rank). They are all-gathered
    in rank order; rank 0 solves the coupling of the gathered ``(W·n, W·m)`` problem and draws
    the index pairs, which are broadcast; rank ``r`` keeps chunk ``r`` of the pairs (for a
    uniform square batch coupled by exact OT: its own sources, each with its optimal target
    from any rank) and samples the path on them with its own generator.

    Why rank 0 and a broadcast rather than the same solve on every rank: the pairs are then
    identical on every rank even when the solver is not bitwise reproducible across
    processes (multi-threaded or GPU reductions, KeOps), and ranks sharing a machine do not
    all burn CPU on the same linear program while the others train; the broadcast costs two
    ``int64`` vectors of length ``W·n``.

    Calls must come from one thread at a time, in the same order on every rank (one prefetch
    worker: ``TrainConfig(prefetch_workers=1)``, which :func:`sbflow.fit` sets for the global
    scope); an overlapping call raises ``RuntimeError`` instead of mixing up collectives.

    Args:
        matcher: A :class:`~sbflow.matching.Matcher` (its ``couple`` and ``sample_path``).
        ctx: The distributed context.

    Attributes:
        timings: Seconds spent in the last call, keys ``"gather"``, ``"solve"``
            (rank 0; 0 elsewhere) and ``"broadcast"`` (includes waiting for rank 0).

    Example:
        >>> from sbflow.matching import Matcher
        >>> ctx = DistContext(0, 1, 0, "gloo", torch.device("cpu"))
        >>> sampler = GlobalCouplingSampler(Matcher("exact"), ctx)
        >>> sampler(torch.zeros(4, 2), torch.ones(4, 2), torch.Generator()).xt.shape
        torch.Size([4, 2])
    """

    def __init__(self, matcher: Any, ctx: DistContext) -> None:
        self.matcher = matcher
        self.ctx = ctx
        self.timings: dict[str, float] = {"gather": 0.0, "solve": 0.0, "broadcast": 0.0}
        self._busy = threading.Lock()

    def pairs(
        self, x0: torch.Tensor, x1: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's paired rows ``(x0_pairs, x1_pairs)`` taken from the gathered batches.

        Example:
            >>> from sbflow.matching import Matcher
            >>> ctx = DistContext(0, 1, 0, "gloo", torch.device("cpu"))
            >>> a, b = GlobalCouplingSampler(Matcher("exact"), ctx).pairs(
            ...     torch.tensor([[0.0], [1.0]]), torch.tensor([[1.0], [0.0]]))
            >>> b.flatten().tolist()
            [0.0, 1.0]
        """
        if not self._busy.acquire(blocking=False):
            raise RuntimeError(
                "GlobalCouplingSampler was called from two threads at once: its collectives "
                "must run in step order on every rank. Use one prefetch worker "
                "(TrainConfig(prefetch_workers=1))."
            )
        try:
            return self._pairs(x0, x1, generator)
        finally:
            self._busy.release()

    def _pairs(
        self, x0: torch.Tensor, x1: torch.Tensor, generator: torch.Generator | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        ctx = self.ctx
        tic = time.perf_counter()
        if ctx.world_size > 1:
            g0, g1 = _all_gather(x0, ctx), _all_gather(x1, ctx)
        else:
            g0, g1 = x0, x1
        gathered = time.perf_counter()
        if ctx.is_main:
            i, j = self.matcher.couple(g0, g1, generator=generator)
            ij = torch.stack([i.cpu(), j.cpu()]).long()
        solved = time.perf_counter()
        if ctx.world_size > 1:
            count = torch.tensor([ij.shape[1] if ctx.is_main else 0], dtype=torch.long)
            dist.broadcast(count, src=0, group=ctx.coupling_group)
            if not ctx.is_main:
                ij = torch.empty(2, int(count), dtype=torch.long)
            dist.broadcast(ij, src=0, group=ctx.coupling_group)
        done = time.perf_counter()
        self.timings = {
            "gather": gathered - tic,
            "solve": solved - gathered,
            "broadcast": done - solved,
        }
        mine = torch.tensor_split(ij, ctx.world_size, dim=1)[ctx.rank].to(x0.device)
        return g0[mine[0]], g1[mine[1]]

    def __call__(
        self, x0: torch.Tensor, x1: torch.Tensor, generator: torch.Generator | None = None
    ) -> Any:
        """Gather, couple (rank 0), slice, then sample the path on this rank's pairs."""
        p0, p1 = self.pairs(x0, x1, generator)
        return self.matcher.sample_path(p0, p1, generator=generator)


def make_sampler(
    matcher: Any, ctx: DistContext | None, scope: str = "local"
) -> Callable[[torch.Tensor, torch.Tensor, torch.Generator], Any]:
    """The ``sampler(x0, x1, generator)`` of one interval for the given coupling scope.

    ``"local"`` (or one process) couples the batch in hand; ``"global"`` returns a
    :class:`GlobalCouplingSampler`.

    Raises:
        ValueError: Unknown scope.

    Example:
        >>> from sbflow.matching import Matcher
        >>> s = make_sampler(Matcher(), None, "local")
        >>> s(torch.zeros(3, 1), torch.ones(3, 1), torch.Generator()).ut.flatten().tolist()
        [1.0, 1.0, 1.0]
    """
    if scope not in COUPLING_SCOPES:
        raise ValueError(f"coupling_scope must be one of {COUPLING_SCOPES}; got {scope!r}.")
    if scope == "global" and ctx is not None and ctx.world_size > 1:
        return GlobalCouplingSampler(matcher, ctx)
    return LocalSampler(matcher)


class LocalSampler:
    """Couple the batch in hand: ``matcher.sample``, and ``matcher.sample_block`` for blocks.

    Example:
        >>> from sbflow.matching import Matcher
        >>> LocalSampler(Matcher())(torch.zeros(2, 1), torch.ones(2, 1), None).ut.tolist()
        [[1.0], [1.0]]
    """

    def __init__(self, matcher: Any) -> None:
        self.matcher = matcher

    def __call__(
        self, x0: torch.Tensor, x1: torch.Tensor, generator: torch.Generator | None
    ) -> Any:
        return self.matcher.sample(x0, x1, generator=generator)

    def block(
        self,
        x0s: list[torch.Tensor],
        x1s: list[torch.Tensor],
        generators: list[torch.Generator],
    ) -> list[Any]:
        """The samples of several batches (see :meth:`sbflow.matching.Matcher.sample_block`)."""
        sample_block = getattr(self.matcher, "sample_block", None)
        if sample_block is None:
            return [self(a, b, g) for a, b, g in zip(x0s, x1s, generators)]
        return sample_block(x0s, x1s, generators)
