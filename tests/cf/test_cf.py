"""Every kind of file dl4ds writes passes the CF checker without errors or warnings, and carries its provenance."""

import netCDF4
import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr
from helpers import cf_problems

from dl4ds import cf, datasets
from dl4ds.data import Normalizer, PerfectProg
from dl4ds.inference import Downscaler
from dl4ds.io import write_netcdf
from dl4ds.model import DownscalingModel

LICENCE = "CC BY 4.0: contains modified Copernicus Climate Change Service information"


@pytest.fixture(scope="module")
def pairs(era5_week):
    """PerfectProg x4 pairs of 8 steps of the ERA5 week, without static fields (any 1-degree grid)."""
    return PerfectProg(scale=4).pair(era5_week.isel(time=slice(0, 8)))


@pytest.fixture(scope="module")
def generator(pairs) -> DownscalingModel:
    """An untrained stochastic generator (noise channels): deterministic with samples=1, an ensemble otherwise."""
    torch.manual_seed(0)
    return DownscalingModel.build(
        "resnet_spc", pairs, Normalizer.fit(pairs), params={"n_filters": 4, "n_blocks": 1, "noise_channels": 1}
    )


@pytest.fixture(scope="module")
def coarse(pairs) -> xr.Dataset:
    """The coarse input with the global attributes of a real input: a licence, a source and a history."""
    ds = pairs.input_dataset()
    return ds.assign_attrs(license=LICENCE, source="ERA5 reanalysis", history="2024-01-01T00:00:00Z extracted by hand")


def seas5(coarse: xr.Dataset) -> xr.Dataset:
    """A SEAS5-style layout: (number 2, forecast_reference_time 2, forecastMonth 2, latitude, longitude)."""
    values = coarse["t2m"].values[:8].reshape(2, 2, 2, *coarse["t2m"].shape[1:])
    dims = ("number", "forecast_reference_time", "forecastMonth", "latitude", "longitude")
    init = pd.to_datetime(["2019-02-01", "2019-03-01"]).values
    valid = np.array([[np.datetime64(pd.Timestamp(i) + pd.DateOffset(months=m)) for m in (1, 2)] for i in init])
    return xr.Dataset(
        {"t2m": (dims, values, coarse["t2m"].attrs)},
        coords={
            "number": [0, 1],
            "forecast_reference_time": init,
            "forecastMonth": [1, 2],
            "valid_time": (("forecast_reference_time", "forecastMonth"), valid),
            "latitude": coarse["lat"].values,
            "longitude": coarse["lon"].values,
        },
        attrs=coarse.attrs,
    )


def glosea(coarse: xr.Dataset) -> xr.Dataset:
    """A GloSea-style layout: (member 2, time 4, lat, lon) with a forecast_reference_time per member, monthly means."""
    members = xr.concat([coarse.isel(time=slice(0, 4)) + offset for offset in (0.0, 1.0)], dim="member")
    members = members.assign_coords(
        member=[0, 1], forecast_reference_time=("member", pd.to_datetime(["2019-02-20", "2019-02-25"]).values)
    )
    members["t2m"].attrs = {**coarse["t2m"].attrs, "cell_methods": "time: mean"}
    return members.assign_attrs(coarse.attrs)


def test_deterministic_netcdf_and_zarr_pass_with_height_cell_methods_and_provenance(generator, coarse, tmp_path):
    for path in (tmp_path / "fine.nc", tmp_path / "fine.zarr"):
        Downscaler(generator, seed=0).write(coarse, path)
        assert cf_problems(path) == [], path
        with xr.open_dataset(path, engine="zarr" if path.suffix == ".zarr" else None) as out:
            assert out.attrs["Conventions"] == cf.CONVENTIONS
            assert float(out["height"]) == 2.0 and out["height"].attrs["units"] == "m"
            assert out["t2m"].attrs["cell_methods"] == "time: point"
            assert out.attrs["license"] == LICENCE
            assert out.attrs["source"].endswith("from: ERA5 reanalysis")
            first, second = out.attrs["history"].splitlines()
            assert first == coarse.attrs["history"] and "downscaled x4 with dl4ds" in second


def test_ensemble_has_realization_dims_and_statistics_over_the_samples(generator, coarse, tmp_path):
    path = tmp_path / "ensemble.nc"
    Downscaler(generator, samples=3, seed=0).write(coarse, path)
    assert cf_problems(path) == []
    with xr.open_dataset(path) as out:
        assert out["sample"].attrs["standard_name"] == "realization"
        assert out["t2m_mean"].attrs["cell_methods"] == "time: point samples: mean"
        assert out["t2m_spread"].attrs["cell_methods"] == "time: point samples: standard_deviation"
        assert int(out["samples"]) == 3


@pytest.mark.parametrize("layout", [seas5, glosea])
def test_forecast_layouts_have_members_reference_times_and_forecast_periods(generator, coarse, tmp_path, layout):
    forecast = layout(coarse)
    path = tmp_path / f"{layout.__name__}.nc"
    Downscaler(generator, samples=2, seed=0).write(forecast, path)
    assert cf_problems(path) == []
    member = "number" if layout is seas5 else "member"
    with xr.open_dataset(path) as out:
        assert out[member].attrs["standard_name"] == "realization"
        assert out["forecast_reference_time"].attrs["standard_name"] == "forecast_reference_time"
        assert out["forecast_period"].attrs["standard_name"] == "forecast_period"
        valid = out["valid_time"] if layout is seas5 else out["time"]
        expected = (valid - out["forecast_reference_time"]).transpose(*out["forecast_period"].dims)
        np.testing.assert_array_equal(out["forecast_period"], expected)
        if layout is glosea:  # the input's time sampling is kept
            assert out["t2m"].attrs["cell_methods"] == "time: mean"


def test_the_bundled_data_keeps_its_licence_through_downscaling():
    """The GloSea4 ensemble as the demo downscales it: its licence and source survive."""
    forecast = datasets.glosea4_ensemble()
    attrs = cf.provenance([forecast.attrs], made_by="made by a test")
    assert attrs["license"] == forecast.attrs["license"]
    assert attrs["source"] == f"made by a test, from: {forecast.attrs['source']}"
    assert attrs["history"].endswith("made by a test")


def test_complete_labels_coordinates_and_heights(tmp_path):
    ds = xr.Dataset(
        {
            "t2m": (("time", "lat"), np.zeros((2, 3)), {"long_name": "2 metre temperature"}),
            "u10": (("time", "lat"), np.zeros((2, 3))),
            "sp": (("time", "lat"), np.zeros((2, 3))),
        },
        coords={
            "time": ("time", pd.date_range("2019-03-01", periods=2), {"standard_name": "forecast_reference_time"}),
            "lat": [50.0, 51.0, 52.0],
        },
    )
    out = cf.complete(ds, history="tested")
    assert out["time"].attrs["standard_name"] == "time"  # ERA5's GRIB label of reanalysis times is corrected
    assert out["lat"].attrs["units"] == "degrees_north"
    assert float(out["height_2m"]) == 2.0 and float(out["height_10m"]) == 10.0
    assert out["t2m"].encoding["coordinates"] == "height_2m"
    assert out["u10"].encoding["coordinates"] == "height_10m"
    assert out["sp"].encoding["coordinates"] == " "
    again = cf.complete(out.drop_encoding())  # as the writers do with the downscaler's output
    assert again["u10"].encoding["coordinates"] == "height_10m" and float(again["height_2m"]) == 2.0
    assert out.attrs["history"].endswith("tested")
    # in a file, each variable names only its own height (a surface pressure none)
    for name, long_name in (("u10", "10 m u wind"), ("sp", "surface pressure")):
        ds[name].attrs.update(long_name=long_name, units="m s-1" if name == "u10" else "Pa")
    ds["t2m"].attrs.update(units="K", standard_name="air_temperature")
    path = write_netcdf(ds.assign_attrs(title="mixed heights", history="made by a test"), tmp_path / "mixed.nc")
    assert cf_problems(path) == []
    with netCDF4.Dataset(path) as stored:
        assert [stored[name].coordinates.strip() for name in ("t2m", "u10", "sp")] == ["height_2m", "height_10m", ""]
    assert cf.implied_height("tas_mean", {}) == 2.0 and cf.implied_height("msl", {"long_name": "pressure"}) is None


def test_label_coordinates_index_their_dim_again_when_read():
    ds = xr.Dataset(
        {"rmse": ("model", [0.3, 0.6]), "skill": (("model", "reference"), [[0.5], [0.0]])},
        coords={"model": ["net", "bicubic"], "reference": ["bicubic"]},
    )
    written = cf.complete(ds)
    assert "model" not in written.coords and list(written["model_label"].values) == ["net", "bicubic"]
    read = cf.with_label_index(written)
    assert float(read["rmse"].sel(model="bicubic")) == 0.6
    assert float(read["skill"].sel(model="net", reference="bicubic")) == 0.5
    xr.testing.assert_identical(cf.with_label_index(ds), ds)  # nothing to restore: unchanged
