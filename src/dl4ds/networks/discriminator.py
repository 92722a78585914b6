"""A conditional PatchGAN discriminator for conditional adversarial (CGAN) training of the downscaling networks.

It judges high-resolution fields *given* their coarse inputs (and the static
fields): the coarse inputs are interpolated to the fine grid and concatenated
with the fields, so the discriminator can tell fields that are realistic but
inconsistent with the coarse state from good downscalings. It scores each
patch of the grid rather than the whole sample (Isola et al. 2017,
"pix2pix"), which concentrates it on the fine-scale texture and lets it run
on any grid size.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as spectral_normalization

from dl4ds.errors import ConfigError
from dl4ds.networks.registry import check_minimum
from dl4ds.utils.interpolation import upsample

_NAME = "ConditionalDiscriminator"


class ConditionalDiscriminator(nn.Module):
    """Patch logits of high-resolution fields conditioned on their coarse inputs and static fields.

    It looks at the fine-scale detail of the fields: the fields minus the
    bilinear interpolation of their coarse counterparts (by dl4ds'
    convention the first V coarse inputs), divided by ``detail_scale``, the
    spread of the true detail. The detail is typically 10-50 times smaller
    than the fields, and a spectrally normalised discriminator fed the raw
    fields is nearly blind to it.

    Layout, on (B, V + C + S, H, W) = [detail, bilinear interpolation of the
    coarse inputs, static fields]:

    - a 3x3 convolution to ``n_filters`` maps, LeakyReLU(0.2);
    - ``depth`` downsampling blocks: a 3x3 convolution with stride 2 and
      padding 1, LeakyReLU(0.2); block i has ``n_filters * min(2**i, 8)``
      maps (doubling, up to 8 * n_filters); no batch normalisation;
    - a 3x3 convolution to one map of logits.

    Every block halves the grid, rounding up, so the logits are on an
    (H', W') = (ceil(H / 2**depth), ceil(W / 2**depth)) grid and any patch
    size works. Each logit sees about (2**(depth + 2) + 1)**2 fine cells
    (33 x 33 with the default depth 3). The logits are unbounded: the
    adversarial loss (e.g. BCE with logits, or hinge) is left to the trainer.

    Args:
        target_channels: V, the predicted variables.
        input_channels: C, the coarse input channels of the generator.
        static_channels: S, the static high-resolution channels (0 for none).
        scale: refinement factor from the coarse to the fine grid.
        n_filters: maps of the first convolution.
        depth: downsampling blocks.
        spectral_norm: wrap every convolution in
            :func:`torch.nn.utils.parametrizations.spectral_norm`, which keeps
            the discriminator 1-Lipschitz per layer and stabilises training;
            its power-iteration vectors are buffers of the state dict, so
            training resumes exactly.

    Buffers:
        detail_scale: (V,) the standard deviation of the true fine-scale
            detail per variable (normalised units), set by the trainer from
            the training data; ones by default.

    Raises:
        ConfigError: a parameter below its minimum.
    """

    detail_scale: torch.Tensor  # (V,) buffer, normalised units

    def __init__(
        self,
        target_channels: int,
        input_channels: int,
        static_channels: int,
        scale: int,
        *,
        n_filters: int = 32,
        depth: int = 3,
        spectral_norm: bool = True,
    ) -> None:
        super().__init__()
        check_minimum(_NAME, 1, target_channels=target_channels, input_channels=input_channels, scale=scale)
        if input_channels < target_channels:
            raise ConfigError(
                f"the discriminator compares each of the {target_channels} target variables with its coarse "
                f"counterpart among the first inputs, but there are only input_channels={input_channels}"
            )
        check_minimum(_NAME, 1, n_filters=n_filters)
        check_minimum(_NAME, 0, static_channels=static_channels, depth=depth)
        self.target_channels = target_channels
        self.input_channels = input_channels
        self.static_channels = static_channels
        self.scale = scale

        def conv(in_channels: int, out_channels: int, stride: int = 1) -> nn.Module:
            layer = nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1)
            return spectral_normalization(layer) if spectral_norm else layer

        filters = n_filters
        layers = [conv(target_channels + input_channels + static_channels, filters), nn.LeakyReLU(0.2)]
        for block in range(1, depth + 1):
            out_filters = n_filters * min(2**block, 8)
            layers += [conv(filters, out_filters, stride=2), nn.LeakyReLU(0.2)]
            filters = out_filters
        layers.append(conv(filters, 1))
        self.layers = nn.Sequential(*layers)
        self.register_buffer("detail_scale", torch.ones(target_channels))

    def forward(self, fields: torch.Tensor, coarse: torch.Tensor, static: torch.Tensor | None = None) -> torch.Tensor:
        """Score every patch of ``fields`` given ``coarse`` (and ``static``).

        Args:
            fields: (B, V, H, W) real or generated normalised high-resolution
                fields, or (B, T, V, H, W) windows of a spatio-temporal network
                (every frame is scored on its own).
            coarse: (B, C, h, w) normalised coarse inputs with H = h * scale and
                W = w * scale, or (B, T, C, h, w) for windows.
            static: (B, S, H, W) normalised static fields, the same for every
                frame of a window; None when ``static_channels == 0``.

        Returns:
            (B, 1, H', W') patch logits, or (B, T, 1, H', W') for windows, with
            H' = ceil(H / 2**depth) and W' = ceil(W / 2**depth).

        Raises:
            ValueError: inputs of the wrong shape, or ``static`` missing.
        """
        self._check_inputs(fields, coarse, static)
        window = tuple(fields.shape[:2]) if fields.ndim == 5 else None  # (B, T): frames are scored as a batch
        if window is not None:
            fields, coarse = fields.flatten(0, 1), coarse.flatten(0, 1)
            static = None if static is None else static.repeat_interleave(window[1], dim=0)
        interpolated = interpolate_coarse(coarse, self.scale)
        conditioned = [fine_detail(fields, interpolated) / self.detail_scale[:, None, None], interpolated]
        if static is not None:
            conditioned.append(static)
        logits = self.layers(torch.cat(conditioned, dim=1))
        return logits if window is None else logits.unflatten(0, window)

    def _check_inputs(self, fields: torch.Tensor, coarse: torch.Tensor, static: torch.Tensor | None) -> None:
        """Raise ``ValueError`` naming the expected shapes when the inputs do not fit together or the discriminator."""
        if fields.ndim not in (4, 5) or fields.shape[-3] != self.target_channels:
            raise ValueError(
                f"expected fields of shape (batch, {self.target_channels}, H, W), or (batch, time, "
                f"{self.target_channels}, H, W) for windows, got {tuple(fields.shape)}"
            )
        leading = tuple(fields.shape[:-3])  # (batch,) or (batch, time)
        height, width = fields.shape[-2:]
        if height % self.scale or width % self.scale:
            raise ValueError(
                f"expected fields on a fine grid of h * {self.scale} x w * {self.scale} cells (the coarse grid times "
                f"the scale), got a {height} x {width} grid in fields of shape {tuple(fields.shape)}"
            )
        expected = (*leading, self.input_channels, height // self.scale, width // self.scale)
        if tuple(coarse.shape) != expected:
            raise ValueError(
                f"expected coarse inputs of shape {expected} (batch, {'time, ' if len(leading) == 2 else ''}"
                f"input_channels, H/scale, W/scale) for fields of shape {tuple(fields.shape)}, "
                f"got {tuple(coarse.shape)}"
            )
        if self.static_channels == 0:
            if static is not None:
                raise ValueError(
                    f"this discriminator was built without static fields (static_channels=0) but got static of shape "
                    f"{tuple(static.shape)}; pass static=None"
                )
            return
        expected = (leading[0], self.static_channels, height, width)
        if static is None or tuple(static.shape) != expected:
            got = None if static is None else tuple(static.shape)
            raise ValueError(
                f"expected static fields of shape {expected} (batch, static_channels, H, W) for fields of shape "
                f"{tuple(fields.shape)}, got {got}"
            )


def interpolate_coarse(coarse: torch.Tensor, scale: int) -> torch.Tensor:
    """The (N, C, h, w) coarse inputs interpolated bilinearly to the (N, C, h * scale, w * scale) fine grid."""
    return upsample(coarse, scale, "bilinear")


def fine_detail(fields: torch.Tensor, interpolated: torch.Tensor) -> torch.Tensor:
    """The fine-scale detail of (N, V, H, W) ``fields``: the fields minus the interpolation of their coarse versions.

    ``interpolated`` is :func:`interpolate_coarse` of the (N, C, h, w) coarse
    inputs, whose first V channels are, by dl4ds' convention, the coarse
    versions of the V targets.
    """
    return fields - interpolated[:, : fields.shape[1]]
