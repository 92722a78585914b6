"""Wet-day scores of precipitation against hand computations, and which variables get them."""

import logging

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from dl4ds.data.precipitation import is_precipitation, precipitation_units
from dl4ds.evaluation import Verification
from dl4ds.evaluation.precipitation import PrecipitationOptions, daily_millimetres, wet_day_maps

TRUTH_A = [0, 0, 2, 3, 0.5, 5, 1, 0, 10, 4]  # wet (>= 1 mm): 2, 3, 5, 1, 10, 4 -> 6 of 10
PREDICTION_A = [1, 1, 1, 1, 1, 1, 1, 1, 0, 0]  # 8 of 10, every wet day 1 mm
TRUTH_B = [np.nan, 2, 0, 0, 3, 0, 0, 0, 0, 0]  # 2 wet of 9 valid: too few wet days for percentiles
PREDICTION_B = [5, 0, 0, 0, 0, 0, 0, 0, 0, 0]  # day 0 left out (no truth): 0 wet of 9


def test_wet_day_maps_match_a_hand_computation():
    truth = np.stack([TRUTH_A, TRUTH_B], axis=-1)[:, None, :]  # (10 days, 1 lat, 2 lon)
    prediction = np.stack([PREDICTION_A, PREDICTION_B], axis=-1)[:, None, None, :]
    maps = wet_day_maps(prediction, truth, threshold=1.0)
    # wet-day amounts of the truth at A: 1, 2, 3, 4, 5, 10; linear interpolation between order statistics
    p95, p99 = 5 + 0.75 * 5, 5 + 0.95 * 5
    np.testing.assert_allclose(maps["wet_day_frequency_bias"][0], [0.8 - 0.6, 0 / 9 - 2 / 9])
    np.testing.assert_allclose(maps["p95_wet_day_bias"][0], [1 - p95, np.nan])
    np.testing.assert_allclose(maps["p99_wet_day_bias"][0], [1 - p99, np.nan])


def test_ensemble_members_are_pooled():
    truth = np.array(TRUTH_A, dtype=float)[:, None, None]
    members = np.stack([np.full(10, 2.0), np.zeros(10)], axis=1)[:, :, None, None]  # one always wet, one dry
    maps = wet_day_maps(members, truth, threshold=1.0)
    assert maps["wet_day_frequency_bias"][0, 0] == pytest.approx(0.5 - 0.6)
    assert maps["p95_wet_day_bias"][0, 0] == pytest.approx(2 - 8.75)


def _series(values, freq, units, name="pr", standard_name="precipitation_flux"):
    values = np.asarray(values, dtype=np.float64)
    return xr.DataArray(
        values.reshape(-1, 1, 1),
        dims=("time", "lat", "lon"),
        coords={"time": pd.date_range("2000-01-01", periods=len(values), freq=freq), "lat": [0.0], "lon": [0.0]},
        name=name,
        attrs={"units": units, "standard_name": standard_name},
    )


def test_sub_daily_rates_and_amounts_become_daily_millimetres():
    hourly_rate = _series(np.r_[np.full(24, 1 / 3600), np.full(24, 2 / 3600), np.full(5, 1.0)], "h", "kg m-2 s-1")
    daily, reason = daily_millimetres(hourly_rate, precipitation_units("kg m-2 s-1"))
    assert reason is None
    np.testing.assert_allclose(daily.values.ravel(), [24.0, 48.0])  # the incomplete third day is left out
    six_hourly_amount = _series([0.001, 0.002, 0, 0.0005, 0, 0, 0, 0], "6h", "m")  # ERA5-style tp in m
    daily, _ = daily_millimetres(six_hourly_amount, precipitation_units("m"))
    np.testing.assert_allclose(daily.values.ravel(), [3.5, 0.0])
    monthly = _series([1, 2, 3], "MS", "mm day-1")
    daily, reason = daily_millimetres(monthly, precipitation_units("mm day-1"))
    assert daily is None and "is not a day or a fraction of one" in reason


@pytest.mark.parametrize(
    ("units", "factor", "amount"),
    [
        ("kg m-2 s-1", 86400, False),
        ("kg m**-2 s**-1", 86400, False),
        ("mm/day", 1, False),
        ("mm d-1", 1, False),
        ("mm h-1", 24, False),
        ("m s-1", 8.64e7, False),
        ("mm", 1, True),
        ("kg m-2", 1, True),
        ("m", 1000, True),
    ],
)
def test_precipitation_units_are_understood(units, factor, amount):
    conversion = precipitation_units(units)
    assert conversion is not None and conversion.factor == pytest.approx(factor) and conversion.amount is amount


def test_precipitation_is_recognised_by_standard_name_then_by_name():
    assert is_precipitation("rain_rate", {"standard_name": "precipitation_flux"})
    assert is_precipitation("tp", {})
    assert is_precipitation("PR", {"units": "kg m-2 s-1"})
    assert not is_precipitation("pr", {"standard_name": "air_pressure"})  # a standard name decides
    assert not is_precipitation("t2m", {"units": "K"})
    assert precipitation_units("K") is None


def _fields(units="kg m-2 s-1", name="pr", standard_name="precipitation_flux"):
    rng = np.random.default_rng(5)
    wet = rng.random((60, 6, 8)) < 0.4
    truth = np.where(wet, rng.gamma(1.0, 5.0, (60, 6, 8)), 0.0) / 86400
    prediction = np.where(rng.random((60, 6, 8)) < 0.6, rng.gamma(1.0, 4.0, (60, 6, 8)), 0.0) / 86400
    coords = {"time": pd.date_range("2000-01-01", periods=60), "lat": np.arange(6.0), "lon": np.arange(8.0)}
    attrs = {"units": units, "standard_name": standard_name}
    return (
        xr.DataArray(prediction, dims=("time", "lat", "lon"), coords=coords, name=name, attrs=attrs),
        xr.DataArray(truth, dims=("time", "lat", "lon"), coords=coords, name=name, attrs=attrs),
    )


def test_verification_adds_wet_day_scores_for_precipitation():
    prediction, truth = _fields()
    scores = Verification(precipitation=PrecipitationOptions(wet_day_threshold=0.5)).score(prediction, truth)
    expected = wet_day_maps(prediction.values[:, None] * 86400, truth.values * 86400, 0.5)
    for name in ("wet_day_frequency_bias", "p95_wet_day_bias", "p99_wet_day_bias"):
        np.testing.assert_allclose(scores.maps[name].sel(model="prediction").values, expected[name], rtol=1e-4)
        assert "a wet day has at least 0.5 mm" in scores.overall[name].attrs["long_name"]
    assert scores.overall["p95_wet_day_bias"].attrs["units"] == "mm day-1"
    assert float(scores.overall["wet_day_frequency_bias"].sel(model="prediction")) > 0.1  # 60 % vs 40 % wet days
    weights = np.cos(np.deg2rad(truth["lat"].values))[:, None] * np.ones((1, 8))
    overall = np.sum(np.abs(expected["p99_wet_day_bias"]) * weights) / weights.sum()
    assert float(scores.overall["p99_wet_day_bias"].sel(model="prediction")) == pytest.approx(overall, rel=1e-4)


def test_other_variables_get_no_wet_day_scores(caplog):
    prediction, truth = _fields(name="t2m", standard_name="air_temperature", units="K")
    assert "wet_day_frequency_bias" not in Verification().score(prediction, truth).overall
    prediction, truth = _fields(units="W m-2")  # readable, but neither a rate nor an amount of water
    with caplog.at_level(logging.WARNING):
        scores = Verification().score(prediction, truth)
    assert "wet_day_frequency_bias" not in scores.overall
    assert "no wet-day scores for pr: its units 'W m-2'" in caplog.text
    chosen = Verification(precipitation=PrecipitationOptions(variables=[])).score(*_fields())
    assert "wet_day_frequency_bias" not in chosen.overall
