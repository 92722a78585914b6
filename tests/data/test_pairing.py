"""The data pipeline: coordinates, coarsening, cropping, MOS pairing, static fields, NaNs, normalisation."""

import logging

import numpy as np
import pytest
import xarray as xr
from helpers import make_field

from dl4ds.data import MOS, DownscalingDataset, Grid, Normalizer, PerfectProg, standardize
from dl4ds.errors import ConfigError, DataError


def test_standardize_accepts_common_names_and_sorts_latitude(era5):
    std = standardize(era5["t2m"])
    assert std.dims == ("time", "lat", "lon")
    assert np.all(np.diff(std["lat"].values) > 0)
    np.testing.assert_array_equal(std.isel(time=0).values, era5["t2m"].isel(time=0).values[::-1])
    renamed = era5.rename(time="valid_time")
    assert standardize(renamed["t2m"]).dims == ("time", "lat", "lon")


def test_standardize_names_missing_dimension():
    da = xr.DataArray(np.zeros((2, 3)), dims=("y", "x"), name="t2m")
    with pytest.raises(DataError, match="no lat dimension"):
        standardize(da)


def test_grid_refine_and_coarsen_are_inverse():
    coarse = Grid(np.array([50.5, 51.5]), np.array([-9.5, -8.5, -7.5]))
    fine = coarse.refine(4)
    np.testing.assert_allclose(fine.lat[:4], [50.125, 50.375, 50.625, 50.875])
    assert fine.shape == (8, 12)
    assert fine.coarsen(4).equals(coarse)


def test_perfect_prog_coarsens_by_block_average_against_hand_computation():
    values = np.arange(2 * 4 * 6, dtype=np.float32).reshape(2, 4, 6) + 270
    values[1, 0, 0] = np.nan  # ignored inside its block
    target = make_field(values)
    paired = PerfectProg(scale=2).pair(target)
    coarse = paired.inputs.sel(channel="t2m").values
    assert coarse.shape == (2, 2, 3)
    # block of time 0, rows 0-1, cols 0-1: values 270, 271, 276, 277
    assert coarse[0, 0, 0] == pytest.approx((270 + 271 + 276 + 277) / 4)
    assert coarse[1, 0, 0] == pytest.approx((295 + 300 + 301) / 3)  # NaN skipped
    np.testing.assert_allclose(paired.coarse_grid.lat, [50.125, 50.625])
    np.testing.assert_allclose(paired.coarse_grid.lon, [-9.875, -9.375, -8.875])


def test_perfect_prog_on_real_data_crops_and_reports(era5_week, static, caplog):
    with caplog.at_level(logging.WARNING, logger="dl4ds"):
        paired = PerfectProg(scale=4).pair(era5_week, static=static)
    assert paired.target.shape == (56, 1, 32, 48)
    assert paired.inputs.shape == (56, 1, 8, 12)
    assert paired.static.shape == (2, 32, 48)
    assert "cropped the target grid from 33 x 49 to 32 x 48" in caplog.text
    assert any("cropped" in note for note in paired.notes)
    # the coarse field is the 4x4 mean of the (ascending, cropped) target
    fine = standardize(era5_week["t2m"]).values[:, :32, :48]
    np.testing.assert_allclose(paired.inputs.values[:, 0], fine.reshape(56, 8, 4, 12, 4).mean((2, 4)), atol=1e-4)
    # static fields are taken as they are on the cropped window
    np.testing.assert_array_equal(
        paired.static.sel(channel="elevation").values,
        standardize(static, require_time=False)["elevation"].values[:32, :48],
    )


def test_no_crop_on_non_divisible_grid_is_an_error(era5_week):
    with pytest.raises(DataError, match="not divisible by scale 4.*crop"):
        PerfectProg(scale=4, crop=False).pair(era5_week)


@pytest.mark.parametrize("scale", [1, 0, 2.5])
def test_scale_below_two_is_an_error(era5_week, scale):
    with pytest.raises(ConfigError, match="scale must be an integer >= 2"):
        PerfectProg(scale=scale).pair(era5_week)


def test_missing_variable_is_named(era5_week):
    with pytest.raises(DataError, match="no variable 'tp'.*has \\['t2m'\\]"):
        PerfectProg(scale=4).pair(era5_week, variables=["tp"])


def test_all_nan_target_is_an_error(era5_week):
    with pytest.raises(DataError, match="entirely NaN"):
        PerfectProg(scale=4).pair(era5_week.where(False))


def test_static_field_not_covering_the_domain_is_an_error(era5_week, static):
    small = static.isel(latitude=slice(0, 10))
    with pytest.raises(DataError, match="static data .* does not cover"):
        PerfectProg(scale=4).pair(era5_week, static=small)


def test_static_fields_at_another_resolution_are_interpolated(era5_week, static):
    coarse_static = static.isel(latitude=slice(None, None, 2), longitude=slice(None, None, 2))
    paired = PerfectProg(scale=4).pair(era5_week, static=coarse_static)
    assert paired.static.shape == (2, 32, 48)
    assert not np.isnan(paired.static.values).any()
    assert any("interpolated static" in note for note in paired.notes)


def test_mos_pairs_by_common_times_and_keeps_aligned_grid(era5_week):
    fine = PerfectProg(scale=4).pair(era5_week)
    coarse = fine.inputs.sel(channel="t2m", drop=True).rename("t2m_coarse").isel(time=slice(10, 40))
    coarse = coarse.assign_attrs(units="K")
    paired = MOS(scale=4).pair(era5_week, coarse, coarse_variables=["t2m_coarse"])
    assert paired.target.sizes["time"] == 30
    np.testing.assert_array_equal(paired.target["time"].values, coarse["time"].values)
    np.testing.assert_allclose(paired.inputs.values[:, 0], coarse.values, atol=1e-6)
    assert paired.input_variables == ("t2m_coarse",)


def test_mos_regrids_unaligned_coarse_data(era5_week):
    # a 1.25 x 1.875 degree field covering the domain, linear in lat and lon, so linear regridding is exact
    lat = np.arange(47.5, 62.0, 1.25)
    lon = np.arange(-15.0, 6.0, 1.875)
    times = era5_week["time"].values
    plane = 280 + 0.5 * (lat[:, None] - 54) + 0.2 * (lon[None, :] + 4)
    coarse = xr.DataArray(
        np.broadcast_to(plane, (len(times), len(lat), len(lon))).astype(np.float32),
        dims=("time", "lat", "lon"),
        coords={"time": times, "lat": lat, "lon": lon},
        name="ts",
        attrs={"units": "K"},
    )
    paired = MOS(scale=4).pair(era5_week, coarse, coarse_variables=["ts"])
    grid = paired.coarse_grid
    assert grid.equals(paired.fine_grid.coarsen(4))
    expected = 280 + 0.5 * (grid.lat[:, None] - 54) + 0.2 * (grid.lon[None, :] + 4)
    np.testing.assert_allclose(paired.inputs.values[3, 0], expected, atol=1e-4)
    assert any("regridded (linear) the coarse data" in note for note in paired.notes)
    # the whole 33 x 49 target is kept, padded to 36 x 52 (one cell before, two after, NaN)
    assert paired.padding == ((1, 2), (1, 2)) and paired.fine_grid.shape == (36, 52)
    assert paired.domain_grid.equals(Grid.of(standardize(era5_week)))
    assert np.isnan(paired.target.values[:, :, 0]).all() and np.isnan(paired.target.values[:, :, -2:]).all()
    assert paired.target_dataset().sizes == {"time": 56, "lat": 33, "lon": 49}


def test_mos_without_common_times_is_an_error(era5_week):
    coarse = era5_week["t2m"].assign_coords(time=era5_week["time"].values + np.timedelta64(365, "D"))
    with pytest.raises(DataError, match="share no time step"):
        MOS(scale=4).pair(era5_week, coarse)


def test_mos_crops_the_target_to_the_area_the_coarse_data_covers(era5_week, caplog):
    coarse = PerfectProg(scale=4).pair(era5_week).inputs.sel(channel="t2m", drop=True).rename("t2m")
    partial = coarse.isel(lat=slice(2, None)).assign_coords(lat=coarse["lat"][2:] + 0.1).assign_attrs(units="K")
    with caplog.at_level(logging.WARNING, logger="dl4ds"):
        paired = MOS(scale=4).pair(era5_week, partial)
    # coarse cells 51.975..57.975 N hold the target rows 52.0..57.75 N (24 rows), and 10 W..1.75 E (48 columns)
    assert paired.domain_grid.shape == (24, 48)
    np.testing.assert_allclose(paired.domain_grid.lat[[0, -1]], [52.0, 57.75])
    assert "cropped the target grid to 24 x 48 cells" in caplog.text


def test_mos_coarse_data_elsewhere_is_an_error(era5_week):
    coarse = PerfectProg(scale=4).pair(era5_week).inputs.sel(channel="t2m", drop=True).rename("t2m")
    coarse = coarse.assign_attrs(units="K")
    with pytest.raises(DataError, match="does not overlap the target grid"):
        MOS(scale=4).pair(era5_week, coarse.assign_coords(lat=coarse["lat"] + 30))


def test_predictors_on_the_fine_grid_are_block_averaged(era5_week):
    predictor = era5_week["t2m"].shift(time=1).fillna(era5_week["t2m"]).rename("t2m_previous")
    paired = PerfectProg(scale=4).pair(era5_week, predictors=predictor)
    assert paired.input_variables == ("t2m", "t2m_previous")
    np.testing.assert_allclose(paired.inputs.values[1:, 1], paired.inputs.values[:-1, 0], atol=1e-4)


def test_predictors_missing_target_times_is_an_error(era5_week):
    predictor = era5_week["t2m"].isel(time=slice(0, 10)).rename("other")
    with pytest.raises(DataError, match="lack 46 of the target's time steps"):
        PerfectProg(scale=4).pair(era5_week, predictors=predictor)


def test_nan_target_cells_are_masked_and_inputs_filled(era5_week):
    target = era5_week["t2m"].copy()
    target[:, 0:3, 0:5] = np.nan  # e.g. sea cells missing in gridded observations
    paired = PerfectProg(scale=4).pair(target)
    train = paired.select_time("2019-03-01", "2019-03-04")
    normalizer = Normalizer.fit(train)
    dataset = DownscalingDataset(train, normalizer)
    sample = dataset[0]
    assert not torch_any_nan(sample["x"]) and not torch_any_nan(sample["y"])
    # latitude is ascending inside dl4ds and the crop drops 58 N: input rows 1-2 (57.75, 57.5 N) become rows 31, 30
    assert not sample["weight"][0, 30:32, 0:5].any()
    assert (sample["weight"][0, :30] == 1).all() and (sample["weight"][0, 30:32, 5:] == 1).all()


def test_loss_region_and_area_weights(week_pairs):
    from dl4ds.data.torch_dataset import cell_weights

    land = week_pairs.static.sel(channel="land_fraction").values
    weights = cell_weights(week_pairs, region="land_fraction", region_min=0.5, area_weighted=True)
    cos_lat = np.cos(np.deg2rad(week_pairs.target["lat"].values))
    expected = (land >= 0.5) * (cos_lat / cos_lat.mean())[:, None]
    np.testing.assert_allclose(weights, expected, rtol=1e-6)
    assert 0 < (land >= 0.5).mean() < 1  # both land and sea in the domain
    dataset = DownscalingDataset(week_pairs, Normalizer.fit(week_pairs), cell_weights=weights)
    np.testing.assert_allclose(dataset[3]["weight"][0].numpy(), expected, rtol=1e-6)
    assert cell_weights(week_pairs) is None
    with pytest.raises(ConfigError, match="not among the static fields"):
        cell_weights(week_pairs, region="orography", region_min=0)
    with pytest.raises(ConfigError, match="no cell has"):
        cell_weights(week_pairs, region="land_fraction", region_min=2.0)
    with pytest.raises(ConfigError, match="shape"):
        DownscalingDataset(week_pairs, Normalizer.fit(week_pairs), cell_weights=weights[:-1])


def torch_any_nan(tensor) -> bool:
    return bool(tensor.isnan().any())


def test_normalizer_uses_training_period_only_and_round_trips(era5_week):
    paired = PerfectProg(scale=4).pair(era5_week)
    train = paired.select_time("2019-03-01", "2019-03-03")
    normalizer = Normalizer.fit(train)
    values = train.target.values
    assert normalizer.target.mean[0] == pytest.approx(np.nanmean(values), rel=1e-6)
    assert normalizer.target.std[0] == pytest.approx(np.nanstd(values), rel=1e-5)
    assert normalizer.target.mean[0] != pytest.approx(float(paired.target.mean()), rel=1e-6)
    restored = Normalizer.from_dict(normalizer.to_dict())
    np.testing.assert_allclose(
        restored.target.denormalize(normalizer.target.normalize(values, 1), 1), values, rtol=1e-6
    )


def test_patches_are_aligned_with_the_coarse_grid(era5_week, static):
    paired = PerfectProg(scale=4).pair(era5_week, static=static)
    normalizer = Normalizer.fit(paired)
    dataset = DownscalingDataset(paired, normalizer, patch_size=(16, 24))
    full = DownscalingDataset(paired, normalizer)
    for _ in range(5):
        sample = dataset[3]
        row, col = sample["offset"].tolist()
        assert row % 4 == 0 and col % 4 == 0
        assert (
            sample["y"].shape == (1, 16, 24)
            and sample["x"].shape == (1, 4, 6)
            and sample["static"].shape == (2, 16, 24)
        )
        assert (sample["y"] == full[3]["y"][:, row : row + 16, col : col + 24]).all()
        assert (sample["x"] == full[3]["x"][:, row // 4 : row // 4 + 4, col // 4 : col // 4 + 6]).all()


def test_bad_patch_sizes_are_rejected(era5_week):
    paired = PerfectProg(scale=4).pair(era5_week)
    normalizer = Normalizer.fit(paired)
    with pytest.raises(ConfigError, match="multiple of the scale"):
        DownscalingDataset(paired, normalizer, patch_size=(10, 16))
    with pytest.raises(ConfigError, match="larger than the domain"):
        DownscalingDataset(paired, normalizer, patch_size=(64, 64))


def test_time_selection_outside_the_data_is_an_error(era5_week):
    paired = PerfectProg(scale=4).pair(era5_week)
    with pytest.raises(DataError, match="contains no time step"):
        paired.select_time("2020-01-01", "2020-01-31", role="test_period")
