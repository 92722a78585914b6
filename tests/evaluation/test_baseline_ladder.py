"""The baseline ladder runs the rungs the data allows, takes its options from YAML and the CLI, and checks sources."""

import json
import logging
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml
from click.testing import CliRunner
from helpers import cf_problems

import dl4ds.evaluation.report as report
from dl4ds.baselines import BCSD, BaselineOptions
from dl4ds.cli import main
from dl4ds.data import PerfectProg
from dl4ds.evaluation import verify
from dl4ds.evaluation.pipeline import build_baselines
from dl4ds.experiment import Experiment
from dl4ds.experiment.config import ExperimentConfig
from dl4ds.io import INPUT_ATTRIBUTE


def _rain(days=40, name="pr", standard_name="precipitation_flux", seed=6):
    """Daily precipitation in kg m-2 s-1 on a 16 x 24 grid at 0.25 degree: dry spells and wet areas."""
    rng = np.random.default_rng(seed)
    wet = (rng.random((days, 4, 6)) < 0.5).repeat(4, axis=1).repeat(4, axis=2)
    values = (wet * rng.gamma(1.5, 4.0, (days, 16, 24)) / 86400).astype(np.float32)
    attrs = {"units": "kg m-2 s-1"} | ({"standard_name": standard_name} if standard_name else {})
    return xr.Dataset(
        {name: (("time", "lat", "lon"), values, attrs)},
        coords={
            "time": pd.date_range("2001-01-01", periods=days),
            "lat": 40.125 + 0.25 * np.arange(16),
            "lon": 5.125 + 0.25 * np.arange(24),
        },
    )


@pytest.fixture
def no_figures(monkeypatch):
    """Reports without their figures (drawn and tested in test_report.py), which take most of a report's time."""
    monkeypatch.setattr(report, "_draw_figures", lambda *args, **kwargs: [])


def test_the_ladder_leaves_out_the_rungs_the_data_does_not_allow(week_pairs, tmp_path, caplog, no_figures):
    pairs = replace(week_pairs, static=None)  # no elevation: no lapse_rate
    train, test = pairs.select_time("2019-03-01", "2019-03-05"), pairs.select_time("2019-03-06", "2019-03-07")
    bicubic = build_baselines(["bicubic"])["bicubic"].predict(test)
    with caplog.at_level(logging.WARNING):
        result = verify({"net": bicubic}, test.target_dataset(), tmp_path, baselines="all", train=train, pairs=test)
    assert result.baselines == ("nearest", "bilinear", "bicubic", "conservative", "bcsd", "regression")
    assert list(result.left_out) == ["lapse_rate"] and "no static fields" in result.left_out["lapse_rate"]
    assert "the lapse_rate baseline is left out of the ladder" in caplog.text
    assert (
        "baseline lapse_rate left out: the lapse_rate baseline needs an elevation"
        in (tmp_path / "metrics.md").read_text()
    )


def test_bcsd_corrects_precipitation_by_ratios_unless_told_otherwise():
    pairs = PerfectProg(scale=4).pair(_rain())
    train, test = pairs.select_time(None, "2001-01-30"), pairs.select_time("2001-01-31", None)
    automatic = BCSD().fit(train)
    assert automatic.multiplicative == ("pr",)
    named = BCSD(multiplicative="pr").fit(train).predict(test)["pr"].values
    np.testing.assert_array_equal(automatic.predict(test)["pr"].values, named)
    assert (named >= 0).all()
    shifted = BCSD(multiplicative=[]).fit(train)
    assert shifted.multiplicative == () and (shifted.predict(test)["pr"].values < 0).any()
    temperature = PerfectProg(scale=4).pair(_rain(name="t", standard_name="air_temperature"))
    assert BCSD().fit(temperature).multiplicative == ()


def test_baseline_options_come_from_the_evaluation_section():
    config = ExperimentConfig.from_dict(
        {
            "data": {"target": {"path": "x.nc"}, "scale": 4, "train_period": ["2001-01-01", "2001-01-30"]},
            "evaluation": {
                "baselines": {"bcsd": {"multiplicative": ["rain"], "n_quantiles": 20}, "regression": {"ridge": 0.1}},
                "precipitation": {"wet_day_threshold": 0.1},
            },
        }
    )
    built = build_baselines(["bcsd", "regression", "lapse_rate"], config.evaluation.baselines)
    assert built["bcsd"].multiplicative == ("rain",) and built["bcsd"].n_quantiles == 20
    assert built["regression"].ridge == 0.1 and built["lapse_rate"].interpolation == "bilinear"
    assert config.evaluation.precipitation.wet_day_threshold == 0.1
    assert BaselineOptions().of("nearest") == {}


@pytest.mark.parametrize("made_from", ["same", "other", None])
def test_a_prediction_made_from_other_data_than_the_baselines_is_flagged(made_from, tmp_path, caplog):
    _rain().to_netcdf(tmp_path / "rain.nc")
    config = {
        "data": {"target": {"path": "rain.nc"}, "scale": 4, "train_period": ["2001-01-01", "2001-01-30"]},
        "output_dir": "run",
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    prediction = _rain().sel(time=slice("2001-01-31", None))
    if made_from is not None:
        prediction.attrs[INPUT_ATTRIBUTE] = str(tmp_path / ("rain.nc" if made_from == "same" else "gcm.nc"))
    with caplog.at_level(logging.INFO):
        Experiment.from_yaml(tmp_path / "config.yaml").baseline_pairs(prediction)
    warned = [r for r in caplog.records if r.levelno == logging.WARNING and "was downscaled from" in r.message]
    if made_from == "other":
        assert len(warned) == 1 and "gcm.nc" in warned[0].message
        assert "block averages of the experiment's target" in warned[0].message
    else:
        assert not warned
    assert ("does not say which coarse data" in caplog.text) is (made_from is None)


def test_evaluate_takes_baseline_and_precipitation_options_on_the_command_line(tmp_path, caplog, no_figures):
    """A variable no name or standard name marks as precipitation, verified as one because the options say so."""
    rain = _rain(name="water", standard_name=None)
    rain.to_netcdf(tmp_path / "truth.nc")
    config = {
        "data": {"target": {"path": "truth.nc"}, "scale": 4, "train_period": ["2001-01-01", "2001-01-30"]},
        "output_dir": "run",
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    prediction = rain.sel(time=slice("2001-01-31", None)) * 1.2
    prediction["water"].attrs = rain["water"].attrs
    prediction.attrs[INPUT_ATTRIBUTE] = str(tmp_path / "gcm.nc")
    prediction.to_netcdf(tmp_path / "prediction.nc")
    arguments = ["evaluate", tmp_path / "prediction.nc", tmp_path / "truth.nc", "-o", tmp_path / "report"]
    arguments += ["--baselines", "all", "--config", tmp_path / "config.yaml", "--bcsd-multiplicative", "water"]
    arguments += ["--precipitation-variables", "water", "--precipitation-wet-day-threshold", "0.5"]
    with caplog.at_level(logging.INFO):
        result = CliRunner().invoke(main, [str(argument) for argument in arguments])
    assert result.exit_code == 0, result.output
    assert "the bcsd baseline corrects water by ratios" in caplog.text
    assert "was downscaled from" in caplog.text and "gcm.nc" in caplog.text
    table = pd.read_csv(tmp_path / "report" / "metrics.csv")
    assert {"wet_day_frequency_bias", "p95_wet_day_bias", "p99_wet_day_bias"} <= set(table.columns)
    assert "lapse_rate" not in set(table["model"]) and "bcsd" in set(table["model"])
    truth = rain["water"].sel(time=slice("2001-01-31", None)).values.astype(np.float64) * 86400  # mm/day
    bias = (1.2 * truth >= 0.5).mean(axis=0) - (truth >= 0.5).mean(axis=0)  # 1.2 x the truth is wet more often
    weights = np.cos(np.deg2rad(rain["lat"].values))[:, None] * np.ones((1, 24))
    expected = float(np.sum(np.abs(bias) * weights) / weights.sum())
    assert expected > 0
    assert table.set_index("model")["wet_day_frequency_bias"]["prediction"] == pytest.approx(expected, rel=1e-4)
    assert "baseline lapse_rate left out" in (tmp_path / "report" / "metrics.md").read_text()


@pytest.mark.slow
def test_an_experiment_without_static_fields_verifies_against_the_other_rungs(tmp_path, no_figures):
    """Precipitation with a relu output, no static fields: trains, verifies, and writes exact zeros."""
    _rain().to_netcdf(tmp_path / "rain.nc")
    config = {
        "data": {
            "target": {"path": "rain.nc"},
            "scale": 4,
            "train_period": ["2001-01-01", "2001-01-28"],
            "val_period": ["2001-01-29", "2001-01-31"],
            "test_period": ["2001-02-01", "2001-02-09"],
        },
        "model": {"name": "convnet_spc", "params": {"n_filters": 8, "n_blocks": 1, "output_activation": "relu"}},
        "training": {"epochs": 2, "batch_size": 8},
        "evaluation": {"baselines": {"bcsd": {"n_quantiles": 20}}, "precipitation": {"wet_day_threshold": 1.0}},
        "output_dir": "run",
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    result = CliRunner().invoke(main, ["train", str(tmp_path / "config.yaml")])
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert list(metrics) == ["convnet_spc", "nearest", "bilinear", "bicubic", "conservative", "bcsd", "regression"]
    assert "baseline lapse_rate left out" in (tmp_path / "run" / "report" / "metrics.md").read_text()
    with xr.open_dataset(tmp_path / "run" / "test_downscaled.nc") as fine:
        assert float(fine["pr"].min()) == 0.0
        assert fine.attrs[INPUT_ATTRIBUTE] == str(tmp_path / "rain.nc")
    with xr.open_dataset(tmp_path / "run" / "report" / "metrics.nc") as scores:
        assert "pr_wet_day_frequency_bias" in scores
    assert cf_problems(tmp_path / "run" / "report" / "metrics.nc") == []
