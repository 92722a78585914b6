"""Forecast-aware MOS: training pairs of hindcast members and the observations at their valid times.

A PerfectProg or MOS model learns from a reanalysis and is then applied to a
forecast, whose biases and drifts with lead time it never saw. :class:`HindcastMOS`
learns from the forecast system itself: every member of every start and lead
of a hindcast (dims init, member, lead, lat, lon; any of the names
:mod:`dl4ds.data.hindcast` knows) is one coarse sample, paired with the
observations of the period it verifies at (the matching rule of
:func:`~dl4ds.data.hindcast.match_observations`). So one start of 15 members
and 3 leads gives 45 samples, with 3 distinct targets.

The lead as an input
    With ``lead_input`` (the default) the lead time is an extra input
    channel, :data:`LEAD_CHANNEL`, uniform over the grid: the months after the
    start month for ``forecastMonth`` leads (1 -> 0), days for timedelta leads
    (``lead_time``, ``step``). One model then serves every lead and can learn
    how the forecast's errors grow with it. Its attributes carry the CF
    standard name ``forecast_period``, by which :func:`with_lead_input`
    recognises it at inference and makes it from the forecast's lead coordinate.

Samples and splits
    The samples are stacked along ``time``, whose values are the valid times
    (repeated: the members of a start verify at the same time), sorted; the
    coordinates ``init``, ``member`` and ``lead`` along ``time`` say where each
    sample comes from. Split them by start year with :func:`select_start_years`,
    so that no observation is seen both in training and in the test, and no
    two members of one start fall on both sides.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import xarray as xr

from dl4ds.data.fields import variable_attributes
from dl4ds.data.forecast_dims import LEAD_DIMS
from dl4ds.data.hindcast import Aggregation, Hindcast, match_observations, to_units_of
from dl4ds.data.pairing import MOS, PairedData, SourcesInput, XarrayInput, as_sources, check_target_values
from dl4ds.data.regrid import RegridMethod
from dl4ds.errors import ConfigError, DataError
from dl4ds.utils.options import check_scale

logger = logging.getLogger(__name__)

__all__ = ["LEAD_CHANNEL", "HindcastMOS", "lead_values", "select_start_years", "with_lead_input"]

LEAD_CHANNEL = "lead"
"""The name of the input channel that holds the forecast's lead time."""

LEAD_STANDARD_NAME = "forecast_period"
"""The CF standard name that marks a model's input channel as the lead time."""


def lead_values(values: np.ndarray, name: str) -> tuple[np.ndarray, str]:
    """The lead coordinate ``values`` of the lead dim ``name`` as float32 numbers, and their units.

    ``forecastMonth`` (1 = the start month) gives the months after the start
    month; timedelta leads give days.

    Raises:
        DataError: a lead whose values do not say their unit (numbers under another name than forecastMonth).
    """
    values = np.asarray(values)
    if np.issubdtype(values.dtype, np.timedelta64):
        return (values / np.timedelta64(1, "D")).astype(np.float32), "days"
    if name == "forecastMonth" and np.issubdtype(values.dtype, np.integer):
        return (values - 1).astype(np.float32), "months"
    raise DataError(
        f"the lead {name!r} holds {values.dtype} values, whose unit dl4ds cannot tell; give timedelta leads "
        "(lead_time, step) or forecastMonth (1 = the start month), or set lead_input=False (data.lead_input: false)"
    )


def with_lead_input(
    ds: xr.Dataset, input_variables: Sequence[str], attrs: Mapping[str, Mapping[str, str]] | None = None
) -> xr.Dataset:
    """``ds`` with the lead channel made from its lead dimension, when a model takes one and ``ds`` lacks it.

    A model takes one when ``input_variables`` holds :data:`LEAD_CHANNEL` with
    the standard name ``forecast_period`` in ``attrs``. The channel has the
    dims of the first other input variable (lazy if it is) and the units of
    :func:`lead_values`; the model converts them to its own.

    Raises:
        DataError: the input has no lead dimension to make it from.
    """
    if LEAD_CHANNEL not in input_variables or LEAD_CHANNEL in ds.data_vars:
        return ds
    if (attrs or {}).get(LEAD_CHANNEL, {}).get("standard_name") != LEAD_STANDARD_NAME:
        return ds  # an ordinary predictor that happens to be called "lead": the input must give it
    first = next(name for name in input_variables if name != LEAD_CHANNEL).split("@")[0]
    if first not in ds.data_vars:
        return ds  # the missing variable is reported by the caller's check of the inputs
    field = ds[first]
    lead = next((dim for dim in LEAD_DIMS if dim in field.dims), None)
    if lead is None:
        raise DataError(
            f"the model takes the forecast's lead time as an input (it was trained by hindcast MOS), but the input "
            f"{first!r} has no lead dimension (dims {tuple(map(str, field.dims))}); give the forecast with its lead "
            f"dimension, named one of {', '.join(LEAD_DIMS)}, e.g. ds.expand_dims(forecastMonth=[1])"
        )
    values, units = lead_values(field[lead].values, lead)
    channel = xr.DataArray(values, dims=(lead,), coords={lead: field[lead]}).broadcast_like(field)
    channel = channel.transpose(*field.dims)
    if field.chunks is not None:
        channel = channel.chunk(dict(zip(field.dims, field.chunks)))
    return ds.assign({LEAD_CHANNEL: channel.assign_attrs(_lead_attrs(units))})


def _lead_attrs(units: str) -> dict[str, str]:
    return {"standard_name": LEAD_STANDARD_NAME, "long_name": "forecast lead time", "units": units}


@dataclass(frozen=True)
class HindcastMOS:
    """Hindcast members paired with the observations at their valid times (forecast-aware MOS).

    Args:
        scale: the integer refinement factor; None (default) chooses it from
            the grids, as :class:`~dl4ds.data.pairing.MOS` does.
        method: how the hindcast is regridded onto the network's coarse grid
            when it is not on it (``linear``, ``nearest``, ``cubic``, ``conservative``).
        lead_input: add the lead time as an input channel (:data:`LEAD_CHANNEL`).
        aggregation: ``"mean"`` to pair a monthly hindcast with the mean of
            daily observations; None refuses observations finer than the forecast's period.
    """

    scale: int | None = None
    method: RegridMethod = "linear"
    lead_input: bool = True
    aggregation: Aggregation = None

    def __post_init__(self) -> None:
        if self.scale is not None:
            check_scale(self.scale)

    def pair(
        self,
        observations: XarrayInput,
        hindcast: XarrayInput,
        *,
        variables: Sequence[str] | None = None,
        hindcast_variables: Sequence[str] | None = None,
        static: SourcesInput | None = None,
        static_variables: Sequence[str] | None = None,
    ) -> PairedData:
        """Pair every (start, member, lead) of ``hindcast`` with ``observations`` (time, lat, lon) at its valid time.

        ``hindcast_variables[i]`` is the hindcast's counterpart of
        ``variables[i]`` (the observed targets; by default the observations'
        gridded variables, and the same names in the hindcast). The hindcast is
        converted to the observations' units. Samples whose valid time has no
        observation are left out (logged).

        Raises:
            DataError: a hindcast without init or lead dimension, observations
                covering none of the valid times, or any refusal of
                :func:`~dl4ds.data.hindcast.match_observations` and of MOS pairing.
            ConfigError: as many hindcast variables as targets are not given.
        """
        target_names = list(variables) if variables is not None else _gridded_variables(observations)
        hindcast_names = list(hindcast_variables) if hindcast_variables is not None else target_names
        if len(hindcast_names) != len(target_names):
            raise ConfigError(
                f"{len(hindcast_names)} hindcast variables {hindcast_names} for {len(target_names)} target variables "
                f"{target_names}; give one hindcast variable per target variable, in the same order"
            )
        members: list[Hindcast] = []
        observed: list[xr.DataArray] = []
        for target_name, hindcast_name in zip(target_names, hindcast_names):
            truth = _variable(observations, target_name)
            member = to_units_of(Hindcast.of(hindcast, variable=hindcast_name), truth, hindcast_name)
            if members:
                _check_same_forecasts(members[0], member, hindcast_names[0], hindcast_name)
            members.append(member)
            observed.append(
                match_observations(member, truth, aggregation=self.aggregation, variable=target_name, own_grid=True)
            )
        first = members[0]
        coarse = xr.concat([member.data for member in members], dim="variable").transpose(
            "init", "member", "lead", "variable", "lat", "lon"
        )
        fine = xr.concat(observed, dim="variable").transpose("init", "lead", "variable", "lat", "lon")
        n_init, n_member, n_lead = (first.data.sizes[dim] for dim in ("init", "member", "lead"))
        shape = (n_init, n_member, n_lead)
        labels = {
            "init": np.broadcast_to(first.data["init"].values[:, None, None], shape).ravel(),
            "member": np.broadcast_to(first.data["member"].values[None, :, None], shape).ravel(),
            "lead": np.broadcast_to(first.data["lead"].values[None, None, :], shape).ravel(),
        }
        valid = np.broadcast_to(first.valid_time[:, None, :], shape).ravel()
        fine_values = np.broadcast_to(fine.values[:, None], (n_init, n_member, *fine.shape[1:]))
        fine_values = fine_values.reshape(-1, *fine.shape[2:])
        coarse_values = np.asarray(coarse.values, dtype=np.float32).reshape(-1, *coarse.shape[3:])
        observed_sample = np.isfinite(fine_values).any(axis=(1, 2, 3))
        order = np.flatnonzero(observed_sample)[np.argsort(valid[observed_sample], kind="stable")]
        if order.size < valid.size:
            logger.info("left out the %d hindcast samples without an observation", valid.size - order.size)
        time = {"time": valid[order]}
        field = xr.DataArray(
            fine_values[order],
            dims=("time", "variable", "lat", "lon"),
            coords=time | {"variable": target_names, "lat": fine["lat"].values, "lon": fine["lon"].values},
        )
        coarse_field = xr.DataArray(
            coarse_values[order],
            dims=("time", "variable", "lat", "lon"),
            coords=time | {"variable": hindcast_names, "lat": coarse["lat"].values, "lon": coarse["lon"].values},
        )
        check_target_values(field)
        attrs = variable_attributes(
            xr.Dataset({name: member.data for name, member in zip(hindcast_names, members)}),
            hindcast_names,
            role="coarse",
        ) | variable_attributes(observations, target_names, role="target")
        extra = None
        notes = [
            f"paired {order.size} hindcast samples ({n_init} starts x {n_member} members x {n_lead} leads) with the "
            "observations at their valid times"
        ]
        if self.lead_input:
            values, units = lead_values(labels["lead"], str(first.names["lead"]))
            extra = xr.DataArray(
                values[order][:, None], dims=("time", "variable"), coords=time | {"variable": [LEAD_CHANNEL]}
            )
            attrs[LEAD_CHANNEL] = _lead_attrs(units)
        pairs = MOS(self.scale, self.method).pair_on_grids(
            field, coarse_field, hindcast_names, attrs, [], as_sources(static, static_variables), notes, extra
        )
        sample_coords = {name: ("time", values[order]) for name, values in labels.items()}
        return replace(
            pairs,
            inputs=pairs.inputs.assign_coords(sample_coords),
            target=pairs.target.assign_coords(sample_coords),
        )


def select_start_years(pairs: PairedData, years: Sequence[int], *, role: str = "years") -> PairedData:
    """The samples of :meth:`HindcastMOS.pair` whose start date falls in one of ``years``.

    Raises:
        DataError: pairs without start dates, or no sample in those years (naming the years there are).
    """
    if "init" not in pairs.target.coords or not np.issubdtype(pairs.target["init"].dtype, np.datetime64):
        raise DataError(
            f"the {role} select samples by start year, but these pairs carry no start dates (an 'init' coordinate "
            "of dates along time); pair a hindcast whose start dates are dates with HindcastMOS"
        )
    starts = pd.DatetimeIndex(pairs.target["init"].values).year
    chosen = np.flatnonzero(np.isin(starts, list(years)))
    if chosen.size == 0:
        raise DataError(
            f"the {role} {sorted(years)} hold no start; the hindcast starts in {sorted(set(starts.tolist()))}"
        )
    return pairs.take(chosen)


def _gridded_variables(data: XarrayInput) -> list[str]:
    if isinstance(data, xr.DataArray):
        return [str(data.name)] if data.name is not None else ["variable"]
    return [
        str(name)
        for name, values in data.data_vars.items()
        if values.ndim >= 3 and np.issubdtype(values.dtype, np.number) and not str(name).endswith("_bnds")
    ]


def _variable(data: XarrayInput, name: str) -> xr.DataArray:
    if isinstance(data, xr.DataArray):
        return data
    if name not in data.data_vars:
        raise DataError(f"the observations have no variable {name!r}; they have {_gridded_variables(data)}")
    return data[name]


def _check_same_forecasts(first: Hindcast, other: Hindcast, first_name: str, other_name: str) -> None:
    for dim in ("init", "member", "lead"):
        if not np.array_equal(first.data[dim].values, other.data[dim].values):
            raise DataError(
                f"the hindcast variables {first_name!r} and {other_name!r} have different {dim} values; "
                "give every variable for the same starts, members and leads"
            )
    if not first.grid.equals(other.grid):
        raise DataError(
            f"the hindcast variables {first_name!r} and {other_name!r} are on different grids; regrid one onto the other"
        )
