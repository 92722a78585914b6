"""The baseline ladder applied to a coarse hindcast member by member: reference forecasts for the hindcast verification.

Each baseline of :mod:`dl4ds.baselines` downscales :class:`~dl4ds.data.PairedData`;
here the samples are the (start, lead) forecasts of one member of the coarse
hindcast, so every member is downscaled on its own, as a downscaling
network does it. Baselines that learn (``lapse_rate``, ``bcsd``,
``regression``) are fitted on the training pairs of the experiment the
downscaled hindcast was made with; the interpolation baselines need only
the fine grid, the one of the downscaled hindcast.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import xarray as xr

from dl4ds.baselines import BaselineOptions
from dl4ds.data import units
from dl4ds.data.grid import Grid
from dl4ds.data.hindcast import Hindcast
from dl4ds.data.pairing import PairedData, choose_scale
from dl4ds.data.regrid import regrid
from dl4ds.errors import DataError
from dl4ds.evaluation.pipeline import build_baselines

logger = logging.getLogger(__name__)

__all__ = ["baseline_hindcasts"]


def baseline_hindcasts(
    names: Sequence[str],
    coarse: xr.DataArray | xr.Dataset,
    fine: Hindcast,
    *,
    train: PairedData | None = None,
    options: BaselineOptions | None = None,
    variable: str | None = None,
) -> dict[str, xr.DataArray]:
    """Each named baseline's downscaling of the coarse hindcast, on the grid of ``fine``, dims (init, member, lead, lat, lon).

    Args:
        names: baseline names (see :func:`dl4ds.baselines.list_baselines`).
        coarse: the coarse hindcast the downscaled one ``fine`` was made from.
        fine: the downscaled hindcast, whose grid, starts, members and leads the results take.
        train: the training pairs the learning baselines are fitted on (and
            whose grids and scale all baselines use); without them only the
            interpolation baselines can run, at the scale of the two grids.
        options: the baselines' options.
        variable: the variable of ``coarse`` if it holds several.

    Raises:
        DataError: a learning baseline without ``train``; a coarse hindcast of
            other starts, members or leads than ``fine``; grids that do not
            nest; a model with inputs other than the coarse variable.
    """
    built = build_baselines(names, options)
    learning = [name for name, baseline in built.items() if baseline.requires_fit]
    if learning and train is None:
        raise DataError(
            f"the baselines {learning} learn from training data; give the checkpoint of the model the hindcast was "
            "downscaled with (CLI: --checkpoint, or the experiment YAML with --config), whose training period they are fitted on, or choose "
            "interpolation baselines (nearest, bilinear, bicubic, conservative)."
        )
    source = Hindcast.of(
        coarse, variable=variable or (str(fine.data.name) if fine.data.name else None), role="coarse hindcast"
    )
    for dim in ("init", "member", "lead"):
        if not np.array_equal(source.data[dim].values, fine.data[dim].values):
            raise DataError(
                f"the coarse hindcast has other {dim} values than the downscaled one; give the coarse hindcast the "
                "downscaled one was made from (the same starts, members and leads)."
            )
    layout = _layout(source, fine, train)
    for name, baseline in built.items():
        reason = baseline.unavailable(layout)
        if reason is not None:
            raise DataError(f"the {name} baseline cannot run on these data: {reason}")
        if train is not None:
            logger.info("fitting the %s baseline on %d training time steps", name, train.target.sizes["time"])
        baseline.fit(train if train is not None else layout)
    results: dict[str, list[np.ndarray]] = {name: [] for name in built}
    data = fine.data
    for member in range(source.data.sizes["member"]):
        pairs = _member_pairs(source, member, layout)
        for name, baseline in built.items():
            predicted = baseline.predict(pairs)[layout.target_variables[0]]
            window = Grid.of(predicted).window_in(fine.grid)
            if window is None:
                window = fine.grid.window_in(Grid.of(predicted))
                if window is None:
                    raise DataError(
                        f"the {name} baseline downscales onto {Grid.of(predicted).describe()}, which does not contain "
                        f"the downscaled hindcast's grid ({fine.grid.describe()}); give the checkpoint of the model "
                        "it was made with (CLI: --checkpoint)."
                    )
                predicted = predicted.isel(lat=window[0], lon=window[1])
            results[name].append(predicted.values.reshape(data.sizes["init"], data.sizes["lead"], *fine.grid.shape))
    return {
        name: xr.DataArray(
            np.stack(values, axis=1),
            dims=("init", "member", "lead", "lat", "lon"),
            coords={dim: data[dim] for dim in ("init", "member", "lead", "lat", "lon")},
            name=data.name,
            attrs={**data.attrs, "units": units.units_of(source.data) or ""},
        ).assign_coords(valid_time=(("init", "lead"), fine.valid_time))
        for name, values in results.items()
    }


def _layout(source: Hindcast, fine: Hindcast, train: PairedData | None) -> PairedData:
    """Pairs without samples that give the baselines their scale, grids, variables and static fields."""
    name = str(source.data.name or "variable")
    if train is not None:
        if train.input_variables != train.target_variables or train.target_variables != (name,):
            raise DataError(
                f"the model was trained on inputs {list(train.input_variables)} for targets {list(train.target_variables)}; "
                f"baselines on a hindcast of {name!r} need a model whose only input is the coarse {name!r}."
            )
        return train
    fine_grid, coarse_grid = fine.grid, source.grid
    scale = choose_scale(fine_grid, coarse_grid)
    if not all(size % scale == 0 for size in fine_grid.shape):
        raise DataError(
            f"the downscaled grid ({fine_grid.describe()}) is not a multiple of the scale {scale} of the coarse grid "
            f"({coarse_grid.describe()}); give the checkpoint of the model (CLI: --checkpoint) for its grids."
        )
    network = fine_grid.coarsen(scale)
    empty = np.broadcast_to(np.float32(np.nan), (0, 1, *network.shape))
    inputs = xr.DataArray(
        empty, dims=("time", "channel", "lat", "lon"), coords={"time": [], "channel": [name], **network.coords()}
    )
    target = xr.DataArray(
        np.broadcast_to(np.float32(np.nan), (0, 1, *fine_grid.shape)),
        dims=("time", "variable", "lat", "lon"),
        coords={"time": [], "variable": [name], **fine_grid.coords()},
    )
    attrs = {
        name: {
            key: str(value)
            for key, value in source.data.attrs.items()
            if key in ("units", "standard_name", "long_name")
        }
    }
    return PairedData(inputs, target, None, scale, (name,), attrs)


def _member_pairs(source: Hindcast, member: int, layout: PairedData) -> PairedData:
    """The (start, lead) forecasts of one member as pairs of ``layout``'s layout (the target holds no values)."""
    name = layout.input_variables[0]
    field = source.data.isel(member=member).stack(sample=("init", "lead")).transpose("sample", "lat", "lon")
    wanted = layout.attrs.get(name, {}).get("units")
    field, _ = units.conform(
        field.load(),
        wanted,
        what="the coarse hindcast",
        reference="the training data",
        names=(name, name),
    )
    field = regrid(field.drop_vars(["sample", "init", "lead"]), layout.coarse_grid, role="coarse hindcast")
    count = field.sizes["sample"]
    times = np.arange(count)
    inputs = xr.DataArray(
        field.values.astype(np.float32)[:, None],
        dims=("time", "channel", "lat", "lon"),
        coords={"time": times, "channel": [name], **layout.coarse_grid.coords()},
    )
    target = xr.DataArray(
        np.broadcast_to(np.float32(np.nan), (count, 1, *layout.fine_grid.shape)),
        dims=("time", "variable", "lat", "lon"),
        coords={"time": times, "variable": [name], **layout.fine_grid.coords()},
    )
    static = layout.static
    return PairedData(inputs, target, static, layout.scale, (name,), layout.attrs, padding=layout.padding)
