"""MOS at any ratio of coarse to fine spacing: the scale chosen, the target padded (never cropped), the padding cut from outputs."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from helpers import era5_week_on_grid

from dl4ds.baselines import create_baseline
from dl4ds.data import MOS, Grid, Normalizer, PerfectProg
from dl4ds.data.pairing import Source, choose_scale
from dl4ds.errors import DataError
from dl4ds.model.metadata import ModelMetadata

TIMES = pd.date_range("2000-01-01", periods=6, freq="D")


def plane(lat: np.ndarray, lon: np.ndarray, name: str = "tas", units: str = "K") -> xr.DataArray:
    """A (time, lat, lon) field linear in latitude and longitude (so linear regridding is exact), plus the day."""
    values = 280 + 0.5 * lat[:, None] - 0.3 * lon[None, :] + np.arange(len(TIMES))[:, None, None]
    return xr.DataArray(
        values.astype(np.float32),
        dims=("time", "lat", "lon"),
        coords={"time": TIMES, "lat": lat, "lon": lon},
        name=name,
        attrs={"units": units},
    )


def cells(start: float, stop: float, step: float) -> np.ndarray:
    """Centres of cells of ``step`` degrees whose edges run from ``start`` to at least ``stop``."""
    return start + step * (0.5 + np.arange(int(np.ceil((stop - start) / step - 1e-9))))


@pytest.mark.parametrize(
    ("coarse_step", "fine_step", "scale"),
    [(1.9, 0.5, 4), (1.4, 0.5, 3), (0.44, 0.11, 4)],
)
def test_mos_keeps_the_whole_target_at_any_ratio(coarse_step, fine_step, scale):
    fine_lat, fine_lon = cells(40.0, 49.5, fine_step), cells(0.0, 14.5, fine_step)
    target = plane(fine_lat, fine_lon)
    coarse = plane(cells(40.0, 49.5, coarse_step), cells(0.0, 14.5, coarse_step), name="tas_model")
    paired = MOS().pair(target, coarse, coarse_variables=["tas_model"])
    assert paired.scale == scale
    # nothing cropped: the domain is the whole target, padded (NaN) to a multiple of the scale
    assert paired.domain_grid.equals(Grid(fine_lat, fine_lon))
    assert all(size % scale == 0 for size in paired.fine_grid.shape)
    assert all(before + after < 2 * scale for before, after in paired.padding)
    rows, cols = paired.domain
    np.testing.assert_array_equal(paired.target.values[:, 0, rows, cols], target.values)
    padded = np.ones(paired.fine_grid.shape, bool)
    padded[rows, cols] = False
    assert np.isnan(paired.target.values[:, 0][:, padded]).all()
    # the network's coarse grid is the padded grid coarsened; interior values are exact for a plane
    grid = paired.coarse_grid
    assert grid.equals(paired.fine_grid.coarsen(scale))
    np.testing.assert_allclose(grid.spacing, (scale * fine_step, scale * fine_step))
    inside_lat = (grid.lat >= coarse["lat"].values.min()) & (grid.lat <= coarse["lat"].values.max())
    inside_lon = (grid.lon >= coarse["lon"].values.min()) & (grid.lon <= coarse["lon"].values.max())
    expected = plane(grid.lat, grid.lon).values
    np.testing.assert_allclose(
        paired.inputs.values[:, 0][:, inside_lat][:, :, inside_lon],
        expected[:, inside_lat][:, :, inside_lon],
        atol=1e-3,
    )
    assert not np.isnan(paired.inputs.values).any()
    if np.isclose(coarse_step / fine_step, scale):
        # 0.44 -> 0.11: an aligned integer ratio, so the coarse cells are the network's
        assert paired.resampling is None
    else:
        assert paired.resampling is not None and paired.resampling.grid.equals(Grid.of(coarse))
    assert any(f"chose scale {scale}" in note for note in paired.notes)
    # the baselines predict the target domain only
    prediction = create_baseline("bilinear").fit(paired).predict(paired)
    assert prediction.sizes == {"time": 6, "lat": len(fine_lat), "lon": len(fine_lon)}
    assert paired.target_dataset().sizes == prediction.sizes


def test_integer_ratios_on_an_aligned_grid_are_taken_as_they_are(era5_week):
    # the PerfectProg coarse grid of the centred crop (fine rows 0..31): the padding aligns with it, no regridding
    coarse = PerfectProg(scale=4).pair(era5_week).input_dataset()
    paired = MOS().pair(era5_week, coarse)
    assert paired.scale == 4 and paired.resampling is None
    np.testing.assert_array_equal(paired.inputs.values[:, 0], coarse["t2m"].values)
    # the last target row and column lie outside the coarse cells: dropped, and reported
    assert paired.domain_grid.shape == (32, 48) and paired.padding == ((0, 0), (0, 0))


def test_the_padding_aligns_with_coarse_data_that_reaches_beyond_the_target(era5_week):
    # 1 degree cells from 49.875 N and 10.125 W hold the fine rows 0..3, 4..7, ...; the padding (3 rows and 3
    # columns after) lies in the last coarse cells, which the data has: no regridding
    era5 = era5_week["t2m"]
    lat, lon = np.arange(49.375, 59.0, 1.0), np.arange(-10.625, 3.0, 1.0)
    coarse = era5.interp(latitude=lat, longitude=lon, kwargs={"fill_value": None}).rename(
        latitude="lat", longitude="lon"
    )
    paired = MOS().pair(era5_week, coarse.assign_attrs(units="K"))
    assert paired.padding == ((0, 3), (0, 3)) and paired.resampling is None
    assert paired.coarse_grid.window_in(Grid(lat, lon)) is not None
    assert paired.domain_grid.shape == (33, 49)


def test_conservative_regridding_of_the_coarse_data_keeps_its_cell_means(era5_week):
    coarse = era5_week_on_grid(era5_week, 0.7).rename("t2m")
    paired = MOS(method="conservative").pair(era5_week, coarse)
    assert paired.scale == 3 and paired.resampling.method == "conservative"
    assert paired.domain_grid.shape == (33, 49) and paired.fine_grid.shape == (33, 51)
    # remapped from the 0.7 degree cells onto 0.75 degree cells: values stay within the range of the coarse data
    assert float(paired.inputs.min()) >= float(coarse.min()) - 1e-3
    assert float(paired.inputs.max()) <= float(coarse.max()) + 1e-3


def test_coarse_data_not_coarser_than_the_target_is_an_error():
    grid = Grid(cells(40.0, 45.0, 0.5), cells(0.0, 5.0, 0.5))
    with pytest.raises(DataError, match="not coarser than the target"):
        choose_scale(grid, Grid(cells(40.0, 45.0, 0.6), cells(0.0, 5.0, 0.6)))
    # ratios 2.5 (lat) and 3.75 (lon): the smaller one, rounded
    assert choose_scale(grid, Grid(cells(40.0, 45.0, 1.25), cells(0.0, 5.0, 1.875))) == 3
    assert choose_scale(Grid(grid.lat / 2, grid.lon / 2), Grid(cells(40.0, 45.0, 1.25), cells(0.0, 5.0, 1.875))) == 5


def test_predictors_from_several_sources_each_on_its_own_grid():
    fine_lat, fine_lon = cells(40.0, 49.5, 0.5), cells(0.0, 14.5, 0.5)
    target = plane(fine_lat, fine_lon)
    coarse = plane(cells(40.0, 49.5, 1.9), cells(0.0, 14.5, 1.9), name="tas_model")
    wind = plane(cells(38.0, 52.0, 1.0), cells(-2.0, 16.0, 1.0), name="ua", units="m s-1")
    sst = plane(cells(39.0, 51.0, 0.25), cells(-1.0, 15.0, 0.25), name="sst")
    paired = MOS().pair(
        target,
        coarse,
        coarse_variables=["tas_model"],
        predictors=[Source(wind), Source(sst.to_dataset(), ["sst"], regrid="conservative")],
    )
    assert paired.input_variables == ("tas_model", "ua", "sst")
    assert paired.attrs["ua"]["units"] == "m s-1"
    assert not np.isnan(paired.inputs.values).any()
    # a source that does not cover the target domain is refused
    with pytest.raises(DataError, match="predictor data covers.*does not cover the target domain"):
        MOS().pair(target, coarse, coarse_variables=["tas_model"], predictors=Source(wind.isel(lat=slice(5, None))))


def test_metadata_keeps_the_padding_and_resampling(era5_week):
    paired = MOS().pair(era5_week, era5_week_on_grid(era5_week, 0.7).rename("t2m"))
    normalizer = Normalizer.fit(paired)
    meta = ModelMetadata(
        "resnet_spc", {}, paired.scale, ("t2m",), ("t2m",), (), paired.attrs, paired.fine_grid, normalizer,
        padding=paired.padding, resampling=paired.resampling,
    )  # fmt: skip
    again = ModelMetadata.from_dict(meta.to_dict())
    assert again.padding == paired.padding and again.domain_grid.equals(paired.domain_grid)
    assert again.resampling.method == "linear" and again.resampling.grid.equals(paired.resampling.grid)


def test_mos_crop_is_deprecated_and_ignored():
    with pytest.warns(DeprecationWarning, match="MOS pads the target"):
        assert MOS(scale=4, crop=True).scale == 4
