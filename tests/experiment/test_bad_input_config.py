"""Impossible experiment configurations and data are refused before training, with the exact error and the fix.

Every case runs through Python (``Experiment(ExperimentConfig.from_yaml(path)).run()``) and the command line
(``dl4ds train``) on small synthetic files; nothing may appear in the test's folder (no output directory).
"""

import copy
import os

import numpy as np
import pytest
import torch
import xarray as xr
import yaml
from helpers import assert_refused, assert_refused_by_cli, make_field

from dl4ds.errors import ConfigError, DataError, OutputError
from dl4ds.experiment import Experiment
from dl4ds.experiment.config import ExperimentConfig


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """A target (12 days, 6-hourly, 16 x 24 cells), static fields, predictors, and coarse data shifted in time."""
    folder = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    target = make_field(280 + rng.standard_normal((48, 16, 24)), freq="6h").to_dataset()
    target.to_netcdf(folder / "target.nc")
    grid = {"latitude": target["latitude"], "longitude": target["longitude"]}
    xr.Dataset(
        {
            "elevation": (("latitude", "longitude"), rng.uniform(0, 500, (16, 24)).astype(np.float32), {"units": "m"}),
            "land_fraction": (
                ("latitude", "longitude"),
                rng.uniform(0, 1, (16, 24)).astype(np.float32),
                {"units": "1"},
            ),
        },
        coords=grid,
    ).to_netcdf(folder / "static.nc")
    target.rename(t2m="msl").isel(time=slice(0, 20)).to_netcdf(folder / "predictors.nc")
    coarse = target.coarsen(latitude=4, longitude=4).mean()
    coarse.assign_coords(time=coarse["time"] + np.timedelta64(365, "D")).to_netcdf(folder / "late_coarse.nc")
    target.where(target > 1e9).to_netcdf(folder / "all_nan.nc")
    return folder


@pytest.fixture
def config(data_dir):
    return {
        "data": {
            "target": {"path": str(data_dir / "target.nc"), "variables": ["t2m"]},
            "static": {"path": str(data_dir / "static.nc")},
            "scale": 4,
            "train_period": ["2019-03-01", "2019-03-08"],
            "val_period": ["2019-03-09", "2019-03-10"],
            "test_period": ["2019-03-11", "2019-03-12"],
        },
        "model": {"name": "resnet_spc", "params": {"n_filters": 8, "n_blocks": 1}},
        "training": {"epochs": 1, "batch_size": 8},
        "output_dir": "run",
    }


def _set(config, path, value):
    *parents, leaf = path.split(".")
    section = config
    for key in parents:
        section = section.setdefault(key, {})
    if value is _DELETE:
        section.pop(leaf)
    else:
        section[leaf] = value


_DELETE = object()
GPU = torch.cuda.is_available()

CASES = {
    "patch_size_0": ({"data.patch_size": [0, 0]}, ConfigError, r"patch_size \[0, 0\] must be positive multiples of"),
    "patch_size_not_a_multiple": ({"data.patch_size": [6, 8]}, ConfigError, "multiples of the scale 4"),
    "patch_larger_than_domain": ({"data.patch_size": [64, 64]}, ConfigError, "larger than the domain 16 x 24"),
    "scale_larger_than_domain": ({"data.scale": 16}, DataError, "leaves 1 x 1 coarse cells.*at most 8"),
    "scale_1": ({"data.scale": 1}, ConfigError, "scale must be an integer >= 2"),
    "fractional_scale": ({"data.scale": 2.5}, ConfigError, "data.scale"),
    "cuda_without_gpu": ({"training.device": "cuda"}, ConfigError, "no CUDA GPU here.*training.device: cpu"),
    "unknown_device": ({"training.device": "gpu0"}, ConfigError, "'gpu0' is not a torch device"),
    "fp16_on_cpu": ({"training.precision": "fp16"}, ConfigError, "fp16' needs a GPU.*'bf16' on CPUs"),
    "misspelled_key": ({"training.epoch": 3}, ConfigError, "did you mean 'epochs'"),
    "unknown_loss": ({"training.loss": "huber2"}, ConfigError, "training.loss"),
    "unknown_model": ({"model.name": "resnet_xyz"}, ConfigError, "resnet_xyz"),
    "time_window_for_spatial_model": ({"model.time_window": 4}, ConfigError, "remove time_window or choose"),
    "ensemble_of_deterministic_model": ({"training.ensemble_size": 2}, ConfigError, "noise_channels"),
    "loss_region_not_static": (
        {"training.loss_region": {"variable": "soil", "min": 0.5}},
        ConfigError,
        "not among the static fields.*add the field to data.static",
    ),
    "overlapping_periods": ({"data.val_period": ["2019-03-08", "2019-03-10"]}, ConfigError, "periods must be disjoint"),
    "period_ends_before_start": ({"data.val_period": ["2019-03-10", "2019-03-09"]}, ConfigError, "before it starts"),
    "empty_train_period": ({"data.train_period": ["2020-01-01", "2020-01-02"]}, DataError, "contains no time step"),
    "missing_target_file": ({"data.target.path": "nowhere.nc"}, DataError, "does not exist"),
    "missing_target_variable": ({"data.target.variables": ["tp"]}, DataError, "no variable 'tp'.*Choose one of"),
    "missing_static_variable": ({"data.static.variables": ["soil"]}, DataError, "no variable 'soil'"),
    "mos_without_coarse": ({"data.pairing": "mos"}, ConfigError, "needs a 'coarse' source"),
    "lazy_without_patches": ({"data.lazy": True}, ConfigError, "set patch_size"),
    "crop_false_not_divisible": (
        {"data.scale": 5, "data.crop": False},
        DataError,
        "not divisible by scale 5; enable cropping",
    ),
    "bcsd_quantiles_1": ({"evaluation.baselines.bcsd.n_quantiles": 1}, ConfigError, "n_quantiles=1 must be at least 2"),
    "bcsd_unknown_option": ({"evaluation.baselines.bcsd.quantiles": 9}, ConfigError, "did you mean 'n_quantiles'"),
    "bcsd_multiplicative_not_a_target": (
        {"evaluation.baselines.bcsd.multiplicative": ["pr"]},
        ConfigError,
        r"multiplicative names \['pr'\], which are not target variables; choose among \['t2m'\]",
    ),
    "wet_day_threshold_0": (
        {"evaluation.precipitation.wet_day_threshold": 0},
        ConfigError,
        "wet_day_threshold=0 must be greater than 0",
    ),
    "precipitation_variable_not_a_target": (
        {"evaluation.precipitation.variables": ["pr"]},
        ConfigError,
        r"precipitation.variables names \['pr'\]",
    ),
    "diffusion_calibration_members_1": (
        {
            "model.name": "residual_diffusion",
            "training.trainer": "diffusion",
            "training.diffusion.calibration_members": 1,
        },
        ConfigError,
        "calibration_members",
    ),
    "lapse_rate_option_misspelled": ({"evaluation.baselines.lapse_rate.elevaton": "z"}, ConfigError, "'elevation'"),
}


def _case_config(case, config, data_dir):
    changes, error, fix = CASES[case]
    if case == "cuda_without_gpu" and GPU:
        pytest.skip("this machine has a GPU")
    config = copy.deepcopy(config)
    for path, value in changes.items():
        _set(config, path, value)
    return config, error, fix


def _write(config, tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _run(path):
    Experiment(ExperimentConfig.from_yaml(path)).run(progress=False)


@pytest.mark.parametrize("case", list(CASES))
def test_python_refuses_a_bad_experiment(case, config, data_dir, tmp_path):
    config, error, fix = _case_config(case, config, data_dir)
    path = _write(config, tmp_path)
    assert_refused(lambda: _run(path), error, fix, tmp_path)


@pytest.mark.parametrize("case", list(CASES))
def test_cli_refuses_a_bad_experiment(case, config, data_dir, tmp_path):
    config, error, fix = _case_config(case, config, data_dir)
    path = _write(config, tmp_path)
    assert_refused_by_cli(["train", path], error, fix, tmp_path)


DATA = {
    "predictors_missing_times": (
        {"data.predictors": "predictors.nc"},
        DataError,
        "predictors \\['msl'\\] lack .* provide predictors for every target time",
    ),
    "coarse_without_common_times": (
        {"data.pairing": "mos", "data.coarse": "late_coarse.nc"},
        DataError,
        "share no time step.*pair data covering the same period",
    ),
    "target_all_nan": ({"data.target": "all_nan.nc"}, DataError, "entirely NaN; check the variable and the time range"),
}


@pytest.mark.parametrize("case", list(DATA))
@pytest.mark.parametrize("interface", ["python", "cli"])
def test_bad_data_files_are_refused(case, interface, config, data_dir, tmp_path):
    changes, error, fix = DATA[case]
    for key, name in changes.items():
        _set(config, key, {"path": str(data_dir / name)} if name.endswith(".nc") else name)
    path = _write(config, tmp_path)
    if interface == "python":
        assert_refused(lambda: _run(path), error, fix, tmp_path)
    else:
        assert_refused_by_cli(["train", path], error, fix, tmp_path)


@pytest.mark.parametrize("text", ["data: [unclosed", "- just\n- a list\n"])
def test_unreadable_yaml_is_refused(text, tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    fix = "not valid YAML" if "unclosed" in text else "must hold a mapping with a 'data' section"
    assert_refused(lambda: _run(path), ConfigError, fix, tmp_path)
    assert_refused_by_cli(["train", path], ConfigError, fix, tmp_path)


@pytest.mark.parametrize("interface", ["python", "cli"])
def test_an_output_directory_under_a_file_is_refused_before_training(interface, config, tmp_path):
    (tmp_path / "results").write_text("a file")
    config["output_dir"] = "results/run"
    path = _write(config, tmp_path)
    fix = "'.*results' is a file, not a directory; remove it or choose another path"
    if interface == "python":
        assert_refused(lambda: _run(path), OutputError, fix, tmp_path)
    else:
        assert_refused_by_cli(["train", path], OutputError, fix, tmp_path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_an_unwritable_output_directory_is_refused(config, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    config["output_dir"] = "locked/run"
    try:
        assert_refused(lambda: _run(_write(config, tmp_path)), OutputError, "permission denied", locked)
    finally:
        locked.chmod(0o755)
