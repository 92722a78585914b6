"""Does downscaling keep the forecast's skill? Hindcast verification of a downscaled SEAS5 ensemble.

1. The bundled 1 degree SEAS5 hindcast of 2 m temperature (15 members x 6
   November starts 2000-2005 x 3 lead months, Mediterranean) is cut to 20 x 52
   cells; its 4 degree block means (bundled as ``seas5_tas_hindcast_4deg``) are
   the coarse forecast to downscale.
2. A resnet_spc network learns x4 PerfectProg downscaling from the 1 degree
   SEAS5 fields themselves, their 4 degree block means as inputs: the 270
   member fields are the samples (members 1-12 for training, 13-15 for
   validation). ERA5 is not used for training, so no verified year is in
   the training data.
3. The network downscales the coarse hindcast member by member; the
   forecast dims (start, member, lead) and valid times are kept.
4. ``dl4ds evaluate-forecast`` verifies the downscaled hindcast against ERA5
   per lead, beside the coarse forecast interpolated (bicubic, given as a
   file with --reference), the original 1 degree SEAS5 (what the downscaling
   tries to recover) and the conservative baseline applied member by member.

    python examples/forecast_skill.py [--output forecast_skill_output] [--epochs 30]

Writes ``OUTPUT/report/index.html`` (a section per lead), ``OUTPUT/report/scores.nc``
and the NetCDF files it verifies. Six start years make wide intervals: the
example shows the method, not a robust skill estimate.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import xarray as xr

import dl4ds
from dl4ds.data import DownscalingDataset, Normalizer, PerfectProg
from dl4ds.data.hindcast import Hindcast
from dl4ds.evaluation.forecast_baselines import baseline_hindcasts
from dl4ds.io import write_netcdf
from dl4ds.model import DownscalingModel
from dl4ds.training import SupervisedTrainer

SCALE = 4


def hindcasts() -> tuple[xr.Dataset, xr.Dataset]:
    """The 1 degree SEAS5 hindcast cut to the cells of the bundled 4 degree one, and that (its block means)."""
    coarse = dl4ds.datasets.seas5_tas_hindcast_4deg()
    fine = dl4ds.datasets.seas5_tas_hindcast().drop_vars("valid_time_bnds")
    fine["valid_time"].attrs.pop("bounds", None)
    fine = fine.isel(
        latitude=slice(0, coarse.sizes["latitude"] * SCALE), longitude=slice(0, coarse.sizes["longitude"] * SCALE)
    )
    return fine, coarse


def member_samples(fine: xr.Dataset) -> xr.Dataset:
    """The 270 member fields as (time, latitude, longitude) samples, members 1-12 first.

    PerfectProg pairs samples along time; the times here only label the
    samples (one day each from 2001-01-01), they are not valid times.
    """
    stacked = fine["tas"].stack(sample=("realization", "forecast_reference_time", "forecastMonth"))
    values = stacked.transpose("sample", "latitude", "longitude").drop_vars(
        ["sample", "realization", "forecast_reference_time", "forecastMonth", "valid_time"]
    )
    labels = pd.date_range("2001-01-01", periods=values.sizes["sample"], freq="D")
    return values.rename(sample="time").assign_coords(time=labels).to_dataset(name="tas")


def train(fine: xr.Dataset, output: Path, epochs: int) -> Path:
    samples = member_samples(fine)
    pairs = PerfectProg(scale=SCALE).pair(samples, variables=["tas"])
    per_member = fine.sizes["forecast_reference_time"] * fine.sizes["forecastMonth"]
    split = samples["time"].values[12 * per_member]
    train_pairs = pairs.select_time(None, str(split - pd.Timedelta(days=1))[:10])
    val_pairs = pairs.select_time(str(split)[:10], None)
    normalizer = Normalizer.fit(train_pairs)
    model = DownscalingModel.build(
        "resnet_spc", train_pairs, normalizer, params={"n_filters": 32, "n_blocks": 4}, seed=0
    )
    trainer = SupervisedTrainer(
        epochs=epochs,
        batch_size=16,
        learning_rate=2e-3,
        lr_schedule="cosine",
        checkpoint_dir=output / "checkpoints",
        seed=0,
        progress=False,
    )
    trainer.fit(model, DownscalingDataset(train_pairs, normalizer), DownscalingDataset(val_pairs, normalizer))
    return output / "checkpoints" / "best.pt"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("forecast_skill_output"))
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--resamples", type=int, default=1000)
    args = parser.parse_args()
    output: Path = args.output
    output.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()

    fine, coarse = hindcasts()
    write_netcdf(fine, output / "seas5_1deg.nc")
    write_netcdf(coarse, output / "seas5_4deg.nc")
    checkpoint = train(fine, output, args.epochs)
    print(f"trained in {time.perf_counter() - start:.0f} s: {checkpoint}")

    model = dl4ds.load_model(checkpoint)
    downscaled = dl4ds.downscale(model, xr.open_dataset(output / "seas5_4deg.nc"))
    write_netcdf(downscaled, output / "seas5_downscaled.nc")
    interpolated = baseline_hindcasts(["bicubic"], coarse, Hindcast.of(downscaled))["bicubic"]
    write_netcdf(interpolated.to_dataset(name="tas"), output / "seas5_interpolated.nc")
    print(f"downscaled {dict(downscaled.sizes)} in {time.perf_counter() - start:.0f} s")

    command = [
        sys.executable,
        "-m",
        "dl4ds.cli",
        "evaluate-forecast",
        str(output / "seas5_downscaled.nc"),
        "bundled:era5_tas_monthly",
        "--reference",
        f"interpolated:{output / 'seas5_interpolated.nc'}",
        "--reference",
        f"seas5_1deg:{output / 'seas5_1deg.nc'}",
        "--baselines",
        "conservative",
        "--coarse",
        str(output / "seas5_4deg.nc"),
        "--resamples",
        str(args.resamples),
        "-o",
        str(output / "report"),
    ]
    print(" ".join(command[2:]))
    subprocess.run(command, check=True)
    print(f"done in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
