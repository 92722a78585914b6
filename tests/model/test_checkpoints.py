"""Checkpoints written by earlier releases load and give the outputs they gave then."""

import numpy as np
import pytest
import xarray as xr
from helpers import FIXTURES

from dl4ds import downscale
from dl4ds.model import load_model


@pytest.mark.parametrize("name", ["resnet_spc", "unet_pin", "convnet_spc"])
def test_checkpoints_of_dl4ds_0_1_0_load_and_downscale_as_they_did(name):
    """Written by fixtures/make_legacy_checkpoints.py with dl4ds 0.1.0 (commit 40e0b0b): a plain network with
    static fields, a localized U-Net on the fine grid, and a noise-injected generator sampled with a seed."""
    model = load_model(FIXTURES / f"legacy_v0.1.0_{name}.pt")
    assert model.metadata.architecture == name
    assert model.metadata.config == {"note": "written by dl4ds 0.1.0"}
    samples = 3 if model.capabilities.stochastic else 1
    assert model.capabilities.stochastic is (name == "convnet_spc")
    with (
        xr.open_dataset(FIXTURES / "legacy_input.nc") as coarse,
        xr.open_dataset(FIXTURES / "legacy_v0.1.0_outputs.nc") as outputs,
    ):
        fine = downscale(model, coarse.load(), samples=samples, seed=7)["t2m"]
        expected = outputs[f"t2m_{name}"].values
    assert fine.shape == expected.shape
    # Within a few float32 units in the last place (one is 3e-5 K at 280 K): another CPU's vector kernels may
    # round a sum differently, while a changed layer or weight moves the field by far more.
    np.testing.assert_allclose(fine.values, expected, rtol=1e-6, atol=0)
