"""Tiled inference: tile plans, blending weights, receptive radius, tiled == untiled, no seams, tied noise."""

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

from dl4ds.data import Normalizer, PerfectProg
from dl4ds.errors import ConfigError
from dl4ds.inference import Downscaler, downscale
from dl4ds.inference.tiling import AxisTiles, TileLayout
from dl4ds.model import DownscalingModel
from dl4ds.networks.random_fields import RandomFields, hash32, item_keys


@pytest.fixture(scope="module")
def free_pairs(era5_week):
    """PerfectProg x4 pairs without static fields: models built on them run on any 1-degree grid."""
    return PerfectProg(scale=4).pair(era5_week)


def build(pairs, architecture: str, **params) -> DownscalingModel:
    torch.manual_seed(0)
    time_window = params.pop("time_window", None)
    return DownscalingModel.build(architecture, pairs, Normalizer.fit(pairs), params=params, time_window=time_window)


def coarse_field(rows: int, cols: int, steps: int = 2, *, smooth: bool = False, seed: int = 0) -> xr.Dataset:
    """t2m (K) on a 1-degree grid of rows x cols cells: random, or a smooth pattern of waves plus weak noise."""
    rng = np.random.default_rng(seed)
    if smooth:
        y, x = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
        waves = np.stack([np.sin(x / 7.0 + t) + np.cos(y / 5.0 - t) for t in range(steps)])
        values = 280.0 + 3.0 * waves + 0.2 * rng.standard_normal((steps, rows, cols))
    else:
        values = 280.0 + 3.0 * rng.standard_normal((steps, rows, cols))
    return xr.Dataset(
        {"t2m": (("time", "lat", "lon"), values.astype(np.float32), {"units": "K"})},
        coords={
            "time": pd.date_range("2020-01-01", periods=steps),
            "lat": 30.5 + np.arange(rows),
            "lon": -40.5 + np.arange(cols),
        },
    )


# --- tile plans and weights -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "extent, tile, overlap, multiple",
    [(128, 64, 24, 1), (128, 64, 8, 4), (100, 40, 10, 4), (37, 20, 6, 1), (90, 30, 0, 1)],
)
def test_tiles_cover_the_extent_with_at_least_the_overlap(extent, tile, overlap, multiple):
    tiles = AxisTiles.plan(extent, tile, overlap, multiple)
    assert tiles.length <= tile and tiles.length % multiple == 0
    assert tiles.starts[0] == 0 and tiles.starts[-1] + tiles.length == extent
    assert all(start % multiple == 0 for start in tiles.starts)
    assert all(tiles.length - (b - a) >= overlap for a, b in zip(tiles.starts, tiles.starts[1:]))
    if multiple == 1:  # the fewest tiles: one fewer could not cover the extent with the overlap
        count = len(tiles.starts)
        assert (count - 1) * tile - (count - 2) * overlap < extent


def test_tiles_shrink_to_what_covers_the_extent():
    # 128 cells with tiles of at most 64 overlapping by 24: 3 tiles of 59 suffice (3*59 - 2*24 = 129 >= 128)
    assert AxisTiles.plan(128, 64, 24, 1) == AxisTiles((0, 34, 69), 59, 128)


def test_blending_weights_sum_to_one_and_vanish_in_the_margins():
    layout = TileLayout.plan((40, 37), 20, overlap=8, multiple=1)
    scale = 2
    weights = layout.weights(scale)
    total = np.zeros((80, 74))
    rows, cols = layout.shape
    for weight, (row, col) in zip(weights, layout.origins):
        total[row * scale : (row + rows) * scale, col * scale : (col + cols) * scale] += weight
    np.testing.assert_allclose(total, 1.0, atol=1e-6)
    # margin (8 - 2) / 2 = 3 coarse cells: the first tile gives no weight to its last 3 * scale columns
    first = weights[0]
    assert layout.margin == 3
    assert np.all(first[0, -3 * scale :] == 0) and np.all(first[0, : (cols - 8) * scale] == 1)
    # the blend rises monotonically across the ramp
    ramp = first[0, (cols - 8) * scale : (cols - 3) * scale]
    assert np.all(np.diff(ramp) <= 0)


# --- receptive radius and size multiple ---------------------------------------------------------------------------


def test_receptive_radius_of_a_plain_convnet_is_its_depth(free_pairs):
    # convnet_pin runs one 3x3 convolution per block on the interpolated (x4) input: 8 more blocks reach 8 fine
    # cells = 2 coarse cells further
    shallow = build(free_pairs, "convnet_pin", n_filters=8, n_blocks=1, global_skip=False)
    deep = build(free_pairs, "convnet_pin", n_filters=8, n_blocks=9, global_skip=False)
    assert deep.receptive_radius() - shallow.receptive_radius() == 2


def test_channel_attention_has_no_bounded_radius(free_pairs):
    model = build(free_pairs, "resnet_spc", n_filters=8, n_blocks=1, attention=True)
    assert model.receptive_radius() is None


def test_unet_tiles_respect_its_poolings(free_pairs):
    assert build(free_pairs, "unet_spc", n_filters=4, depth=2).capabilities.size_multiple == 4
    assert (
        build(free_pairs, "unet_pin", n_filters=4, depth=3).capabilities.size_multiple == 2
    )  # runs on the x4 grid: 8 / 4
    assert build(free_pairs, "resnet_spc", n_filters=4).capabilities.size_multiple == 1


# --- tiled equals untiled ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "architecture, params, tile",
    [
        ("resnet_spc", {"n_filters": 8, "n_blocks": 2}, 36),
        ("unet_spc", {"n_filters": 4, "depth": 2}, 72),
        ("convnet_pin", {"n_filters": 4}, 24),
        ("densenet_dc", {"n_filters": 4}, 36),
        ("resnet_spc", {"n_filters": 8, "n_blocks": 1, "noise_channels": 2}, 36),  # a stochastic generator
        ("resnet_rc", {"n_filters": 8, "n_blocks": 1, "mc_dropout": True, "dropout": 0.2}, 36),  # Monte-Carlo dropout
    ],
)
def test_tiled_equals_untiled(free_pairs, architecture, params, tile):
    model = build(free_pairs, architecture, **params)
    coarse = coarse_field(62, 83)
    untiled = downscale(model, coarse, seed=3)
    downscaler = Downscaler(model, tile_size=tile, seed=3, batch_size=5)
    tiled = downscaler.downscale(coarse)
    assert downscaler._predictor(Downscaler(model)._prepare(coarse).grid).layout.count > 1
    np.testing.assert_allclose(tiled["t2m"].values, untiled["t2m"].values, rtol=0, atol=1e-4)


def test_tiled_equals_untiled_for_a_spatio_temporal_model(free_pairs):
    model = build(free_pairs, "recresnet_spc", n_filters=4, n_blocks=1, lstm_filters=4, time_window=3)
    coarse = coarse_field(40, 40, steps=5)
    untiled = downscale(model, coarse)
    tiled = downscale(model, coarse, tile_size=30, chunk_size=2)
    np.testing.assert_allclose(tiled["t2m"].values, untiled["t2m"].values, rtol=0, atol=1e-4)


def test_no_seams_where_tiles_cannot_be_exact(free_pairs):
    """With a global operation (channel attention) tiles differ; blended borders must be as smooth as the untiled field."""
    model = build(free_pairs, "resnet_spc", n_filters=8, n_blocks=2, attention=True)
    coarse = coarse_field(48, 96, steps=1, smooth=True)
    untiled = downscale(model, coarse)["t2m"].values[0]

    def worst_column_jump(overlap: int) -> float:
        """Largest ratio, over fine column pairs, of the mean |east-west difference| tiled / untiled."""
        tiled = downscale(model, coarse, tile_size=40, overlap=overlap)["t2m"].values[0]
        assert np.abs(tiled - untiled).max() > 1e-3  # the tiles really differ from the untiled field
        return float((np.abs(np.diff(tiled, axis=1)).mean(0) / np.abs(np.diff(untiled, axis=1)).mean(0)).max())

    assert worst_column_jump(overlap=8) < 1.05
    assert worst_column_jump(overlap=0) > 1.5  # tiles stitched without a blend show their seams


def test_default_overlap_too_large_for_the_tile_is_explained(free_pairs):
    model = build(free_pairs, "resnet_spc", n_filters=4, n_blocks=4)
    with pytest.raises(ConfigError, match="receptive radius of .* coarse cells .* use a tile_size of at least"):
        downscale(model, coarse_field(62, 83), tile_size=12)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"tile_size": 10, "overlap": 10}, "overlap=10 must be smaller than tile_size=10"),
        ({"tile_size": 0}, "tile_size=0 must be at least 1"),
        ({"batch_size": 0}, "batch_size=0 must be at least 1"),
        ({"device": "cuda:7"}, "cuda"),
        ({"device": "tpu-please"}, "not a torch device"),
    ],
)
def test_impossible_options_are_refused(free_pairs, options, message):
    model = build(free_pairs, "resnet_spc", n_filters=4, n_blocks=1)
    with pytest.raises(ConfigError, match=message):
        Downscaler(model, **options)


def test_unet_tile_smaller_than_its_multiple_is_refused(free_pairs):
    model = build(free_pairs, "unet_spc", n_filters=4, depth=3)
    with pytest.raises(ConfigError, match="size multiple of the U-Net"):
        Downscaler(model, tile_size=4)


# --- random fields -----------------------------------------------------------------------------------------------


def test_hash_matches_reference_values():
    # lowbias32 by hand for 0, 1 and 2**32 - 1 (computed with Python integers)
    def reference(x: int) -> int:
        x ^= x >> 16
        x = (x * 0x7FEB352D) & 0xFFFFFFFF
        x ^= x >> 15
        x = (x * 0x846CA68B) & 0xFFFFFFFF
        return x ^ (x >> 16)

    values = [0, 1, 12345, 2**31 + 7, 2**32 - 1]
    assert hash32(torch.tensor(values)).tolist() == [reference(v) for v in values]


def test_random_fields_are_standard_normal_and_tied_to_position():
    layer = torch.nn.Identity()
    keys = item_keys(7, 0, torch.arange(2))
    whole = RandomFields(keys, torch.zeros(2, 2, dtype=torch.long), (64, 64))
    whole._layers = {id(layer): 0}
    noise = whole.normal(layer, torch.Size((2, 3, 256, 256)), torch.device("cpu"))  # the x4 fine grid of 64 x 64 cells
    assert abs(noise.mean().item()) < 0.01 and abs(noise.std().item() - 1) < 0.01
    assert not torch.equal(noise[0], noise[1])  # inputs differ
    assert not torch.equal(noise[0, 0], noise[0, 1])  # channels differ
    # a tile at coarse (10, 20) of 16 x 24 cells sees exactly the matching window of the whole field
    tile = RandomFields(keys[1:], torch.tensor([[10, 20]]), (16, 24))
    tile._layers = whole._layers
    window = tile.normal(layer, torch.Size((1, 3, 64, 96)), torch.device("cpu"))
    torch.testing.assert_close(window[0], noise[1, :, 40:104, 80:176], rtol=0, atol=0)


def test_seeded_samples_do_not_depend_on_tiles_batches_or_chunks(free_pairs):
    model = build(free_pairs, "resnet_spc", n_filters=8, n_blocks=1, noise_channels=2)
    coarse = coarse_field(30, 40, steps=4)
    reference = downscale(model, coarse, samples=2, seed=11)
    again = downscale(model, coarse, samples=2, seed=11, tile_size=24, batch_size=3, chunk_size=1)
    np.testing.assert_allclose(again["t2m"].values, reference["t2m"].values, rtol=0, atol=1e-4)
    other = downscale(model, coarse, samples=2, seed=12)
    assert np.abs(other["t2m"].values - reference["t2m"].values).mean() > 0.01
