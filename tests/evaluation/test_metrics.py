"""Deterministic scores against hand-computed values, and their input checks."""

import numpy as np
import pandas as pd
import pytest
from helpers import ERRORS, TIMES, TRUTH, field

from dl4ds import datasets
from dl4ds.errors import DataError
from dl4ds.evaluation import compute_metrics, rmse_map


def weighted_reference(pred, truth, lat):
    """Manual numpy computation with cos(latitude) weights on the valid points."""
    w = np.broadcast_to(np.cos(np.deg2rad(np.asarray(lat)))[None, :, None], pred.shape)
    ok = np.isfinite(pred) & np.isfinite(truth)
    p, t, w = pred[ok], truth[ok], w[ok]
    e = p - t
    mp, mt = np.average(p, weights=w), np.average(t, weights=w)
    cov = np.average((p - mp) * (t - mt), weights=w)
    corr = cov / np.sqrt(np.average((p - mp) ** 2, weights=w) * np.average((t - mt) ** 2, weights=w))
    return {
        "rmse": np.sqrt(np.average(e**2, weights=w)),
        "mae": np.average(np.abs(e), weights=w),
        "bias": np.average(e, weights=w),
        "correlation": corr,
    }


def test_unweighted_scores_match_hand_computed_values():
    scores = compute_metrics(field(TRUTH + ERRORS), field(TRUTH), weights=None)
    assert scores["bias"] == pytest.approx(4 / 12)
    assert scores["mae"] == pytest.approx(12 / 12)
    assert scores["rmse"] == pytest.approx(np.sqrt(22 / 12))
    expected_r = np.corrcoef((TRUTH + ERRORS).ravel(), TRUTH.ravel())[0, 1]
    assert scores["correlation"] == pytest.approx(expected_r)
    assert set(scores) == {"rmse", "mae", "bias", "correlation"}
    assert all(isinstance(value, float) for value in scores.values())


def test_correlation_of_linear_relations_is_plus_or_minus_one():
    truth = field(TRUTH)
    assert compute_metrics(2 * truth + 1, truth)["correlation"] == pytest.approx(1.0)
    assert compute_metrics(-truth, truth)["correlation"] == pytest.approx(-1.0)
    perfect = compute_metrics(truth, truth)
    assert perfect["rmse"] == 0 and perfect["mae"] == 0 and perfect["bias"] == 0


def test_nan_points_are_excluded():
    pred = TRUTH + ERRORS
    pred[2, 1, 0] = np.nan  # the point with error 3
    truth = TRUTH.copy()
    truth[0, 0, 0] = np.nan  # the point with error 1
    scores = compute_metrics(field(pred), field(truth), weights=None)
    # remaining 10 errors: sum 4 - 3 - 1 = 0, |.| 12 - 3 - 1 = 8, squares 22 - 9 - 1 = 12
    assert scores["bias"] == pytest.approx(0.0, abs=1e-12)
    assert scores["mae"] == pytest.approx(8 / 10)
    assert scores["rmse"] == pytest.approx(np.sqrt(12 / 10))
    ok = np.isfinite(pred) & np.isfinite(truth)
    assert scores["correlation"] == pytest.approx(np.corrcoef(pred[ok], truth[ok])[0, 1])


def test_latitude_weights_match_manual_weighted_computation():
    pred = TRUTH + ERRORS
    pred[1, 0, 1] = np.nan
    scores = compute_metrics(field(pred), field(TRUTH))  # weights="latitude" is the default
    expected = weighted_reference(pred, TRUTH, lat=(0.0, 60.0))
    for name, value in expected.items():
        assert scores[name] == pytest.approx(value, rel=1e-12), name
    # lat 60 counts half as much as lat 0, so weighting changes the answer
    assert scores["bias"] != pytest.approx(compute_metrics(field(pred), field(TRUTH), weights=None)["bias"])


def test_latitude_order_and_coordinate_names_do_not_matter():
    pred, truth = field(TRUTH + ERRORS), field(TRUTH)
    reference = compute_metrics(pred, truth)
    flipped = truth.isel(lat=slice(None, None, -1)).rename(lat="latitude", lon="longitude", time="valid_time")
    assert flipped["latitude"].values[0] > flipped["latitude"].values[-1]
    for name, value in compute_metrics(pred, flipped).items():
        assert value == pytest.approx(reference[name], rel=1e-12)
    both = compute_metrics(pred.isel(lat=slice(None, None, -1)).rename(lat="latitude"), flipped)
    assert both == pytest.approx(reference, rel=1e-12)
    # a different dimension order is fine too
    assert compute_metrics(pred.transpose("lon", "lat", "time"), truth) == pytest.approx(reference, rel=1e-12)


def test_times_are_aligned_on_their_intersection():
    pred = field(TRUTH + ERRORS)
    truth = field(TRUTH).isel(time=slice(1, 3))
    scores = compute_metrics(pred, truth, weights=None)
    e = ERRORS[1:]
    assert scores["bias"] == pytest.approx(e.mean())
    assert scores["rmse"] == pytest.approx(np.sqrt((e**2).mean()))


def test_no_common_time_raises():
    pred = field(TRUTH + ERRORS)
    truth = field(TRUTH).assign_coords(time=TIMES + pd.Timedelta(days=1))
    with pytest.raises(DataError, match="no time in common"):
        compute_metrics(pred, truth)


def test_mismatched_grids_raise():
    pred = field(TRUTH + ERRORS)
    with pytest.raises(DataError, match="different grids.*[Rr]egrid"):
        compute_metrics(pred, field(TRUTH, lon=(10.5, 11.5)))
    with pytest.raises(DataError, match="different grids"):
        compute_metrics(pred, field(TRUTH[:, :, :1], lon=(10.0,)))
    with pytest.raises(DataError, match="dims"):
        compute_metrics(pred, field(TRUTH).isel(time=0, drop=True))


def test_units_are_converted_not_compared():
    pred = field(TRUTH + ERRORS)
    reference = compute_metrics(pred, field(TRUTH))
    # the truth in degC: the prediction (K) is converted to degC, so the scores (differences) are the same
    in_celsius = compute_metrics(pred, field(TRUTH - 273.15, units="degC"))
    assert in_celsius == pytest.approx(reference, abs=1e-9)
    assert compute_metrics(pred.assign_attrs(units="kelvin"), field(TRUTH)) == pytest.approx(reference, abs=1e-12)
    with pytest.raises(DataError, match="'m'.*measure different quantities"):
        compute_metrics(pred, field(TRUTH, units="m"))
    with pytest.raises(DataError, match="has no units.*--truth-units"):
        compute_metrics(pred, field(TRUTH, units=None).assign_attrs(units=None))


def test_grid_within_tolerance_and_longitude_convention_accepted():
    pred = field(TRUTH + ERRORS, lon=(-1.0, 0.0))
    truth = field(TRUTH, lon=(359.0, 360.0 + 1e-6))
    assert compute_metrics(pred, truth, weights=None)["rmse"] == pytest.approx(np.sqrt(22 / 12))


def test_no_valid_point_raises():
    nan = np.full_like(TRUTH, np.nan)
    with pytest.raises(DataError, match="no point where both are valid"):
        compute_metrics(field(nan), field(TRUTH))
    # valid points that never coincide
    pred, truth = TRUTH.copy(), TRUTH.copy()
    pred[:, 0] = np.nan
    truth[:, 1] = np.nan
    with pytest.raises(DataError, match="no point where both are valid"):
        compute_metrics(field(pred), field(truth))


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="weights"):
        compute_metrics(field(TRUTH), field(TRUTH), weights="area")
    with pytest.raises(DataError, match="Dataset"):
        compute_metrics(field(TRUTH).to_dataset(name="t2m"), field(TRUTH))
    with pytest.raises(DataError, match="no lat"):
        compute_metrics(field(TRUTH, names=("time", "y", "lon")), field(TRUTH))


def test_constant_field_has_nan_correlation():
    scores = compute_metrics(field(np.full_like(TRUTH, 280.0)), field(TRUTH), weights=None)
    assert np.isnan(scores["correlation"])
    assert scores["bias"] == pytest.approx(280.0 - TRUTH.mean())


def test_rmse_map_values_shape_and_attrs():
    pred = TRUTH + ERRORS
    pred[:, 1, 1] = np.nan  # no valid time at this point -> NaN
    pred[0, 0, 0] = np.nan  # one time missing -> mean over the other two
    truth = field(TRUTH).isel(lat=slice(None, None, -1)).rename(lat="latitude", lon="longitude")
    truth.attrs["long_name"] = "2 metre temperature"
    result = rmse_map(field(pred), truth)
    assert result.dims == ("lat", "lon")
    assert result.shape == (2, 2)
    np.testing.assert_allclose(result["lat"], [0.0, 60.0])
    expected = np.array(
        [
            [np.sqrt((0 + 4) / 2), np.sqrt((1 + 0 + 0) / 3)],
            [np.sqrt((4 + 1 + 9) / 3), np.nan],
        ]
    )
    np.testing.assert_allclose(result.values, expected)
    assert result.attrs["units"] == "K"
    assert "2 metre temperature" in result.attrs["long_name"]


def test_rmse_map_mean_square_is_consistent_with_unweighted_rmse():
    pred, truth = field(TRUTH + ERRORS), field(TRUTH)
    mse = float((rmse_map(pred, truth) ** 2).mean())
    assert np.sqrt(mse) == pytest.approx(compute_metrics(pred, truth, weights=None)["rmse"])


@pytest.fixture(scope="module")
def t2m():
    return datasets.era5_t2m_uk()["t2m"]


def test_real_data_matches_numpy(t2m):
    rng = np.random.default_rng(0)
    noise = rng.normal(0.0, 0.5, t2m.shape).astype(np.float32)
    pred = (t2m + noise).rename(latitude="lat", longitude="lon").isel(lat=slice(None, None, -1))
    scores = compute_metrics(pred, t2m)
    rmse = rmse_map(pred, t2m)
    expected = weighted_reference(
        pred.values[:, ::-1].astype(np.float64), t2m.values.astype(np.float64), t2m["latitude"].values
    )
    for name, value in expected.items():
        assert scores[name] == pytest.approx(value, rel=1e-6), name
    assert 0.45 < scores["rmse"] < 0.55
    assert rmse.shape == (33, 49)
    assert rmse["lat"].values[0] < rmse["lat"].values[-1]
    np.testing.assert_allclose(rmse.values[::-1], np.sqrt(np.mean(noise.astype(np.float64) ** 2, axis=0)), rtol=1e-3)


def test_lazy_dask_inputs_give_the_same_scores(t2m):
    truth = t2m.isel(time=slice(0, 48))
    pred = truth + 0.3
    eager = compute_metrics(pred, truth)
    lazy = compute_metrics(pred.chunk(time=12), truth.chunk(time=12))
    assert lazy == pytest.approx(eager, rel=1e-9)
    assert eager["bias"] == pytest.approx(0.3, rel=1e-4)
