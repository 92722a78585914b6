"""Wet-day scores of precipitation: the frequency of wet days and the 95th and 99th percentiles of wet-day amounts.

Precipitation is verified like any field (RMSE, quantile biases...) and, for
the variables :class:`PrecipitationOptions` selects, also on daily values in
mm per day (see :mod:`dl4ds.data.precipitation` for the units understood):

- a **wet day** at a grid point has at least ``wet_day_threshold`` mm
  (1 mm by default, the ETCCDI convention);
- ``wet_day_frequency_bias``: the fraction of wet days in the prediction
  minus that in the truth, at each grid point;
- ``p95_wet_day_bias`` and ``p99_wet_day_bias``: the 95th and 99th
  percentiles of the wet-day amounts (linear interpolation between order
  statistics) of the prediction minus those of the truth, in mm day-1, at
  each grid point with at least :data:`MIN_WET_DAYS` wet days in both.

Sub-daily data is aggregated to daily values first (rates averaged, amounts
summed, complete days only). The members of an ensemble are pooled: the
scores describe the climate of its members, not of its mean, which would be
too wet on dry days. Overall scores are the area-weighted means of the
absolute values of these maps, like the other quantile biases.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping

import numpy as np
import xarray as xr
from pydantic import Field

from dl4ds.data.precipitation import PrecipitationUnits, is_precipitation, precipitation_units
from dl4ds.utils.options import Options

logger = logging.getLogger(__name__)

WET_DAY_METRICS = ("wet_day_frequency_bias", "p95_wet_day_bias", "p99_wet_day_bias")
MIN_WET_DAYS = 5
"""Wet days a grid point needs in both fields for its wet-day percentiles to be scored."""

_DAY = np.timedelta64(1, "D")


class PrecipitationOptions(Options):
    """Which variables get wet-day scores, and from how much precipitation a day is wet: ``evaluation.precipitation``."""

    wet_day_threshold: float = Field(
        default=1.0,
        gt=0,
        allow_inf_nan=False,
        description="daily precipitation (mm/day) from which a day counts as wet in the wet-day scores",
    )
    variables: list[str] | None = Field(
        default=None,
        description="variables given wet-day scores; none takes the precipitation-like ones (by standard_name, "
        "else by name such as pr or tp)",
    )

    def applies(self, name: str, attrs: Mapping[Hashable, object]) -> bool:
        """Whether the variable ``name`` with attributes ``attrs`` gets wet-day scores."""
        if self.variables is not None:
            return name in self.variables
        return is_precipitation(name, {str(key): value for key, value in attrs.items()})

    def maps(self, prediction: xr.DataArray, truth: xr.DataArray, units: str) -> dict[str, np.ndarray] | None:
        """The (lat, lon) maps of :data:`WET_DAY_METRICS`, or None (with a warning saying why) when they cannot be had.

        Args:
            prediction: aligned with ``truth`` (see
                :func:`~dl4ds.evaluation.alignment.align`), optionally with an
                ensemble dimension right before ``lat``.
            truth: dims (..., time, ..., lat, lon), ``time`` of dates.
            units: the fields' units, e.g. ``kg m-2 s-1``.
        """
        name = str(truth.name)
        conversion = precipitation_units(units)
        if conversion is None:
            logger.warning(
                "no wet-day scores for %s: its units %r are not a precipitation rate or amount dl4ds converts to "
                "mm/day (e.g. kg m-2 s-1, mm/day, mm, m); set the units attribute of the data",
                name,
                units,
            )
            return None
        daily_truth, reason = daily_millimetres(truth, conversion)
        daily_prediction, _ = daily_millimetres(prediction, conversion)
        if daily_truth is None or daily_prediction is None:
            logger.warning("no wet-day scores for %s: %s", name, reason)
            return None
        member = next((dim for dim in daily_prediction.dims if dim not in daily_truth.dims), None)
        if member is None:
            daily_prediction = daily_prediction.expand_dims("member", axis=-3)
        samples = [dim for dim in daily_truth.dims if dim not in ("lat", "lon")]
        observed = daily_truth.transpose(*samples, "lat", "lon").values
        predicted = daily_prediction.transpose(*samples, ..., "lat", "lon").values
        ny, nx = observed.shape[-2:]
        return wet_day_maps(
            predicted.reshape(-1, predicted.shape[-3], ny, nx), observed.reshape(-1, ny, nx), self.wet_day_threshold
        )


def daily_millimetres(field: xr.DataArray, conversion: PrecipitationUnits) -> tuple[xr.DataArray | None, str | None]:
    """``field`` as daily precipitation in mm/day along ``time``, or None and why not.

    Daily data is converted as it is; sub-daily data whose step divides a day
    is averaged (rates) or summed (amounts) over each complete day. Data
    without a time dimension of dates, or with steps longer than a day, has
    no daily values.
    """
    if "time" not in field.dims or not np.issubdtype(field["time"].dtype, np.datetime64):
        return None, "wet days need a time dimension of dates"
    if field.sizes["time"] < 2:
        return None, "wet days need at least 2 time steps"
    step = np.median(np.diff(field["time"].values))
    if step == _DAY:
        return field * conversion.factor, None
    if step > _DAY or _DAY % step != np.timedelta64(0, "ns"):
        return None, f"the time step ({step.astype('timedelta64[h]')}) is not a day or a fraction of one"
    per_day = int(_DAY // step)
    days = field.resample(time="1D")
    totals = days.sum(skipna=False) if conversion.amount else days.mean(skipna=False)
    complete = field["time"].resample(time="1D").count() == per_day
    if not bool(complete.any()):
        return None, f"no day has all of its {per_day} time steps"
    return totals.sel(time=complete) * conversion.factor, None


def wet_day_maps(prediction: np.ndarray, truth: np.ndarray, threshold: float) -> dict[str, np.ndarray]:
    """The wet-day maps of daily precipitation in mm/day: prediction (N, M, Y, X) with M members, truth (N, Y, X).

    Days where the truth or any member is NaN are left out at that point.
    Returns float64 (Y, X) maps of :data:`WET_DAY_METRICS`, NaN where a
    point has no valid day (frequency) or fewer than :data:`MIN_WET_DAYS` wet
    days in either field (percentiles).
    """
    count, members, ny, nx = prediction.shape
    maps = {name: np.full((ny, nx), np.nan) for name in WET_DAY_METRICS}
    rows = max(1, 4_000_000 // max(count * members * nx, 1))
    for start in range(0, ny, rows):
        band = slice(start, min(start + rows, ny))
        predicted = prediction[:, :, band].astype(np.float64)
        observed = truth[:, band].astype(np.float64)
        valid = np.isfinite(observed) & np.isfinite(predicted).all(axis=1)
        days = valid.sum(axis=0)
        pooled = np.where(valid[:, None], predicted, np.nan).reshape(count * members, *observed.shape[1:])
        observed = np.where(valid, observed, np.nan)
        statistics = [_wet_statistics(values, threshold) for values in (pooled, observed)]
        with np.errstate(invalid="ignore"):
            maps["wet_day_frequency_bias"][band] = np.where(days > 0, statistics[0][0] - statistics[1][0], np.nan)
        for index, name in enumerate(WET_DAY_METRICS[1:], start=1):
            maps[name][band] = statistics[0][index] - statistics[1][index]
    return maps


def _wet_statistics(values: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Wet-day frequency and the 95th and 99th percentiles of wet-day amounts at each point of (n, Y, X) values."""
    valid = np.isfinite(values)
    wet = valid & (values >= threshold)
    with np.errstate(invalid="ignore", divide="ignore"):
        frequency = wet.sum(axis=0) / valid.sum(axis=0)
    amounts = np.where(wet, values, np.nan)
    enough = wet.sum(axis=0) >= MIN_WET_DAYS
    percentiles = np.full((2, *values.shape[1:]), np.nan)
    if enough.any():
        percentiles[:, enough] = np.nanquantile(amounts[:, enough], [0.95, 0.99], axis=0)
    return frequency, percentiles[0], percentiles[1]
