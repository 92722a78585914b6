"""The names dl4ds recognises for the dimensions of a forecast: initialisation (start), ensemble member and lead time.

Latitude, longitude and time are found by :func:`dl4ds.data.grid.standardize`.
"""

from __future__ import annotations

from dl4ds.cf import LEAD_DIMS  # names of a lead-time dimension, in the order they are looked for
from dl4ds.cf import REALIZATION_DIMS as MEMBER_DIMS  # names of an ensemble dimension, in the order they are looked for

__all__ = ["INIT_DIMS", "LEAD_DIMS", "MEMBER_DIMS"]

INIT_DIMS = ("init", "forecast_reference_time", "init_time", "initial_time", "start_date", "sdate", "reftime")
"""Names of an initialisation (start date) dimension, in the order they are looked for."""
