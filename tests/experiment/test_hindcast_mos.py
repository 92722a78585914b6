"""Hindcast MOS experiments: the configuration's rules, and a run from YAML through the CLI on the bundled SEAS5 data."""

import json
from pathlib import Path

import pytest
import xarray as xr
import yaml
from click.testing import CliRunner

import dl4ds
from dl4ds.cli import main
from dl4ds.errors import ConfigError
from dl4ds.experiment import Experiment
from dl4ds.experiment.config import ExperimentConfig

CONFIG = Path(dl4ds.__file__).parent / "configs" / "hindcast_mos.yaml"


def config(**data_changes) -> dict:
    raw = yaml.safe_load(CONFIG.read_text())
    raw["data"].update(data_changes)
    return raw


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"train_period": ["2000-11-01", "2002-01-31"]}, r"splits by start year: replace train_period by train_years"),
        ({"train_years": None}, r"needs train_years, the start years of training"),
        ({"test_years": [2004, 2005]}, r"needs at least 3; give 3 or more, or leave test_years out"),
        ({"val_years": [2001]}, r"train_years and val_years share the start years \[2001\]"),
        ({"coarse": None}, r"needs a 'coarse' source: the coarse hindcast"),
        ({"lazy": True, "patch_size": [8, 8]}, r"takes no predictors and is not read lazily yet"),
        ({"pairing": "mos", "train_period": ["2000-11-01", "2002-01-31"]}, r"apply to pairing 'hindcast_mos' only"),
    ],
)
def test_impossible_hindcast_configs_name_the_fix(changes, message):
    with pytest.raises(ConfigError, match=message):
        ExperimentConfig.from_dict(config(**changes))


def test_spatio_temporal_windows_are_refused():
    raw = config()
    raw["model"] = {"name": "recconvnext_pin", "time_window": 2}
    with pytest.raises(ConfigError, match="not consecutive time steps; use a spatial network"):
        ExperimentConfig.from_dict(raw)


def test_the_dataset_verification_points_to_the_forecast_verification(tmp_path):
    experiment = Experiment(ExperimentConfig.from_dict(config() | {"output_dir": str(tmp_path)}))
    with pytest.raises(ConfigError, match="dl4ds evaluate-forecast"):
        experiment.baseline_pairs(xr.Dataset())


@pytest.mark.slow
def test_train_from_yaml_verifies_the_test_years_as_a_forecast(tmp_path):
    raw = config()
    raw["training"]["epochs"] = 3
    path = tmp_path / "hindcast_mos.yaml"
    path.write_text(yaml.safe_dump(raw))
    result = CliRunner().invoke(main, ["-q", "train", str(path), "-o", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    run = tmp_path / "run"
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics) == {"resnet_spc", "interpolated (bicubic)"}
    assert set(metrics["resnet_spc"]) == {f"{score}_{lead}" for score in ("acc", "crpss") for lead in (1, 2, 3)}
    assert all(-1 <= value <= 1 for key, value in metrics["resnet_spc"].items() if key.startswith("acc"))
    downscaled = xr.open_dataset(run / "test_downscaled.nc")
    assert dict(downscaled["tas"].sizes) == {
        "forecast_reference_time": 3,
        "realization": 15,
        "forecastMonth": 3,
        "latitude": 20,
        "longitude": 52,
    }
    assert (run / "report" / "index.html").exists()
    # the checkpoint downscales any forecast with a lead dimension: the lead channel is made from it
    model = dl4ds.load_model(run / "checkpoints" / "best.pt")
    again = dl4ds.downscale(model, dl4ds.datasets.seas5_tas_hindcast_4deg().isel(forecast_reference_time=[5]))
    xr.testing.assert_allclose(again["tas"], downscaled["tas"].isel(forecast_reference_time=[2]), atol=1e-4)
