"""The baseline ladder applied member by member to a coarse hindcast."""

import numpy as np
import pytest

from dl4ds import datasets
from dl4ds.baselines import create_baseline
from dl4ds.data import PerfectProg
from dl4ds.data.grid import standardize
from dl4ds.data.hindcast import Hindcast
from dl4ds.evaluation.forecast_baselines import baseline_hindcasts


@pytest.fixture(scope="module")
def hindcasts():
    fine = datasets.seas5_tas_hindcast().drop_vars("valid_time_bnds").isel(latitude=slice(0, 8), longitude=slice(0, 12))
    return fine, fine.coarsen(latitude=4, longitude=4).mean(keep_attrs=True)


def test_interpolation_baselines_downscale_each_member_on_its_own(hindcasts):
    fine, coarse = hindcasts
    made = baseline_hindcasts(["nearest", "conservative"], coarse, Hindcast.of(fine))
    nearest = made["nearest"]
    assert nearest.dims == ("init", "member", "lead", "lat", "lon") and nearest.shape == (6, 15, 3, 8, 12)
    # nearest repeats each coarse value of each member over its 4 x 4 block
    block = coarse["tas"].isel(forecast_reference_time=2, realization=7, forecastMonth=1).values
    np.testing.assert_allclose(
        nearest.isel(init=2, member=7, lead=1).values, np.kron(block, np.ones((4, 4))), rtol=1e-6
    )
    # conservative keeps every block mean
    means = made["conservative"].coarsen(lat=4, lon=4).mean().values
    np.testing.assert_allclose(
        means, standardize(coarse["tas"]).transpose(*Hindcast.of(coarse).names.values(), "lat", "lon").values, atol=1e-3
    )
    np.testing.assert_array_equal(made["conservative"]["valid_time"].values, fine["valid_time"].values)


def test_learning_baselines_are_fitted_on_training_pairs_then_applied_to_every_member(hindcasts):
    fine, coarse = hindcasts
    era5 = datasets.era5_tas_monthly().isel(latitude=slice(0, 8), longitude=slice(0, 12))
    train = PerfectProg(scale=4).pair(era5.sel(time=slice("2000-11", "2003-01")), variables=["tas"])
    made = baseline_hindcasts(["regression"], coarse, Hindcast.of(fine), train=train)["regression"]
    regression = create_baseline("regression").fit(train)
    member = PerfectProg(scale=4).pair(
        fine["tas"]
        .isel(realization=4, forecastMonth=0)
        .rename(forecast_reference_time="time")
        .drop_vars("valid_time")
        .to_dataset(),
        variables=["tas"],
    )
    expected = regression.predict(member)["tas"].values
    np.testing.assert_allclose(made.isel(member=4, lead=0).values, expected, rtol=1e-5)
