"""Training samples read lazily from NetCDF or Zarr, for archives larger than memory.

:class:`LazyPatchDataset` pairs like :class:`dl4ds.data.PerfectProg`: the
coarse input of each patch is the NaN-skipping ``scale`` x ``scale`` block
average of its target, computed on the fly. The target stays on disk, opened
lazily through xarray and dask (``dl4ds.io.open_data``, ``xr.open_zarr`` or
``xr.open_dataset(path, chunks={})``).

The block plan
    The unit of reading is a *block*: one dask chunk of time steps by a window
    of whole spatial chunks. Along each spatial axis consecutive chunks are
    grouped, in order, until the group holds at least one patch (or
    ``block_size`` cells) on the coarse grid; a remainder too small for a patch
    joins the last group. A block reads only the part of its window that lies on
    whole coarse cells, so it touches exactly the chunks under that part, each
    once. Blocks do not overlap, and every patch cut from a block (at random
    time steps and coarse-aligned positions) lies inside it, so a patch never
    straddles two blocks. Where a chunk boundary is not a multiple of the scale
    (e.g. the 721 latitudes of ERA5, flipped and cropped to 720), the coarse
    cell across the boundary belongs to no block and is never sampled; write
    stores with spatial chunks that are multiples of the scale to avoid it.
    Cells near block edges appear in fewer patches than interior ones; blocks
    several times larger than a patch (``block_size``) even that out.

Memory
    Each consumer (process or DataLoader worker) holds at most ``mix_blocks``
    blocks read at a time (each a time chunk x window, float32, all variables),
    then their samples, the normalised static fields and the cell weights
    (both on the full fine grid). The archive itself is never loaded.

Epochs and sharding
    The blocks of an epoch are shuffled by a generator seeded with
    ``(seed, epoch)``; :meth:`LazyPatchDataset.set_epoch` selects the epoch.
    They are dealt round-robin to the ``torch.distributed`` ranks and, within a
    rank, to the DataLoader workers, so no block is read twice in an epoch.
    To keep ranks in step (DDP needs the same number of batches on every
    rank), each rank gets ``len(blocks) // world_size`` blocks and the
    ``len(blocks) % world_size`` blocks left at the end of the epoch's shuffled
    order are dropped for that epoch (different ones every epoch). Every block
    yields ``patches_per_read`` samples, so all ranks yield the same number of
    samples and, with the same ``num_workers`` and batch size, of batches.
    The patches of a block depend only on ``(seed, epoch, block)``, not on how
    blocks are split among workers. The rank and world size are looked up when
    the dataset is built and again at every :meth:`set_epoch`, in the main
    process; DataLoader workers must not be persistent (``persistent_workers``
    would keep the epoch they started with).

Use::

    target = dl4ds.io.open_data("t2m.zarr").sel(time=slice("1991", "2015"))
    normalizer = fit_lazy_normalizer(target, scale=4, static=static)
    dataset = LazyPatchDataset(target, normalizer, scale=4, patch_size=64, static=static)
    loader = DataLoader(dataset, batch_size=16, num_workers=2)  # no shuffle: the dataset shuffles
    for epoch in range(epochs):
        dataset.set_epoch(epoch)
        for batch in loader:
            ...
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import pairwise

import dask
import dask.array as da
import numpy as np
import torch
import xarray as xr
from torch.utils.data import IterableDataset, get_worker_info

from dl4ds.data.fields import block_average
from dl4ds.data.grid import Grid
from dl4ds.data.normalization import ChannelStats, Normalizer
from dl4ds.data.pairing import SourcesInput, fine_static, target_field
from dl4ds.data.torch_dataset import Sample
from dl4ds.errors import ConfigError, DataError

XarrayInput = xr.Dataset | xr.DataArray

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Block:
    """One read: index ranges into the prepared target (time, lat, lon), lat and lon on whole coarse cells.

    ``time`` is one dask chunk of time steps; ``rows`` and ``cols`` are fine
    grid indices whose start and stop are multiples of the scale.
    """

    time: slice
    rows: slice
    cols: slice


class LazyPatchDataset(IterableDataset[Sample]):
    """Random normalised patches of a lazily opened target, read block by block (see the module docstring).

    Each sample is a dict of tensors, as in :class:`dl4ds.data.DownscalingDataset`:

    - ``x``: (variables, h, w) coarse inputs, the normalised NaN-skipping block
      average of the patch's target, NaN filled with 0;
    - ``static``: (static channels, h * scale, w * scale) normalised static
      fields, zero channels if none;
    - ``y``: (variables, h * scale, w * scale) normalised targets, NaN filled with 0;
    - ``weight``: same shape as ``y``, 0 where the target is NaN, else
      ``cell_weights`` (1 by default);
    - ``offset``: (2,) int64 row and column of the patch's first fine cell in
      the full fine grid;
    - ``time_index``: () int64 index of the sample's time step in :attr:`times`.

    Args:
        target: the high-resolution data, dask-backed, with dims time and
            lat/lon under any common names (see :mod:`dl4ds.data.grid`).
        normalizer: statistics fitted beforehand, e.g. with
            :func:`fit_lazy_normalizer` on the training period.
        scale: integer refinement factor (>= 2).
        patch_size: (height, width), or one number for both, of the patches in
            fine cells; multiples of ``scale``.
        variables: target variables; None takes every data variable.
        static: static fields (small, loaded into memory), brought onto the
            fine grid as :class:`dl4ds.data.PerfectProg` does.
        static_variables: which static fields; None takes all.
        patches_per_read: samples cut from each block read.
        block_size: (height, width) or one number, the least size of a block's
            spatial window in fine cells; None uses the patch size.
        mix_blocks: this many consecutive blocks are read together and their
            samples shuffled together before they are yielded, so that a batch
            mixes blocks.
        cell_weights: (H, W) non-negative loss weights on the fine grid, or None.
        seed: seeds the block order and the patches.
        crop: crop the target grid to a multiple of ``scale`` (centred), as
            ``PerfectProg(crop=True)`` does, instead of raising.

    Attributes:
        blocks: the block plan (fixed); blocks are named by their index in it.
        fine_grid: the fine grid (after cropping) in which ``offset`` counts.
        times: the time coordinate that ``time_index`` indexes.
        variables: the target variables, in channel order.
        epoch: the epoch chosen with :meth:`set_epoch` (0 at first).

    Raises:
        DataError: missing variables, no time or lat/lon dimension, an
            irregular grid, or data not backed by dask.
        ConfigError: a patch that is not a multiple of the scale or is larger
            than the domain, options out of range, or a normalizer fitted on
            other variables.
    """

    def __init__(
        self,
        target: XarrayInput,
        normalizer: Normalizer,
        *,
        scale: int,
        patch_size: int | tuple[int, int],
        variables: Sequence[str] | None = None,
        static: SourcesInput | None = None,
        static_variables: Sequence[str] | None = None,
        patches_per_read: int = 16,
        block_size: int | tuple[int, int] | None = None,
        mix_blocks: int = 4,
        cell_weights: np.ndarray | None = None,
        seed: int = 0,
        crop: bool = True,
    ) -> None:
        super().__init__()
        if patches_per_read < 1 or mix_blocks < 1:
            raise ConfigError(f"patches_per_read={patches_per_read} and mix_blocks={mix_blocks} must both be >= 1")
        field = lazy_target(target, variables, scale, crop)
        self.scale = scale
        self.fine_grid = Grid.of(field)
        self.times = field.indexes["time"]
        self.variables = tuple(str(v) for v in field["variable"].values)
        height, width = _pair(patch_size, "patch_size")
        fine_shape = self.fine_grid.shape
        if height % scale or width % scale:
            raise ConfigError(f"patch size {height} x {width} must be a multiple of the scale {scale} on both axes")
        if height > fine_shape[0] or width > fine_shape[1]:
            raise ConfigError(
                f"patch size {height} x {width} is larger than the domain {fine_shape[0]} x {fine_shape[1]} "
                "(after cropping to a multiple of the scale); use a smaller patch_size"
            )
        self.patch_size = (height, width)
        least = self.patch_size if block_size is None else _pair(block_size, "block_size")
        _check_normalizer(normalizer, self.variables, static is not None)
        self.normalizer = normalizer
        self.patches_per_read = patches_per_read
        self.mix_blocks = mix_blocks
        self.seed = seed
        self.epoch = 0
        self._data = field.data  # (time, variable, lat, lon) dask array, float32

        time_chunks, _, lat_chunks, lon_chunks = self._data.chunks
        rows = _windows(lat_chunks, max(height, least[0]), scale)
        cols = _windows(lon_chunks, max(width, least[1]), scale)
        starts = np.cumsum((0, *time_chunks))
        self.blocks = tuple(
            Block(slice(int(t0), int(t1)), r, c) for t0, t1 in pairwise(starts) for r in rows for c in cols
        )

        weight = np.ones(fine_shape, dtype=np.float32)
        if cell_weights is not None:
            if cell_weights.shape != fine_shape or not np.all(cell_weights >= 0):
                raise ConfigError(
                    f"cell_weights must be non-negative numbers on the fine grid, shape {fine_shape}; "
                    f"got shape {cell_weights.shape}"
                )
            weight = cell_weights.astype(np.float32)
        self._cell_weights = weight
        static_field, _, _ = fine_static(static, static_variables, self.fine_grid)
        if static_field is None:
            self._static = np.zeros((0, *fine_shape), dtype=np.float32)
        else:
            names = tuple(str(c) for c in static_field["channel"].values)
            assert normalizer.static is not None
            if names != normalizer.static.names:
                raise ConfigError(
                    f"the normalizer was fitted on static fields {list(normalizer.static.names)}, not {list(names)}; "
                    "fit it on the same static fields"
                )
            self._static = normalizer.normalize_static(static_field.values)
        self._rank, self._world_size = _distributed_rank()

    # ----------------------------------------------------------------- epochs and sharding

    def set_epoch(self, epoch: int) -> None:
        """Use the block order and patches of ``epoch``; call before each epoch (in the main process)."""
        self.epoch = int(epoch)
        self._rank, self._world_size = _distributed_rank()

    def blocks_per_rank(self) -> int:
        """Blocks each rank reads per epoch: ``len(blocks) // world_size``."""
        count = len(self.blocks) // self._world_size
        if count == 0:
            raise ConfigError(
                f"{len(self.blocks)} blocks cannot be shared among {self._world_size} ranks; use fewer ranks, "
                "or a store with smaller chunks (or a smaller patch_size / block_size)"
            )
        return count

    def assigned_blocks(self, worker: int = 0, num_workers: int = 1) -> list[int]:
        """Indices into :attr:`blocks` that DataLoader ``worker`` of ``num_workers`` on this rank reads this epoch, in order."""
        order = np.random.default_rng((self.seed, self.epoch)).permutation(len(self.blocks))
        kept = order[: self.blocks_per_rank() * self._world_size]
        mine = kept[self._rank :: self._world_size]
        return [int(i) for i in mine[worker::num_workers]]

    def __len__(self) -> int:
        """Samples per epoch on this rank (all its workers together).

        Each DataLoader worker batches its own samples, so an epoch ends with
        up to ``num_workers`` partial batches (which ``drop_last`` drops); the
        batch count is the same on every rank.
        """
        return self.blocks_per_rank() * self.patches_per_read

    # ----------------------------------------------------------------- reading

    def __iter__(self) -> Iterator[Sample]:
        info = get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        blocks = self.assigned_blocks(worker, workers)
        for first in range(0, len(blocks), self.mix_blocks):
            group = blocks[first : first + self.mix_blocks]
            values = self.read_blocks(group)
            samples = [
                sample for index, block in zip(group, values, strict=True) for sample in self.cut_samples(index, block)
            ]
            del values
            order = np.random.default_rng((self.seed, self.epoch, *group)).permutation(len(samples))
            for i in order:
                yield samples[i]

    def read_blocks(self, indices: Sequence[int]) -> list[np.ndarray]:
        """The (time, variable, rows, cols) float32 values of the blocks ``indices``, in physical units.

        One dask computation (synchronous: DataLoader workers give the
        parallelism) reads every chunk under the blocks once; computing several
        blocks together spreads dask's per-computation cost, which grows with
        the number of chunks in the archive.
        """
        lazy = [self._data[b.time, :, b.rows, b.cols] for b in (self.blocks[i] for i in indices)]
        return [np.asarray(values) for values in dask.compute(*lazy, scheduler="synchronous")]

    def cut_samples(self, index: int, values: np.ndarray) -> list[Sample]:
        """The ``patches_per_read`` samples of block ``index`` this epoch, from its ``values`` (see :meth:`read_blocks`).

        Time steps (distinct while the block has enough) and coarse-aligned
        positions are drawn from a generator seeded with (seed, epoch, index).
        """
        block = self.blocks[index]
        rng = np.random.default_rng((self.seed, self.epoch, index))
        steps_in_block = block.time.stop - block.time.start
        steps = rng.choice(steps_in_block, size=self.patches_per_read, replace=self.patches_per_read > steps_in_block)
        height, width = self.patch_size
        scale = self.scale
        rows = (
            rng.integers(0, (block.rows.stop - block.rows.start - height) // scale + 1, self.patches_per_read) * scale
        )
        cols = rng.integers(0, (block.cols.stop - block.cols.start - width) // scale + 1, self.patches_per_read) * scale
        used, position = np.unique(steps, return_inverse=True)
        values = values[used]  # (used steps, variable, rows, cols)
        coarse = block_average(xr.DataArray(values, dims=("time", "variable", "lat", "lon")), scale).values
        samples = []
        for k, row, col in zip(position, rows, cols, strict=True):
            fine_row, fine_col = block.rows.start + row, block.cols.start + col
            target = values[k, :, row : row + height, col : col + width]
            inputs = coarse[k, :, row // scale : (row + height) // scale, col // scale : (col + width) // scale]
            window = (slice(fine_row, fine_row + height), slice(fine_col, fine_col + width))
            weight = (~np.isnan(target)).astype(np.float32) * self._cell_weights[window]
            samples.append(
                {
                    "x": torch.from_numpy(self.normalizer.normalize_inputs(inputs)),
                    "static": torch.from_numpy(self._static[:, window[0], window[1]].copy()),
                    "y": torch.from_numpy(np.nan_to_num(self.normalizer.target.normalize(target, 0), nan=0.0)),
                    "weight": torch.from_numpy(weight),
                    "offset": torch.tensor([fine_row, fine_col]),
                    "time_index": torch.tensor(block.time.start + int(used[k])),
                }
            )
        return samples


# --------------------------------------------------------------------- normalisation


def fit_lazy_normalizer(
    target: XarrayInput,
    *,
    scale: int,
    variables: Sequence[str] | None = None,
    static: SourcesInput | None = None,
    static_variables: Sequence[str] | None = None,
    crop: bool = True,
) -> Normalizer:
    """The statistics ``Normalizer.fit(PerfectProg(scale, crop).pair(target, ...))`` gives, chunk by chunk.

    Means and standard deviations (population, NaN-skipping, float64) of each
    target variable come from one pass of dask reductions over the store, so
    memory stays at a few chunks per dask thread. The coarse inputs share the
    target's statistics; the static fields (small) are fitted in memory.
    Pass the training period only, e.g. ``target.sel(time=slice(start, end))``.

    Raises:
        DataError: a target variable that is entirely NaN, or the errors of
            :class:`LazyPatchDataset` for the data's layout.
    """
    field = lazy_target(target, variables, scale, crop)
    values = field.data.astype(np.float64)
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        mean, std = dask.compute(da.nanmean(values, axis=(0, 2, 3)), da.nanstd(values, axis=(0, 2, 3)))
    names = tuple(str(v) for v in field["variable"].values)
    empty = [name for name, value in zip(names, mean, strict=True) if np.isnan(value)]
    if empty:
        raise DataError(f"the target variable(s) {empty} are entirely NaN; check the data and the time range")
    # The same floor as ChannelStats.fit: a constant channel normalises to zeros.
    std = np.where(std < 1e-6, 1.0, std)
    stats = ChannelStats(names, np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64))
    static_field, _, _ = fine_static(static, static_variables, Grid.of(field))
    static_stats = None if static_field is None else ChannelStats.fit(static_field.load(), "channel")
    return Normalizer(target=stats, inputs=stats, static=static_stats)


# --------------------------------------------------------------------- helpers


def lazy_target(target: XarrayInput, variables: Sequence[str] | None, scale: int, crop: bool) -> xr.DataArray:
    """The (time, variable, lat, lon) float32 target as ``PerfectProg`` prepares it (:func:`target_field`), still lazy.

    The all-NaN checks of the pairing would read the whole archive;
    :func:`fit_lazy_normalizer` makes them instead.
    """
    field, _ = target_field(target, variables, scale, crop)
    if field.chunks is None:
        raise DataError(
            "the target is not backed by dask, so it cannot be read lazily chunk by chunk; open it with "
            "dl4ds.io.open_data, xr.open_zarr or xr.open_dataset(path, chunks={}) (or .chunk() it), or use "
            "DownscalingDataset for data that fits in memory"
        )
    return field


def _windows(chunks: Sequence[int], least: int, scale: int) -> list[slice]:
    """Group consecutive chunks of one axis into windows with at least ``least`` cells on whole coarse cells.

    Returns, for each window, its part on whole coarse cells (start and stop
    multiples of ``scale``). A trailing remainder with fewer cells joins the
    last window (or, if there is none, makes the only one).
    """
    bounds = np.cumsum((0, *chunks))
    aligned: list[tuple[int, int]] = []
    start = 0
    for stop in bounds[1:]:
        low, high = math.ceil(start / scale) * scale, int(stop) // scale * scale
        if high - low >= least:
            aligned.append((low, high))
            start = int(stop)
    if start < bounds[-1]:
        low, high = math.ceil(start / scale) * scale, int(bounds[-1]) // scale * scale
        if high - low < least and aligned:
            low = aligned.pop()[0]
        aligned.append((low, high))
    return [slice(low, high) for low, high in aligned]


def _pair(value: int | tuple[int, int], name: str) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, (int, np.integer)) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) and v > 0 for v in pair):
        raise ConfigError(f"{name} must be a positive integer or a (height, width) pair of them, got {value!r}")
    return int(pair[0]), int(pair[1])


def _check_normalizer(normalizer: Normalizer, variables: tuple[str, ...], has_static: bool) -> None:
    if normalizer.target.names != variables or normalizer.inputs.names != variables:
        raise ConfigError(
            f"the normalizer was fitted on targets {list(normalizer.target.names)} and inputs "
            f"{list(normalizer.inputs.names)}; the lazy dataset needs both to be {list(variables)} (PerfectProg "
            "without predictors). Fit it with fit_lazy_normalizer on the same variables"
        )
    if has_static != (normalizer.static is not None):
        given, fitted = ("were", "has none") if has_static else ("were not", "has some")
        raise ConfigError(
            f"static fields {given} given but the normalizer {fitted}; fit the normalizer and build the dataset "
            "with the same static fields"
        )


def _distributed_rank() -> tuple[int, int]:
    """(rank, world size) of this process in ``torch.distributed``, or (0, 1) outside distributed training."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1
