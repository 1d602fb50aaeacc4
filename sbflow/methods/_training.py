"""The default training of a neural method: rounds of the Trainer over pair sources."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["Shaped", "TrainingRun", "round_batches", "train_rounds"]


@dataclass
class TrainingRun:
    """How ``fit`` wants the training run (passed to :meth:`Method.train`).

    Attributes:
        config: The optimisation settings (:class:`~sbflow.training.TrainConfig`).
        run_dir: Checkpoint directory (``None``: no checkpoints).
        resume: Continue from ``run_dir``'s checkpoint.
        meta: Run description stored in checkpoints (resume refuses a different one).
        callbacks: ``callback(trainer, step, loss)`` after every step.
        device: Training device.
        distributed: The distributed context or ``None``.
        coupling_scope: ``"local"`` or ``"global"`` couplings in distributed runs.

    Example:
        >>> from sbflow.training import TrainConfig
        >>> TrainingRun(TrainConfig(steps=10)).resume
        True
    """

    config: Any
    run_dir: str | Path | None = None
    resume: bool = True
    meta: dict[str, Any] = field(default_factory=dict)
    callbacks: Sequence[Callable[..., None]] = ()
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    distributed: Any = None
    coupling_scope: str = "local"


class Shaped(nn.Module):
    """Call ``net`` on samples of ``feature_shape`` while the pipeline works on flat rows.

    Example:
        >>> net = Shaped(lambda x, t: x * 0 + x.shape[1], (1, 2, 2))
        >>> net(torch.zeros(3, 4), torch.zeros(3)).shape
        torch.Size([3, 4])
    """

    def __init__(self, net: Any, feature_shape: Sequence[int]) -> None:
        super().__init__()
        self.net = net
        self.feature_shape = tuple(int(d) for d in feature_shape)

    def forward(self, x: torch.Tensor, t: Any) -> Any:
        n = x.shape[0]
        out = self.net(x.reshape(n, *self.feature_shape), t)
        if isinstance(out, tuple):
            return tuple(o.reshape(n, -1) for o in out)
        return out.reshape(n, -1)


def round_batches(
    method: Any, problem: Any, sources: Sequence[Any], round: int, run: TrainingRun
) -> Any:
    """The :class:`~sbflow.training.batches.PathBatches` of one training round.

    Each interval's pair source feeds the method's matcher at that interval's σ (uncoupled
    when the source already pairs its rows); batches are seeded by ``problem.seed + round``.
    """
    from sbflow.training.batches import PathBatches
    from sbflow.training.distributed import make_sampler

    ctx = run.distributed
    samplers = [
        make_sampler(
            method.matcher_for(problem.interval_sigma(k), coupled=not src.paired),
            ctx,
            run.coupling_scope,
        )
        for k, src in enumerate(sources)
    ]
    return PathBatches(
        problem.sets,
        problem.taus,
        samplers,
        problem.batch_size,
        seed=problem.seed + round,
        encode=problem.encode,
        rank=0 if ctx is None else ctx.rank,
        pairs=sources,
    )


def train_rounds(method: Any, problem: Any, model: nn.Module, run: TrainingRun) -> tuple:
    """Train ``model`` for ``method.rounds`` rounds; return (trained model, history)."""
    from sbflow.training.trainer import Trainer

    ctx = run.distributed
    history: list[tuple[int, float]] = []
    previous: nn.Module | None = None
    current = model
    for r in range(method.rounds):
        batches = round_batches(method, problem, method.pair_sources(problem, r, previous), r, run)
        run_dir = run.run_dir
        if run_dir is not None and method.rounds > 1:
            run_dir = Path(run_dir) / f"round-{r}"
        trainer = Trainer(
            Shaped(current, problem.feature_shape),
            method.loss,
            batches,
            run.config,
            run_dir=run_dir,
            resume=run.resume,
            meta={**run.meta, "round": r} if method.rounds > 1 else run.meta,
            callbacks=run.callbacks,
            device=run.device,
            distributed=ctx,
        )
        trainer.train()
        history.extend(trainer.history)
        previous = trainer.ema.model  # flat rows in, flat rows out: what pair sources call
        current = copy.deepcopy(previous.net)  # warm start of the next round
        for p in current.parameters():
            p.requires_grad_(True)  # the EMA copy is frozen
    assert previous is not None
    return previous.net, history
