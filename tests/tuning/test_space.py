"""The search space: every problem reported before any trial, with its path; conditional sampling; applying values."""

import optuna
import pytest
from click.testing import CliRunner
from helpers import tuning_config

from dl4ds.cli import main
from dl4ds.errors import ConfigError
from dl4ds.tuning import Tuner, load_tuning_config
from dl4ds.tuning.options import parse_duration


def test_structural_problems_are_listed_with_their_paths(tmp_path):
    path = tuning_config(
        tmp_path,
        {
            "training.learning_rate": {"low": 0.01, "high": 0.001},
            "training.weight_decay": {"low": 0.0, "high": 0.1, "log": True},
            "model.params.n_filters": {"low": 8, "high": 20, "step": 8},
            "training.epochs": {"values": [1, 2]},
        },
        pruner="sometimes",
    )
    with pytest.raises(ConfigError) as raised:
        load_tuning_config(path)
    message = str(raised.value)
    assert "search.parameters.training.learning_rate: low 0.01 must be below high 0.001" in message
    assert "search.parameters.training.weight_decay: a log range needs low > 0, not 0" in message
    assert "search.parameters.model.params.n_filters: high - low = 12 is not a multiple of step 8" in message
    assert "search.parameters.training.epochs: a parameter is {choices: [...]} or {low: L, high: H}" in message
    assert "search.pruner.name" in message


def test_space_problems_are_listed_before_any_trial(tmp_path):
    path = tuning_config(
        tmp_path,
        {
            "model.name": {"choices": ["resnet_spc", "convnet_spcc"]},
            "training.learning_rat": {"choices": [0.001]},
            "training.batch_size": {"low": 0, "high": 16},
            "training.lr_schedule.warmup_epochs": {"low": 0.5, "high": 2},
            "model.params.depth": {"low": 1, "high": 3},
            "model.params.growth_rate": {"low": 4, "high": 8, "when": {"model.name": ["unet_*"]}},
            "data.test_period": {"choices": [["2019-03-04", "2019-03-04"]]},
            "training.epochs": {"choices": [2, 3], "when": {"model.nam": ["resnet_spc"]}},
            "training.precision": {"low": 0, "high": 1},
        },
    )
    with pytest.raises(ConfigError) as raised:
        Tuner.from_yaml(path)
    message = str(raised.value)
    expected = [
        "search.parameters.model.name: 'convnet_spcc' is not a registered model; did you mean 'convnet_spc'?",
        "search.parameters.training.learning_rat: training has no field 'learning_rat'; did you mean 'learning_rate'?",
        "search.parameters.training.batch_size: the value 0 is refused: training.batch_size=0 must be at least 1",
        "search.parameters.training.lr_schedule.warmup_epochs: is an integer field; give whole-number low, high",
        "search.parameters.model.params.depth: no candidate model (resnet_spc) takes the parameter "
        "'depth'; it is taken by",
        "search.parameters.model.params.growth_rate.when.model.name: 'unet_*' matches none of its choices",
        "search.parameters.data.test_period: defines the task the trials are compared on",
        "search.parameters.training.epochs.when: 'model.nam' is not a searched parameter; did you mean 'model.name'?",
        "search.parameters.training.precision: is not a number; search it with choices",
    ]
    for line in expected:
        assert line in message
    assert not (tmp_path / "out").exists()  # nothing was written


def test_base_outside_the_space_and_loss_objective(tmp_path):
    path = tuning_config(
        tmp_path,
        {"training.learning_rate": {"low": 1e-4, "high": 1e-3, "log": True}, "training.loss": {"choices": ["mae"]}},
        objective="loss",
    )
    with pytest.raises(ConfigError) as raised:
        Tuner.from_yaml(path)
    message = str(raised.value)
    assert "search.parameters.training.loss: changes what the validation loss measures" in message
    assert "search.parameters.training.learning_rate: the base config's value 0.003 lies outside the range" in message
    Tuner.from_yaml(path, objective="rmse", include_base=False)  # both fixed


def test_cli_reports_space_errors_without_a_traceback(tmp_path):
    path = tuning_config(tmp_path, {"model.params.depth": {"low": 1, "high": 3}})
    result = CliRunner().invoke(main, ["tune", str(path), "-o", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert "no candidate model (resnet_spc) takes the parameter 'depth'" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "run").exists()


def test_conditional_parameters_and_applied_configs(tmp_path):
    path = tuning_config(
        tmp_path,
        {
            "model.name": {"choices": ["resnet_spc", "unet_spc"]},
            "model.params.n_blocks": {"low": 1, "high": 3},  # taken by resnet_spc only
            "model.params.depth": {"low": 1, "high": 2},  # taken by unet_spc only
            "training.loss": {"choices": ["mae", {"mae": 1.0, "spectral": 0.1}]},
            "training.lr_schedule": {"choices": ["cosine", "constant"], "when": {"model.name": ["unet_*"]}},
        },
    )
    space = Tuner.from_yaml(path).space
    assert space.order.index("model.name") < space.order.index("model.params.depth")
    loss_labels = space.labels("training.loss")
    assert loss_labels == ['"mae"', '{"mae": 1.0, "spectral": 0.1}']  # lists and mappings are stored as JSON

    unet = optuna.trial.FixedTrial(
        {
            "model.name": "unet_spc",
            "model.params.depth": 2,
            "training.loss": loss_labels[1],
            "training.lr_schedule": "constant",
        }
    )
    values = space.suggest(unet)
    assert values == {
        "model.name": "unet_spc",
        "model.params.depth": 2,
        "training.loss": {"mae": 1.0, "spectral": 0.1},
        "training.lr_schedule": "constant",
    }
    config = space.apply(values)
    assert config.model.params == {"n_filters": 8, "static_filters": 4, "depth": 2}  # the base's n_blocks left out
    assert config.training.loss == {"mae": 1.0, "spectral": 0.1}
    assert config.training.lr_schedule.name == "constant"

    resnet = optuna.trial.FixedTrial({"model.name": "resnet_spc", "model.params.n_blocks": 3, "training.loss": '"mae"'})
    values = space.suggest(resnet)
    assert values == {"model.name": "resnet_spc", "model.params.n_blocks": 3, "training.loss": "mae"}
    assert space.apply(values).model.params == {"n_filters": 8, "n_blocks": 3, "static_filters": 4}
    assert space.values(resnet.params) == values
    # The base config as a point of the space: resnet_spc, its n_blocks, mae; no unet parameters.
    assert space.base_values() == {"model.name": "resnet_spc", "model.params.n_blocks": 1, "training.loss": '"mae"'}


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90.0), ("30m", 1800.0), ("2h", 7200.0), ("1h30m", 5400.0), ("45", 45.0), (12, 12.0)]
)
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["soon", "0", "-5m", "30x"])
def test_bad_durations(text):
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_the_shipped_space_searches_around_the_demo_config(tmp_path):
    from importlib import resources

    from dl4ds.experiment.demo import demo_config

    tuner = Tuner.from_yaml(resources.files("dl4ds").joinpath("configs", "tune.yaml"), output_dir=tmp_path)
    base = tuner.config.with_values({"output_dir": "x"})
    assert base == demo_config("x")  # the base trial is the demo config itself
    assert tuner.space.base_values()["model.name"] == "resnet_spc"
    assert tuner.space.changes_loss  # the loss is searched: trials are pruned on their validation RMSE
    assert tuner.search.timeout == 1800
