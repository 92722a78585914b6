"""Conditional adversarial training, ensembles at inference, the training config, and resume after kill -9."""

import subprocess
import sys

import pytest
import torch
import xarray as xr
import yaml
from helpers import SMALL_PARAMS, assert_same_weights, train_killed_and_resumed, training_config

from dl4ds.data import DownscalingDataset, Normalizer
from dl4ds.errors import CheckpointError, ConfigError
from dl4ds.experiment import Experiment
from dl4ds.experiment.config import ExperimentConfig
from dl4ds.inference.downscale import downscale
from dl4ds.model import DownscalingModel
from dl4ds.training import CGANTrainer, SupervisedTrainer, create_trainer

NOISY = {**SMALL_PARAMS, "noise_channels": 2}


def _generator(pairs, name="resnet_spc", seed=0, **extra):
    torch.manual_seed(seed)
    return DownscalingModel.build(
        name, pairs, Normalizer.fit(pairs), params={**NOISY, **extra.pop("params", {})}, **extra
    )


@pytest.fixture(scope="module")
def train_pairs(week_pairs):
    return week_pairs.select_time("2019-03-01", "2019-03-05")


def test_one_cgan_epoch_lowers_the_pixel_loss_and_trains_the_discriminator(train_pairs):
    model = _generator(train_pairs)
    data = DownscalingDataset(train_pairs, model.metadata.normalizer, patch_size=(16, 16))
    trainer = CGANTrainer(epochs=1, batch_size=8, learning_rate=3e-3, loss="crps", ensemble_size=2, progress=False)
    before = trainer.evaluate_loss(model, data)
    trainer.fit(model, data)
    data.set_epoch(0)  # the patches of the first evaluation
    assert trainer.evaluate_loss(model, data) < 0.9 * before
    record = trainer.history.epochs[0]
    assert {"adversarial", "discriminator", "logit_real", "logit_fake"} <= set(record.terms)
    discriminator_weights = list(trainer.discriminator.parameters())
    assert all(torch.isfinite(p).all() for p in discriminator_weights)


def test_cgan_generator_makes_different_fields_per_draw_and_repeats_with_a_seed(train_pairs):
    model = _generator(train_pairs)
    data = DownscalingDataset(train_pairs, model.metadata.normalizer)
    CGANTrainer(epochs=1, batch_size=8, loss="crps", ensemble_size=2, progress=False).fit(model, data)
    coarse = train_pairs.select_time("2019-03-05", "2019-03-05").input_dataset()
    first = downscale(model, coarse, samples=3, seed=7)
    again = downscale(model, coarse, samples=3, seed=7)
    other = downscale(model, coarse, samples=3, seed=8)
    assert first["t2m"].dims == ("sample", "time", "lat", "lon")
    assert list(first["sample"].values) == [0, 1, 2]
    assert first.identical(again.assign_attrs(first.attrs))
    assert not (first["t2m"] == other["t2m"]).all()
    spread = first["t2m"].std("sample")
    assert float(spread.mean()) > 1e-3  # the members differ everywhere, not in a few cells
    unseeded = [downscale(model, coarse)["t2m"] for _ in range(2)]
    assert not (unseeded[0] == unseeded[1]).all()


def test_deterministic_models_refuse_samples(trained_model, week_pairs):
    with pytest.raises(ConfigError, match="deterministic"):
        downscale(trained_model, week_pairs.input_dataset(), samples=4)


@pytest.mark.parametrize(
    "options",
    [
        {"gan_loss": "nonsaturating", "r1_weight": 1.0, "discriminator_steps": 2},
        {"gan_loss": "hinge", "spectral_norm": False, "warmup_epochs": 1, "discriminator_depth": 1},
    ],
)
def test_cgan_options_train(train_pairs, options):
    model = _generator(train_pairs)
    data = DownscalingDataset(train_pairs, model.metadata.normalizer, patch_size=(8, 8))
    trainer = CGANTrainer(epochs=1, batch_size=16, loss={"mae": 1.0, "spectral": 0.1}, gan=options, progress=False)
    trainer.fit(model, data)
    terms = trainer.history.epochs[0].terms
    assert ("r1" in terms) == (options.get("r1_weight", 0) > 0)
    assert {"mae", "spectral"} <= set(terms)


def test_cgan_trains_spatio_temporal_networks(train_pairs):
    model = _generator(train_pairs, name="recresnet_spc", time_window=3)
    data = DownscalingDataset(train_pairs, model.metadata.normalizer, patch_size=(16, 16), time_window=3)
    trainer = CGANTrainer(epochs=1, batch_size=4, loss="crps", ensemble_size=2, progress=False)
    trainer.fit(model, data)
    assert len(trainer.history.epochs) == 1


def test_cgan_resumes_exactly_with_its_discriminator(train_pairs, tmp_path):
    data = DownscalingDataset(train_pairs, Normalizer.fit(train_pairs), patch_size=(16, 16))
    options = {"epochs": 2, "batch_size": 8, "loss": "crps", "ensemble_size": 2, "progress": False, "ema_decay": 0.9}
    CGANTrainer(**options, checkpoint_dir=tmp_path / "straight").fit(_generator(train_pairs), data)
    CGANTrainer(**{**options, "epochs": 1}, checkpoint_dir=tmp_path / "split").fit(_generator(train_pairs), data)
    CGANTrainer(**options, checkpoint_dir=tmp_path / "split").fit(_generator(train_pairs), data, resume=True)
    straight = torch.load(tmp_path / "straight" / "last.pt", weights_only=True)
    resumed = torch.load(tmp_path / "split" / "last.pt", weights_only=True)
    for part in ("state_dict",):
        for key, value in straight[part].items():
            torch.testing.assert_close(resumed[part][key], value, rtol=0, atol=0)
    for key, value in straight["training_state"]["discriminator"].items():
        torch.testing.assert_close(resumed["training_state"]["discriminator"][key], value, rtol=0, atol=0)
    with pytest.raises(CheckpointError, match="differently configured trainer"):
        SupervisedTrainer(epochs=3, progress=False, checkpoint_dir=tmp_path / "split").fit(
            _generator(train_pairs), data, resume=True
        )


def _config(tmp_path, **training):
    return training_config(tmp_path, {"name": "resnet_spc", "params": NOISY}, **training)


def test_training_config_builds_every_option(tmp_path):
    raw = _config(
        tmp_path,
        trainer="cgan",
        loss={"crps": 1.0, "ms_dssim": 0.1},
        ensemble_size=2,
        lr_schedule={"name": "cosine", "warmup_epochs": 1},
        early_stopping={"patience": 3},
        grad_clip=1.0,
        ema_decay=0.99,
        precision="bf16",
        checkpoint_every=2,
        loss_region={"variable": "land_fraction", "min": 0.5},
        area_weighted=True,
        gan={"adversarial_weight": 0.05, "r1_weight": 0.1},
    )
    config = ExperimentConfig.from_dict(raw)
    trainer = create_trainer(config.training)
    assert isinstance(trainer, CGANTrainer)
    assert trainer.gan.adversarial_weight == 0.05 and trainer.options.lr_schedule.warmup_epochs == 1
    assert trainer.options.early_stopping.patience == 3 and trainer.precision == "bf16"
    assert ExperimentConfig.from_dict(_config(tmp_path, lr_schedule="step")).training.lr_schedule.name == "step"


@pytest.mark.parametrize(
    ("training", "message"),
    [
        ({"loss": "ssim"}, "unknown loss"),
        ({"gan": {"adversarial_weight": 0.1}}, "needs trainer: cgan"),
        ({"trainer": "cgan", "gan": {"gan_loss": "wasserstein"}}, "gan_loss"),
        ({"lr_schedule": {"name": "cosine", "gamma": 3}}, "gamma"),
        ({"loss_region": {"variable": "land_fraction"}}, "min and/or max"),
        ({"precision": "fp8"}, "precision"),
    ],
)
def test_invalid_training_configs_name_the_problem(tmp_path, training, message):
    with pytest.raises(ConfigError, match=message):
        ExperimentConfig.from_dict(_config(tmp_path, **training))


@pytest.mark.slow
def test_kill_9_then_resume_gives_the_weights_of_an_uninterrupted_run(tmp_path):
    """A CGAN run killed by SIGKILL in the middle of training resumes to bit-identical final weights."""
    raw = _config(tmp_path, trainer="cgan", loss="crps", ensemble_size=2, epochs=5, ema_decay=0.9)
    config_path = tmp_path / "cgan.yaml"
    config_path.write_text(yaml.safe_dump(raw))

    def two_epochs_done(checkpoints):
        history = checkpoints / "history.csv"
        return history.exists() and len(history.read_text().splitlines()) >= 3

    env = train_killed_and_resumed(config_path, tmp_path, ready=two_epochs_done, epochs=5)
    for name in ("last.pt", "best.pt"):
        assert_same_weights(tmp_path / "straight" / "checkpoints" / name, tmp_path / "killed" / "checkpoints" / name)
    lines = (tmp_path / "killed" / "checkpoints" / "history.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in lines[1:]] == ["1", "2", "3", "4", "5"]

    # The trained generator gives an ensemble from the command line.
    coarse = Experiment(ExperimentConfig.from_dict(raw)).pair().select_time("2019-03-03", "2019-03-03").input_dataset()
    coarse.to_netcdf(tmp_path / "coarse.nc")
    command = [
        sys.executable,
        "-m",
        "dl4ds.cli",
        "--quiet",
        "downscale",
        str(tmp_path / "killed" / "checkpoints" / "best.pt"),
        str(tmp_path / "coarse.nc"),
        "-o",
        str(tmp_path / "ensemble.nc"),
        "--samples",
        "3",
        "--seed",
        "1",
    ]
    subprocess.run(command, check=True, env=env, capture_output=True)
    with xr.open_dataset(tmp_path / "ensemble.nc") as ensemble:
        assert ensemble["t2m"].dims == ("sample", "time", "lat", "lon") and ensemble.sizes["sample"] == 3
        assert float(ensemble["t2m"].std("sample").mean()) > 1e-3
