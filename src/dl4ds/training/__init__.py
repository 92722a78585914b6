"""Training: content losses, the training loop, supervised and conditional adversarial trainers, data parallelism."""

from dl4ds.training.cgan import CGANTrainer, GANOptions
from dl4ds.training.distributed import Distributed
from dl4ds.training.history import EpochRecord, TrainingHistory
from dl4ds.training.losses import CompositeLoss, create_loss, list_losses
from dl4ds.training.schedules import EarlyStopping, LRSchedule
from dl4ds.training.trainer import SupervisedTrainer, Trainer

TRAINERS: dict[str, type[Trainer]] = {"supervised": SupervisedTrainer, "cgan": CGANTrainer}

__all__ = [
    "TRAINERS",
    "CGANTrainer",
    "CompositeLoss",
    "Distributed",
    "EarlyStopping",
    "EpochRecord",
    "GANOptions",
    "LRSchedule",
    "SupervisedTrainer",
    "Trainer",
    "TrainingHistory",
    "create_loss",
    "list_losses",
]
