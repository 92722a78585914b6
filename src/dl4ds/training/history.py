"""What a training run records per epoch: losses, learning rate, time; as CSV, learning curves and TensorBoard."""

from __future__ import annotations

import csv
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from dl4ds.errors import ConfigError
from dl4ds.utils.atomic import atomic_path


@dataclass
class EpochRecord:
    """One epoch. Losses are in normalised units (computed on standardised fields).

    Attributes:
        epoch: 1-based epoch number.
        train_loss: mean content loss over the training batches.
        val_loss: content loss on the validation data, None without validation.
        learning_rate: the generator's learning rate during the epoch.
        seconds: wall time of the epoch, validation included.
        terms: further means over the epoch, e.g. each term of a combined loss
            (``mae``, ``spectral``) or the adversarial losses of a CGAN.
    """

    epoch: int
    train_loss: float
    val_loss: float | None
    learning_rate: float
    seconds: float
    terms: dict[str, float] = field(default_factory=dict)

    @property
    def monitored(self) -> float:
        """The loss that selects the best epoch: validation loss, or training loss without validation."""
        return self.val_loss if self.val_loss is not None else self.train_loss


@dataclass
class TrainingHistory:
    epochs: list[EpochRecord] = field(default_factory=list)

    @property
    def best(self) -> EpochRecord | None:
        """The epoch with the lowest monitored loss (the first one on ties)."""
        if not self.epochs:
            return None
        return min(self.epochs, key=lambda r: r.monitored)

    @property
    def monitored(self) -> list[float]:
        return [record.monitored for record in self.epochs]

    def to_list(self) -> list[dict[str, Any]]:
        return [asdict(record) for record in self.epochs]

    @classmethod
    def from_list(cls, records: list[dict[str, Any]]) -> TrainingHistory:
        return cls([EpochRecord(**record) for record in records])

    def write_csv(self, path: str | os.PathLike[str]) -> None:
        """One row per epoch: epoch, train_loss, val_loss, learning_rate, seconds, then every term."""
        terms = sorted({name for record in self.epochs for name in record.terms})
        columns = ["epoch", "train_loss", "val_loss", "learning_rate", "seconds", *terms]
        with atomic_path(path) as temporary, open(temporary, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            for record in self.epochs:
                row = asdict(record)
                writer.writerow({**{key: row[key] for key in columns[:5]}, **record.terms})

    def plot(self, path: str | os.PathLike[str]) -> Path:
        """Learning curves as PNG: the content losses (log scale), then the other terms, then the learning rate."""
        epochs = [record.epoch for record in self.epochs]
        terms = sorted({name for record in self.epochs for name in record.terms})
        panels = 3 if terms else 2
        fig = Figure(figsize=(4.2 * panels, 3.4), layout="constrained", dpi=120)
        axes = fig.subplots(1, panels, squeeze=False)[0]
        axes[0].plot(epochs, [r.train_loss for r in self.epochs], marker=".", label="training")
        if any(r.val_loss is not None for r in self.epochs):
            axes[0].plot(epochs, [r.val_loss for r in self.epochs], marker=".", label="validation")
        best = self.best
        if best is not None:
            axes[0].axvline(best.epoch, color="0.6", linestyle=":", label=f"best (epoch {best.epoch})")
        axes[0].set(title="content loss (normalised units)", xlabel="epoch", yscale="log")
        axes[0].legend(fontsize="small")
        if terms:
            for name in terms:
                axes[1].plot(epochs, [r.terms.get(name, float("nan")) for r in self.epochs], marker=".", label=name)
            axes[1].set(title="loss terms (training)", xlabel="epoch")
            axes[1].legend(fontsize="small")
        axes[-1].plot(epochs, [r.learning_rate for r in self.epochs], marker=".", color="tab:green")
        axes[-1].set(title="learning rate", xlabel="epoch", yscale="log")
        with atomic_path(path) as temporary:
            fig.savefig(temporary, format="png")
        return Path(path)


class TensorBoardLog:
    """Writes each epoch's losses and learning rate as TensorBoard scalars under ``directory``.

    Needs the optional ``tensorboard`` package (``pip install "dl4ds[tensorboard]"``).
    Events after ``first_epoch`` left by an interrupted run are discarded, so a
    resumed run's curves have no duplicates.
    """

    def __init__(self, directory: str | os.PathLike[str], first_epoch: int = 1) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ConfigError(
                "tensorboard: true needs the tensorboard package; install it with "
                '`pip install "dl4ds[tensorboard]"` or set tensorboard: false'
            ) from None
        self._writer = SummaryWriter(str(directory), purge_step=first_epoch)

    def write(self, record: EpochRecord) -> None:
        scalars = {"loss/train": record.train_loss, "learning_rate": record.learning_rate}
        if record.val_loss is not None:
            scalars["loss/validation"] = record.val_loss
        scalars.update({f"terms/{name}": value for name, value in record.terms.items()})
        for tag, value in scalars.items():
            self._writer.add_scalar(tag, value, record.epoch)
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()
