"""Training: losses and trainers."""

from dl4ds.training.losses import get_loss, masked_mae, masked_mse
from dl4ds.training.trainer import SupervisedTrainer, TrainingHistory

__all__ = ["SupervisedTrainer", "TrainingHistory", "get_loss", "masked_mae", "masked_mse"]
