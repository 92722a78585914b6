"""Sampling a residual diffusion model: members, seeds, steps, tiles without seams, checkpoints, bad input."""

import numpy as np
import pytest
import torch
from helpers import TINY_DIFFUSION

from dl4ds import load_model
from dl4ds.data import DownscalingDataset, Normalizer, PerfectProg
from dl4ds.errors import ConfigError
from dl4ds.inference import Downscaler, downscale, export_onnx
from dl4ds.model import DownscalingModel, save_checkpoint
from dl4ds.training import DiffusionTrainer


@pytest.fixture(scope="module")
def diffusion(week_pairs):
    """A tiny residual diffusion model trained for one epoch of each stage on days 1-5 of the ERA5 week."""
    train = week_pairs.select_time("2019-03-01", "2019-03-05")
    torch.manual_seed(0)
    model = DownscalingModel.build("residual_diffusion", train, Normalizer.fit(train), params=TINY_DIFFUSION)
    data = DownscalingDataset(train, model.metadata.normalizer, patch_size=(16, 16))
    DiffusionTrainer(epochs=1, batch_size=8, progress=False, diffusion={"stage1_epochs": 1}).fit(model, data)
    return model


@pytest.fixture(scope="module")
def coarse(week_pairs):
    return week_pairs.select_time("2019-03-06", "2019-03-06T09").input_dataset()  # 4 steps


def test_members_differ_the_seed_repeats_them_whatever_the_batch_and_chunk(diffusion, coarse):
    first = downscale(diffusion, coarse, samples=3, seed=0, steps=2)
    assert first["t2m"].dims == ("sample", "time", "lat", "lon")
    assert {"t2m_mean", "t2m_spread"} <= set(first.data_vars)
    assert float(first["t2m_spread"].mean()) > 0.05  # K: the members differ everywhere
    again = downscale(diffusion, coarse, samples=3, seed=0, steps=2, batch_size=3, chunk_size=1)
    np.testing.assert_allclose(again["t2m"].values, first["t2m"].values, rtol=0, atol=1e-3)
    other = downscale(diffusion, coarse, samples=3, seed=1, steps=2)
    assert np.abs(other["t2m"].values - first["t2m"].values).mean() > 0.05
    assert np.isfinite(downscale(diffusion, coarse, seed=0, steps=1)["t2m"].values).all()


def test_checkpoint_round_trip_gives_identical_samples(diffusion, coarse, tmp_path):
    loaded = load_model(save_checkpoint(tmp_path / "diffusion.pt", diffusion))
    assert loaded.capabilities.iterative and loaded.capabilities.stochastic
    before = downscale(diffusion, coarse, samples=2, seed=3, steps=2)
    after = downscale(loaded, coarse, samples=2, seed=3, steps=2)
    np.testing.assert_array_equal(after["t2m"].values, before["t2m"].values)


def test_bad_sampler_options_are_refused_naming_the_fix(diffusion, trained_model, tmp_path):
    with pytest.raises(ConfigError, match="steps=0 must be at least 1"):
        Downscaler(diffusion, steps=0)
    with pytest.raises(ConfigError, match="predicts in one pass; leave them out"):
        Downscaler(trained_model, steps=4)
    with pytest.raises(ConfigError, match="deterministic"):
        Downscaler(trained_model, samples=2)
    with pytest.raises(ConfigError, match="stage1/best.pt"):
        export_onnx(diffusion, tmp_path / "diffusion.onnx")
    assert not (tmp_path / "diffusion.onnx").exists()


def test_tiled_sampling_blends_every_step_without_seams(era5_week):
    """Multi-diffusion: with the default overlap tiled equals untiled; with a short one, borders stay smooth."""
    pairs = PerfectProg(scale=4).pair(era5_week)  # no static fields: runs on any 1-degree grid
    torch.manual_seed(0)
    model = DownscalingModel.build("residual_diffusion", pairs, Normalizer.fit(pairs), params=TINY_DIFFUSION)
    y, x = np.meshgrid(np.arange(24), np.arange(64), indexing="ij")
    values = 280.0 + 3.0 * (np.sin(x / 7.0) + np.cos(y / 5.0))
    import xarray as xr

    coarse = xr.Dataset(
        {"t2m": (("time", "lat", "lon"), values[None].astype(np.float32), {"units": "K"})},
        coords={"time": [np.datetime64("2020-01-01")], "lat": 30.5 + np.arange(24), "lon": -40.5 + np.arange(64)},
    )
    options = {"samples": 2, "seed": 0, "steps": 3}
    untiled = downscale(model, coarse, **options)["t2m"].values
    exact = downscale(model, coarse, tile_size=40, **options)["t2m"].values
    np.testing.assert_allclose(exact, untiled, rtol=0, atol=1e-3)
    short = downscale(model, coarse, tile_size=24, overlap=8, **options)["t2m"].values
    assert np.abs(short - untiled).max() > 1e-3  # the tiles really differ from the untiled field
    jumps = np.abs(np.diff(short, axis=-1)).mean(axis=(0, 1, 2)) / np.abs(np.diff(untiled, axis=-1)).mean(
        axis=(0, 1, 2)
    )
    assert jumps.max() < 1.05
