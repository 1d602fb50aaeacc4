"""Training: the loop (:class:`Trainer`), EMA, atomic checkpoints, prefetching, logs.

Example:
    >>> from sbflow.training import TrainConfig
    >>> TrainConfig(steps=10).steps
    10
"""

from sbflow.training.checkpoint import (
    CHECKPOINT_NAME,
    load_checkpoint,
    read_state,
    save_checkpoint,
    write_state,
)
from sbflow.training.ema import EMA
from sbflow.training.logs import CSVLogger, TensorBoardLogger, tensorboard_available
from sbflow.training.prefetch import Prefetcher, step_seed
from sbflow.training.trainer import StopTraining, TrainConfig, Trainer, move_to

__all__ = [
    "CHECKPOINT_NAME",
    "EMA",
    "CSVLogger",
    "Prefetcher",
    "StopTraining",
    "TensorBoardLogger",
    "TrainConfig",
    "Trainer",
    "load_checkpoint",
    "move_to",
    "read_state",
    "save_checkpoint",
    "step_seed",
    "tensorboard_available",
    "write_state",
]
