"""Training: content losses, the training loop, supervised, adversarial and diffusion trainers, data parallelism.

The options of every trainer are declared in :mod:`dl4ds.training.options`;
:func:`create_trainer` builds the trainer a ``training:`` section names.
"""

import os

from dl4ds.training.cgan import CGANTrainer
from dl4ds.training.diffusion import DiffusionTrainer
from dl4ds.training.distributed import Distributed
from dl4ds.training.history import EpochRecord, TrainingHistory
from dl4ds.training.losses import CompositeLoss, create_loss, list_losses
from dl4ds.training.options import DiffusionOptions, GANOptions, LossRegion, TrainerOptions, TrainingOptions
from dl4ds.training.schedules import EarlyStopping, LRSchedule
from dl4ds.training.trainer import SupervisedTrainer, Trainer


def create_trainer(
    options: TrainingOptions, *, checkpoint_dir: str | os.PathLike[str] | None = None, progress: bool = True
) -> Trainer:
    """The trainer that ``options.trainer`` names, with the options of the ``training:`` section."""
    if options.trainer == "cgan":
        return CGANTrainer(options, gan=options.gan, checkpoint_dir=checkpoint_dir, progress=progress)
    if options.trainer == "diffusion":
        return DiffusionTrainer(options, diffusion=options.diffusion, checkpoint_dir=checkpoint_dir, progress=progress)
    return SupervisedTrainer(options, checkpoint_dir=checkpoint_dir, progress=progress)


__all__ = [
    "CGANTrainer",
    "CompositeLoss",
    "DiffusionOptions",
    "DiffusionTrainer",
    "Distributed",
    "EarlyStopping",
    "EpochRecord",
    "GANOptions",
    "LRSchedule",
    "LossRegion",
    "SupervisedTrainer",
    "Trainer",
    "TrainerOptions",
    "TrainingHistory",
    "TrainingOptions",
    "create_loss",
    "create_trainer",
    "list_losses",
]
