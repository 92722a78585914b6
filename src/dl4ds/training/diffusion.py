"""Training of a residual diffusion model (:class:`dl4ds.networks.diffusion.ResidualDiffusion`), in two stages.

Stage 1, the deterministic regressor that gives the conditional mean, is
loaded from a checkpoint (``stage1_checkpoint``) or trained first in the same
run by a :class:`~dl4ds.training.trainer.SupervisedTrainer` with the content
loss (into ``checkpoint_dir/stage1``); it is then frozen. The residual's
standard deviation per variable is measured on the training samples and
stored in the model. Stage 2 trains the denoiser with EDM's loss: noise levels
drawn log-normally (``p_mean``, ``p_std``), the loss weighted by
lambda(sigma) = (sigma^2 + 1) / sigma^2 so that every level counts alike.
Validation is the same weighted loss at the fixed ``validation_sigmas`` with
noise drawn from the seed: cheap and repeatable, unlike sampling. After
stage 2, the spread is calibrated on the validation data (``spread_calibration``):
the sampled residual is scaled by the factor that minimises the fair CRPS of a
few members there, since the denoiser learns stage 1's training residuals,
which are smaller than its errors on unseen data.

Everything else is the loop of :class:`~dl4ds.training.trainer.Trainer`:
schedules, EMA of the weights (``ema_decay``, which matters for diffusion),
mixed precision, DDP under torchrun, lazy data and exact resume (of either stage).
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, IterableDataset

from dl4ds import networks
from dl4ds.data.torch_dataset import DownscalingDataset, Sample
from dl4ds.errors import ConfigError
from dl4ds.model import DownscalingModel
from dl4ds.model.checkpoint import load_model, save_checkpoint
from dl4ds.networks.diffusion import DEFAULT_STEPS, ResidualDiffusion, edm_sample, noise_levels
from dl4ds.training.distributed import Distributed
from dl4ds.training.history import EpochRecord
from dl4ds.training.options import DiffusionOptions, TrainerOptions
from dl4ds.training.trainer import BEST_CHECKPOINT, LAST_CHECKPOINT, Batch, SupervisedTrainer, Trainer
from dl4ds.utils.seeding import seeded

STAGE1_DIR = "stage1"
RESIDUAL_SAMPLES = 256
"""Training samples over which the residual's standard deviation is measured."""
CALIBRATION_INPUTS = 64
"""Validation inputs, spread over the period, on which the spread calibration is fitted."""
INFLATION_GRID = torch.logspace(math.log10(0.25), math.log10(8.0), 109)
"""The factors the spread calibration tries: 0.25 to 8, 3.3 % apart."""

logger = logging.getLogger(__name__)


class DenoisingObjective(nn.Module):
    """EDM's weighted denoising loss of a residual diffusion model, as one module (so DDP syncs its gradients).

    ``forward(x, static, offset, y, weight, sigma, noise)`` takes a batch's
    coarse inputs (B, C, h, w), static fields (B, S, H, W) or None, offsets
    (B, 2), normalised targets and loss weights (B, V, H, W), noise levels
    (B,) and standard normal noise (B, V, H, W), and returns the scalar loss
    sum(weight * lambda(sigma) * (D(r + sigma n; sigma) - r)^2) / sum(weight)
    of the scaled residual r = (y - mean) / residual_scale.
    """

    def __init__(self, model: DownscalingModel) -> None:
        super().__init__()
        self.model = model

    def forward(
        self,
        x: torch.Tensor,
        static: torch.Tensor | None,
        offset: torch.Tensor,
        y: torch.Tensor,
        weight: torch.Tensor,
        sigma: torch.Tensor,
        noise: torch.Tensor,
    ) -> torch.Tensor:
        network = self.model.network
        assert isinstance(network, ResidualDiffusion), "checked by DiffusionTrainer.check_model"
        with torch.no_grad():
            mean, condition = network.condition(x, static, offset)
        residual = (y - mean) / network.residual_scale[None, :, None, None]
        view = sigma[:, None, None, None]
        denoised = network.denoise(residual + view * noise, sigma, condition)
        weighting = (view**2 + 1.0) / view**2
        return (weight * weighting * (denoised - residual) ** 2).sum() / weight.sum().clamp_min(1e-12)


class DiffusionTrainer(Trainer):
    """Two-stage training of a ``residual_diffusion`` model; every option of :class:`Trainer`, plus ``diffusion``.

    Args:
        options, **arguments: as for :class:`Trainer`; ``loss``, ``epochs``
            and the rest apply to stage 1 where it is trained here (its own
            ``stage1_epochs``, without EMA) and, but for ``loss``, to stage 2.
        diffusion: the options of :class:`~dl4ds.training.options.DiffusionOptions`.

    ``best.pt`` and ``last.pt`` hold the whole model (regressor and denoiser);
    ``stage1/best.pt`` the stage-1 model alone, a deterministic model in its own right.
    """

    def __init__(
        self,
        options: TrainerOptions | Mapping[str, Any] | None = None,
        *,
        diffusion: DiffusionOptions | Mapping[str, Any] | None = None,
        **arguments: Any,
    ) -> None:
        super().__init__(options, **arguments)
        self.diffusion = DiffusionOptions.parse(diffusion or {}, "diffusion")

    def check_model(self, model: DownscalingModel) -> None:
        if not isinstance(model.network, ResidualDiffusion):
            raise ConfigError(
                f"trainer diffusion trains a residual diffusion model, not {model.metadata.architecture!r}; set "
                f"model.name: residual_diffusion with model.params.regressor: {model.metadata.architecture}"
            )
        if self.options.ensemble_size > 1:
            raise ConfigError(
                "ensemble_size applies to the supervised and cgan trainers; the diffusion trainer draws one noise "
                "level per sample. Remove ensemble_size"
            )

    def fit(
        self,
        model: DownscalingModel,
        train: Dataset,
        val: DownscalingDataset | None = None,
        *,
        resume: bool = False,
        on_epoch: Callable[[EpochRecord], None] | None = None,
    ) -> DownscalingModel:
        """Stage 1 (loaded or trained, then frozen), the residual's scale, then stage 2 (see :meth:`Trainer.fit`).

        With ``resume=True`` an interrupted stage 1 continues where it was
        stopped, a finished one is read back, and stage 2 resumes from
        ``last.pt`` if it had begun. With ``val`` and ``spread_calibration``,
        the returned model, and ``best.pt``, carry the fitted :meth:`spread_inflation`.
        """
        self.check_model(model)
        network = model.network
        assert isinstance(network, ResidualDiffusion)
        self.distributed = Distributed.from_environment(self.device)  # stage 1 and the residual scale need the group
        self.device = self.distributed.device(self.device)
        stage1_resumable = self._stage1_dir is not None and (self._stage1_dir / LAST_CHECKPOINT).exists()
        stage2_resumable = self.checkpoint_dir is not None and (self.checkpoint_dir / LAST_CHECKPOINT).exists()
        self._stage1(model, train, val, resume=resume and stage1_resumable)
        network.regressor.requires_grad_(False)
        model.to(self.device)
        network.residual_scale.copy_(self._residual_scale(model, train))
        super().fit(model, train, val, resume=resume and (stage2_resumable or not stage1_resumable), on_epoch=on_epoch)
        if not self.diffusion.spread_calibration:
            return model
        if val is None:
            logger.warning(
                "spread_calibration needs validation data and none was given: the spread is not calibrated "
                "(spread_inflation stays 1); give validation data (config: data.val_period) or set "
                "training.diffusion.spread_calibration: false"
            )
            return model
        network.spread_inflation.copy_(self.spread_inflation(model, val))
        logger.info(
            "spread calibration on the validation data: sampled residuals scaled by %s",
            ", ".join(f"{factor:.3f}" for factor in network.spread_inflation.tolist()),
        )
        if self.checkpoint_dir is not None and self.distributed.is_main:
            save_checkpoint(self.checkpoint_dir / BEST_CHECKPOINT, model)
        return model

    @property
    def _stage1_dir(self) -> Path | None:
        return None if self.checkpoint_dir is None else self.checkpoint_dir / STAGE1_DIR

    def _stage1(self, model: DownscalingModel, train: Dataset, val: DownscalingDataset | None, resume: bool) -> None:
        """Give the regressor its stage-1 weights: from ``stage1_checkpoint``, or trained here."""
        stage1 = stage1_model(model)
        if self.diffusion.stage1_checkpoint is not None:
            loaded = load_model(self.diffusion.stage1_checkpoint)
            check_stage1(loaded, stage1, self.diffusion.stage1_checkpoint)
            stage1.network.load_state_dict(loaded.network.state_dict())
            return
        options = self.options.updated("stage 1 options", epochs=self.diffusion.stage1_epochs, ema_decay=None)
        trainer = SupervisedTrainer(options, checkpoint_dir=self._stage1_dir, progress=self.progress)
        trainer.fit(stage1, train, val, resume=resume)

    @torch.no_grad()
    def _residual_scale(self, model: DownscalingModel, train: Dataset) -> torch.Tensor:
        """(V,) standard deviation of truth minus stage-1 mean over up to RESIDUAL_SAMPLES samples (at least 1e-3).

        Under torchrun every process measures its own share (an iterable
        dataset's shard, or the same picks of an in-memory one) and the sums are
        added over the processes, so all of them store the same scale. The
        patches are those of epoch 0, whatever epoch the dataset was left at,
        and stage 1 runs in eval mode, so the scale depends on the data and weights alone.
        """
        set_epoch = getattr(train, "set_epoch", None)
        if set_epoch is not None:
            set_epoch(0)
        if isinstance(train, IterableDataset):
            samples = list(itertools.islice(iter(train), RESIDUAL_SAMPLES))
        else:
            samples = [train[index] for index in spread_indices(len(train), RESIDUAL_SAMPLES)]  # type: ignore[arg-type]
        network = model.network
        assert isinstance(network, ResidualDiffusion)
        network.regressor.eval()
        squares = torch.zeros(len(model.metadata.target_variables), dtype=torch.float64, device=self.device)
        cells = torch.zeros_like(squares)
        for batch in self._batches(samples):
            mean = network.regressor(batch.x, batch.static, batch.offset).float()
            valid = (batch.weight > 0).double()
            squares += (valid * (batch.y - mean).double() ** 2).sum(dim=(0, 2, 3))
            cells += valid.sum(dim=(0, 2, 3))
        squares, cells = self.distributed.sum(squares), self.distributed.sum(cells)
        return torch.sqrt(squares / cells.clamp_min(1.0)).float().clamp_min(1e-3)

    @torch.no_grad()
    def spread_inflation(self, model: DownscalingModel, val: DownscalingDataset) -> torch.Tensor:
        """(V,) the factor on the sampled residual that minimises the fair CRPS on ``val``, per variable.

        Draws ``calibration_members`` members, with :data:`DEFAULT_STEPS`
        deterministic Heun steps and noise from ``seed``, for up to
        :data:`CALIBRATION_INPUTS` inputs of ``val`` spread over it, and
        scores ``mu + k * d_m`` (``d_m`` the members' residuals, normalised
        units) for every k of :data:`INFLATION_GRID`. The fair CRPS
        (Ferro 2014) is convex in k, so the grid's best value is within its
        spacing (3 %) of the optimum; a factor at an end of the grid is logged as a warning.
        """
        network = model.network
        assert isinstance(network, ResidualDiffusion)
        model.eval()
        grid = INFLATION_GRID.to(self.device)
        samples = [val[index] for index in spread_indices(len(val), CALIBRATION_INPUTS)]
        variables = len(model.metadata.target_variables)
        crps_sum = torch.zeros((len(grid), variables), dtype=torch.float64, device=self.device)
        weight_sum = torch.zeros(variables, dtype=torch.float64, device=self.device)
        sigmas = noise_levels(DEFAULT_STEPS, network.sigma_min, network.sigma_max, network.rho)

        def draw(mean: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
            """One member's scaled residual (B, V, H, W) from torch's generator."""
            return edm_sample(
                lambda state, sigma: network.denoise(state, sigma, condition),
                lambda _: torch.randn_like(mean),
                sigmas,
            ).float()

        with seeded(self.options.seed, self.device):
            for batch in self._batches(samples):
                with self.autocast():
                    mean, condition = network.condition(batch.x, batch.static, batch.offset)
                    residuals = (
                        torch.stack([draw(mean, condition) for _ in range(self.diffusion.calibration_members)])
                        * network.residual_scale[None, None, :, None, None]
                    )  # (M, B, V, H, W)
                crps, weight = fair_crps_sums(residuals, (batch.y - mean).float(), batch.weight, grid)
                crps_sum += crps
                weight_sum += weight
        crps = crps_sum / weight_sum.clamp_min(1e-12)
        best = grid[crps.argmin(dim=0)]
        for name, factor in zip(model.metadata.target_variables, best.tolist(), strict=True):
            if factor in (grid[0].item(), grid[-1].item()):
                logger.warning(
                    "the spread calibration of %s reached the end of its range (factor %.3f): the denoiser's residuals "
                    "fit the validation errors badly; check stage 1 on the validation period",
                    name,
                    factor,
                )
        return best.float()

    def _batches(self, samples: list[Sample]) -> Iterator[Batch]:
        """``samples`` stacked into batches of ``batch_size``, in order, on the training device."""
        for first in range(0, len(samples), self.options.batch_size):
            chunk = samples[first : first + self.options.batch_size]
            yield Batch(
                {key: torch.stack([sample[key] for sample in chunk]) for key in chunk[0]},
                self.device,
                self.memory_format,
            )

    def parallel(self, module: torch.nn.Module) -> torch.nn.Module:
        assert isinstance(module, DownscalingModel)
        return super().parallel(DenoisingObjective(module))

    def _levels(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Noise levels (B,) drawn log-normally and standard normal noise like ``batch.y``, from torch's generator."""
        log_sigma = self.diffusion.p_mean + self.diffusion.p_std * torch.randn(batch.size, device=self.device)
        return log_sigma.exp(), torch.randn_like(batch.y)

    def train_step(self, network: torch.nn.Module, batch: Batch) -> dict[str, float]:
        sigma, noise = self._levels(batch)
        with self.autocast():
            loss = network(batch.x, batch.static, batch.offset, batch.y, batch.weight, sigma, noise)
        self.optimise(loss, self.optimizer, network.parameters())
        self.update_average()
        return {"loss": loss.item()}

    @torch.no_grad()
    def evaluate_loss(self, model: DownscalingModel, data: DownscalingDataset) -> float:
        """The weighted denoising loss at each of ``validation_sigmas``, averaged, with noise drawn from ``seed``."""
        evaluated = self.evaluated(model)
        evaluated.eval()
        objective = DenoisingObjective(evaluated)
        total, weight = 0.0, 0.0
        with seeded(self.options.seed, self.device):
            for sample in DataLoader(data, batch_size=self.options.batch_size * 4):
                batch = Batch(sample, self.device, self.memory_format)
                cells = float(batch.weight.sum())
                for level in self.diffusion.validation_sigmas:
                    sigma = torch.full((batch.size,), level, device=self.device)
                    with self.autocast():
                        loss = objective(
                            batch.x, batch.static, batch.offset, batch.y, batch.weight, sigma, torch.randn_like(batch.y)
                        )
                    total += float(loss) * cells / len(self.diffusion.validation_sigmas)
                weight += cells
        return total / max(weight, 1e-12)


def spread_indices(count: int, most: int) -> list[int]:
    """Up to ``most`` distinct indices of ``count`` items, evenly spread from the first to the last."""
    return torch.linspace(0, count - 1, min(most, count)).round().long().tolist()


def fair_crps_sums(
    residuals: torch.Tensor, error: torch.Tensor, weight: torch.Tensor, factors: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted sums of the fair CRPS of the members ``mean + k * residuals`` for each factor k, and the weights.

    Args:
        residuals: (M, B, V, H, W) the members minus the stage-1 mean, M >= 2.
        error: (B, V, H, W) the truth minus the stage-1 mean.
        weight: (B, V, H, W) the cells' weights (0 where the truth is missing).
        factors: (G,) the factors k.

    Returns:
        (G, V) sum over the cells of weight * fair CRPS (Ferro 2014:
        mean_m |k d_m - e| - k * sum_{i<j} |d_i - d_j| / (M (M - 1))), and (V,)
        the summed weights, both float64: their ratio is the mean fair CRPS.
    """
    members = residuals.shape[0]
    weight = weight.double()
    pairs = sum((residuals[i] - residuals[j]).abs() for i in range(members) for j in range(i + 1, members))
    spread = (weight * pairs / (members * (members - 1))).sum(dim=(0, 2, 3))
    distances = torch.stack(
        [(weight * (factor * residuals - error).abs().mean(dim=0)).sum(dim=(0, 2, 3)) for factor in factors.tolist()]
    )
    return distances - factors[:, None].double() * spread, weight.sum(dim=(0, 2, 3))


def stage1_model(model: DownscalingModel) -> DownscalingModel:
    """The stage-1 model of a residual diffusion ``model``: its regressor (shared, not copied) with the metadata."""
    network = model.network
    assert isinstance(network, ResidualDiffusion)
    defaults = networks.model_parameters("residual_diffusion")
    params = model.metadata.architecture_params
    metadata = dataclasses.replace(
        model.metadata,
        architecture=params.get("regressor", defaults["regressor"]),
        architecture_params=dict(params.get("regressor_params") or {}),
    )
    return DownscalingModel(network.regressor, metadata, model.static, model.no_truth)


def check_stage1(loaded: DownscalingModel, expected: DownscalingModel, path: str | os.PathLike[str]) -> None:
    """Raise ConfigError naming the difference when the stage-1 checkpoint at ``path`` cannot serve as ``expected``."""
    got, want = loaded.metadata, expected.metadata
    where = f"the stage-1 checkpoint {str(path)!r}"
    if loaded.capabilities.stochastic:
        raise ConfigError(f"{where} holds a stochastic model; stage 1 must be deterministic (e.g. a supervised run)")
    compared = {
        "target variables": (got.target_variables, want.target_variables),
        "input variables": (got.input_variables, want.input_variables),
        "static variables": (got.static_variables, want.static_variables),
        "scale": (got.scale, want.scale),
        "fine grid": (got.fine_grid.to_dict(), want.fine_grid.to_dict()),
        "normalisation": (got.normalizer.to_dict(), want.normalizer.to_dict()),
    }
    for what, (have, need) in compared.items():
        if have != need:
            shown = (f"{have}", f"{need}") if what not in ("fine grid", "normalisation") else ("one", "another")
            raise ConfigError(
                f"{where} was trained with {what} {shown[0]}, but this run has {shown[1]}; train stage 1 on the same "
                "data (variables, scale, grid and train_period), or leave stage1_checkpoint out to train it in this run"
            )
    if got.architecture != want.architecture or dict(got.architecture_params) != dict(want.architecture_params):
        raise ConfigError(
            f"{where} holds {got.architecture} with parameters {dict(got.architecture_params)}, but the model's "
            f"regressor is {want.architecture} with {dict(want.architecture_params)}; set model.params.regressor: "
            f"{got.architecture} and regressor_params: {dict(got.architecture_params)}"
        )
