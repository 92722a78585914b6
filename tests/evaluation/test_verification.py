"""The full verification against hand-computed values: moments, ranks, SSIM, quantiles, spectra, ensembles, groups."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from helpers import ERRORS, TRUTH, field
from scipy import stats as scipy_stats

from dl4ds.errors import ConfigError, DataError
from dl4ds.evaluation import statistics as stats
from dl4ds.evaluation.metrics import compute_metrics
from dl4ds.evaluation.scores import Scores, metric_info, quantile_metric, skill_scores
from dl4ds.evaluation.verification import Verification


def series(values, freq="10D"):
    """A (time, lat, lon) field in K on a 1 degree grid at the equator, with ``freq`` time steps."""
    nt, ny, nx = values.shape
    return xr.DataArray(
        values,
        dims=("time", "lat", "lon"),
        coords={
            "time": pd.date_range("2019-01-01", periods=nt, freq=freq),
            "lat": np.arange(float(ny)),
            "lon": np.arange(float(nx)),
        },
        attrs={"units": "K"},
    )


def score(prediction, truth, **options):
    return Verification(**options).score(prediction, truth, model="m")


def overall(scores: Scores) -> dict[str, float]:
    return {name: float(value.sel(model="m")) for name, value in scores.overall.data_vars.items()}


def test_overall_moments_match_the_quick_metrics_and_hand_values():
    pred, truth = field(TRUTH + ERRORS), field(TRUTH)
    result = overall(score(pred, truth, weights=None))
    assert result["bias"] == pytest.approx(4 / 12)
    assert result["mae"] == pytest.approx(1.0)
    assert result["rmse"] == pytest.approx(np.sqrt(22 / 12))
    quick = compute_metrics(pred, truth)
    weighted = overall(score(pred, truth))
    for name, value in quick.items():
        assert weighted[name] == pytest.approx(value, rel=1e-10)
    p, t = (TRUTH + ERRORS).ravel(), TRUTH.ravel()
    assert result["std_ratio"] == pytest.approx(p.std() / t.std())
    assert result["psnr"] == pytest.approx(10 * np.log10((t.max() - t.min()) ** 2 / (22 / 12)))


def test_per_sample_scores_are_spatial_and_maps_temporal():
    pred, truth = field(TRUTH + ERRORS), field(TRUTH)
    result = score(pred, truth, weights=None)
    per_time = result.per_sample.sel(model="m")
    assert per_time["rmse"].dims == ("time",)
    np.testing.assert_allclose(per_time["bias"], ERRORS.mean(axis=(1, 2)))
    np.testing.assert_allclose(per_time["rmse"], np.sqrt((ERRORS**2).mean(axis=(1, 2))))
    np.testing.assert_allclose(per_time["mae"], np.abs(ERRORS).mean(axis=(1, 2)))
    maps = result.maps.sel(model="m")
    assert maps["rmse"].dims == ("lat", "lon")
    np.testing.assert_allclose(maps["bias"], ERRORS.mean(axis=0))
    expected_r = [[np.corrcoef((TRUTH + ERRORS)[:, i, j], TRUTH[:, i, j])[0, 1] for j in range(2)] for i in range(2)]
    np.testing.assert_allclose(maps["correlation"], expected_r)
    assert maps["rmse"].attrs["units"] == "K" and maps["correlation"].attrs["units"] == "1"


def test_latitude_weights_per_sample():
    pred, truth = field(TRUTH + ERRORS), field(TRUTH)
    per_time = score(pred, truth).per_sample.sel(model="m")
    w = np.cos(np.deg2rad([0.0, 60.0]))[:, None] * np.ones((2, 2))
    for step in range(3):
        assert float(per_time["bias"][step]) == pytest.approx(np.average(ERRORS[step], weights=w))
        assert float(per_time["rmse"][step]) == pytest.approx(np.sqrt(np.average(ERRORS[step] ** 2, weights=w)))


def test_nan_points_are_left_out_everywhere():
    pred = TRUTH + ERRORS
    pred[0, 0, 0] = np.nan
    result = score(field(pred), field(TRUTH), weights=None)
    per_time = result.per_sample.sel(model="m")
    assert float(per_time["bias"][0]) == pytest.approx(np.mean([-1.0, 2.0, 0.0]))
    assert float(result.maps["bias"].sel(model="m")[0, 0]) == pytest.approx(np.mean([0.0, -2.0]))
    assert overall(result)["bias"] == pytest.approx(3 / 11)
    with pytest.raises(DataError, match="no point where both are valid"):
        score(field(np.full_like(TRUTH, np.nan)), field(TRUTH))


@pytest.fixture(scope="module")
def random_pair():
    rng = np.random.default_rng(3)
    truth = rng.normal(280.0, 3.0, (40, 6, 7))
    prediction = truth + rng.normal(0.2, 1.0, truth.shape) + 0.3 * (truth - 280.0) ** 2 / 9
    # dl4ds scores float32 data; the references below use the same float32 values
    return series(prediction.astype(np.float32)), series(truth.astype(np.float32))


def test_spearman_matches_scipy_per_sample_per_point_and_pooled(random_pair):
    pred, truth = random_pair
    result = score(pred, truth, weights=None)
    p, t = pred.values, truth.values
    per_time = result.per_sample["spearman"].sel(model="m").values
    np.testing.assert_allclose(per_time, [scipy_stats.spearmanr(p[i].ravel(), t[i].ravel())[0] for i in range(40)])
    maps = result.maps["spearman"].sel(model="m").values
    expected = [[scipy_stats.spearmanr(p[:, i, j], t[:, i, j])[0] for j in range(7)] for i in range(6)]
    np.testing.assert_allclose(maps, expected)
    # pooled ranks come from a 65536-bin histogram: exact here, the values are far apart compared with a bin
    assert overall(result)["spearman"] == pytest.approx(scipy_stats.spearmanr(p.ravel(), t.ravel())[0], abs=1e-6)


def test_weighted_ranks_share_ties_and_ignore_zero_weights():
    values = np.array([[3.0, 1.0, 2.0, 2.0, np.nan], [5.0, 5.0, 5.0, 1.0, 0.0]])
    weights = np.array([[1.0, 1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 1.0, 1.0, 1.0]])
    ranks = stats.weighted_ranks(values, weights)
    np.testing.assert_allclose(ranks[0, :4], scipy_stats.rankdata([3, 1, 2, 2]) - 0.5)
    np.testing.assert_allclose(ranks[1], scipy_stats.rankdata(values[1]) - 0.5)
    # a weight of 2 counts a value twice
    np.testing.assert_allclose(
        stats.weighted_ranks(np.array([1.0, 2.0, 3.0]), np.array([2.0, 1.0, 1.0])), [1.0, 2.5, 3.5]
    )


def test_quantile_and_extreme_biases_per_point(random_pair):
    pred, truth = random_pair
    result = score(pred, truth, weights=None, quantiles=(0.1, 0.9))
    maps = result.maps.sel(model="m")
    p, t = pred.values.astype(np.float64), truth.values.astype(np.float64)
    np.testing.assert_allclose(maps["p10_bias"], np.quantile(p, 0.1, axis=0) - np.quantile(t, 0.1, axis=0))
    np.testing.assert_allclose(maps["p90_bias"], np.quantile(p, 0.9, axis=0) - np.quantile(t, 0.9, axis=0))
    np.testing.assert_allclose(maps["max_bias"], p.max(axis=0) - t.max(axis=0))
    np.testing.assert_allclose(maps["min_bias"], p.min(axis=0) - t.min(axis=0))
    assert overall(result)["max_bias"] == pytest.approx(np.abs(p.max(axis=0) - t.max(axis=0)).mean())
    assert quantile_metric(0.98) == "p98_bias" and quantile_metric(0.995) == "p99_5_bias"
    assert metric_info("p99_5_bias").perfect == 0.0


def test_pooled_quantiles_for_qq_plots(random_pair):
    pred, truth = random_pair
    quantiles = score(pred, truth, weights=None).quantiles
    probabilities = quantiles["probability"].values
    # quantiles of a fine histogram: Hazen's plotting positions to within a bin
    for values, expected in ((quantiles["truth"], truth), (quantiles["prediction"].sel(model="m"), pred)):
        reference = np.quantile(expected.values.astype(np.float64), probabilities, method="hazen")
        bin_width = float(expected.max() - expected.min()) / 2**16
        np.testing.assert_allclose(values, reference, atol=2 * bin_width)


def test_ssim_is_one_for_identical_fields_and_matches_the_formula():
    rng = np.random.default_rng(0)
    t = rng.normal(0.0, 1.0, (1, 3, 3))
    same = stats.ssim_map(t, t, np.ones(t.shape, bool), data_range=4.0, window=3)
    np.testing.assert_allclose(same, 1.0)
    shifted = stats.ssim_map(t + 0.5, t, np.ones(t.shape, bool), data_range=4.0, window=3)
    mu_y = t.mean()
    mu_x = mu_y + 0.5
    c1 = (0.01 * 4.0) ** 2
    expected_centre = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1)  # the variance terms cancel
    assert shifted[0, 1, 1] == pytest.approx(expected_centre)
    masked = np.ones(t.shape, bool)
    masked[0, 0, 0] = False
    assert np.isnan(stats.ssim_map(t, t, masked, 4.0, 3)[0, 0, 0])


@pytest.mark.parametrize("mode", [(0, 3), (4, 0), (2, 5)])
def test_spectrum_of_a_cosine_mode_peaks_at_its_wavenumber(mode):
    m, n = mode
    lat, lon = 40.0 + 0.25 * np.arange(32), 0.25 * np.arange(48)
    spectrum = stats.RadialSpectrum.for_grid(lat, lon)
    dy, dx = spectrum.spacing_km
    y, x = np.meshgrid(np.arange(32), np.arange(48), indexing="ij")
    wave = np.cos(np.pi * m * (y + 0.5) / 32) * np.cos(np.pi * n * (x + 0.5) / 48)
    power = spectrum.power(wave[None])[0]
    k = np.hypot(m / (2 * 32 * dy), n / (2 * 48 * dx))
    peak = int(np.argmax(power))
    assert abs(spectrum.wavenumbers[peak] - k) <= spectrum.bin_width / 2 + 1e-12
    assert power.sum() == pytest.approx(wave.var())  # Parseval: all variance in one bin
    assert power[peak] == pytest.approx(wave.var())


def test_smoothing_lowers_the_high_wavenumber_ratio(random_pair):
    from scipy import ndimage

    truth = random_pair[1]
    smooth = truth.copy(data=ndimage.uniform_filter(truth.values, size=(1, 3, 3)))
    assert overall(score(truth, truth))["spectral_ratio"] == pytest.approx(1.0)
    assert overall(score(smooth, truth))["spectral_ratio"] < 0.5


def gaussian_crps(mu, sigma, y):
    z = (y - mu) / sigma
    return sigma * (z * (2 * scipy_stats.norm.cdf(z) - 1) + 2 * scipy_stats.norm.pdf(z) - 1 / np.sqrt(np.pi))


def test_crps_matches_closed_forms():
    # two members {0, 2}, observation 0.5: mean |x - y| = 1, half the mean pair distance = 0.5
    assert stats.crps_ensemble(np.array([[0.0, 2.0]]), np.array([0.5]))[0] == pytest.approx(0.5)
    # one member: the absolute error
    assert stats.crps_ensemble(np.array([[3.0]]), np.array([1.0]))[0] == pytest.approx(2.0)
    # a large ensemble of Gaussian quantiles approaches the closed form of the normal distribution
    members = scipy_stats.norm.ppf((np.arange(2000) + 0.5) / 2000, loc=1.0, scale=2.0)
    for y in (-3.0, 1.0, 4.5):
        assert stats.crps_ensemble(members[None], np.array([y]))[0] == pytest.approx(
            gaussian_crps(1.0, 2.0, y), rel=2e-3
        )


def ensemble_case(offset: float = 0.0, members: int = 9):
    rng = np.random.default_rng(1)
    centre = rng.normal(0.0, 1.0, (60, 5, 6))
    truth = series(280 + centre + rng.normal(0.0, 1.0, centre.shape), freq="7D")
    draws = 280 + centre[None] + offset + rng.normal(0.0, 1.0, (members, *centre.shape))
    ensemble = xr.concat([truth.copy(data=draw) for draw in draws], dim="member").assign_coords(
        member=np.arange(members)
    )
    return ensemble, truth


def test_ensemble_scores_crps_spread_skill_and_rank_histogram():
    ensemble, truth = ensemble_case()
    result = score(ensemble, truth, weights=None)
    values = overall(result)
    expected_crps = stats.crps_ensemble(
        np.moveaxis(ensemble.values, 0, 1).reshape(60, 9, -1), truth.values.reshape(60, -1)
    ).mean()
    assert values["crps"] == pytest.approx(expected_crps)
    assert values["spread_skill"] == pytest.approx(1.0, abs=0.1)  # the truth is one more draw
    assert values["rmse"] == pytest.approx(compute_metrics(ensemble.mean("member"), truth, weights=None)["rmse"])
    histogram = result.rank_histogram.sel(model="m")
    assert histogram.sizes["rank"] == 10 and float(histogram.sum()) == pytest.approx(1.0)
    np.testing.assert_allclose(histogram, 0.1, atol=0.03)
    biased = score(*ensemble_case(offset=-5.0), weights=None).rank_histogram.sel(model="m")
    assert float(biased[-1]) > 0.95  # the truth lies above every member
    assert "crps" in result.maps and "crps" in result.per_sample


def test_grouped_by_season_and_by_member(random_pair):
    pred, truth = random_pair
    grouped = score(pred, truth, groupby="season").grouped.sel(model="m")
    assert list(grouped["season"].values) == ["DJF", "MAM", "JJA", "SON"]
    spring = truth["time"].dt.season == "MAM"
    subset = compute_metrics(pred.sel(time=spring), truth.sel(time=spring))
    assert float(grouped["rmse"].sel(season="MAM")) == pytest.approx(subset["rmse"])
    with pytest.raises(ConfigError, match="cannot group by 'lead'"):
        score(pred, truth, groupby="lead")
    ensemble, observed = ensemble_case(members=3)
    by_member = score(ensemble, observed, groupby="member", weights=None).grouped.sel(model="m")
    for member in range(3):
        single = compute_metrics(ensemble.sel(member=member), observed, weights=None)
        assert float(by_member["rmse"].sel(member=member)) == pytest.approx(single["rmse"], rel=1e-6)


def test_combined_scores_and_skill():
    pred, truth = field(TRUTH + ERRORS), field(TRUTH)
    good = Verification().score(truth + 0.1 * (pred - truth), truth, model="network")
    bad = Verification().score(pred, truth, model="bicubic")
    combined = Scores.combine([good, bad])
    assert combined.models == ["network", "bicubic"]
    assert combined.spectrum["truth_power"].dims == ("wavenumber",)
    skill = skill_scores(combined, ["bicubic"])
    assert float(skill["rmse"].sel(model="network", reference="bicubic")) == pytest.approx(0.9, rel=1e-5)
    assert float(skill["rmse"].sel(model="bicubic", reference="bicubic")) == pytest.approx(0.0)
    assert skill["correlation"].dims == ("model", "reference")
    with pytest.raises(DataError, match="not unique"):
        Scores.combine([good, good])


def test_bad_options_and_inputs():
    with pytest.raises(ConfigError, match="quantiles"):
        Verification(quantiles=(1.5,))
    with pytest.raises(ConfigError, match="weights"):
        Verification(weights="area")
    ensemble, truth = ensemble_case(members=2)
    with pytest.raises(DataError, match="dims"):
        Verification().score(ensemble.rename(member="draw"), truth)
