"""Layers shared by the backbones and networks, and the options that shape them.

Shapes use B for the batch, C for channels and (h, w) for any grid. Every
convolution keeps the spatial size ("same" padding), so any grid size works.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import torch
import torch.nn.functional as F
from torch import nn

from dl4ds.errors import ConfigError
from dl4ds.networks.random_fields import RandomFields
from dl4ds.utils.interpolation import upsample

# Zero padding, not replicate. Inputs are normalised, so a zero pad is the
# climatological mean of each field, and the network can tell where the domain
# ends and learn a border correction. Trained on the bundled ERA5 data (x4,
# static fields, 21 days, 30 epochs, 3 seeds) and tested on the 10 days after,
# resnet_spc with zero padding had an RMSE (normalised units) of 0.128 in the
# outer ring of 4 fine cells against 0.132 with replicate padding, and 0.127
# in the interior with both (bicubic: 0.299 and 0.240). Replicate padding, an
# extra copy of every feature map per convolution, also trained 25-35% slower on CPU.
PADDING_MODE: Final = "zeros"

NORMALIZATIONS = ("none", "batch", "layer", "group")
DROPOUT_VARIANTS = ("standard", "gaussian", "spatial")
OUTPUT_ACTIVATIONS = ("none", "relu", "softplus")


def check_choice(model: str, key: str, value: object, choices: Sequence[str]) -> None:
    """Raise ConfigError unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ConfigError(
            f"parameter {key}={value!r} of model {model!r} is not valid; choose one of: {', '.join(map(repr, choices))}"
        )


@dataclass(frozen=True)
class BlockOptions:
    """Options applied to every block of a backbone.

    Attributes:
        normalization: ``"none"``, ``"batch"`` (BatchNorm), ``"layer"`` (over
            channels at each grid point, so independent of the grid size) or
            ``"group"`` (GroupNorm with up to 8 groups).
        attention: squeeze-and-excitation channel attention (RCAN) in each block;
            it pools over the whole sample, so a network trained on patches
            gates its channels on patch statistics.
        dropout: dropout rate in [0, 1) after each block's activation.
        dropout_variant: ``"standard"`` (cells), ``"spatial"`` (whole channels)
            or ``"gaussian"`` (multiplicative N(1, rate / (1 - rate)) noise).
        mc_dropout: keep dropout on at inference (Monte-Carlo dropout), so
            repeated predictions sample the network's uncertainty.
        separable: depthwise-separable 3x3 convolutions (depthwise 3x3, then
            pointwise 1x1) instead of full ones.
    """

    normalization: str = "none"
    attention: bool = False
    dropout: float = 0.0
    dropout_variant: str = "standard"
    mc_dropout: bool = False
    separable: bool = False

    def validate(self, model: str) -> BlockOptions:
        check_choice(model, "normalization", self.normalization, NORMALIZATIONS)
        check_choice(model, "dropout_variant", self.dropout_variant, DROPOUT_VARIANTS)
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"parameter dropout={self.dropout!r} of model {model!r} must be in [0, 1), e.g. 0.1")
        if self.mc_dropout and self.dropout == 0.0:
            raise ConfigError(
                f"model {model!r} has mc_dropout=True but dropout=0; set a dropout rate such as dropout=0.1"
            )
        return self

    def conv(self, in_channels: int, out_channels: int) -> nn.Module:
        """A 3x3 convolution, depthwise-separable if ``separable``: (B, in, h, w) -> (B, out, h, w)."""
        if self.separable:
            return SeparableConv2d(in_channels, out_channels)
        return conv3x3(in_channels, out_channels)

    def norm(self, channels: int) -> nn.Module:
        """The chosen normalisation of ``channels`` feature maps (identity for ``"none"``)."""
        if self.normalization == "batch":
            return nn.BatchNorm2d(channels)
        if self.normalization == "layer":
            return ChannelLayerNorm(channels)
        if self.normalization == "group":
            return nn.GroupNorm(math.gcd(channels, 8), channels)
        return nn.Identity()

    def drop(self) -> nn.Module:
        """The chosen dropout (identity when the rate is 0)."""
        if self.dropout == 0.0:
            return nn.Identity()
        return FieldDropout(self.dropout, self.dropout_variant, always_on=self.mc_dropout)

    def attend(self, channels: int) -> nn.Module:
        """Channel attention over ``channels`` feature maps, or identity."""
        return ChannelAttention(channels) if self.attention else nn.Identity()


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """(..., h, w) padded at the bottom and right, edges replicated, to the next multiples of ``multiple``.

    What a U-Net (``multiple`` = 2**depth) does before pooling; crop its output back with ``[..., :h, :w]``.
    """
    height, width = x.shape[-2:]
    pad_h, pad_w = -height % multiple, -width % multiple
    return F.pad(x, (0, pad_w, 0, pad_h), mode="replicate") if pad_h or pad_w else x


def conv3x3(in_channels: int, out_channels: int) -> nn.Conv2d:
    """3x3 convolution with "same" padding: (B, in, h, w) -> (B, out, h, w)."""
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, padding_mode=PADDING_MODE)


class SeparableConv2d(nn.Module):
    """Depthwise 3x3 then pointwise 1x1 convolution: (B, in, h, w) -> (B, out, h, w)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(
            in_channels, in_channels, kernel_size=3, padding=1, groups=in_channels, padding_mode=PADDING_MODE
        )
        self.pointwise = nn.Conv2d(in_channels, out_channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


class ChannelLayerNorm(nn.Module):
    """Layer normalisation over the channels at each grid point: (B, C, h, w) -> (B, C, h, w).

    Unlike ``nn.GroupNorm(1, C)`` it does not mix grid points, so a network
    trained on patches normalises the full domain in the same way.
    """

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(1, keepdim=True)
        variance = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) / torch.sqrt(variance + self.eps)
        return x * self.weight[:, None, None] + self.bias[:, None, None]


class ChannelAttention(nn.Module):
    """Squeeze-and-excitation channel attention (Zhang et al. 2018, RCAN): (B, C, h, w) -> (B, C, h, w).

    Each channel is scaled by sigmoid(W2 relu(W1 mean_hw(x))), with a
    bottleneck of C / 8 channels (at least 2).
    """

    def __init__(self, channels: int, reduction: int = 8) -> None:
        super().__init__()
        hidden = max(channels // reduction, 2)
        self.gate = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(channels, hidden, kernel_size=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, kernel_size=1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)


class FieldDropout(nn.Module):
    """Dropout of feature maps: standard, spatial (whole channels) or Gaussian; (B, C, h, w) -> (B, C, h, w).

    Active in training mode, and also in evaluation mode when ``always_on``
    (Monte-Carlo dropout). Masks come from torch's global generator, or from
    ``random_fields`` (a :class:`~dl4ds.networks.random_fields.RandomFields`)
    while inference sets one.
    """

    def __init__(self, rate: float, variant: str, *, always_on: bool = False) -> None:
        super().__init__()
        self.rate = rate
        self.variant = variant
        self.always_on = always_on
        self.random_fields: RandomFields | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training or self.always_on):
            return x
        if self.variant == "gaussian":
            noise = (
                torch.randn_like(x)
                if self.random_fields is None
                else self.random_fields.normal(self, x.shape, x.device)
            )
            return x * (1.0 + math.sqrt(self.rate / (1.0 - self.rate)) * noise.to(x.dtype))
        if self.random_fields is None:
            if self.variant == "spatial":
                return F.dropout2d(x, self.rate, training=True)
            return F.dropout(x, self.rate, training=True)
        shape = (*x.shape[:2], 1, 1) if self.variant == "spatial" else x.shape
        keep = self.random_fields.uniform(self, torch.Size(shape), x.device) >= self.rate
        return x * keep.to(x.dtype) / (1.0 - self.rate)

    def extra_repr(self) -> str:
        return f"rate={self.rate}, variant={self.variant!r}, always_on={self.always_on}"


class NoiseInjection(nn.Module):
    """Concatenation of ``channels`` maps of fresh standard normal noise: (B, C, h, w) -> (B, C + channels, h, w).

    The noise is drawn with :func:`torch.randn` on the input's device and
    dtype, from torch's global generator, at every call and in training and
    evaluation mode alike: a network holding it is a stochastic generator whose
    samples differ from call to call, and ``torch.manual_seed(s)`` before a
    forward pass makes a sample repeatable. While inference sets
    ``random_fields`` (a :class:`~dl4ds.networks.random_fields.RandomFields`),
    the noise is tied to the input and the grid position instead. With
    ``channels = 0`` it returns its input unchanged and draws nothing.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.random_fields: RandomFields | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels == 0:
            return x
        batch, _, height, width = x.shape
        shape = torch.Size((batch, self.channels, height, width))
        if self.random_fields is None:
            noise = torch.randn(shape, device=x.device, dtype=x.dtype)
        else:
            noise = self.random_fields.normal(self, shape, x.device).to(x.dtype)
        return torch.cat([x, noise], dim=1)

    def extra_repr(self) -> str:
        return f"channels={self.channels}"


class StaticBranch(nn.Module):
    """Features of the static high-resolution fields: conv-ReLU-conv-ReLU.

    (B, static_channels, H, W) -> (B, filters, H, W).
    """

    def __init__(self, static_channels: int, filters: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            conv3x3(static_channels, filters),
            nn.ReLU(inplace=True),
            conv3x3(filters, filters),
            nn.ReLU(inplace=True),
        )

    def forward(self, static: torch.Tensor) -> torch.Tensor:
        return self.layers(static)


class OutputHead(nn.Module):
    """Fusion of the fine-resolution features into the outputs: conv-ReLU-conv.

    (B, in_filters, H, W) -> (B, out_channels, H, W).
    """

    def __init__(self, in_filters: int, filters: int, out_channels: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(conv3x3(in_filters, filters), nn.ReLU(inplace=True), conv3x3(filters, out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class GlobalSkip(nn.Module):
    """Interpolation of the first ``out_channels`` inputs, to which networks add their output.

    By convention the first ``out_channels`` coarse inputs are the coarse
    versions of the target variables, so the network only learns the
    residual from the interpolation. (B, in_channels, h, w) -> (B, out_channels, H, W).
    """

    def __init__(self, model: str, scale: int, in_channels: int, out_channels: int, mode: str = "bicubic") -> None:
        super().__init__()
        if in_channels < out_channels:
            raise ConfigError(
                f"model {model!r} with global_skip=True needs the coarse version of each of the "
                f"{out_channels} target variables among its inputs, but has only in_channels={in_channels}; "
                "put the coarse targets first among the inputs or set global_skip=False"
            )
        self.scale = scale
        self.out_channels = out_channels
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upsample(x[:, : self.out_channels], self.scale, self.mode)  # type: ignore[arg-type]

    def extra_repr(self) -> str:
        return f"scale={self.scale}, out_channels={self.out_channels}, mode={self.mode!r}"


class OutputActivation(nn.Module):
    """Bounds outputs from below: ``floor + act(out - floor)`` per channel; (B, V, H, W) -> (B, V, H, W).

    The network works on normalised fields, so a physical bound such as
    "precipitation >= 0" sits at ``floor = (0 - mean) / std``: the ``floor``
    buffer (one value per output channel, default 0) is set from the
    normalisation statistics by :meth:`dl4ds.model.DownscalingModel.build`.
    ``"relu"`` clips at the floor, ``"softplus"`` approaches it smoothly;
    channels whose activation is ``"none"`` pass unchanged.
    """

    floor: torch.Tensor  # (V,) buffer, normalised units

    def __init__(self, activations: Sequence[str]) -> None:
        super().__init__()
        self.activations = tuple(activations)
        self.register_buffer("floor", torch.zeros(len(self.activations)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels = []
        for index, activation in enumerate(self.activations):
            channel = x[:, index : index + 1]
            floor = self.floor[index]
            if activation == "relu":
                channel = floor + F.relu(channel - floor)
            elif activation == "softplus":
                channel = floor + F.softplus(channel - floor)
            channels.append(channel)
        return torch.cat(channels, dim=1)

    def extra_repr(self) -> str:
        return f"activations={self.activations}"
