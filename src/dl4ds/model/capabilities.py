"""What a trained model can do, as inference, tiling and export need to know it.

:class:`Capabilities` gathers what the network declares (see
:mod:`dl4ds.networks.registry`) and what the model adds (static fields);
:func:`measure_receptive_radius` measures how far an input reaches, which no
network can declare exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from dl4ds.utils.seeding import seeded

if TYPE_CHECKING:
    from dl4ds.model.downscaling_model import DownscalingModel

LARGEST_PROBE = 256
"""Coarse cells; a receptive field wider than this counts as unbounded."""


@dataclass(frozen=True)
class Capabilities:
    """What a trained model can do.

    Attributes:
        temporal: it takes windows of ``metadata.time_window`` consecutive
            frames (B, T, C, h, w) and predicts every frame.
        stochastic: repeated predictions differ (noise injection or
            Monte-Carlo dropout), so it can draw ensembles.
        size_multiple: the coarse-grid multiple that tile sizes and origins
            must respect (a U-Net's poolings); 1 for most networks.
        takes_offset: ``forward`` needs each sample's position in the training
            grid (localized layers).
        takes_static: it takes static fields on the fine grid.
        iterative: it samples by repeated denoising (a diffusion model):
            inference drives its sampler and blends the tiles at every step.
        domain_bound: it applies only to its training grid or a window of it
            (static fields or localized layers), not to any grid of its spacing.
    """

    temporal: bool
    stochastic: bool
    size_multiple: int
    takes_offset: bool
    takes_static: bool
    iterative: bool = False

    @property
    def domain_bound(self) -> bool:
        return self.takes_static or self.takes_offset

    @classmethod
    def of(cls, network: nn.Module, static_channels: int) -> Capabilities:
        """The capabilities ``network`` declares, for a model with ``static_channels`` static fields."""
        return cls(
            temporal=bool(getattr(network, "temporal", False)),
            stochastic=bool(getattr(network, "stochastic", False)),
            size_multiple=int(getattr(network, "size_multiple", 1)),
            takes_offset=bool(getattr(network, "takes_offset", False)),
            takes_static=static_channels > 0,
            iterative=bool(getattr(network, "iterative", False)),
        )


def measure_receptive_radius(model: DownscalingModel, *, largest: int | None = None) -> int | None:
    """How many coarse cells away an input can still change a fine output cell; None if unbounded.

    Found from the support of the gradient of one output cell with respect
    to the inputs (coarse inputs and static fields), joined over two random
    probes (a single probe can miss paths through inactive ReLUs), on probes
    that grow until the support stays inside them. For an iterative network
    it is the radius of one denoiser evaluation (its ``step``), which
    tiles blended at every step must respect. Networks with operations
    over the whole grid (channel attention, group normalisation) have no
    bounded radius: tiling them changes the result. ``largest`` caps the
    probes below :data:`LARGEST_PROBE` coarse cells.
    """
    meta = model.metadata
    largest = LARGEST_PROBE if largest is None else max(3, min(largest, LARGEST_PROBE))
    if model.capabilities.takes_offset:
        largest = min(largest, *meta.coarse_grid.shape)  # the localized layer only covers the training grid
    size = min(33, largest)
    while True:
        radii = [_probe_radius(model, size, seed) for seed in (0, 1)]
        bounded = [radius for radius in radii if radius is not None]
        if len(bounded) == len(radii):
            return max(bounded)
        if size >= largest:
            return None
        size = min(2 * size + 1, largest)


def _probe_radius(model: DownscalingModel, size: int, seed: int) -> int | None:
    """The radius seen on a random ``size`` x ``size`` probe, or None when the support reaches its edge."""
    meta = model.metadata
    scale = meta.scale
    generator = torch.Generator().manual_seed(seed)
    frames = (meta.time_window,) if model.capabilities.temporal else ()
    parameter = next(model.parameters())
    device, dtype = parameter.device, parameter.dtype
    x = torch.randn(1, *frames, len(meta.input_variables), size, size, generator=generator).to(device, dtype)
    x.requires_grad_(True)
    static = None
    if model.capabilities.takes_static:
        static = torch.randn(1, len(meta.static_variables), size * scale, size * scale, generator=generator).to(
            device, dtype
        )
        static.requires_grad_(True)
    offset = torch.zeros(1, 2, dtype=torch.long, device=device)
    centre = size // 2
    with torch.enable_grad(), seeded(seed, device):  # noise layers draw, but leave the global generator alone
        step = getattr(model.network, "step", None) if model.capabilities.iterative else None
        output = model(x, static, offset) if step is None else step(x, static, offset)
        output[..., centre * scale + scale // 2, centre * scale + scale // 2].sum().backward()
    assert x.grad is not None, "x requires grad, so backward() sets its gradient"
    extents = [_support_extent(x.grad.abs().sum(dim=tuple(range(x.ndim - 2))), centre, 1)]
    if static is not None:
        assert static.grad is not None, "static requires grad, so backward() sets its gradient"
        extents.append(_support_extent(static.grad.abs().sum(dim=(0, 1)), centre * scale + scale // 2, scale))
    bounded = [extent for extent in extents if extent is not None]
    if len(bounded) < len(extents):
        return None
    return max(bounded)


def _support_extent(gradient: torch.Tensor, centre: int, cells_per_coarse: int) -> int | None:
    """Largest distance, in coarse cells, from ``centre`` to a cell with a nonzero gradient; None at the probe edge."""
    rows = torch.nonzero(gradient.sum(dim=1)).flatten()
    cols = torch.nonzero(gradient.sum(dim=0)).flatten()
    size = gradient.shape[0]
    if len(rows) == 0:
        return 0
    if rows[0] == 0 or cols[0] == 0 or rows[-1] == size - 1 or cols[-1] == size - 1:
        return None
    distance = max(centre - int(rows[0]), int(rows[-1]) - centre, centre - int(cols[0]), int(cols[-1]) - centre)
    return math.ceil(distance / cells_per_coarse)
