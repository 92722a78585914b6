"""Real data bundled with dl4ds, opened as xarray objects.

Sources and licences are listed in ``data/SOURCES.md`` beside this module:

- :func:`era5_t2m_uk`: ERA5 hourly 2 m temperature over the British Isles,
  March 2019, 0.25 degree (Copernicus Climate Change Service, CC BY 4.0).
- :func:`uk_static`: elevation and land fraction on the same grid
  (Met Office UKV orography, OGL v3; GLOBE land mask, public domain).
- :func:`glosea4_ensemble`: Met Office GloSea4 seasonal forecast, 13 members x
  6 monthly means of surface temperature on the N96 grid (OGL v3).
- :func:`seas5_tas_hindcast`: ECMWF SEAS5 hindcast of monthly 2 m temperature,
  15 members x 6 November starts (2000-2005) x 3 lead months, 1 degree over the
  Mediterranean, and :func:`era5_tas_monthly`: ERA5 for its 18 verifying
  months on the same grid (Copernicus C3S; the subset of the CSTools sample data).
- :func:`map_lines`: Natural Earth 1:50m coastlines and land borders, drawn on
  every map (public domain).
"""

from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
import xarray as xr

from dl4ds.errors import DataError

__all__ = [
    "era5_t2m_uk",
    "era5_tas_monthly",
    "glosea4_ensemble",
    "map_lines",
    "names",
    "path",
    "seas5_tas_hindcast",
    "seas5_tas_hindcast_4deg",
    "uk_static",
]

_MAP_LINES = "naturalearth_50m_lines.npz"

_FILES = {
    "era5_t2m_uk": "era5_t2m_uk_201903.nc",
    "uk_static": "uk_static_0p25.nc",
    "glosea4_ensemble": "glosea4_ts_nweurope_2011.nc",
    "seas5_tas_hindcast": "seas5_tas_med_hindcast_2000_2005.nc",
    "seas5_tas_hindcast_4deg": "seas5_tas_med_hindcast_4deg_2000_2005.nc",
    "era5_tas_monthly": "era5_tas_med_monthly_2000_2006.nc",
}


def names() -> list[str]:
    """Names of the bundled datasets."""
    return list(_FILES)


def path(name: str) -> Path:
    """Path of the NetCDF file of a bundled dataset."""
    if name not in _FILES:
        raise DataError(f"no bundled dataset named {name!r}; choose one of {names()}")
    return Path(str(resources.files(__name__).joinpath("data", _FILES[name])))


def _open(name: str) -> xr.Dataset:
    with xr.open_dataset(path(name)) as ds:
        return ds.load()


def era5_t2m_uk() -> xr.Dataset:
    """ERA5 2 m temperature ``t2m`` (K), dims (time: 744, latitude: 33, longitude: 49).

    Hourly, 2019-03-01 00 UTC to 2019-03-31 23 UTC; 0.25 degree grid over
    58 N to 50 N (descending) and 10 W to 2 E.
    """
    return _open("era5_t2m_uk")


def uk_static() -> xr.Dataset:
    """``elevation`` (m, 0 over sea) and ``land_fraction`` (0-1) on the ERA5 grid."""
    return _open("uk_static")


def glosea4_ensemble() -> xr.Dataset:
    """GloSea4 monthly mean surface temperature ``ts`` (K).

    Dims (member: 13, time: 6, lat: 21, lon: 19) on the N96 grid (1.25 x 1.875
    degree), 40-65 N, 19 W-15 E; valid months August 2011 to January 2012, with
    ``forecast_reference_time`` per member.
    """
    return _open("glosea4_ensemble")


def seas5_tas_hindcast() -> xr.Dataset:
    """ECMWF SEAS5 hindcast of monthly mean 2 m temperature ``tas`` (K).

    Dims (forecast_reference_time: 6, realization: 15, forecastMonth: 3,
    latitude: 22, longitude: 53): November starts 2000-2005, lead months 1-3
    (November to January; 1 is the start month), 1 degree grid over 27-48 N,
    12 W-40 E, with ``valid_time`` (forecast_reference_time, forecastMonth).
    """
    return _open("seas5_tas_hindcast")


def seas5_tas_hindcast_4deg() -> xr.Dataset:
    """:func:`seas5_tas_hindcast` cut to 27-46 N, 12 W-39 E and block-averaged 4 x 4: a coarse forecast to downscale.

    Dims (forecast_reference_time: 6, realization: 15, forecastMonth: 3,
    latitude: 5, longitude: 13), cell centres 28.5-44.5 N, 10.5 W-37.5 E;
    written by ``tools/coarsen_seas5_hindcast.py``.
    """
    return _open("seas5_tas_hindcast_4deg")


def era5_tas_monthly() -> xr.Dataset:
    """ERA5 monthly mean 2 m temperature ``tas`` (K) of the 18 months :func:`seas5_tas_hindcast` verifies at.

    Dims (time: 18, latitude: 22, longitude: 53), month starts of November,
    December and January 2000/01 to 2005/06, on the hindcast's 1 degree grid.
    """
    return _open("era5_tas_monthly")


@lru_cache(maxsize=1)
def map_lines() -> dict[str, tuple[np.ndarray, ...]]:
    """Natural Earth 1:50m ``coastlines`` and land ``borders`` (between countries) as polylines.

    Returns ``{kind: (line, ...)}`` with each line an (n, 2) float64 array of
    (longitude, latitude) in degrees, longitudes in -180..180, to 0.01 degree.
    Read from the package (no download); extracted once by
    ``tools/extract_natural_earth.py`` (see ``data/SOURCES.md``).
    """
    with np.load(Path(str(resources.files(__name__).joinpath("data", _MAP_LINES)))) as stored:
        scale = float(stored["scale"])
        lines = {}
        for kind, key in (("coastlines", "coastline"), ("borders", "border")):
            points = stored[kind].astype(np.float64) / scale
            ends = np.cumsum(stored[f"{key}_lengths"])
            lines[kind] = tuple(np.split(points, ends[:-1]))
    return lines
