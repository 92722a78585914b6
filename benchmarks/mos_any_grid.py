"""MOS at non-integer ratios of coarse to fine spacing, from YAML, on the whole target domain: scores against the ladder and wall time.

The coarse data is made from the bundled ERA5 (0.25 degree, 33 x 49 cells over
the British Isles) by first-order conservative remapping onto

- ``0p7``: a 0.7 degree grid (12 x 18 cells starting at the ERA5 cell edges;
  ratio 2.8), written in degC to two files read through a glob;
- ``n96``: the cells of the GloSea4 N96 grid (1.25 x 1.875 degree; ratios 5 and
  7.5) that overlap the domain, in K.

Each pair is trained from a YAML configuration (``pairing: mos``, no scale,
static fields, train 1-21 March, best epoch on 22-24 March, verified on 25-31
March against the baseline ladder), then the native coarse files are
downscaled with ``dl4ds downscale`` (regridded as in training, no ``--regrid``)
and compared with the experiment's own test output::

    python benchmarks/mos_any_grid.py [--quick] [--pairs 0p7,n96] [--output DIR]

``--quick`` trains 4 epochs instead of 40 (the demo's).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import xarray as xr
import yaml

from dl4ds import datasets
from dl4ds.data import Grid, standardize
from dl4ds.data.regrid import conservative_regrid
from dl4ds.io import write_netcdf

ERA5_SOUTH, ERA5_WEST = 49.875, -10.125  # the outer edges of the bundled ERA5 cells
ERA5_SPAN = (8.25, 12.25)  # degrees of latitude and longitude the cells cover


def coarse_grid(pair: str) -> Grid:
    """The coarse grid of ``pair``, covering every ERA5 cell."""
    if pair == "0p7":
        sizes = [int(np.ceil(span / 0.7)) for span in ERA5_SPAN]
        return Grid(ERA5_SOUTH + 0.7 * (0.5 + np.arange(sizes[0])), ERA5_WEST + 0.7 * (0.5 + np.arange(sizes[1])))
    glosea = datasets.glosea4_ensemble()
    lat, lon = glosea["lat"].values.astype(np.float64), glosea["lon"].values.astype(np.float64)
    overlaps = lambda centres, half, low, span: centres[(centres + half > low) & (centres - half < low + span)]  # noqa: E731
    return Grid(overlaps(lat, 0.625, ERA5_SOUTH, ERA5_SPAN[0]), overlaps(lon, 0.9375, ERA5_WEST, ERA5_SPAN[1]))


def write_coarse(pair: str, folder: Path) -> str:
    """Write the coarse data of ``pair`` into ``folder``; returns the path (or glob) for the configuration."""
    era5 = standardize(datasets.era5_t2m_uk()["t2m"])
    coarse = conservative_regrid(era5, coarse_grid(pair)).rename("t2m_model")
    coarse.attrs = {"units": "K", "long_name": f"ERA5 2 m temperature remapped conservatively ({pair})"}
    if pair == "0p7":
        celsius = (coarse - 273.15).assign_attrs(coarse.attrs, units="degC").to_dataset()
        write_netcdf(celsius.sel(time=slice("2019-03-01", "2019-03-15")), folder / "coarse_a.nc")
        write_netcdf(celsius.sel(time=slice("2019-03-16", "2019-03-31")), folder / "coarse_b.nc")
        return "coarse_*.nc"
    write_netcdf(coarse.to_dataset(), folder / "coarse.nc")
    return "coarse.nc"


def config(coarse_path: str, epochs: int) -> dict:
    return {
        "data": {
            "target": {"path": "bundled:era5_t2m_uk", "variables": ["t2m"]},
            "coarse": {"path": coarse_path, "variables": ["t2m_model"]},
            "static": {"path": "bundled:uk_static", "variables": ["elevation", "land_fraction"]},
            "pairing": "mos",
            "train_period": ["2019-03-01", "2019-03-21"],
            "val_period": ["2019-03-22", "2019-03-24"],
            "test_period": ["2019-03-25", "2019-03-31"],
        },
        "model": {"name": "resnet_spc"},
        "training": {
            "loss": "mae",
            "learning_rate": 0.002,
            "epochs": epochs,
            "batch_size": 16,
            "lr_schedule": "cosine",
        },
        "output_dir": "run",
    }


def run_pair(pair: str, folder: Path, epochs: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    coarse_path = write_coarse(pair, folder)
    (folder / "config.yaml").write_text(yaml.safe_dump(config(coarse_path, epochs)))
    cli = [sys.executable, "-m", "dl4ds.cli"]
    started = time.perf_counter()
    log = subprocess.run([*cli, "train", str(folder / "config.yaml")], check=True, capture_output=True, text=True)
    train_seconds = time.perf_counter() - started
    notes = [
        line for line in log.stderr.splitlines() if line.startswith(("chose scale", "padded", "regridded", "cropped"))
    ]
    started = time.perf_counter()
    checkpoint, output = folder / "run/checkpoints/best.pt", folder / "downscaled.nc"
    subprocess.run([*cli, "-q", "downscale", str(checkpoint), str(folder / coarse_path), "-o", str(output)], check=True)
    downscale_seconds = time.perf_counter() - started
    with xr.open_dataset(folder / "run/test_downscaled.nc") as test, xr.open_dataset(output) as full:
        shape = dict(test["t2m"].sizes)
        difference = float(np.abs(full["t2m"].sel(time=test["time"]) - test["t2m"]).max())
        nan_cells = int(test["t2m"].isnull().sum())
    metrics = json.loads((folder / "run/metrics.json").read_text())
    print(f"\n== {pair}: coarse grid {coarse_grid(pair).describe()} ==")
    for note in notes:
        print(f"  {note}")
    print(f"  test output {shape}, {nan_cells} NaN cells (the target has 33 x 49 cells)")
    print(f"  train + verify + report from YAML: {train_seconds:.1f} s wall ({epochs} epochs)")
    print(f"  dl4ds downscale of the native coarse files (744 steps): {downscale_seconds:.1f} s wall; "
          f"largest difference to the experiment's test output {difference:.2e} K")  # fmt: skip
    print(f"  {'model':14s} {'rmse':>8s} {'mae':>8s} {'bias':>8s} {'corr':>8s}   (K, 25-31 March)")
    for name, values in sorted(metrics.items(), key=lambda item: item[1]["rmse"]):
        print(
            f"  {name:14s} {values['rmse']:8.4f} {values['mae']:8.4f} {values['bias']:8.4f} {values['correlation']:8.4f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 training epochs instead of 40")
    parser.add_argument("--pairs", default="0p7,n96", help="comma-separated: 0p7, n96")
    parser.add_argument("--output", help="working folder (default: a temporary one)")
    args = parser.parse_args()
    root = Path(args.output or tempfile.mkdtemp(prefix="dl4ds-mos-any-grid-"))
    for pair in args.pairs.split(","):
        run_pair(pair.strip(), root / pair.strip(), 4 if args.quick else 40)
    print(f"\noutputs in {root}")


if __name__ == "__main__":
    main()
