"""dl4ds evaluate-forecast end to end on the bundled SEAS5 hindcast: references, baselines (one fitted on an
experiment's training data), report, NetCDF scores."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml
from click.testing import CliRunner

from dl4ds import datasets
from dl4ds.cf import with_label_index
from dl4ds.cli import main
from dl4ds.evaluation import ForecastVerification
from dl4ds.io import write_netcdf


@pytest.mark.slow
def test_evaluate_forecast_scores_the_hindcast_beside_references_and_baselines(tmp_path):
    hindcast = datasets.seas5_tas_hindcast().drop_vars("valid_time_bnds")
    hindcast = hindcast.isel(forecastMonth=slice(0, 2), latitude=slice(0, 8), longitude=slice(0, 12))
    hindcast["valid_time"].attrs.pop("bounds", None)
    coarse = hindcast.coarsen(latitude=4, longitude=4).mean(keep_attrs=True)
    noisy = hindcast.copy()
    noisy["tas"] = hindcast["tas"] + np.random.default_rng(0).normal(0, 1.5, hindcast["tas"].shape).astype(np.float32)
    era5 = datasets.era5_tas_monthly().drop_vars("time_bnds").isel(latitude=slice(0, 8), longitude=slice(0, 12))
    for name, data in (("fine", hindcast), ("coarse", coarse), ("noisy", noisy), ("era5", era5)):
        write_netcdf(data, tmp_path / f"{name}.nc")
    # the experiment whose training pairs (ERA5, PerfectProg x4) the regression baseline learns from
    config = {
        "data": {
            "target": {"path": str(tmp_path / "era5.nc"), "variables": ["tas"]},
            "pairing": "perfect_prog",
            "scale": 4,
            "train_period": ["2000-11-01", "2003-01-31"],
        },
        "model": {"name": "resnet_spc"},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    report = tmp_path / "report"
    result = CliRunner().invoke(
        main,
        [
            "-q",
            "evaluate-forecast",
            str(tmp_path / "fine.nc"),
            "bundled:era5_tas_monthly",
            "-o",
            str(report),
            "--reference",
            f"noisy:{tmp_path / 'noisy.nc'}",
            "--baselines",
            "nearest,regression",
            "--config",
            str(tmp_path / "config.yaml"),
            "--coarse",
            str(tmp_path / "coarse.nc"),
            "--resamples",
            "100",
            "--name",
            "seas5",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "ACC [interval]" in result.output and "noisy" in result.output and "nearest" in result.output
    scores = with_label_index(xr.open_dataset(report / "scores.nc"))  # model names are CF labels in the file
    assert [str(m) for m in scores["model"].values] == ["seas5", "noisy", "nearest", "regression"]
    assert scores["acc_map"].dims == ("model", "lead", "lat", "lon") and scores.attrs["confidence"] == 0.9
    # the CLI gives what the Python API gives
    python = ForecastVerification({"resamples": 100}).score(
        {"seas5": hindcast, "noisy": noisy}, datasets.era5_tas_monthly()
    )
    np.testing.assert_allclose(scores["acc"].sel(model=["seas5", "noisy"]).values, python.area["acc"].values, rtol=1e-6)
    np.testing.assert_allclose(
        scores["acc_interval"].sel(model="seas5").values, python.area["acc_interval"].sel(model="seas5").values
    )
    # the noise costs skill at lead 1, significantly
    assert float(scores["delta_crpss"].sel(reference="noisy").isel(lead=0)) > 0
    table = pd.read_csv(report / "differences.csv")
    assert set(table["reference"]) == {"noisy", "nearest", "regression"} and "delta_acc_p_value" in table
    page = (report / "index.html").read_text()
    assert 'id="lead_1"' in page and 'id="lead_2"' in page and "minus each reference" in page
    figures = sorted(path.name for path in (report / "figures").iterdir())
    assert "lead_1_reliability.png" in figures and "lead_2_delta_crpss_map.png" in figures
    assert all(f'src="figures/{name}"' in page for name in figures)
    assert not [path for path in report.iterdir() if path.name.startswith(".")]  # no staging folder left
