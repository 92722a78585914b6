"""Grids recognised by CF metadata (cf-xarray), and rotated-pole, projected and curvilinear grids refused by every entry point."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from dl4ds import downscale
from dl4ds.data import MOS, PerfectProg, standardize
from dl4ds.errors import DataError
from dl4ds.evaluation import compute_metrics

TIMES = pd.date_range("2019-03-01", periods=4, freq="D")


def values(ny: int = 8, nx: int = 12) -> np.ndarray:
    return (280 + np.random.default_rng(0).normal(size=(len(TIMES), ny, nx))).astype(np.float32)


def cordex_like() -> xr.Dataset:
    """A EURO-CORDEX-style rotated-pole field: rlat/rlon dims, 2-D lat/lon, a rotated_pole grid mapping."""
    rlat, rlon = -5.0 + 0.44 * np.arange(8), -10.0 + 0.44 * np.arange(12)
    lat2d, lon2d = np.meshgrid(rlat + 50.0, rlon + 10.0, indexing="ij")  # stand-ins for the true geometry
    return xr.Dataset(
        {
            "tas": (("time", "rlat", "rlon"), values(), {"units": "K", "grid_mapping": "rotated_pole"}),
            "rotated_pole": (
                (),
                0,
                {
                    "grid_mapping_name": "rotated_latitude_longitude",
                    "grid_north_pole_latitude": 39.25,
                    "grid_north_pole_longitude": -162.0,
                },
            ),
        },
        coords={
            "time": TIMES,
            "rlat": ("rlat", rlat, {"standard_name": "grid_latitude", "units": "degrees", "axis": "Y"}),
            "rlon": ("rlon", rlon, {"standard_name": "grid_longitude", "units": "degrees", "axis": "X"}),
            "lat": (("rlat", "rlon"), lat2d, {"standard_name": "latitude", "units": "degrees_north"}),
            "lon": (("rlat", "rlon"), lon2d, {"standard_name": "longitude", "units": "degrees_east"}),
        },
    )


def test_coordinates_are_found_by_cf_attributes_not_only_names():
    data = xr.DataArray(
        values(),
        dims=("t", "y", "x"),
        coords={
            "t": ("t", TIMES, {"standard_name": "time"}),
            "y": ("y", 58.0 - 0.25 * np.arange(8), {"standard_name": "latitude"}),
            "x": ("x", -10.0 + 0.25 * np.arange(12), {"units": "degrees_east"}),
        },
        name="tas",
        attrs={"units": "K"},
    )
    standard = standardize(data)
    assert standard.dims == ("time", "lat", "lon") and standard["lat"].values[0] < standard["lat"].values[-1]
    paired = PerfectProg(scale=4).pair(data)
    assert paired.fine_grid.shape == (8, 12) and paired.coarse_grid.shape == (2, 3)
    # axis attributes with angular units, and a latitude_longitude grid mapping, are a regular grid too
    by_axis = data.rename(y="j", x="i").assign_coords(
        j=("j", data["y"].values, {"axis": "Y", "units": "degrees"}),
        i=("i", data["x"].values, {"axis": "X", "units": "degree"}),
    )
    by_axis.attrs["grid_mapping"] = "crs"
    ds = by_axis.to_dataset().assign(crs=((), 0, {"grid_mapping_name": "latitude_longitude"}))
    assert standardize(ds)["tas"].dims == ("time", "lat", "lon")


def test_rotated_pole_grid_is_refused_by_every_entry_point(trained_model):
    cordex = cordex_like()
    message = "rotated-pole grid.*rotated_pole.*north pole at 39.25 N -162.0 E.*regrid the data onto one first.*cdo"
    with pytest.raises(DataError, match=message):
        standardize(cordex)
    with pytest.raises(DataError, match="target data is on a rotated-pole grid"):
        PerfectProg(scale=4).pair(cordex)
    with pytest.raises(DataError, match="coarse data is on a rotated-pole grid"):
        regular = xr.DataArray(
            values(32, 48),
            dims=("time", "lat", "lon"),
            coords={"time": TIMES, "lat": 45.0 + 0.11 * np.arange(32), "lon": 0.11 * np.arange(48)},
            name="tas",
            attrs={"units": "K"},
        )
        MOS().pair(regular, cordex)
    with pytest.raises(DataError, match="rotated-pole"):
        downscale(trained_model, cordex.rename(tas="t2m"))
    field = cordex["tas"]  # a DataArray keeps its coordinates' standard names
    with pytest.raises(DataError, match="rotated-pole"):
        compute_metrics(field, field)


def test_rotated_names_without_metadata_are_not_taken_for_latitude_and_longitude():
    bare = xr.DataArray(
        values(), dims=("time", "rlat", "rlon"), coords={"time": TIMES, "rlat": np.arange(8.0), "rlon": np.arange(12.0)}
    )
    with pytest.raises(DataError, match="rotated-pole grid \\(dim 'rlat'\\)"):
        standardize(bare.rename("tas"))


def test_projected_and_curvilinear_grids_are_refused():
    projected = xr.DataArray(
        values(),
        dims=("time", "y", "x"),
        coords={
            "time": TIMES,
            "y": ("y", 1000.0 * np.arange(8), {"standard_name": "projection_y_coordinate", "units": "m"}),
            "x": ("x", 1000.0 * np.arange(12), {"standard_name": "projection_x_coordinate", "units": "m"}),
        },
        name="tas",
    )
    with pytest.raises(DataError, match="projected grid \\(dim 'y' with standard_name 'projection_y_coordinate'\\)"):
        standardize(projected)
    lambert = projected.to_dataset().assign(lcc=((), 0, {"grid_mapping_name": "lambert_conformal_conic"}))
    lambert["tas"].attrs["grid_mapping"] = "lcc"
    with pytest.raises(DataError, match="projected grid \\(grid_mapping 'lcc': lambert_conformal_conic"):
        standardize(lambert)
    lat2d, lon2d = np.meshgrid(50 + np.arange(8.0), np.arange(12.0), indexing="ij")
    curvilinear = xr.DataArray(
        values(),
        dims=("time", "j", "i"),
        coords={
            "time": TIMES,
            "nav_lat": (("j", "i"), lat2d, {"standard_name": "latitude"}),
            "nav_lon": (("j", "i"), lon2d, {"standard_name": "longitude"}),
        },
        name="tos",
    )
    with pytest.raises(DataError, match="2-D coordinate 'nav_lat'.*curvilinear"):
        standardize(curvilinear)
