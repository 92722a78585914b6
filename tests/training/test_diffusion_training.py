"""Residual diffusion training: stage 1 trained or loaded, the denoising loss, exact resume, configs and bad input."""

import logging
import os
import subprocess
import sys

import numpy as np
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


def test_bf16_mixed_precision_trains_both_stages(train_pairs, week_pairs):
    model = diffusion_model(train_pairs)
    data = DownscalingDataset(train_pairs, model.metadata.normalizer, patch_size=(16, 16))
    val = DownscalingDataset(week_pairs.select_time("2019-03-06", "2019-03-06"), model.metadata.normalizer)
    trainer = DiffusionTrainer(
        **{**OPTIONS, "batch_size": 4, "learning_rate": 1e-2},
        epochs=3,
        precision="bf16",
        diffusion={"stage1_epochs": 1},
    )
    trainer.fit(model, data, val)
    val_losses = [record.val_loss for record in trainer.history.epochs]
    assert all(torch.isfinite(torch.tensor(val_losses))) and val_losses[-1] < val_losses[0]
    assert next(model.network.denoiser.parameters()).dtype == torch.float32  # autocast: the weights stay fp32


@pytest.mark.slow
def test_compiled_training_takes_the_same_steps(trained_model, train_pairs, tmp_path):
    """torch.compile of the denoising objective changes no step (stage 1 given, so only stage 2 is compiled)."""
    path = save_checkpoint(tmp_path / "stage1.pt", trained_model)
    data = DownscalingDataset(train_pairs, trained_model.metadata.normalizer, patch_size=(16, 16))
    losses = {}
    for compiled in (False, True):
        model = diffusion_model(train_pairs)
        trainer = DiffusionTrainer(
            **OPTIONS, epochs=2, lr_schedule="constant", compile=compiled, diffusion={"stage1_checkpoint": str(path)}
        )
        trainer.fit(model, data)
        losses[compiled] = [record.train_loss for record in trainer.history.epochs]
    np.testing.assert_allclose(losses[True], losses[False], rtol=1e-4, atol=0)


def test_the_residual_scale_depends_on_the_data_and_stage_one_alone(trained_model, train_pairs, tmp_path):
    """Measured on epoch 0's patches with stage 1 in eval mode, whatever epoch a reused dataset was left at."""
    path = save_checkpoint(tmp_path / "stage1.pt", trained_model)
    data = DownscalingDataset(train_pairs, trained_model.metadata.normalizer, patch_size=(16, 16))
    scales = []
    for epochs in (2, 1):
        model = diffusion_model(train_pairs)
        DiffusionTrainer(**OPTIONS, epochs=epochs, diffusion={"stage1_checkpoint": str(path)}).fit(model, data)
        scales.append(model.network.residual_scale.clone())
    torch.testing.assert_close(scales[0], scales[1], rtol=0, atol=0)


def test_fair_crps_sums_agree_with_the_verification_and_find_the_calibrating_factor():
    from dl4ds.evaluation.forecast_scores import fair_crps
    from dl4ds.training.diffusion import INFLATION_GRID, fair_crps_sums

    generator = torch.Generator().manual_seed(0)
    residuals = torch.randn((5, 3, 2, 4, 6), generator=generator)  # (M, B, V, H, W)
    error = 2.0 * torch.randn((3, 2, 4, 6), generator=generator)
    weight = (torch.rand((3, 2, 4, 6), generator=generator) > 0.2).float()
    factors = torch.tensor([0.5, 1.0, 2.5])
    sums, weights = fair_crps_sums(residuals, error, weight, factors)
    for g, factor in enumerate(factors.tolist()):
        for v in range(2):
            members = (factor * residuals[:, :, v]).reshape(5, -1).T.numpy()  # (cells, M)
            reference = fair_crps(members.astype(np.float64), error[:, v].reshape(-1).numpy().astype(np.float64))
            mask = weight[:, v].reshape(-1).numpy()
            np.testing.assert_allclose(float(sums[g, v]), (reference * mask).sum(), rtol=1e-5)
            assert float(weights[v]) == mask.sum()

    # members of unit spread for errors of spread 2: the fair CRPS is least at k = 2
    residuals = torch.randn((8, 64, 1, 16, 16), generator=generator)
    error = 2.0 * torch.randn((64, 1, 16, 16), generator=generator)
    sums, weights = fair_crps_sums(residuals, error, torch.ones_like(error), INFLATION_GRID)
    best = float(INFLATION_GRID[(sums / weights).argmin(dim=0)][0])
    assert best == pytest.approx(2.0, rel=0.05)


def test_the_spread_calibration_is_fitted_on_validation_data_and_kept_in_best_pt(
    trained_model, train_pairs, week_pairs, tmp_path, caplog
):
    """Fitted where validation data is given (and kept in best.pt), 1 where switched off, warned about without val."""
    path = save_checkpoint(tmp_path / "stage1.pt", trained_model)
    data = DownscalingDataset(train_pairs, trained_model.metadata.normalizer, patch_size=(16, 16))
    val = DownscalingDataset(week_pairs.select_time("2019-03-06", "2019-03-06"), trained_model.metadata.normalizer)
    factors = []
    for calibrate in (True, False):
        model = diffusion_model(train_pairs)
        diffusion = {"stage1_checkpoint": str(path), "spread_calibration": calibrate, "calibration_members": 3}
        directory = tmp_path / f"run_{calibrate}"
        DiffusionTrainer(**OPTIONS, epochs=1, diffusion=diffusion, checkpoint_dir=directory).fit(model, data, val)
        factors.append(float(model.network.spread_inflation))
        assert float(load_model(directory / "best.pt").network.spread_inflation) == factors[-1]
    assert factors[1] == 1.0 and factors[0] != 1.0 and 0.25 <= factors[0] <= 8.0
    with caplog.at_level(logging.WARNING, logger="dl4ds.training.diffusion"):
        uncalibrated = diffusion_model(train_pairs)
        DiffusionTrainer(**OPTIONS, epochs=1, diffusion={"stage1_checkpoint": str(path)}).fit(uncalibrated, data)
    assert float(uncalibrated.network.spread_inflation) == 1.0
    assert "spread is not calibrated" in caplog.text and "data.val_period" in caplog.text
    model = load_model(tmp_path / "run_True" / "best.pt")  # a sample is the mean plus the inflated residual
    batch = next(iter(torch.utils.data.DataLoader(val, batch_size=2)))
    network = model.network
    mean, _ = network.condition(batch["x"], batch["static"], batch["offset"])
    draws = []
    for factor in (factors[0], 1.0):
        network.spread_inflation.fill_(factor)
        torch.manual_seed(5)
        with torch.no_grad():
            draws.append(network.sample(batch["x"], batch["static"], batch["offset"], steps=2) - mean)
    torch.testing.assert_close(draws[0], factors[0] * draws[1], rtol=1e-4, atol=1e-6)
