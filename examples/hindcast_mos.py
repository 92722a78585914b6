"""Forecast-aware MOS against PerfectProg: which downscaled SEAS5 hindcast is the better forecast, year by year held out?

Coarse forecast: the bundled SEAS5 November hindcast 2000-2005 at 4 degrees
(15 members x 3 lead months, ``bundled:seas5_tas_hindcast_4deg``). Truth: ERA5
monthly 2 m temperature at 1 degree. Both models are resnet_spc networks at x4,
cross-validated by start year: for each year, they learn from the other five
and downscale that year's hindcast, so every score is out of sample.

* **hindcast MOS** (:class:`dl4ds.data.HindcastMOS`): the 225 (member, start,
  lead) fields of the five training starts at 4 degrees, each paired with
  ERA5 of the month it verifies at; the lead is an input channel.
* **PerfectProg on reanalysis**: ERA5 at 1 degree and its 4 x 4 block means,
  the 15 months of the five training years (all the ERA5 the data has), then
  applied to the forecast.
* **interpolated**: the coarse hindcast interpolated bicubically.

    python examples/hindcast_mos.py [--output hindcast_mos_output] [--epochs 40]

Prints, per lead, the raw ensemble-mean bias and RMSE (K) of each, and the
forecast skill (ACC, CRPSS with bootstrap intervals) and its difference from
the references; writes the forecast-skill report to ``OUTPUT/report/index.html``
and the three cross-validated hindcasts. Six start years give wide intervals.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

import dl4ds
from dl4ds.data import DownscalingDataset, HindcastMOS, Normalizer, PairedData, PerfectProg, select_start_years
from dl4ds.data.hindcast import Hindcast, match_observations
from dl4ds.evaluation import ForecastVerification
from dl4ds.evaluation.forecast_baselines import baseline_hindcasts
from dl4ds.evaluation.forecast_report import write_forecast_report
from dl4ds.io import write_netcdf
from dl4ds.model import DownscalingModel
from dl4ds.training import SupervisedTrainer

PARAMS = {"n_filters": 32, "n_blocks": 4}


def fit(pairs: PairedData, epochs: int, batch_size: int) -> DownscalingModel:
    """A resnet_spc trained on ``pairs`` for ``epochs`` (seed 0, cosine schedule, no validation: the last weights)."""
    normalizer = Normalizer.fit(pairs)
    model = DownscalingModel.build("resnet_spc", pairs, normalizer, params=PARAMS, seed=0)
    trainer = SupervisedTrainer(
        epochs=epochs, batch_size=batch_size, learning_rate=2e-3, lr_schedule="cosine", seed=0, progress=False
    )
    trainer.fit(model, DownscalingDataset(pairs, normalizer, seed=0))
    return model


def cross_validated(hindcast: xr.Dataset, era5: xr.Dataset, epochs: int) -> dict[str, xr.DataArray]:
    """Each model's downscaling of every start year by a model that did not see it, dims (init, member, lead, lat, lon)."""
    mos_pairs = HindcastMOS(scale=4).pair(era5, hindcast, variables=["tas"])
    start_years = pd.DatetimeIndex(hindcast["forecast_reference_time"].values).year
    era5_years = pd.DatetimeIndex(era5["time"].values)
    season_of = np.where(era5_years.month == 1, era5_years.year - 1, era5_years.year)  # January belongs to November's
    folds: dict[str, list[xr.DataArray]] = {"hindcast MOS": [], "PerfectProg (ERA5)": []}
    for year in start_years:
        others = [int(y) for y in start_years if y != year]
        started = time.perf_counter()
        mos = fit(select_start_years(mos_pairs, others), epochs, batch_size=16)
        training_months = era5.isel(
            time=np.flatnonzero(season_of != year), latitude=slice(0, 20), longitude=slice(0, 52)
        )
        perfect_prog = fit(PerfectProg(scale=4).pair(training_months, variables=["tas"]), epochs * 15, batch_size=8)
        held_out = hindcast.sel(forecast_reference_time=hindcast["forecast_reference_time"].dt.year == year)
        folds["hindcast MOS"].append(dl4ds.downscale(mos, held_out)["tas"])
        folds["PerfectProg (ERA5)"].append(dl4ds.downscale(perfect_prog, held_out)["tas"])
        print(f"start {year}: both models trained and applied in {time.perf_counter() - started:.0f} s")
    return {name: xr.concat(parts, dim="forecast_reference_time") for name, parts in folds.items()}


def raw_errors(forecasts: dict[str, xr.DataArray], era5: xr.Dataset) -> pd.DataFrame:
    """Per lead and forecast: the bias and RMSE (K) of the ensemble mean against ERA5, over every start and cell."""
    rows = []
    for name, forecast in forecasts.items():
        hindcast = Hindcast.of(forecast)
        observed = match_observations(hindcast, era5["tas"]).values
        error = hindcast.data.mean("member").values - observed
        for index, lead in enumerate(hindcast.data["lead"].values):
            lead_error = error[:, index]
            rows.append(
                {
                    "forecast": name,
                    "lead": int(lead),
                    "bias": float(np.nanmean(lead_error)),
                    "rmse": float(np.sqrt(np.nanmean(lead_error**2))),
                }
            )
    return pd.DataFrame(rows).pivot(index="forecast", columns="lead", values=["bias", "rmse"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("hindcast_mos_output"))
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--resamples", type=int, default=1000)
    args = parser.parse_args()
    output: Path = args.output
    output.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()

    hindcast = dl4ds.datasets.seas5_tas_hindcast_4deg().load()
    era5 = dl4ds.datasets.era5_tas_monthly().drop_vars("time_bnds").load()
    forecasts = cross_validated(hindcast, era5, args.epochs)
    fine = Hindcast.of(forecasts["hindcast MOS"])
    forecasts["interpolated"] = baseline_hindcasts(["bicubic"], hindcast, fine)["bicubic"]
    for name, forecast in forecasts.items():
        file_name = name.split(" ")[0].lower().replace("perfectprog", "perfect_prog")
        write_netcdf(forecast.to_dataset(name="tas"), output / f"seas5_{file_name}_cross_validated.nc")

    with pd.option_context("display.float_format", "{:.3f}".format, "display.width", 120):
        print("ensemble-mean error against ERA5 (K), per lead month:")
        print(raw_errors(forecasts, era5))
    scores = ForecastVerification({"resamples": args.resamples}).score(forecasts, era5)
    with pd.option_context("display.float_format", "{:.3f}".format, "display.width", 160):
        print(scores.table(("acc", "crpss")).to_string(index=False))
        print(scores.difference_table().to_string(index=False))
    report = write_forecast_report(
        scores,
        output / "report",
        title="SEAS5 at 4 degrees downscaled to 1 degree: hindcast MOS, PerfectProg and interpolation",
        notes=["leave-one-start-year-out cross-validation over the November starts 2000-2005"],
    )
    print(f"report: {report}; done in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
