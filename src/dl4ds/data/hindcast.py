"""Hindcast alignment and anomalies: a seasonal hindcast ensemble matched to observations, as forecasters verify it.

Layout
    A hindcast is one variable with an initialisation (start date) dimension
    (any of :data:`~dl4ds.data.forecast_dims.INIT_DIMS`, e.g. ``init`` or
    ``forecast_reference_time``; or ``time`` when a lead dimension and a
    ``valid_time`` coordinate are also there, as cfgrib writes GRIB), an
    ensemble dimension (:data:`~dl4ds.data.forecast_dims.MEMBER_DIMS`, e.g.
    ``member``, ``realization``, ``number``; a hindcast without one is a
    one-member ensemble), a lead dimension
    (:data:`~dl4ds.data.forecast_dims.LEAD_DIMS`, e.g. ``forecastMonth``,
    ``lead_time``, ``step``) and latitude and longitude under any of the names
    :func:`~dl4ds.data.grid.standardize` knows. :class:`Hindcast` brings it to
    dims ``(init, member, lead, lat, lon)``.

Valid times
    A ``valid_time`` coordinate (or a ``time`` coordinate that is not a
    dimension) over (init, lead), or over one of them, gives the time each
    forecast verifies at. Without one it is computed: ``init + lead`` for a
    timedelta lead (``lead_time``, ``step``), and the start of the month
    ``forecastMonth - 1`` months after the start date's month for
    ``forecastMonth`` (the C3S convention: 1 is the month of the start date).

The matching rule (:func:`match_observations`)
    The forecast's period is a calendar **month** (``forecastMonth``, or valid
    times a month apart along the lead), a **day** (valid times one day
    apart) or, when the lead cannot tell (a single timedelta lead), the
    instant itself. Observations are classed by their shortest time step:
    monthly (28 days or more, as monthly means of some months only are
    spaced), daily (1 day) or finer.

    * Observations of the forecast's period (monthly means for a monthly
      forecast, daily for daily) are matched by period: the calendar month (or
      day) containing the valid time, whatever day or hour the observation is
      stamped with (the 1st, the 15th, the end of the month).
    * Finer observations (daily or hourly data for a monthly forecast,
      hourly for a daily one) are refused unless ``aggregation="mean"``: then
      each forecast period is verified against the mean of all observations
      stamped inside it, and a period with missing steps is left out (NaN).
    * Coarser observations than the forecast (monthly for a daily forecast)
      are refused: they cannot be disaggregated.
    * A forecast whose period the lead cannot tell is matched to
      observations stamped at exactly its valid times.

Anomalies (:func:`climatology`)
    The climatology is computed per lead time and calendar month of the
    start date, over the start years: from the hindcast itself (the mean of
    its ensemble means) for the forecast, and from the observations of the
    same starts for the observations. With ``leave_one_out`` each start
    year's anomaly is taken from the climatology of the other years, as in
    cross-validated operational verification.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import pandas as pd
import xarray as xr

from dl4ds.data import units
from dl4ds.data.forecast_dims import INIT_DIMS, LEAD_DIMS, MEMBER_DIMS
from dl4ds.data.grid import Grid, standardize, truth_on_prediction_grid
from dl4ds.errors import DataError

logger = logging.getLogger(__name__)

__all__ = [
    "MIN_YEARS",
    "Aggregation",
    "Hindcast",
    "StartCalendar",
    "climatology",
    "match_observations",
    "to_units_of",
]

MIN_YEARS = 3
"""The fewest start years that make a climatology (and a bootstrap over years) meaningful."""

Aggregation = Literal["mean"] | None
"""How observations finer than the forecast's period are brought to it: ``"mean"``, or None to refuse them."""

Period = Literal["month", "day"] | None

_VALID_TIME_NAMES = ("valid_time", "time")
_DAY = np.timedelta64(1, "D")


@dataclass(frozen=True)
class Hindcast:
    """A hindcast ensemble of one variable in the dl4ds layout.

    Attributes:
        data: dims (init, member, lead, lat, lon), latitude ascending, lazy if
            the input was; coordinates init, member and lead keep the user's values.
        valid_time: (init, lead) datetime64[ns], the time each forecast verifies at.
        period: the forecast's period, ``"month"`` or ``"day"``, or None when
            the lead cannot tell (see the module docstring).
        names: the user's names of the init, member and lead dims (member: None without one).
    """

    data: xr.DataArray
    valid_time: np.ndarray
    period: Period
    names: dict[str, str | None]

    @classmethod
    def of(cls, field: xr.DataArray | xr.Dataset, *, variable: str | None = None, role: str = "hindcast") -> Hindcast:
        """The hindcast ``field`` (a DataArray, or a Dataset with ``variable`` or a single variable).

        Raises:
            DataError: no init or lead dimension (naming the dims found and the
                names looked for), several ensemble dimensions, valid times that
                cannot be found or computed, or no regular latitude-longitude grid.
        """
        field = _one_variable(field, variable, role)
        dims = [str(dim) for dim in field.dims]
        lead = next((name for name in LEAD_DIMS if name in dims), None)
        init = next((name for name in INIT_DIMS if name in dims), None)
        if init is None and lead is not None and "time" in dims and "valid_time" in field.coords:
            init = "time"  # cfgrib: time is the start date, valid_time the verifying time
        missing = [kind for kind, name in (("init (start date)", init), ("lead time", lead)) if name is None]
        if missing:
            what = "neither an init (start date) nor a lead time" if len(missing) == 2 else f"no {missing[0]}"
            raise DataError(
                f"the {role} has {what} dimension (dims {tuple(dims)}); a hindcast needs both. Name them as one of "
                f"{', '.join(INIT_DIMS)} (starts) and {', '.join(LEAD_DIMS)} (leads), "
                "e.g. ds.rename({'start': 'init'}) or ds.expand_dims('init') for a single start."
            )
        members = [name for name in MEMBER_DIMS if name in dims]
        if len(members) > 1:
            raise DataError(
                f"the {role} has several ensemble dimensions {members}; stack them into one, "
                f"e.g. ds.stack(member={members})."
            )
        assert init is not None and lead is not None  # checked above
        member = members[0] if members else None
        valid = _valid_times(field, init, lead, role)
        coords_to_drop = [
            name for name in _VALID_TIME_NAMES if name in field.coords and name not in field.dims and name != init
        ]
        field = field.drop_vars(coords_to_drop)
        renames = {init: "init", lead: "lead"} | ({member: "member"} if member else {})
        field = field.rename({old: new for old, new in renames.items() if old != new})
        if member is None:
            field = field.expand_dims(member=[0])
        field = standardize(field, require_time=False, role=role)
        extra = [dim for dim in field.dims if dim not in ("init", "member", "lead", "lat", "lon")]
        if extra:
            raise DataError(
                f"the {role} has dims {extra} besides init, member, lead, latitude and longitude; select one value "
                f"of each, e.g. ds.isel({extra[0]}=0)."
            )
        field = field.transpose("init", "member", "lead", "lat", "lon")
        return cls(field, valid, _period(valid, lead), {"init": init, "member": member, "lead": lead})

    @property
    def starts(self) -> StartCalendar:
        """The calendar month and year of each start date."""
        return StartCalendar.of(self.data["init"].values, self.valid_time)

    @property
    def grid(self) -> Grid:
        return Grid.of(self.data)

    def check_like(self, other: Hindcast, name: str) -> None:
        """Raise :class:`DataError` unless ``other`` (the forecast ``name``) has this grid, members, starts and leads."""
        if not self.grid.equals(other.grid):
            raise DataError(
                f"the reference forecast {name!r} is on another grid ({other.grid.describe()}) than the hindcast "
                f"({self.grid.describe()}); interpolate it onto the hindcast's grid first "
                "(e.g. dl4ds.baselines.interpolate_to_fine, or xarray's interp_like)."
            )
        for dim in ("member", "init", "lead"):
            mine, theirs = self.data[dim].values, other.data[dim].values
            if mine.shape != theirs.shape or not np.array_equal(mine, theirs):
                raise DataError(
                    f"the reference forecast {name!r} has other {dim} values than the hindcast ({_listed(theirs)} "
                    f"against {_listed(mine)}); scores of ensembles of different sizes or starts do not compare. "
                    f"Select the same ones in both, e.g. ds.sel({self.names[dim] or dim}=...)."
                )


@dataclass(frozen=True)
class StartCalendar:
    """The start dates of a hindcast as climatology groups: calendar month and year of each, shape (init,)."""

    months: np.ndarray
    years: np.ndarray

    @classmethod
    def of(cls, init: np.ndarray, valid_time: np.ndarray) -> StartCalendar:
        """From the init coordinate (datetime64); without dates, from the first valid time of each start."""
        times = init if np.issubdtype(np.asarray(init).dtype, np.datetime64) else valid_time[:, 0]
        index = pd.DatetimeIndex(times)
        return cls(np.asarray(index.month), np.asarray(index.year))

    def check(self, role: str = "hindcast") -> None:
        """Raise :class:`DataError` if a start month has one year twice, or fewer than :data:`MIN_YEARS` years."""
        for month in np.unique(self.months):
            years, counts = np.unique(self.years[self.months == month], return_counts=True)
            if (counts > 1).any():
                raise DataError(
                    f"the {role} has several starts in {pd.Timestamp(2000, int(month), 1):%B} of "
                    f"{', '.join(map(str, years[counts > 1]))}; the climatology and the bootstrap count each start "
                    "year once. Keep one start per month and year, e.g. ds.drop_duplicates('forecast_reference_time')."
                )
            if years.size < MIN_YEARS:
                raise DataError(
                    f"the {role} has {years.size} start year(s) ({', '.join(map(str, years))}) for starts in "
                    f"{pd.Timestamp(2000, int(month), 1):%B}; a climatology (and a bootstrap over years) needs at "
                    f"least {MIN_YEARS}. Give a hindcast with more start years."
                )


def climatology(values: np.ndarray, starts: StartCalendar, *, leave_one_out: bool) -> np.ndarray:
    """The climatology each start's anomaly is taken from, shape of ``values`` (init, lead, ...).

    The mean over the starts of the same calendar month, per lead and point,
    skipping NaN; with ``leave_one_out`` over the other years only. NaN where
    no value is left. ``values`` is float (init first).
    """
    valid = np.isfinite(values)
    filled = np.where(valid, values, 0.0)
    result = np.full(values.shape, np.nan)
    for month in np.unique(starts.months):
        group = starts.months == month
        total, count = filled[group].sum(axis=0), valid[group].sum(axis=0)
        if not leave_one_out:
            with np.errstate(invalid="ignore", divide="ignore"):
                result[group] = total / np.where(count > 0, count, np.nan)
            continue
        for year in np.unique(starts.years[group]):
            own = group & (starts.years == year)
            others = count - valid[own].sum(axis=0)
            with np.errstate(invalid="ignore", divide="ignore"):
                result[own] = (total - filled[own].sum(axis=0)) / np.where(others > 0, others, np.nan)
    return result


def match_observations(
    hindcast: Hindcast,
    observations: xr.DataArray | xr.Dataset,
    *,
    aggregation: Aggregation = None,
    variable: str | None = None,
    own_grid: bool = False,
) -> xr.DataArray:
    """The observations at each forecast's valid time, dims (init, lead, lat, lon) on the hindcast's grid, in memory.

    The rule is the module docstring's. The hindcast is expected in the
    observations' units (see :func:`to_units_of`). Pairs without an
    observation are NaN (logged); the observation grid must contain the
    hindcast's grid as a window, unless ``own_grid``: then the observations
    stay on their own grid (the fine targets of a coarse hindcast in training).

    Raises:
        DataError: observations without time, finer than the forecast period
            without ``aggregation``, coarser than it, covering none of the
            valid times, several observations in one period, or on a grid the
            hindcast grid is not part of.
    """
    if aggregation not in (None, "mean"):
        raise DataError(f"unknown aggregation {aggregation!r}; use 'mean' or None")
    name = hindcast.data.name
    observed = standardize(_observed_variable(observations, variable or (str(name) if name else None)))
    observed = observed.transpose("time", "lat", "lon")
    if not np.issubdtype(observed["time"].dtype, np.datetime64):
        raise DataError(
            f"the observations' times are {observed['time'].dtype} values, not dates of the standard calendar; "
            "decode them (xr.decode_cf) or convert the calendar (ds.convert_calendar('standard'))."
        )
    if not own_grid:
        observed = truth_on_prediction_grid(hindcast.data.isel(init=0, member=0, lead=0), observed)
    times = observed["time"].values
    step = _shortest_step(times)
    wanted = hindcast.period
    kind = _kind(step)
    if wanted == "day" and kind == "month":
        raise DataError(
            f"the observations are monthly ({_describe_step(step)} apart) but the forecast's period is a day; "
            "monthly observations cannot verify a daily forecast. Give daily observations."
        )
    finer = (wanted == "month" and kind in ("day", "sub-daily")) or (wanted == "day" and kind == "sub-daily")
    if finer and aggregation is None:
        kind_name = "daily" if kind == "day" else kind
        raise DataError(
            f"the observations are {kind_name} ({_describe_step(step)} apart), finer than the forecast's period (a "
            f"{wanted}): a mixture of {wanted}ly forecasts and {kind_name} observations needs an aggregation rule. Pass "
            f"aggregation='mean' (CLI: --aggregation mean) to verify each {wanted} against the mean of its "
            "observations, or aggregate them first (e.g. ds.resample(time='MS').mean() for months)."
        )
    if finer:
        assert wanted is not None and step is not None  # finer observations have a step and a period to fill
        observed = _aggregated(observed, wanted, step)
    keys = _keys(observed["time"].values, wanted)
    if np.unique(keys).size != keys.size:
        repeated = pd.Index(keys)[pd.Index(keys).duplicated()][0]
        raise DataError(
            f"several observations fall in the forecast period {repeated} (a {wanted or 'valid time'}); give one "
            "observation per period, or aggregate them first (ds.resample(time='MS').mean() for months)."
        )
    position = pd.Index(keys).get_indexer(_keys(hindcast.valid_time.ravel(), wanted))
    if (position < 0).all():
        raise DataError(
            f"the observations ({_span(times)}) cover none of the hindcast's valid times ({_span(hindcast.valid_time)}); "
            "give observations of the verifying period."
        )
    if (position < 0).any():
        logger.warning(
            "%d of the %d forecasts (start, lead) have no observation and are left out of the scores",
            int((position < 0).sum()),
            position.size,
        )
    values = observed.isel(time=np.maximum(position, 0)).values.astype(np.float32)
    values[position < 0] = np.nan
    shape = hindcast.valid_time.shape + values.shape[1:]
    data = hindcast.data
    return xr.DataArray(
        values.reshape(shape),
        dims=("init", "lead", "lat", "lon"),
        coords={"init": data["init"], "lead": data["lead"], "lat": observed["lat"], "lon": observed["lon"]},
        name=observed.name,
        attrs=observed.attrs,
    )


def to_units_of(hindcast: Hindcast, observations: xr.DataArray | xr.Dataset, name: str) -> Hindcast:
    """``hindcast`` converted to the units of the observations (see :mod:`dl4ds.data.units`)."""
    variable = str(hindcast.data.name) if hindcast.data.name is not None else None
    observed = _observed_variable(observations, variable)
    converted, _ = units.conform(
        hindcast.data,
        units.units_of(observed),
        what=f"the forecast {name!r}",
        reference="the observations",
        names=(variable or "NAME", str(observed.name or "NAME")),
    )
    return replace(hindcast, data=converted)


# --- helpers --------------------------------------------------------------------------------------------------------


def _observed_variable(observations: xr.DataArray | xr.Dataset, name: str | None) -> xr.DataArray:
    """The observed variable named like the forecast's, or the only gridded one when none is (e.g. tas against t2m)."""
    if isinstance(observations, xr.Dataset) and name is not None and name not in observations.data_vars:
        return _one_variable(observations, None, "observations")
    return _one_variable(observations, name, "observations")


def _one_variable(data: xr.DataArray | xr.Dataset, variable: str | None, role: str) -> xr.DataArray:
    if isinstance(data, xr.DataArray):
        return data
    names = [
        str(name)
        for name, values in data.data_vars.items()
        if values.ndim >= 2 and np.issubdtype(values.dtype, np.number) and not str(name).endswith("_bnds")
    ]
    if variable is not None:
        if variable not in data.data_vars:
            raise DataError(f"the {role} has no variable {variable!r}; it has {sorted(names)}. Choose one.")
        return data[variable]
    if len(names) != 1:
        raise DataError(
            f"the {role} has {len(names)} gridded variables {sorted(names)}; choose one (CLI: --variable NAME)."
        )
    return data[names[0]]


def _valid_times(field: xr.DataArray, init: str, lead: str, role: str) -> np.ndarray:
    """(init, lead) datetime64[ns] valid times: from a coordinate, or computed from init and lead."""
    for name in _VALID_TIME_NAMES:
        if name in field.coords and name not in field.dims:
            coordinate = field[name]
            if not set(coordinate.dims) <= {init, lead}:
                raise DataError(
                    f"the {role}'s {name!r} coordinate has dims {coordinate.dims}; valid times vary with the start "
                    f"({init!r}) and lead ({lead!r}) only."
                )
            if not np.issubdtype(coordinate.dtype, np.datetime64):
                raise DataError(f"the {role}'s {name!r} coordinate holds {coordinate.dtype} values, not dates.")
            return coordinate.broadcast_like(field[init]).broadcast_like(field[lead]).transpose(init, lead).values
    starts, leads = field[init].values, field[lead].values
    if not np.issubdtype(starts.dtype, np.datetime64):
        raise DataError(
            f"the {role}'s start dates {init!r} are {starts.dtype} values and it has no valid_time coordinate; "
            "give dates (datetime64) or a valid_time coordinate over (init, lead)."
        )
    if np.issubdtype(leads.dtype, np.timedelta64):
        return (starts[:, None] + leads[None, :]).astype("datetime64[ns]")
    if lead == "forecastMonth" and np.issubdtype(leads.dtype, np.integer):
        months = starts.astype("datetime64[M]")[:, None] + (leads[None, :] - 1).astype("timedelta64[M]")
        return months.astype("datetime64[ns]")
    raise DataError(
        f"the {role}'s lead {lead!r} holds {leads.dtype} values, from which dl4ds cannot tell the valid times; give a "
        "valid_time coordinate over (init, lead), timedelta leads, or forecastMonth (1 = the start month)."
    )


def _period(valid: np.ndarray, lead: str) -> Period:
    """The forecast's period from the valid times (init, lead) and the lead's name."""
    if lead == "forecastMonth":
        return "month"
    if valid.shape[1] < 2:
        return None
    days = np.diff(valid, axis=1) / _DAY
    if np.all((days >= 28) & (days <= 31)):
        return "month"
    if np.allclose(days, 1.0):
        return "day"
    return None


def _shortest_step(times: np.ndarray) -> np.timedelta64 | None:
    steps = np.diff(np.unique(times))
    return steps.min() if steps.size else None


def _kind(step: np.timedelta64 | None) -> Literal["month", "day", "sub-daily"] | None:
    """The observations' shortest step: ``"month"`` (28 days or more: monthly means, possibly with gaps between the
    months observed), ``"day"``, ``"sub-daily"``, or None (a single time, or steps of 2-27 days)."""
    if step is None:
        return None
    days = step / _DAY
    if days >= 28:
        return "month"
    if days == 1:
        return "day"
    return "sub-daily" if days < 1 else None


def _describe_step(step: np.timedelta64 | None) -> str:
    if step is None:
        return "irregularly"
    hours = step / np.timedelta64(1, "h")
    return f"{hours / 24:g} days" if hours >= 24 else f"{hours:g} hours"


def _keys(times: np.ndarray, period: Period) -> np.ndarray:
    """The period each time falls in: its calendar month or day, or the time itself."""
    times = np.asarray(times).astype("datetime64[ns]")
    if period == "month":
        return times.astype("datetime64[M]")
    if period == "day":
        return times.astype("datetime64[D]")
    return times


def _aggregated(observed: xr.DataArray, period: Literal["month", "day"], step: np.timedelta64) -> xr.DataArray:
    """The mean of the observations in each period; periods with missing steps are dropped (logged)."""
    labels = xr.DataArray(_keys(observed["time"].values, period).astype("datetime64[ns]"), dims="time", name="period")
    grouped = observed.groupby(labels)
    means, counts = grouped.mean(), grouped.count("time").isel(lat=0, lon=0)
    starts = means["period"].values.astype("datetime64[ns]")
    if period == "month":
        ends = (starts.astype("datetime64[M]") + 1).astype("datetime64[ns]")
    else:
        ends = starts + _DAY
    expected = np.round((ends - starts) / step).astype(int)
    complete = counts.values >= expected
    if not complete.all():
        logger.warning(
            "%d of the %d %ss of observations are incomplete and left out",
            int((~complete).sum()),
            complete.size,
            period,
        )
    means = means.isel(period=np.flatnonzero(complete)).rename(period="time")
    return means.assign_coords(time=starts[complete]).transpose("time", "lat", "lon")


def _span(times: np.ndarray) -> str:
    values = np.asarray(times).ravel()
    if values.size == 0:
        return "no times"
    return f"{np.datetime_as_string(values.min(), unit='D')} to {np.datetime_as_string(values.max(), unit='D')}"


def _listed(values: np.ndarray) -> str:
    items = [str(v) for v in np.asarray(values).ravel()]
    return "[" + ", ".join(items[:6]) + (", ..." if len(items) > 6 else "") + "]"
