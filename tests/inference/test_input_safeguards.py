"""What downscaling does with doubtful input: infinite values, small domains, single blocks, bounded outputs."""

import logging

import numpy as np
import pytest
import torch
import xarray as xr
from helpers import make_field

from dl4ds.data import Normalizer, PerfectProg
from dl4ds.inference import Downscaler, downscale
from dl4ds.io import INPUT_ATTRIBUTE
from dl4ds.model import DownscalingModel


@pytest.fixture(scope="module")
def coarse(week_pairs) -> xr.Dataset:
    """Two days of coarse ERA5 t2m (16 steps, 8 x 12 cells) on the trained model's grid, in memory."""
    return week_pairs.select_time("2019-03-06", "2019-03-07").input_dataset().load()


@pytest.mark.parametrize("lazy", [False, True])
def test_infinite_inputs_are_treated_as_missing_with_a_warning(trained_model, coarse, lazy, caplog):
    values = coarse["t2m"].values.copy()
    values[2, 3, 4], values[5, 0, 0] = np.inf, -np.inf
    infinite = coarse.copy(data={"t2m": values})
    missing = coarse.copy(data={"t2m": np.where(np.isinf(values), np.nan, values)})
    with caplog.at_level(logging.WARNING):
        fine = downscale(trained_model, infinite.chunk({"time": 4}) if lazy else infinite)["t2m"].values
    assert "+/-Inf" in caplog.text and "treated as missing (NaN)" in caplog.text
    if not lazy:
        assert "holds 2 values of +/-Inf" in caplog.text
    expected = downscale(trained_model, missing)["t2m"].values
    np.testing.assert_array_equal(np.isnan(fine), np.isnan(expected))
    np.testing.assert_allclose(fine, expected, rtol=0, atol=1e-4)
    assert np.isnan(fine[2, 12:16, 16:20]).all() and np.isfinite(fine[2, :12]).all()
    assert np.nanmax(np.abs(fine)) < 400  # no 1e37 K


def test_infinite_training_targets_are_treated_as_missing(era5_week, caplog):
    target = era5_week.isel(time=slice(0, 4)).load()
    target["t2m"][0, 5, 5] = np.inf
    with caplog.at_level(logging.WARNING):
        pairs = PerfectProg(scale=4).pair(target)
    assert "holds 1 values of +/-Inf" in caplog.text
    assert int(np.isnan(pairs.target.values).sum()) == 1 and np.isnan(pairs.target.values[0]).any()
    assert np.isfinite(pairs.inputs.values).all()
    assert np.isfinite(Normalizer.fit(pairs).target.mean).all()


def test_a_domain_smaller_than_the_receptive_field_warns_with_the_figures(trained_model, coarse, caplog):
    with caplog.at_level(logging.WARNING):
        downscale(trained_model, coarse)
    assert "receptive field" not in caplog.text, "the training domain gets no warning"
    with caplog.at_level(logging.WARNING):
        downscale(trained_model, coarse.isel(lat=slice(2, 5), lon=slice(3, 7)))
    radius = trained_model.receptive_radius()
    field = 2 * radius + 1
    assert radius > 2
    assert f"the input domain is 3 x 4 coarse cells, smaller than the network's receptive field ({field} x {field}" in (
        caplog.text
    )
    assert f"radius {radius}" in caplog.text and "training samples (8 x 12 cells)" in caplog.text
    assert f"at least {min(field, 8)} x {min(field, 12)} cells" in caplog.text


def test_the_progress_bar_advances_on_a_single_block(trained_model, coarse, tmp_path, capsys):
    Downscaler(trained_model, progress=True).write(coarse, tmp_path / "out.nc")
    assert "1/1" in capsys.readouterr().err
    Downscaler(trained_model, progress=True, chunk_size=4).downscale(coarse)
    assert "4/4" in capsys.readouterr().err


def test_the_output_names_the_file_it_was_downscaled_from(trained_model, coarse_file, tmp_path):
    with xr.open_dataset(coarse_file) as source:
        Downscaler(trained_model).write(source, tmp_path / "out.nc")
    with xr.open_dataset(tmp_path / "out.nc") as written:
        assert written.attrs[INPUT_ATTRIBUTE] == str(coarse_file.resolve())


def test_outputs_bounded_at_zero_are_exactly_zero_on_dry_cells():
    """Precipitation with a relu output: cells where the activation clips are 0.0 exactly, none below."""
    rng = np.random.default_rng(4)
    wet_blocks = (rng.random((12, 4, 6)) < 0.5).repeat(4, axis=1).repeat(4, axis=2)  # dry areas of 4 x 4 cells
    rain = rng.gamma(2.0, 3.0, size=(12, 16, 24)) * wet_blocks
    field = make_field(rain, name="pr")
    field.attrs = {"units": "mm day-1", "standard_name": "lwe_precipitation_rate"}
    pairs = PerfectProg(scale=4).pair(field)
    torch.manual_seed(0)
    model = DownscalingModel.build(
        "convnet_spc", pairs, Normalizer.fit(pairs), params={"n_filters": 8, "n_blocks": 1, "output_activation": "relu"}
    )
    fine = downscale(model, pairs.input_dataset())["pr"].values
    tiled = downscale(model, pairs.input_dataset(), tile_size=2, overlap=1)["pr"].values  # blended: floor rounded
    assert tiled.min() == 0.0 and (tiled == 0.0).mean() > 0.01
    with torch.no_grad():
        normalised = model(torch.from_numpy(model.metadata.normalizer.normalize_inputs(pairs.inputs.values))).numpy()
    naive = model.metadata.normalizer.target.denormalize(normalised, axis=1)
    assert (naive[naive < 0.5] != 0).any(), "denormalising the floor does not give exact zeros"
    assert fine.min() == 0.0
    floor = model.output_floors()[0]
    clipped = normalised[:, 0] <= floor
    assert clipped.mean() > 0.05
    assert (fine[clipped] == 0.0).all()
    np.testing.assert_allclose(fine[~clipped], naive[:, 0][~clipped], rtol=1e-5, atol=1e-5)


def test_unbounded_outputs_are_denormalised_unchanged(trained_model, coarse):
    values = np.linspace(-3, 3, 2 * 1 * 4 * 4, dtype=np.float32).reshape(2, 1, 4, 4)
    np.testing.assert_array_equal(
        trained_model.to_physical(values, axis=1), trained_model.metadata.normalizer.target.denormalize(values, axis=1)
    )
