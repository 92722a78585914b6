"""The five-minute demonstration on bundled real data."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import yaml

from dl4ds import datasets
from dl4ds.evaluation.plots import plot_comparison
from dl4ds.experiment.config import ExperimentConfig
from dl4ds.experiment.runner import Experiment, ExperimentResult
from dl4ds.inference.downscale import downscale
from dl4ds.io import write_netcdf


def demo_config(output_dir: str | Path, *, epochs: int | None = None) -> ExperimentConfig:
    """The packaged demo configuration (``dl4ds/configs/demo.yaml``), writing to ``output_dir``."""
    raw = yaml.safe_load(resources.files("dl4ds").joinpath("configs", "demo.yaml").read_text())
    raw["output_dir"] = str(output_dir)
    if epochs is not None:
        raw["training"]["epochs"] = epochs
    return ExperimentConfig.from_dict(raw)


def run_demo(
    output_dir: str | Path = "demo_output", *, epochs: int | None = None, progress: bool = True
) -> ExperimentResult:
    """Train resnet_spc x4 on ERA5 (1-24 March 2019), verify on 25-31 March, downscale GloSea4.

    Writes into ``output_dir``: ``metrics.json`` (rmse, mae, bias, correlation
    and CRPS in K of "resnet_spc" and each baseline of the ladder), ``test_downscaled.nc``, the report,
    ``checkpoints/best.pt`` and ``glosea4_downscaled.nc`` (13 members x 6
    months at 0.25 degree).
    """
    output_dir = Path(output_dir)
    result = Experiment(demo_config(output_dir, epochs=epochs)).run(progress=progress)

    glosea = datasets.glosea4_ensemble()
    downscaled = downscale(result.model, glosea, rename={"ts": "t2m"}, regrid=True, progress=progress)
    downscaled["t2m"].attrs["comment"] = (
        "GloSea4 monthly mean surface temperature (ts), interpolated to the network's 1 degree grid and downscaled "
        "x4 by a network trained on ERA5 2 m temperature; a demonstration of ensemble handling, not a verified forecast"
    )
    downscaled.attrs["title"] = "GloSea4 seasonal forecast ensemble (Aug 2011 - Jan 2012) downscaled to 0.25 degree"
    write_netcdf(downscaled, output_dir / "glosea4_downscaled.nc")
    ensemble_mean = downscaled["t2m"].mean("member", keep_attrs=True)
    plot_comparison(
        {f"{str(t)[:7]}": ensemble_mean.sel(time=t) for t in ensemble_mean["time"].values},
        output_dir / "glosea4_ensemble_mean.png",
        truth_key=None,
        title="GloSea4 ensemble mean (13 members) downscaled to 0.25 degree",
    )
    return result
