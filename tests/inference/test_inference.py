"""Downscaling with a trained model: coordinates, extra dims, grids, variables, NetCDF output."""

import logging

import numpy as np
import pytest
import xarray as xr

from dl4ds import datasets, downscale
from dl4ds.data import PerfectProg, standardize
from dl4ds.errors import DataError
from dl4ds.io import write_netcdf


@pytest.fixture(scope="module")
def coarse_week(week_pairs) -> xr.Dataset:
    """The coarse t2m of the ERA5 week (time 56, lat 8, lon 12), descending latitude as users often hold it."""
    return week_pairs.input_dataset().isel(lat=slice(None, None, -1)).rename(lat="latitude", lon="longitude")


def test_output_is_on_the_fine_grid_with_coordinates_and_attributes(trained_model, coarse_week, week_pairs):
    out = downscale(trained_model, coarse_week)
    # the input's coordinate names and latitude order (descending) are kept
    assert out["t2m"].dims == ("time", "latitude", "longitude")
    assert out["t2m"].shape == (56, 32, 48)
    np.testing.assert_array_equal(out["time"].values, coarse_week["time"].values)
    assert out["latitude"].values[0] > out["latitude"].values[-1]
    np.testing.assert_allclose(np.sort(out["latitude"].values), week_pairs.fine_grid.lat)
    assert out["t2m"].attrs["units"] == "K" and out["t2m"].attrs["standard_name"] == "air_temperature"
    assert out["latitude"].attrs["units"] == "degrees_north" and out["longitude"].attrs["standard_name"] == "longitude"
    assert out.attrs["Conventions"] == "CF-1.11"


def test_prediction_is_close_to_truth_and_beats_nothing_trivially(trained_model, coarse_week, week_pairs):
    out = standardize(downscale(trained_model, coarse_week)["t2m"])
    truth = week_pairs.target.sel(variable="t2m", drop=True)
    rmse = float(np.sqrt(((out - truth) ** 2).mean()))
    assert rmse < 1.5  # K; a climatology would be ~3 K


def test_extra_dimensions_are_kept(trained_model, coarse_week):
    members = xr.concat([coarse_week + offset for offset in (0.0, 1.0, -1.0)], dim="member")
    members = members.assign_coords(
        member=[0, 1, 2], forecast_reference_time=("member", np.array(["2019-02-01"] * 3, dtype="datetime64[ns]"))
    )
    members["t2m"].attrs = coarse_week["t2m"].attrs
    out = downscale(trained_model, members.isel(time=slice(0, 5)), batch_size=4)
    assert out["t2m"].dims == ("member", "time", "latitude", "longitude")
    assert out["t2m"].shape == (3, 5, 32, 48)
    np.testing.assert_array_equal(out["member"].values, [0, 1, 2])
    assert "forecast_reference_time" in out.coords
    single = downscale(trained_model, coarse_week.isel(time=slice(0, 5)))
    np.testing.assert_allclose(out["t2m"].sel(member=0).values, single["t2m"].values, atol=1e-5)


def test_a_window_of_the_domain_can_be_downscaled(trained_model, coarse_week):
    full = standardize(downscale(trained_model, coarse_week.isel(time=slice(0, 2)))["t2m"])
    window = standardize(
        downscale(trained_model, coarse_week.isel(time=slice(0, 2), latitude=slice(2, 6), longitude=slice(3, 9)))["t2m"]
    )
    assert window.shape == (2, 16, 24)
    np.testing.assert_allclose(window["lat"].values, full["lat"].values[8:24])


def test_other_variable_is_rejected_with_rename_hint(trained_model, coarse_week):
    with pytest.raises(DataError, match="no variable 't2m'.*rename="):
        downscale(trained_model, coarse_week.rename(t2m="ts"))
    out = downscale(trained_model, coarse_week.rename(t2m="ts").isel(time=slice(0, 2)), rename={"ts": "t2m"})
    assert "t2m" in out


def test_other_scale_is_rejected(trained_model, era5_week):
    with pytest.raises(DataError, match="not the model's coarse grid.*output resolution.*regrid=True"):
        downscale(trained_model, era5_week.isel(time=slice(0, 2)))


def test_input_in_other_units_is_converted_like_by_hand(trained_model, coarse_week, caplog):
    week = coarse_week.isel(time=slice(0, 4))
    celsius = week.copy()
    celsius["t2m"] = (week["t2m"] - 273.15).assign_attrs(units="degC")
    by_hand = celsius.copy()
    by_hand["t2m"] = (celsius["t2m"] + 273.15).assign_attrs(units="K")
    with caplog.at_level(logging.INFO, logger="dl4ds"):
        converted = downscale(trained_model, celsius)
    assert "from 'degC' to 'K' (x + 273.15)" in caplog.text
    assert converted["t2m"].attrs["units"] == "K"
    expected = downscale(trained_model, by_hand)["t2m"].values
    np.testing.assert_allclose(converted["t2m"].values, expected, rtol=0, atol=1e-5)
    np.testing.assert_allclose(converted["t2m"].values, downscale(trained_model, week)["t2m"].values, atol=1e-5)
    # units missing in the file are set with units= (CLI: --units t2m=degC)
    unlabelled = celsius.copy()
    unlabelled["t2m"].attrs = {}
    with pytest.raises(DataError, match="has no units but the model's training data is in 'K'.*--units t2m=UNITS"):
        downscale(trained_model, unlabelled)
    relabelled = downscale(trained_model, unlabelled, units={"t2m": "degC"})
    np.testing.assert_allclose(relabelled["t2m"].values, converted["t2m"].values, atol=0)


def test_input_of_another_quantity_is_rejected(trained_model, coarse_week):
    wrong = coarse_week.isel(time=slice(0, 2)).copy()
    wrong["t2m"].attrs = {"units": "kg m-2 s-1"}
    with pytest.raises(DataError, match="'kg m-2 s-1' but the model's training data is in 'K'.*different quantities"):
        downscale(trained_model, wrong)
    wrong["t2m"].attrs = {"units": "Kelvins"}
    with pytest.raises(DataError, match="'Kelvins', which are not units dl4ds can read"):
        downscale(trained_model, wrong)


def test_glosea4_ensemble_is_regridded_and_downscaled(trained_model):
    glosea = datasets.glosea4_ensemble()
    with pytest.raises(DataError, match="regrid=True"):
        downscale(trained_model, glosea, rename={"ts": "t2m"})
    out = downscale(trained_model, glosea, rename={"ts": "t2m"}, regrid=True)
    assert out["t2m"].dims == ("member", "time", "lat", "lon")
    assert out["t2m"].shape == (13, 6, 32, 48)
    assert out["forecast_reference_time"].dims == ("member",)
    assert not np.isnan(out["t2m"].values).any()
    # plausible monthly mean temperatures over the British Isles (K)
    assert 265 < float(out["t2m"].min()) and float(out["t2m"].max()) < 300


def test_nan_input_cells_give_nan_output(trained_model, coarse_week):
    holed = coarse_week.isel(time=slice(0, 2)).copy(deep=True)
    holed["t2m"][:, 0, 0] = np.nan
    out = standardize(downscale(trained_model, holed)["t2m"])
    # input row 0 of a descending grid is the northernmost coarse row: fine rows 28-31, columns 0-3
    assert np.isnan(out.values[:, 28:, :4]).all()
    assert not np.isnan(out.values[:, :28]).any()


def test_netcdf_output_round_trips(trained_model, coarse_week, tmp_path):
    out = downscale(trained_model, coarse_week.isel(time=slice(0, 4)))
    path = write_netcdf(out, tmp_path / "out.nc")
    with xr.open_dataset(path) as back:
        np.testing.assert_array_equal(back["t2m"].values, out["t2m"].values)
        np.testing.assert_array_equal(back["time"].values, out["time"].values)
        assert back["t2m"].attrs["units"] == "K"
        assert back.attrs["Conventions"] == "CF-1.11"
    assert [p.name for p in tmp_path.iterdir()] == ["out.nc"]


def test_perfect_prog_on_descending_input_matches_model_grid(trained_model, era5_week):
    paired = PerfectProg(scale=4).pair(era5_week)
    assert paired.fine_grid.equals(trained_model.metadata.fine_grid)
