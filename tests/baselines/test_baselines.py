"""The baseline ladder against known answers on small synthetic fields and the bundled ERA5 week."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr
from helpers import make_field

from dl4ds.baselines import (
    BCSD,
    LapseRate,
    create_baseline,
    interpolate_to_fine,
    list_baselines,
)
from dl4ds.data import Grid, PairedData, PerfectProg
from dl4ds.errors import ConfigError, DataError
from dl4ds.utils.interpolation import upsample

LADDER = ["nearest", "bilinear", "bicubic", "conservative", "lapse_rate", "bcsd", "regression"]
FITTED = ["lapse_rate", "bcsd", "regression"]
SMOOTH = ["nearest", "bilinear", "bicubic", "conservative"]


def pairs_from_arrays(target, inputs, *, scale, names=("t2m",), input_names=None, static=None, attrs=None):
    """PairedData from (time, variable, H, W) targets and (time, channel, H/scale, W/scale) inputs, daily from 2019-03-01."""
    input_names = tuple(input_names or names)
    fine = Grid(50.0 + 0.25 * np.arange(target.shape[2]), -10.0 + 0.25 * np.arange(target.shape[3]))
    times = pd.date_range("2019-03-01", periods=target.shape[0], freq="1D")
    static_field = None
    if static is not None:
        static_field = xr.DataArray(
            np.stack(list(static.values())).astype(np.float32),
            dims=("channel", "lat", "lon"),
            coords={"channel": list(static)} | fine.coords(),
        )
    return PairedData(
        inputs=xr.DataArray(
            inputs.astype(np.float32),
            dims=("time", "channel", "lat", "lon"),
            coords={"time": times, "channel": list(input_names)} | fine.coarsen(scale).coords(),
        ),
        target=xr.DataArray(
            target.astype(np.float32),
            dims=("time", "variable", "lat", "lon"),
            coords={"time": times, "variable": list(names)} | fine.coords(),
        ),
        static=static_field,
        scale=scale,
        input_variables=input_names,
        attrs=attrs or {name: {"units": "K"} for name in (*names, *input_names)},
    )


def block_mean(values, scale):
    *leading, h, w = values.shape
    return values.reshape(*leading, h // scale, scale, w // scale, scale).mean(axis=(-3, -1), dtype=np.float64)


def bilinear(values, scale):
    """(time, h, w) -> (time, H, W) with the networks' kernel, computed independently of the module."""
    return upsample(torch.from_numpy(values.astype(np.float32))[:, None], scale, "bilinear")[:, 0].numpy()


@pytest.fixture(scope="module")
def split(week_pairs):
    return week_pairs.select_time("2019-03-01", "2019-03-05"), week_pairs.select_time("2019-03-06", "2019-03-07")


# --------------------------------------------------------------------------- registry and interface


def test_registry_lists_the_ladder_in_order():
    assert list_baselines() == LADDER
    assert [create_baseline(name).name for name in LADDER] == LADDER


def test_unknown_baseline_and_bad_options_are_config_errors():
    with pytest.raises(ConfigError, match="unknown baseline 'kriging'; choose one of nearest, bilinear, bicubic"):
        create_baseline("kriging")
    with pytest.raises(ConfigError, match="invalid options for the bcsd baseline.*n_quantiles, multiplicative"):
        create_baseline("bcsd", quantiles=10)
    with pytest.raises(ConfigError, match="bcsd baseline: n_quantiles=1 must be at least 2"):
        create_baseline("bcsd", n_quantiles=1)
    with pytest.raises(ConfigError, match="lapse_rate baseline: interpolation: .*'nearest', 'bilinear' or 'bicubic'"):
        create_baseline("lapse_rate", interpolation="spline")
    with pytest.raises(ConfigError, match="regression baseline: ridge=0 must be greater than 0"):
        create_baseline("regression", ridge=0)
    with pytest.raises(ConfigError, match="regression baseline: ridge: .*finite"):
        create_baseline("regression", ridge=float("inf"))


@pytest.mark.parametrize("name", FITTED)
def test_fitted_baselines_refuse_to_predict_before_fit(name, week_pairs):
    with pytest.raises(ConfigError, match=rf"the {name} baseline learns from training data; call fit\(train\) first"):
        create_baseline(name).predict(week_pairs)


@pytest.mark.parametrize("name", LADDER)
def test_predictions_have_the_target_layout_and_leave_the_data_alone(name, split):
    train, test = split
    before = (test.inputs.values.copy(), test.target.values.copy(), test.static.values.copy())
    baseline = create_baseline(name)
    assert baseline.fit(train) is baseline
    out = baseline.predict(test)
    assert list(out.data_vars) == ["t2m"]
    field = out["t2m"]
    assert field.dims == ("time", "lat", "lon") and field.dtype == np.float32
    for dim in ("time", "lat", "lon"):
        np.testing.assert_array_equal(field[dim].values, test.target[dim].values)
    assert field.attrs == dict(test.attrs["t2m"]) and field.attrs["units"] == "K"
    assert np.isfinite(field.values).all()
    for kept, now in zip(before, (test.inputs.values, test.target.values, test.static.values)):
        np.testing.assert_array_equal(kept, now)


# --------------------------------------------------------------------------- interpolation rungs


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("name", SMOOTH)
def test_a_constant_field_is_reproduced(name, scale):
    pairs = PerfectProg(scale).pair(make_field(np.full((2, 6 * scale, 4 * scale), 281.37)))
    predicted = create_baseline(name).predict(pairs)["t2m"].values
    np.testing.assert_allclose(predicted, np.float32(281.37), rtol=1e-6)  # float32 rounding of the kernel weights


def test_nearest_repeats_each_coarse_value_over_its_block(week_pairs):
    predicted = create_baseline("nearest").predict(week_pairs)["t2m"].values
    coarse = week_pairs.inputs.sel(channel="t2m").values
    np.testing.assert_array_equal(predicted, coarse.repeat(4, axis=1).repeat(4, axis=2))


def test_bilinear_reproduces_a_linear_field_away_from_the_edges():
    lat = np.arange(24)[:, None]
    lon = np.arange(32)[None, :]
    values = 270.0 + 0.4 * lat - 0.3 * lon + np.arange(3)[:, None, None]
    pairs = PerfectProg(4).pair(make_field(np.broadcast_to(values, (3, 24, 32))))
    predicted = create_baseline("bilinear").predict(pairs)["t2m"].values
    interior = (slice(None), slice(2, -2), slice(2, -2))
    np.testing.assert_allclose(predicted[interior], pairs.target.values[:, 0][interior], atol=1e-4)
    assert np.abs(predicted - pairs.target.values[:, 0]).max() > 0.1  # the edge cells are not linear


def test_conservative_keeps_block_means_and_is_smoother_than_nearest(week_pairs):
    conservative = create_baseline("conservative").predict(week_pairs)["t2m"].values
    np.testing.assert_allclose(
        block_mean(conservative, 4), week_pairs.inputs.sel(channel="t2m").values, rtol=0, atol=1e-4
    )
    nearest = create_baseline("nearest").predict(week_pairs)["t2m"].values

    def roughness(values):  # mean squared difference between neighbours: block edges count heavily
        return np.mean(np.diff(values, axis=1) ** 2) + np.mean(np.diff(values, axis=2) ** 2)

    assert roughness(conservative) < 0.5 * roughness(nearest)


@pytest.mark.parametrize("name", SMOOTH)
def test_a_coarse_cell_without_data_gives_nan_over_its_block_only(name):
    values = 280.0 + np.random.default_rng(0).normal(size=(2, 16, 24))
    values[:, :8, :4] = np.nan  # two coarse cells of sea
    pairs = PerfectProg(4).pair(make_field(values))
    predicted = create_baseline(name).predict(pairs)["t2m"].values
    np.testing.assert_array_equal(np.isnan(predicted), np.isnan(values))
    if name == "conservative":
        valid = block_mean(np.nan_to_num(predicted), 4)[:, 2:, 1:]
        np.testing.assert_allclose(valid, pairs.inputs.values[:, 0, 2:, 1:], atol=1e-4)


def test_interpolate_to_fine_is_the_bicubic_rung(week_pairs):
    coarse = week_pairs.inputs.sel(channel="t2m", drop=True)
    coarse.attrs = {"units": "K"}
    fine = interpolate_to_fine(coarse, 4)
    assert fine.dims == coarse.dims and fine.attrs == {"units": "K"} and fine.dtype == np.float32
    np.testing.assert_array_equal(fine.values, create_baseline("bicubic").predict(week_pairs)["t2m"].values)


# --------------------------------------------------------------------------- lapse rate


def mountain_pairs(units="m", name="elevation"):
    """Truth = smooth field + (-6.5e-3 K/m) * elevation on a 16 x 16 grid with rough terrain."""
    rng = np.random.default_rng(1)
    elevation = rng.uniform(0.0, 1500.0, size=(16, 16))
    days = 280.0 + 2.0 * rng.normal(size=12)
    truth = days[:, None, None] + 0.05 * np.arange(16)[None, :, None] - 6.5e-3 * elevation
    stored = elevation * 9.80665 if units.startswith("m**2") else elevation
    static = xr.Dataset({name: (("latitude", "longitude"), stored.astype(np.float32), {"units": units})})
    static = static.assign_coords(latitude=50.0 + 0.25 * np.arange(16), longitude=-10.0 + 0.25 * np.arange(16))
    pairs = PerfectProg(4).pair(make_field(truth), static=static)
    return pairs.select_time("2019-03-01", "2019-03-08"), pairs.select_time("2019-03-09", "2019-03-12")


@pytest.mark.parametrize(("units", "name"), [("m", "elevation"), ("m**2 s**-2", "z")])
def test_lapse_rate_recovers_a_planted_rate(units, name):
    train, test = mountain_pairs(units, name)
    baseline = create_baseline("lapse_rate").fit(train)
    assert baseline.rates_["t2m"] == pytest.approx(-6.5e-3, rel=0.01)
    truth = test.target.values[:, 0]

    def rmse(baseline_name):
        return np.sqrt(np.mean((create_baseline(baseline_name).fit(train).predict(test)["t2m"].values - truth) ** 2))

    assert rmse("lapse_rate") < 0.2 * rmse("bilinear")


def test_lapse_rate_needs_an_elevation(week_pairs, era5_week, static):
    with pytest.raises(DataError, match="has no static fields; pair the data with static="):
        create_baseline("lapse_rate").fit(replace(week_pairs, static=None))
    land_only = PerfectProg(4).pair(era5_week, static=static[["land_fraction"]])
    with pytest.raises(
        DataError, match=r"none of the static fields \['land_fraction'\].*set the lapse_rate option elevation"
    ):
        create_baseline("lapse_rate").fit(land_only)
    with pytest.raises(DataError, match=r"\['elevation', 'land_fraction'\] do not include the elevation 'orog'"):
        LapseRate(elevation="orog").fit(week_pairs)
    assert LapseRate(elevation="elevation").fit(week_pairs).rates_["t2m"] < 0


# --------------------------------------------------------------------------- BCSD


def mos_pairs(truth, coarse_input, name="t2m"):
    return pairs_from_arrays(truth[:, None], coarse_input[:, None], scale=4, names=(name,))


def stationary_truth(rng, n_times=60):
    pattern = 2.0 * np.sin(np.arange(16)[:, None] / 3.0) + 0.1 * np.arange(24)[None, :]
    return 280.0 + pattern + 3.0 * rng.normal(size=(n_times, 1, 1)) + 0.5 * rng.normal(size=(n_times, 16, 24))


def test_bcsd_removes_an_additive_bias_on_held_out_times():
    truth = stationary_truth(np.random.default_rng(2))
    pairs = mos_pairs(truth, block_mean(truth, 4) + 3.0)
    train, test = pairs.select_time(None, "2019-04-09"), pairs.select_time("2019-04-10", None)
    bcsd = create_baseline("bcsd").fit(train).predict(test)["t2m"].values
    raw = create_baseline("bilinear").predict(test)["t2m"].values
    observed = test.target.values[:, 0]
    assert abs(np.mean(bcsd - observed)) < 0.1
    assert np.mean(raw - observed) == pytest.approx(3.0, abs=0.05)


def test_bcsd_removes_a_ratio_bias_of_a_multiplicative_variable():
    rng = np.random.default_rng(3)
    rain = rng.gamma(2.0, 1.5, size=(60, 1, 1)) * rng.gamma(4.0, 0.25, size=(60, 16, 24))
    pairs = mos_pairs(rain, 1.5 * block_mean(rain, 4), name="tp")
    train, test = pairs.select_time(None, "2019-04-09"), pairs.select_time("2019-04-10", None)
    with pytest.raises(ConfigError, match=r"multiplicative names \['pr'\].*choose among \['tp'\]"):
        BCSD(multiplicative=["pr"]).fit(train)
    bcsd = BCSD(multiplicative="tp").fit(train).predict(test)["tp"].values
    raw = create_baseline("bilinear").predict(test)["tp"].values
    observed = test.target.values[:, 0]
    assert np.mean(bcsd) / np.mean(observed) == pytest.approx(1.0, abs=0.05)
    assert np.mean(raw) / np.mean(observed) == pytest.approx(1.5, abs=0.01)
    assert (bcsd >= 0).all()


def test_quantile_mapping_leaves_an_unbiased_input_unchanged(split):
    train, test = split
    bcsd = BCSD(n_quantiles=50).fit(train)
    for data in (train, test):
        corrected = bcsd.bias_correct(data)
        assert corrected.dims == ("time", "variable", "lat", "lon")
        np.testing.assert_allclose(corrected.values, data.inputs.values, atol=1e-3)


# --------------------------------------------------------------------------- regression


def test_regression_recovers_a_planted_linear_relation_per_point():
    rng = np.random.default_rng(4)
    coarse = 10.0 + 2.0 * rng.normal(size=(30, 2, 4, 6))  # t2m and a predictor on the coarse grid
    a, b, c = (rng.normal(size=(16, 24)) for _ in range(3))
    truth = a * bilinear(coarse[:, 0], 4) + b * bilinear(coarse[:, 1], 4) + c
    truth[:18, 0, 0] = np.nan  # 2 valid training times left: too few for 3 coefficients
    truth[:5, 0, 1] = np.nan  # still plenty
    pairs = pairs_from_arrays(truth[:, None], coarse, scale=4, input_names=("t2m", "msl"))
    train, test = pairs.select_time(None, "2019-03-20"), pairs.select_time("2019-03-21", None)
    baseline = create_baseline("regression").fit(train)
    predicted = baseline.predict(test)["t2m"].values
    assert np.isnan(predicted[:, 0, 0]).all() and np.isnan(predicted).sum() == predicted.shape[0]
    np.testing.assert_allclose(predicted[:, 0, 1:], truth[20:, 0, 1:], atol=1e-4)
    np.testing.assert_allclose(predicted[:, 1:], truth[20:, 1:], atol=1e-4)
    np.testing.assert_allclose(baseline.coef_[0, 1, 1:], b[1:], atol=1e-4)


# --------------------------------------------------------------------------- training data only, mismatches


@pytest.mark.parametrize("name", FITTED)
def test_predictions_do_not_depend_on_the_truth_of_the_predicted_period(name, split):
    train, test = split
    baseline = create_baseline(name).fit(train)
    expected = baseline.predict(test)["t2m"].values
    for garbage in (xr.full_like(test.target, np.nan), test.target + 100.0):
        np.testing.assert_array_equal(baseline.predict(replace(test, target=garbage))["t2m"].values, expected)
    np.testing.assert_array_equal(create_baseline(name).fit(train).predict(test)["t2m"].values, expected)


@pytest.mark.parametrize("name", LADDER)
def test_data_unlike_the_training_data_is_refused(name, split):
    train, test = split
    baseline = create_baseline(name).fit(train)
    renamed = replace(test, target=test.target.assign_coords(variable=["tas"]), attrs={"tas": {"units": "K"}})
    with pytest.raises(DataError, match=r"fitted on: target variables \['tas'\] \(fitted with \['t2m'\]\)"):
        baseline.predict(renamed)
    with pytest.raises(DataError, match=r"static variables \[\] \(fitted with \['elevation', 'land_fraction'\]\)"):
        baseline.predict(replace(test, static=None))
    window = replace(
        test,
        inputs=test.inputs.isel(lat=slice(0, 4)),
        target=test.target.isel(lat=slice(0, 16)),
        static=test.static.isel(lat=slice(0, 16)),
    )
    if baseline.per_point:
        with pytest.raises(DataError, match="fine grid 16 x 48 cells.*fitted on 32 x 48 cells"):
            baseline.predict(window)
    else:
        assert baseline.predict(window)["t2m"].shape == (16, 16, 48)
