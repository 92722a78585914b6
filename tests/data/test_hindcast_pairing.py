"""Forecast-aware MOS: hindcast members paired with the observations of their valid months, the lead as an input."""

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

import dl4ds
from dl4ds.data import DownscalingDataset, HindcastMOS, Normalizer, select_start_years
from dl4ds.data.hindcast_pairing import LEAD_CHANNEL, lead_values
from dl4ds.errors import ConfigError, DataError
from dl4ds.model import DownscalingModel
from dl4ds.training import SupervisedTrainer

YEARS, MEMBERS, LEADS = 4, 3, 3


def observations(years: int = YEARS) -> xr.Dataset:
    """Monthly means (K) on a 1 degree grid of 8 x 12 cells, November to January of each season."""
    rng = np.random.default_rng(1)
    times = pd.to_datetime([f"{2000 + y + (m == 1)}-{m:02d}-01" for y in range(years) for m in (11, 12, 1)])
    values = 280 + rng.standard_normal((times.size, 8, 12)).astype(np.float32)
    return xr.Dataset(
        {"tas": (("time", "lat", "lon"), values, {"units": "K", "standard_name": "air_temperature"})},
        coords={"time": times, "lat": 40.0 + np.arange(8), "lon": np.arange(12.0)},
    )


def hindcast() -> xr.Dataset:
    """A November hindcast in degC on the 4 degree cells that nest the observation grid (2 x 3)."""
    rng = np.random.default_rng(2)
    starts = pd.to_datetime([f"{2000 + y}-11-01" for y in range(YEARS)])
    values = 10 + rng.standard_normal((YEARS, MEMBERS, LEADS, 2, 3)).astype(np.float32)
    return xr.Dataset(
        {
            "t2m": (
                ("forecast_reference_time", "realization", "forecastMonth", "latitude", "longitude"),
                values,
                {"units": "degC"},
            )
        },
        coords={
            "forecast_reference_time": starts,
            "realization": np.arange(1, MEMBERS + 1),
            "forecastMonth": np.arange(1, LEADS + 1),
            "latitude": [41.5, 45.5],
            "longitude": [1.5, 5.5, 9.5],
        },
    )


@pytest.fixture(scope="module")
def pairs():
    return HindcastMOS().pair(observations(), hindcast(), variables=["tas"], hindcast_variables=["t2m"])


def test_every_member_start_and_lead_is_a_sample_paired_with_its_valid_month(pairs):
    obs, forecast = observations(), hindcast()
    assert pairs.target.sizes["time"] == YEARS * MEMBERS * LEADS
    assert pairs.scale == 4 and pairs.input_variables == ("t2m", LEAD_CHANNEL)
    assert pairs.times.is_monotonic_increasing
    for position in (0, 7, 20, 35):
        sample = pairs.target.isel(time=position)
        init, member, lead = (sample[name].values for name in ("init", "member", "lead"))
        valid = pd.Timestamp(init) + pd.DateOffset(months=int(lead) - 1)
        assert pd.Timestamp(sample["time"].values) == valid
        np.testing.assert_array_equal(sample.sel(variable="tas").values, obs["tas"].sel(time=valid).values)
        # the coarse input is the member's field converted from degC to K; the lead channel is months after the start
        member_field = forecast["t2m"].sel(forecast_reference_time=init, realization=member, forecastMonth=lead)
        inputs = pairs.inputs.isel(time=position)
        np.testing.assert_allclose(inputs.sel(channel="t2m").values, member_field.values + 273.15, atol=1e-4)
        np.testing.assert_array_equal(inputs.sel(channel=LEAD_CHANNEL).values, np.full((2, 3), int(lead) - 1.0))
    assert pairs.attrs[LEAD_CHANNEL]["units"] == "months"
    assert pairs.attrs["t2m"]["units"] == "K"


def test_samples_without_an_observation_are_left_out():
    obs = observations().drop_sel(time=[pd.Timestamp("2001-12-01")])
    paired = HindcastMOS().pair(obs, hindcast(), variables=["tas"], hindcast_variables=["t2m"])
    assert paired.target.sizes["time"] == (YEARS * LEADS - 1) * MEMBERS
    assert pd.Timestamp("2001-12-01") not in set(paired.times)


def test_splits_by_start_year_keep_a_season_together(pairs):
    split = select_start_years(pairs, [2001])
    assert split.target.sizes["time"] == MEMBERS * LEADS
    assert sorted(set(pd.DatetimeIndex(split.times).strftime("%Y-%m"))) == ["2001-11", "2001-12", "2002-01"]
    with pytest.raises(DataError, match=r"hold no start; the hindcast starts in \[2000, 2001, 2002, 2003\]"):
        select_start_years(pairs, [1990])


def test_lead_values_are_months_after_the_start_or_days():
    values, units = lead_values(np.array([1, 2, 6]), "forecastMonth")
    assert units == "months" and values.tolist() == [0.0, 1.0, 5.0]
    values, units = lead_values(np.array([0, 36, 60], dtype="timedelta64[h]"), "lead_time")
    assert units == "days" and values.tolist() == [0.0, 1.5, 2.5]
    with pytest.raises(DataError, match="timedelta leads"):
        lead_values(np.array([1, 2]), "lead")


def test_bad_hindcasts_are_refused_with_the_fix():
    without_lead = hindcast().isel(forecastMonth=0, drop=True)
    with pytest.raises(DataError, match="no lead time dimension"):
        HindcastMOS().pair(observations(), without_lead, variables=["tas"], hindcast_variables=["t2m"])
    later = observations().assign_coords(time=observations()["time"] + np.timedelta64(3650, "D"))
    with pytest.raises(DataError, match="cover none of the hindcast's valid times"):
        HindcastMOS().pair(later, hindcast(), variables=["tas"], hindcast_variables=["t2m"])
    with pytest.raises(ConfigError, match="one hindcast variable per target variable"):
        HindcastMOS().pair(observations(), hindcast(), variables=["tas"], hindcast_variables=["t2m", "t2m"])


def test_a_trained_model_makes_the_lead_channel_from_the_forecast_and_uses_it(pairs):
    torch.manual_seed(0)
    normalizer = Normalizer.fit(pairs)
    model = DownscalingModel.build("convnet_spc", pairs, normalizer, params={"n_filters": 8})
    trainer = SupervisedTrainer(epochs=2, batch_size=8, progress=False, seed=0)
    trainer.fit(model, DownscalingDataset(pairs, normalizer))
    forecast = hindcast()
    made = dl4ds.downscale(model, forecast)["tas"]
    assert made.dims == ("forecast_reference_time", "realization", "forecastMonth", "latitude", "longitude")
    lead = xr.DataArray(
        np.array([0.0, 1.0, 2.0]), dims="forecastMonth", coords={"forecastMonth": forecast["forecastMonth"]}
    )
    given = forecast.assign(lead=lead.broadcast_like(forecast["t2m"]).assign_attrs(units="months"))
    np.testing.assert_allclose(made.values, dl4ds.downscale(model, given)["tas"].values, atol=1e-6)
    # the same field at every lead: the outputs differ by the lead channel alone, which takes the lead's value
    same_fields = forecast.assign(
        t2m=forecast["t2m"].isel(forecastMonth=[0, 0, 0]).assign_coords(forecastMonth=[1, 2, 3])
    )
    by_lead = dl4ds.downscale(model, same_fields)["tas"]
    assert np.abs(by_lead.isel(forecastMonth=0) - by_lead.isel(forecastMonth=2)).max() > 1e-5
    third = given.assign(lead=given["lead"] * 0 + 2.0).isel(forecastMonth=[0])
    np.testing.assert_allclose(
        dl4ds.downscale(model, third)["tas"].isel(forecastMonth=0).values,
        by_lead.isel(forecastMonth=2).values,
        atol=1e-6,
    )
    with pytest.raises(DataError, match="trained by hindcast MOS.*give the forecast with its lead dimension"):
        dl4ds.downscale(model, forecast.isel(forecastMonth=0, drop=True))
