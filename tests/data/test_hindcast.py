"""Hindcast layouts, valid times, the matching rule for observations, and anomalies per lead and start month."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from helpers import make_hindcast

from dl4ds import datasets
from dl4ds.data.hindcast import Hindcast, StartCalendar, climatology, match_observations
from dl4ds.errors import DataError


def test_the_bundled_seas5_hindcast_matches_era5_month_by_month():
    hindcast = Hindcast.of(datasets.seas5_tas_hindcast())
    assert hindcast.data.dims == ("init", "member", "lead", "lat", "lon")
    assert hindcast.names == {"init": "forecast_reference_time", "member": "realization", "lead": "forecastMonth"}
    assert hindcast.period == "month"
    observed = match_observations(hindcast, datasets.era5_tas_monthly())
    era5 = datasets.era5_tas_monthly()["tas"]
    np.testing.assert_array_equal(observed.isel(init=3, lead=2).values, era5.sel(time="2004-01-01").values)
    assert observed.dims == ("init", "lead", "lat", "lon") and not np.isnan(observed.values).any()


def test_valid_times_are_computed_from_forecast_months_and_timedelta_leads():
    hindcast, _ = make_hindcast(4, 2, 3, 2, 2)
    monthly = Hindcast.of(hindcast.drop_vars("valid_time"))
    np.testing.assert_array_equal(monthly.valid_time, hindcast["valid_time"].values)
    daily = hindcast.drop_vars("valid_time").rename(forecastMonth="lead_time", realization="number")
    daily = daily.assign_coords(lead_time=pd.to_timedelta([0, 1, 2], unit="D").values)
    layout = Hindcast.of(daily)
    assert layout.period == "day" and layout.names["member"] == "number"
    np.testing.assert_array_equal(layout.valid_time[1], pd.to_datetime(["2001-11-01", "2001-11-02", "2001-11-03"]))


@pytest.mark.parametrize("member", ["member", "number", "realization", "ensemble", "ensemble_member"])
def test_every_member_name_the_cf_output_writes_as_a_realization_is_recognised(member):
    hindcast, _ = make_hindcast(4, 2, 3, 2, 2)
    assert Hindcast.of(hindcast.rename(realization=member)).names["member"] == member


def test_cfgrib_layout_with_time_as_the_start_and_a_one_dimensional_valid_time():
    hindcast, observations = make_hindcast(4, 3, 1, 2, 2)
    grib = hindcast.rename(forecast_reference_time="time", forecastMonth="step", realization="number")
    grib = grib.assign_coords(step=[np.timedelta64(0, "ns")]).transpose("number", "time", "step", ...)
    layout = Hindcast.of(grib)
    assert layout.names == {"init": "time", "member": "number", "lead": "step"}
    observed = match_observations(layout, observations)
    np.testing.assert_array_equal(observed.isel(lead=0).values, observations["tas"].values)


def test_observations_stamped_mid_month_match_by_calendar_month():
    hindcast, observations = make_hindcast(4, 2, 2, 2, 2)
    shifted = observations.assign_coords(time=observations["time"].values + np.timedelta64(14, "D"))
    observed = match_observations(Hindcast.of(hindcast), shifted)
    np.testing.assert_array_equal(observed.values, match_observations(Hindcast.of(hindcast), observations).values)


def test_daily_observations_are_averaged_over_each_forecast_month():
    hindcast, _ = make_hindcast(3, 2, 2, 2, 2)
    days = pd.date_range("2000-10-01", "2003-01-31", freq="D")
    values = np.arange(days.size, dtype=np.float64)[:, None, None] + np.zeros((1, 2, 2))
    daily = xr.DataArray(
        values,
        dims=("time", "latitude", "longitude"),
        coords={"time": days, "latitude": hindcast["latitude"], "longitude": hindcast["longitude"]},
        name="tas",
        attrs={"units": "K"},
    )
    observed = match_observations(Hindcast.of(hindcast), daily.sel(time=slice(None, "2002-12-28")), aggregation="mean")
    december = (days >= "2001-12-01") & (days < "2002-01-01")
    assert float(observed.sel(init="2001-11-01").isel(lead=1, lat=0, lon=0)) == pytest.approx(
        values[december, 0, 0].mean()
    )
    # December 2002 lacks its last three days: left out rather than averaged over fewer days
    assert np.isnan(observed.sel(init="2002-11-01").isel(lead=1)).all()


def test_climatology_per_start_month_with_and_without_the_year_left_out():
    starts = StartCalendar(months=np.array([11, 11, 11, 5, 5, 5]), years=np.array([2000, 2001, 2002, 2000, 2001, 2002]))
    values = np.array([1.0, 2.0, 6.0, 10.0, 20.0, np.nan])[:, None]
    plain = climatology(values, starts, leave_one_out=False)[:, 0]
    np.testing.assert_allclose(plain, [3, 3, 3, 15, 15, 15])
    left_out = climatology(values, starts, leave_one_out=True)[:, 0]
    np.testing.assert_allclose(left_out, [4, 3.5, 1.5, 20, 10, 15])


def test_observations_of_another_name_are_taken_when_they_hold_one_variable():
    hindcast, observations = make_hindcast(3, 2, 2, 2, 2)
    layout = Hindcast.of(hindcast)
    renamed = match_observations(layout, observations.rename(tas="t2m"))
    np.testing.assert_array_equal(renamed.values, match_observations(layout, observations).values)
    two = observations.rename(tas="t2m").assign(t2m_max=observations["tas"] + 1)
    with pytest.raises(DataError, match="has 2 gridded variables \\['t2m', 't2m_max'\\]; choose one"):
        match_observations(layout, two)
