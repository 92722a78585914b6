"""Applying a trained model to coarse data with any extra dimensions."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
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
from dl4ds.errors import DataError
from dl4ds.model import DownscalingModel, ModelMetadata


def downscale(
    model: DownscalingModel | str | os.PathLike[str],
    coarse: xr.Dataset | xr.DataArray,
    *,
    rename: Mapping[str, str] | None = None,
    regrid: bool = False,
    batch_size: int = 64,
    device: str = "cpu",
    progress: bool = False,
) -> xr.Dataset:
    """Downscale ``coarse`` with ``model`` and return the high-resolution fields.

    Args:
        model: a trained model or the path of its checkpoint.
        coarse: the model's input variables (see ``model.metadata.input_variables``)
            with dims (..., lat, lon); any other dims (time, member, lead time...)
            and their coordinates are carried through. Coordinate names
            lat/latitude, lon/longitude and time/valid_time are accepted, with
            latitude in either order (the output keeps the input's order).
        rename: maps variable names in ``coarse`` to the model's names, e.g.
            ``{"ts": "t2m"}`` to feed surface temperature to a 2 m temperature model.
        regrid: interpolate (bilinearly) input that is not on the model's coarse
            grid onto it. Without it such input is an error.
        batch_size: samples per forward pass.
        device: torch device for the network.
        progress: show a progress bar.

    Returns:
        A Dataset with one variable per model target, dims (..., lat, lon) on
        the fine grid (the coarse grid refined by ``scale``), CF attributes,
        and NaN where the input was NaN or where the model had no training truth.
    """
    if not isinstance(model, DownscalingModel):
        model = load_model(model)
    meta = model.metadata
    ds = as_dataset(coarse, role="coarse input")
    if rename:
        unknown = [name for name in rename if name not in ds.variables]
        if unknown:
            raise DataError(f"cannot rename {unknown}: no such variables in the input (it has {sorted(map(str, ds.data_vars))})")
        ds = ds.rename(dict(rename))
    _check_inputs(ds, meta)
    descending = latitude_descending(ds[meta.input_variables[0]])
    ds = align_longitudes(standardize(ds[list(meta.input_variables)], require_time=False), meta.coarse_grid.lon)
    grid = _input_grid(Grid.of(ds), meta, model.has_static, regrid)
    field = ds.to_dataarray(dim="channel").astype(np.float32)
    field = regrid_field(field, grid, role="coarse input")
    extra_dims = [d for d in field.dims if d not in ("channel", "lat", "lon")]
    field = field.transpose(*extra_dims, "channel", "lat", "lon")

    values = field.values.reshape(-1, *field.shape[-3:])
    fine_values = _predict(model, values, grid, batch_size, torch.device(device), progress)
    fine_grid = grid.refine(meta.scale)
    fine_values = fine_values.reshape(*field.shape[:-3], len(meta.target_variables), *fine_grid.shape)
    output = _to_dataset(fine_values, field, extra_dims, fine_grid, meta)
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


def _input_grid(source: Grid, meta: ModelMetadata, has_static: bool, regrid: bool) -> Grid:
    """The coarse grid the network will run on for input given on ``source``."""
    model_grid = meta.coarse_grid
    if source.window_in(model_grid) is not None:
        return source
    model_spacing = np.array(model_grid.spacing)
    source_spacing = np.array(source.spacing)
    if not has_static and np.allclose(source_spacing, model_spacing, atol=GRID_TOLERANCE):
        return source
    if not regrid:
        fine_spacing = np.array(meta.fine_grid.spacing)
        hint = ""
        if np.allclose(source_spacing, fine_spacing, atol=GRID_TOLERANCE):
            hint = f" It has the model's output resolution: the model expects coarse input, at {meta.scale} times that spacing."
        where = "or a window of it " if has_static else ""
        raise DataError(
            f"the input grid ({source.describe()}, spacing {source_spacing[0]:g} x {source_spacing[1]:g} degrees) is not "
            f"the model's coarse grid {where}({model_grid.describe()}, spacing {model_spacing[0]:g} x {model_spacing[1]:g} "
            f"degrees, scale {meta.scale}).{hint} Pass regrid=True (CLI: --regrid) to interpolate the input onto it."
        )
    axes = []
    for values, model_values, step in ((source.lat, model_grid.lat, model_spacing[0]), (source.lon, model_grid.lon, model_spacing[1])):
        first = math.ceil((values.min() - model_values[0]) / step - GRID_TOLERANCE)
        last = math.floor((values.max() - model_values[0]) / step + GRID_TOLERANCE)
        if has_static:
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
    """Run the network on (N, C, h, w) inputs in physical units; returns (N, V, h*s, w*s) in physical units."""
    meta = model.metadata
    scale = meta.scale
    window = grid.window_in(meta.coarse_grid)
    fine_window = None if window is None else tuple(slice(w.start * scale, w.stop * scale) for w in window)
    static = model.static[:, fine_window[0], fine_window[1]] if (model.has_static and fine_window) else None
    no_truth = model.no_truth[:, fine_window[0], fine_window[1]].numpy() if fine_window else None
    model = model.to(device).eval()
    n_targets = len(meta.target_variables)
    output = np.empty((values.shape[0], n_targets, values.shape[-2] * scale, values.shape[-1] * scale), dtype=np.float32)
    starts = range(0, values.shape[0], batch_size)
    for start in tqdm(starts, desc="downscaling", unit="batch", disable=not progress):
        chunk = values[start : start + batch_size]
        x = torch.from_numpy(meta.normalizer.normalize_inputs(chunk)).to(device)
        batch_static = None if static is None else static.to(device).unsqueeze(0).expand(x.shape[0], -1, -1, -1)
        prediction = model(x, batch_static).cpu().numpy()
        prediction = meta.normalizer.target.denormalize(prediction, axis=1)
        missing = np.isnan(chunk[:, :n_targets]).repeat(scale, axis=-2).repeat(scale, axis=-1)
        prediction[missing] = np.nan
        if no_truth is not None:
            prediction[:, no_truth] = np.nan
        output[start : start + len(chunk)] = prediction
    return output


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
