"""Residual diffusion (CorrDiff-style): a deterministic network for the mean, an EDM denoiser for the residual.

Stage 1 is any deterministic network of the registry (``regressor``, e.g.
``resnet_spc``); it gives the conditional mean ``mu``. Stage 2 is a U-Net
denoiser on the fine grid that models the residual ``r = (y - mu) / s``,
``s`` being the residual's standard deviation per variable measured on the
training data (the ``residual_scale`` buffer), so ``r`` has unit variance and
EDM's preconditioning works with ``sigma_data = 1``. The denoiser sees the
noisy residual, the stage-1 mean, the interpolated coarse inputs and the
static fields, and the noise level through a learned embedding. A sample is
``mu + k * s * r``: ``k`` (the ``spread_inflation`` buffer, 1 until the trainer
fits it on validation data) corrects the spread learnt from training residuals.

Why EDM (Karras et al. 2022) rather than flow matching: it is what CorrDiff,
the closest peer, uses; its preconditioning keeps the network's inputs and
targets at unit variance at every noise level, which makes small networks
train stably on CPUs; and its second-order Heun sampler reaches good samples
in 10-20 steps, deterministically (a seed fixes a member) or with churn.
Rectified flow would give similar quality; it would need its own schedule
and sampler with no gain for this library.

A network here is *iterative* (``iterative = True``): ``forward`` draws a
sample by :func:`edm_sample` with :data:`DEFAULT_STEPS` steps, and the
inference code drives :meth:`ResidualDiffusion.condition` and
:meth:`ResidualDiffusion.denoise` itself to blend overlapping tiles at every
step (multi-diffusion). :meth:`ResidualDiffusion.step`, one denoiser
evaluation, is what tiles must respect: its receptive radius sets their overlap.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dl4ds.errors import ConfigError
from dl4ds.networks.backbones import ConvUnit
from dl4ds.networks.blocks import BlockOptions, check_choice, conv3x3, pad_to_multiple
from dl4ds.networks.random_fields import RandomFields
from dl4ds.networks.registry import check_minimum, create, register_model
from dl4ds.utils.interpolation import upsample

DEFAULT_STEPS = 18
"""Heun steps of a sample when none are asked for (2 * steps - 1 denoiser evaluations)."""

_INTERPOLATIONS = ("bicubic", "bilinear", "nearest")


class NoiseLevelEmbedding(nn.Module):
    """Sinusoidal features of ``c_noise = ln(sigma) / 4`` through a two-layer MLP: (B,) -> (B, channels)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        half = max(channels // 2, 1)
        self.register_buffer("frequencies", torch.exp(torch.linspace(0.0, math.log(1000.0), half)), persistent=False)
        self.mlp = nn.Sequential(nn.Linear(2 * half, channels), nn.SiLU(), nn.Linear(channels, channels), nn.SiLU())

    frequencies: torch.Tensor

    def forward(self, c_noise: torch.Tensor) -> torch.Tensor:
        angles = c_noise[:, None] * self.frequencies[None, :]
        return self.mlp(torch.cat([angles.sin(), angles.cos()], dim=1))


class EmbeddedUNet(nn.Module):
    """The U-Net of :class:`dl4ds.networks.backbones.UNet` with the noise-level embedding added at every level.

    Each level is two :class:`~dl4ds.networks.backbones.ConvUnit` with a
    per-channel shift from the embedding between them; the decoder mirrors
    the encoder with skips. No normalisation over the grid, so the receptive
    field is bounded and tiles blend exactly.
    (B, in_channels, H, W), (B, embedding) -> (B, out_channels, H, W); grids not
    divisible by ``2**depth`` are padded (replicating edges) and cropped back.
    """

    def __init__(self, in_channels: int, out_channels: int, *, n_filters: int, depth: int, embedding: int) -> None:
        super().__init__()
        self.depth = depth
        options = BlockOptions()
        widths = [n_filters * 2**level for level in range(depth + 1)]
        self.first = nn.ModuleList()
        self.second = nn.ModuleList()
        self.shifts = nn.ModuleList()
        previous = in_channels
        for width in widths:
            self.first.append(ConvUnit(previous, width, options))
            self.shifts.append(nn.Linear(embedding, width))
            self.second.append(ConvUnit(width, width, options))
            previous = width
        self.reducers = nn.ModuleList(conv3x3(widths[level + 1], widths[level]) for level in range(depth))
        self.decoder_first = nn.ModuleList(
            ConvUnit(2 * widths[level], widths[level], options) for level in range(depth)
        )
        self.decoder_shifts = nn.ModuleList(nn.Linear(embedding, widths[level]) for level in range(depth))
        self.decoder_second = nn.ModuleList(ConvUnit(widths[level], widths[level], options) for level in range(depth))
        self.output = conv3x3(n_filters, out_channels)

    def forward(self, x: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        x = pad_to_multiple(x, 2**self.depth)
        skips = []
        for level in range(self.depth + 1):
            x = self.first[level](x) + self.shifts[level](embedding)[:, :, None, None]
            x = self.second[level](x)
            if level < self.depth:
                skips.append(x)
                x = F.max_pool2d(x, 2)
        for level in reversed(range(self.depth)):
            x = self.reducers[level](F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False))
            x = self.decoder_first[level](torch.cat([x, skips[level]], dim=1))
            x = self.decoder_second[level](x + self.decoder_shifts[level](embedding)[:, :, None, None])
        return self.output(x)[..., :height, :width]


class SamplerNoise(nn.Module):
    """The sampler's standard normal draws: from torch's generator, or from ``random_fields`` while inference sets it.

    Draw 0 is the initial latent field, draw i > 0 the churn noise of step i;
    with random fields each draw is tied to the input and the grid position.
    """

    def __init__(self) -> None:
        super().__init__()
        self.random_fields: RandomFields | None = None

    def draw(self, shape: torch.Size, device: torch.device, index: int) -> torch.Tensor:
        """(B, V, H, W) standard normal values of draw ``index``."""
        if self.random_fields is None:
            return torch.randn(shape, device=device)
        return self.random_fields.normal(self, shape, device, draw=index)


def noise_levels(steps: int, sigma_min: float, sigma_max: float, rho: float) -> list[float]:
    """The ``steps + 1`` noise levels of EDM's schedule: sigma_max down to sigma_min with spacing ``rho``, then 0.

    Raises:
        ConfigError: ``steps`` below 1.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ConfigError(f"steps={steps!r} must be an integer >= 1 (e.g. 18); sampling needs at least one step")
    if steps == 1:
        return [sigma_max, 0.0]
    high, low = sigma_max ** (1 / rho), sigma_min ** (1 / rho)
    return [(high + i / (steps - 1) * (low - high)) ** rho for i in range(steps)] + [0.0]


def edm_sample(
    denoise: Callable[[torch.Tensor, float], torch.Tensor],
    draw: Callable[[int], torch.Tensor],
    sigmas: list[float],
    churn: float = 0.0,
) -> torch.Tensor:
    """EDM's Heun sampler (Karras et al. 2022, algorithm 2) from pure noise to a sample.

    Args:
        denoise: (state, sigma) -> the denoised estimate of ``state``, same shape.
        draw: index -> standard normal values of the state's shape (0: the
            initial latent; i >= 1: the churn noise of step i).
        sigmas: the noise levels of :func:`noise_levels`, ending in 0.
        churn: EDM's S_churn: 0 is the deterministic sampler; > 0 adds fresh
            noise at every step (gamma = min(churn / steps, sqrt(2) - 1)).

    Returns:
        The sample, the shape of ``draw(0)``; ``2 * steps - 1`` calls of ``denoise``.
    """
    steps = len(sigmas) - 1
    gamma = min(churn / steps, math.sqrt(2.0) - 1.0) if churn > 0 else 0.0
    state = draw(0) * sigmas[0]
    for index, (sigma, following) in enumerate(itertools.pairwise(sigmas)):
        raised = sigma * (1.0 + gamma)
        if gamma > 0:
            state = state + math.sqrt(raised**2 - sigma**2) * draw(index + 1)
        slope = (state - denoise(state, raised)) / raised
        moved = state + (following - raised) * slope
        if following > 0:
            corrected = (moved - denoise(moved, following)) / following
            moved = state + (following - raised) * 0.5 * (slope + corrected)
        state = moved
    return state


class ResidualDiffusion(nn.Module):
    """Residual diffusion: a registry network's mean plus an EDM U-Net denoiser's residual (CorrDiff-style).

    Shapes: coarse inputs (B, in_channels, h, w), static fields
    (B, static_channels, H, W), outputs (B, out_channels, H, W) with
    H = h * scale, all in normalised units.

    Args:
        regressor, regressor_params: stage 1, a deterministic registered
            network and its parameters; trained first in the same run, or
            loaded from a checkpoint (``training.diffusion.stage1_checkpoint``).
        n_filters, depth, embedding: the denoiser U-Net: filters of its first
            level (doubling per level), its poolings, the noise embedding's width.
        interpolation: how the coarse inputs are brought to the fine grid as conditions.
        sigma_min, sigma_max, rho: the sampler's noise schedule (in units of
            the residual's standard deviation; EDM's 0.002, 80 for
            sigma_data = 0.5, rescaled to sigma_data = 1).

    Defaults are sized for CPU demos (a denoiser of 0.3 M parameters, 9 GFLOPs per
    evaluation of a 256 x 256 field); for GPU-sized domains use e.g.
    ``n_filters: 64, depth: 3, embedding: 128``.
    """

    stochastic = True
    iterative = True
    residual_scale: torch.Tensor  # (V,) buffer: the residual's standard deviation, normalised units
    spread_inflation: torch.Tensor  # (V,) buffer: the factor on the sampled residual (1 until calibrated)

    def __init__(
        self,
        scale: int,
        in_channels: int,
        out_channels: int,
        static_channels: int = 0,
        *,
        regressor: str = "resnet_spc",
        regressor_params: Mapping[str, Any] | None = None,
        n_filters: int = 24,
        depth: int = 2,
        embedding: int = 32,
        interpolation: str = "bicubic",
        sigma_min: float = 0.004,
        sigma_max: float = 160.0,
        rho: float = 7.0,
    ) -> None:
        super().__init__()
        name = "residual_diffusion"
        check_minimum(name, 1, n_filters=n_filters, embedding=embedding)
        check_minimum(name, 0, depth=depth)
        check_choice(name, "interpolation", interpolation, _INTERPOLATIONS)
        if not 0 < sigma_min < sigma_max:
            raise ConfigError(
                f"model {name!r} needs 0 < sigma_min < sigma_max, got sigma_min={sigma_min}, sigma_max={sigma_max}; "
                "keep the defaults (0.004, 160) unless you know why"
            )
        if regressor == name:
            raise ConfigError(f"the regressor of {name!r} must be a deterministic network such as 'resnet_spc'")
        self.regressor = create(
            regressor,
            scale=scale,
            in_channels=in_channels,
            out_channels=out_channels,
            static_channels=static_channels,
            **dict(regressor_params or {}),
        )
        if getattr(self.regressor, "stochastic", False) or getattr(self.regressor, "temporal", False):
            raise ConfigError(
                f"the regressor {regressor!r} of {name!r} must be a deterministic spatial network (stage 1 gives the "
                "mean); remove noise_channels and mc_dropout from regressor_params and choose a network without 'rec'"
            )
        self.scale = scale
        self.out_channels = out_channels
        self.interpolation = interpolation
        self.sigma_min, self.sigma_max, self.rho = float(sigma_min), float(sigma_max), float(rho)
        self.embedding = NoiseLevelEmbedding(embedding)
        conditions = out_channels + in_channels + static_channels  # mean, interpolated inputs, static fields
        self.denoiser = EmbeddedUNet(
            out_channels + conditions, out_channels, n_filters=n_filters, depth=depth, embedding=embedding
        )
        self.noise = SamplerNoise()
        self.register_buffer("residual_scale", torch.ones(out_channels))
        self.register_buffer("spread_inflation", torch.ones(out_channels))
        fine_multiple = 2**depth
        self._multiple = math.lcm(
            int(getattr(self.regressor, "size_multiple", 1)), fine_multiple // math.gcd(fine_multiple, scale)
        )

    @property
    def size_multiple(self) -> int:
        """The coarse-grid multiple of the regressor and of the denoiser's poolings on the fine grid."""
        return self._multiple

    @property
    def takes_offset(self) -> bool:
        """Whether the regressor needs the samples' positions (a localized layer)."""
        return bool(getattr(self.regressor, "takes_offset", False))

    def train(self, mode: bool = True) -> ResidualDiffusion:
        """Training mode for the denoiser; the regressor (stage 1, trained before) always stays in eval mode."""
        super().train(mode)
        self.regressor.eval()
        return self

    def condition(
        self, x: torch.Tensor, static: torch.Tensor | None, offset: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The stage-1 mean (B, V, H, W) and the denoiser's conditions (B, V + C + S, H, W)."""
        mean = self.regressor(x, static, offset).float()
        parts = [mean, upsample(x, self.scale, self.interpolation)]  # type: ignore[arg-type]
        if static is not None:
            parts.append(static)
        return mean, torch.cat(parts, dim=1)

    def denoise(self, state: torch.Tensor, sigma: torch.Tensor | float, condition: torch.Tensor) -> torch.Tensor:
        """EDM's preconditioned denoiser D(state; sigma) of the scaled residual (sigma_data = 1).

        Args:
            state: (B, V, H, W) noisy scaled residual.
            sigma: the noise level, a float or (B,) per sample.
            condition: (B, V + C + S, H, W) from :meth:`condition`.

        Returns:
            (B, V, H, W) the estimate of the clean scaled residual.
        """
        sigma = torch.as_tensor(sigma, dtype=torch.float32, device=state.device).expand(state.shape[0])
        view = sigma[:, None, None, None]
        c_skip = 1.0 / (view**2 + 1.0)
        c_out = view / torch.sqrt(view**2 + 1.0)
        c_in = 1.0 / torch.sqrt(view**2 + 1.0)
        inputs = torch.cat([(c_in * state).to(condition.dtype), condition], dim=1)
        output = self.denoiser(inputs, self.embedding(torch.log(sigma) / 4.0))
        return c_skip * state + c_out * output.float()

    def sample(
        self,
        x: torch.Tensor,
        static: torch.Tensor | None = None,
        offset: torch.Tensor | None = None,
        *,
        steps: int = DEFAULT_STEPS,
        churn: float = 0.0,
    ) -> torch.Tensor:
        """One sample per input: the stage-1 mean plus a residual drawn with ``steps`` Heun steps."""
        mean, condition = self.condition(x, static, offset)
        residual = edm_sample(
            lambda state, sigma: self.denoise(state, sigma, condition),
            lambda index: self.noise.draw(mean.shape, mean.device, index),
            noise_levels(steps, self.sigma_min, self.sigma_max, self.rho),
            churn,
        )
        return self.compose(mean, residual)

    def compose(self, mean: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        """The field (B, V, H, W) of a stage-1 mean and a scaled residual, inflated by ``spread_inflation``."""
        return mean + residual * (self.residual_scale * self.spread_inflation)[None, :, None, None]

    def step(
        self, x: torch.Tensor, static: torch.Tensor | None = None, offset: torch.Tensor | None = None
    ) -> torch.Tensor:
        """One denoiser evaluation (at sigma = 1 on a zero state), whose receptive radius tiles must respect."""
        mean, condition = self.condition(x, static, offset)
        return self.compose(mean, self.denoise(torch.zeros_like(mean), 1.0, condition))

    def forward(
        self, x: torch.Tensor, static: torch.Tensor | None = None, offset: torch.Tensor | None = None
    ) -> torch.Tensor:
        """A sample (B, out_channels, H, W) drawn with :data:`DEFAULT_STEPS` deterministic Heun steps."""
        return self.sample(x, static, offset)


register_model("residual_diffusion")(ResidualDiffusion)
