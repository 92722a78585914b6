"""Streaming and tiled inference: peak memory and time against the number of steps, and the cost of tiles.

A resnet_spc of about 1M parameters (64 filters, 12 residual blocks, x4, no
static fields, untrained: the cost does not depend on the weights) downscales
synthetic 0.1-degree fields from a NetCDF file written beforehand (contiguous,
as xarray writes it) with

    dl4ds downscale model.pt coarse.nc -o fine.nc --batch-size 4

in a fresh process, whose wall time and peak resident memory are reported.

1. Memory: ``--steps`` (3000) steps of 128 x 128 coarse cells to a 512 x 512
   fine grid; target at most 2 GB, whatever the number of steps.
2. Time: the same for each of ``--slope-steps``; prints the least-squares
   slope (seconds per step) and how far each run is from the line.
3. Tiles: ``--tile-steps`` steps on a ``--tile-grid`` grid of coarse cells,
   untiled and with ``--tile-size`` at the default overlap (the one that makes
   tiled equal untiled); target at most 25% more time, and the largest
   difference between the two outputs.

    python benchmarks/inference.py [--steps 3000] [--slope-steps 100 200 400] [--tile-grid 512] [--tile-size 384]
                                   [--skip-memory] [--skip-slope] [--skip-tiles] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dask.array as da
import numpy as np
import pandas as pd
import torch
import xarray as xr
from machine import describe

SCALE = 4
COARSE_SPACING = 0.1  # degrees: 512 coarse cells span 51.2 degrees
PARAMS = {"n_filters": 64, "n_blocks": 12}


def build_model(path: Path) -> int:
    """Save an untrained ~1M-parameter resnet_spc to ``path``; returns its parameter count."""
    from dl4ds.data import Normalizer, PerfectProg
    from dl4ds.model import DownscalingModel
    from dl4ds.model.checkpoint import save_checkpoint

    fine = synthetic(4, 32 * SCALE, 32 * SCALE, spacing=COARSE_SPACING / SCALE).compute()
    pairs = PerfectProg(scale=SCALE).pair(fine)
    torch.manual_seed(0)
    model = DownscalingModel.build("resnet_spc", pairs, Normalizer.fit(pairs), params=PARAMS)
    save_checkpoint(path, model)
    return sum(p.numel() for p in model.network.parameters())


def synthetic(steps: int, rows: int, cols: int, spacing: float = COARSE_SPACING) -> xr.Dataset:
    """Lazy (dask) t2m in K: a smooth large-scale pattern plus noise, ``steps`` x ``rows`` x ``cols``."""
    noise = da.random.default_rng(0).standard_normal((steps, rows, cols), chunks=(64, rows, cols)).astype(np.float32)
    pattern = (285.0 + 8.0 * np.sin(np.arange(rows) / 9.0)[:, None] * np.cos(np.arange(cols) / 13.0)[None, :]).astype(
        np.float32
    )
    return xr.Dataset(
        {"t2m": (("time", "lat", "lon"), pattern + noise, {"units": "K", "standard_name": "air_temperature"})},
        coords={
            "time": pd.date_range("2000-01-01", periods=steps, freq="6h"),
            "lat": 10.0 + spacing * (np.arange(rows) + 0.5),
            "lon": -60.0 + spacing * (np.arange(cols) + 0.5),
        },
    )


def run_downscale(model: Path, coarse: Path, output: Path, *options: str) -> tuple[float, float]:
    """Wall seconds and peak resident GiB of ``dl4ds downscale`` in a fresh process."""
    command = [
        sys.executable,
        __file__,
        "--child",
        "-q",
        "downscale",
        str(model),
        str(coarse),
        "-o",
        str(output),
        "--batch-size",
        "4",
        "--no-progress",
        *options,
    ]
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode:
        raise SystemExit(f"dl4ds downscale failed:\n{result.stderr}")
    return seconds, float(result.stdout.strip().splitlines()[-1])


def child(arguments: list[str]) -> None:
    """Run the dl4ds CLI in this process, then print its peak resident memory in GiB."""
    from dl4ds.cli import main

    try:
        main(arguments, standalone_mode=False)
    finally:
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)


def write_input(path: Path, steps: int, rows: int, cols: int) -> None:
    synthetic(steps, rows, cols).to_netcdf(path)


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--grid", type=int, default=128, help="coarse cells per side for the memory and time runs")
    parser.add_argument("--slope-steps", type=int, nargs="+", default=[100, 200, 400])
    parser.add_argument("--tile-grid", type=int, default=512, help="coarse cells per side for the tiling runs")
    parser.add_argument("--tile-size", type=int, default=384)
    parser.add_argument("--tile-steps", type=int, default=4)
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-slope", action="store_true")
    parser.add_argument("--skip-tiles", action="store_true")
    parser.add_argument("--workdir", type=Path, help="keep inputs and outputs here (default: a temporary directory)")
    args = parser.parse_args()
    print(describe())
    with tempfile.TemporaryDirectory() as temporary:
        workdir = args.workdir or Path(temporary)
        workdir.mkdir(parents=True, exist_ok=True)
        model = workdir / "model.pt"
        print(f"model: resnet_spc {PARAMS}, x{SCALE}, {build_model(model):,d} parameters")
        fine_side = args.grid * SCALE
        timings = []
        if not args.skip_slope:
            for steps in args.slope_steps:
                write_input(workdir / "coarse.nc", steps, args.grid, args.grid)
                seconds, peak = run_downscale(model, workdir / "coarse.nc", workdir / "fine.nc")
                timings.append((steps, seconds))
                print(f"{steps:5d} steps to {fine_side} x {fine_side}: {seconds:7.1f} s, peak {peak:.2f} GiB")
        if not args.skip_memory:
            write_input(workdir / "coarse.nc", args.steps, args.grid, args.grid)
            seconds, peak = run_downscale(model, workdir / "coarse.nc", workdir / "fine.nc")
            timings.append((args.steps, seconds))
            size = (workdir / "fine.nc").stat().st_size / 2**30
            print(
                f"{args.steps:5d} steps to {fine_side} x {fine_side}: {seconds:7.1f} s, peak {peak:.2f} GiB "
                f"(target 2 GiB); output {size:.2f} GiB"
            )
        if len(timings) >= 2:
            steps, seconds = np.array(timings, dtype=float).T
            slope, intercept = np.polyfit(steps, seconds, 1)
            residual = np.abs(seconds - (slope * steps + intercept)) / seconds
            print(
                f"time = {slope:.3f} s/step x steps + {intercept:.1f} s; largest deviation from the line "
                f"{100 * residual.max():.1f}%"
            )
        if not args.skip_tiles:
            side = args.tile_grid
            write_input(workdir / "coarse.nc", args.tile_steps, side, side)
            untiled, untiled_peak = run_downscale(model, workdir / "coarse.nc", workdir / "untiled.nc")
            tiled, tiled_peak = run_downscale(
                model, workdir / "coarse.nc", workdir / "tiled.nc", "--tile-size", str(args.tile_size)
            )
            with xr.open_dataset(workdir / "untiled.nc") as a, xr.open_dataset(workdir / "tiled.nc") as b:
                difference = float(np.abs(a["t2m"] - b["t2m"]).max())
            print(
                f"{args.tile_steps} steps, {side} x {side} coarse to {side * SCALE} x {side * SCALE}: untiled "
                f"{untiled:.1f} s (peak {untiled_peak:.2f} GiB), tiles of {args.tile_size} {tiled:.1f} s "
                f"(peak {tiled_peak:.2f} GiB): {100 * (tiled / untiled - 1):+.1f}% time (target +25%), "
                f"largest difference {difference:.2e} K"
            )


if __name__ == "__main__":
    main()
