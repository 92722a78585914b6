"""Regular latitude-longitude grids and coordinate conventions.

Inside dl4ds every field uses the dimension names ``time``, ``lat`` and ``lon``
with latitude ascending. :func:`standardize` brings user data to that form; the
original orientation is restored on output by the inference module.

Coordinates are recognised by their CF metadata first (with cf-xarray:
``standard_name``, ``units`` such as ``degrees_north``, ``axis``), then by
their names (``lat``/``latitude``, ``lon``/``longitude``, ``time``/``valid_time``).
Grids that are not regular in latitude and longitude (rotated-pole grids,
projections with a ``grid_mapping``, 2-D latitude/longitude) are refused with
a :class:`DataError` rather than taken for latitude and longitude.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import xarray as xr

from dl4ds.errors import DataError

XarrayObject = TypeVar("XarrayObject", xr.DataArray, xr.Dataset)

COORDINATE_ALIASES: dict[str, tuple[str, ...]] = {
    "lat": ("lat", "latitude"),
    "lon": ("lon", "longitude"),
    "time": ("time", "valid_time"),
}
"""Names taken for latitude, longitude and time when no CF metadata says otherwise."""
GRID_TOLERANCE = 1e-4  # degrees; float32 coordinates of 0.25 degree grids differ by ~1e-6

_CF_KEYS = {"lat": ("latitude", "Y"), "lon": ("longitude", "X"), "time": ("time", "T")}
_ANGULAR_UNITS = ("degrees", "degree", "deg")
_ROTATED_STANDARD_NAMES = ("grid_latitude", "grid_longitude")
_PROJECTED_STANDARD_NAMES = (
    "projection_x_coordinate",
    "projection_y_coordinate",
    "projection_x_angular_coordinate",
    "projection_y_angular_coordinate",
)
_ROTATED_NAMES = ("rlat", "rlon")  # the CORDEX names of rotated-pole coordinates
_REGRID_HINT = (
    "dl4ds works on regular latitude-longitude grids: regrid the data onto one first, e.g. conservatively with "
    "CDO (cdo remapcon,GRID in.nc out.nc) or xESMF."
)


def _cf(obj: xr.DataArray | xr.Dataset) -> Any:
    """The cf-xarray accessor of ``obj`` (cf_xarray is imported on first use)."""
    import cf_xarray  # noqa: F401 (registers the .cf accessor)

    return obj.cf


def _find_name(obj: xr.DataArray | xr.Dataset, standard: str) -> str | None:
    """The name under which ``obj`` holds the coordinate ``standard`` (lat, lon or time), if any.

    Latitude and longitude: a dimension that CF metadata identifies
    (``standard_name``, ``units`` degrees_north/east), else one of
    :data:`COORDINATE_ALIASES`, else a dimension with ``axis`` Y/X in degrees.
    Time: ``time`` or ``valid_time`` first (GRIB-derived data calls the
    initialisation ``time``), else a dimension with ``standard_name`` time or ``axis`` T.
    """
    present = set(obj.dims) | set(obj.coords)
    key, axis = _CF_KEYS[standard]
    accessor = _cf(obj)
    identified = [str(name) for name in accessor.coordinates.get(key, []) if name in obj.dims]
    by_axis = [str(name) for name in accessor.axes.get(axis, []) if name in obj.dims]
    aliases = [alias for alias in COORDINATE_ALIASES[standard] if alias in present]
    if standard == "time":
        candidates = aliases + identified + by_axis
    else:
        angular = [name for name in by_axis if str(obj[name].attrs.get("units", "")).lower() in _ANGULAR_UNITS]
        candidates = identified + aliases + angular
    return candidates[0] if candidates else None


def check_regular_grid(obj: xr.DataArray | xr.Dataset, *, role: str = "data") -> None:
    """Raise :class:`DataError` if ``obj`` is on a rotated-pole, projected or curvilinear grid.

    Looked for: a ``grid_mapping`` other than ``latitude_longitude``;
    coordinates whose ``standard_name`` is ``grid_latitude``/``grid_longitude``
    or a ``projection_*_coordinate``; dimensions named ``rlat``/``rlon``; and
    latitude or longitude given only as 2-D coordinates.
    """
    mapping = _grid_mapping(obj)
    if mapping is not None and mapping[1] not in ("latitude_longitude", None):
        name, kind, attrs = mapping
        rotated = kind == "rotated_latitude_longitude"
        pole = ""
        if rotated and {"grid_north_pole_latitude", "grid_north_pole_longitude"} <= set(attrs):
            pole = f", north pole at {attrs['grid_north_pole_latitude']} N {attrs['grid_north_pole_longitude']} E"
        raise DataError(
            f"the {role} data is on a {'rotated-pole' if rotated else 'projected'} grid (grid_mapping {name!r}: "
            f"{kind}{pole}; dims {tuple(map(str, obj.dims))}), whose coordinates are not latitude and longitude. "
            + _REGRID_HINT
        )
    for dim in obj.dims:
        coordinate = obj[dim] if dim in obj.coords else None
        standard_name = "" if coordinate is None else str(coordinate.attrs.get("standard_name", ""))
        if standard_name in _ROTATED_STANDARD_NAMES or (
            str(dim) in _ROTATED_NAMES and standard_name not in ("latitude", "longitude")
        ):
            raise DataError(
                f"the {role} data is on a rotated-pole grid (dim {str(dim)!r}"
                f"{f' with standard_name {standard_name!r}' if standard_name else ''}), whose coordinates are not "
                "latitude and longitude. " + _REGRID_HINT
            )
        if standard_name in _PROJECTED_STANDARD_NAMES:
            raise DataError(
                f"the {role} data is on a projected grid (dim {str(dim)!r} with standard_name {standard_name!r}). "
                + _REGRID_HINT
            )
    for standard in ("lat", "lon"):
        key = _CF_KEYS[standard][0]
        two_d = [str(n) for n in _cf(obj).coordinates.get(key, []) if n in obj.coords and obj[n].ndim > 1]
        if two_d and _find_name(obj, standard) is None:
            raise DataError(
                f"the {role} data gives {key} as the {obj[two_d[0]].ndim}-D coordinate {two_d[0]!r} over dims "
                f"{obj[two_d[0]].dims} (a curvilinear or projected grid), not as a dimension. " + _REGRID_HINT
            )


def _grid_mapping(obj: xr.DataArray | xr.Dataset) -> tuple[str, str | None, dict[str, Any]] | None:
    """(variable name, grid_mapping_name, attributes) of the grid mapping ``obj`` refers to, if any."""
    variables = [obj] if isinstance(obj, xr.DataArray) else list(obj.data_vars.values())
    for variable in variables:
        reference = variable.attrs.get("grid_mapping") or variable.encoding.get("grid_mapping")
        if not reference:
            continue
        name = str(reference).split(":")[0].split()[0]  # the extended form "crs: lat lon" names the variable first
        if name in (obj.variables if isinstance(obj, xr.Dataset) else obj.coords):
            attrs = dict(obj[name].attrs)
            return name, attrs.get("grid_mapping_name"), attrs
        return name, None, {}
    return None


def coordinate_names(obj: xr.DataArray | xr.Dataset) -> dict[str, str]:
    """The user's names of the coordinates dl4ds calls ``lat``, ``lon`` and ``time``, for those present.

    E.g. ``{"lat": "latitude", "lon": "longitude", "time": "valid_time"}``;
    outputs are renamed back with it.
    """
    names = {standard: _find_name(obj, standard) for standard in COORDINATE_ALIASES}
    return {standard: name for standard, name in names.items() if name is not None}


def standardize(obj: XarrayObject, *, require_time: bool = True, role: str = "data") -> XarrayObject:
    """Rename coordinates to ``time``/``lat``/``lon`` and sort latitude ascending.

    Coordinates are found by CF metadata or by name (see :func:`_find_name`).
    The input is not modified. Raises :class:`DataError` for grids that are not
    regular in latitude and longitude (:func:`check_regular_grid`), or if the
    spatial (or, with ``require_time``, the time) dimension is missing, naming
    the dimensions that were found; ``role`` (e.g. ``"coarse"``) names the data.
    """
    check_regular_grid(obj, role=role)
    renames: dict[str, str] = {}
    for standard in ("lat", "lon", "time"):
        name = _find_name(obj, standard)
        if name is None:
            if standard == "time" and not require_time:
                continue
            aliases = "/".join(COORDINATE_ALIASES[standard])
            raise DataError(
                f"no {standard} dimension found in the {role} data (looked for CF attributes such as standard_name "
                f"{_CF_KEYS[standard][0]!r}, and for the names {aliases}); it has dims {tuple(obj.dims)}. Rename the "
                "dimension to one of those names or give it CF attributes."
            )
        if name != standard:
            if standard in obj.coords and standard not in obj.dims:
                obj = obj.drop_vars(standard)
            renames[name] = standard
    obj = obj.rename(renames) if renames else obj
    for dim in ("lat", "lon"):
        if dim not in obj.dims:
            raise DataError(
                f"'{dim}' is a coordinate but not a dimension of the {role} data (dims {tuple(obj.dims)}); "
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

    def edges(self) -> tuple[np.ndarray, np.ndarray]:
        """Cell bounds (lat edges, lon edges), each one longer than its axis, in degrees.

        Midway between neighbouring centres, and half a step beyond the first
        and last centres; latitudes are clipped to -90..90.
        """
        return np.clip(_edges(self.lat), -90.0, 90.0), _edges(self.lon)

    def extent(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """((south, north), (west, east)): the outer bounds of the cells, in degrees."""
        lat, lon = self.edges()
        return (float(lat[0]), float(lat[-1])), (float(lon[0]), float(lon[-1]))

    def cells_inside(self, extent: tuple[tuple[float, float], tuple[float, float]]) -> tuple[slice, slice] | None:
        """Index slices of the cells whose centres lie within ``extent`` (see :meth:`extent`), or None if none do."""
        inside = [
            np.flatnonzero((values >= low - GRID_TOLERANCE) & (values <= high + GRID_TOLERANCE))
            for values, (low, high) in zip((self.lat, self.lon), extent)
        ]
        if any(index.size == 0 for index in inside):
            return None
        return slice(inside[0][0], inside[0][-1] + 1), slice(inside[1][0], inside[1][-1] + 1)

    def padded(self, lat: tuple[int, int], lon: tuple[int, int]) -> Grid:
        """This grid extended by (before, after) cells on each axis, continuing its regular spacing."""
        dlat, dlon = self.spacing
        return Grid(_extend(self.lat, dlat, *lat), _extend(self.lon, dlon, *lon))

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


def _edges(centres: np.ndarray) -> np.ndarray:
    """Bounds of the cells around ascending ``centres``: midpoints, and half a step beyond each end."""
    if len(centres) < 2:
        raise DataError("an axis with a single point has no cell size; dl4ds needs at least 2 grid points per axis")
    middle = 0.5 * (centres[1:] + centres[:-1])
    return np.concatenate([[centres[0] - (middle[0] - centres[0])], middle, [centres[-1] + (centres[-1] - middle[-1])]])


def _extend(values: np.ndarray, step: float, before: int, after: int) -> np.ndarray:
    """``values`` with ``before`` and ``after`` more points of spacing ``step``."""
    return np.concatenate(
        [values[0] - step * np.arange(before, 0, -1), values, values[-1] + step * np.arange(1, after + 1)]
    )


def truth_on_prediction_grid(prediction: xr.DataArray, truth: xr.DataArray) -> xr.DataArray:
    """The window of a standardized ``truth`` matching ``prediction``'s grid.

    A model's output grid is often a crop of the truth grid (to a multiple of
    the scale). Raises :class:`DataError` if the prediction grid is not a window
    of the truth grid.
    """
    truth = align_longitudes(truth, prediction["lon"].values)
    window = Grid.of(prediction).window_in(Grid.of(truth))
    if window is None:
        raise DataError(
            f"the prediction grid ({Grid.of(prediction).describe()}) is not part of the truth grid "
            f"({Grid.of(truth).describe()}); regrid one of them first"
        )
    return truth.isel(lat=window[0], lon=window[1]).assign_coords(lat=prediction["lat"], lon=prediction["lon"])
