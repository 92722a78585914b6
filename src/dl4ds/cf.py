"""The CF metadata of every file dl4ds writes, in one place.

:func:`complete` is applied by :func:`dl4ds.io.write_netcdf` and
:func:`dl4ds.io.write_zarr` to whatever they write (downscaled fields,
ensembles, forecast layouts, ``metrics.nc``, the outputs of training and
tuning), so every output gets the same attributes:

- latitude, longitude and time coordinates with their standard names, units and axes;
- ``realization`` on member dims (``member``, ``number``, ``realization``, ...)
  and on the ``sample`` dim of an ensemble drawn by a network;
- ``forecast_reference_time`` on initialisation times, ``forecast_period`` on
  lead dims holding time spans, and a ``forecast_period`` coordinate (valid
  time minus initialisation time) where both times are given;
- a scalar ``height`` coordinate (m) on variables whose name or long name
  implies one: 2 m temperature and humidity, 10 m wind;
- ``units_metadata`` (CF-1.11) on times (no leap seconds) and on temperatures
  with a standard name (on scale);
- string-valued dimension coordinates (model names, seasons) as auxiliary
  label coordinates ``<dim>_label`` (CF 6.1), since coordinate variables are numeric;
- each variable's dims in CF's recommended order: other dims (member,
  lead...) first, then time, height, latitude, longitude (a SEAS5 layout
  ``(number, forecast_reference_time, forecastMonth, ...)`` is written
  ``(number, forecastMonth, forecast_reference_time, ...)``);
- the ``Conventions`` of this module and a ``history`` line, appended to the
  history the data already had.

The writers set what only they know (``cell_methods``, ``source``, a
variable's ``long_name``); :func:`appended_history` and
:func:`provenance` help them carry the input's history, licence and source.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Iterable, Mapping
from datetime import UTC, datetime

import numpy as np
import xarray as xr

__all__ = [
    "CONVENTIONS",
    "LEAD_DIMS",
    "REALIZATION_DIMS",
    "appended_history",
    "complete",
    "implied_height",
    "provenance",
    "with_label_index",
]

CONVENTIONS = "CF-1.11"
"""The CF version every output declares (int64 variables, allowed since CF-1.9, are written as they are)."""

REALIZATION_DIMS = ("member", "number", "realization", "ensemble", "ensemble_member", "sample")
"""Dims whose index is an ensemble member: standard name ``realization``."""

LEAD_DIMS = ("lead_time", "leadtime", "step", "forecastMonth", "forecast_period", "lead")
"""Dims of forecast lead (time since the forecast reference time), in the order they are looked for."""

PROVENANCE_ATTRIBUTES = ("license", "licence", "institution", "references", "acknowledgement", "project")
"""Global attributes of an input that an output made from it keeps as they are."""

_HEIGHTS = {
    2.0: {"t2m", "2t", "tas", "tasmax", "tasmin", "d2m", "2d", "huss", "hurs", "r2", "sh2", "mx2t", "mn2t"},
    10.0: {"u10", "v10", "10u", "10v", "si10", "uas", "vas", "sfcwind", "ws10", "fg10", "10fg"},
}
_HEIGHT_IN_LONG_NAME = re.compile(r"\b(2|10)[ -]?(?:m|metre|meter)s?\b", re.IGNORECASE)
_LATITUDE = {"standard_name": "latitude", "long_name": "latitude", "units": "degrees_north", "axis": "Y"}
_LONGITUDE = {"standard_name": "longitude", "long_name": "longitude", "units": "degrees_east", "axis": "X"}


def complete(ds: xr.Dataset, *, history: str | None = None, reorder: bool = True) -> xr.Dataset:
    """A copy of ``ds`` with the CF attributes and coordinates listed in the module docstring.

    Args:
        ds: any Dataset about to be written; its values are not touched.
        history: what was done to make ``ds``, appended (with a UTC time stamp)
            to its ``history`` attribute; None appends nothing.
        reorder: whether to put the dims in CF's order (the writers do; an
            in-memory result keeps the dim order of its input).

    Attributes already set are kept, except a ``time`` dim coordinate labelled
    ``forecast_reference_time`` (as GRIB converters label reanalysis times),
    which is relabelled ``time``.
    """
    ds = ds.copy()
    ds.attrs["Conventions"] = CONVENTIONS
    if history is not None:
        ds.attrs["history"] = appended_history(ds.attrs.get("history"), history)
    for name in list(ds.coords):
        _label_coordinate(ds, str(name))
    for name, variable in ds.data_vars.items():
        if "temperature" in str(variable.attrs.get("standard_name", "")) and "units_metadata" not in variable.attrs:
            ds[name].attrs["units_metadata"] = "temperature: on_scale"
    ds = _with_forecast_period(ds)
    ds = _with_heights(ds)
    return _in_cf_order(_labels_as_auxiliary(ds)) if reorder else ds


def appended_history(history: object, line: str) -> str:
    """``history`` (a previous history attribute, or None) with ``line`` appended after a UTC time stamp."""
    stamped = f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ} {line}"
    previous = str(history).rstrip() if history else ""
    return f"{previous}\n{stamped}" if previous else stamped


def provenance(sources: Iterable[Mapping[Hashable, object]], *, made_by: str) -> dict[str, str]:
    """Global attributes of an output made from inputs with global attributes ``sources``.

    Returns their ``history`` with ``made_by`` appended, a ``source`` naming
    dl4ds (``made_by``) and then the inputs' sources, and the inputs'
    licences, institutions and references (:data:`PROVENANCE_ATTRIBUTES`),
    distinct values joined by newlines.
    """
    sources = list(sources)

    def joined(key: str) -> str:
        values = [str(attrs[key]) for attrs in sources if attrs.get(key)]
        return "\n".join(dict.fromkeys(values))

    attrs = {key: joined(key) for key in PROVENANCE_ATTRIBUTES}
    inputs = joined("source").replace("\n", "; ")
    attrs["source"] = f"{made_by}, from: {inputs}" if inputs else made_by
    attrs["history"] = appended_history(joined("history"), made_by)
    return {key: value for key, value in attrs.items() if value}


def implied_height(name: str, attrs: Mapping[Hashable, object]) -> float | None:
    """The height above the surface (m) that a variable's ``name`` or ``long_name`` implies, e.g. 2.0 for ``t2m``.

    Names are matched whole or by their first ``_``-separated part (``t2m_rmse``,
    ``t2m_mean``); long names by "2 m", "2 metre", "10 m" and the like.
    """
    for part in {name.lower(), name.lower().split("_")[0]}:
        for height, names in _HEIGHTS.items():
            if part in names:
                return height
    match = _HEIGHT_IN_LONG_NAME.search(str(attrs.get("long_name", "")))
    return float(match.group(1)) if match else None


def _label_coordinate(ds: xr.Dataset, name: str) -> None:
    coord = ds[name]
    attrs = dict(coord.attrs)
    lowered = name.lower()
    is_dim = coord.dims == (name,)
    axis = lowered.split("_")[0]  # lat_pr: a latitude dim renamed for another variable (metrics.nc)
    if axis in ("lat", "latitude") and coord.ndim <= 2:
        attrs = {**_LATITUDE, **{k: v for k, v in attrs.items() if k not in _LATITUDE}}
    elif axis in ("lon", "longitude") and coord.ndim <= 2:
        attrs = {**_LONGITUDE, **{k: v for k, v in attrs.items() if k not in _LONGITUDE}}
    elif lowered == "forecast_reference_time":
        attrs.update(standard_name="forecast_reference_time", long_name="forecast reference time (initialisation)")
    elif (axis == "time" or lowered == "valid_time") and np.issubdtype(coord.dtype, np.datetime64):
        if attrs.get("standard_name") != "time":
            attrs.update(standard_name="time", long_name="valid time" if lowered == "valid_time" else "time")
        if is_dim:
            attrs["axis"] = "T"
    elif name in REALIZATION_DIMS and is_dim:
        attrs.setdefault("long_name", "ensemble member")
        attrs.update(standard_name="realization", units="1")
    elif name in LEAD_DIMS:
        if np.issubdtype(coord.dtype, np.timedelta64):
            attrs.update(standard_name="forecast_period")
            attrs.setdefault("long_name", "forecast period (time since the forecast reference time)")
        else:
            attrs.setdefault("long_name", f"forecast lead ({name}, counted from the forecast reference time)")
            attrs.setdefault("units", "1")
    if np.issubdtype(coord.dtype, np.datetime64):  # numpy's times have no leap seconds
        attrs.setdefault("units_metadata", "leap_seconds: none")
    ds[name].attrs = attrs


def _labels_as_auxiliary(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` with each string-valued dimension coordinate (model names, seasons) renamed ``<dim>_label``, an
    auxiliary coordinate along the dim: CF coordinate variables are numeric and monotonic (CF 6.1 labels)."""
    labels = [name for name in ds.dims if name in ds.coords and ds[name].dtype.kind in "USO"]
    return ds.rename_vars({name: f"{name}_label" for name in labels}) if labels else ds


def with_label_index(ds: xr.Dataset) -> xr.Dataset:
    """The inverse of the labels of a file dl4ds wrote: each ``<dim>_label`` coordinate along a ``<dim>`` that has
    no coordinate of its own becomes that dim's coordinate, so ``ds.sel(model="bicubic")`` works again.

    E.g. ``with_label_index(xr.open_dataset("report/metrics.nc"))``; other datasets come back unchanged.
    """
    names = {
        f"{dim}_label": str(dim)
        for dim in ds.dims
        if dim not in ds.coords and f"{dim}_label" in ds.coords and ds[f"{dim}_label"].dims == (dim,)
    }
    return ds.rename_vars(names) if names else ds


def _axis(ds: xr.Dataset, dim: Hashable) -> str:
    """The CF axis (T, Z, Y, X) of the coordinate of ``dim``, or "" for other dims."""
    if dim not in ds.coords:
        return ""
    attrs = ds[dim].attrs
    if attrs.get("axis") in ("T", "Z", "Y", "X"):
        return str(attrs["axis"])
    if np.issubdtype(ds[dim].dtype, np.datetime64):
        return "T"
    return {"latitude": "Y", "longitude": "X", "height": "Z"}.get(str(attrs.get("standard_name")), "")


def _in_cf_order(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` with the dims of each variable and auxiliary coordinate in CF's order: other dims (in their order), then T, Z, Y, X."""
    rank = {"": 0, "T": 1, "Z": 2, "Y": 3, "X": 4}
    ds = ds.copy()
    for name in [*ds.data_vars, *(c for c in ds.coords if c not in ds.dims)]:
        dims = ds[name].dims
        ordered = sorted(dims, key=lambda dim: rank[_axis(ds, dim)])  # stable: other dims keep their order
        if list(ordered) != list(dims):
            ds[name] = ds[name].variable.transpose(*ordered)
    return ds


def _with_forecast_period(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` with a ``forecast_period`` coordinate (valid minus reference time) when it has both and no lead of time spans."""
    if "forecast_reference_time" not in ds.coords or "forecast_period" in ds.coords:
        return ds
    if any(ds[name].attrs.get("standard_name") == "forecast_period" for name in ds.coords):
        return ds
    init = ds["forecast_reference_time"]
    valid = next(
        (
            ds[name]
            for name in ("valid_time", "time")
            if name in ds.coords and np.issubdtype(ds[name].dtype, np.datetime64)
        ),
        None,
    )
    if valid is None or not np.issubdtype(init.dtype, np.datetime64):
        return ds
    period = (valid - init).reset_coords(drop=True)
    period.attrs = {
        "standard_name": "forecast_period",
        "long_name": "forecast period (valid time minus forecast reference time)",
    }
    return ds.assign_coords(forecast_period=period)


def _with_heights(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` with a scalar height coordinate for the variables that imply one (``height``, or ``height_2m`` ... for
    several), each variable naming its own; data on vertical levels (a height or Z dim) is left as it is.

    A height coordinate already there (from the input, or an earlier pass) is kept.
    """
    vertical = [
        name
        for name in ds.coords
        if ds[name].ndim > 0 and (ds[name].attrs.get("standard_name") == "height" or ds[name].attrs.get("axis") == "Z")
    ]
    heights = {name: implied_height(str(name), ds[name].attrs) for name in ds.data_vars}
    distinct = sorted({h for h in heights.values() if h is not None})
    if vertical or not distinct:
        return ds
    names = {h: "height" if len(distinct) == 1 else f"height_{h:g}m" for h in distinct}
    attrs = {
        "standard_name": "height",
        "long_name": "height above the surface",
        "units": "m",
        "positive": "up",
        "axis": "Z",
    }
    ds = ds.assign_coords(
        {names[h]: xr.Variable((), np.float64(h), attrs) for h in distinct if names[h] not in ds.coords}
    )
    scalar_heights = set(names.values())
    for name, height in heights.items():  # each variable names its own height only (not every scalar coordinate)
        others = [str(c) for c in ds[name].coords if c not in ds[name].dims and c not in scalar_heights]
        # a blank list, not an empty one, which xarray would fill with every scalar coordinate
        ds[name].encoding["coordinates"] = " ".join(others + ([names[height]] if height is not None else [])) or " "
    return ds
