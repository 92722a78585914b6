"""Every training option, declared once: the ``training:`` section of a config and the trainers' arguments.

:class:`TrainerOptions` holds the options of the training loop shared by every
trainer; :class:`GANOptions` those of the adversarial part of the CGAN
trainer; :class:`DiffusionOptions` those of the residual diffusion trainer; :class:`TrainingOptions` is the whole ``training:`` section (which
trainer, its options, the loss region and weighting). Each field carries its
default, bounds and documentation; the trainers read them from here, so adding
an option means declaring it here and using it where it acts.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from dl4ds.errors import ConfigError
from dl4ds.training.losses import create_loss
from dl4ds.training.schedules import EarlyStopping, LRSchedule
from dl4ds.utils.options import Options

Precision = Literal["fp32", "bf16", "fp16"]
TrainerName = Literal["supervised", "cgan", "diffusion"]


class TrainerOptions(Options):
    """The options of the training loop, shared by every trainer."""

    loss: str | dict[str, float] = Field(
        default="mae",
        description="content loss: a name ('mae') or weighted terms ({mae: 1, spectral: 0.1}); see "
        "dl4ds.training.losses. Computed on normalised fields over cells with truth, weighted by the samples' weight",
    )
    learning_rate: float = Field(default=1e-3, gt=0, description="Adam's initial learning rate")
    epochs: int = Field(default=30, ge=1, description="maximum number of passes over the training samples")
    batch_size: int = Field(default=16, ge=1, description="samples per optimisation step (the global batch)")
    lr_schedule: LRSchedule = Field(
        default_factory=LRSchedule,
        description="a name (cosine, step, plateau, constant) or the options of LRSchedule, e.g. "
        "{name: cosine, warmup_epochs: 2}",
    )
    early_stopping: EarlyStopping | None = Field(
        default=None,
        description="None, or the options of EarlyStopping, e.g. {patience: 5}; the best epoch's weights are "
        "restored either way",
    )
    ensemble_size: int = Field(
        default=1,
        ge=1,
        description="K generator samples per input in each step, compared with the truth by an ensemble loss such "
        "as crps; K > 1 needs a stochastic network (noise_channels or Monte-Carlo dropout)",
    )
    grad_clip: float | None = Field(
        default=None, gt=0, description="clip the gradients' global norm to this value; None does not clip"
    )
    ema_decay: float | None = Field(
        default=None,
        gt=0,
        lt=1,
        description="keep an exponential moving average of the weights with this decay per step (e.g. 0.999); "
        "validation, best.pt and the returned model use the averaged weights. None keeps none",
    )
    precision: Precision = Field(
        default="fp32",
        description="fp32, or mixed precision with bf16 (CPUs, recent GPUs) or fp16 (GPUs, with loss scaling)",
    )
    seed: int = Field(
        default=0,
        description="seeds shuffling, patch positions, noise and the discriminator's weights; the same seed gives "
        "bit-identical results on the CPU",
    )
    device: str = Field(default="cpu", description="torch device, e.g. cpu, cuda, cuda:1, mps")
    num_workers: int = Field(default=0, ge=0, description="DataLoader worker processes")
    channels_last: bool = Field(
        default=True,
        description="keep weights and batches in the channels-last memory format, which makes convolutions "
        "10-30% faster on CPUs (benchmarks/training_throughput.py --channels-last)",
    )
    compile: bool = Field(default=False, description="run the training steps' networks through torch.compile")
    checkpoint_every: int = Field(
        default=1, ge=1, description="write last.pt and the learning curves every this many epochs, and after the last"
    )
    tensorboard: bool = Field(
        default=False,
        description="also log to TensorBoard (checkpoint_dir/tensorboard; pip install 'dl4ds[tensorboard]')",
    )

    @field_validator("lr_schedule", mode="before")
    @classmethod
    def _schedule_name(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value

    @field_validator("loss")
    @classmethod
    def _known_loss(cls, value: str | dict[str, float]) -> str | dict[str, float]:
        try:
            create_loss(value)
        except ConfigError as error:
            raise ValueError(str(error)) from None
        return value


class GANOptions(Options):
    """The adversarial part of the CGAN trainer (:class:`dl4ds.training.CGANTrainer`)."""

    adversarial_weight: float = Field(
        default=0.01, ge=0, description="weight of the generator's adversarial loss relative to the content loss"
    )
    gan_loss: Literal["hinge", "nonsaturating"] = Field(
        default="hinge",
        description="hinge, or nonsaturating (the logistic loss of Goodfellow et al. with the generator's "
        "non-saturating form)",
    )
    r1_weight: float = Field(
        default=0.0,
        ge=0,
        description="gamma of the R1 gradient penalty on real fields (Mescheder et al. 2018); 0 for none (the "
        "spectral norm already bounds the discriminator)",
    )
    warmup_epochs: int = Field(
        default=0,
        ge=0,
        description="epochs of content loss only before the adversarial term starts (the discriminator trains "
        "from the first epoch)",
    )
    discriminator_filters: int = Field(default=32, ge=1, description="filters of the discriminator's first layer")
    discriminator_depth: int = Field(default=3, ge=0, description="stride-2 layers of the discriminator")
    spectral_norm: bool = Field(default=True, description="spectral normalisation of every discriminator layer")
    discriminator_learning_rate: float | None = Field(
        default=None, gt=0, description="Adam's rate for the discriminator; None uses the generator's"
    )
    discriminator_steps: int = Field(default=1, ge=1, description="discriminator updates per generator update")


class DiffusionOptions(Options):
    """The residual diffusion trainer (:class:`dl4ds.training.DiffusionTrainer`): stage 1 and the noise levels."""

    stage1_checkpoint: str | None = Field(
        default=None,
        description="a trained deterministic model (e.g. best.pt of a supervised run) whose network is the stage-1 "
        "mean; it must match the model's regressor and regressor_params and the data's variables, scale, grid and "
        "normalisation. None trains stage 1 first in the same run",
    )
    stage1_epochs: int = Field(
        default=10,
        ge=1,
        description="epochs of stage 1 (the regressor, with the content loss) when no stage1_checkpoint is given; "
        "written to checkpoint_dir/stage1",
    )
    p_mean: float = Field(
        default=-0.5,
        description="mean of ln(sigma) of the training noise levels (EDM's log-normal; -1.2 for sigma_data 0.5, "
        "here -0.5 for the unit-variance residual)",
    )
    p_std: float = Field(default=1.2, gt=0, description="standard deviation of ln(sigma) of the training noise levels")
    validation_sigmas: list[float] = Field(
        default=[0.1, 0.3, 1.0, 3.0],
        min_length=1,
        description="noise levels of the validation proxy: the weighted denoising loss averaged over them, with "
        "noise drawn from the seed",
    )

    spread_calibration: bool = Field(
        default=True,
        description="after stage 2, draw calibration_members members for up to 64 validation inputs and scale the "
        "sampled residual, per variable, by the factor that minimises their fair CRPS (variance inflation, as "
        "ensemble post-processing does). Stage 1 errs more on unseen data than on its training data, whose residuals "
        "the denoiser learns, so without it a model trained on little data is under-dispersed. The factor is stored "
        "in the model (spread_inflation) and logged; without validation data nothing is fitted",
    )
    calibration_members: int = Field(
        default=8, ge=2, description="members per validation input drawn to fit the spread calibration"
    )

    @field_validator("validation_sigmas")
    @classmethod
    def _positive(cls, value: list[float]) -> list[float]:
        if any(sigma <= 0 for sigma in value):
            raise ValueError(f"noise levels must be > 0, got {value}")
        return value


class LossRegion(Options):
    """The cells the training loss sees: where the static field ``variable`` lies in [min, max] (physical units)."""

    variable: str = Field(description="a static field, e.g. land_fraction")
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _bounded(self) -> LossRegion:
        if self.min is None and self.max is None:
            raise ValueError(f"loss_region on {self.variable!r} needs min and/or max, e.g. min: 0.5")
        return self


class TrainingOptions(TrainerOptions):
    """The ``training:`` section of an experiment: the trainer, its options and how the loss weights cells."""

    trainer: TrainerName = Field(
        default="supervised", description="supervised, cgan (adversarial) or diffusion (residual diffusion)"
    )
    gan: GANOptions | None = Field(default=None, description="options of the cgan trainer")
    diffusion: DiffusionOptions | None = Field(default=None, description="options of the diffusion trainer")
    loss_region: LossRegion | None = Field(default=None, description="the cells the loss sees, by a static field")
    area_weighted: bool = Field(default=False, description="weight the loss by cos(latitude)")

    @model_validator(mode="after")
    def _gan_only_for_cgan(self) -> TrainingOptions:
        if self.gan is not None and self.trainer != "cgan":
            raise ValueError("a 'gan' section needs trainer: cgan; remove it or set trainer: cgan")
        if self.diffusion is not None and self.trainer != "diffusion":
            raise ValueError("a 'diffusion' section needs trainer: diffusion; remove it or set trainer: diffusion")
        return self
