"""Applying a trained model to coarse data of any size: forecast dims, tiles, samples, streaming.

:class:`Downscaler` turns coarse input (a Dataset, possibly lazy and larger
than memory) into a *lazy* Dataset of fine fields: a dask array whose blocks
each read one chunk of time steps and members from the input, run the
network on it tile by tile, and return the fine fields. Computing it
(:meth:`Downscaler.downscale`) gives the fields in memory; writing it
(:meth:`Downscaler.write`) streams block by block into NetCDF or Zarr, so
peak memory depends on the block and tile sizes, not on the number of steps.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import uuid
from collections.abc import Hashable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dask
import dask.array as da
import numpy as np
import torch
import xarray as xr
from dask.highlevelgraph import HighLevelGraph
from tqdm.auto import tqdm

from dl4ds._version import __version__
from dl4ds.cf import LEAD_DIMS, complete, provenance
from dl4ds.data import units
from dl4ds.data.fields import VariableSpec, as_dataset, check_variables, replace_infinite, select_variables
from dl4ds.data.grid import GRID_TOLERANCE, Grid, align_longitudes, coordinate_names, latitude_descending, standardize
from dl4ds.data.hindcast_pairing import with_lead_input
from dl4ds.data.pairing import NO_PADDING
from dl4ds.data.regrid import RegridMethod
from dl4ds.data.regrid import regrid as regrid_field
from dl4ds.errors import ConfigError, DataError
from dl4ds.inference.options import DownscaleOptions, OutputFormat
from dl4ds.inference.predictor import TilePredictor
from dl4ds.inference.tiling import TileLayout, default_overlap
from dl4ds.io import INPUT_ATTRIBUTE, check_not_input, input_sources, write_netcdf, write_zarr
from dl4ds.model import DownscalingModel, ModelMetadata
from dl4ds.model.checkpoint import load_model
from dl4ds.networks.random_fields import item_keys
from dl4ds.utils.devices import torch_device

if TYPE_CHECKING:
    from dask.typing import Key

logger = logging.getLogger(__name__)

BLOCK_BYTES = 32 * 2**20  # fine output per block (and per output chunk), before the sample dim
_BLOCK_PREFIX = "dl4ds-downscale-"


@dataclass(frozen=True)
class _Input:
    """Coarse input ready to be read block by block.

    Attributes:
        ds: the model's input variables, standardized (time/lat/lon, latitude
            ascending, longitudes aligned with the model), still lazy.
        grid: the coarse grid the network runs on.
        dims: the leading (non-spatial) dims in processing order: the time
            dim last for a spatio-temporal network.
        user_dims: the leading dims in the input's order.
        time_dim: the dim a spatio-temporal network runs along, else None.
        names: standard -> user name of lat, lon and time.
        descending: whether the input stores latitude north to south.
        method: how a block is regridded onto ``grid`` when it is not on it.
        clamp: whether ``grid`` may reach beyond the input's cell centres (the
            model's training grid for input on its training data's grid).
        attrs: the input's global attributes (its history, licence, source...).
        cell_methods: the ``cell_methods`` of the input variables that have one.
    """

    ds: xr.Dataset
    grid: Grid
    dims: tuple[str, ...]
    user_dims: tuple[str, ...]
    time_dim: str | None
    names: dict[str, str]
    descending: bool
    method: RegridMethod = "linear"
    clamp: bool = False
    attrs: Mapping[Hashable, object] = dataclasses.field(default_factory=dict)
    cell_methods: Mapping[str, str] = dataclasses.field(default_factory=dict)

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(self.ds.sizes[d] for d in self.dims)

    def read(self, indexers: Mapping[str, slice]) -> np.ndarray:
        """The (*block dims, channel, lat, lon) float32 values of a block, regridded onto ``grid``."""
        block = self.ds.isel(dict(indexers)).load()
        field = block.to_dataarray(dim="channel").transpose(*self.dims, "channel", "lat", "lon").astype(np.float32)
        return regrid_field(field, self.grid, method=self.method, role="coarse input", clamp=self.clamp).values


class Downscaler:
    """Applies a trained model to coarse fields of any size, with any member, lead time and time dims.

    Args:
        model: a trained model or the path of its checkpoint.
        options: the :class:`~dl4ds.inference.options.DownscaleOptions` (tile
            size, overlap, batch size, samples, seed, device, regrid, rename,
            time dim, chunk size, format, progress), or a mapping of them.
        **overrides: single options, e.g. ``tile_size=256``, replacing those of ``options``.

    Raises:
        ConfigError: invalid options, or options the model cannot honour
            (samples > 1 on a deterministic model, tiles smaller than a U-Net's
            size multiple, a device this machine lacks).
    """

    def __init__(
        self,
        model: DownscalingModel | str | os.PathLike[str],
        options: DownscaleOptions | Mapping[str, Any] | None = None,
        **overrides: Any,
    ) -> None:
        self.model = model if isinstance(model, DownscalingModel) else load_model(model)
        self.options = DownscaleOptions.parse(options or {}, "downscaling options").updated(
            "downscaling options", **overrides
        )
        meta = self.model.metadata
        samples, tile_size = self.options.samples, self.options.tile_size
        if samples > 1 and not self.model.capabilities.stochastic:
            raise ConfigError(
                f"samples={samples} asks for an ensemble, but the model {meta.architecture!r} is deterministic and "
                "would repeat one field; train it with noise_channels (e.g. trainer cgan) or mc_dropout, or use samples=1"
            )
        sampler_options = sorted({"steps", "churn"} & self.options.model_fields_set)
        if sampler_options and not self.model.capabilities.iterative:
            raise ConfigError(
                f"{' and '.join(sampler_options)} set the sampler of a diffusion model, but {meta.architecture!r} "
                "predicts in one pass; leave them out (CLI: --steps, --churn)"
            )
        self.multiple = self.model.capabilities.size_multiple
        if tile_size is not None and tile_size < self.multiple:
            raise ConfigError(
                f"tile_size={tile_size} is smaller than {self.multiple}, the size multiple of the U-Net of "
                f"{meta.architecture!r}; use a multiple of {self.multiple}"
            )
        self.tile_size = None if tile_size is None else tile_size - tile_size % self.multiple
        self.device = torch_device(self.options.device, cpu="device='cpu' (CLI: --device cpu)")

    def predict(self, coarse: xr.Dataset | xr.DataArray) -> xr.Dataset:
        """The downscaled fields as a lazy (dask) Dataset; nothing runs until it is computed or written.

        Args:
            coarse: the model's input variables with dims (..., lat, lon): any
                other dims (time, member/number/realization, forecast reference
                time, lead time...) and their coordinates are carried through.
                Coordinate names lat/latitude, lon/longitude and
                time/valid_time are accepted, with latitude in either order.

        Returns:
            A Dataset with one variable per model target, dims
            ([sample,] ..., lat, lon) on the fine grid, in the input's dim order
            and coordinate names, with CF attributes and NaN where the input
            was NaN or +/-Inf (with a warning) or the model had no training
            truth; chunked by block.
            Compute it with dask's synchronous scheduler (as
            :meth:`downscale` and :meth:`write` do): the network already uses
            every core.
        """
        return self._lazy(coarse)[0]

    def downscale(self, coarse: xr.Dataset | xr.DataArray) -> xr.Dataset:
        """The downscaled fields in memory (see :meth:`predict` for the layout)."""
        result, progress = self._lazy(coarse)
        with progress.shown(self.options.progress):
            return result.compute()

    def write(
        self, coarse: xr.Dataset | xr.DataArray, path: str | os.PathLike[str], *, format: OutputFormat | None = None
    ) -> xr.Dataset:
        """Downscale ``coarse`` block by block into a NetCDF file or Zarr store at ``path``.

        The output is written under a temporary name beside ``path`` and moved
        into place when complete, so an interrupted run leaves nothing at
        ``path``; an existing file (or Zarr store) there is replaced. ``format``
        defaults to Zarr for a ``.zarr`` path and NetCDF otherwise. Output
        chunks are the blocks: one member and a run of time steps each. The
        file's ``dl4ds_input`` attribute names the file ``coarse`` was read from.

        Returns:
            The lazy result that was written (its sizes and coordinates).

        Raises:
            OutputError: ``path`` is the file ``coarse`` was read from, or cannot be written.
        """
        format = format or self.options.format or ("zarr" if Path(path).suffix == ".zarr" else "netcdf")
        if format not in ("netcdf", "zarr"):
            raise ConfigError(f"output format {format!r} is not supported; choose 'netcdf' or 'zarr'")
        sources = input_sources(coarse)
        check_not_input(path, sources)
        result, progress = self._lazy(coarse)
        if sources:
            result.attrs[INPUT_ATTRIBUTE] = ", ".join(map(str, sources))
        with progress.shown(self.options.progress):
            (write_zarr if format == "zarr" else write_netcdf)(result, path)
        return result

    def _lazy(self, coarse: xr.Dataset | xr.DataArray) -> tuple[xr.Dataset, _BlockProgress]:
        """The lazy output, and the progress of the network blocks in its graph."""
        source = self._prepare(coarse)
        meta = self.model.metadata
        fine_grid = source.grid.refine(meta.scale)
        self._warn_if_smaller_than_receptive_field(source.grid)
        chunks = self._chunks(source, fine_grid)
        predictor = self._predictor(source.grid)
        seed = self.options.seed if self.options.seed is not None else int(torch.randint(0, 2**62, ()).item())
        name = f"{_BLOCK_PREFIX}{uuid.uuid4().hex}"
        ensemble = self.options.samples > 1
        graph: dict[Key, tuple[partial[np.ndarray]]] = {}
        progress = _BlockProgress()
        starts = [np.cumsum((0, *chunk)) for chunk in chunks]  # block boundaries along each leading dim
        for block in np.ndindex(*(len(c) for c in chunks)):
            slices = {
                dim: slice(int(bounds[index]), int(bounds[index + 1]))
                for dim, bounds, index in zip(source.dims, starts, block)
            }
            for sample in range(self.options.samples):
                key = (name, sample, *block, 0, 0, 0) if ensemble else (name, *block, 0, 0, 0)
                graph[key] = (partial(_predict_block, source, predictor, slices, sample, seed, ensemble, progress),)
        all_chunks = (*chunks, (len(meta.target_variables),), *((size,) for size in fine_grid.shape))
        if ensemble:
            all_chunks = ((1,) * self.options.samples, *all_chunks)
        fields = da.Array(
            HighLevelGraph.from_collections(name, graph, dependencies=()), name, all_chunks, dtype=np.float32
        )
        domain = _domain_window(source.grid, meta)
        if domain is not None:  # the fine cells of the model's padding are cut off
            fields = fields[..., domain[0], domain[1]]
            fine_grid = Grid(fine_grid.lat[domain[0]], fine_grid.lon[domain[1]])
        progress.total = len(graph)
        return _output_dataset(fields, source, fine_grid, meta, self.options.samples), progress

    def _prepare(self, coarse: xr.Dataset | xr.DataArray) -> _Input:
        meta = self.model.metadata
        ds = as_dataset(coarse, role="coarse input")
        if self.options.rename:
            unknown = [name for name in self.options.rename if name not in ds.variables]
            if unknown:
                raise DataError(
                    f"cannot rename {unknown}: no such variables in the input (it has {sorted(map(str, ds.data_vars))})"
                )
            ds = ds.rename(self.options.rename)
        ds = units.with_units(ds, self.options.units, role="input")
        attrs = dict(ds.attrs)
        cell_methods = {
            str(n): str(v.attrs["cell_methods"]) for n, v in ds.data_vars.items() if "cell_methods" in v.attrs
        }
        ds = with_lead_input(ds, meta.input_variables, meta.attrs)
        _check_inputs(ds, meta)
        ds = _in_model_units(select_variables(ds, meta.input_variables, role="coarse input"), meta)
        names = coordinate_names(ds)
        descending = latitude_descending(ds[meta.input_variables[0]])
        ds = align_longitudes(standardize(ds, require_time=False, role="coarse input"), meta.coarse_grid.lon)
        ds = ds.assign({name: replace_infinite(ds[name], role="coarse input") for name in meta.input_variables})
        user_dims = tuple(str(d) for d in ds[meta.input_variables[0]].dims if d not in ("lat", "lon"))
        for variable in meta.input_variables[1:]:
            if set(ds[variable].dims) != set(ds[meta.input_variables[0]].dims):
                raise DataError(
                    f"the input variables have different dims ({meta.input_variables[0]}: {ds[meta.input_variables[0]].dims}, "
                    f"{variable}: {ds[variable].dims}); give every input variable the same dims"
                )
        grid, clamp = _input_grid(Grid.of(ds), meta, self.model.capabilities.domain_bound, self.options.regrid)
        method = self.options.regrid_method or (meta.resampling.method if meta.resampling is not None else "linear")
        if not Grid.of(ds).equals(grid) and grid.window_in(Grid.of(ds)) is None:
            logger.info(
                "regridding (%s) the input from %s onto the model's coarse grid %s",
                method,
                Grid.of(ds).describe(),
                grid.describe(),
            )
        time_dim = self._time_dim(user_dims, names) if self.model.capabilities.temporal else None
        dims = tuple(d for d in user_dims if d != time_dim) + ((time_dim,) if time_dim else ())
        if time_dim is not None and ds.sizes[time_dim] < (meta.time_window or 1):
            raise DataError(
                f"the spatio-temporal model takes windows of {meta.time_window} consecutive steps along {time_dim!r}, "
                f"but the input has only {ds.sizes[time_dim]}; give at least {meta.time_window} steps"
            )
        return _Input(ds, grid, dims, user_dims, time_dim, names, descending, method, clamp, attrs, cell_methods)

    def _warn_if_smaller_than_receptive_field(self, grid: Grid) -> None:
        """Warn when ``grid`` gives each output cell less context than the network's receptive field and its training.

        A network with a receptive radius of r coarse cells, trained on
        samples of S cells, sees zero padding where it learned to see data
        when a domain has fewer than min(S, 2 r + 1) cells along an axis, so
        its output is degraded near the edges. On domains at least as large
        as the training samples nothing is measured.
        """
        meta = self.model.metadata
        trained = _training_sample_shape(meta)
        if all(size >= side for size, side in zip(grid.shape, trained)):
            return
        probe = max(33, 2 * max(grid.shape) + 1)
        radius = self.model.receptive_radius(within=probe)
        field = probe if radius is None else 2 * radius + 1
        if all(size >= min(field, side) for size, side in zip(grid.shape, trained)):
            return
        reach = f"{field} x {field} coarse cells, radius {radius}" if radius is not None else f"over {probe} cells"
        logger.warning(
            "the input domain is %d x %d coarse cells, smaller than the network's receptive field (%s) and than its "
            "training samples (%d x %d cells): output cells near the domain's edges see zero padding where the "
            "network learned to see data, so the output is degraded there. Give input covering a larger domain, "
            "at least %s cells",
            *grid.shape,
            reach,
            *trained,
            " x ".join(str(min(field, side)) for side in trained),
        )

    def _time_dim(self, dims: Sequence[str], names: Mapping[str, str]) -> str:
        """The (standardized) dim a spatio-temporal network runs along; ``names`` maps standard to user names."""
        meta = self.model.metadata
        if self.options.time_dim is not None:
            wanted = "time" if self.options.time_dim == names.get("time") else self.options.time_dim
            if wanted not in dims:
                raise DataError(f"time_dim={self.options.time_dim!r} is not a dim of the input (dims {list(dims)})")
            return wanted
        candidates = [d for d in ("time", *LEAD_DIMS) if d in dims]
        if not candidates:
            raise DataError(
                f"the spatio-temporal model {meta.architecture!r} runs over windows of {meta.time_window} time steps, "
                f"but the input has no time dimension (dims {list(dims)}); name the dim with time_dim (CLI: --time-dim)"
            )
        return candidates[0]

    def _chunks(self, source: _Input, fine_grid: Grid) -> list[tuple[int, ...]]:
        """Block sizes along each leading dim: filled from the innermost dim outwards up to ``chunk_size`` items."""
        items = self.options.chunk_size or max(
            1, BLOCK_BYTES // (4 * len(self.model.metadata.target_variables) * math.prod(fine_grid.shape))
        )
        chunks = []
        for dim, size in reversed(list(zip(source.dims, source.sizes))):
            length = max(1, min(size, items))
            if dim == source.time_dim:
                length = max(length, min(size, self.model.metadata.time_window or 1))
            items //= length
            chunks.append(_split(size, length))
        return chunks[::-1]

    def _predictor(self, grid: Grid) -> TilePredictor:
        """The network runner for ``grid``: padded to the U-Net multiple, cut into tiles when asked."""
        multiple = self.multiple
        padded = (multiple * math.ceil(grid.shape[0] / multiple), multiple * math.ceil(grid.shape[1] / multiple))
        overlap = self.options.overlap
        if overlap is None:
            overlap = (
                0
                if self.tile_size is None or self.tile_size >= max(padded)
                else default_overlap(self.model, self.tile_size)
            )
        layout = TileLayout.plan(padded, self.tile_size, overlap, multiple)
        if layout.count > 1:
            logger.info(
                "%d x %d tiles of %d x %d coarse cells over %d x %d, overlapping by at least %d cells",
                len(layout.rows.starts),
                len(layout.cols.starts),
                *layout.shape,
                *grid.shape,
                overlap,
            )
        return TilePredictor(
            self.model,
            grid,
            layout,
            padded,
            self.options.batch_size,
            self.device,
            steps=self.options.steps,
            churn=self.options.churn,
        )


def downscale(
    model: DownscalingModel | str | os.PathLike[str], coarse: xr.Dataset | xr.DataArray, **options
) -> xr.Dataset:
    """Downscale ``coarse`` with ``model`` into memory: ``Downscaler(model, **options).downscale(coarse)``.

    See :class:`~dl4ds.inference.options.DownscaleOptions` for the options and
    :meth:`Downscaler.predict` for the output.
    """
    return Downscaler(model, **options).downscale(coarse)


def _predict_block(
    source: _Input,
    predictor: TilePredictor,
    slices: Mapping[str, slice],
    sample: int,
    seed: int,
    ensemble: bool,
    progress: _BlockProgress,
) -> np.ndarray:
    """One block of the output: ([1,] *block sizes of source.dims, V, H, W) fine fields in physical units.

    The leading 1 (the block's place along ``sample``) is there for an ``ensemble``; ``progress`` counts the block.
    """
    read = dict(slices)
    halo_start = 0
    window = predictor.window
    if source.time_dim is not None:
        core = slices[source.time_dim]
        halo_start = max(0, core.start - (window - 1))
        read[source.time_dim] = slice(halo_start, min(source.ds.sizes[source.time_dim], core.stop + window - 1))
    values = source.read(read)
    block_shape = values.shape[: len(source.dims)]
    item_dims = [d for d in source.dims if d != source.time_dim]
    steps = block_shape[-1] if source.time_dim else 1
    sequences = values.reshape(-1, steps, *values.shape[-3:])
    keys = None
    if predictor.model.capabilities.stochastic:
        ranges = [np.arange(slices[d].start, slices[d].stop) for d in item_dims]
        sizes = [source.ds.sizes[d] for d in item_dims]
        items = np.ravel_multi_index(np.meshgrid(*ranges, indexing="ij"), sizes).ravel() if ranges else np.zeros(1, int)
        keys = item_keys(seed, sample, torch.from_numpy(items.astype(np.int64)))
    fine = predictor.predict(sequences, keys, first_step=halo_start)
    if source.time_dim is not None:
        core = slices[source.time_dim]
        fine = fine[:, core.start - halo_start : core.stop - halo_start]
    output_shape = tuple(s.stop - s.start for s in (slices[d] for d in source.dims))
    fine = fine.reshape(*output_shape, *fine.shape[-3:])
    progress.advance()
    return fine[None] if ensemble else fine


def _output_dataset(fields: da.Array, source: _Input, fine_grid: Grid, meta: ModelMetadata, samples: int) -> xr.Dataset:
    dims = (*(("sample",) if samples > 1 else ()), *source.dims)
    coords: dict[str, xr.Variable | xr.DataArray] = {
        str(name): coord.variable.compute()
        for name, coord in source.ds.coords.items()
        if name not in ("lat", "lon") and set(coord.dims) <= set(source.dims)
    }
    if samples > 1:
        coords["sample"] = xr.Variable(
            "sample",
            np.arange(samples),
            {"long_name": "ensemble sample drawn by the network", "standard_name": "realization"},
        )
        statistics_coords = {  # what the cell_methods of the mean and spread name: all samples
            "samples": xr.Variable(
                (),
                samples,
                {
                    "long_name": f"number of ensemble samples a mean or spread is taken over (samples 0 to {samples - 1})",
                    "units": "1",
                },
            )
        }
    coords |= fine_grid.coords()
    if "time" in source.dims:
        coords["time"] = coords["time"].copy()
        coords["time"].attrs = {"standard_name": "time", "long_name": "time", "axis": "T"}
    variables = {}
    order = (*(("sample",) if samples > 1 else ()), *source.user_dims, "lat", "lon")
    for index, name in enumerate(meta.target_variables):
        attrs = dict(meta.attrs.get(name, {}))
        attrs["comment"] = f"downscaled x{meta.scale} by dl4ds {meta.architecture}"
        cell_methods = source.cell_methods.get(name, attrs.get("cell_methods"))
        if cell_methods is None and "time" in dims:  # what was downscaled describes the time sampling
            cell_methods = "time: point"
        if cell_methods is not None:
            attrs["cell_methods"] = cell_methods
        field = xr.DataArray(fields[..., index, :, :], dims=(*dims, "lat", "lon"), coords=coords, attrs=attrs)
        variables[name] = field.transpose(*order)
        if samples > 1:
            long_name = attrs.get("long_name", name)
            variables[f"{name}_mean"] = (
                field.mean("sample")
                .transpose(*order[1:])
                .assign_coords(statistics_coords)
                .assign_attrs(
                    attrs, long_name=f"ensemble mean of {long_name}", cell_methods=_over_samples(attrs, "mean")
                )
            )
            variables[f"{name}_spread"] = (
                field.std("sample", ddof=1)
                .transpose(*order[1:])
                .assign_coords(statistics_coords)
                .assign_attrs(
                    {k: v for k, v in attrs.items() if k != "standard_name"},
                    long_name=f"ensemble standard deviation of {long_name} over {samples} samples",
                    cell_methods=_over_samples(attrs, "standard_deviation"),
                )
            )
    made_by = f"downscaled x{meta.scale} with dl4ds {__version__} (network {meta.architecture})"
    output = xr.Dataset(
        variables,
        attrs={
            "title": f"{', '.join(meta.target_variables)} downscaled x{meta.scale} with dl4ds",
            **provenance([source.attrs], made_by=made_by),
        },
    )
    if source.descending:
        output = output.isel(lat=slice(None, None, -1))
    output = output.rename(
        {standard: name for standard, name in source.names.items() if name != standard and standard in output.variables}
    )
    return complete(output, reorder=False)


def _over_samples(attrs: Mapping[str, str], method: str) -> str:
    """The ``cell_methods`` of a statistic over the samples (the scalar coordinate ``samples``) of a field with ``attrs``."""
    return " ".join(filter(None, (attrs.get("cell_methods"), f"samples: {method}")))


def _split(size: int, length: int) -> tuple[int, ...]:
    """``size`` cut into pieces of ``length`` (the last one shorter)."""
    return tuple(min(length, size - start) for start in range(0, size, length))


class _BlockProgress:
    """Counts the network blocks of a graph as they finish, into a progress bar while :meth:`shown`.

    The blocks report themselves (:meth:`advance`), so the count does not
    depend on how dask names or fuses the graph's tasks (a single-block graph
    is fused into one task under another name).
    """

    def __init__(self) -> None:
        self.total = 0
        self._bar: tqdm | None = None

    def advance(self) -> None:
        if self._bar is not None:
            self._bar.update(1)

    @contextmanager
    def shown(self, show: bool) -> Iterator[None]:
        """Run dask synchronously, showing a bar over the blocks if ``show``.

        Synchronous, because the network already uses every core, and
        computing one block at a time bounds the memory.
        """
        with (
            dask.config.set(scheduler="synchronous"),
            tqdm(total=self.total, desc="downscaling", unit="block", disable=not show) as bar,
        ):
            self._bar = bar
            try:
                yield
            finally:
                self._bar = None


def _training_sample_shape(meta: ModelMetadata) -> tuple[int, int]:
    """(rows, cols) in coarse cells of the samples the model was trained on: its patches, else its whole grid."""
    data = meta.config.get("data")
    patch = data.get("patch_size") if isinstance(data, Mapping) else None
    if patch:
        return int(patch[0]) // meta.scale, int(patch[1]) // meta.scale
    return meta.coarse_grid.shape


def _check_inputs(ds: xr.Dataset, meta: ModelMetadata) -> None:
    try:
        check_variables(ds, [VariableSpec.parse(name).variable for name in meta.input_variables], role="coarse input")
    except DataError as error:
        raise DataError(
            f"{error} The model was trained on {list(meta.input_variables)}; if a variable of the input stands for "
            f"one of those, map it with rename={{'name_in_input': '{meta.input_variables[0]}'}} "
            f"(CLI: --rename NAME_IN_INPUT={meta.input_variables[0]})."
        ) from None


def _in_model_units(ds: xr.Dataset, meta: ModelMetadata) -> xr.Dataset:
    """The input variables converted to the units the model was trained on (each conversion logged).

    Input without units for a model that has them is an error; a model
    without units (trained on data that had none) takes the input as it is, with a warning.
    """
    converted = {}
    for name in meta.input_variables:
        expected = meta.attrs.get(name, {}).get("units")
        if expected is None:
            if units.units_of(ds[name]) is not None:
                logger.warning(
                    "the model records no units for %r; the input's %r is taken as it is",
                    name,
                    units.units_of(ds[name]),
                )
            converted[name] = ds[name]
            continue
        converted[name], _ = units.conform(
            ds[name],
            expected,
            what=f"the input variable {name!r}",
            reference="the model's training data",
            names=(name, name),
        )
    return ds.assign(converted)


def _input_grid(source: Grid, meta: ModelMetadata, domain_bound: bool, regrid: bool) -> tuple[Grid, bool]:
    """The coarse grid the network will run on for input given on ``source``, and whether it may reach past the input's centres.

    A ``domain_bound`` model (static fields or localized layers) runs only on
    its training grid or a window of it; others on any grid of the same
    spacing. Input on the grid of the coarse data a MOS model was trained on
    (its ``resampling`` grid, or one of the same spacing covering the model's
    domain) is regridded onto the training grid as in training, without ``regrid``.
    """
    model_grid = meta.coarse_grid
    if source.window_in(model_grid) is not None:
        return source, False
    model_spacing = np.array(model_grid.spacing)
    source_spacing = np.array(source.spacing)
    if not domain_bound and np.allclose(source_spacing, model_spacing, atol=GRID_TOLERANCE):
        return source, False
    if meta.resampling is not None and np.allclose(source_spacing, meta.resampling.grid.spacing, atol=GRID_TOLERANCE):
        domain = meta.domain_grid
        if domain.cells_inside(source.extent()) != (slice(0, domain.shape[0]), slice(0, domain.shape[1])):
            raise DataError(
                f"the input ({source.describe()}) is on the grid of the model's training data but does not cover the "
                f"model's domain ({domain.describe()}); give input over that domain"
            )
        return model_grid, True
    if not regrid:
        fine_spacing = np.array(meta.fine_grid.spacing)
        hint = ""
        if np.allclose(source_spacing, fine_spacing, atol=GRID_TOLERANCE):
            hint = f" It has the model's output resolution: the model expects coarse input, at {meta.scale} times that spacing."
        where = "or a window of it " if domain_bound else ""
        raise DataError(
            f"the input grid ({source.describe()}, spacing {source_spacing[0]:g} x {source_spacing[1]:g} degrees) is not "
            f"the model's coarse grid {where}({model_grid.describe()}, spacing {model_spacing[0]:g} x {model_spacing[1]:g} "
            f"degrees, scale {meta.scale}).{hint} Pass regrid=True (CLI: --regrid) to interpolate the input onto it."
        )
    axes = []
    for values, model_values, step in (
        (source.lat, model_grid.lat, model_spacing[0]),
        (source.lon, model_grid.lon, model_spacing[1]),
    ):
        first = math.ceil((values.min() - model_values[0]) / step - GRID_TOLERANCE)
        last = math.floor((values.max() - model_values[0]) / step + GRID_TOLERANCE)
        if domain_bound:
            first, last = max(first, 0), min(last, len(model_values) - 1)
        axes.append(model_values[0] + step * np.arange(first, last + 1))
    if len(axes[0]) < 1 or len(axes[1]) < 1:
        raise DataError(
            f"the input ({source.describe()}) does not overlap the model's domain ({model_grid.describe()}); "
            "give input covering that domain"
        )
    return Grid(axes[0], axes[1]), False


def _domain_window(grid: Grid, meta: ModelMetadata) -> tuple[slice, slice] | None:
    """The fine cells of the network's output on ``grid`` that lie in the model's domain, when it has padding to cut."""
    if meta.padding == NO_PADDING or grid.window_in(meta.coarse_grid) is None:
        return None
    window = grid.refine(meta.scale).cells_within(meta.domain_grid)
    if window is None:
        raise DataError(
            f"the input ({grid.describe()}) covers only the padding of the model's domain ({meta.domain_grid.describe()}); "
            "give input over that domain"
        )
    return window
