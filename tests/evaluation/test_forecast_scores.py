"""Forecast-skill scores against hand computations and scikit-learn, on small synthetic hindcasts."""

import itertools
import math

import numpy as np
import pytest
from helpers import make_hindcast
from scipy import stats
from sklearn.metrics import roc_auc_score

from dl4ds.evaluation import ForecastVerification
from dl4ds.evaluation import forecast_scores as fs

YEARS, MEMBERS, LEADS, NY, NX = 6, 5, 2, 2, 3


@pytest.fixture(scope="module")
def case():
    """A small hindcast, its scores without leave-one-out, and the anomalies computed here by hand."""
    hindcast, observations = make_hindcast(YEARS, MEMBERS, LEADS, NY, NX, signal=1.0, noise=0.8, seed=3)
    scores = ForecastVerification({"leave_one_out": False, "resamples": 50}).score({"model": hindcast}, observations)
    forecast = hindcast["tas"].values.astype(np.float64)  # (n, M, L, Y, X)
    valid = hindcast["valid_time"].values
    observed = observations["tas"].sel(time=valid.ravel()).values.astype(np.float64).reshape(YEARS, LEADS, NY, NX)
    members = forecast - forecast.mean(axis=(0, 1))
    anomalies = observed - observed.mean(axis=0)
    weights = np.cos(np.deg2rad(hindcast["latitude"].values))[:, None] * np.ones((NY, NX))
    return scores, members, anomalies, weights


def test_acc_and_rmse_are_those_of_the_ensemble_mean_anomalies(case):
    scores, members, observed, weights = case
    mean = members.mean(axis=1)
    acc = np.empty((LEADS, NY, NX))
    for lead, y, x in itertools.product(range(LEADS), range(NY), range(NX)):
        acc[lead, y, x] = np.corrcoef(mean[:, lead, y, x], observed[:, lead, y, x])[0, 1]
    maps = scores.maps.sel(model="model")
    np.testing.assert_allclose(maps["acc"].values, acc, rtol=1e-6)
    np.testing.assert_allclose(maps["rmse"].values, np.sqrt(((mean - observed) ** 2).mean(axis=0)), rtol=1e-5)
    area_acc = (acc * weights).sum(axis=(1, 2)) / weights.sum()
    np.testing.assert_allclose(scores.area["acc"].sel(model="model").values, area_acc, rtol=1e-6)


def crps_by_integration(ensemble, observation):
    """CRPS as the integral of (F(z) - 1[z >= y])**2 over z, with F the ensemble's empirical distribution."""
    z = np.linspace(-8, 8, 40001)
    cdf = (ensemble[:, None] <= z[None, :]).mean(axis=0)
    return np.trapezoid((cdf - (z >= observation)) ** 2, z)


def fair_crps_by_hand(ensemble, observation):
    """The fair CRPS: the integral CRPS with its spread term scaled by M / (M - 1) (Ferro 2014)."""
    m = ensemble.size
    spread = np.abs(ensemble[:, None] - ensemble[None, :]).sum() / (2 * m * m)
    return crps_by_integration(ensemble, observation) - spread / (m - 1)


def test_fair_crps_is_the_pairwise_form_over_distinct_members():
    rng = np.random.default_rng(4)
    members, truth = rng.normal(size=(7, 6, 2)), rng.normal(size=(7, 2))
    pairs = np.abs(members[:, :, None] - members[:, None, :]).sum(axis=(1, 2)) / (2 * 6 * 5)
    expected = np.abs(members - truth[:, None]).mean(axis=1) - pairs
    np.testing.assert_allclose(fs.fair_crps(members, truth), expected, rtol=1e-12)


def test_crpss_matches_the_integral_definition_fair_to_ensemble_size_with_the_climatology_of_the_other_years(case):
    scores, members, observed, weights = case
    crps = np.empty((YEARS, LEADS, NY, NX))
    clim = np.empty_like(crps)
    for i, lead, y, x in itertools.product(range(YEARS), range(LEADS), range(NY), range(NX)):
        crps[i, lead, y, x] = fair_crps_by_hand(members[i, :, lead, y, x], observed[i, lead, y, x])
        others = np.delete(observed[:, lead, y, x], i)
        clim[i, lead, y, x] = fair_crps_by_hand(others, observed[i, lead, y, x])
    maps = scores.maps.sel(model="model")
    np.testing.assert_allclose(maps["crps"].values, crps.mean(axis=0), atol=2e-4)
    np.testing.assert_allclose(maps["crpss"].values, 1 - crps.sum(axis=0) / clim.sum(axis=0), atol=2e-3)
    area = 1 - (crps.sum(axis=0) * weights).sum(axis=(1, 2)) / (clim.sum(axis=0) * weights).sum(axis=(1, 2))
    np.testing.assert_allclose(scores.area["crpss"].sel(model="model").values, area, atol=1e-3)


def tercile_probabilities(members, observed):
    """Per start: forecast category probabilities (n, 3) and observed one-hot categories (n, 3) at one point."""
    low, high = np.quantile(members.ravel(), [1 / 3, 2 / 3])
    olow, ohigh = np.quantile(observed, [1 / 3, 2 / 3])
    below, above = (members < low).mean(axis=1), (members > high).mean(axis=1)
    forecast = np.stack([below, 1 - below - above, above], axis=1)
    category = np.where(observed < olow, 0, np.where(observed > ohigh, 2, 1))
    return forecast, np.eye(3)[category]


def test_rpss_is_the_ranked_probability_skill_against_equal_tercile_odds(case):
    scores, members, observed, _ = case
    expected = np.empty((LEADS, NY, NX))
    for lead, y, x in itertools.product(range(LEADS), range(NY), range(NX)):
        forecast, outcome = tercile_probabilities(members[:, :, lead, y, x], observed[:, lead, y, x])
        rps = ((np.cumsum(forecast, axis=1) - np.cumsum(outcome, axis=1)) ** 2).sum(axis=1)
        rps_clim = ((np.cumsum(np.full(3, 1 / 3)) - np.cumsum(outcome, axis=1)) ** 2).sum(axis=1)
        expected[lead, y, x] = 1 - rps.sum() / rps_clim.sum()
    np.testing.assert_allclose(scores.maps["rpss"].sel(model="model").values, expected, rtol=1e-9, atol=1e-12)


def test_roc_areas_equal_scikit_learns_roc_auc_score(case):
    scores, members, observed, weights = case
    pooled = {lead: ([], [], []) for lead in range(LEADS)}
    for lead, y, x in itertools.product(range(LEADS), range(NY), range(NX)):
        forecast, outcome = tercile_probabilities(members[:, :, lead, y, x], observed[:, lead, y, x])
        events, probability = outcome[:, 2], forecast[:, 2]
        if 0 < events.sum() < events.size:
            expected = roc_auc_score(events, probability)
            assert scores.maps["roc_upper"].sel(model="model").values[lead, y, x] == pytest.approx(expected)
        pooled[lead][0].extend(events)
        pooled[lead][1].extend(probability)
        pooled[lead][2].extend([weights[y, x]] * events.size)
    for lead, (events, probability, weight) in pooled.items():
        expected = roc_auc_score(events, probability, sample_weight=weight)
        assert float(scores.area["roc_upper"].sel(model="model").isel(lead=lead)) == pytest.approx(expected)


def test_roc_area_kernels_match_scikit_learn_with_ties():
    rng = np.random.default_rng(1)
    probability = rng.integers(0, 6, size=(40, 3)) / 5  # many ties
    events = (rng.random((40, 3)) < 0.2 + 0.6 * probability).astype(float)
    weights = rng.random((40, 3))
    maps = fs.roc_area(probability, events, weights)
    for column in range(3):
        expected = roc_auc_score(events[:, column], probability[:, column], sample_weight=weights[:, column])
        assert maps[column] == pytest.approx(expected)
    counts = np.zeros((6, 2))
    np.add.at(counts, ((probability[:, 0] * 5).round().astype(int), events[:, 0].astype(int)), weights[:, 0])
    assert fs.roc_area_from_counts(counts) == pytest.approx(maps[0])


def test_reliability_bins_hold_mean_probability_and_observed_frequency(case):
    scores, members, observed, weights = case
    lead = 1
    probability, events, weight = [], [], []
    for y, x in itertools.product(range(NY), range(NX)):
        forecast, outcome = tercile_probabilities(members[:, :, lead, y, x], observed[:, lead, y, x])
        probability.extend(forecast[:, 0])
        events.extend(outcome[:, 0])
        weight.extend([weights[y, x]] * YEARS)
    probability, events, weight = map(np.asarray, (probability, events, weight))
    bins = np.minimum((probability * 10).astype(int), 9)
    diagram = scores.reliability.sel(model="model", event="lower_tercile").isel(lead=lead)
    for index in range(10):
        chosen = bins == index
        if not chosen.any():
            assert np.isnan(diagram["observed_frequency"].values[index])
            continue
        assert diagram["forecast_probability"].values[index] == pytest.approx(
            np.average(probability[chosen], weights=weight[chosen])
        )
        assert diagram["observed_frequency"].values[index] == pytest.approx(
            np.average(events[chosen], weights=weight[chosen])
        )
        assert diagram["frequency"].values[index] == pytest.approx(weight[chosen].sum() / weight.sum())


def test_bootstrap_interval_of_a_mean_over_three_years_matches_the_exact_resampling_distribution():
    values = np.array([1.0, 2.0, 6.0])  # one statistic per year; the score is its mean over the resampled years
    weights = fs.resample_weights(3, 20000, np.random.default_rng(0))
    assert weights[0].tolist() == [1, 1, 1] and (weights[1:].sum(axis=1) == 3).all()
    resampled = weights[1:] @ values / 3
    # all 27 equally likely draws of three years with replacement
    exact = np.sort([np.mean(draw) for draw in itertools.product(values, repeat=3)])
    low, high = fs.percentile_interval(resampled, 0.8)
    assert low == pytest.approx(np.quantile(exact, 0.1), abs=0.01)
    assert high == pytest.approx(np.quantile(exact, 0.9), abs=0.01)
    share = (exact <= 2.0).mean()
    assert (resampled <= 2.0).mean() == pytest.approx(share, abs=0.01)
    assert fs.p_values(resampled - 2.0) == pytest.approx(2 * min(share, (exact >= 2.0).mean()), abs=0.02)


def _weighted_correlation(x: np.ndarray, y: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Pearson correlation of x and y with each row of ``weights`` (R, n) as the multiplicities of the pairs."""
    total = weights.sum(axis=1)
    mx, my = weights @ x / total, weights @ y / total
    cxy = weights @ (x * y) / total - mx * my
    return cxy / np.sqrt((weights @ x**2 / total - mx**2) * (weights @ y**2 / total - my**2))


def test_bca_interval_matches_scipy_for_a_skewed_mean_and_a_correlation():
    rng = np.random.default_rng(1)
    years = 8
    weights = fs.resample_weights(years, 20000, np.random.default_rng(0))[1:]
    jackknife = fs.jackknife_weights(years)
    assert (jackknife.sum(axis=1) == years - 1).all() and (np.diag(jackknife) == 0).all()
    x = rng.lognormal(0.0, 1.0, years)  # a skewed sample: the BCa interval differs from the percentile one
    ours = fs.bca_interval(np.array(x.mean()), weights @ x / years, jackknife @ x / (years - 1), 0.9)
    theirs = stats.bootstrap((x,), np.mean, method="BCa", n_resamples=20000, confidence_level=0.9, rng=0)
    np.testing.assert_allclose(ours, theirs.confidence_interval, atol=0.02 * x.std())
    assert abs(ours[0] - fs.percentile_interval(weights @ x / years, 0.9)[0]) > 0.005
    y = 0.6 * x + rng.normal(0.0, 0.8, years)
    ones = np.ones((1, years))
    ours = fs.bca_interval(
        _weighted_correlation(x, y, ones)[0],
        _weighted_correlation(x, y, weights),
        _weighted_correlation(x, y, jackknife),
        0.9,
    )
    theirs = stats.bootstrap(
        (x, y),
        lambda a, b: np.corrcoef(a, b)[0, 1],
        paired=True,
        vectorized=False,
        method="BCa",
        n_resamples=20000,
        confidence_level=0.9,
        rng=0,
    )
    np.testing.assert_allclose(ours, theirs.confidence_interval, atol=0.02)


def test_bca_interval_is_nan_without_finite_resamples_and_takes_the_end_beyond_every_resample():
    resampled = np.array([[np.nan, 1.0], [np.nan, 2.0], [np.nan, 3.0]])
    interval = fs.bca_interval(np.array([0.5, 10.0]), resampled, np.array([[1.0, 1.0], [2.0, 2.0]]), 0.9)
    assert np.isnan(interval[:, 0]).all()
    # the estimate lies above all resamples: the interval moves up to the top ones, finite
    assert (
        interval[1, 1] == pytest.approx(3.0, abs=0.01) and interval[0, 1] > fs.percentile_interval(resampled, 0.9)[0, 1]
    )


def test_the_acc_interval_of_one_point_is_the_bca_interval_of_the_resampled_correlations():
    years, resamples = 7, 300
    hindcast, observations = make_hindcast(years, 5, 1, 1, 1, signal=0.7, noise=1.0, seed=4)
    options = {"resamples": resamples, "leave_one_out": False, "seed": 3}
    area = ForecastVerification(options).score({"model": hindcast}, observations).area.sel(model="model")
    mean = hindcast["tas"].values.astype(np.float64).mean(axis=1)[:, 0, 0, 0]  # one start a year, (years,)
    observed = observations["tas"].sel(time=hindcast["valid_time"].values.ravel()).values.ravel().astype(np.float64)
    weights = fs.resample_weights(years, resamples, np.random.default_rng(3))
    correlations = _weighted_correlation(mean, observed, weights)
    assert float(area["acc"].item()) == pytest.approx(correlations[0], abs=1e-6)
    expected = fs.bca_interval(
        correlations[0], correlations[1:], _weighted_correlation(mean, observed, fs.jackknife_weights(years)), 0.9
    )
    np.testing.assert_allclose(area["acc_interval"].values.ravel(), expected, atol=1e-4)


def test_a_perfect_ensemble_has_skill_one_with_a_degenerate_interval():
    hindcast, observations = make_hindcast(5, 4, 2, 2, 2, signal=1.0, noise=0.0, seed=1)
    scores = ForecastVerification({"resamples": 50}).score({"perfect": hindcast}, observations)
    for score in ("acc", "crpss"):
        np.testing.assert_allclose(scores.area[score].values, 1.0, atol=1e-9)
        np.testing.assert_allclose(scores.area[f"{score}_interval"].values, 1.0, atol=1e-9)
    np.testing.assert_allclose(scores.area["rmse"].values, 0.0, atol=1e-5)


def test_an_ensemble_drawn_like_the_observations_has_a_spread_error_ratio_near_one():
    hindcast, observations = make_hindcast(20, 10, 1, 20, 20, signal=0.0, noise=1.0, seed=5)
    scores = ForecastVerification({"resamples": 10, "leave_one_out": False}).score({"iid": hindcast}, observations)
    assert scores.area["spread_error"].values.item() == pytest.approx(1.0, abs=0.05)
    assert abs(scores.area["acc"].values.item()) < 0.05
    assert scores.area["crpss"].values.item() < 0.1  # no signal: no better than climatology


def test_differences_against_a_noisier_reference_are_positive_and_significant():
    hindcast, observations = make_hindcast(12, 8, 2, 4, 5, signal=1.0, noise=0.5, seed=2)
    noisy = hindcast.copy()
    noisy["tas"] = hindcast["tas"] + np.random.default_rng(9).normal(0, 2.0, hindcast["tas"].shape).astype(np.float32)
    scores = ForecastVerification({"resamples": 200}).score(
        {"good": hindcast, "noisy": noisy, "same": hindcast}, observations
    )
    assert scores.references == ["noisy", "same"]
    good = scores.differences.sel(reference="noisy")
    assert (good["delta_acc"] > 0).all() and (good["delta_crpss"] > 0).all()
    assert (good["delta_acc_interval"].sel(bound="lower") > 0).all()
    assert (good["delta_crpss_p_value"] < 0.1).all()
    same = scores.differences.sel(reference="same")
    np.testing.assert_allclose(same["delta_acc"].values, 0.0, atol=1e-12)
    assert (scores.difference_maps["delta_crpss_p_value"].sel(reference="same") == 1).all()
    assert math.isclose(
        float(scores.area["acc"].sel(model="good").isel(lead=0))
        - float(scores.area["acc"].sel(model="noisy").isel(lead=0)),
        float(good["delta_acc"].isel(lead=0)),
    )


def test_scores_do_not_depend_on_the_bands_read_and_scored(monkeypatch):
    from dl4ds.evaluation import forecast_verification

    hindcast, observations = make_hindcast(6, 4, 2, 7, 5, seed=8)
    noisy = hindcast.copy()
    noisy["tas"] = hindcast["tas"] + np.random.default_rng(1).normal(0, 1.0, hindcast["tas"].shape).astype(np.float32)
    forecasts = {"a": hindcast, "b": noisy}
    whole = ForecastVerification({"resamples": 30}).score(forecasts, observations)
    monkeypatch.setattr(forecast_verification, "_BLOCK_VALUES", 1)  # one row per band
    monkeypatch.setattr(forecast_verification, "_READ_VALUES", 3 * 6 * 4 * 2 * 5)  # three rows per read: 3, 3, 1
    monkeypatch.setattr(forecast_verification, "_RESAMPLED_VALUES", 31 * 2 * 2)  # two points per resampled part
    banded = ForecastVerification({"resamples": 30}).score(forecasts, observations)
    for part in ("area", "maps", "differences", "difference_maps", "reliability"):
        for name, values in getattr(whole, part).data_vars.items():
            np.testing.assert_allclose(
                getattr(banded, part)[name].values, values.values, rtol=1e-6, atol=1e-9, err_msg=name
            )
