"""Recognising precipitation-like variables and bringing their units to mm per day.

Precipitation is bounded below by zero, skewed and intermittent, so dl4ds
treats it apart: BCSD corrects it by ratios rather than shifts, and the
verification adds wet-day scores. A variable counts as precipitation by its
CF ``standard_name`` when it has one, else by its name (:func:`is_precipitation`).

Water depths and masses per area are the same quantity for liquid water of
density 1000 kg m-3: 1 kg m-2 = 1 mm.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

PRECIPITATION_STANDARD_NAMES = frozenset(
    {
        "precipitation_flux",
        "precipitation_amount",
        "lwe_precipitation_rate",
        "lwe_thickness_of_precipitation_amount",
        "convective_precipitation_flux",
        "convective_precipitation_amount",
        "large_scale_precipitation_flux",
        "large_scale_precipitation_amount",
        "stratiform_precipitation_flux",
        "stratiform_precipitation_amount",
        "rainfall_flux",
        "rainfall_amount",
        "rainfall_rate",
        "thickness_of_rainfall_amount",
        "snowfall_flux",
        "snowfall_amount",
        "lwe_snowfall_rate",
        "lwe_thickness_of_snowfall_amount",
    }
)
"""CF standard names of precipitation fluxes, rates and amounts."""

PRECIPITATION_NAMES = frozenset(
    {"pr", "tp", "precip", "precipitation", "prcp", "prec", "rr", "rain", "rainfall", "tot_prec", "apcp", "prate"}
)
"""Variable names taken as precipitation when a variable has no standard_name (CMIP, ERA5, E-OBS, COSMO, GRIB...)."""

_RATES = {  # mm per day for one unit of a rate
    "kgm-2s-1": 86400.0,
    "kg/m2/s": 86400.0,
    "kg/m2s": 86400.0,
    "mms-1": 86400.0,
    "mm/s": 86400.0,
    "ms-1": 86400e3,
    "m/s": 86400e3,
    "kgm-2h-1": 24.0,
    "mmh-1": 24.0,
    "mm/h": 24.0,
    "mmhr-1": 24.0,
    "mm/hr": 24.0,
    "kgm-2d-1": 1.0,
    "kgm-2day-1": 1.0,
    "mmd-1": 1.0,
    "mmday-1": 1.0,
    "mm/d": 1.0,
    "mm/day": 1.0,
    "md-1": 1e3,
    "mday-1": 1e3,
    "m/day": 1e3,
}
_AMOUNTS = {"mm": 1.0, "kgm-2": 1.0, "kg/m2": 1.0, "cm": 10.0, "m": 1e3}  # mm for one unit of an amount per time step


@dataclass(frozen=True)
class PrecipitationUnits:
    """How a precipitation variable's values become mm per day.

    Attributes:
        factor: mm per day for one unit of a rate, or mm for one unit of an amount.
        amount: the values are amounts accumulated over each time step (e.g.
            mm, or ERA5's ``tp`` in m), summed into daily totals; else rates,
            averaged over each day.
    """

    factor: float
    amount: bool


def is_precipitation(name: str, attrs: Mapping[str, object]) -> bool:
    """Whether the variable ``name`` with CF attributes ``attrs`` is precipitation (by standard_name, else by name)."""
    standard_name = attrs.get("standard_name")
    if standard_name:
        return str(standard_name) in PRECIPITATION_STANDARD_NAMES
    return name.lower() in PRECIPITATION_NAMES


def precipitation_units(units: str) -> PrecipitationUnits | None:
    """How values in ``units`` (e.g. ``kg m-2 s-1``, ``mm/day``, ``m``) become mm per day; None if not known."""
    key = re.sub(r"\s+|\*\*|\^|\.", "", units.strip()).lower()
    if key in _RATES:
        return PrecipitationUnits(_RATES[key], amount=False)
    if key in _AMOUNTS:
        return PrecipitationUnits(_AMOUNTS[key], amount=True)
    return None
