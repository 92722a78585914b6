"""Forecast layouts, streamed NetCDF/Zarr output, ensembles of samples, and interrupted writes."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr
from click.testing import CliRunner

from dl4ds.cli import main
from dl4ds.data import Normalizer, PerfectProg
from dl4ds.errors import ConfigError, DataError
from dl4ds.inference import Downscaler, downscale
from dl4ds.inference.predictor import TilePredictor
from dl4ds.model import DownscalingModel
from dl4ds.model.checkpoint import save_checkpoint


@pytest.fixture(scope="module")
def coarse_week(week_pairs) -> xr.Dataset:
    """Coarse t2m of the ERA5 week, (time 56, lat 8, lon 12) on the trained model's grid."""
    return week_pairs.input_dataset()


@pytest.fixture(scope="module")
def generator(era5_week) -> DownscalingModel:
    """An untrained stochastic generator (noise channels) without static fields, for any 1-degree grid."""
    pairs = PerfectProg(scale=4).pair(era5_week)
    torch.manual_seed(0)
    return DownscalingModel.build(
        "resnet_spc", pairs, Normalizer.fit(pairs), params={"n_filters": 8, "n_blocks": 1, "noise_channels": 2}
    )


def seas5_layout(coarse_week: xr.Dataset) -> xr.Dataset:
    """A SEAS5-style forecast: (number 3, forecast_reference_time 2, forecastMonth 4, latitude, longitude), descending
    latitude, with a 2-D valid_time coordinate."""
    values = coarse_week["t2m"].values[:24].reshape(3, 2, 4, 8, 12)
    init = pd.to_datetime(["2019-02-01", "2019-03-01"]).values
    valid = np.array([[np.datetime64(pd.Timestamp(i) + pd.DateOffset(months=m)) for m in range(1, 5)] for i in init])
    ds = xr.Dataset(
        {
            "t2m": (
                ("number", "forecast_reference_time", "forecastMonth", "latitude", "longitude"),
                values,
                {"units": "K"},
            )
        },
        coords={
            "number": [0, 1, 2],
            "forecast_reference_time": init,
            "forecastMonth": [1, 2, 3, 4],
            "latitude": coarse_week["lat"].values,
            "longitude": coarse_week["lon"].values,
            "valid_time": (("forecast_reference_time", "forecastMonth"), valid),
        },
    )
    return ds.isel(latitude=slice(None, None, -1))


def test_seas5_layout_keeps_members_leads_and_coordinates(trained_model, coarse_week):
    forecast = seas5_layout(coarse_week)
    out = downscale(trained_model, forecast)
    assert out["t2m"].dims == ("number", "forecast_reference_time", "forecastMonth", "latitude", "longitude")
    assert out["t2m"].shape == (3, 2, 4, 32, 48)
    for name in ("number", "forecast_reference_time", "forecastMonth"):
        np.testing.assert_array_equal(out[name].values, forecast[name].values)
    assert out["valid_time"].dims == ("forecast_reference_time", "forecastMonth")
    np.testing.assert_array_equal(out["valid_time"].values, forecast["valid_time"].values)
    assert out["latitude"].values[0] > out["latitude"].values[-1]
    # every (member, init, lead) field is the downscaling of that field alone
    one = downscale(trained_model, forecast.isel(number=2, forecast_reference_time=1, forecastMonth=3))
    np.testing.assert_allclose(out["t2m"].values[2, 1, 3], one["t2m"].values, atol=1e-4)


def test_output_is_chunked_by_member_and_time(trained_model, coarse_week):
    members = xr.concat([coarse_week + offset for offset in (0.0, 1.0)], dim="realization").assign_coords(
        realization=[1, 2]
    )
    lazy = Downscaler(trained_model, chunk_size=10).predict(members)
    assert lazy["t2m"].dims == ("realization", "time", "lat", "lon")
    assert lazy["t2m"].chunks == ((1, 1), (10, 10, 10, 10, 10, 6), (32,), (48,))
    np.testing.assert_array_equal(lazy["realization"].values, [1, 2])


def test_stream_to_netcdf_and_zarr_equals_the_in_memory_result(generator, tmp_path):
    coarse = generator_input(steps=7)
    downscaler = Downscaler(generator, samples=3, seed=5, chunk_size=3, tile_size=20, batch_size=4)
    memory = downscaler.downscale(coarse)
    for path in (tmp_path / "out.nc", tmp_path / "out.zarr"):
        downscaler.write(coarse, path)
        with xr.open_dataset(path, engine="zarr" if path.suffix == ".zarr" else None) as back:
            for name in ("t2m", "t2m_mean", "t2m_spread"):
                np.testing.assert_array_equal(back[name].values, memory[name].values)
            assert back["t2m"].dims == ("sample", "time", "lat", "lon")
            np.testing.assert_array_equal(back["time"].values, coarse["time"].values)
            assert back["t2m"].attrs["units"] == "K" and back.attrs["Conventions"] == "CF-1.11"
            assert back["lat"].attrs["standard_name"] == "latitude"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.nc", "out.zarr"]  # no temporary left behind
    with xr.open_dataset(tmp_path / "out.nc") as back:
        assert back["t2m"].encoding["chunksizes"] == (1, 3, 88, 100)


def generator_input(steps: int = 4, rows: int = 22, cols: int = 25) -> xr.Dataset:
    rng = np.random.default_rng(1)
    return xr.Dataset(
        {
            "t2m": (
                ("time", "lat", "lon"),
                (280 + 3 * rng.standard_normal((steps, rows, cols))).astype(np.float32),
                {"units": "K"},
            )
        },
        coords={
            "time": pd.date_range("2021-06-01", periods=steps, freq="6h"),
            "lat": 20.5 + np.arange(rows),
            "lon": 5.5 + np.arange(cols),
        },
    )


def test_samples_differ_and_mean_and_spread_summarise_them(generator):
    out = downscale(generator, generator_input(), samples=4, seed=0)
    samples = out["t2m"].values
    assert samples.shape == (4, 4, 88, 100)
    assert np.abs(samples[0] - samples[1]).mean() > 1e-3
    np.testing.assert_allclose(out["t2m_mean"].values, samples.mean(axis=0), atol=1e-4)
    np.testing.assert_allclose(out["t2m_spread"].values, samples.std(axis=0, ddof=1), atol=1e-4)
    assert "standard deviation" in out["t2m_spread"].attrs["long_name"]
    np.testing.assert_array_equal(out["sample"].values, np.arange(4))
    repeat = downscale(generator, generator_input(), samples=4, seed=0)
    np.testing.assert_array_equal(repeat["t2m"].values, samples)


def test_deterministic_model_refuses_samples(trained_model, coarse_week):
    with pytest.raises(ConfigError, match="deterministic"):
        downscale(trained_model, coarse_week, samples=3)


def test_failed_write_leaves_nothing(trained_model, coarse_week, tmp_path, monkeypatch):
    calls = []
    original = TilePredictor.predict

    def failing(self, *args, **kwargs):
        calls.append(1)
        if len(calls) > 2:
            raise DataError("simulated failure in the third block")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(TilePredictor, "predict", failing)
    for name in ("out.nc", "out.zarr"):
        calls.clear()
        with pytest.raises(DataError, match="simulated"):
            Downscaler(trained_model, chunk_size=5).write(coarse_week, tmp_path / name)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_killed_write_leaves_no_file_at_the_destination(generator, tmp_path):
    checkpoint = save_checkpoint(tmp_path / "model.pt", generator)
    rng = np.random.default_rng(0)
    steps, rows, cols = 400, 30, 40
    coarse = xr.Dataset(
        {
            "t2m": (
                ("time", "lat", "lon"),
                (280 + rng.standard_normal((steps, rows, cols))).astype(np.float32),
                {"units": "K"},
            )
        },
        coords={
            "time": pd.date_range("2000-01-01", periods=steps),
            "lat": 20.5 + np.arange(rows),
            "lon": 5.5 + np.arange(cols),
        },
    )
    coarse.to_netcdf(tmp_path / "coarse.nc")
    destination = tmp_path / "fine.nc"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dl4ds.cli",
            "downscale",
            str(checkpoint),
            str(tmp_path / "coarse.nc"),
            "-o",
            str(destination),
            "--chunk-size",
            "4",
            "--no-progress",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.time() + 120
    temporaries: list[Path] = []
    while time.time() < deadline and process.poll() is None:
        temporaries = [p for p in tmp_path.iterdir() if p.name.startswith(".fine.nc.tmp-") and p.stat().st_size > 0]
        if temporaries:
            time.sleep(1.0)  # let it write a few blocks
            break
        time.sleep(0.05)
    assert process.poll() is None, f"the run ended before it could be killed: {process.stderr.read().decode()}"
    assert temporaries, "no temporary output appeared"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not destination.exists()
    Downscaler(generator).write(coarse.isel(time=slice(0, 2)), destination)  # the next write cleans up
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".fine.nc")] == []
    assert destination.exists()


def test_cli_downscales_with_tiles_samples_and_zarr(generator, tmp_path):
    checkpoint = save_checkpoint(tmp_path / "model.pt", generator)
    generator_input(steps=3).to_netcdf(tmp_path / "coarse.nc")
    result = CliRunner().invoke(
        main,
        [
            "downscale",
            str(checkpoint),
            str(tmp_path / "coarse.nc"),
            "-o",
            str(tmp_path / "fine.zarr"),
            "--tile-size",
            "20",
            "--overlap",
            "10",
            "--batch-size",
            "2",
            "--samples",
            "2",
            "--seed",
            "4",
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "sample: 2" in result.output and "t2m_spread" in result.output
    with xr.open_zarr(tmp_path / "fine.zarr") as back:
        assert back["t2m"].shape == (2, 3, 88, 100)
        expected = downscale(generator, generator_input(steps=3), samples=2, seed=4, tile_size=20, overlap=10)
        np.testing.assert_array_equal(back["t2m"].values, expected["t2m"].values)


def test_cli_explains_a_missing_gpu(generator, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    checkpoint = save_checkpoint(tmp_path / "model.pt", generator)
    generator_input(steps=1).to_netcdf(tmp_path / "coarse.nc")
    result = CliRunner().invoke(
        main,
        ["downscale", str(checkpoint), str(tmp_path / "coarse.nc"), "-o", str(tmp_path / "f.nc"), "--device", "cuda"],
    )
    assert result.exit_code == 2
    assert "no CUDA GPU" in result.output and "--device cpu" in result.output
    assert not (tmp_path / "f.nc").exists()


def test_spatio_temporal_model_runs_along_the_lead_dim(era5_week):
    pairs = PerfectProg(scale=4).pair(era5_week)
    torch.manual_seed(0)
    model = DownscalingModel.build(
        "recconvnet_spc", pairs, Normalizer.fit(pairs), params={"n_filters": 4, "lstm_filters": 4}, time_window=2
    )
    coarse = pairs.input_dataset()
    forecast = xr.Dataset(
        {"t2m": (("number", "step", "lat", "lon"), coarse["t2m"].values[:12].reshape(2, 6, 8, 12), {"units": "K"})},
        coords={"number": [0, 1], "step": np.arange(6), "lat": coarse["lat"].values, "lon": coarse["lon"].values},
    )
    out = downscale(model, forecast, chunk_size=2)
    assert out["t2m"].dims == ("number", "step", "lat", "lon")
    alone = downscale(model, forecast.isel(number=1).rename(step="time"))
    np.testing.assert_allclose(out["t2m"].values[1], alone["t2m"].values, atol=1e-4)
    # the user's name of the time dim works too (dl4ds calls valid_time "time" inside)
    named = downscale(model, forecast.isel(number=1).rename(step="valid_time"), time_dim="valid_time")
    np.testing.assert_allclose(named["t2m"].values, alone["t2m"].values, atol=1e-4)
    with pytest.raises(DataError, match="time_dim='hour' is not a dim"):
        downscale(model, forecast, time_dim="hour")
