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

from dl4ds.errors import ConfigError
from dl4ds.model import DownscalingModel

RAMP = 2  # coarse cells over which overlapping tiles cross-fade


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
    radius = model.receptive_radius()
    overlap = tile_size // 4 if radius is None else 2 * (radius + 1) + RAMP
    if overlap >= tile_size:
        raise ConfigError(
            f"tile_size={tile_size} coarse cells is too small for {model.metadata.architecture!r}: its receptive "
            f"radius of {radius} coarse cells needs tiles overlapping by {overlap} cells; use a tile_size of at "
            f"least {2 * overlap} (better, several times that), or set a smaller overlap, at the price of small "
            "differences at tile borders"
        )
    return overlap
