"""Regridding: first-order conservative remapping against a hand computation, totals kept, and interpolation at the edges."""

import numpy as np
import pytest
import xarray as xr

from dl4ds.data import Grid, standardize
from dl4ds.data.regrid import cell_areas, conservative_regrid, regrid
from dl4ds.errors import DataError


def on_grid(values, grid: Grid) -> xr.DataArray:
    return xr.DataArray(np.asarray(values, dtype=np.float64), dims=("lat", "lon"), coords=grid.coords())


def test_conservative_remapping_matches_a_hand_computation():
    # source cells: lat 0..10, 10..20; lon 0..1, 1..2 (degrees). Target cells: lat 2.5..12.5, 12.5..22.5; lon 0.5..1.5, 1.5..2.5
    source = Grid([5.0, 15.0], [0.5, 1.5])
    target = Grid([7.5, 17.5], [1.0, 2.0])
    f = np.array([[1.0, 2.0], [3.0, 4.0]])
    result = regrid(on_grid(f, source), target, method="conservative", role="test", clamp=True).values
    sin = lambda degrees: np.sin(np.deg2rad(degrees))  # noqa: E731
    lat_weights = np.array([sin(10) - sin(2.5), sin(12.5) - sin(10)])  # the overlaps of the first target row
    lon_weights = np.array([0.5, 0.5])  # the first target column takes half of each source column
    weights = lat_weights[:, None] * lon_weights[None, :]
    assert result[0, 0] == pytest.approx((weights * f).sum() / weights.sum(), rel=1e-12)
    # the last target cell overlaps only the last source cell (and reaches beyond the source): its value
    assert result[1, 1] == pytest.approx(4.0, rel=1e-12)
    # a NaN source cell is left out of the means, with its area
    f_nan = f.copy()
    f_nan[0, 0] = np.nan
    with_nan = regrid(on_grid(f_nan, source), target, method="conservative", role="test", clamp=True).values
    weights[0, 0] = 0.0
    assert with_nan[0, 0] == pytest.approx((weights * np.nan_to_num(f_nan)).sum() / weights.sum(), rel=1e-12)


def test_conservative_remapping_keeps_totals_both_ways(era5_week):
    fine = standardize(era5_week["t2m"]).isel(time=slice(0, 3))
    # 5 x 5 cells of 1.65 x 2.45 degrees over exactly the 33 x 49 cells of 0.25 degree (a ratio of 6.6 x 9.8)
    coarse_grid = Grid(49.875 + 1.65 * (0.5 + np.arange(5)), -10.125 + 2.45 * (0.5 + np.arange(5)))
    fine_grid = Grid.of(fine)

    def totals(field, grid):
        return (field.values.astype(np.float64) * cell_areas(grid)).sum(axis=(-2, -1))

    coarse = conservative_regrid(fine, coarse_grid)
    np.testing.assert_allclose(totals(coarse, coarse_grid), totals(fine, fine_grid), rtol=1e-6)
    back = conservative_regrid(coarse, fine_grid)
    np.testing.assert_allclose(totals(back, fine_grid), totals(fine, fine_grid), rtol=1e-6)
    assert coarse.dtype == np.float32 and coarse.dims == ("time", "lat", "lon")


def test_coverage_is_checked_unless_clamped(era5_week):
    fine = standardize(era5_week["t2m"]).isel(time=0)
    grid = Grid.of(fine)
    # a window is taken as it is
    window = Grid(grid.lat[2:10], grid.lon[3:9])
    np.testing.assert_array_equal(regrid(fine, window, role="test").values, fine.values[2:10, 3:9])
    # conservative reaches the cell bounds (57.875 + 0.125); interpolation only the centres
    beyond_centres = Grid(np.array([50.0, 58.1]), np.array([0.0, 1.0]))
    assert not np.isnan(regrid(fine, beyond_centres, method="conservative", role="test").values).any()
    with pytest.raises(DataError, match="does not cover the grid"):
        regrid(fine, beyond_centres, role="test")
    clamped = regrid(fine, beyond_centres, role="test", clamp=True)
    np.testing.assert_allclose(clamped.values[1], fine.interp(lat=58.0, lon=[0.0, 1.0]).values)
