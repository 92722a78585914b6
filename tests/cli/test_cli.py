"""Each command of the dl4ds CLI on small real subsets, and its error messages."""

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml
from click.testing import CliRunner
from helpers import cf_problems, era5_week_on_grid

from dl4ds import datasets
from dl4ds.cli import main
from dl4ds.io import write_netcdf


def _config(tmp_path, **data_overrides):
    config = {
        "data": {
            "target": {"path": "bundled:era5_t2m_uk", "variables": ["t2m"]},
            "static": {"path": "bundled:uk_static"},
            "scale": 4,
            "train_period": ["2019-03-01", "2019-03-02"],
            "val_period": ["2019-03-03", "2019-03-03"],
            "test_period": ["2019-03-04", "2019-03-04"],
            **data_overrides,
        },
        "model": {"name": "resnet_spc", "params": {"n_filters": 16, "n_blocks": 1}},
        "training": {"epochs": 2, "batch_size": 16},
        "output_dir": "run",
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("cli")
    result = CliRunner().invoke(main, ["train", str(_config(tmp_path))])
    assert result.exit_code == 0, result.output
    return tmp_path / "run", result


@pytest.mark.slow
def test_train_writes_checkpoints_metrics_and_report(trained_run):
    run, result = trained_run
    assert "best checkpoint" in result.output
    for name in (
        "checkpoints/best.pt",
        "checkpoints/last.pt",
        "checkpoints/history.csv",
        "metrics.json",
        "test_downscaled.nc",
        "report/index.html",
        "report/metrics.nc",
        "report/metrics.csv",
        "report/skill.md",
        "report/figures/t2m_map_rmse.png",
    ):
        assert (run / name).is_file(), name
    metrics = json.loads((run / "metrics.json").read_text())
    assert list(metrics) == [
        "resnet_spc",
        "nearest",
        "bilinear",
        "bicubic",
        "conservative",
        "lapse_rate",
        "bcsd",
        "regression",
    ]
    assert set(metrics["bicubic"]) == {"rmse", "mae", "bias", "correlation", "crps"}
    assert metrics["bicubic"]["crps"] == metrics["bicubic"]["mae"]  # the CRPS of a single field is its MAE
    with xr.open_dataset(run / "test_downscaled.nc") as out:
        assert out["t2m"].shape == (24, 32, 48)
        assert out.attrs["license"] == datasets.era5_t2m_uk().attrs["license"]
    # outputs of training on lazily opened data and of the whole ladder's verification
    assert cf_problems(run / "test_downscaled.nc") == []
    assert cf_problems(run / "report" / "metrics.nc") == []


@pytest.mark.slow
def test_downscale_and_evaluate_commands(trained_run, week_pairs, tmp_path):
    run, _ = trained_run
    coarse = tmp_path / "coarse.nc"
    write_netcdf(week_pairs.select_time("2019-03-04", "2019-03-04").input_dataset(), coarse)
    output = tmp_path / "fine.nc"
    result = CliRunner().invoke(main, ["downscale", str(run / "checkpoints/best.pt"), str(coarse), "-o", str(output)])
    assert result.exit_code == 0, result.output
    with xr.open_dataset(output) as out:
        assert out["t2m"].shape == (8, 32, 48)
    report = tmp_path / "report"
    args = ["evaluate", str(output), "bundled:era5_t2m_uk", "-o", str(report), "--name", "net"]
    result = CliRunner().invoke(
        main, [*args, "--baselines", "bicubic,lapse_rate", "--checkpoint", str(run / "checkpoints/best.pt")]
    )
    assert result.exit_code == 0, result.output
    table = pd.read_csv(report / "metrics.csv")
    assert list(table["model"]) == ["net", "bicubic", "lapse_rate"]
    net = table.set_index("model").loc["net"]
    assert 0 < net["rmse"] < 2 and net["correlation"] > 0.9
    assert (report / "index.html").is_file() and "fitted on 2019-03-01 to 2019-03-02" in (
        report / "index.html"
    ).read_text()
    result = CliRunner().invoke(main, [*args, "--baselines", "bcsd"])
    assert result.exit_code == 2 and "--checkpoint or --config" in result.output


def test_downscale_with_rename_and_regrid(trained_run, tmp_path):
    run, _ = trained_run
    output = tmp_path / "glosea.nc"
    args = ["downscale", str(run / "checkpoints/best.pt"), "bundled:glosea4_ensemble", "-o", str(output)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2 and "no variable 't2m'" in result.output and "--rename" in result.output
    assert "Traceback" not in result.output and not output.exists()
    result = CliRunner().invoke(main, [*args, "--rename", "ts=t2m"])
    assert result.exit_code == 2 and "--regrid" in result.output
    result = CliRunner().invoke(main, [*args, "--rename", "ts=t2m", "--regrid"])
    assert result.exit_code == 0, result.output
    with xr.open_dataset(output) as out:
        assert dict(out["t2m"].sizes) == {"member": 13, "time": 6, "lat": 32, "lon": 48}


@pytest.mark.slow
def test_train_mos_at_a_non_integer_ratio_from_files(tmp_path, era5_week):
    """MOS from YAML: ERA5 remapped conservatively onto a 0.7 degree grid, in degC, in two files, no scale given."""
    coarse = era5_week_on_grid(era5_week, 0.7)
    celsius = (coarse - 273.15).assign_attrs(units="degC").rename("t2m_model").to_dataset()
    write_netcdf(celsius.isel(time=slice(0, 32)), tmp_path / "coarse_1.nc")
    write_netcdf(celsius.isel(time=slice(32, None)), tmp_path / "coarse_2.nc")
    config = _config(
        tmp_path,
        pairing="mos",
        scale=None,
        coarse={"path": "coarse_*.nc", "variables": ["t2m_model"]},
        train_period=["2019-03-01", "2019-03-04"],
        val_period=["2019-03-05", "2019-03-05"],
        test_period=["2019-03-06", "2019-03-07"],
    )
    result = CliRunner().invoke(main, ["train", str(config)])
    assert result.exit_code == 0, result.output
    run = tmp_path / "run"
    with xr.open_dataset(run / "test_downscaled.nc") as out:
        # the whole 33 x 49 target domain (0.25 degree) at scale 3 (0.7 / 0.25 = 2.8), no crop, no NaN, in K
        assert out["t2m"].shape == (16, 33, 49)  # 2 test days every 3 hours
        assert not out["t2m"].isnull().any() and out["t2m"].attrs["units"] == "K"
        expected = out["t2m"].load()
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["resnet_spc"]["rmse"] < metrics["nearest"]["rmse"]
    # the native 0.7 degree files are regridded like in training, without --regrid
    result = CliRunner().invoke(
        main,
        ["downscale", str(run / "checkpoints/best.pt"), str(tmp_path / "coarse_*.nc"), "-o", str(tmp_path / "o.nc")],
    )
    assert result.exit_code == 0, result.output
    with xr.open_dataset(tmp_path / "o.nc") as out:
        np.testing.assert_allclose(out["t2m"].sel(time=expected["time"]).values, expected.values, atol=1e-4)


def test_models_lists_resnet_spc():
    result = CliRunner().invoke(main, ["models"])
    assert result.exit_code == 0
    assert "resnet_spc" in result.output and "parameters" in result.output


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"scale": 1}, "data.scale: scale must be an integer >= 2"),
        ({"pairing": "mos"}, "pairing 'mos' needs a 'coarse' source"),
        ({"val_period": ["2019-03-02", "2019-03-03"]}, "overlaps"),
        ({"target": {"path": "bundled:era5_t2m_uk", "variables": ["tp"]}}, "no variable 'tp'"),
        ({"target": {"path": "missing.nc"}}, "does not exist"),
        ({"train_period": ["2020-01-01", "2020-01-02"]}, "contains no time step"),
        ({"crop": False}, "not divisible by scale 4"),
        ({"static": {"path": "bundled:uk_static", "variables": ["soil"]}}, "no variable 'soil'"),
    ],
)
def test_bad_configs_give_clear_errors_and_write_nothing(tmp_path, overrides, message):
    result = CliRunner().invoke(main, ["train", str(_config(tmp_path, **overrides))])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "run").exists()


def test_unknown_config_key_is_named(tmp_path):
    path = _config(tmp_path)
    config = yaml.safe_load(path.read_text())
    config["training"]["epoch"] = 3
    path.write_text(yaml.safe_dump(config))
    result = CliRunner().invoke(main, ["train", str(path)])
    assert result.exit_code == 2 and "training.epoch: unknown option; did you mean 'epochs'?" in result.output


def test_verbose_and_quiet_and_the_demo_help():
    runner = CliRunner()
    result = runner.invoke(main, ["-q", "-v", "models"])
    assert result.exit_code == 2 and "contradict each other" in result.output
    assert runner.invoke(main, ["-v", "models"]).exit_code == 0
    assert "-v, --verbose" in runner.invoke(main, ["--help"]).output
    help_text = " ".join(runner.invoke(main, ["demo", "--help"]).output.split())
    assert "verify against the whole baseline ladder" in help_text and "against bicubic" not in help_text


def test_corrupt_checkpoint_via_cli(tmp_path):
    checkpoint = tmp_path / "model.pt"
    checkpoint.write_bytes(b"not a checkpoint")
    result = CliRunner().invoke(
        main, ["downscale", str(checkpoint), "bundled:glosea4_ensemble", "-o", str(tmp_path / "x.nc")]
    )
    assert result.exit_code == 2 and "cannot read checkpoint" in result.output
    assert not (tmp_path / "x.nc").exists()


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path):
    result = CliRunner().invoke(main, ["demo", "--output", str(tmp_path / "demo"), "--epochs", "1"])
    assert result.exit_code == 0, result.output
    demo = tmp_path / "demo"
    metrics = json.loads((demo / "metrics.json").read_text())
    assert {"resnet_spc", "bicubic", "bcsd", "regression"} <= set(metrics)
    with xr.open_dataset(demo / "glosea4_downscaled.nc") as out:
        assert dict(out["t2m"].sizes) == {"member": 13, "time": 6, "lat": 32, "lon": 48}
    with xr.open_dataset(demo / "test_downscaled.nc") as out:
        assert out["t2m"].sizes["time"] == 7 * 24
    assert (demo / "report" / "figures" / "t2m_example.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (demo / "report" / "index.html").read_text()
    assert '<figure id="t2m_spectrum"><img src="data:image/png;base64,' in page  # embedded: one file to mail
    assert (demo / "glosea4_ensemble_mean.png").is_file()
    assert result.output.count("correlation") == 1, "the metrics are printed once"
    assert cf_problems(demo / "glosea4_downscaled.nc") == []
    with xr.open_dataset(demo / "glosea4_downscaled.nc") as out:
        assert out.attrs["license"] == datasets.glosea4_ensemble().attrs["license"]
        assert out["t2m"].attrs["cell_methods"] == "time: mean"  # GloSea4's monthly means
