"""Applying a trained model to coarse data with any extra dimensions."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from datetime import datetime, timezone

import numpy as np
import torch
import xarray as xr
from tqdm.auto import tqdm

from dl4ds import __version__
from dl4ds.checkpoint import load_model
from dl4ds.data.fields import as_dataset, check_variables
from dl4ds.data.grid import GRID_TOLERANCE, Grid, align_longitudes, latitude_descending, standardize
from dl4ds.data.regrid import regrid as regrid_field
from dl4ds.errors import ConfigError, DataError
from dl4ds.model import DownscalingModel, ModelMetadata
from dl4ds.seeding import seeded


def downscale(
    model: DownscalingModel | str | os.PathLike[str],
    coarse: xr.Dataset | xr.DataArray,
    *,
    rename: Mapping[str, str] | None = None,
    regrid: bool = False,
    batch_size: int = 64,
    device: str = "cpu",
    samples: int = 1,
    seed: int | None = None,
    progress: bool = False,
) -> xr.Dataset:
    """Downscale ``coarse`` with ``model`` and return the high-resolution fields.

    Args:
        model: a trained model or the path of its checkpoint.
        coarse: the model's input variables (see ``model.metadata.input_variables``)
            with dims (..., lat, lon); any other dims (time, member, lead time...)
            and their coordinates are carried through. A spatio-temporal model
            runs over every window of ``metadata.time_window`` consecutive
            steps along ``time`` (which it needs) and averages the predictions
            of the windows that overlap at each step. Coordinate names
            lat/latitude, lon/longitude and time/valid_time are accepted, with
            latitude in either order (the output keeps the input's order).
        rename: maps variable names in ``coarse`` to the model's names, e.g.
            ``{"ts": "t2m"}`` to feed surface temperature to a 2 m temperature model.
        regrid: interpolate (bilinearly) input that is not on the model's coarse
            grid onto it. Without it such input is an error.
        batch_size: samples per forward pass.
        device: torch device for the network.
        samples: for a stochastic model (``noise_channels`` or Monte-Carlo
            dropout), the number of ensemble members drawn per input; they
            form a leading ``sample`` dimension of the output. 1 gives one draw
            and no extra dimension.
        seed: seeds the draws, so the same seed gives the same samples (the
            global random state is left as it was); None draws from torch's
            global generator.
        progress: show a progress bar.

    Returns:
        A Dataset with one variable per model target, dims (..., lat, lon) on
        the fine grid (the coarse grid refined by ``scale``), CF attributes,
        and NaN where the input was NaN or where the model had no training truth.
    """
    if not isinstance(model, DownscalingModel):
        model = load_model(model)
    meta = model.metadata
    if samples < 1:
        raise ConfigError(f"samples={samples} must be at least 1")
    if samples > 1 and not model.stochastic:
        raise ConfigError(
            f"samples={samples} asks for an ensemble, but the model {meta.architecture!r} is deterministic and would "
            "repeat one field; train it with noise_channels (e.g. trainer cgan) or mc_dropout, or use samples=1"
        )
    ds = as_dataset(coarse, role="coarse input")
    if rename:
        unknown = [name for name in rename if name not in ds.variables]
        if unknown:
            raise DataError(f"cannot rename {unknown}: no such variables in the input (it has {sorted(map(str, ds.data_vars))})")
        ds = ds.rename(dict(rename))
    _check_inputs(ds, meta)
    descending = latitude_descending(ds[meta.input_variables[0]])
    ds = align_longitudes(standardize(ds[list(meta.input_variables)], require_time=False), meta.coarse_grid.lon)
    grid = _input_grid(Grid.of(ds), meta, model.domain_bound, regrid)
    field = ds.to_dataarray(dim="channel").astype(np.float32)
    field = regrid_field(field, grid, role="coarse input")
    input_dims = [d for d in field.dims if d not in ("channel", "lat", "lon")]
    extra_dims = input_dims
    if model.temporal:
        if "time" not in input_dims:
            raise DataError(
                f"the spatio-temporal model {meta.architecture!r} runs over windows of {meta.time_window} time steps, "
                f"but the input has no time dimension (dims {list(field.dims)})"
            )
        extra_dims = [d for d in input_dims if d != "time"] + ["time"]
    field = field.transpose(*extra_dims, "channel", "lat", "lon")

    samples_shape = (-1, field.sizes["time"]) if model.temporal else (-1,)
    values = field.values.reshape(*samples_shape, *field.shape[-3:])
    with seeded(seed, torch.device(device)):
        draws = [_predict(model, values, grid, batch_size, torch.device(device), progress) for _ in range(samples)]
    fine_grid = grid.refine(meta.scale)
    shape = (*field.shape[:-3], len(meta.target_variables), *fine_grid.shape)
    if samples > 1:
        fine_values = np.stack([draw.reshape(shape) for draw in draws])
        field = field.expand_dims(sample=np.arange(samples))
        extra_dims, input_dims = ["sample", *extra_dims], ["sample", *input_dims]
    else:
        fine_values = draws[0].reshape(shape)
    output = _to_dataset(fine_values, field, extra_dims, fine_grid, meta).transpose(*input_dims, "lat", "lon")
    if descending:
        output = output.isel(lat=slice(None, None, -1))
    return output


def _check_inputs(ds: xr.Dataset, meta: ModelMetadata) -> None:
    try:
        check_variables(ds, meta.input_variables, role="coarse input")
    except DataError as error:
        raise DataError(
            f"{error} The model was trained on {list(meta.input_variables)}; if a variable of the input stands for "
            f"one of those, map it with rename={{'name_in_input': '{meta.input_variables[0]}'}} "
            f"(CLI: --rename NAME_IN_INPUT={meta.input_variables[0]})."
        ) from None
    for name in meta.input_variables:
        expected = meta.attrs.get(name, {}).get("units")
        found = ds[name].attrs.get("units")
        if expected and found and str(found) != expected:
            raise DataError(
                f"the input variable {name!r} is in {found!r} but the model was trained on {expected!r}; "
                "convert the input to the training units first"
            )


def _input_grid(source: Grid, meta: ModelMetadata, domain_bound: bool, regrid: bool) -> Grid:
    """The coarse grid the network will run on for input given on ``source``.

    A ``domain_bound`` model (static fields or localized layers) runs only on
    its training grid or a window of it; others on any grid of the same spacing.
    """
    model_grid = meta.coarse_grid
    if source.window_in(model_grid) is not None:
        return source
    model_spacing = np.array(model_grid.spacing)
    source_spacing = np.array(source.spacing)
    if not domain_bound and np.allclose(source_spacing, model_spacing, atol=GRID_TOLERANCE):
        return source
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
    for values, model_values, step in ((source.lat, model_grid.lat, model_spacing[0]), (source.lon, model_grid.lon, model_spacing[1])):
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
    return Grid(axes[0], axes[1])


@torch.no_grad()
def _predict(
    model: DownscalingModel, values: np.ndarray, grid: Grid, batch_size: int, device: torch.device, progress: bool
) -> np.ndarray:
    """Run the network on inputs in physical units; returns fine fields in physical units.

    Spatial models map (N, C, h, w) to (N, V, h*s, w*s). Spatio-temporal models
    map N sequences (N, T, C, h, w) to (N, T, V, h*s, w*s): every window of
    ``time_window`` steps is predicted, and each step gets the mean of the
    windows that contain it.
    """
    meta = model.metadata
    scale = meta.scale
    window = grid.window_in(meta.coarse_grid)
    fine_window = None if window is None else tuple(slice(w.start * scale, w.stop * scale) for w in window)
    static = model.static[:, fine_window[0], fine_window[1]].to(device) if (model.has_static and fine_window) else None
    offset = None if fine_window is None else torch.tensor([[fine_window[0].start, fine_window[1].start]], device=device)
    model = model.to(device).eval()

    def run(chunk: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(meta.normalizer.normalize_inputs(chunk)).to(device)
        batch = x.shape[0]
        prediction = model(
            x,
            None if static is None else static.unsqueeze(0).expand(batch, -1, -1, -1),
            None if offset is None else offset.expand(batch, -1),
        )
        return meta.normalizer.target.denormalize(prediction.cpu().numpy(), axis=-3)

    n_targets = len(meta.target_variables)
    fine_shape = (n_targets, values.shape[-2] * scale, values.shape[-1] * scale)
    if model.temporal:
        output = _predict_windows(run, values, meta.time_window or 1, fine_shape, batch_size, progress)
    else:
        output = np.empty((values.shape[0], *fine_shape), dtype=np.float32)
        for start in tqdm(range(0, values.shape[0], batch_size), desc="downscaling", unit="batch", disable=not progress):
            output[start : start + batch_size] = run(values[start : start + batch_size])
    missing = np.isnan(values[..., :n_targets, :, :]).repeat(scale, axis=-2).repeat(scale, axis=-1)
    output[missing] = np.nan
    if fine_window is not None:
        output[..., model.no_truth[:, fine_window[0], fine_window[1]].numpy()] = np.nan
    return output


def _predict_windows(
    run: Callable[[np.ndarray], np.ndarray], sequences: np.ndarray, window: int, fine_shape: tuple[int, int, int],
    batch_size: int, progress: bool,
) -> np.ndarray:
    """Average ``run`` over every window of ``window`` steps of (N, T, C, h, w) sequences -> (N, T, *fine_shape)."""
    n_sequences, steps = sequences.shape[:2]
    if steps < window:
        raise DataError(
            f"the spatio-temporal model takes windows of {window} consecutive time steps, but the input has only {steps}; "
            f"give at least {window} time steps"
        )
    starts = [(sequence, step) for sequence in range(n_sequences) for step in range(steps - window + 1)]
    total = np.zeros((n_sequences, steps, *fine_shape), dtype=np.float32)
    for first in tqdm(range(0, len(starts), batch_size), desc="downscaling", unit="batch", disable=not progress):
        batch = starts[first : first + batch_size]
        predictions = run(np.stack([sequences[sequence, step : step + window] for sequence, step in batch]))
        for (sequence, step), prediction in zip(batch, predictions):
            total[sequence, step : step + window] += prediction
    counts = np.convolve(np.ones(steps - window + 1), np.ones(window))  # windows covering each step
    return total / counts.astype(np.float32)[None, :, None, None, None]


def _to_dataset(
    values: np.ndarray, field: xr.DataArray, extra_dims: list[str], fine_grid: Grid, meta: ModelMetadata
) -> xr.Dataset:
    coords: dict[str, xr.DataArray] = {
        name: coord.variable
        for name, coord in field.coords.items()
        if name not in ("channel", "lat", "lon") and set(coord.dims) <= set(extra_dims)
    }
    coords |= fine_grid.coords()
    if "time" in coords:
        coords["time"] = coords["time"].copy()
        coords["time"].attrs = {"standard_name": "time", "long_name": "time", "axis": "T"}
    variables = {}
    for index, name in enumerate(meta.target_variables):
        data = values[..., index, :, :]
        attrs = dict(meta.attrs.get(name, {}))
        attrs["comment"] = f"downscaled x{meta.scale} by dl4ds {meta.architecture}"
        variables[name] = xr.DataArray(data, dims=(*extra_dims, "lat", "lon"), coords=coords, attrs=attrs)
    history = f"{datetime.now(timezone.utc):%Y-%m-%dT%H:%M:%SZ} downscaled x{meta.scale} with dl4ds {__version__} ({meta.architecture})"
    return xr.Dataset(
        variables,
        attrs={
            "Conventions": "CF-1.8",
            "title": f"{', '.join(meta.target_variables)} downscaled x{meta.scale} with dl4ds",
            "source": f"dl4ds {__version__}, network {meta.architecture}",
            "history": history,
        },
    )
