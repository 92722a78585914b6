"""dl4ds's scores against the reference libraries of the field (the ``crosscheck`` extra).

Each test states its tolerance and why. Skipped, naming the missing package, without the extra
(``pip install -e ".[crosscheck]"``; ``make env`` installs it).
"""

import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from dl4ds.baselines.bcsd import _map_quantiles
from dl4ds.evaluation import Verification
from dl4ds.evaluation.statistics import crps_ensemble, ssim_map
from dl4ds.utils.quantiles import quantiles_over_time


def reference(name: str):
    return pytest.importorskip(name, reason=f'{name} is in the crosscheck extra: pip install -e ".[crosscheck]"')


@pytest.fixture(scope="module")
def ensemble():
    """9 members of 12 smooth-ish (time, lat, lon) fields and their truth, float64, no ties."""
    rng = np.random.default_rng(0)
    truth = rng.normal(280.0, 3.0, (12, 6, 7)).cumsum(axis=1)
    members = truth[:, None] + rng.normal(0.5, 1.5, (12, 9, 6, 7))
    return members, truth


def as_arrays(members, truth):
    coords = {
        "time": pd.date_range("2019-03-01", periods=truth.shape[0], freq="D"),
        "lat": 50.0 + np.arange(truth.shape[1]),
        "lon": np.arange(truth.shape[2], dtype=float),
    }
    attrs = {"units": "K"}
    observed = xr.DataArray(truth, dims=("time", "lat", "lon"), coords=coords, name="t2m", attrs=attrs)
    forecast = xr.DataArray(
        np.moveaxis(members, 1, 0), dims=("member", "time", "lat", "lon"), coords=coords, name="t2m", attrs=attrs
    ).assign_coords(member=np.arange(members.shape[1]))
    return forecast, observed


@pytest.mark.slow  # importing scoringrules and properscoring (numba) takes about 7 s
def test_crps_agrees_with_properscoring_and_scoringrules(ensemble):
    """Tolerance 1e-12 K: the same energy-form estimator of the empirical CDF, in float64, differing only in the
    order of the sums (the differences are a few ulps of values around 1 K)."""
    properscoring, scoringrules = reference("properscoring"), reference("scoringrules")
    members, truth = ensemble
    ours = crps_ensemble(members, truth)
    forecasts = np.moveaxis(members, 1, -1)
    np.testing.assert_allclose(ours, properscoring.crps_ensemble(truth, forecasts), rtol=0, atol=1e-12)
    np.testing.assert_allclose(ours, scoringrules.crps_ensemble(truth, forecasts, estimator="nrg"), rtol=0, atol=1e-12)


def test_rank_histogram_and_spread_skill_agree_with_xskillscore(ensemble):
    """Unweighted scores of the pipeline (Verification, weights=None) against xskillscore.

    Rank histogram: exact (1e-12) frequencies, since with continuous values there are no ties to break at
    random. Spread-skill: the pipeline takes the fields to float32 (as written to disk) and sums in chunks,
    so the RMSE of the ensemble mean and the mean member variance agree to float32 precision: rtol 1e-5.
    """
    xskillscore = reference("xskillscore")
    members, truth = ensemble
    forecast, observed = as_arrays(
        members.astype(np.float32).astype(np.float64), truth.astype(np.float32).astype(np.float64)
    )
    scores = Verification(weights=None).score(forecast, observed, model="ensemble")
    counts = xskillscore.rank_histogram(observed, forecast, dim=["time", "lat", "lon"], member_dim="member")
    np.testing.assert_allclose(
        scores.rank_histogram.squeeze().values, (counts / counts.sum()).values, rtol=0, atol=1e-12
    )
    m = forecast.sizes["member"]
    rmse = xskillscore.rmse(forecast.mean("member"), observed, dim=["time", "lat", "lon"])
    spread = np.sqrt(forecast.var("member", ddof=1).mean())
    expected = float(np.sqrt((m + 1) / m) * spread / rmse)
    assert float(scores.overall["spread_skill"].squeeze()) == pytest.approx(expected, rel=1e-5)
    crps = xskillscore.crps_ensemble(observed, forecast, member_dim="member", dim=["time", "lat", "lon"])
    assert float(scores.overall["crps"].squeeze()) == pytest.approx(float(crps), rel=1e-5)


def test_ssim_agrees_with_scikit_image():
    """Tolerance 1e-12: scikit-image's uniform-window SSIM with population (co)variances and reflected edges is
    the same computation (constants K1 = 0.01, K2 = 0.03, a 7 x 7 window), also at the edges."""
    metrics = reference("skimage.metrics")
    rng = np.random.default_rng(1)
    truth = rng.normal(size=(30, 40)).cumsum(axis=0)
    prediction = truth + rng.normal(size=truth.shape)
    data_range = float(truth.max() - truth.min())
    ours = ssim_map(prediction[None], truth[None], np.ones((1, *truth.shape), bool), data_range)[0]
    mean, full = metrics.structural_similarity(
        prediction,
        truth,
        win_size=7,
        data_range=data_range,
        full=True,
        gaussian_weights=False,
        use_sample_covariance=False,
    )
    np.testing.assert_allclose(ours, full, rtol=0, atol=1e-12)
    assert ours[3:-3, 3:-3].mean() == pytest.approx(mean, abs=1e-12)  # scikit-image averages away from the edges


def test_bcsd_quantile_mapping_agrees_with_xsdba():
    """BCSD's additive quantile mapping against xsdba's EmpiricalQuantileMapping (interp="linear",
    extrapolation="constant") at the same quantiles; tolerance 1e-10 K: both interpolate linearly between the
    same quantiles and keep the end offsets beyond them, and differ by float64 rounding (about 6e-14 K)."""
    xsdba = reference("xsdba")
    rng = np.random.default_rng(2)
    time = pd.date_range("2000-01-01", periods=200, freq="D")

    def series(mean, std):
        return xr.DataArray(rng.normal(mean, std, 200), dims="time", coords={"time": time}, attrs={"units": "K"})

    hist, ref, sim = series(280.0, 3.0), series(282.0, 4.0), series(281.0, 5.0)  # sim reaches beyond hist's range
    probabilities = np.linspace(0.05, 0.95, 19)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # xsdba's notes on units and time grouping
        trained = xsdba.EmpiricalQuantileMapping.train(ref, hist, nquantiles=probabilities, kind="+", group="time")
        expected = trained.adjust(sim, interp="linear", extrapolation="constant")
    source = quantiles_over_time(hist.values[:, None], probabilities)
    target = quantiles_over_time(ref.values[:, None], probabilities)
    ours = _map_quantiles(sim.values[:, None], source, target, multiplicative=False)[:, 0]
    np.testing.assert_allclose(source[:, 0], trained.ds["hist_q"].squeeze().values, rtol=0, atol=1e-10)
    np.testing.assert_allclose(ours, expected.values, rtol=0, atol=1e-10)
