"""Bringing a prediction and the truth onto the same dimensions, grid, units and times.

Both fields are brought to the dl4ds convention with
:func:`dl4ds.data.grid.standardize` first, so coordinate names
(``lat``/``latitude``, ``time``/``valid_time``, ...) and latitude order do not
matter. A prediction may carry an ensemble dimension (``member``,
``number``, ``realization``) that the truth lacks.
"""

from __future__ import annotations

from typing import Literal, cast

import numpy as np
import xarray as xr

from dl4ds.data import units
from dl4ds.data.forecast_dims import MEMBER_DIMS
from dl4ds.data.grid import Grid, align_longitudes, standardize
from dl4ds.errors import ConfigError, DataError

__all__ = [
    "WeightOption",
    "align",
    "area_weights",
    "data_units",
    "member_dim",
]

WeightOption = Literal["latitude"] | None

UNITS_HINT = (
    "set the units: dl4ds evaluate --units {name}=UNITS (the prediction) or --truth-units {name}=UNITS (the truth), "
    "or dl4ds.data.with_units(ds, {{'{name}': 'UNITS'}}) in Python"
)


def member_dim(prediction: xr.DataArray, truth: xr.DataArray) -> str | None:
    """The ensemble dimension of ``prediction`` that ``truth`` does not have, if any."""
    for name in MEMBER_DIMS:
        if name in prediction.dims and name not in truth.dims:
            return name
    return None


def align(
    prediction: xr.DataArray, truth: xr.DataArray, *, members: bool = False, dtype: type = np.float64
) -> tuple[xr.DataArray, xr.DataArray]:
    """Standardized copies of both fields on identical coordinates and common times.

    With ``members=True`` the prediction may have one ensemble dimension (see
    :data:`~dl4ds.data.forecast_dims.MEMBER_DIMS`) that the truth lacks; it comes right before ``lat``.
    The truth is transposed to the prediction's dimension order, latitude is
    ascending and both are cast to ``dtype``. The prediction is converted to
    the truth's units (:mod:`dl4ds.data.units`: ``degC`` and ``K``, ``mm/day``
    and ``kg m-2 s-1``...), with a log line.

    Raises :class:`DataError` naming the fix for Datasets, non-numeric data,
    different dimensions or grids, units missing on one side or of different
    quantities, repeated times, or no common time.
    """
    for value, label in ((prediction, "prediction"), (truth, "truth")):
        if isinstance(value, xr.Dataset):
            raise DataError(
                f"{label} is a Dataset with variables {list(value.data_vars)}; pass one variable, "
                f"e.g. ds[{next(iter(value.data_vars), 'name')!r}]."
            )
        if not isinstance(value, xr.DataArray):
            raise DataError(f"{label} must be an xarray DataArray, got {type(value).__name__}.")
        if not (np.issubdtype(value.dtype, np.number) and not np.issubdtype(value.dtype, np.complexfloating)):
            raise DataError(f"{label} has non-numeric dtype {value.dtype}; scores need real-valued data.")

    pred = standardize(prediction, require_time=False)
    true = standardize(truth, require_time=False)

    ensemble = member_dim(pred, true) if members else None
    if set(pred.dims) - {ensemble} != set(true.dims):
        raise DataError(
            f"prediction has dims {tuple(pred.dims)} but truth has dims {tuple(true.dims)} "
            "(after renaming to time/lat/lon); select or add dimensions so both match, e.g. "
            "truth.sel(time=prediction.time) or prediction.isel(time=0)."
        )
    if ensemble is not None:
        pred = pred.transpose(..., ensemble, "lat", "lon")
    true = true.transpose(*[dim for dim in pred.dims if dim != ensemble])

    name = truth.name if truth.name is not None else "NAME"
    pred, _ = units.conform(
        pred,
        data_units(true),
        what=f"the prediction of {name!r}",
        reference=f"the truth of {name!r}",
        names=(name, name),
        hint=UNITS_HINT,
    )

    pred_grid = Grid.of(pred)
    true = align_longitudes(true, pred_grid.lon)
    true_grid = Grid.of(true)
    if not pred_grid.equals(true_grid):
        raise DataError(
            f"prediction and truth are on different grids: prediction {pred_grid.describe()}, "
            f"truth {true_grid.describe()}. Regrid one onto the other (e.g. truth.interp_like(prediction) "
            "or coarsen the finer one) before scoring."
        )
    # Same grid within tolerance: give truth the prediction's exact coordinates so nothing is dropped.
    true = true.assign_coords(lat=pred["lat"].values, lon=pred["lon"].values)

    if "time" in pred.dims and ("time" in pred.coords) != ("time" in true.coords):
        raise DataError(
            "only one of prediction and truth has time coordinate values; assign times to both "
            "(or to neither) so their time steps can be matched."
        )
    if "time" in pred.coords and "time" in pred.dims:
        for obj, label in ((pred, "prediction"), (true, "truth")):
            if not obj.indexes["time"].is_unique:
                raise DataError(f"{label} has repeated time values; remove duplicates before scoring.")
    try:
        pred, true = xr.align(pred, true, join="inner")
    except ValueError as error:  # e.g. unlabelled dimensions of different sizes
        raise DataError(
            f"prediction and truth cannot be aligned ({error}); give both the same size or coordinate values."
        ) from error
    if "time" in pred.dims and pred.sizes["time"] == 0:
        raise DataError(
            f"prediction and truth have no time in common (prediction {_time_span(prediction)}, "
            f"truth {_time_span(truth)}); score them over a common period."
        )
    empty = [dim for dim in pred.dims if pred.sizes[dim] == 0]
    if empty:
        raise DataError(
            f"prediction and truth have no common coordinate values along {empty}; "
            "check that they cover the same members/levels."
        )
    return pred.astype(dtype), true.astype(dtype)


def area_weights(field: xr.DataArray, weights: WeightOption) -> xr.DataArray:
    """cos(latitude) of each row of ``field`` (``weights='latitude'``) or ones (``None``), dims (lat,)."""
    if weights is None:
        return xr.ones_like(field["lat"], dtype=np.float64)
    if weights == "latitude":
        # numpy's stubs type ufuncs as returning ndarray; on a DataArray they return a DataArray (__array_ufunc__).
        return cast(xr.DataArray, np.cos(np.deg2rad(field["lat"].astype(np.float64)))).clip(min=0.0)
    raise ConfigError(f"unknown weights {weights!r}; use 'latitude' (area weighting) or None (unweighted).")


def data_units(obj: xr.DataArray) -> str | None:
    """The ``units`` attribute of ``obj``, None if absent or empty."""
    return units.units_of(obj)


def _time_span(obj: xr.DataArray) -> str:
    for name in ("time", "valid_time"):
        if name in obj.coords and obj[name].size:
            values = np.atleast_1d(obj[name].values)
            return f"{values.min()} to {values.max()}" if values.size > 1 else str(values[0])
    return "no times"
