"""Time and peak memory of verifying one year of daily 0.25 degree output on a 400 x 600 grid.

Synthetic fields: a smooth large-scale pattern with a seasonal cycle plus
small-scale noise for the truth, and a smoothed, slightly biased copy for the
prediction. The fields are written to NetCDF first, then

    dl4ds evaluate prediction.nc truth.nc -o REPORT

runs in a fresh process whose wall time and peak resident memory are reported.
Target (issue 5): at most 60 s and 4 GB on 2 cores.

    python benchmarks/evaluation.py [--days 365] [--lat 400] [--lon 600] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from machine import describe
from scipy import ndimage


def synthetic_pair(days: int, ny: int, nx: int, seed: int = 0) -> tuple[xr.Dataset, xr.Dataset]:
    """Truth and prediction (time, lat, lon) in K on a 0.25 degree grid starting at 30N, 20W."""
    rng = np.random.default_rng(seed)
    lat = 30.0 + 0.25 * np.arange(ny)
    lon = -20.0 + 0.25 * np.arange(nx)
    times = pd.date_range("2019-01-01", periods=days, freq="D")
    climate = 300.0 - 0.4 * (lat[:, None] - 30.0) + 2.0 * np.sin(np.deg2rad(lon))[None, :]
    season = 10.0 * np.sin(2 * np.pi * (np.arange(days) - 100) / 365.0)
    truth = np.empty((days, ny, nx), dtype=np.float32)
    prediction = np.empty_like(truth)
    for day in range(days):
        weather = ndimage.gaussian_filter(rng.normal(0.0, 30.0, (ny, nx)), 12.0, mode="wrap")
        detail = ndimage.gaussian_filter(rng.normal(0.0, 1.5, (ny, nx)), 1.0)
        truth[day] = climate + season[day] + weather + detail
        prediction[day] = climate + season[day] + weather + 0.5 * detail + 0.2
    coords = {"time": times, "latitude": lat, "longitude": lon}
    attrs = {"units": "K", "standard_name": "air_temperature", "long_name": "2 metre temperature"}
    dims = ("time", "latitude", "longitude")
    return (
        xr.Dataset({"t2m": (dims, truth, attrs)}, coords=coords),
        xr.Dataset({"t2m": (dims, prediction, attrs)}, coords=coords),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--lat", type=int, default=400)
    parser.add_argument("--lon", type=int, default=600)
    parser.add_argument(
        "--workdir", type=Path, help="keep the inputs and the report here (default: a temporary directory)"
    )
    args = parser.parse_args()
    print(describe())
    with tempfile.TemporaryDirectory() as temporary:
        workdir = args.workdir or Path(temporary)
        workdir.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        truth, prediction = synthetic_pair(args.days, args.lat, args.lon)
        truth.to_netcdf(workdir / "truth.nc")
        prediction.to_netcdf(workdir / "prediction.nc")
        print(f"wrote {args.days} x {args.lat} x {args.lon} synthetic fields in {time.perf_counter() - start:.1f} s")
        command = [
            sys.executable,
            "-m",
            "dl4ds.cli",
            "-q",
            "evaluate",
            str(workdir / "prediction.nc"),
            str(workdir / "truth.nc"),
            "-o",
            str(workdir / "report"),
        ]
        start = time.perf_counter()
        subprocess.run(command, check=True)
        seconds = time.perf_counter() - start
        peak_gib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
        print(f"dl4ds evaluate: {seconds:.1f} s wall, peak resident memory {peak_gib:.2f} GiB (targets: 60 s, 4 GiB)")


if __name__ == "__main__":
    main()
