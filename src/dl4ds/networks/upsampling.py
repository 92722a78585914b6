"""Learned upsampling from coarse-grid features to the fine grid, for post-upsampling networks.

Each maps (B, in_filters, h, w) to (B, out_filters, h * scale, w * scale) for
any integer scale, in one stage. Pre-upsampling (``pin``) networks interpolate
their input instead and need none of these.
"""

from __future__ import annotations

import torch
from torch import nn

from dl4ds.networks.blocks import conv3x3
from dl4ds.utils.interpolation import upsample

UPSAMPLINGS = ("pin", "spc", "rc", "dc")
"""pin: pre-upsampling by interpolation; spc: sub-pixel convolution; rc: resize convolution; dc: transposed convolution."""


class SubPixelUpsampler(nn.Module):
    """Sub-pixel convolution (Shi et al. 2016): conv3x3 to ``out_filters * scale**2`` channels, PixelShuffle, ReLU.

    The convolution runs on the coarse grid.
    """

    def __init__(self, in_filters: int, out_filters: int, scale: int) -> None:
        super().__init__()
        self.conv = conv3x3(in_filters, out_filters * scale**2)
        self.shuffle = nn.PixelShuffle(scale)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.shuffle(self.conv(x)))


class ResizeConvUpsampler(nn.Module):
    """Resize convolution (Odena et al. 2016): interpolate the features, then conv3x3 and ReLU on the fine grid.

    Free of the checkerboard artefacts of transposed convolutions; ``mode`` is
    the interpolation (nearest, bilinear or bicubic).
    """

    def __init__(self, in_filters: int, out_filters: int, scale: int, mode: str = "nearest") -> None:
        super().__init__()
        self.scale = scale
        self.mode = mode
        self.conv = conv3x3(in_filters, out_filters)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv(upsample(x, self.scale, self.mode)))  # type: ignore[arg-type]

    def extra_repr(self) -> str:
        return f"scale={self.scale}, mode={self.mode!r}"


class TransposedConvUpsampler(nn.Module):
    """Transposed ("deconvolution") upsampling: ConvTranspose2d with kernel and stride ``scale``, then ReLU.

    Kernel = stride makes each coarse cell paint its own ``scale`` x ``scale``
    block, so the output size is exact at every scale and the kernels do not
    overlap unevenly (the cause of checkerboard artefacts); the convolutions
    after it blend neighbouring blocks.
    """

    def __init__(self, in_filters: int, out_filters: int, scale: int) -> None:
        super().__init__()
        self.deconv = nn.ConvTranspose2d(in_filters, out_filters, kernel_size=scale, stride=scale)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.deconv(x))
