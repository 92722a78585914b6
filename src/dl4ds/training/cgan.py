"""Conditional adversarial training (CGAN) of a noise-injected generator.

Each step first trains a conditional PatchGAN discriminator to tell the truth
from generated fields, both shown with the coarse inputs and static fields
they belong to; then the generator (the downscaling network) minimises

    content loss + adversarial_weight * adversarial loss,

where the content loss (e.g. ``crps`` over K = ``ensemble_size`` samples per
input, or ``mae`` on their mean) keeps it faithful to the truth and the
adversarial term makes each sample realistic at the smallest scales. Cells
without truth (and outside the loss region) are replaced by the truth in the
generated fields the discriminator sees, so it cannot tell them apart there.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from dl4ds.data.torch_dataset import DownscalingDataset
from dl4ds.model import DownscalingModel
from dl4ds.networks.discriminator import ConditionalDiscriminator, fine_detail, interpolate_coarse
from dl4ds.training.options import GANOptions, TrainerOptions
from dl4ds.training.schedules import Scheduler, step_scheduler
from dl4ds.training.trainer import Batch, Trainer

Condition = tuple[torch.Tensor, torch.Tensor | None]
"""What the discriminator is conditioned on: (N, C, h, w) coarse inputs and (N, S, H, W) static fields or None."""


class CGANTrainer(Trainer):
    """Conditional adversarial training; every option of :class:`Trainer`, plus ``gan``.

    Args:
        options, **arguments: as for :class:`Trainer`.
        gan: the options of :class:`~dl4ds.training.options.GANOptions` (a mapping or an instance).

    An ensemble loss such as
    ``loss="crps"`` with ``ensemble_size >= 2`` and a generator with
    ``noise_channels`` gives a calibrated ensemble; the discriminator judges
    every member.

    The discriminator, its optimiser and schedule are saved in ``last.pt`` for
    resuming; ``best.pt`` holds the generator (the downscaling model) only.
    The best epoch is chosen on the validation content loss.
    """

    def __init__(
        self,
        options: TrainerOptions | Mapping[str, Any] | None = None,
        *,
        gan: GANOptions | Mapping[str, Any] | None = None,
        **arguments: Any,
    ) -> None:
        super().__init__(options, **arguments)
        self.gan = GANOptions.parse(gan or {}, "gan")
        self.discriminator_scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")

    def components(self, model: DownscalingModel, train: Dataset) -> dict[str, Any]:
        parts = super().components(model, train)
        meta = model.metadata
        self.discriminator = ConditionalDiscriminator(
            len(meta.target_variables),
            len(meta.input_variables),
            len(meta.static_variables),
            meta.scale,
            n_filters=self.gan.discriminator_filters,
            depth=self.gan.discriminator_depth,
            spectral_norm=self.gan.spectral_norm,
        )
        self.discriminator.detail_scale.copy_(detail_scale(train))
        # Module.to(memory_format=...) works at runtime, but torch's stubs lack that overload.
        self.discriminator.to(self.device, memory_format=self.memory_format)  # type: ignore[call-overload]
        self.discriminator_optimizer = torch.optim.Adam(
            self.discriminator.parameters(),
            lr=self.gan.discriminator_learning_rate or self.options.learning_rate,
            betas=(0.5, 0.999),
        )
        self.discriminator_scheduler: Scheduler = self.options.lr_schedule.build(
            self.discriminator_optimizer, self.options.epochs
        )
        parts.update(
            discriminator=self.discriminator,
            discriminator_optimizer=self.discriminator_optimizer,
            discriminator_scheduler=self.discriminator_scheduler,
            discriminator_scaler=self.discriminator_scaler,
        )
        return parts

    def end_epoch(self, monitored: float) -> None:
        super().end_epoch(monitored)
        step_scheduler(self.discriminator_scheduler, monitored)

    def parallel(self, module: torch.nn.Module) -> torch.nn.Module:
        self.discriminator_network = super().parallel(self.discriminator)
        return super().parallel(module)

    def train_step(self, network: torch.nn.Module, batch: Batch) -> dict[str, float]:
        real = batch.frames(batch.y)
        valid = (batch.frames(batch.weight) > 0).unsqueeze(1)

        def as_shown(generated: torch.Tensor) -> torch.Tensor:
            """(B', K, V, H, W) generated fields with the truth in the cells the loss does not see."""
            return torch.where(valid, generated, real.unsqueeze(1))

        condition, real_condition = batch.condition(self.options.ensemble_size), batch.condition(1)
        self.discriminator.train()
        for _ in range(self.gan.discriminator_steps):
            with torch.no_grad():
                fake = as_shown(self.generate(network, batch))
            d_loss, d_terms = self._discriminator_loss(real, real_condition, fake, condition)
            self.optimise(
                d_loss, self.discriminator_optimizer, self.discriminator.parameters(), self.discriminator_scaler
            )

        prediction = self.generate(network, batch)
        content, terms = self.content_loss(prediction, batch)
        adversarial = self._generator_adversarial(as_shown(prediction), condition)
        adversarial_on = len(self.history.epochs) >= self.gan.warmup_epochs
        total = content + (self.gan.adversarial_weight * adversarial if adversarial_on else 0.0)
        self.optimise(total, self.optimizer, network.parameters())
        self.update_average()
        return {"loss": content.item(), "adversarial": adversarial.item(), **d_terms, **terms}

    def _logits(self, fields: torch.Tensor, condition: Condition) -> torch.Tensor:
        """Patch logits of (N, V, H, W) fields given their (N, C, h, w) coarse inputs and static fields."""
        with self.autocast():
            return self.discriminator_network(fields, *condition).float()

    def _discriminator_loss(
        self,
        real: torch.Tensor,
        real_condition: Condition,
        fake: torch.Tensor,
        condition: Condition,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """The discriminator's loss on real (B', V, H, W) and fake (B', K, V, H, W) fields, and what to log."""
        if self.gan.r1_weight > 0:
            real = real.detach().requires_grad_(True)
        real_logits = self._logits(real, real_condition)
        fake_logits = self._logits(fake.flatten(0, 1), condition)
        if self.gan.gan_loss == "hinge":
            loss = F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()
        else:
            loss = F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
        logged = {
            "discriminator": loss.item(),
            "logit_real": real_logits.mean().item(),
            "logit_fake": fake_logits.mean().item(),
        }
        if self.gan.r1_weight > 0:
            (gradient,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
            penalty = gradient.square().flatten(1).sum(1).mean()
            loss = loss + 0.5 * self.gan.r1_weight * penalty
            logged["r1"] = penalty.item()
        return loss, logged

    def _generator_adversarial(self, prediction: torch.Tensor, condition: Condition) -> torch.Tensor:
        """The generator's adversarial loss for (B', K, V, H, W) predictions."""
        logits = self._logits(prediction.flatten(0, 1), condition)
        if self.gan.gan_loss == "hinge":
            return -logits.mean()
        return F.softplus(-logits).mean()


def detail_scale(data: Dataset, max_steps: int = 256) -> torch.Tensor:
    """(V,) standard deviation of the true fine-scale detail (target minus bilinear interpolation of its coarse version).

    Computed over the cells with truth of up to ``max_steps`` evenly spaced
    time steps of an in-memory dataset, or the first ``max_steps`` samples of
    an iterable (lazy) one, in normalised units; at least 1e-6.
    """
    if isinstance(data, DownscalingDataset):
        steps = torch.linspace(0, data.y.shape[0] - 1, min(max_steps, data.y.shape[0])).round().long()
        x, y, weight = data.x[steps], data.y[steps], data.weight[steps]
    else:
        samples = list(itertools.islice(iter(data), max_steps))
        x, y, weight = (torch.stack([sample[key] for sample in samples]) for key in ("x", "y", "weight"))
    detail = fine_detail(y, interpolate_coarse(x, y.shape[-1] // x.shape[-1]))
    valid = weight > 0
    spread = [
        detail[:, v][valid[:, v]].std() if valid[:, v].sum() > 1 else torch.tensor(1.0) for v in range(y.shape[1])
    ]
    return torch.stack(spread).nan_to_num(1.0).clamp_min(1e-6)
