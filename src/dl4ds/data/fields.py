"""Selecting variables from user data and checking their layout.

A *field* inside dl4ds is an ``xr.DataArray`` with dims (time, variable, lat,
lon) in physical units, float32, on a standardized grid (see
:mod:`dl4ds.data.grid`).
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Sequence

import numpy as np
import xarray as xr

from dl4ds.data.grid import standardize
from dl4ds.errors import DataError

logger = logging.getLogger(__name__)

CF_ATTRIBUTES = ("units", "standard_name", "long_name")


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


def check_variables(ds: xr.Dataset, names: Sequence[Hashable], *, role: str) -> None:
    """Raise :class:`DataError` naming every variable of ``names`` missing from ``ds``."""
    missing = [name for name in names if name not in ds.data_vars]
    if missing:
        raise DataError(
            f"the {role} data has no variable {', '.join(map(repr, missing))}; it has "
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
    check_variables(ds, names, role=role)
    ds = standardize(ds[names], require_time="time" in dims)
    ds = ds.assign({name: replace_infinite(ds[name], role=role) for name in names})
    for name in names:
        var_dims = ds[name].dims
        if set(var_dims) != set(dims):
            extra = [d for d in var_dims if d not in dims]
            hint = f"select one value of {extra} first, e.g. .isel({extra[0]}=0)" if extra else f"it needs dims {dims}"
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
    """The CF attributes (units, standard_name, long_name) of each variable, as strings."""
    ds = as_dataset(obj, role=role)
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
