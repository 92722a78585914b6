"""Cutting a domain into overlapping tiles and blending the tiles' predictions without seams.

Sizes are counted in cells of the coarse input grid; a tile of ``n`` coarse
cells yields ``n * scale`` fine cells. Each tile's prediction is weighted by a
mask that is 0 in a *margin* along every edge it shares with a neighbour,
rises as sin^2 over a *ramp*, and is 1 elsewhere (and up to the domain's own
edges), so the weights of overlapping tiles sum to one. With a margin of at
least the network's receptive radius, every prediction that gets weight was
computed from exactly the inputs the untiled network would have seen, and the
tiled result equals the untiled one to rounding.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import torch

from dl4ds.errors import ConfigError
from dl4ds.model import DownscalingModel
from dl4ds.networks.backbones import UNet
from dl4ds.networks.localized import LocalizedLinear
from dl4ds.utils.seeding import seeded

RAMP = 2  # coarse cells over which overlapping tiles cross-fade
_LARGEST_PROBE = 256  # coarse cells; a receptive field wider than this counts as unbounded


def size_multiple(model: DownscalingModel) -> int:
    """The coarse-grid multiple that tile sizes and origins must respect (U-Net poolings), 1 for other networks."""
    multiple = 1
    for module in model.network.modules():
        if isinstance(module, UNet):
            need = 2**module.depth
            if _upsampling(model) == "pin":
                need //= math.gcd(need, model.metadata.scale)  # the U-Net runs on the fine grid
            multiple = math.lcm(multiple, need)
    return multiple


def _upsampling(model: DownscalingModel) -> str | None:
    """The upsampling of the network, or of the spatial network inside a spatio-temporal one."""
    network = getattr(model.network, "spatial", model.network)
    return getattr(network, "upsampling", None)


def receptive_radius(model: DownscalingModel) -> int | None:
    """How many coarse cells away an input can still change a fine output cell; None if unbounded.

    Found from the support of the gradient of one output cell with respect
    to the inputs (coarse inputs and static fields), joined over two random
    probes (a single probe can miss paths through inactive ReLUs), on probes
    that grow until the support stays inside them. Networks with operations
    over the whole grid (channel attention, group normalisation) have no
    bounded radius: tiling them changes the result.
    """
    meta = model.metadata
    largest = _LARGEST_PROBE
    if any(isinstance(m, LocalizedLinear) for m in model.network.modules()):
        largest = min(largest, *meta.coarse_grid.shape)  # the localized layer only covers the training grid
    size = min(33, largest)
    while True:
        radii = [_probe_radius(model, size, seed) for seed in (0, 1)]
        if None not in radii:
            return max(radii)  # type: ignore[type-var]
        if size >= largest:
            return None
        size = min(2 * size + 1, largest)


def _probe_radius(model: DownscalingModel, size: int, seed: int) -> int | None:
    """The radius seen on a random ``size`` x ``size`` probe, or None when the support reaches its edge."""
    meta = model.metadata
    scale = meta.scale
    generator = torch.Generator().manual_seed(seed)
    frames = (meta.time_window,) if model.temporal else ()
    parameter = next(model.parameters())
    device, dtype = parameter.device, parameter.dtype
    x = torch.randn(1, *frames, len(meta.input_variables), size, size, generator=generator).to(device, dtype)
    x.requires_grad_(True)
    static = None
    if model.has_static:
        static = torch.randn(1, len(meta.static_variables), size * scale, size * scale, generator=generator).to(
            device, dtype
        )
        static.requires_grad_(True)
    offset = torch.zeros(1, 2, dtype=torch.long, device=device)
    centre = size // 2
    with torch.enable_grad(), seeded(seed, device):  # noise layers draw, but leave the global generator alone
        output = model(x, static, offset)
        output[..., centre * scale + scale // 2, centre * scale + scale // 2].sum().backward()
    extents = [_support_extent(x.grad.abs().sum(dim=tuple(range(x.ndim - 2))), centre, 1)]
    if static is not None:
        extents.append(_support_extent(static.grad.abs().sum(dim=(0, 1)), centre * scale + scale // 2, scale))
    if any(extent is None for extent in extents):
        return None
    return max(extents)  # type: ignore[type-var]


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


@dataclass(frozen=True)
class AxisTiles:
    """Tiles along one axis: ``starts`` of tiles of ``length`` coarse cells covering ``extent`` cells."""

    starts: tuple[int, ...]
    length: int
    extent: int

    @classmethod
    def plan(cls, extent: int, tile: int, overlap: int, multiple: int) -> AxisTiles:
        """The fewest tiles of at most ``tile`` cells overlapping by at least ``overlap``, spread evenly.

        ``extent`` and ``tile`` are multiples of ``multiple``, and so are the
        chosen length and starts. Tiles are shrunk to the smallest length
        that still covers the extent, which keeps the extra work down.
        """
        if tile >= extent:
            return cls((0,), extent, extent)
        count = math.ceil((extent - overlap) / (tile - overlap))
        length = min(tile, multiple * math.ceil((extent + (count - 1) * overlap) / (count * multiple)))
        while True:
            slack = (extent - length) // multiple
            starts = tuple(multiple * ((index * slack) // (count - 1)) for index in range(count))
            if max(b - a for a, b in itertools.pairwise(starts)) <= length - overlap:
                return cls(starts, length, extent)
            if length + multiple <= tile:
                length += multiple  # rounding the starts to the multiple left an overlap short
            else:
                count += 1

    def weights(self, index: int, scale: int, overlap_margin: float) -> np.ndarray:
        """Blending weights, (length * scale,), of tile ``index`` on the fine grid.

        ``overlap_margin`` is the margin in coarse cells that each side of an
        overlap is excluded from; the rest of the overlap is the ramp.
        """
        fine = np.arange(self.length * scale) + 0.5  # fine cell centres from the tile's start
        weight = np.ones(self.length * scale)
        if index > 0:
            overlap = (self.starts[index - 1] + self.length - self.starts[index]) * scale
            weight *= _ramp(fine, overlap, overlap_margin * scale)
        if index < len(self.starts) - 1:
            overlap = (self.starts[index] + self.length - self.starts[index + 1]) * scale
            weight *= _ramp(self.length * scale - fine, overlap, overlap_margin * scale)
        return weight


def _ramp(distance: np.ndarray, overlap: float, margin: float) -> np.ndarray:
    """sin^2 rise from 0 at ``margin`` into the overlap to 1 at ``overlap - margin``; the mirror image sums to 1."""
    width = overlap - 2 * margin
    if width <= 0:  # tiles that only touch
        return np.ones_like(distance)
    position = np.clip((distance - margin) / width, 0.0, 1.0)
    return np.sin(0.5 * np.pi * position) ** 2


@dataclass(frozen=True)
class TileLayout:
    """The tiles of a (padded) coarse domain and their blending weights.

    Attributes:
        rows, cols: the tiles along each axis.
        margin: coarse cells at each side of an overlap whose predictions get no weight.
    """

    rows: AxisTiles
    cols: AxisTiles
    margin: float

    @classmethod
    def plan(cls, shape: tuple[int, int], tile_size: int | None, overlap: int, multiple: int) -> TileLayout:
        """Tiles of at most ``tile_size`` cells (None: one tile) over a domain of ``shape`` (multiples of ``multiple``)."""
        tile = max(shape) if tile_size is None else tile_size
        rows = AxisTiles.plan(shape[0], tile, overlap, multiple)
        cols = AxisTiles.plan(shape[1], tile, overlap, multiple)
        return cls(rows, cols, margin=max(0.0, (overlap - RAMP) / 2) if overlap > RAMP else overlap / 4)

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, columns) of one tile, in coarse cells."""
        return self.rows.length, self.cols.length

    @property
    def origins(self) -> list[tuple[int, int]]:
        """(row, column) of the first coarse cell of every tile, row by row."""
        return [(row, col) for row in self.rows.starts for col in self.cols.starts]

    @property
    def count(self) -> int:
        return len(self.rows.starts) * len(self.cols.starts)

    def weights(self, scale: int) -> np.ndarray:
        """(tiles, length_rows * scale, length_cols * scale) float32 weights, normalised to sum to 1 everywhere."""
        row_weights = [self.rows.weights(i, scale, self.margin) for i in range(len(self.rows.starts))]
        col_weights = [self.cols.weights(i, scale, self.margin) for i in range(len(self.cols.starts))]
        weights = np.stack([np.outer(r, c) for r in row_weights for c in col_weights])
        total = np.zeros((self.rows.extent * scale, self.cols.extent * scale))
        height, width = weights.shape[1:]
        for weight, (row, col) in zip(weights, self.origins):
            total[row * scale : row * scale + height, col * scale : col * scale + width] += weight
        for index, (row, col) in enumerate(self.origins):
            weights[index] /= total[row * scale : row * scale + height, col * scale : col * scale + width]
        return weights.astype(np.float32)


def default_overlap(model: DownscalingModel, tile_size: int) -> int:
    """The overlap, in coarse cells, that makes tiled equal untiled output for ``model``: twice (radius + 1) plus the ramp.

    For networks without a bounded receptive field (e.g. channel attention),
    a quarter of the tile, which hides seams but cannot remove them.

    Raises:
        ConfigError: the tile is too small to leave anything between the overlaps.
    """
    radius = receptive_radius(model)
    overlap = tile_size // 4 if radius is None else 2 * (radius + 1) + RAMP
    if overlap >= tile_size:
        raise ConfigError(
            f"tile_size={tile_size} coarse cells is too small for {model.metadata.architecture!r}: its receptive "
            f"radius of {radius} coarse cells needs tiles overlapping by {overlap} cells; use a tile_size of at "
            f"least {2 * overlap} (better, several times that), or set a smaller overlap, at the price of small "
            "differences at tile borders"
        )
    return overlap
