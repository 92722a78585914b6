"""Architectures end to end on real data: localized layers, spatio-temporal windows, several variables, configs."""

import numpy as np
import pytest
import torch
import xarray as xr
from click.testing import CliRunner
from helpers import REGISTERED, small_params

from dl4ds import downscale, load_model
from dl4ds.cli import main
from dl4ds.data import DownscalingDataset, Normalizer, PerfectProg, standardize
from dl4ds.errors import ConfigError, DataError
from dl4ds.experiment.config import ExperimentConfig
from dl4ds.model import DownscalingModel
from dl4ds.model.checkpoint import save_checkpoint
from dl4ds.training import SupervisedTrainer

WINDOW = 3


@pytest.fixture(scope="module")
def train_pairs(week_pairs):
    return week_pairs.select_time("2019-03-01", "2019-03-05")


@pytest.fixture(scope="module")
def normalizer(train_pairs):
    return Normalizer.fit(train_pairs)


def _train(model, train_pairs, normalizer, *, epochs=2, patch_size=None, time_window=None):
    torch.manual_seed(0)
    dataset = DownscalingDataset(train_pairs, normalizer, patch_size, time_window)
    trainer = SupervisedTrainer(epochs=epochs, batch_size=8, learning_rate=3e-3, progress=False)
    return trainer.fit(model, dataset), trainer


# --- localized layer -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def localized_model(train_pairs, normalizer):
    model = DownscalingModel.build(
        "resnet_spc", train_pairs, normalizer, params={**small_params("resnet_spc"), "localized": True}
    )
    return _train(model, train_pairs, normalizer, epochs=3, patch_size=(16, 16))[0]


def test_localized_layer_gets_the_full_grid_and_learns_from_patches(localized_model, week_pairs):
    assert localized_model.metadata.architecture_params["localized_grid"] == [32, 48]
    bias = localized_model.network.localized.bias.detach()
    assert bias.shape == (1, 32, 48)
    # random 16 x 16 patches reached every corner of the grid
    for corner in (bias[:, :4, :4], bias[:, :4, -4:], bias[:, -4:, :4], bias[:, -4:, -4:]):
        assert (corner != 0).any()


def test_localized_model_trained_on_patches_downscales_the_full_domain_and_windows(localized_model, week_pairs):
    coarse = week_pairs.input_dataset().isel(time=slice(0, 4))
    full = downscale(localized_model, coarse)["t2m"]
    assert full.shape == (4, 32, 48) and np.isfinite(full).all()
    truth = week_pairs.target.sel(variable="t2m", drop=True).isel(time=slice(0, 4))
    assert float(np.sqrt(((full - truth) ** 2).mean())) < 2.0
    window = downscale(localized_model, coarse.isel(lat=slice(2, 6), lon=slice(3, 9)))["t2m"]
    assert window.shape == (4, 16, 24)
    # the localized term uses the parameters of the window's own cells
    network = localized_model.network
    features = torch.randn(1, network.localized.weight.shape[1], 16, 24)
    windowed = network.localized(features, torch.tensor([[8, 12]]))
    padded = torch.zeros(1, features.shape[1], 32, 48)
    padded[..., 8:24, 12:36] = features
    torch.testing.assert_close(windowed, network.localized(padded, None)[..., 8:24, 12:36])


def test_localized_model_refuses_grids_beyond_its_domain(localized_model, week_pairs):
    coarse = week_pairs.input_dataset().isel(time=slice(0, 2))
    shifted = coarse.assign_coords(lon=coarse["lon"] + 20.0)
    with pytest.raises(DataError, match="not the model's coarse grid or a window of it"):
        downscale(localized_model, shifted)


def test_localized_checkpoint_round_trip(localized_model, week_pairs, tmp_path):
    save_checkpoint(tmp_path / "m.pt", localized_model)
    restored = load_model(tmp_path / "m.pt")
    coarse = week_pairs.input_dataset().isel(time=slice(0, 3))
    xr.testing.assert_identical(
        downscale(restored, coarse).drop_attrs(), downscale(localized_model, coarse).drop_attrs()
    )


# --- spatio-temporal models --------------------------------------------------------------------


def test_window_dataset_serves_consecutive_steps(train_pairs, normalizer):
    dataset = DownscalingDataset(train_pairs, normalizer, patch_size=(16, 24), time_window=WINDOW)
    assert len(dataset) == train_pairs.target.sizes["time"] - WINDOW + 1
    sample = dataset[4]
    assert sample["x"].shape == (WINDOW, 1, 4, 6)
    assert sample["y"].shape == sample["weight"].shape == (WINDOW, 1, 16, 24)
    assert sample["static"].shape == (2, 16, 24)
    full = DownscalingDataset(train_pairs, normalizer, time_window=WINDOW)
    expected = normalizer.normalize_inputs(train_pairs.inputs.values[4 : 4 + WINDOW])
    np.testing.assert_allclose(full[4]["x"].numpy(), expected)
    with pytest.raises(ConfigError, match="time_window=100 does not fit the 40 time steps"):
        DownscalingDataset(train_pairs, normalizer, time_window=100)


@pytest.fixture(scope="module")
def temporal_model(train_pairs, normalizer):
    model = DownscalingModel.build(
        "recresnet_spc", train_pairs, normalizer, params=small_params("recresnet_spc"), time_window=WINDOW
    )
    return _train(model, train_pairs, normalizer, epochs=3, time_window=WINDOW)


def test_spatio_temporal_training_lowers_the_loss(temporal_model):
    _, trainer = temporal_model
    losses = [record.train_loss for record in trainer.history.epochs]
    assert losses[-1] < losses[0]


def test_overlapping_windows_are_averaged(temporal_model, week_pairs):
    model = temporal_model[0]
    coarse = week_pairs.input_dataset().isel(time=slice(0, 5))
    out = downscale(model, coarse, batch_size=2)["t2m"]
    assert out.dims == ("time", "lat", "lon") and out.shape == (5, 32, 48)
    np.testing.assert_array_equal(out["time"].values, coarse["time"].values)
    # hand computation: step 2 lies in the windows starting at 0, 1 and 2; step 0 only in the first
    meta = model.metadata
    values = coarse["t2m"].values[:, None]  # (time, channel, lat, lon)
    with torch.no_grad():
        windows = [
            model(torch.from_numpy(meta.normalizer.normalize_inputs(values[s : s + WINDOW]))[None])[0] for s in range(3)
        ]
    physical = [meta.normalizer.target.denormalize(w.numpy(), axis=-3)[:, 0] for w in windows]
    np.testing.assert_allclose(out.values[2], (physical[0][2] + physical[1][1] + physical[2][0]) / 3, atol=1e-4)
    np.testing.assert_allclose(out.values[0], physical[0][0], atol=1e-4)
    np.testing.assert_allclose(out.values[4], physical[2][2], atol=1e-4)


def test_spatio_temporal_model_keeps_member_dims_in_order(temporal_model, week_pairs):
    model = temporal_model[0]
    coarse = week_pairs.input_dataset().isel(time=slice(0, 4))
    members = xr.concat([coarse, coarse + 1.0], dim="member").assign_coords(member=[1, 2])
    members = members.transpose("time", "member", "lat", "lon")
    members["t2m"].attrs = coarse["t2m"].attrs
    out = downscale(model, members)["t2m"]
    assert out.dims == ("time", "member", "lat", "lon") and out.shape == (4, 2, 32, 48)
    single = downscale(model, coarse)["t2m"]
    np.testing.assert_allclose(out.sel(member=1).values, single.values, atol=1e-5)


def test_spatio_temporal_model_needs_enough_time_steps(temporal_model, week_pairs):
    model = temporal_model[0]
    coarse = week_pairs.input_dataset()
    with pytest.raises(DataError, match="windows of 3 consecutive steps along .time., but the input has only 2"):
        downscale(model, coarse.isel(time=slice(0, 2)))
    with pytest.raises(DataError, match="has no time dimension"):
        downscale(model, coarse.isel(time=0, drop=True))


def test_spatio_temporal_checkpoint_keeps_the_window(temporal_model, week_pairs, tmp_path):
    model = temporal_model[0]
    save_checkpoint(tmp_path / "rec.pt", model)
    restored = load_model(tmp_path / "rec.pt")
    assert restored.metadata.time_window == WINDOW and restored.capabilities.temporal
    coarse = week_pairs.input_dataset().isel(time=slice(0, 4))
    np.testing.assert_array_equal(downscale(restored, coarse)["t2m"].values, downscale(model, coarse)["t2m"].values)


def test_time_window_must_fit_the_model(train_pairs, normalizer):
    with pytest.raises(
        ConfigError, match=r"spatio-temporal model 'recunet_pin' needs a time window.*model.time_window"
    ):
        DownscalingModel.build("recunet_pin", train_pairs, normalizer, params=small_params("recunet_pin"))
    with pytest.raises(ConfigError, match=r"'unet_pin' is spatial.*time_window=4.*'recunet_pin'"):
        DownscalingModel.build("unet_pin", train_pairs, normalizer, params=small_params("unet_pin"), time_window=4)


# --- several target variables ------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_variable_pairs(era5_week, static):
    """t2m and a non-negative 'warmth' index (K above 280 K, 0 below) as two targets."""
    warmth = (
        (era5_week["t2m"] - 280.0)
        .clip(min=0.0)
        .rename("warmth")
        .assign_attrs(units="K", long_name="warmth above 280 K")
    )
    return PerfectProg(scale=4).pair(xr.merge([era5_week, warmth]), static=static)


def test_several_variables_with_a_non_negative_output(two_variable_pairs):
    train = two_variable_pairs.select_time("2019-03-01", "2019-03-05")
    normalizer = Normalizer.fit(train)
    params = {**small_params("resnet_spc"), "output_activation": ["none", "relu"]}
    model = DownscalingModel.build("resnet_spc", train, normalizer, params=params)
    floor = next(m for m in model.network.modules() if type(m).__name__ == "OutputActivation").floor
    # physical zero in normalised units (used by the relu of the second variable only)
    np.testing.assert_allclose(floor.numpy(), -normalizer.target.mean / normalizer.target.std, rtol=1e-6)
    model, trainer = _train(model, train, normalizer)
    assert trainer.history.epochs[-1].train_loss < trainer.history.epochs[0].train_loss
    out = downscale(model, two_variable_pairs.select_time("2019-03-06", "2019-03-07").input_dataset())
    assert set(out.data_vars) == {"t2m", "warmth"}
    assert out["t2m"].shape == out["warmth"].shape == (16, 32, 48)
    assert float(out["warmth"].min()) >= 0.0
    assert out["warmth"].attrs["long_name"] == "warmth above 280 K"
    truth = standardize(
        two_variable_pairs.select_time("2019-03-06", "2019-03-07").target.sel(variable="t2m", drop=True)
    )
    assert float(np.sqrt(((out["t2m"] - truth) ** 2).mean())) < 2.0


# --- configuration and CLI ---------------------------------------------------------------------


def _config(**model):
    return {
        "data": {"target": {"path": "bundled:era5_t2m_uk"}, "scale": 4, "train_period": ["2019-03-01", "2019-03-02"]},
        "model": model,
    }


def test_config_takes_a_time_window():
    config = ExperimentConfig.from_dict(_config(name="recresnet_spc", time_window=4))
    assert config.model.time_window == 4
    with pytest.raises(ConfigError, match="model.time_window"):
        ExperimentConfig.from_dict(_config(name="recresnet_spc", time_window=0))


def test_models_command_lists_every_architecture_with_its_size():
    result = CliRunner().invoke(main, ["models"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if " parameters   " in line]
    assert [line.split()[0] for line in lines] == REGISTERED
    resnet = next(line for line in lines if line.startswith("resnet_spc "))
    assert "209,441 parameters" in resnet and "residual (EDSR), sub-pixel convolution upsampling" in resnet
    one = CliRunner().invoke(main, ["models", "recunet_pin"])
    assert one.exit_code == 0 and "ConvLSTM window + U-Net" in one.output
    assert "lstm_filters         8" in one.output and "static_filters" not in one.output
    unknown = CliRunner().invoke(main, ["models", "unet_xx"])
    assert unknown.exit_code == 2 and "unknown model 'unet_xx'" in unknown.output


@pytest.mark.slow
def test_train_command_with_a_spatio_temporal_model(tmp_path):
    import yaml

    config = {
        "data": {
            "target": {"path": "bundled:era5_t2m_uk"},
            "static": {"path": "bundled:uk_static"},
            "scale": 4,
            "train_period": ["2019-03-01", "2019-03-01"],
            "test_period": ["2019-03-02", "2019-03-02"],
        },
        "model": {"name": "recconvnet_dc", "time_window": 4, "params": small_params("recconvnet_dc")},
        "training": {"epochs": 1, "batch_size": 8},
        "output_dir": "run",
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    result = CliRunner().invoke(main, ["train", str(path)])
    assert result.exit_code == 0, result.output
    with xr.open_dataset(tmp_path / "run" / "test_downscaled.nc") as out:
        assert out["t2m"].shape == (24, 32, 48)
    config["model"].pop("time_window")
    path.write_text(yaml.safe_dump(config))
    result = CliRunner().invoke(main, ["train", str(path)])
    assert result.exit_code == 2 and "needs a time window" in result.output


# --- seeded initialisation --------------------------------------------------------------------


def test_a_seed_gives_the_same_initial_weights_and_leaves_the_global_generator_alone(train_pairs, normalizer):
    def weights(seed):
        model = DownscalingModel.build(
            "resnet_spc", train_pairs, normalizer, params=small_params("resnet_spc"), seed=seed
        )
        return model.network.state_dict()

    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    first, again, other = weights(5), weights(5), weights(6)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(torch.equal(first[key], again[key]) for key in first)
    assert any(not torch.equal(first[key], other[key]) for key in first)
    unseeded = weights(None)  # from the global generator, which it advances
    assert not torch.equal(torch.random.get_rng_state(), state)
    assert any(not torch.equal(first[key], unseeded[key]) for key in first)
