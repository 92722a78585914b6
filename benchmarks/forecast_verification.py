"""Time and peak memory of ``dl4ds evaluate-forecast`` on a large synthetic hindcast.

A hindcast of 30 November starts x 25 members x 6 lead months on a 200 x 300
fine grid (float32, 1.08 GB of members), monthly observations of its 180
verifying months, and by default one reference forecast of the same layout
(a noisier copy, standing in for the interpolated coarse forecast). Each
member is ``s + e`` for the observed anomaly ``s`` and independent noise
``e``, plus a seasonal cycle and a fixed pattern. The files are written to
NetCDF first, then

    dl4ds evaluate-forecast hindcast.nc obs.nc --reference noisy:noisy.nc -o REPORT

runs in a fresh process whose wall time, CPU time (user and system; on a
busy machine the wall time exceeds what the process was given) and peak
resident memory are reported. Target (issue 17): at most 2 minutes and 4 GB on 2 cores.

    python benchmarks/forecast_verification.py [--inits 30] [--members 25] [--leads 6] [--lat 200] [--lon 300]
        [--references 1] [--resamples 1000] [--workdir DIR]
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


def synthetic_hindcast(
    inits: int, members: int, leads: int, ny: int, nx: int, *, noise: float, seed: int
) -> tuple[xr.Dataset, xr.Dataset]:
    """The hindcast (forecast_reference_time, realization, forecastMonth, latitude, longitude) and the observations."""
    rng = np.random.default_rng(0)  # the observed anomalies are shared by every hindcast of the benchmark
    starts = pd.to_datetime([f"{1990 + year}-11-01" for year in range(inits)])
    lat, lon = 30.0 + 0.1 * np.arange(ny), -10.0 + 0.1 * np.arange(nx)
    pattern = (285.0 - 0.3 * (lat[:, None] - 30.0) + np.sin(np.deg2rad(10 * lon))[None, :]).astype(np.float32)
    season = -3.0 * np.arange(leads, dtype=np.float32)
    state = rng.standard_normal((inits, leads, ny, nx), dtype=np.float32)
    values = np.empty((inits, members, leads, ny, nx), dtype=np.float32)
    member_rng = np.random.default_rng(seed)
    for init in range(inits):
        values[init] = (
            pattern
            + season[:, None, None]
            + state[init]
            + noise * member_rng.standard_normal((members, leads, ny, nx), dtype=np.float32)
        )
    valid = np.array([[start + pd.DateOffset(months=lead) for lead in range(leads)] for start in starts])
    attrs = {"units": "K", "standard_name": "air_temperature"}
    hindcast = xr.Dataset(
        {"tas": (("forecast_reference_time", "realization", "forecastMonth", "latitude", "longitude"), values, attrs)},
        coords={
            "forecast_reference_time": starts,
            "realization": np.arange(1, members + 1),
            "forecastMonth": np.arange(1, leads + 1),
            "latitude": lat,
            "longitude": lon,
            "valid_time": (("forecast_reference_time", "forecastMonth"), valid.astype("datetime64[ns]")),
        },
    )
    times = valid.ravel().astype("datetime64[ns]")
    order = np.argsort(times)
    observed = (pattern + season[None, :, None, None] - 1.0 + state).reshape(inits * leads, ny, nx)[order]
    observations = xr.Dataset(
        {"tas": (("time", "latitude", "longitude"), observed, attrs)},
        coords={"time": times[order], "latitude": lat, "longitude": lon},
    )
    return hindcast, observations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inits", type=int, default=30)
    parser.add_argument("--members", type=int, default=25)
    parser.add_argument("--leads", type=int, default=6)
    parser.add_argument("--lat", type=int, default=200)
    parser.add_argument("--lon", type=int, default=300)
    parser.add_argument("--references", type=int, default=1, help="reference forecasts beside the hindcast")
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument(
        "--workdir", type=Path, help="keep the inputs and the report here (default: a temporary directory)"
    )
    args = parser.parse_args()
    print(describe())
    with tempfile.TemporaryDirectory() as temporary:
        workdir = args.workdir or Path(temporary)
        workdir.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        shape = (args.inits, args.members, args.leads, args.lat, args.lon)
        hindcast, observations = synthetic_hindcast(*shape, noise=1.0, seed=1)
        hindcast.to_netcdf(workdir / "hindcast.nc")
        observations.to_netcdf(workdir / "obs.nc")
        del hindcast
        references = []
        for index in range(args.references):
            reference, _ = synthetic_hindcast(*shape, noise=1.5, seed=2 + index)
            reference.to_netcdf(workdir / f"reference_{index}.nc")
            references += ["--reference", f"noisy{index}:{workdir / f'reference_{index}.nc'}"]
            del reference
        print(
            f"wrote a hindcast of {' x '.join(map(str, shape))} (inits x members x leads x lat x lon) and "
            f"{args.references} reference(s) in {time.perf_counter() - start:.1f} s"
        )
        command = [
            sys.executable,
            "-m",
            "dl4ds.cli",
            "-q",
            "evaluate-forecast",
            str(workdir / "hindcast.nc"),
            str(workdir / "obs.nc"),
            "-o",
            str(workdir / "report"),
            "--resamples",
            str(args.resamples),
            *references,
        ]
        start = time.perf_counter()
        subprocess.run(command, check=True)
        seconds = time.perf_counter() - start
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        print(
            f"dl4ds evaluate-forecast: {seconds:.1f} s wall ({usage.ru_utime:.1f} s user + {usage.ru_stime:.1f} s system "
            f"CPU), peak resident memory {usage.ru_maxrss / 2**20:.2f} GiB (targets: 120 s, 4 GiB)"
        )


if __name__ == "__main__":
    main()
