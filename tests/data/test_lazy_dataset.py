"""The lazy, chunk-aware training dataset: chunk reads, samples equal to the in-memory pairs, sharding, epochs, errors."""

from collections import Counter

import numpy as np
import pytest
import torch
import xarray as xr
from helpers import make_field
from torch.utils.data import DataLoader
from torch.utils.data._utils.collate import default_collate
from zarr.storage import LocalStore

from dl4ds import datasets
from dl4ds.data import Normalizer, PerfectProg
from dl4ds.data.lazy import LazyPatchDataset, fit_lazy_normalizer
from dl4ds.errors import ConfigError, DataError
from dl4ds.training.trainer import Batch

SCALE = 4
PATCH = 8
CHUNKS = {"time": 24, "latitude": 16, "longitude": 16}
VARIABLES = ("t2m", "t2m_land")


class CountingStore(LocalStore):
    """A local Zarr store that counts the reads of each key."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.reads: Counter[str] = Counter()

    async def get(self, key, prototype=None, byte_range=None):
        self.reads[key] += 1
        return await super().get(key, prototype, byte_range)

    def chunk_reads(self) -> Counter[str]:
        """Reads of data chunks (not metadata, not coordinates)."""
        return Counter(
            {
                key: n
                for key, n in self.reads.items()
                if key.split("/")[0] in VARIABLES and not key.split("/")[-1].startswith((".", "zarr.json"))
            }
        )


@pytest.fixture(scope="module")
def archive(era5, static) -> xr.Dataset:
    """4 days of hourly ERA5 t2m (96 x 33 x 49, latitude descending) and t2m over land only (NaN at sea)."""
    t2m = era5["t2m"].isel(time=slice(0, 96))
    land = t2m.where(static["land_fraction"] > 0.5).rename("t2m_land")
    return xr.merge([t2m, land])


@pytest.fixture(scope="module")
def store_path(archive, tmp_path_factory):
    path = tmp_path_factory.mktemp("lazy") / "archive.zarr"
    archive.chunk(CHUNKS).to_zarr(path, zarr_format=2, consolidated=True)
    return path


@pytest.fixture(scope="module")
def normalizer(archive, static) -> Normalizer:
    return Normalizer.fit(PerfectProg(SCALE).pair(archive, static=static))


def open_counted(path) -> tuple[xr.Dataset, CountingStore]:
    store = CountingStore(path, read_only=True)
    return xr.open_zarr(store), store


def make_dataset(path, normalizer, static, **options) -> tuple[LazyPatchDataset, CountingStore]:
    ds, store = open_counted(path)
    options = {"patches_per_read": 6, "seed": 3, **options}
    dataset = LazyPatchDataset(ds, normalizer, scale=SCALE, patch_size=PATCH, static=static, **options)
    return dataset, store


def key(sample) -> tuple:
    """What identifies a sample: its time step and position, and its values."""
    return (int(sample["time_index"]), *sample["offset"].tolist(), sample["y"].numpy().tobytes())


def test_constructing_the_dataset_reads_no_data_chunk(store_path, normalizer, static):
    dataset, store = make_dataset(store_path, normalizer, static)
    assert len(dataset) == len(dataset.blocks) * 6
    assert store.chunk_reads() == Counter()


def test_an_epoch_reads_each_chunk_of_each_block_exactly_once(store_path, normalizer, static):
    dataset, store = make_dataset(store_path, normalizer, static)
    store_lat = xr.open_zarr(store_path)["latitude"].values

    def chunks_of(block) -> set[str]:
        # Fine rows of the (ascending, cropped) grid -> rows of the (descending) store -> chunk numbers.
        lat_rows = [int(np.argmin(np.abs(store_lat - lat))) for lat in dataset.fine_grid.lat[block.rows]]
        lat_chunks = {row // CHUNKS["latitude"] for row in lat_rows}
        lon_chunks = {col // CHUNKS["longitude"] for col in range(block.cols.start, block.cols.stop)}
        time_chunks = {step // CHUNKS["time"] for step in range(block.time.start, block.time.stop)}
        return {f"{v}/{t}.{y}.{x}" for v in VARIABLES for t in time_chunks for y in lat_chunks for x in lon_chunks}

    # The plan: blocks on whole coarse cells, one time chunk each, not overlapping, a patch fitting in each.
    cells = Counter()
    for block in dataset.blocks:
        assert block.rows.start % SCALE == 0 and block.rows.stop % SCALE == 0 and block.cols.start % SCALE == 0
        assert block.time.stop - block.time.start == CHUNKS["time"]
        assert block.rows.stop - block.rows.start >= PATCH and block.cols.stop - block.cols.start >= PATCH
        cells.update(
            (block.time.start, r, c)
            for r in range(block.rows.start, block.rows.stop)
            for c in range(block.cols.start, block.cols.stop)
        )
    assert max(cells.values()) == 1
    # Rows 16..19 straddle the store's chunk boundary at fine row 17 (33 latitudes flipped and cropped): in no block.
    assert [(b.rows.start, b.rows.stop) for b in dataset.blocks[:6:3]] == [(0, 16), (20, 32)]

    samples = list(dataset)
    assert len(samples) == len(dataset) == len(dataset.blocks) * 6
    expected = Counter()
    for block in dataset.blocks:
        expected.update(chunks_of(block))
    assert store.chunk_reads() == expected
    # Per time chunk and lon chunk: rows 0..15 lie on 2 store chunks, rows 20..31 on 1; for 2 variables.
    assert sum(expected.values()) == 4 * 3 * (2 + 1) * 2
    for sample in samples:  # every patch lies inside the block of its time step
        step, row, col = int(sample["time_index"]), *sample["offset"].tolist()
        assert any(
            b.time.start <= step < b.time.stop
            and b.rows.start <= row
            and row + PATCH <= b.rows.stop
            and b.cols.start <= col
            and col + PATCH <= b.cols.stop
            for b in dataset.blocks
        )


def test_samples_equal_the_in_memory_perfect_prog_pairs(archive, store_path, normalizer, static):
    pairs = PerfectProg(SCALE).pair(archive, static=static)
    x = normalizer.normalize_inputs(pairs.inputs.values)
    y = normalizer.target.normalize(pairs.target.values, 1)
    static_values = normalizer.normalize_static(pairs.static.values)
    dataset, _ = make_dataset(store_path, normalizer, static)
    assert dataset.fine_grid.equals(pairs.fine_grid)
    np.testing.assert_array_equal(dataset.times, pairs.times)
    samples = list(dataset)
    for sample in samples:
        step, (row, col) = int(sample["time_index"]), sample["offset"].tolist()
        assert row % SCALE == 0 and col % SCALE == 0 and sample["offset"].dtype == torch.int64
        fine = (slice(row, row + PATCH), slice(col, col + PATCH))
        coarse = (slice(row // SCALE, (row + PATCH) // SCALE), slice(col // SCALE, (col + PATCH) // SCALE))
        np.testing.assert_array_equal(sample["x"].numpy(), x[step][:, coarse[0], coarse[1]])
        np.testing.assert_array_equal(sample["y"].numpy(), np.nan_to_num(y[step][:, fine[0], fine[1]], nan=0.0))
        np.testing.assert_array_equal(sample["weight"].numpy(), ~np.isnan(y[step][:, fine[0], fine[1]]))
        np.testing.assert_array_equal(sample["static"].numpy(), static_values[:, fine[0], fine[1]])
    # Some patches reach the sea, where t2m_land is missing: weight 0 there, and partial coarse cells averaged.
    assert any(float(s["weight"][1].min()) == 0.0 < float(s["weight"][1].max()) for s in samples)
    # The trainer's batches accept the samples (the extra time_index key is ignored).
    batch = Batch(default_collate(samples[:4]), torch.device("cpu"), torch.contiguous_format)
    assert batch.x.shape == (4, 2, PATCH // SCALE, PATCH // SCALE) and batch.static.shape == (4, 2, PATCH, PATCH)


def test_netcdf_gives_the_samples_of_zarr_and_cell_weights_scale_the_weight(
    archive, store_path, normalizer, static, tmp_path
):
    path = tmp_path / "archive.nc"
    encoding = {name: {"chunksizes": tuple(CHUNKS.values())} for name in VARIABLES}
    archive.to_netcdf(path, encoding=encoding)
    from_netcdf = LazyPatchDataset(
        xr.open_dataset(path, chunks={}),
        normalizer,
        scale=SCALE,
        patch_size=PATCH,
        static=static,
        patches_per_read=6,
        seed=3,
    )
    from_zarr, _ = make_dataset(store_path, normalizer, static)
    assert from_netcdf.blocks == from_zarr.blocks
    assert [key(s) for s in from_netcdf] == [key(s) for s in from_zarr]
    weights = np.random.default_rng(0).uniform(0, 2, from_zarr.fine_grid.shape).astype(np.float32)
    weighted, _ = make_dataset(store_path, normalizer, static, cell_weights=weights)
    for plain, sample in zip(from_zarr, weighted, strict=True):
        row, col = sample["offset"].tolist()
        np.testing.assert_array_equal(
            sample["weight"].numpy(), plain["weight"].numpy() * weights[row : row + PATCH, col : col + PATCH]
        )


def test_lazy_normalizer_matches_fit_on_the_pairs(store_path, normalizer, static):
    ds, store = open_counted(store_path)
    lazy = fit_lazy_normalizer(ds, scale=SCALE, static=static)
    for mine, reference in (
        (lazy.target, normalizer.target),
        (lazy.inputs, normalizer.inputs),
        (lazy.static, normalizer.static),
    ):
        assert mine.names == reference.names
        np.testing.assert_allclose(mine.mean, reference.mean, rtol=1e-10)
        np.testing.assert_allclose(mine.std, reference.std, rtol=1e-10)
    # Every chunk under the cropped grid once: 2 variables x 4 time x 3 lat x 3 lon chunks.
    assert store.chunk_reads() and set(store.chunk_reads().values()) == {1}
    assert sum(store.chunk_reads().values()) == 2 * 4 * 3 * 3


def test_dataloader_workers_read_disjoint_blocks_that_cover_the_epoch(store_path, normalizer, static):
    dataset, _ = make_dataset(store_path, normalizer, static)
    first, second = dataset.assigned_blocks(0, 2), dataset.assigned_blocks(1, 2)
    assert not set(first) & set(second)
    assert sorted(first + second) == sorted(dataset.assigned_blocks()) == list(range(len(dataset.blocks)))
    alone = Counter(key(s) for s in dataset)
    loader = DataLoader(dataset, batch_size=None, num_workers=2)
    together = Counter(key(s) for s in loader)
    assert together == alone and sum(together.values()) == len(dataset)
    batches = list(DataLoader(dataset, batch_size=5, num_workers=2))
    assert sum(len(b["time_index"]) for b in batches) == len(dataset)


def test_ranks_read_disjoint_blocks_and_yield_equal_numbers_of_samples(store_path, normalizer, static, monkeypatch):
    dataset, _ = make_dataset(store_path, normalizer, static)
    assert len(dataset.blocks) == 24
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda: 5)
    blocks, samples = [], []
    for rank in range(5):
        monkeypatch.setattr(torch.distributed, "get_rank", lambda rank=rank: rank)
        dataset.set_epoch(2)
        blocks.append(dataset.assigned_blocks())
        samples.append([key(s) for s in dataset])
        assert len(samples[-1]) == len(dataset) == 4 * 6
    read = [b for rank_blocks in blocks for b in rank_blocks]
    assert len(read) == len(set(read)) == 20  # 24 blocks, 4 per rank: the 4 left over are dropped this epoch
    assert len({s for rank_samples in samples for s in rank_samples}) == 5 * 24
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda: 25)
    dataset.set_epoch(0)
    with pytest.raises(ConfigError, match="24 blocks cannot be shared among 25 ranks"):
        len(dataset)


def test_set_epoch_changes_the_order_and_the_same_seed_and_epoch_repeat_it(store_path, normalizer, static):
    dataset, _ = make_dataset(store_path, normalizer, static)
    again, _ = make_dataset(store_path, normalizer, static)
    epoch0 = [key(s) for s in dataset]
    assert [key(s) for s in again] == epoch0
    dataset.set_epoch(1)
    again.set_epoch(1)
    epoch1 = [key(s) for s in dataset]
    assert epoch1 != epoch0 and set(epoch1) != set(epoch0)  # another block order, and other patches
    assert [key(s) for s in again] == epoch1
    other, _ = make_dataset(store_path, normalizer, static, seed=4)
    other.set_epoch(1)
    assert [key(s) for s in other] != epoch1


def test_mix_blocks_shuffles_samples_of_several_blocks_together(store_path, normalizer, static):
    dataset, _ = make_dataset(store_path, normalizer, static, mix_blocks=1)
    mixed, _ = make_dataset(store_path, normalizer, static, mix_blocks=4)

    def block_of(sample) -> tuple[int, int, int]:  # time chunk, lat window (rows 0..15 or 20..31), lon chunk
        step, row, col = int(sample["time_index"]), *sample["offset"].tolist()
        return step // 24, int(row >= 16), col // 16

    one_by_one = [block_of(s) for s in dataset]
    together = [block_of(s) for s in mixed]
    # Without mixing, each run of 6 samples comes from one block; with it, runs mix blocks.
    assert all(len(set(one_by_one[i : i + 6])) == 1 for i in range(0, len(one_by_one), 6))
    assert any(len(set(together[i : i + 6])) > 1 for i in range(0, len(together), 6))
    assert sorted(one_by_one) == sorted(together)


def test_block_size_groups_chunks_into_larger_blocks(store_path, normalizer, static):
    dataset, store = make_dataset(store_path, normalizer, static, block_size=(32, 32))
    assert {(b.rows.start, b.rows.stop, b.cols.start, b.cols.stop) for b in dataset.blocks} == {(0, 32, 0, 48)}
    list(dataset)
    assert sum(store.chunk_reads().values()) == 4 * 3 * 3 * 2


def test_errors_name_the_problem(archive, store_path, normalizer, static):
    ds, _ = open_counted(store_path)
    with pytest.raises(ConfigError, match="larger than the domain 32 x 48"):
        LazyPatchDataset(ds, normalizer, scale=SCALE, patch_size=(36, 8), static=static)
    with pytest.raises(ConfigError, match="multiple of the scale 4"):
        LazyPatchDataset(ds, normalizer, scale=SCALE, patch_size=10, static=static)
    with pytest.raises(DataError, match="no variable 'tp'"):
        LazyPatchDataset(ds, normalizer, scale=SCALE, patch_size=8, variables=["tp"], static=static)
    with pytest.raises(DataError, match="no time dimension"):
        LazyPatchDataset(ds.isel(time=0, drop=True), normalizer, scale=SCALE, patch_size=8, static=static)
    with pytest.raises(DataError, match="not backed by dask"):
        LazyPatchDataset(archive, normalizer, scale=SCALE, patch_size=8, static=static)
    with pytest.raises(ConfigError, match="fitted on targets"):
        LazyPatchDataset(ds, normalizer, scale=SCALE, patch_size=8, variables=["t2m"], static=static)
    with pytest.raises(ConfigError, match="static fields were not given"):
        LazyPatchDataset(ds, normalizer, scale=SCALE, patch_size=8)
    all_nan = make_field(np.full((3, 8, 8), np.nan)).to_dataset().chunk()
    with pytest.raises(DataError, match="entirely NaN"):
        fit_lazy_normalizer(all_nan, scale=SCALE)


@pytest.mark.slow
def test_cli_trains_lazily_from_a_zarr_store(tmp_path):
    """`data.lazy: true`: the training period is read chunk by chunk; the model trains and is verified."""
    import json

    import yaml
    from click.testing import CliRunner

    from dl4ds.cli import main as cli

    era5 = datasets.era5_t2m_uk().sel(time=slice("2019-03-01", "2019-03-10"))
    era5.chunk({"time": 24, "latitude": 16, "longitude": 16}).to_zarr(tmp_path / "era5.zarr", zarr_format=2)
    config = {
        "data": {
            "target": {"path": str(tmp_path / "era5.zarr"), "variables": ["t2m"]},
            "static": {"path": "bundled:uk_static", "variables": ["elevation", "land_fraction"]},
            "scale": 4,
            "lazy": True,
            "patch_size": [16, 16],
            "train_period": ["2019-03-01", "2019-03-07"],
            "val_period": ["2019-03-08", "2019-03-08"],
            "test_period": ["2019-03-09", "2019-03-10"],
        },
        "model": {"name": "resnet_spc", "params": {"n_filters": 16, "n_blocks": 1}},
        "training": {"epochs": 3, "batch_size": 16, "learning_rate": 0.003},
        "output_dir": str(tmp_path / "run"),
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    result = CliRunner().invoke(cli, ["-q", "train", str(tmp_path / "config.yaml")])
    assert result.exit_code == 0, result.output
    history = (tmp_path / "run" / "checkpoints" / "history.csv").read_text().splitlines()
    losses = [float(line.split(",")[1]) for line in history[1:]]
    assert len(losses) == 3 and losses[-1] < losses[0]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["resnet_spc"]["rmse"] < metrics["bicubic"]["rmse"]
    assert "regression" not in metrics  # baselines fitted on the training period would load it
    # the outputs of lazy training are CF-complete and keep the archive's licence
    from helpers import cf_problems

    for output in ("test_downscaled.nc", "report/metrics.nc"):
        assert cf_problems(tmp_path / "run" / output) == [], output
    with xr.open_dataset(tmp_path / "run" / "test_downscaled.nc") as fine:
        assert fine.attrs["license"] == era5.attrs["license"]


def test_a_diffusion_model_trains_from_the_lazy_dataset(archive, store_path, normalizer, static):
    """Both stages read the Zarr store lazily; the residual scale is measured on its samples, NaN (sea) cells left out."""
    from helpers import TINY_DIFFUSION

    from dl4ds.model import DownscalingModel
    from dl4ds.training import DiffusionTrainer

    pairs = PerfectProg(SCALE).pair(archive, static=static)
    torch.manual_seed(0)
    model = DownscalingModel.build("residual_diffusion", pairs, normalizer, params=TINY_DIFFUSION)
    dataset, store = make_dataset(store_path, normalizer, static)
    trainer = DiffusionTrainer(
        epochs=3, batch_size=8, learning_rate=1e-2, progress=False, diffusion={"stage1_epochs": 1}
    )
    trainer.fit(model, dataset)
    assert store.chunk_reads(), "the samples came from the store"
    scale = model.network.residual_scale
    assert scale.shape == (2,) and torch.isfinite(scale).all() and (scale > 1e-3).all()
    losses = [record.train_loss for record in trainer.history.epochs]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]
