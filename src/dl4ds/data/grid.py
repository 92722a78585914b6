"""Regular latitude-longitude grids and coordinate conventions.

Inside dl4ds every field uses the dimension names ``time``, ``lat`` and ``lon``
with latitude ascending. :func:`standardize` brings user data to that form; the
original orientation is restored on output by the inference module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import xarray as xr

from dl4ds.errors import DataError

XarrayObject = TypeVar("XarrayObject", xr.DataArray, xr.Dataset)

COORDINATE_ALIASES: dict[str, tuple[str, ...]] = {
    "lat": ("lat", "latitude", "nav_lat", "rlat"),
    "lon": ("lon", "longitude", "nav_lon", "rlon"),
    "time": ("time", "valid_time"),
}
GRID_TOLERANCE = 1e-4  # degrees; float32 coordinates of 0.25 degree grids differ by ~1e-6


def _find_name(obj: xr.DataArray | xr.Dataset, standard: str) -> str | None:
    """The name under which ``obj`` holds the coordinate ``standard``, if any."""
    present = set(obj.dims) | set(obj.coords)
    for alias in COORDINATE_ALIASES[standard]:
        if alias in present:
            return alias
    return None


def coordinate_names(obj: xr.DataArray | xr.Dataset) -> dict[str, str]:
    """The user's names of the coordinates dl4ds calls ``lat``, ``lon`` and ``time``, for those present.

    E.g. ``{"lat": "latitude", "lon": "longitude", "time": "valid_time"}``;
    outputs are renamed back with it.
    """
    names = {standard: _find_name(obj, standard) for standard in COORDINATE_ALIASES}
    return {standard: name for standard, name in names.items() if name is not None}


def standardize(obj: XarrayObject, *, require_time: bool = True) -> XarrayObject:
    """Rename coordinates to ``time``/``lat``/``lon`` and sort latitude ascending.

    Accepts lat/latitude, lon/longitude and time/valid_time. The input is not
    modified. Raises :class:`DataError` if the spatial (or, with ``require_time``,
    the time) dimension is missing, naming the dimensions that were found.
    """
    renames: dict[str, str] = {}
    for standard in ("lat", "lon", "time"):
        name = _find_name(obj, standard)
        if name is None:
            if standard == "time" and not require_time:
                continue
            aliases = "/".join(COORDINATE_ALIASES[standard])
            raise DataError(
                f"no {standard} dimension found (looked for {aliases}); the data has "
                f"dims {tuple(obj.dims)}. Rename the dimension to one of those names."
            )
        if name != standard:
            if standard in obj.coords and standard not in obj.dims:
                obj = obj.drop_vars(standard)
            renames[name] = standard
    obj = obj.rename(renames) if renames else obj
    for dim in ("lat", "lon"):
        if dim not in obj.dims:
            raise DataError(
                f"'{dim}' is a coordinate but not a dimension (dims {tuple(obj.dims)}); "
                "dl4ds needs data on a regular latitude-longitude grid."
            )
    if require_time and "time" not in obj.dims:
        obj = obj.expand_dims("time") if obj["time"].ndim == 0 else obj
    if obj.sizes["lat"] > 1 and obj["lat"].values[0] > obj["lat"].values[-1]:
        obj = obj.isel(lat=slice(None, None, -1))
    if obj.sizes["lon"] > 1 and not np.all(np.diff(obj["lon"].values) > 0):
        obj = obj.sortby("lon")
    return obj


def latitude_descending(obj: xr.DataArray | xr.Dataset) -> bool:
    """Whether ``obj`` (in the user's convention) stores latitude north to south."""
    name = _find_name(obj, "lat")
    if name is None or obj.sizes.get(name, 0) < 2:
        return False
    values = obj[name].values
    return bool(values[0] > values[-1])


def align_longitudes(obj: XarrayObject, reference: np.ndarray) -> XarrayObject:
    """Shift longitudes by multiples of 360 degrees to lie within 180 of ``reference``'s centre.

    Lets data stored as 0..360 meet a grid stored as -180..180 (and the reverse).
    """
    centre = 0.5 * (float(np.min(reference)) + float(np.max(reference)))
    lon = obj["lon"].values.astype(np.float64)
    shifted = centre + (lon - centre + 180.0) % 360.0 - 180.0
    if np.allclose(shifted, lon):
        return obj
    return obj.assign_coords(lon=shifted).sortby("lon")


@dataclass(frozen=True, eq=False)
class Grid:
    """A regular latitude-longitude grid of cell centres, in degrees, both ascending."""

    lat: np.ndarray
    lon: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "lat", np.asarray(self.lat, dtype=np.float64))
        object.__setattr__(self, "lon", np.asarray(self.lon, dtype=np.float64))

    @classmethod
    def of(cls, obj: xr.DataArray | xr.Dataset) -> Grid:
        """The grid of a standardized xarray object."""
        return cls(obj["lat"].values, obj["lon"].values)

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.lat), len(self.lon))

    @property
    def spacing(self) -> tuple[float, float]:
        """(dlat, dlon) in degrees. Raises :class:`DataError` for an irregular grid."""
        return (_regular_step(self.lat, "latitude"), _regular_step(self.lon, "longitude"))

    def refine(self, scale: int) -> Grid:
        """The grid whose ``scale`` x ``scale`` blocks of cells make up the cells of this one."""
        dlat, dlon = self.spacing
        offsets = (np.arange(scale) + 0.5) / scale - 0.5
        lat = (self.lat[:, None] + offsets[None, :] * dlat).ravel()
        lon = (self.lon[:, None] + offsets[None, :] * dlon).ravel()
        return Grid(lat, lon)

    def coarsen(self, scale: int) -> Grid:
        """Centres of ``scale`` x ``scale`` blocks; both sizes must be divisible by ``scale``."""
        for size, name in zip(self.shape, ("latitude", "longitude")):
            if size % scale:
                raise DataError(f"{name} size {size} is not divisible by scale {scale}")
        return Grid(self.lat.reshape(-1, scale).mean(1), self.lon.reshape(-1, scale).mean(1))

    def equals(self, other: Grid, tolerance: float = GRID_TOLERANCE) -> bool:
        return (
            self.shape == other.shape
            and bool(np.allclose(self.lat, other.lat, atol=tolerance, rtol=0))
            and bool(np.allclose(self.lon, other.lon, atol=tolerance, rtol=0))
        )

    def window_in(self, other: Grid, tolerance: float = GRID_TOLERANCE) -> tuple[slice, slice] | None:
        """Index slices of ``other`` that give exactly this grid, or None if this grid is not a window of it."""
        slices = []
        for mine, theirs in ((self.lat, other.lat), (self.lon, other.lon)):
            start = int(np.argmin(np.abs(theirs - mine[0])))
            stop = start + len(mine)
            if stop > len(theirs) or not np.allclose(theirs[start:stop], mine, atol=tolerance, rtol=0):
                return None
            slices.append(slice(start, stop))
        return slices[0], slices[1]

    def covers(self, other: Grid, tolerance: float = GRID_TOLERANCE) -> bool:
        """Whether every cell centre of ``other`` lies inside the span of this grid's centres."""
        return bool(
            self.lat.min() - tolerance <= other.lat.min()
            and other.lat.max() <= self.lat.max() + tolerance
            and self.lon.min() - tolerance <= other.lon.min()
            and other.lon.max() <= self.lon.max() + tolerance
        )

    def cells_within(self, other: Grid, tolerance: float = GRID_TOLERANCE) -> tuple[slice, slice] | None:
        """Index slices of the cells of this grid whose centres lie within ``other``'s span, or None if none do."""
        inside = [
            np.flatnonzero((mine >= theirs.min() - tolerance) & (mine <= theirs.max() + tolerance))
            for mine, theirs in ((self.lat, other.lat), (self.lon, other.lon))
        ]
        if any(index.size == 0 for index in inside):
            return None
        return slice(inside[0][0], inside[0][-1] + 1), slice(inside[1][0], inside[1][-1] + 1)

    def describe(self) -> str:
        """A one-line description, e.g. ``32 x 48 cells, lat 50.12..57.88, lon -9.88..1.88``."""
        return (
            f"{self.shape[0]} x {self.shape[1]} cells, lat {self.lat[0]:.4g}..{self.lat[-1]:.4g}, "
            f"lon {self.lon[0]:.4g}..{self.lon[-1]:.4g}"
        )

    def to_dict(self) -> dict[str, list[float]]:
        return {"lat": self.lat.tolist(), "lon": self.lon.tolist()}

    @classmethod
    def from_dict(cls, data: dict[str, list[float]]) -> Grid:
        return cls(np.asarray(data["lat"]), np.asarray(data["lon"]))

    def coords(self) -> dict[str, xr.DataArray]:
        """CF-annotated ``lat`` and ``lon`` coordinates for building xarray objects."""
        return {
            "lat": xr.DataArray(
                self.lat,
                dims="lat",
                attrs={"standard_name": "latitude", "long_name": "latitude", "units": "degrees_north", "axis": "Y"},
            ),
            "lon": xr.DataArray(
                self.lon,
                dims="lon",
                attrs={"standard_name": "longitude", "long_name": "longitude", "units": "degrees_east", "axis": "X"},
            ),
        }


def _regular_step(values: np.ndarray, name: str) -> float:
    if len(values) < 2:
        raise DataError(f"the {name} axis has a single point; dl4ds needs at least 2 grid points per axis")
    steps = np.diff(values)
    step = float(np.median(steps))
    if not np.allclose(steps, step, atol=max(GRID_TOLERANCE, 1e-3 * abs(step)), rtol=0):
        raise DataError(
            f"the {name} axis is not regular (steps from {steps.min():.6g} to {steps.max():.6g} degrees); "
            "regrid the data to a regular grid first"
        )
    return step
