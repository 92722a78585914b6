"""Backbones: feature extractors that keep the grid, (B, in_channels, h, w) -> (B, out_channels, h, w).

Every backbone takes ``(in_channels, options, *, <parameters with defaults>)``
and sets ``out_channels``. Post-upsampling networks run it on the coarse grid,
pre-upsampling (``*_pin``) networks on the fine grid. The blocks follow
:class:`dl4ds.networks.blocks.BlockOptions` (normalisation, attention, dropout,
separable convolutions).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dl4ds.networks.blocks import BlockOptions, ChannelLayerNorm, conv3x3, pad_to_multiple


class Backbone(nn.Module):
    """Base of the backbones: feature extractors that keep the grid, (B, in, h, w) -> (B, out_channels, h, w)."""

    out_channels: int  # feature maps of the output, set by every backbone


class ConvUnit(nn.Sequential):
    """conv3x3 -> norm -> ReLU -> dropout -> attention: (B, in, h, w) -> (B, out, h, w)."""

    def __init__(self, in_channels: int, out_channels: int, options: BlockOptions) -> None:
        super().__init__(
            options.conv(in_channels, out_channels),
            options.norm(out_channels),
            nn.ReLU(inplace=True),
            options.drop(),
            options.attend(out_channels),
        )


class ConvNet(Backbone):
    """Plain convolutional backbone: a head convolution and ``n_blocks`` conv units."""

    def __init__(self, in_channels: int, options: BlockOptions, *, n_filters: int = 48, n_blocks: int = 4) -> None:
        super().__init__()
        self.out_channels = n_filters
        self.layers = nn.Sequential(
            ConvUnit(in_channels, n_filters, options),
            *(ConvUnit(n_filters, n_filters, options) for _ in range(n_blocks)),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class ResidualBlock(nn.Module):
    """EDSR residual block: x + attend(norm(conv(drop(relu(norm(conv(x))))))), (B, C, h, w) -> (B, C, h, w).

    Without options it is the EDSR block without batch norm (Lim et al. 2017).
    """

    def __init__(self, filters: int, options: BlockOptions) -> None:
        super().__init__()
        self.body = nn.Sequential(
            options.conv(filters, filters),
            options.norm(filters),
            nn.ReLU(inplace=True),
            options.drop(),
            options.conv(filters, filters),
            options.norm(filters),
            options.attend(filters),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResNet(Backbone):
    """EDSR backbone: head conv, ``n_blocks`` residual blocks, a conv and a long skip from the head."""

    def __init__(self, in_channels: int, options: BlockOptions, *, n_filters: int = 48, n_blocks: int = 3) -> None:
        super().__init__()
        self.out_channels = n_filters
        self.head = conv3x3(in_channels, n_filters)
        self.body = nn.Sequential(
            *(ResidualBlock(n_filters, options) for _ in range(n_blocks)), conv3x3(n_filters, n_filters)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        head = self.head(x)
        return head + self.body(head)


class DenseBlock(nn.Module):
    """Densely connected layers (Huang et al. 2017) and a 1x1 transition back to ``filters``; (B, C, h, w) -> (B, C, h, w).

    Layer i sees the concatenation of the block input and the ``growth_rate``
    feature maps of every earlier layer: norm -> ReLU -> conv3x3 -> dropout.
    """

    def __init__(self, filters: int, growth_rate: int, n_layers: int, options: BlockOptions) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            nn.Sequential(
                options.norm(filters + i * growth_rate),
                nn.ReLU(),
                options.conv(filters + i * growth_rate, growth_rate),
                options.drop(),
            )
            for i in range(n_layers)
        )
        self.transition = nn.Conv2d(filters + n_layers * growth_rate, filters, kernel_size=1)
        self.attention = options.attend(filters)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.layers:
            features.append(layer(torch.cat(features, dim=1)))
        return x + self.attention(self.transition(torch.cat(features, dim=1)))


class DenseNet(Backbone):
    """Dense backbone: head conv, ``n_blocks`` dense blocks, a long skip from the head."""

    def __init__(
        self,
        in_channels: int,
        options: BlockOptions,
        *,
        n_filters: int = 48,
        n_blocks: int = 2,
        growth_rate: int = 16,
        layers_per_block: int = 3,
    ) -> None:
        super().__init__()
        self.out_channels = n_filters
        self.head = conv3x3(in_channels, n_filters)
        self.body = nn.Sequential(
            *(DenseBlock(n_filters, growth_rate, layers_per_block, options) for _ in range(n_blocks))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        head = self.head(x)
        return head + self.body(head)


class ConvNeXtBlock(nn.Module):
    """ConvNeXt block (Liu et al. 2022): x + gamma * pw(drop(gelu(pw(norm(dw(x)))))), (B, C, h, w) -> (B, C, h, w).

    ``dw`` is a depthwise ``kernel_size`` convolution, the pointwise layers
    expand to 4C and back, and ``gamma`` (layer scale) starts at 0.1, a value
    for the shallow networks of downscaling rather than the paper's 1e-6.
    The normalisation is channel layer norm unless ``options`` names another.
    """

    def __init__(self, filters: int, kernel_size: int, options: BlockOptions) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(filters, filters, kernel_size, padding=kernel_size // 2, groups=filters)
        self.norm = ChannelLayerNorm(filters) if options.normalization == "none" else options.norm(filters)
        self.expand = nn.Conv2d(filters, 4 * filters, kernel_size=1)
        self.activation = nn.GELU()
        self.drop = options.drop()
        self.project = nn.Conv2d(4 * filters, filters, kernel_size=1)
        self.gamma = nn.Parameter(torch.full((filters, 1, 1), 0.1))
        self.attention = options.attend(filters)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.drop(self.activation(self.expand(self.norm(self.depthwise(x))))))
        return x + self.attention(self.gamma * y)


class ConvNeXt(Backbone):
    """ConvNeXt backbone: head conv and ``n_blocks`` ConvNeXt blocks (depthwise by design; ``separable`` does not change them)."""

    def __init__(
        self,
        in_channels: int,
        options: BlockOptions,
        *,
        n_filters: int = 48,
        n_blocks: int = 3,
        kernel_size: int = 7,
    ) -> None:
        super().__init__()
        self.out_channels = n_filters
        self.head = conv3x3(in_channels, n_filters)
        self.body = nn.Sequential(*(ConvNeXtBlock(n_filters, kernel_size, options) for _ in range(n_blocks)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.head(x))


class UNet(Backbone):
    """U-Net (Ronneberger et al. 2015) with ``depth`` poolings, doubling channels at each level.

    Grids not divisible by ``2**depth`` are padded (replicating edges) and the
    output is cropped back, so any grid size works.
    """

    def __init__(self, in_channels: int, options: BlockOptions, *, n_filters: int = 32, depth: int = 2) -> None:
        super().__init__()
        self.out_channels = n_filters
        self.depth = depth
        self.size_multiple = 2**depth  # grid sizes it runs without padding; tiles respect it to keep tiled = untiled
        widths = [n_filters * 2**level for level in range(depth + 1)]
        self.encoders = nn.ModuleList()
        previous = in_channels
        for width in widths:
            self.encoders.append(nn.Sequential(ConvUnit(previous, width, options), ConvUnit(width, width, options)))
            previous = width
        self.reducers = nn.ModuleList(conv3x3(widths[level + 1], widths[level]) for level in range(depth))
        self.decoders = nn.ModuleList(
            nn.Sequential(
                ConvUnit(2 * widths[level], widths[level], options), ConvUnit(widths[level], widths[level], options)
            )
            for level in range(depth)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        x = pad_to_multiple(x, 2**self.depth)
        skips = []
        for level, encoder in enumerate(self.encoders):
            x = encoder(x)
            if level < self.depth:
                skips.append(x)
                x = F.max_pool2d(x, 2)
        for level in reversed(range(self.depth)):
            x = self.reducers[level](F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False))
            x = self.decoders[level](torch.cat([x, skips[level]], dim=1))
        return x[..., :height, :width]


BACKBONES: dict[str, type[Backbone]] = {
    "convnet": ConvNet,
    "resnet": ResNet,
    "densenet": DenseNet,
    "convnext": ConvNeXt,
    "unet": UNet,
}
