"""Learning-rate schedules and early stopping, configured by small validated objects.

Both step once per epoch. ``LRSchedule(name="cosine", warmup_epochs=2)`` builds
a torch scheduler for an optimiser; ``EarlyStopping(patience=5)`` decides from
the training history alone, so a resumed run stops exactly where an
uninterrupted one would.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
from pydantic import Field

from dl4ds.errors import ConfigError
from dl4ds.utils.options import Options

Scheduler = torch.optim.lr_scheduler.LambdaLR | torch.optim.lr_scheduler.ReduceLROnPlateau


class LRSchedule(Options):
    """How the learning rate changes from epoch to epoch.

    Attributes:
        name: ``"constant"``; ``"step"`` (multiply by ``gamma`` every
            ``step_size`` epochs); ``"cosine"`` (cosine decay from the initial
            rate to ``min_factor`` times it at the last epoch); ``"plateau"``
            (multiply by ``factor`` when the monitored loss has not improved
            for ``patience`` epochs).
        warmup_epochs: linear warm-up over the first epochs (rate
            ``(e + 1) / (warmup_epochs + 1)`` times the initial one in epoch
            ``e`` = 0, 1, ...), before any of the schedules except ``plateau``.
    """

    name: Literal["constant", "step", "cosine", "plateau"] = "cosine"
    warmup_epochs: int = Field(default=0, ge=0)
    min_factor: float = Field(default=0.01, gt=0, le=1)
    step_size: int = Field(default=10, ge=1)
    gamma: float = Field(default=0.5, gt=0, le=1)
    patience: int = Field(default=3, ge=0)
    factor: float = Field(default=0.5, gt=0, lt=1)

    def build(self, optimizer: torch.optim.Optimizer, epochs: int) -> Scheduler:
        """A scheduler for ``optimizer`` over a run of ``epochs``; call :func:`step_scheduler` after each epoch."""
        if self.name == "plateau":
            if self.warmup_epochs:
                raise ConfigError(
                    "lr_schedule 'plateau' has no warm-up; set warmup_epochs: 0 or use 'cosine' or 'step'"
                )
            return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=self.factor, patience=self.patience)
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: self.factor_at(epoch, epochs))

    def factor_at(self, epoch: int, epochs: int) -> float:
        """The multiple of the initial learning rate used in 0-based ``epoch`` of ``epochs`` (not for plateau)."""
        if epoch < self.warmup_epochs:
            return (epoch + 1) / (self.warmup_epochs + 1)
        after = epoch - self.warmup_epochs
        if self.name == "step":
            return self.gamma ** (after // self.step_size)
        if self.name == "cosine":
            span = max(epochs - self.warmup_epochs - 1, 1)
            progress = min(after / span, 1.0)
            return self.min_factor + (1.0 - self.min_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))
        return 1.0


def step_scheduler(scheduler: Scheduler, monitored: float) -> None:
    """Advance ``scheduler`` by one epoch; plateau schedules look at the ``monitored`` loss."""
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        scheduler.step(monitored)
    else:
        scheduler.step()


class EarlyStopping(Options):
    """Stop when the monitored loss has not improved by more than ``min_delta`` for ``patience`` epochs.

    The trainer then restores the weights of the best epoch.
    """

    patience: int = Field(ge=1)
    min_delta: float = Field(default=0.0, ge=0)

    def should_stop(self, monitored: Sequence[float]) -> bool:
        """True when the last ``patience`` values of ``monitored`` (one per epoch) brought no improvement."""
        best, since = math.inf, 0
        for value in monitored:
            if value < best - self.min_delta:
                best, since = value, 0
            else:
                since += 1
        return since >= self.patience
