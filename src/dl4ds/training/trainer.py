"""Supervised training with validation, checkpoints and resume."""

from __future__ import annotations

import csv
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from dl4ds.atomic import atomic_path
from dl4ds.checkpoint import read_checkpoint, save_checkpoint
from dl4ds.data.torch_dataset import DownscalingDataset, Sample
from dl4ds.errors import CheckpointError, ConfigError
from dl4ds.model import DownscalingModel
from dl4ds.training.losses import get_loss

logger = logging.getLogger(__name__)

LAST_CHECKPOINT = "last.pt"
BEST_CHECKPOINT = "best.pt"


@dataclass
class EpochRecord:
    """Losses of one epoch, in normalised units (the loss is computed on standardised fields)."""

    epoch: int
    train_loss: float
    val_loss: float | None
    learning_rate: float
    seconds: float

    @property
    def monitored(self) -> float:
        """The loss that selects the best epoch: validation loss, or training loss without validation."""
        return self.val_loss if self.val_loss is not None else self.train_loss


@dataclass
class TrainingHistory:
    epochs: list[EpochRecord] = field(default_factory=list)

    @property
    def best(self) -> EpochRecord | None:
        """The epoch with the lowest validation loss (or training loss without validation)."""
        if not self.epochs:
            return None
        return min(self.epochs, key=lambda r: r.monitored)

    def to_list(self) -> list[dict]:
        return [asdict(record) for record in self.epochs]

    @classmethod
    def from_list(cls, records: list[dict]) -> TrainingHistory:
        return cls([EpochRecord(**record) for record in records])

    def write_csv(self, path: str | os.PathLike[str]) -> None:
        with atomic_path(path) as temporary, open(temporary, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=[f for f in EpochRecord.__dataclass_fields__])
            writer.writeheader()
            writer.writerows(self.to_list())


class SupervisedTrainer:
    """Trains a :class:`DownscalingModel` by minimising a masked pixel loss with Adam.

    Args:
        loss: ``"mae"`` or ``"mse"``, computed on normalised fields over valid cells.
        learning_rate: Adam's initial learning rate.
        epochs: number of passes over the training samples.
        batch_size: samples per optimisation step.
        lr_schedule: ``"cosine"`` (decay to 1% of the initial rate over the run)
            or ``"constant"``.
        seed: seeds torch's generator (weights, shuffling, patch positions).
        device: torch device, e.g. ``"cpu"`` or ``"cuda"``.
        num_workers: DataLoader worker processes.
        channels_last: keep weights and batches in the channels-last memory
            format, which makes the convolutions 10-30% faster on CPUs
            (``benchmarks/training_throughput.py --channels-last``). The results
            do not depend on it beyond floating-point rounding.
        checkpoint_dir: where ``last.pt`` (every epoch, with the optimiser state
            for resuming), ``best.pt`` (lowest validation loss) and
            ``history.csv`` are written; None writes nothing.
        progress: show a progress bar.
    """

    def __init__(
        self,
        *,
        loss: str = "mae",
        learning_rate: float = 1e-3,
        epochs: int = 30,
        batch_size: int = 16,
        lr_schedule: Literal["cosine", "constant"] = "cosine",
        seed: int = 0,
        device: str = "cpu",
        num_workers: int = 0,
        channels_last: bool = True,
        checkpoint_dir: str | os.PathLike[str] | None = None,
        progress: bool = True,
    ) -> None:
        self.loss_fn = get_loss(loss)
        if lr_schedule not in ("cosine", "constant"):
            raise ConfigError(f"unknown lr_schedule {lr_schedule!r}; choose 'cosine' or 'constant'")
        if epochs < 1 or batch_size < 1 or learning_rate <= 0:
            raise ConfigError("epochs and batch_size must be >= 1 and learning_rate > 0")
        self.learning_rate = learning_rate
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr_schedule = lr_schedule
        self.seed = seed
        self.device = torch.device(device)
        self.num_workers = num_workers
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.checkpoint_dir = None if checkpoint_dir is None else Path(checkpoint_dir)
        self.progress = progress
        self.history = TrainingHistory()

    def fit(
        self,
        model: DownscalingModel,
        train: DownscalingDataset,
        val: DownscalingDataset | None = None,
        *,
        resume: bool = False,
    ) -> DownscalingModel:
        """Train ``model`` in place and return it with the best weights loaded.

        With ``resume=True``, continues from ``checkpoint_dir/last.pt``: weights,
        optimiser, schedule, random state, epoch and history.
        """
        torch.manual_seed(self.seed)
        model.to(self.device, memory_format=self.memory_format)
        optimizer = torch.optim.Adam(model.parameters(), lr=self.learning_rate)
        scheduler = self._scheduler(optimizer)
        start_epoch = 1
        if resume:
            start_epoch = self._restore(model, optimizer, scheduler)
        loader = DataLoader(
            train, batch_size=self.batch_size, shuffle=True, drop_last=len(train) > self.batch_size,
            num_workers=self.num_workers,
        )
        best = self.history.best
        best_loss = math.inf if best is None else best.monitored
        best_state: dict[str, torch.Tensor] | None = None
        for epoch in range(start_epoch, self.epochs + 1):
            started = time.perf_counter()
            train_loss = self._train_epoch(model, loader, optimizer, epoch)
            val_loss = None if val is None else self.evaluate_loss(model, val)
            record = EpochRecord(epoch, train_loss, val_loss, optimizer.param_groups[0]["lr"], time.perf_counter() - started)
            scheduler.step()
            self.history.epochs.append(record)
            logger.info(
                "epoch %d/%d  train loss %.4f  val loss %s  (%.1f s)",
                epoch, self.epochs, train_loss, "-" if val_loss is None else f"{val_loss:.4f}", record.seconds,
            )
            if self.checkpoint_dir is not None:
                if record.monitored < best_loss:
                    save_checkpoint(self.checkpoint_dir / BEST_CHECKPOINT, model)
                save_checkpoint(self.checkpoint_dir / LAST_CHECKPOINT, model, self._training_state(optimizer, scheduler, epoch))
                self.history.write_csv(self.checkpoint_dir / "history.csv")
            if record.monitored < best_loss:
                best_loss = record.monitored
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if best_state is not None:
            model.load_state_dict(best_state)
        elif self.checkpoint_dir is not None and (self.checkpoint_dir / BEST_CHECKPOINT).exists():
            # Resumed run whose best epoch came before the interruption.
            model.load_state_dict(read_checkpoint(self.checkpoint_dir / BEST_CHECKPOINT)["state_dict"])
        # The standard layout, so the model predicts exactly like one loaded from its checkpoint.
        model.to(memory_format=torch.contiguous_format)
        model.eval()
        return model

    def _train_epoch(self, model: DownscalingModel, loader: DataLoader, optimizer: torch.optim.Optimizer, epoch: int) -> float:
        model.train()
        total, count = 0.0, 0
        bar = tqdm(loader, desc=f"epoch {epoch}/{self.epochs}", disable=not self.progress, leave=False, unit="batch")
        for batch in bar:
            x, static, offset, y, mask = self._unpack(batch)
            optimizer.zero_grad(set_to_none=True)
            loss = self.loss_fn(model(x, static, offset), y, mask)
            loss.backward()
            optimizer.step()
            total += loss.item() * x.shape[0]
            count += x.shape[0]
            bar.set_postfix(loss=f"{total / count:.4f}")
        return total / max(count, 1)

    @torch.no_grad()
    def evaluate_loss(self, model: DownscalingModel, data: DownscalingDataset) -> float:
        """Mean loss of ``model`` over every sample of ``data`` (valid cells only)."""
        model.eval()
        total, weight = 0.0, 0.0
        for batch in DataLoader(data, batch_size=self.batch_size * 4):
            x, static, offset, y, mask = self._unpack(batch)
            cells = float(mask.sum())
            total += self.loss_fn(model(x, static, offset), y, mask).item() * cells
            weight += cells
        return total / max(weight, 1.0)

    def _unpack(self, batch: Sample) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Move a batch to the device: x, static (None without static fields), offset, y, mask."""
        static = batch["static"].to(self.device, memory_format=self.memory_format) if batch["static"].shape[1] else None
        x = batch["x"]
        # Windows (B, T, C, h, w) of spatio-temporal networks keep the standard layout.
        x = x.to(self.device, memory_format=self.memory_format) if x.ndim == 4 else x.to(self.device)
        return x, static, batch["offset"].to(self.device), batch["y"].to(self.device), batch["mask"].to(self.device)

    def _scheduler(self, optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
        if self.lr_schedule == "cosine":
            return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=self.epochs, eta_min=self.learning_rate * 0.01)
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)

    def _training_state(self, optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LRScheduler, epoch: int) -> dict:
        state = {
            "epoch": epoch,
            "optimizer": optimizer.state_dict(),
            "history": self.history.to_list(),
            "torch_rng": torch.get_rng_state(),
        }
        if self.lr_schedule == "cosine":
            state["scheduler"] = scheduler.state_dict()
        return state

    def _restore(self, model: DownscalingModel, optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LRScheduler) -> int:
        if self.checkpoint_dir is None:
            raise ConfigError("resume needs a checkpoint_dir holding last.pt from the interrupted run")
        path = self.checkpoint_dir / LAST_CHECKPOINT
        payload = read_checkpoint(path)
        state = payload.get("training_state")
        if not state:
            raise CheckpointError(f"{str(path)!r} has no training state to resume from; it holds a model only")
        saved_architecture = payload["metadata"]["architecture"]
        try:
            if saved_architecture != model.metadata.architecture:
                raise RuntimeError("architecture differs")
            model.load_state_dict(payload["state_dict"])
        except RuntimeError:
            raise CheckpointError(
                f"{str(path)!r} holds a different model ({saved_architecture}) than the one being trained; "
                "resume with the same configuration, or start a new run in another directory"
            ) from None
        optimizer.load_state_dict(state["optimizer"])
        if "scheduler" in state:
            scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        self.history = TrainingHistory.from_list(state["history"])
        logger.info("resuming after epoch %d from %s", state["epoch"], path)
        return int(state["epoch"]) + 1
