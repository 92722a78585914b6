"""Recognising precipitation-like variables and bringing their units to mm per day.

Precipitation is bounded below by zero, skewed and intermittent, so dl4ds
treats it apart: BCSD corrects it by ratios rather than shifts, and the
verification adds wet-day scores. A variable counts as precipitation by its
CF ``standard_name`` when it has one, else by its name (:func:`is_precipitation`).

Water depths and masses per area are the same quantity for liquid water of
density 1000 kg m-3: 1 kg m-2 = 1 mm.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from dl4ds.data.units import conversion
from dl4ds.errors import DataError

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
    """How values in ``units`` (e.g. ``kg m-2 s-1``, ``mm/day``, ``m``) become mm per day; None if they cannot.

    Rates convert to mm/day and amounts to mm with :mod:`dl4ds.data.units`
    (pint, with liquid water of 1000 kg m-3).
    """
    for target, amount in (("mm/day", False), ("mm", True)):
        try:
            change = conversion(units, target, what="the precipitation", reference=target)
        except DataError:
            continue
        if change.offset == 0.0:
            return PrecipitationUnits(change.scale, amount=amount)
    return None
