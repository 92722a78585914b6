"""Studies end to end on a day of real data: results, best.yaml through dl4ds train, resume, pruning, shared studies."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import optuna
import pandas as pd
import pytest
import torch
import xarray as xr
import yaml
from click.testing import CliRunner
from helpers import cf_problems, tuning_config

from dl4ds import datasets
from dl4ds.cli import main
from dl4ds.model import read_checkpoint
from dl4ds.tuning import Tuner

SPACE = {
    "model.name": {"choices": ["resnet_spc", "convnet_spc"]},
    "training.learning_rate": {"low": 1e-3, "high": 1e-2, "log": True},
}


@pytest.fixture(scope="module")
def study_run(tmp_path_factory):
    """``dl4ds tune`` of 3 trials (the base config first) on the tiny config, verified on the test day."""
    folder = tmp_path_factory.mktemp("tune")
    path = tuning_config(folder, SPACE, trials=3)
    result = CliRunner().invoke(main, ["tune", str(path)])
    assert result.exit_code == 0, result.output
    return folder, folder / "out", result


def _study(output, name="tune"):
    return optuna.load_study(study_name=name, storage=f"sqlite:///{output / 'study.db'}")


@pytest.mark.slow
def test_tune_writes_trials_best_config_figures_and_the_test_verification(study_run):
    _, output, result = study_run
    trials = pd.read_csv(output / "trials.csv")
    assert list(trials["number"]) == [0, 1, 2]
    assert set(trials["state"]) == {"COMPLETE"}
    assert trials["base"].tolist() == [True, False, False]
    assert trials.loc[0, "training.learning_rate"] == 0.003 and trials.loc[0, "model.name"] == "resnet_spc"
    assert (trials["value"] == trials["val_rmse"]).all() and (trials["epochs"] == 2).all()
    for name in ("optimization_history", "param_importances", "slice"):
        assert (output / "figures" / f"{name}.png").stat().st_size > 1000
    best = trials.loc[trials["value"].idxmin()]
    summary = json.loads((output / "summary.json").read_text())
    assert summary["best"]["trial"] == best["number"]
    assert f"best trial: {best['number']}" in result.output
    # Each trial is an ordinary experiment without the test period: it played no part in the choice.
    for folder in trials["folder"]:
        trial_config = yaml.safe_load((output / folder / "config.yaml").read_text())
        assert trial_config["data"]["test_period"] is None
        assert (output / folder / "checkpoints" / "best.pt").is_file()
    metrics = json.loads((output / "test" / "metrics.json").read_text())
    assert next(iter(metrics)) == "tuned" and "bicubic" in metrics and "regression" in metrics
    assert ("base" in metrics) == (best["number"] != 0)
    assert summary["test"]["tuned"]["rmse"] == metrics["tuned"]["rmse"]
    assert (output / "test" / "report" / "index.html").is_file()
    assert cf_problems(output / "test" / "test_downscaled.nc") == []
    with xr.open_dataset(output / "test" / "test_downscaled.nc") as fine:
        assert fine.attrs["license"] == datasets.era5_t2m_uk().attrs["license"]  # the tuning data's licence is kept


@pytest.mark.slow
def test_best_yaml_trains_as_it_is_to_the_best_trials_weights(study_run):
    _, output, _ = study_run
    best = yaml.safe_load((output / "best.yaml").read_text())
    assert best["data"]["test_period"] == ["2019-03-03", "2019-03-03"] and best["output_dir"] == "best"
    result = CliRunner().invoke(main, ["train", str(output / "best.yaml")])
    assert result.exit_code == 0, result.output
    number = json.loads((output / "summary.json").read_text())["best"]["trial"]
    retrained = read_checkpoint(output / "best" / "checkpoints" / "best.pt")["state_dict"]
    searched = read_checkpoint(output / "trials" / f"trial_{number:04d}" / "checkpoints" / "best.pt")["state_dict"]
    assert retrained.keys() == searched.keys()
    for key in retrained:
        torch.testing.assert_close(retrained[key], searched[key], rtol=0, atol=0)  # seeded: the same weights
    assert best["model"]["name"] in json.loads((output / "best" / "metrics.json").read_text())


@pytest.mark.slow
def test_a_resumed_study_keeps_its_trials_and_adds_the_missing_ones(study_run, tmp_path):
    _, output, _ = study_run
    copy = tmp_path / "out"
    shutil.copytree(output, copy)
    before = {t.number: t.datetime_start for t in _study(copy).trials}
    path = tuning_config(tmp_path, SPACE, trials=3)
    tuner = Tuner.from_yaml(path, output_dir=copy, trials=4)
    result = tuner.run(verify_best=False)
    after = _study(copy).trials
    assert [t.number for t in after] == [0, 1, 2, 3] and result.counts == {"COMPLETE": 4}
    assert {t.number: t.datetime_start for t in after[:3]} == before  # not run again
    assert (copy / "trials" / "trial_0003" / "checkpoints" / "best.pt").is_file()
    # The same study with another space is refused rather than mixed.
    changed = tuning_config(tmp_path, {**SPACE, "training.batch_size": {"choices": [8, 16]}}, name="tune")
    with pytest.raises(Exception, match="another base config or search space"):
        _ = Tuner.from_yaml(changed, output_dir=copy).study


@pytest.mark.slow
def test_pruning_stops_a_bad_trial_early(tmp_path):
    space = {
        "training.learning_rate": {"choices": [0.003, 1e-6]},
        "model.params.global_skip": {"choices": [True, False]},
    }
    path = tuning_config(
        tmp_path,
        space,
        training={"epochs": 4},
        trials=2,
        pruner={"name": "median", "min_epochs": 1, "startup_trials": 1},
    )
    tuner = Tuner.from_yaml(path)
    tuner.study.enqueue_trial({"training.learning_rate": 1e-6, "model.params.global_skip": False})  # after the base
    result = tuner.run(verify_best=False)
    trials = tuner.study.trials
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED]
    assert len(trials[0].intermediate_values) == 4
    assert len(trials[1].intermediate_values) == 1  # stopped after its first epoch
    history = pd.read_csv(tmp_path / "out" / "trials" / "trial_0001" / "checkpoints" / "history.csv")
    assert len(history) == 1
    table = pd.read_csv(tmp_path / "out" / "trials.csv")
    assert table.loc[1, "reason"] == "pruned after epoch 1"
    assert result.best_trial == 0


def _tune_process(path, *arguments):
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "dl4ds.cli", "-q", "tune", str(path), *arguments]
    return subprocess.Popen(command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_two_processes_share_one_sqlite_study(tmp_path):
    path = tuning_config(tmp_path, SPACE, trials=4)
    workers = [_tune_process(path, "--no-verify") for _ in range(2)]
    for worker in workers:
        _, errors = worker.communicate(timeout=240)
        assert worker.returncode == 0, errors
    trials = _study(tmp_path / "out").trials
    assert [t.number for t in trials] == [0, 1, 2, 3]  # N in total, none surplus
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert len({t.user_attrs["worker"] for t in trials}) == 2  # both worked
    assert len({json.dumps(t.params, sort_keys=True) for t in trials}) == 4  # no trial run twice
    assert sorted(p.name for p in (tmp_path / "out" / "trials").iterdir()) == [f"trial_{n:04d}" for n in range(4)]


@pytest.mark.slow
def test_a_killed_study_resumes_its_interrupted_trial_from_the_checkpoint(tmp_path):
    path = tuning_config(tmp_path, SPACE, training={"epochs": 6}, trials=1)
    history = tmp_path / "out" / "trials" / "trial_0000" / "checkpoints" / "history.csv"
    worker = _tune_process(path, "--no-verify")
    deadline = time.monotonic() + 180
    while not (history.is_file() and len(pd.read_csv(history)) >= 2):
        assert worker.poll() is None and time.monotonic() < deadline, "the worker stopped before its second epoch"
        time.sleep(0.2)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    done = len(
        read_checkpoint(tmp_path / "out" / "trials" / "trial_0000" / "checkpoints" / "last.pt")["training_state"][
            "history"
        ]
    )

    tuner = Tuner.from_yaml(path)  # the same study
    result = tuner.run(verify_best=False)
    first, retry = tuner.study.trials
    assert first.state == optuna.trial.TrialState.FAIL and retry.user_attrs["retry_of"] == 0
    assert retry.state == optuna.trial.TrialState.COMPLETE and retry.params == first.params
    assert result.counts == {"FAIL": 1, "COMPLETE": 1}
    resumed = pd.read_csv(tmp_path / "out" / "trials" / "trial_0001" / "checkpoints" / "history.csv")
    assert len(resumed) == 6 and len(retry.intermediate_values) == 6
    old = pd.read_csv(history)
    pd.testing.assert_frame_equal(resumed.iloc[:done, :4], old.iloc[:done, :4])  # the epochs before the kill, kept
    table = pd.read_csv(tmp_path / "out" / "trials.csv")
    assert table.loc[0, "reason"] == "interrupted; retried as trial 1"
