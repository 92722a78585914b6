"""Selecting variables (and levels) from user data and checking their layout.

A *field* inside dl4ds is an ``xr.DataArray`` with dims (time, variable, lat,
lon) in physical units, float32, on a standardized grid (see
:mod:`dl4ds.data.grid`).

A variable name may select one level of a vertical dimension:
``ta@850hPa`` is ``ta`` at 850 hPa (converted to the units of the vertical
coordinate, e.g. 85000 Pa), ``ta@850`` at the coordinate value 850. The
channel keeps the name as written, so a model trained on ``ta@850hPa`` takes
the same level from its input.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np
import xarray as xr

from dl4ds.data import units
from dl4ds.data.grid import standardize
from dl4ds.errors import DataError

logger = logging.getLogger(__name__)

CF_ATTRIBUTES = ("units", "standard_name", "long_name")
LEVEL_SEPARATOR = "@"
VERTICAL_NAMES = ("level", "plev", "pressure_level", "isobaricInhPa", "lev", "pressure", "height", "depth", "altitude")
"""Dimension names taken for a vertical coordinate when no CF metadata (``positive``, ``axis: Z``, ...) says so."""
_LEVEL = re.compile(r"^\s*(?P<value>[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?)\s*(?P<units>.*?)\s*$")


@dataclass(frozen=True)
class VariableSpec:
    """A variable of a dataset, at one level or not: ``t2m``, ``ta@850hPa``, ``ta@850``.

    Attributes:
        name: the name as written, which names the channel.
        variable: the variable of the dataset.
        level: the level's value, or None for the whole variable.
        level_units: the level's units (e.g. ``hPa``), or None for the vertical coordinate's own.
    """

    name: str
    variable: str
    level: float | None = None
    level_units: str | None = None

    @classmethod
    def parse(cls, name: str) -> VariableSpec:
        """The spec of ``name``; :class:`DataError` for a level that is not a number with optional units."""
        variable, separator, level = name.partition(LEVEL_SEPARATOR)
        if not separator:
            return cls(name, name)
        match = _LEVEL.match(level)
        if not variable or match is None:
            raise DataError(
                f"{name!r} does not name a variable at a level; write VARIABLE{LEVEL_SEPARATOR}LEVEL[UNITS], "
                f"e.g. 'ta{LEVEL_SEPARATOR}850hPa' or 'ta{LEVEL_SEPARATOR}850'"
            )
        return cls(name, variable, float(match["value"]), match["units"] or None)


def select_variables(obj: xr.Dataset | xr.DataArray, names: Sequence[Hashable], *, role: str) -> xr.Dataset:
    """The variables ``names`` of ``obj`` with their attributes, levels selected, named as asked.

    A name that is a variable of ``obj`` is taken as it is; otherwise it is
    read as a :class:`VariableSpec` (``ta@850hPa``) and that level of the
    variable is selected (the vertical coordinate dropped). Nothing is read.

    Raises:
        DataError: a missing variable or level, or a variable without a vertical dimension to select from.
    """
    ds = as_dataset(obj, role=role)
    specs = {name: VariableSpec.parse(str(name)) for name in names if name not in ds.data_vars}
    check_variables(ds, [spec.variable for spec in specs.values()], role=role, asked=[str(n) for n in specs])
    selected = {}
    for name in names:
        if name in ds.data_vars:
            selected[name] = ds[name]
            continue
        spec = specs[name]
        if spec.level is None:  # check_variables found it
            selected[name] = ds[spec.variable]
        else:
            selected[name] = _select_level(ds[spec.variable], spec, role=role)
    return xr.Dataset(selected, attrs=ds.attrs)


def _select_level(variable: xr.DataArray, spec: VariableSpec, *, role: str) -> xr.DataArray:
    assert spec.level is not None, "only specs with a level are selected"
    dim = _vertical_dim(variable, spec, role=role)
    coordinate = variable[dim]
    value = spec.level
    if spec.level_units is not None:
        coordinate_units = units.units_of(coordinate)
        if coordinate_units is None:
            raise DataError(
                f"the vertical coordinate {dim!r} of the {role} variable {spec.variable!r} has no units, so "
                f"{spec.level:g} {spec.level_units} cannot be found on it; give the level in its own values, "
                f"e.g. {spec.variable}{LEVEL_SEPARATOR}{spec.level:g}"
            )
        change = units.conversion(
            spec.level_units, coordinate_units, what=f"the level of {spec.name!r}", reference=f"the coordinate {dim!r}"
        )
        value = float(change.apply_array(np.array(value)))
    levels = coordinate.values
    found = np.flatnonzero(np.isclose(levels.astype(np.float64), value, rtol=1e-6, atol=1e-9))
    if found.size != 1:
        shown = ", ".join(f"{level:g}" for level in levels[:20]) + (", ..." if len(levels) > 20 else "")
        raise DataError(
            f"the {role} variable {spec.variable!r} has no level {value:g} {units.units_of(coordinate) or ''} "
            f"(asked for by {spec.name!r}) along {dim!r}; its levels are {shown}"
        )
    selected = variable.isel({dim: int(found[0])}, drop=True)
    return selected.assign_attrs(
        selected.attrs | {"level": f"{dim} = {levels[found[0]]:g} {units.units_of(coordinate) or ''}".strip()}
    )


def _vertical_dim(variable: xr.DataArray, spec: VariableSpec, *, role: str) -> str:
    """The dimension of ``variable`` that is vertical: by CF metadata (cf-xarray), else by name."""
    import cf_xarray  # noqa: F401 (registers the .cf accessor)

    accessor = variable.cf
    by_cf = {str(name) for name in [*accessor.coordinates.get("vertical", []), *accessor.axes.get("Z", [])]}
    candidates = [str(dim) for dim in variable.dims if str(dim) in by_cf or str(dim) in VERTICAL_NAMES]
    if len(candidates) != 1:
        found = "no vertical dimension" if not candidates else f"several vertical dimensions {candidates}"
        raise DataError(
            f"{spec.name!r} asks for a level of the {role} variable {spec.variable!r}, which has {found} "
            f"(dims {tuple(map(str, variable.dims))}); name a variable with one vertical dimension "
            f"({', '.join(VERTICAL_NAMES[:4])}..., or CF attributes positive/axis Z)"
        )
    return candidates[0]


def as_dataset(obj: xr.Dataset | xr.DataArray, *, role: str) -> xr.Dataset:
    """Wrap a named DataArray in a Dataset; Datasets pass through."""
    if isinstance(obj, xr.Dataset):
        return obj
    if isinstance(obj, xr.DataArray):
        if obj.name is None:
            raise DataError(
                f"the {role} DataArray has no name; give it one with .rename('t2m') so dl4ds knows its variable"
            )
        return obj.to_dataset()
    raise DataError(f"the {role} must be an xarray Dataset or DataArray, not {type(obj).__name__}")


def check_variables(
    ds: xr.Dataset, names: Sequence[Hashable], *, role: str, asked: Sequence[str] | None = None
) -> None:
    """Raise :class:`DataError` naming every variable of ``names`` missing from ``ds`` (``asked``: as the user wrote them)."""
    missing = [(name, text) for name, text in zip(names, asked or names) if name not in ds.data_vars]
    if missing:
        shown = ", ".join(repr(text) if name == text else f"{name!r} (of {text!r})" for name, text in missing)
        raise DataError(
            f"the {role} data has no variable {shown}; it has "
            f"{sorted(map(str, ds.data_vars))}. Choose one of those, or rename the variable in the data."
        )


def select_field(
    obj: xr.Dataset | xr.DataArray,
    variables: Sequence[str] | None,
    *,
    role: str,
    dims: tuple[str, ...] = ("time", "lat", "lon"),
) -> xr.DataArray:
    """Stack ``variables`` of ``obj`` into a float32 field with dims ``dims[:-2] + ('variable',) + dims[-2:]``.

    ``variables=None`` takes every data variable. Coordinates are standardized
    (lat/latitude, lon/longitude, time/valid_time; latitude ascending). Each
    variable must have exactly ``dims`` after standardization; scalar
    coordinates left over from a selection are dropped.
    """
    ds = as_dataset(obj, role=role)
    names: list[Hashable] = list(ds.data_vars) if variables is None else list(variables)
    if not names:
        raise DataError(f"the {role} data has no data variables")
    ds = standardize(select_variables(ds, names, role=role), require_time="time" in dims, role=role)
    ds = ds.assign({name: replace_infinite(ds[name], role=role) for name in names})
    for name in names:
        var_dims = ds[name].dims
        if set(var_dims) != set(dims):
            extra = [d for d in var_dims if d not in dims]
            hint = (
                f"select one value of {extra} first: a level by naming it, e.g. '{name}{LEVEL_SEPARATOR}850hPa', "
                f"or in Python .isel({extra[0]}=0)"
                if extra
                else f"it needs dims {dims}"
            )
            raise DataError(f"the {role} variable {name!r} has dims {var_dims}; dl4ds expects {dims}: {hint}")
    field = ds[names].to_dataarray(dim="variable").transpose(*dims[:-2], "variable", *dims[-2:])
    field = field.drop_vars([c for c in field.coords if c not in field.dims])
    return field.astype(np.float32)


def replace_infinite(field: xr.DataArray, *, role: str) -> xr.DataArray:
    """``field`` with every +Inf and -Inf replaced by NaN, with a warning saying how many there were.

    An infinite value in gridded data is a missing value in disguise (a fill
    value that was not decoded, an overflow in an earlier step); left in, it
    turns into NaN and 1e37 values wherever a network or an interpolation
    reaches it. dl4ds treats it like a NaN cell: left out of the loss and the
    scores, filled with the training mean as an input, NaN in the output
    over it. In-memory data is checked at once; lazy (dask) data chunk by
    chunk as it is read, with a warning for the first chunk that holds any.
    """
    if not np.issubdtype(field.dtype, np.floating):
        return field
    what = f"the {role} variable {field.name!r}" if field.name is not None else f"the {role}"
    if field.chunks is None:
        count = int(np.isinf(field.values).sum())
        if count == 0:
            return field
        logger.warning(
            "%s holds %d values of +/-Inf (of %d); they are treated as missing (NaN), like its NaN cells. Mask or "
            "fix them in the data to silence this warning",
            what,
            count,
            field.size,
        )
        return field.where(~np.isinf(field))
    warned: list[bool] = []
    data = field.data.map_blocks(_without_infinite, what=what, warned=warned, dtype=field.dtype)
    return field.copy(data=data)


def _without_infinite(block: np.ndarray, *, what: str, warned: list[bool]) -> np.ndarray:
    """One chunk of :func:`replace_infinite`: warns once per field (``warned`` remembers it)."""
    infinite = np.isinf(block)
    if not infinite.any():
        return block
    if not warned:
        warned.append(True)
        logger.warning(
            "%s holds values of +/-Inf (%d in the first chunk read that has any); every one is treated as missing "
            "(NaN), like its NaN cells. Mask or fix them in the data to silence this warning",
            what,
            int(infinite.sum()),
        )
    return np.where(infinite, np.nan, block).astype(block.dtype, copy=False)


def variable_attributes(
    obj: xr.Dataset | xr.DataArray, names: Sequence[str], *, role: str
) -> dict[str, dict[str, str]]:
    """The CF attributes (units, standard_name, long_name) of each variable (or level: ``ta@850hPa``), as strings."""
    ds = select_variables(obj, names, role=role)
    return {name: {key: str(ds[name].attrs[key]) for key in CF_ATTRIBUTES if key in ds[name].attrs} for name in names}


def block_average(field: xr.DataArray, scale: int) -> xr.DataArray:
    """Average non-overlapping ``scale`` x ``scale`` blocks, ignoring NaNs.

    ``field`` must have lat and lon sizes divisible by ``scale``. A block whose
    cells are all NaN becomes NaN. The new coordinates are the block centres.
    """
    coarse = field.coarsen(lat=scale, lon=scale, boundary="exact").mean()  # NaN-skipping by default for floats
    return coarse.astype(field.dtype)


def crop_to_multiple(field: xr.DataArray, scale: int) -> tuple[xr.DataArray, str | None]:
    """Crop lat and lon to the largest multiple of ``scale``, centred.

    Returns the cropped field and a report of what was dropped (None if nothing).
    """
    slices = {}
    dropped = []
    for dim in ("lat", "lon"):
        size = field.sizes[dim]
        excess = size % scale
        start = excess // 2
        slices[dim] = slice(start, size - (excess - start))
        if excess:
            values = field[dim].values
            lost = np.concatenate([values[:start], values[size - (excess - start) :]])
            dropped.append(f"{dim} {', '.join(f'{v:g}' for v in lost)}")
    if not dropped:
        return field, None
    cropped = field.isel(slices)
    report = (
        f"cropped the target grid from {field.sizes['lat']} x {field.sizes['lon']} to "
        f"{cropped.sizes['lat']} x {cropped.sizes['lon']} cells to make it divisible by scale {scale} "
        f"(dropped {'; '.join(dropped)})"
    )
    return cropped, report
