"""Shared fixtures: bundled real data, loaded once per session, and small synthetic fields."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from dl4ds import datasets


@pytest.fixture(scope="session")
def era5() -> xr.Dataset:
    """ERA5 2 m temperature over the British Isles, March 2019 (744 hourly steps)."""
    return datasets.era5_t2m_uk()


@pytest.fixture(scope="session")
def era5_week(era5: xr.Dataset) -> xr.Dataset:
    """The first 7 days of the ERA5 data, every third hour (56 steps)."""
    return era5.sel(time=slice("2019-03-01", "2019-03-07")).isel(time=slice(None, None, 3))


@pytest.fixture(scope="session")
def static() -> xr.Dataset:
    return datasets.uk_static()


def make_field(values: np.ndarray, *, lat0: float = 50.0, lon0: float = -10.0, step: float = 0.25,
               start: str = "2019-03-01", freq: str = "1D", name: str = "t2m") -> xr.DataArray:
    """A (time, latitude, longitude) DataArray in K on a regular grid with ascending coordinates."""
    nt, ny, nx = values.shape
    return xr.DataArray(
        values.astype(np.float32),
        dims=("time", "latitude", "longitude"),
        coords={
            "time": pd.date_range(start, periods=nt, freq=freq),
            "latitude": lat0 + step * np.arange(ny),
            "longitude": lon0 + step * np.arange(nx),
        },
        name=name,
        attrs={"units": "K", "standard_name": "air_temperature"},
    )
