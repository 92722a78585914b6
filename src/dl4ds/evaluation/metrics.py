"""Quick deterministic scores of a downscaled field against the truth.

The four headline scores and an RMSE map, as lazy xarray reductions: dask-backed
inputs are scored chunk by chunk without loading them. The full verification
(more metrics, per-sample scores, maps, spectra, ensembles) is
:class:`dl4ds.evaluation.verification.Verification`.

Points where either field is missing (NaN) are left out, so masked fields
(e.g. land-only data) can be scored directly; see
:func:`dl4ds.evaluation.alignment.align` for the input conventions.
"""

from __future__ import annotations

from typing import cast

import numpy as np
import xarray as xr

from dl4ds.errors import DataError
from dl4ds.evaluation.alignment import WeightOption, align, area_weights, data_units

__all__ = ["compute_metrics", "rmse_map"]


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
    pred, true = align(prediction, truth)
    weight = area_weights(pred, weights)

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
    pred, true = align(prediction, truth)
    valid = pred.notnull() & true.notnull()
    squared = ((pred - true) ** 2).where(valid)
    others = [dim for dim in squared.dims if dim not in ("lat", "lon")]
    if others:
        count = valid.sum(others)
        mean_squared = squared.sum(others, skipna=True) / count.where(count > 0)
    else:
        mean_squared = squared
    # numpy's stubs type ufuncs as returning ndarray; on a DataArray they return a DataArray (__array_ufunc__).
    result = cast(xr.DataArray, np.sqrt(mean_squared)).transpose("lat", "lon")
    result = result.drop_vars([c for c in result.coords if c not in ("lat", "lon")])
    result.name = "rmse"
    variable = truth.attrs.get("long_name") or truth.name or prediction.name
    units = data_units(truth) or data_units(prediction)
    result.attrs = {"long_name": f"RMSE of {variable}" if variable else "RMSE"}
    if units:
        result.attrs["units"] = units
    return result
