"""Bringing fields onto a given regular grid."""

from __future__ import annotations

from typing import Literal

import xarray as xr

from dl4ds.data.grid import Grid, align_longitudes
from dl4ds.errors import DataError

RegridMethod = Literal["linear", "nearest", "cubic"]


def regrid(field: xr.DataArray, grid: Grid, *, method: RegridMethod = "linear", role: str) -> xr.DataArray:
    """Interpolate a standardized field onto ``grid`` (cell centres).

    When ``grid`` is the field's own grid or a window of it, the values are
    taken as they are, without interpolation. Raises
    :class:`DataError` if the field's extent does not cover the grid, because
    that would need extrapolation.
    """
    field = align_longitudes(field, grid.lon)
    source = Grid.of(field)
    window = grid.window_in(source)
    if window is not None:
        return field.isel(lat=window[0], lon=window[1]).assign_coords(lat=grid.lat, lon=grid.lon)
    if not source.covers(grid):
        raise DataError(
            f"the {role} data ({source.describe()}) does not cover the grid it must be regridded to "
            f"({grid.describe()}); provide {role} data over a larger area"
        )
    return field.interp(lat=grid.lat, lon=grid.lon, method=method).astype(field.dtype)
