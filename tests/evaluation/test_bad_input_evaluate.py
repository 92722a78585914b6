"""Bad verification inputs and options are refused with the exact error and the fix, and no report is written.

Each case runs through the command line (``dl4ds evaluate``) and the Python calls it makes (``open_data``,
``Experiment.baseline_pairs``, ``verify``), on small synthetic files.
"""

from functools import partial

import numpy as np
import pytest
import xarray as xr
import yaml
from helpers import assert_refused, assert_refused_by_cli, make_field

from dl4ds.baselines import BaselineOptions
from dl4ds.errors import CheckpointError, ConfigError, DataError, OutputError
from dl4ds.evaluation import Evaluation, Verification, verify
from dl4ds.evaluation.precipitation import PrecipitationOptions
from dl4ds.experiment import Experiment
from dl4ds.io import open_data


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Truth, predictions (good and bad) and an experiment without static fields, in a folder of their own."""
    folder = tmp_path_factory.mktemp("evaluate")
    rng = np.random.default_rng(1)
    truth = make_field(280 + rng.standard_normal((48, 16, 24)), freq="6h").to_dataset()
    truth.to_netcdf(folder / "truth.nc")
    test = truth.sel(time=slice("2019-03-11", None))
    prediction = test + 0.1 * rng.standard_normal(test["t2m"].shape).astype(np.float32)
    prediction["t2m"].attrs = truth["t2m"].attrs
    prediction.to_netcdf(folder / "prediction.nc")
    prediction.rename(t2m="tas").to_netcdf(folder / "renamed.nc")
    prediction.isel(time=0, drop=True).to_netcdf(folder / "no_time.nc")
    prediction.where(prediction > 1e9).to_netcdf(folder / "all_nan.nc")
    late = prediction.assign_coords(time=prediction["time"] + np.timedelta64(365, "D"))
    late.to_netcdf(folder / "late.nc")
    config = {
        "data": {
            "target": {"path": str(folder / "truth.nc")},
            "scale": 4,
            "train_period": ["2019-03-01", "2019-03-08"],
            "test_period": ["2019-03-11", "2019-03-12"],
        },
        "output_dir": str(folder / "run"),
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    return folder


def _evaluate(
    files,
    report,
    prediction="prediction.nc",
    truth="truth.nc",
    *,
    baselines="",
    config=None,
    checkpoint=None,
    variables=None,
    groupby=None,
    baseline_options=None,
    precipitation=None,
):
    """What ``dl4ds evaluate`` does, through the Python API."""
    predicted, observed = open_data(files / prediction), open_data(files / truth)
    train = pairs = None
    if baselines:
        experiment = Experiment.of_checkpoint(checkpoint) if checkpoint else Experiment.from_yaml(files / config)
        train, pairs = experiment.baseline_pairs(predicted)
    verify(
        {"prediction": predicted},
        observed,
        report,
        baselines=baselines,
        train=train,
        pairs=pairs,
        evaluation=Evaluation(Verification(groupby=groupby, precipitation=precipitation or PrecipitationOptions())),
        variables=variables,
        baseline_options=baseline_options,
    )


CASES = {
    "missing_prediction": ({"prediction": "missing.nc"}, [], DataError, "does not exist; give the path"),
    "missing_truth": ({"truth": "missing.nc"}, [], DataError, "does not exist; give the path"),
    "no_shared_variable": (
        {"prediction": "renamed.nc"},
        [],
        DataError,
        "share no variable; choose one with --variable",
    ),
    "unknown_variable": (
        {"variables": ["pr"]},
        ["--variable", "pr"],
        DataError,
        r"has no variable 'pr'; it has \['t2m'\]",
    ),
    "no_common_time": ({"prediction": "late.nc"}, [], DataError, "common"),
    "prediction_all_nan": ({"prediction": "all_nan.nc"}, [], DataError, "no point where both are valid"),
    "unknown_groupby": ({"groupby": "week"}, ["--groupby", "week"], ConfigError, "cannot group by 'week'; choose"),
    "unknown_baseline": (
        {"baselines": "kriging", "config": "config.yaml"},
        ["--baselines", "kriging", "--config", "{files}/config.yaml"],
        ConfigError,
        "unknown baseline.*'kriging'.*or 'all'",
    ),
    "lapse_rate_without_static_fields": (
        {"baselines": "lapse_rate", "config": "config.yaml"},
        ["--baselines", "lapse_rate", "--config", "{files}/config.yaml"],
        DataError,
        "lapse_rate baseline cannot run on these data: .*no static fields; pair the data with static=",
    ),
    "prediction_without_time": (
        {"prediction": "no_time.nc", "baselines": "all", "config": "config.yaml"},
        ["--baselines", "all", "--config", "{files}/config.yaml"],
        DataError,
        "no time coordinate",
    ),
    "bcsd_quantiles_1": (
        {"baselines": "bcsd", "config": "config.yaml", "baseline_options": {"bcsd": {"n_quantiles": 1}}},
        ["--baselines", "bcsd", "--config", "{files}/config.yaml", "--bcsd-n-quantiles", "1"],
        ConfigError,
        "n_quantiles=1 must be at least 2",
    ),
    "ridge_negative": (
        {"baselines": "regression", "config": "config.yaml", "baseline_options": {"regression": {"ridge": -1.0}}},
        ["--baselines", "regression", "--config", "{files}/config.yaml", "--regression-ridge", "-1"],
        ConfigError,
        "ridge=-1.0 must be greater than 0",
    ),
    "wet_day_threshold_0": (
        {"precipitation": {"wet_day_threshold": 0.0}},
        ["--precipitation-wet-day-threshold", "0"],
        ConfigError,
        "wet_day_threshold=0.0 must be greater than 0",
    ),
}


def _python_arguments(arguments):
    arguments = dict(arguments)
    if "baseline_options" in arguments:
        arguments["baseline_options"] = BaselineOptions.parse(arguments["baseline_options"], "baseline options")
    if "precipitation" in arguments:
        arguments["precipitation"] = PrecipitationOptions.parse(arguments["precipitation"], "precipitation options")
    return arguments


@pytest.mark.parametrize("case", list(CASES))
def test_python_refuses_a_bad_verification(case, files, tmp_path):
    arguments, _, error, fix = CASES[case]
    if "precipitation" in arguments or "baseline_options" in arguments:  # the options are refused as they are parsed
        assert_refused(lambda: _python_arguments(arguments), error, fix, tmp_path)
        return
    assert_refused(lambda: _evaluate(files, tmp_path / "report", **arguments), error, fix, tmp_path)


@pytest.mark.parametrize("case", list(CASES))
def test_cli_refuses_a_bad_verification(case, files, tmp_path):
    arguments, flags, error, fix = CASES[case]
    prediction, truth = arguments.get("prediction", "prediction.nc"), arguments.get("truth", "truth.nc")
    flags = [flag.format(files=files) for flag in flags]
    args = ["evaluate", files / prediction, files / truth, "-o", tmp_path / "report", *flags]
    assert_refused_by_cli(args, error, fix, tmp_path)


@pytest.mark.parametrize("interface", ["python", "cli"])
def test_a_checkpoint_without_an_experiment_cannot_fit_baselines(interface, files, trained_checkpoint, tmp_path):
    fix = "holds no experiment configuration .*give the experiment's YAML configuration instead"
    if interface == "python":
        run = partial(_evaluate, files, tmp_path / "r", baselines="all", checkpoint=trained_checkpoint)
        assert_refused(run, ConfigError, fix, tmp_path)
    else:
        args = ["evaluate", files / "prediction.nc", files / "truth.nc", "-o", tmp_path / "r"]
        assert_refused_by_cli(
            [*args, "--baselines", "all", "--checkpoint", trained_checkpoint], ConfigError, fix, tmp_path
        )


@pytest.mark.parametrize("interface", ["python", "cli"])
def test_a_damaged_checkpoint_is_refused_for_baselines(interface, files, tmp_path):
    (tmp_path / "model.pt").write_bytes(b"\x00" * 64)
    fix = "corrupt, truncated or not a dl4ds checkpoint"
    if interface == "python":
        run = partial(_evaluate, files, tmp_path / "r", baselines="all", checkpoint=tmp_path / "model.pt")
        assert_refused(run, CheckpointError, fix, tmp_path)
    else:
        args = ["evaluate", files / "prediction.nc", files / "truth.nc", "-o", tmp_path / "r", "--baselines", "all"]
        assert_refused_by_cli([*args, "--checkpoint", tmp_path / "model.pt"], CheckpointError, fix, tmp_path)


@pytest.mark.parametrize("interface", ["python", "cli"])
@pytest.mark.parametrize("where", ["prediction", "under_a_file"])
def test_a_report_directory_that_cannot_be_written_is_refused(interface, where, files, tmp_path):
    if where == "prediction":
        xr.open_dataset(files / "prediction.nc").load().to_netcdf(tmp_path / "prediction.nc")
        report, prediction, fix = tmp_path / "prediction.nc", tmp_path / "prediction.nc", "is the input"
    else:
        (tmp_path / "results").write_text("a file")
        report, prediction, fix = tmp_path / "results" / "report", files / "prediction.nc", "is a file, not a directory"
    if interface == "cli":
        assert_refused_by_cli(["evaluate", prediction, files / "truth.nc", "-o", report], OutputError, fix, tmp_path)
    else:  # verify() is given datasets, not paths: the report directory is refused as a file
        assert_refused(lambda: _evaluate(files, report), OutputError, "is a file, not a directory", tmp_path)


def test_baselines_without_the_verified_pairs_are_refused(files, tmp_path):
    predictions = {"p": open_data(files / "prediction.nc")}
    run = partial(verify, predictions, open_data(files / "truth.nc"), tmp_path / "r", baselines="bilinear")
    assert_refused(run, ConfigError, "need the pairs of the verified period.*pass pairs=", tmp_path)
