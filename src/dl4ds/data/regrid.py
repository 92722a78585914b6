"""Bringing fields onto a given regular grid: interpolation, or first-order conservative remapping."""

from __future__ import annotations

from typing import Literal

import numpy as np
import xarray as xr

from dl4ds.data.grid import Grid, align_longitudes
from dl4ds.errors import DataError

RegridMethod = Literal["linear", "nearest", "cubic", "conservative"]
"""``linear``, ``nearest`` and ``cubic`` interpolate between cell centres; ``conservative`` is first-order
conservative remapping: each target cell gets the area-weighted mean of the source cells it overlaps, so
area-weighted totals are kept (see :func:`conservative_weights`)."""

_NEGLIGIBLE_OVERLAP = 1e-9  # of a cell's size: overlaps smaller than this are rounding, not geometry


def regrid(
    field: xr.DataArray, grid: Grid, *, method: RegridMethod = "linear", role: str, clamp: bool = False
) -> xr.DataArray:
    """Bring a standardized field onto ``grid`` (cell centres).

    When ``grid`` is the field's own grid or a window of it, the values are
    taken as they are. Otherwise they are interpolated (``linear``,
    ``nearest``, ``cubic``) or remapped conservatively (``conservative``).

    Args:
        field: (..., lat, lon) on a regular grid; lazy (dask) fields stay lazy.
        grid: the target grid.
        method: see :data:`RegridMethod`.
        role: names the data in messages, e.g. ``"static"``.
        clamp: the caller has checked that the field covers the part of
            ``grid`` that matters: target cells beyond the field's cell centres
            take the nearest values within it (for interpolation), or the mean
            of the part of the field they overlap (conservative), instead of an error.

    Raises:
        DataError: the field does not cover the grid (without ``clamp``): the
            target centres must lie within the field's centres for
            interpolation, within its cells for conservative remapping.
    """
    field = align_longitudes(field, grid.lon)
    source = Grid.of(field)
    window = grid.window_in(source)
    if window is not None:
        return field.isel(lat=window[0], lon=window[1]).assign_coords(lat=grid.lat, lon=grid.lon)
    covered = grid.cells_inside(source.extent()) == (slice(0, grid.shape[0]), slice(0, grid.shape[1]))
    if not clamp and not (covered if method == "conservative" else source.covers(grid)):
        raise DataError(
            f"the {role} data ({source.describe()}) does not cover the grid it must be regridded to "
            f"({grid.describe()}); provide {role} data over a larger area"
        )
    if method == "conservative":
        return conservative_regrid(field, grid)
    lat, lon = grid.lat, grid.lon
    if clamp:
        lat, lon = np.clip(lat, source.lat.min(), source.lat.max()), np.clip(lon, source.lon.min(), source.lon.max())
    result = field.interp(lat=lat, lon=lon, method=method).assign_coords(lat=grid.lat, lon=grid.lon)
    return result.astype(field.dtype)


def conservative_weights(target: Grid, source: Grid) -> tuple[np.ndarray, np.ndarray]:
    """Overlaps of the cells of ``target`` with those of ``source``, per axis: (lat weights, lon weights).

    On the sphere the area of the cell between latitudes phi1 < phi2 and
    longitudes lambda1 < lambda2 is ``R**2 (lambda2 - lambda1) (sin phi2 - sin phi1)``,
    so the overlap area of a target cell (i, k) and a source cell (j, l)
    factorises into ``lat[i, j] * lon[k, l]``: the overlap of their sin(latitude)
    intervals times that of their longitude intervals (radians, the 360-degree
    periodicity included). Cell bounds come from :meth:`Grid.edges`.

    Returns:
        (target lat, source lat) and (target lon, source lon) float64 arrays.
    """
    target_lat, target_lon = target.edges()
    source_lat, source_lon = source.edges()
    lat = _overlaps(np.sin(np.deg2rad(target_lat)), np.sin(np.deg2rad(source_lat)))
    lon = sum(
        (_overlaps(np.deg2rad(target_lon), np.deg2rad(source_lon + shift)) for shift in (-360.0, 0.0, 360.0)),
        start=np.zeros((target.shape[1], source.shape[1])),
    )
    return lat, lon


def conservative_regrid(field: xr.DataArray, grid: Grid) -> xr.DataArray:
    """First-order conservative remapping of a standardized (..., lat, lon) field onto ``grid``.

    Each target cell gets the mean of the source values weighted by the area
    of their overlap with it (:func:`conservative_weights`), over the valid
    (non-NaN) source cells it overlaps; NaN where it overlaps none. A target
    cell only partly covered by the source gets the mean over the covered part.
    When the two grids span the same area, area-weighted totals are kept:
    ``sum(area_target * remapped) == sum(area_source * field)``. Lazy fields stay lazy.
    """
    lat_weights, lon_weights = conservative_weights(grid, Grid.of(field))
    lat = xr.DataArray(lat_weights, dims=("lat_target", "lat"))
    lon = xr.DataArray(lon_weights, dims=("lon_target", "lon"))
    valid = field.notnull().astype(np.float64)
    total = xr.dot(lat, field.fillna(0.0).astype(np.float64), lon, dim=["lat", "lon"])
    area = xr.dot(lat, valid, lon, dim=["lat", "lon"])
    mean = (total / area.where(area > 0)).rename(lat_target="lat", lon_target="lon")
    mean = mean.assign_coords(grid.coords()).transpose(*field.dims)
    return mean.astype(field.dtype).assign_attrs(field.attrs)


def cell_areas(grid: Grid) -> np.ndarray:
    """(lat, lon) areas of the cells of ``grid`` on the unit sphere (steradians)."""
    lat, lon = grid.edges()
    return np.diff(np.sin(np.deg2rad(lat)))[:, None] * np.diff(np.deg2rad(lon))[None, :]


def _overlaps(target: np.ndarray, source: np.ndarray) -> np.ndarray:
    """(target cells, source cells) lengths of the overlaps of intervals given by ascending edges."""
    low = np.maximum(target[:-1, None], source[None, :-1])
    high = np.minimum(target[1:, None], source[None, 1:])
    overlap = np.clip(high - low, 0.0, None)
    size = np.minimum(np.diff(target)[:, None], np.diff(source)[None, :])
    overlap[overlap <= _NEGLIGIBLE_OVERLAP * size] = 0.0
    return overlap
