"""The training loop: schedules, early stopping, EMA, mixed precision, checkpoints and exact resume.

:class:`Trainer` runs epochs and owns everything that must survive an
interruption; a subclass defines one optimisation step.
:class:`SupervisedTrainer` minimises a content loss;
:class:`dl4ds.training.cgan.CGANTrainer` adds a conditional discriminator;
:class:`dl4ds.training.diffusion.DiffusionTrainer` trains a residual diffusion model.
"""

from __future__ import annotations

import logging
import math
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sized
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, IterableDataset
from tqdm.auto import tqdm

from dl4ds.data.torch_dataset import DownscalingDataset, Sample
from dl4ds.errors import CheckpointError, ConfigError
from dl4ds.model import DownscalingModel
from dl4ds.model.checkpoint import read_checkpoint, save_checkpoint
from dl4ds.training.distributed import Distributed
from dl4ds.training.history import EpochRecord, TensorBoardLog, TrainingHistory
from dl4ds.training.losses import CompositeLoss, create_loss
from dl4ds.training.options import Precision, TrainerOptions
from dl4ds.training.schedules import Scheduler, step_scheduler
from dl4ds.utils.devices import torch_device
from dl4ds.utils.seeding import seeded

logger = logging.getLogger(__name__)

LAST_CHECKPOINT = "last.pt"
BEST_CHECKPOINT = "best.pt"
HISTORY_CSV = "history.csv"
LEARNING_CURVES = "learning_curves.png"
CURVES_INTERVAL_S = 30.0
"""The least wall time between two drawings of the learning curves (a drawing costs about 0.2 s); the last epoch's
checkpoint always draws them."""

_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class Batch:
    """A batch on the device: coarse ``x``, ``static`` (None without static fields), ``offset``, target ``y``, ``weight``.

    Shapes as in :class:`DownscalingDataset`, with a leading batch dimension B.
    """

    def __init__(self, sample: Sample, device: torch.device, memory_format: torch.memory_format) -> None:
        self.static = sample["static"].to(device, memory_format=memory_format) if sample["static"].shape[1] else None
        x = sample["x"]
        # Windows (B, T, C, h, w) of spatio-temporal networks keep the standard layout.
        self.x = x.to(device, memory_format=memory_format) if x.ndim == 4 else x.to(device)
        self.offset = sample["offset"].to(device)
        self.y = sample["y"].to(device)
        self.weight = sample["weight"].to(device)

    @property
    def size(self) -> int:
        return self.x.shape[0]

    def frames(self, field: torch.Tensor) -> torch.Tensor:
        """(B, V, H, W) fields, or (B, T, V, H, W) windows flattened to (B*T, V, H, W)."""
        return field.flatten(0, 1) if field.ndim == 5 else field

    def condition(self, members: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The coarse inputs (B'*K, C, h, w) and static fields (B'*K, S, H, W) of each frame, repeated per member.

        B' = B, or B*T for windows; the order matches :meth:`Trainer.generate` flattened to (B'*K, ...).
        """
        coarse = self.frames(self.x)
        static = self.static
        if static is not None and self.x.ndim == 5:
            static = static.repeat_interleave(self.x.shape[1], 0)
        if members > 1:
            coarse = coarse.repeat_interleave(members, 0)
            static = None if static is None else static.repeat_interleave(members, 0)
        return coarse, static


class Trainer(ABC):
    """Trains a :class:`DownscalingModel` in place; subclasses define :meth:`train_step`.

    Args:
        options: the loop's options (:class:`~dl4ds.training.options.TrainerOptions`,
            or a mapping of them); defaults for those not given.
        checkpoint_dir: where ``best.pt`` (best epoch), ``last.pt`` (weights
            and the full training state, for resuming), ``history.csv``,
            ``learning_curves.png`` (redrawn with ``last.pt``, at most every
            30 s and at the last epoch) and optionally ``tensorboard/`` are
            written; None writes nothing.
        progress: show a progress bar.
        **overrides: single options, e.g. ``epochs=40``, replacing those of ``options``.

    Launched by ``torchrun`` with several processes, :meth:`fit` trains data
    parallel (see :mod:`dl4ds.training.distributed`): ``batch_size`` is the
    global batch, split evenly across the processes; each process reads its
    own share of the shuffled samples (the same shuffle and patches as a
    single process), DDP averages the gradients, and only rank 0 logs,
    validates and writes checkpoints, which are the same files as a single
    process writes and resume in any number of processes.

    Raises:
        ConfigError: invalid options, or options this machine cannot run
            (fp16 without a GPU, tensorboard without a checkpoint_dir).
    """

    def __init__(
        self,
        options: TrainerOptions | Mapping[str, Any] | None = None,
        *,
        checkpoint_dir: str | os.PathLike[str] | None = None,
        progress: bool = True,
        **overrides: Any,
    ) -> None:
        self.options = TrainerOptions.parse(options or {}, "trainer options").updated("trainer options", **overrides)
        if self.options.tensorboard and checkpoint_dir is None:
            raise ConfigError("tensorboard: true needs a checkpoint_dir to write the logs into")
        self.loss: CompositeLoss = create_loss(self.options.loss)
        self.device = torch_device(self.options.device, cpu="device='cpu' (config: training.device: cpu)")
        self.precision = _check_precision(self.options.precision, self.device)
        self.memory_format = torch.channels_last if self.options.channels_last else torch.contiguous_format
        self.checkpoint_dir = None if checkpoint_dir is None else Path(checkpoint_dir)
        self.progress = progress
        self.history = TrainingHistory()
        self._curves_drawn_at: float | None = None  # time.monotonic() of the last drawing of the learning curves
        self.ema: AveragedModel | None = None
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")
        self.distributed = Distributed()
        self.model: DownscalingModel | None = None  # the model being trained, during fit

    # ----------------------------------------------------------------- subclass interface

    @abstractmethod
    def train_step(self, network: torch.nn.Module, batch: Batch) -> dict[str, float]:
        """One optimisation step on ``batch``; returns ``{"loss": content loss, other terms...}``.

        ``network`` is the model being trained as the step must call it:
        wrapped for data parallelism and compiled when those are on.
        """

    def parallel(self, module: torch.nn.Module) -> torch.nn.Module:
        """``module`` as the training steps call it: wrapped in DDP across processes, compiled with ``compile``."""
        module = self.distributed.wrap(module, self.device)
        # torch.compile of a module returns a module (OptimizedModule); its stubs type it as a plain callable.
        return cast(torch.nn.Module, torch.compile(module)) if self.options.compile else module

    def components(self, model: DownscalingModel, train: Dataset) -> dict[str, Any]:
        """Objects with a ``state_dict`` that a resumed run must restore, created at the start of :meth:`fit`."""
        optimizer = torch.optim.Adam(model.parameters(), lr=self.options.learning_rate)
        self.optimizer = optimizer
        self.scheduler: Scheduler = self.options.lr_schedule.build(optimizer, self.options.epochs)
        parts: dict[str, Any] = {"optimizer": optimizer, "scheduler": self.scheduler, "scaler": self.scaler}
        if self.options.ema_decay is not None:
            self.ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(self.options.ema_decay), use_buffers=True)
            parts["ema"] = self.ema
        return parts

    def end_epoch(self, monitored: float) -> None:
        """Advance the schedules after an epoch."""
        step_scheduler(self.scheduler, monitored)

    def check_model(self, model: DownscalingModel) -> None:
        """Raise ConfigError when the options cannot train ``model`` (checked by :meth:`fit`, and before it by callers
        that must not write anything for a run that cannot start)."""
        if model.capabilities.iterative:
            raise ConfigError(
                f"model {model.metadata.architecture!r} is a diffusion model, trained in two stages by the diffusion "
                "trainer; set training.trainer: diffusion"
            )
        if self.options.ensemble_size > 1 and not model.capabilities.stochastic:
            raise ConfigError(
                f"ensemble_size={self.options.ensemble_size} needs a stochastic network whose repeated predictions differ; "
                "set the model parameter noise_channels (e.g. 4) or mc_dropout with a dropout rate"
            )

    # ----------------------------------------------------------------- the loop

    def fit(
        self,
        model: DownscalingModel,
        train: Dataset,
        val: DownscalingDataset | None = None,
        *,
        resume: bool = False,
        on_epoch: Callable[[EpochRecord], None] | None = None,
    ) -> DownscalingModel:
        """Train ``model`` in place and return it, in eval mode, with the best epoch's weights.

        ``train`` is a :class:`DownscalingDataset` (in memory) or an iterable
        dataset that shuffles and shards itself, such as
        :class:`dl4ds.data.LazyPatchDataset`. With ``resume=True``, continues from ``checkpoint_dir/last.pt`` exactly
        where the interrupted run left it: weights, optimisers, schedules,
        loss scaling, weight average, random state, epoch and history.

        ``on_epoch``, if given, is called with each epoch's record after its
        checkpoints are written, in every process (the records are the same).
        An exception it raises (e.g. a hyperparameter search pruning the run)
        ends training there and propagates; the checkpoints so far stay valid.
        """
        self.distributed = Distributed.from_environment(self.device)
        self.device = self.distributed.device(self.device)
        local_batch = self.distributed.local_batch_size(self.options.batch_size)
        torch.manual_seed(
            self.options.seed + self.distributed.rank
        )  # noise differs across processes; DDP syncs the weights
        self.check_model(model)
        # Module.to(memory_format=...) works at runtime, but torch's stubs lack that overload.
        model.to(self.device, memory_format=self.memory_format)  # type: ignore[call-overload]
        self.history = TrainingHistory()
        self._curves_drawn_at = None
        parts = self.components(model, train)
        start_epoch = self._restore(model, parts) if resume else 1
        self.model = model
        network = self.parallel(model)
        loader = self._loader(train, local_batch)
        board = None
        if self.options.tensorboard and self.distributed.is_main:
            assert self.checkpoint_dir is not None
            board = TensorBoardLog(self.checkpoint_dir / "tensorboard", first_epoch=start_epoch)
        best = self.history.best
        best_loss = math.inf if best is None else best.monitored
        best_state: dict[str, torch.Tensor] | None = None
        try:
            for epoch in range(start_epoch, self.options.epochs + 1):
                if self._stopped():
                    break
                record = self._epoch(model, network, loader, val, epoch)
                self.end_epoch(record.monitored)
                self.history.epochs.append(record)
                if board is not None:
                    board.write(record)
                improved = record.monitored < best_loss
                if improved:
                    best_loss = record.monitored
                    best_state = {k: v.detach().clone() for k, v in self.evaluated(model).state_dict().items()}
                self._save(model, parts, epoch, improved)
                if on_epoch is not None:
                    on_epoch(record)
        finally:
            if board is not None:
                board.close()
        self.distributed.barrier()  # rank 0 has written its checkpoints
        if best_state is not None:
            model.load_state_dict(best_state)
        elif self.checkpoint_dir is not None and (self.checkpoint_dir / BEST_CHECKPOINT).exists():
            # A resumed run whose best epoch came before the interruption.
            model.load_state_dict(read_checkpoint(self.checkpoint_dir / BEST_CHECKPOINT)["state_dict"])
        # The standard layout, so the model predicts exactly like one loaded from its checkpoint.
        model.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]  # missing from torch's stubs
        model.eval()
        return model

    def _loader(self, train: Dataset, batch_size: int) -> DataLoader:
        """Batches of this process's share of ``train``: a shuffle seeded by ``seed`` and the epoch, split by rank.

        An iterable dataset (e.g. a lazy one) shuffles and shards itself.
        """
        if isinstance(train, IterableDataset):
            return DataLoader(train, batch_size=batch_size, num_workers=self.options.num_workers)
        assert isinstance(train, Sized), "a map-style dataset has a length"
        sampler: DistributedSampler[int] = DistributedSampler(
            train,
            num_replicas=self.distributed.world_size,
            rank=self.distributed.rank,
            shuffle=True,
            seed=self.options.seed,
            drop_last=True,
        )
        return DataLoader(
            train,
            batch_size=batch_size,
            sampler=sampler,
            drop_last=len(train) > self.options.batch_size,
            num_workers=self.options.num_workers,
        )

    def _epoch(
        self,
        model: DownscalingModel,
        network: torch.nn.Module,
        loader: DataLoader,
        val: DownscalingDataset | None,
        epoch: int,
    ) -> EpochRecord:
        started = time.perf_counter()
        learning_rate = self.optimizer.param_groups[0]["lr"]
        for reshuffled in (loader.sampler, loader.dataset):
            if hasattr(reshuffled, "set_epoch"):
                reshuffled.set_epoch(epoch)
        model.train()
        sums: dict[str, float] = {}
        count = 0
        show = self.progress and self.distributed.is_main
        bar = tqdm(loader, desc=f"epoch {epoch}/{self.options.epochs}", disable=not show, leave=False, unit="batch")
        for sample in bar:
            batch = Batch(sample, self.device, self.memory_format)
            values = self.train_step(network, batch)
            if not math.isfinite(values["loss"]):
                raise FloatingPointError(
                    f"the training loss became {values['loss']} in epoch {epoch}; lower the learning_rate, "
                    "set grad_clip (e.g. 1.0), or use precision fp32"
                )
            for name, value in values.items():
                sums[name] = sums.get(name, 0.0) + value * batch.size
            count += batch.size
            bar.set_postfix(loss=f"{sums['loss'] / count:.4f}")
        names = sorted(sums)
        totals = self.distributed.sum(torch.tensor([count] + [sums[name] for name in names], dtype=torch.float64))
        means = {name: float(total) / max(float(totals[0]), 1.0) for name, total in zip(names, totals[1:])}
        train_loss = means.pop("loss")
        val_loss = None
        if val is not None:
            val_loss = self.distributed.broadcast(self.evaluate_loss(model, val) if self.distributed.is_main else None)
        record = EpochRecord(epoch, train_loss, val_loss, learning_rate, time.perf_counter() - started, means)
        if self.distributed.is_main:
            logger.info(
                "epoch %d/%d  train loss %.4f  val loss %s  (%.1f s)",
                epoch,
                self.options.epochs,
                train_loss,
                "-" if val_loss is None else f"{val_loss:.4f}",
                record.seconds,
            )
        return record

    def _stopped(self) -> bool:
        """True, after logging why, when early stopping ends the run before the next epoch."""
        if not self._would_stop():
            return False
        assert self.options.early_stopping is not None
        best = self.history.best
        if not self.distributed.is_main:
            return True
        logger.info(
            "early stopping after epoch %d: no improvement for %d epochs; restoring epoch %d",
            self.history.epochs[-1].epoch,
            self.options.early_stopping.patience,
            best.epoch if best else 0,
        )
        return True

    # ----------------------------------------------------------------- steps shared by the trainers

    @contextmanager
    def autocast(self) -> Iterator[None]:
        """Mixed precision for the forward passes when ``precision`` asks for it."""
        dtype = _AUTOCAST_DTYPES.get(self.precision)
        with torch.autocast(self.device.type, dtype=dtype, enabled=dtype is not None):
            yield

    def generate(self, model: torch.nn.Module, batch: Batch, members: int | None = None) -> torch.Tensor:
        """K = ``members`` (default ``ensemble_size``) predictions per input as (B', K, V, H, W), in float32.

        B' = B for spatial networks and B*T for windows of T frames.
        """
        k = self.options.ensemble_size if members is None else members
        x, static, offset = batch.x, batch.static, batch.offset
        if k > 1:
            x, offset = x.repeat_interleave(k, 0), offset.repeat_interleave(k, 0)
            static = None if static is None else static.repeat_interleave(k, 0)
        with self.autocast():
            output = model(x, static, offset)
        output = output.float().unflatten(0, (batch.size, k))  # (B, K, [T,] V, H, W)
        if output.ndim == 6:
            output = output.transpose(1, 2).flatten(0, 1)
        return output

    def content_loss(self, prediction: torch.Tensor, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        """The content loss of (B', K, V, H, W) ``prediction`` (from :meth:`generate`) on ``batch``, and its terms.

        The terms are returned as floats, for the history, only when the loss has several.
        """
        terms = self.loss.terms(prediction, batch.frames(batch.y), batch.frames(batch.weight))
        total = self.loss.combine(terms)
        logged = {name: value.item() for name, value in terms.items()} if len(terms) > 1 else {}
        return total, logged

    def optimise(
        self,
        loss: torch.Tensor,
        optimizer: torch.optim.Optimizer,
        parameters: Any,
        scaler: torch.amp.GradScaler | None = None,
    ) -> None:
        """Backpropagate ``loss`` and step ``optimizer`` with loss scaling (default: the generator's) and clipping."""
        scaler = self.scaler if scaler is None else scaler
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if self.options.grad_clip is not None:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(parameters, self.options.grad_clip)
        scaler.step(optimizer)
        scaler.update()

    def update_average(self) -> None:
        """Fold the model's new weights into the moving average, if one is kept."""
        if self.ema is not None and self.model is not None:
            self.ema.update_parameters(self.model)

    def evaluated(self, model: DownscalingModel) -> DownscalingModel:
        """The weights that are validated and kept: the moving average if there is one, else ``model``."""
        return model if self.ema is None else self.ema.module  # type: ignore[return-value]

    @torch.no_grad()
    def evaluate_loss(self, model: DownscalingModel, data: DownscalingDataset) -> float:
        """Content loss over every sample of ``data``, weighted by each batch's total cell weight.

        The noise of stochastic networks comes from a generator seeded with
        ``seed``, so the value is repeatable and training's random stream is untouched.
        """
        evaluated = self.evaluated(model)
        evaluated.eval()
        total, weight = 0.0, 0.0
        with seeded(self.options.seed, self.device):
            for sample in DataLoader(data, batch_size=self.options.batch_size * 4):
                batch = Batch(sample, self.device, self.memory_format)
                loss, _ = self.content_loss(self.generate(evaluated, batch), batch)
                cells = float(batch.weight.sum())
                total += float(loss) * cells
                weight += cells
        return total / max(weight, 1e-12)

    # ----------------------------------------------------------------- checkpoints

    def _save(self, model: DownscalingModel, parts: dict[str, Any], epoch: int, improved: bool) -> None:
        if self.checkpoint_dir is None or not self.distributed.is_main:
            return
        if improved:
            save_checkpoint(self.checkpoint_dir / BEST_CHECKPOINT, self.evaluated(model))
        self.history.write_csv(self.checkpoint_dir / HISTORY_CSV)
        last = epoch == self.options.epochs or self._would_stop()
        if epoch % self.options.checkpoint_every == 0 or last:
            state = {
                "epoch": epoch,
                "history": self.history.to_list(),
                "torch_rng": torch.get_rng_state(),
                "components": sorted(parts),
                **{name: part.state_dict() for name, part in parts.items()},
            }
            if torch.cuda.is_available():
                state["cuda_rng"] = torch.cuda.get_rng_state_all()
            save_checkpoint(self.checkpoint_dir / LAST_CHECKPOINT, model, state)
            now = time.monotonic()
            if last or self._curves_drawn_at is None or now - self._curves_drawn_at >= CURVES_INTERVAL_S:
                self.history.plot(self.checkpoint_dir / LEARNING_CURVES)
                self._curves_drawn_at = now

    def _would_stop(self) -> bool:
        """Whether early stopping's patience has run out on the history so far."""
        return self.options.early_stopping is not None and self.options.early_stopping.should_stop(
            self.history.monitored
        )

    def _restore(self, model: DownscalingModel, parts: dict[str, Any]) -> int:
        if self.checkpoint_dir is None:
            raise ConfigError("resume needs a checkpoint_dir holding last.pt from the interrupted run")
        path = self.checkpoint_dir / LAST_CHECKPOINT
        payload = read_checkpoint(path)
        state = payload.get("training_state")
        if not state:
            raise CheckpointError(f"{str(path)!r} has no training state to resume from; it holds a model only")
        saved_architecture = payload["metadata"]["architecture"]
        different = state.get("components") != sorted(parts)
        try:
            if saved_architecture != model.metadata.architecture:
                raise RuntimeError("architecture differs")
            model.load_state_dict(payload["state_dict"])
        except RuntimeError:
            raise CheckpointError(
                f"{str(path)!r} holds a different model ({saved_architecture}) than the one being trained; "
                "resume with the same configuration, or start a new run in another directory"
            ) from None
        if different:
            raise CheckpointError(
                f"{str(path)!r} was written by a differently configured trainer (it saved "
                f"{', '.join(state.get('components', []))}; this one needs {', '.join(sorted(parts))}); "
                "resume with the training options of the interrupted run, or start a new run in another directory"
            )
        for name, part in parts.items():
            part.load_state_dict(state[name])
        torch.set_rng_state(state["torch_rng"])
        if "cuda_rng" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        if self.distributed.active:  # the state is rank 0's: give every process its own stream again
            torch.manual_seed(int(torch.randint(2**62, ()).item()) + self.distributed.rank)
        self.history = TrainingHistory.from_list(state["history"])
        logger.info("resuming after epoch %d from %s", state["epoch"], path)
        return int(state["epoch"]) + 1


class SupervisedTrainer(Trainer):
    """Minimises the content loss with Adam (see :class:`Trainer` for the options)."""

    def train_step(self, network: torch.nn.Module, batch: Batch) -> dict[str, float]:
        loss, terms = self.content_loss(self.generate(network, batch), batch)
        self.optimise(loss, self.optimizer, network.parameters())
        self.update_average()
        return {"loss": loss.item(), **terms}


def _check_precision(precision: Precision, device: torch.device) -> Precision:
    """``precision``, checked to run on ``device``."""
    if precision == "fp16" and device.type not in ("cuda", "mps"):
        raise ConfigError(f"precision 'fp16' needs a GPU, not device {str(device)!r}; use 'bf16' on CPUs or 'fp32'")
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError("this GPU does not support bfloat16; use precision 'fp16' or 'fp32'")
    return precision
