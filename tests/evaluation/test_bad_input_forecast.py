"""Bad input to the hindcast verification: refused with a DataError naming the fix, by Python and by the CLI."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from helpers import assert_refused, assert_refused_by_cli, make_hindcast

from dl4ds.data.hindcast import Hindcast
from dl4ds.errors import ConfigError, DataError
from dl4ds.evaluation import ForecastVerification
from dl4ds.evaluation.forecast_baselines import baseline_hindcasts
from dl4ds.io import write_netcdf

VERIFY = ForecastVerification({"resamples": 10})


@pytest.fixture
def files(tmp_path):
    hindcast, observations = make_hindcast(4, 3, 2, 2, 3)
    write_netcdf(hindcast, tmp_path / "hindcast.nc")
    write_netcdf(observations, tmp_path / "obs.nc")
    return hindcast, observations, tmp_path


def test_a_hindcast_without_an_init_or_lead_dimension(files):
    hindcast, observations, root = files
    no_lead = hindcast.isel(forecastMonth=0, drop=True).drop_vars("valid_time")
    assert_refused(
        lambda: VERIFY.score({"f": no_lead}, observations),
        DataError,
        "has no lead time dimension .*Name them as one of .*forecastMonth",
        root,
    )
    no_init = hindcast.isel(forecast_reference_time=0, drop=True).drop_vars("valid_time")
    write_netcdf(no_init, root / "no_init.nc")
    assert_refused_by_cli(
        ["evaluate-forecast", root / "no_init.nc", root / "obs.nc", "-o", root / "report"],
        DataError,
        "has no init \\(start date\\) dimension.*forecast_reference_time.*expand_dims",
        root,
    )


def test_observations_covering_none_of_the_valid_times(files):
    hindcast, observations, root = files
    later = observations.assign_coords(time=observations["time"].values + np.timedelta64(3650, "D"))
    assert_refused(
        lambda: VERIFY.score({"f": hindcast}, later),
        DataError,
        "cover none of the hindcast's valid times \\(2000-11-01 to 2003-12-01\\); give observations of the verifying period",
        root,
    )


def test_fewer_than_three_start_years(files):
    hindcast, _, root = files
    write_netcdf(hindcast.isel(forecast_reference_time=slice(0, 2)), root / "two_years.nc")
    assert_refused_by_cli(
        ["evaluate-forecast", root / "two_years.nc", root / "obs.nc", "-o", root / "report"],
        DataError,
        "2 start year\\(s\\) \\(2000, 2001\\) for starts in November; .*at least 3. Give a hindcast with more start years",
        root,
    )


def test_a_start_given_twice(files):
    """A repeated start would count its year twice in the climatology and the bootstrap: refused, not scored."""
    hindcast, observations, root = files
    twice = xr.concat([hindcast, hindcast.isel(forecast_reference_time=[1]) + 1.0], dim="forecast_reference_time")
    message = "several starts in November of 2001; .*Keep one start per month and year, e.g. ds.drop_duplicates"
    assert_refused(lambda: VERIFY.score({"f": twice}, observations), DataError, message, root)
    write_netcdf(twice, root / "twice.nc")
    assert_refused_by_cli(
        ["evaluate-forecast", root / "twice.nc", root / "obs.nc", "-o", root / "report"], DataError, message, root
    )


def test_daily_observations_for_a_monthly_forecast_need_an_aggregation_rule(files):
    hindcast, _, root = files
    days = pd.date_range("2000-11-01", "2004-01-31", freq="D")
    daily = xr.Dataset(
        {"tas": (("time", "latitude", "longitude"), np.full((days.size, 2, 3), 280.0), {"units": "K"})},
        coords={"time": days, "latitude": hindcast["latitude"], "longitude": hindcast["longitude"]},
    )
    write_netcdf(daily, root / "daily.nc")
    assert_refused_by_cli(
        ["evaluate-forecast", root / "hindcast.nc", root / "daily.nc", "-o", root / "report"],
        DataError,
        "a mixture of monthly forecasts and daily observations needs an aggregation rule. Pass aggregation='mean' "
        "\\(CLI: --aggregation mean\\)",
        root,
    )
    daily_forecast = hindcast.drop_vars("valid_time").rename(forecastMonth="lead_time")
    daily_forecast = daily_forecast.assign_coords(lead_time=pd.to_timedelta([0, 1], unit="D").values)
    monthly = xr.Dataset(
        {"tas": hindcast["tas"].isel(realization=0, forecastMonth=0, drop=True).rename(forecast_reference_time="time")}
    )
    assert_refused(
        lambda: VERIFY.score({"f": daily_forecast}, monthly.drop_vars("valid_time")),
        DataError,
        "monthly observations cannot verify a daily forecast",
        root,
    )


def test_references_on_other_grids_or_with_other_members(files):
    hindcast, observations, root = files
    shifted = hindcast.assign_coords(longitude=hindcast["longitude"] + 0.5)
    write_netcdf(shifted, root / "shifted.nc")
    assert_refused_by_cli(
        [
            "evaluate-forecast",
            root / "hindcast.nc",
            root / "obs.nc",
            "-o",
            root / "report",
            "--reference",
            f"shifted:{root / 'shifted.nc'}",
        ],
        DataError,
        "'shifted' is on another grid .*interpolate it onto the hindcast's grid first",
        root,
    )
    fewer = hindcast.isel(realization=slice(0, 2))
    assert_refused(
        lambda: VERIFY.score({"f": hindcast, "fewer": fewer}, observations),
        DataError,
        "'fewer' has other member values than the hindcast \\(\\[1, 2\\] against \\[1, 2, 3\\]\\).*ds.sel\\(realization=...\\)",
        root,
    )


def test_learning_baselines_need_the_checkpoint_and_options_are_checked(files):
    hindcast, _, root = files
    coarse = hindcast.coarsen(latitude=2, longitude=1, boundary="trim").mean()
    assert_refused(
        lambda: baseline_hindcasts(["bcsd"], coarse, Hindcast.of(hindcast)),
        DataError,
        "learn from training data; give the checkpoint .*--checkpoint",
        root,
    )
    assert_refused(lambda: ForecastVerification({"resamples": 2}), ConfigError, "resamples=2 must be at least 10", root)
    assert_refused_by_cli(
        ["evaluate-forecast", root / "hindcast.nc", root / "obs.nc", "-o", root / "report", "--confidence", "1.5"],
        ConfigError,
        "confidence=1.5 must be less than 1",
        root,
    )
