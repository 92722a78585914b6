"""Deterministic verification scores of a downscaled field against the truth.

Both fields are brought to the dl4ds convention with
:func:`dl4ds.data.grid.standardize` first, so coordinate names
(``lat``/``latitude``, ...) and latitude order do not matter. Points where
either field is missing (NaN) are left out, so masked fields (e.g. land-only
data) can be scored directly. All computations are vectorised xarray
operations, so dask-backed (lazy) inputs are scored chunk by chunk.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import xarray as xr

from dl4ds.data.grid import Grid, align_longitudes, standardize
from dl4ds.errors import ConfigError, DataError

__all__ = ["compute_metrics", "rmse_map"]

WeightOption = Literal["latitude"] | None

# Spellings of the same unit that should not be reported as a units mismatch.
_UNIT_ALIASES = {
    "k": "K",
    "kelvin": "K",
    "degk": "K",
    "deg_k": "K",
    "degc": "degC",
    "deg_c": "degC",
    "°c": "degC",
    "celsius": "degC",
    "degree_celsius": "degC",
    "degrees_celsius": "degC",
}


def compute_metrics(
    prediction: xr.DataArray,
    truth: xr.DataArray,
    *,
    weights: WeightOption = "latitude",
) -> dict[str, float]:
    """RMSE, MAE, bias and Pearson correlation of ``prediction`` against ``truth``.

    Returns ``{"rmse", "mae", "bias", "correlation"}`` as floats; the first
    three are in the data's units, ``bias`` is the mean of
    ``prediction - truth``. Scores are pooled over all space-time points
    where both fields are valid (not NaN).

    ``weights="latitude"`` weights each point by cos(latitude), i.e. by the
    area of its grid cell, for means, variances and covariances alike;
    ``weights=None`` weights all points equally.

    The fields must be on the same latitude-longitude grid and have the same
    dimensions. If both have a ``time`` dimension, only their common times are
    scored. The correlation is NaN if either field is constant over the
    valid points.

    Raises :class:`DataError` for different grids or dimensions, no common
    time, or no point where both fields are valid.
    """
    pred, true = _prepare(prediction, truth)
    weight = _weights(pred, weights)

    valid = pred.notnull() & true.notnull()
    w = weight.where(valid, 0.0)  # broadcast to the full shape; 0 where either is NaN
    p = pred.where(valid, 0.0)
    t = true.where(valid, 0.0)
    error = p - t

    first = xr.Dataset(
        {
            "w": w.sum(),
            "n": valid.sum(),
            "p": (w * p).sum(),
            "t": (w * t).sum(),
            "e": (w * error).sum(),
            "ae": (w * abs(error)).sum(),
            "se": (w * error**2).sum(),
        }
    ).compute()
    total = float(first["w"])
    if int(first["n"]) == 0 or not total > 0:
        raise DataError(
            "prediction and truth have no point where both are valid (every point is NaN in at least "
            "one of them); check that the fields overlap in space and time and are not fully masked."
        )
    mean_p = float(first["p"]) / total
    mean_t = float(first["t"]) / total

    # Second pass on centred values: exact even for large offsets (temperatures in K).
    dp = (p - mean_p).where(valid, 0.0)
    dt = (t - mean_t).where(valid, 0.0)
    second = xr.Dataset({"cov": (w * dp * dt).sum(), "vp": (w * dp**2).sum(), "vt": (w * dt**2).sum()}).compute()
    variance = float(second["vp"]) * float(second["vt"])
    correlation = float(second["cov"]) / np.sqrt(variance) if variance > 0 else float("nan")
    if np.isfinite(correlation):
        correlation = float(np.clip(correlation, -1.0, 1.0))

    return {
        "rmse": float(np.sqrt(max(float(first["se"]) / total, 0.0))),
        "mae": float(first["ae"]) / total,
        "bias": float(first["e"]) / total,
        "correlation": correlation,
    }


def rmse_map(prediction: xr.DataArray, truth: xr.DataArray) -> xr.DataArray:
    """Root mean square error over time at each grid point, as a (lat, lon) DataArray.

    Missing values are skipped; a point with no time where both fields are
    valid is NaN. Every dimension other than ``lat`` and ``lon`` (time,
    ensemble member, ...) is averaged over. Latitude is ascending in the
    result; ``attrs`` hold ``units`` (those of the data) and ``long_name``.

    Raises :class:`DataError` under the same conditions as :func:`compute_metrics`.
    """
    pred, true = _prepare(prediction, truth)
    valid = pred.notnull() & true.notnull()
    squared = ((pred - true) ** 2).where(valid)
    others = [dim for dim in squared.dims if dim not in ("lat", "lon")]
    if others:
        count = valid.sum(others)
        result = np.sqrt(squared.sum(others, skipna=True) / count.where(count > 0))
    else:
        result = np.sqrt(squared)
    result = result.transpose("lat", "lon")
    result = result.drop_vars([c for c in result.coords if c not in ("lat", "lon")])
    result.name = "rmse"
    variable = truth.attrs.get("long_name") or truth.name or prediction.name
    units = _units(truth) or _units(prediction)
    result.attrs = {"long_name": f"RMSE of {variable}" if variable else "RMSE"}
    if units:
        result.attrs["units"] = units
    return result


def _prepare(prediction: xr.DataArray, truth: xr.DataArray) -> tuple[xr.DataArray, xr.DataArray]:
    """Standardized float64 copies of both fields on identical coordinates and common times."""
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

    if set(pred.dims) != set(true.dims):
        raise DataError(
            f"prediction has dims {tuple(pred.dims)} but truth has dims {tuple(true.dims)} "
            "(after renaming to time/lat/lon); select or add dimensions so both match, e.g. "
            "truth.sel(time=prediction.time) or prediction.isel(time=0)."
        )
    true = true.transpose(*pred.dims)

    units_p, units_t = _units(pred), _units(true)
    if units_p and units_t and _normalise_units(units_p) != _normalise_units(units_t):
        raise DataError(
            f"prediction is in {units_p!r} but truth is in {units_t!r}; convert one to the other's units first."
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
    return pred.astype(np.float64), true.astype(np.float64)


def _weights(field: xr.DataArray, weights: WeightOption) -> xr.DataArray:
    if weights is None:
        return xr.ones_like(field["lat"], dtype=np.float64)
    if weights == "latitude":
        return np.cos(np.deg2rad(field["lat"].astype(np.float64))).clip(min=0.0)
    raise ConfigError(f"unknown weights {weights!r}; use 'latitude' (area weighting) or None (unweighted).")


def _units(obj: xr.DataArray) -> str | None:
    units = obj.attrs.get("units")
    return str(units) if units not in (None, "") else None


def _normalise_units(units: str) -> str:
    key = units.strip().lower().replace(" ", "_")
    return _UNIT_ALIASES.get(key, units.strip())


def _time_span(obj: xr.DataArray) -> str:
    for name in ("time", "valid_time"):
        if name in obj.coords and obj[name].size:
            values = np.atleast_1d(obj[name].values)
            return f"{values.min()} to {values.max()}" if values.size > 1 else str(values[0])
    return "no times"
