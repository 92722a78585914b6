"""Interpolation baselines: nearest, bilinear and bicubic, and conservative (block means kept); nothing is learned."""

from __future__ import annotations

import numpy as np
import xarray as xr

from dl4ds.baselines.arrays import block_mean, check_mode, coarse_targets, interpolate, interpolate_valid, repeat_blocks
from dl4ds.baselines.base import Baseline
from dl4ds.data.grid import Grid
from dl4ds.data.pairing import PairedData
from dl4ds.utils.interpolation import InterpolationMode


class Interpolation(Baseline):
    """The coarse target channels interpolated onto the fine grid with ``mode``; nothing is learned.

    Args:
        mode: ``nearest`` (each coarse value over its block), ``bilinear`` or
            ``bicubic``; also the baseline's name.
    """

    requires_fit = False

    def __init__(self, mode: InterpolationMode = "bicubic") -> None:
        super().__init__()
        check_mode(mode, "mode")
        self.name = mode
        self.mode = mode

    def _predict(self, data: PairedData) -> np.ndarray:
        return interpolate_valid(coarse_targets(data), data.scale, self.mode)


class Conservative(Baseline):
    """Smooth interpolation whose ``scale`` x ``scale`` block means equal the coarse values exactly.

    Bilinear interpolation ``b`` of the coarse field ``c``, plus the block
    residual repeated over each block: ``b + nearest(c - block_mean(b))``, so
    that block-averaging the result (the coarsening of
    :class:`~dl4ds.data.pairing.PerfectProg`) gives back ``c``. First-order
    conservative remapping onto a nested refinement would simply repeat each
    coarse value over its block, i.e. the ``nearest`` baseline; this is the
    smooth (second-order-like) counterpart. A NaN coarse cell gives NaN over
    its block. Nothing is learned.
    """

    name = "conservative"
    requires_fit = False

    def _predict(self, data: PairedData) -> np.ndarray:
        coarse = coarse_targets(data)
        smooth = interpolate_valid(coarse, data.scale, "bilinear")
        residual = (coarse - block_mean(smooth, data.scale)).astype(np.float32)
        return smooth + repeat_blocks(residual, data.scale)


def interpolate_to_fine(coarse: xr.DataArray, scale: int, mode: InterpolationMode = "bicubic") -> xr.DataArray:
    """Interpolate a standardized coarse field (..., lat, lon) onto its refinement by ``scale``.

    Uses the same kernel as the networks' global skip connection (see
    :func:`dl4ds.utils.interpolation.upsample`). Attributes and non-spatial coordinates
    are kept; the result is named after ``coarse``.
    """
    fine_grid = Grid.of(coarse).refine(scale)
    fine = interpolate(coarse.values, scale, mode)
    coords = {name: c.variable for name, c in coarse.coords.items() if "lat" not in c.dims and "lon" not in c.dims}
    return xr.DataArray(
        fine, dims=coarse.dims, coords=coords | fine_grid.coords(), attrs=coarse.attrs, name=coarse.name
    )
