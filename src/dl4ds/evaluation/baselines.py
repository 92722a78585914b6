"""Reference methods the network must beat."""

from __future__ import annotations

import numpy as np
import torch
import xarray as xr

from dl4ds.data.grid import Grid
from dl4ds.interpolation import InterpolationMode, upsample


def interpolate_to_fine(coarse: xr.DataArray, scale: int, mode: InterpolationMode = "bicubic") -> xr.DataArray:
    """Interpolate a standardized coarse field (..., lat, lon) onto its refinement by ``scale``.

    Uses the same kernel as the networks' global skip connection (see
    :func:`dl4ds.interpolation.upsample`). Attributes and non-spatial coordinates
    are kept; the result is named after ``coarse``.
    """
    fine_grid = Grid.of(coarse).refine(scale)
    leading = coarse.shape[:-2]
    values = torch.from_numpy(np.ascontiguousarray(coarse.values, dtype=np.float32).reshape(-1, 1, *coarse.shape[-2:]))
    fine = upsample(values, scale, mode).numpy().reshape(*leading, *fine_grid.shape)
    coords = {name: c.variable for name, c in coarse.coords.items() if "lat" not in c.dims and "lon" not in c.dims}
    return xr.DataArray(fine, dims=coarse.dims, coords=coords | fine_grid.coords(), attrs=coarse.attrs, name=coarse.name)
