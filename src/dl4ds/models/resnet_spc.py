"""``resnet_spc``: EDSR-style residual backbone with one-stage sub-pixel upsampling."""

from __future__ import annotations

import torch
from torch import nn

from dl4ds.models.blocks import (
    GlobalSkip,
    OutputHead,
    ResidualBackbone,
    StaticBranch,
    SubPixelUpsampler,
    check_inputs,
)
from dl4ds.models.registry import check_minimum, register_model


@register_model("resnet_spc")
class ResNetSPC(nn.Module):
    """Residual network on the coarse grid, sub-pixel convolution upsampling, static fields fused at fine resolution.

    Layout (Lim et al. 2017, EDSR, without batch norm; Shi et al. 2016, sub-pixel convolution):

    1. backbone on the coarse grid: conv3x3 ``in_channels -> n_filters``,
       ``n_blocks`` residual blocks, a conv3x3 and a long skip from the head;
    2. upsampling in one stage: conv3x3 ``n_filters -> upsampled_filters * scale**2``,
       PixelShuffle(scale), ReLU, so all the heavy work stays on the coarse grid;
    3. if ``static_channels > 0``: conv-ReLU-conv-ReLU of the static fields to
       ``static_filters`` channels at fine resolution, concatenated with the
       upsampled features;
    4. fusion: conv3x3 -> ReLU -> conv3x3 to ``out_channels``;
    5. if ``global_skip``: the bicubic upsampling of the first ``out_channels``
       inputs (the coarse targets) is added, so the network learns the residual.

    The defaults have about 209k parameters for 1 input, 1 output, 2 static
    channels (any scale changes only the upsampling convolution).

    Args:
        scale: integer refinement factor, >= 2.
        in_channels: coarse input channels (coarse targets first, then predictors).
        out_channels: fine-resolution output variables.
        static_channels: static high-resolution channels, 0 for none.
        n_filters: channels of the coarse-grid backbone.
        n_blocks: residual blocks in the backbone.
        static_filters: channels of the static branch.
        upsampled_filters: channels of the upsampled features on the fine grid.
        global_skip: add the bicubic interpolation of the coarse targets to the output.
    """

    def __init__(
        self,
        scale: int,
        in_channels: int,
        out_channels: int,
        static_channels: int = 0,
        *,
        n_filters: int = 48,
        n_blocks: int = 3,
        static_filters: int = 16,
        upsampled_filters: int = 8,
        global_skip: bool = True,
    ) -> None:
        super().__init__()
        check_minimum("resnet_spc", 1, n_filters=n_filters, static_filters=static_filters, upsampled_filters=upsampled_filters)
        check_minimum("resnet_spc", 0, n_blocks=n_blocks)
        self.scale = scale
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.static_channels = static_channels

        self.backbone = ResidualBackbone(in_channels, n_filters, n_blocks)
        self.upsampler = SubPixelUpsampler(n_filters, upsampled_filters, scale)
        self.static_branch = StaticBranch(static_channels, static_filters) if static_channels > 0 else None
        fused = upsampled_filters + (static_filters if static_channels > 0 else 0)
        self.output_head = OutputHead(fused, fused, out_channels)
        self.global_skip = GlobalSkip("resnet_spc", scale, in_channels, out_channels) if global_skip else None

    def forward(self, x: torch.Tensor, static: torch.Tensor | None = None) -> torch.Tensor:
        """Downscale normalised fields.

        Args:
            x: (B, in_channels, h, w) coarse inputs.
            static: (B, static_channels, h * scale, w * scale) static fields, or
                ``None`` when the network has no static channels.

        Returns:
            (B, out_channels, h * scale, w * scale) fine-resolution fields.

        Raises:
            ValueError: ``x`` or ``static`` of the wrong shape, or ``static``
                missing when the network needs it.
        """
        check_inputs(x, static, scale=self.scale, in_channels=self.in_channels, static_channels=self.static_channels)
        features = self.upsampler(self.backbone(x))
        if self.static_branch is not None:
            features = torch.cat([features, self.static_branch(static)], dim=1)
        out = self.output_head(features)
        if self.global_skip is not None:
            out = out + self.global_skip(x)
        return out
