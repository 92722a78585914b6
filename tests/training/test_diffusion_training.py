"""Residual diffusion training: stage 1 trained or loaded, the denoising loss, exact resume, configs and bad input."""

import os
import subprocess
import sys

import pytest
import torch
import xarray as xr
import yaml
from helpers import SMALL_PARAMS, TINY_DIFFUSION, assert_same_weights, train_killed_and_resumed, training_config

from dl4ds import load_model
from dl4ds.data import DownscalingDataset, Normalizer
from dl4ds.errors import ConfigError
from dl4ds.experiment import Experiment
from dl4ds.experiment.config import ExperimentConfig
from dl4ds.model import DownscalingModel, save_checkpoint
from dl4ds.training import DiffusionTrainer, SupervisedTrainer, create_trainer

OPTIONS = {"batch_size": 8, "learning_rate": 3e-3, "progress": False}


@pytest.fixture(scope="module")
def train_pairs(week_pairs):
    return week_pairs.select_time("2019-03-01", "2019-03-05")


def diffusion_model(pairs, **params):
    torch.manual_seed(0)
    return DownscalingModel.build(
        "residual_diffusion", pairs, Normalizer.fit(pairs), params={**TINY_DIFFUSION, **params}
    )


def test_stage_one_trains_first_then_the_denoising_loss_falls(train_pairs, week_pairs, tmp_path):
    model = diffusion_model(train_pairs)
    data = DownscalingDataset(train_pairs, model.metadata.normalizer, patch_size=(16, 16))
    val = DownscalingDataset(week_pairs.select_time("2019-03-06", "2019-03-06"), model.metadata.normalizer)
    options = {**OPTIONS, "batch_size": 4, "learning_rate": 1e-2}
    trainer = DiffusionTrainer(**options, epochs=3, diffusion={"stage1_epochs": 1}, checkpoint_dir=tmp_path)
    trainer.fit(model, data, val)
    stage1 = load_model(tmp_path / "stage1" / "best.pt")
    assert stage1.metadata.architecture == "resnet_spc" and not stage1.capabilities.stochastic
    for key, value in stage1.network.state_dict().items():  # the frozen regressor is stage 1's best epoch
        torch.testing.assert_close(model.network.regressor.state_dict()[key], value, rtol=0, atol=0)
    val_losses = [record.val_loss for record in trainer.history.epochs]
    train_losses = [record.train_loss for record in trainer.history.epochs]
    assert val_losses[-1] < 0.99 * val_losses[0] and train_losses[-1] < 0.95 * train_losses[0]
    assert 0.05 < float(model.network.residual_scale) < 1.0  # the stage-1 residual, in normalised units


def test_stage_one_from_a_checkpoint_must_match(trained_model, week_pairs, tmp_path):
    train = week_pairs.select_time("2019-03-01", "2019-03-05")  # the trained_model's data and normalisation
    path = save_checkpoint(tmp_path / "stage1.pt", trained_model)
    data = DownscalingDataset(train, trained_model.metadata.normalizer, patch_size=(16, 16))
    model = diffusion_model(train)
    DiffusionTrainer(**OPTIONS, epochs=1, diffusion={"stage1_checkpoint": str(path)}).fit(model, data)
    for key, value in trained_model.network.state_dict().items():
        torch.testing.assert_close(model.network.regressor.state_dict()[key], value, rtol=0, atol=0)

    with pytest.raises(ConfigError, match="regressor_params"):
        other = diffusion_model(train, regressor_params={"n_filters": 8, "n_blocks": 1})
        DiffusionTrainer(**OPTIONS, epochs=1, diffusion={"stage1_checkpoint": str(path)}).fit(other, data)
    later = week_pairs.select_time("2019-03-03", "2019-03-07")
    with pytest.raises(ConfigError, match="normalisation"):
        DiffusionTrainer(**OPTIONS, epochs=1, diffusion={"stage1_checkpoint": str(path)}).fit(
            diffusion_model(later), DownscalingDataset(later, Normalizer.fit(later))
        )
    noisy = DownscalingModel.build(
        "resnet_spc", train, Normalizer.fit(train), params={**SMALL_PARAMS, "noise_channels": 1}
    )
    with pytest.raises(ConfigError, match="stochastic model"):
        DiffusionTrainer(
            **OPTIONS, epochs=1, diffusion={"stage1_checkpoint": str(save_checkpoint(tmp_path / "n.pt", noisy))}
        ).fit(diffusion_model(train), data)


def test_trainers_and_models_must_match(train_pairs):
    data = DownscalingDataset(train_pairs, Normalizer.fit(train_pairs))
    with pytest.raises(ConfigError, match="trainer: diffusion"):
        SupervisedTrainer(**OPTIONS, epochs=1).fit(diffusion_model(train_pairs), data)
    plain = DownscalingModel.build("resnet_spc", train_pairs, Normalizer.fit(train_pairs), params=SMALL_PARAMS)
    with pytest.raises(ConfigError, match="model.name: residual_diffusion"):
        DiffusionTrainer(**OPTIONS, epochs=1).fit(plain, data)


def _config(tmp_path, **training):
    model = {"name": "residual_diffusion", "params": TINY_DIFFUSION}
    return training_config(tmp_path, model, **{"trainer": "diffusion", **training})


def test_diffusion_configs_build_their_trainer_and_bad_ones_name_the_fix(tmp_path):
    raw = _config(tmp_path, ema_decay=0.99, diffusion={"stage1_epochs": 3, "validation_sigmas": [0.5, 2.0]})
    trainer = create_trainer(ExperimentConfig.from_dict(raw).training)
    assert isinstance(trainer, DiffusionTrainer) and trainer.diffusion.stage1_epochs == 3
    assert trainer.options.ema_decay == 0.99
    packaged = ExperimentConfig.from_yaml(
        os.path.join(os.path.dirname(__import__("dl4ds").__file__), "configs", "diffusion.yaml")
    )
    assert packaged.training.trainer == "diffusion" and packaged.model.name == "residual_diffusion"
    for training, message in [
        ({"trainer": "supervised", "diffusion": {"stage1_epochs": 2}}, "needs trainer: diffusion"),
        ({"diffusion": {"validation_sigmas": [0.0]}}, "must be > 0"),
        ({"diffusion": {"p_std": 0}}, "p_std"),
    ]:
        with pytest.raises(ConfigError, match=message):
            ExperimentConfig.from_dict(_config(tmp_path, **training))


@pytest.mark.slow
def test_kill_9_then_resume_gives_the_weights_of_an_uninterrupted_run(tmp_path):
    """A diffusion run killed by SIGKILL in stage 2 resumes to bit-identical weights; its ensemble comes from the CLI."""
    raw = _config(tmp_path, epochs=3, ema_decay=0.9, diffusion={"stage1_epochs": 1})
    config_path = tmp_path / "diffusion.yaml"
    config_path.write_text(yaml.safe_dump(raw))

    def stage_two_checkpointed(checkpoints):  # stage 1 checkpoints into checkpoints/stage1
        return (checkpoints / "last.pt").exists()

    env = train_killed_and_resumed(config_path, tmp_path, ready=stage_two_checkpointed, epochs=3)
    for name in ("last.pt", "best.pt"):
        assert_same_weights(tmp_path / "straight" / "checkpoints" / name, tmp_path / "killed" / "checkpoints" / name)

    coarse = (
        Experiment(ExperimentConfig.from_dict(raw)).pair().select_time("2019-03-03", "2019-03-03T05").input_dataset()
    )
    coarse.to_netcdf(tmp_path / "coarse.nc")
    command = [
        sys.executable, "-m", "dl4ds.cli", "--quiet", "downscale", str(tmp_path / "killed" / "checkpoints" / "best.pt"),
        str(tmp_path / "coarse.nc"), "-o", str(tmp_path / "ensemble.nc"), "--samples", "3", "--seed", "0", "--steps", "2",
    ]  # fmt: skip
    subprocess.run(command, check=True, env=env, capture_output=True)
    with xr.open_dataset(tmp_path / "ensemble.nc") as ensemble:
        assert ensemble["t2m"].sizes["sample"] == 3 and {"t2m_mean", "t2m_spread"} <= set(ensemble.data_vars)
        assert float(ensemble["t2m_spread"].mean()) > 1e-3
    refused = subprocess.run([*command[:-1], "0"], env=env, capture_output=True, text=True)
    assert refused.returncode != 0 and "steps=0 must be at least 1" in refused.stderr
