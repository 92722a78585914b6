"""Pairing coarse inputs with high-resolution targets.

Two strategies, as in DL4DS:

- :class:`PerfectProg`: only high-resolution data is given; the coarse input is
  its ``scale`` x ``scale`` block average.
- :class:`MOS`: explicit coarse data (e.g. a reanalysis at 1 degree or a model
  run), matched with the target by time. Coarse data that is not on the grid
  aligned with the target (``scale`` x target spacing) is regridded onto it.

Both produce a :class:`PairedData`, which keeps xarray coordinates throughout.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import xarray as xr

from dl4ds.data.fields import block_average, crop_to_multiple, select_field, variable_attributes
from dl4ds.data.grid import Grid, align_longitudes
from dl4ds.data.regrid import RegridMethod, regrid
from dl4ds.errors import ConfigError, DataError
from dl4ds.utils.options import check_scale

logger = logging.getLogger(__name__)

XarrayInput = xr.Dataset | xr.DataArray


@dataclass(frozen=True)
class PairedData:
    """Coarse inputs and high-resolution targets on aligned grids, in physical units.

    Attributes:
        inputs: (time, channel, lat, lon) on the coarse grid. The first
            ``n_targets`` channels are the coarse versions of the targets, the
            rest are predictors.
        target: (time, variable, lat, lon) on the fine grid, which is the coarse
            grid refined by ``scale``. NaN marks cells without truth.
        static: (channel, lat, lon) on the fine grid, or None.
        scale: integer ratio of coarse to fine grid spacing.
        input_variables: names of the input channels as found in the coarse
            data (for PerfectProg the target names).
        attrs: CF attributes (units, standard_name, long_name) of each target
            and input variable.
        notes: what was done to the data on the way (crops, regridding).
    """

    inputs: xr.DataArray
    target: xr.DataArray
    static: xr.DataArray | None
    scale: int
    input_variables: tuple[str, ...]
    attrs: Mapping[str, Mapping[str, str]]
    notes: tuple[str, ...] = field(default=())

    @property
    def target_variables(self) -> tuple[str, ...]:
        return tuple(str(v) for v in self.target["variable"].values)

    @property
    def static_variables(self) -> tuple[str, ...]:
        return () if self.static is None else tuple(str(v) for v in self.static["channel"].values)

    @property
    def fine_grid(self) -> Grid:
        return Grid.of(self.target)

    @property
    def coarse_grid(self) -> Grid:
        return Grid.of(self.inputs)

    @property
    def times(self) -> pd.Index:
        """The target's time coordinate: a DatetimeIndex, or a CFTimeIndex for non-standard calendars."""
        return self.target["time"].to_index()

    def input_dataset(self) -> xr.Dataset:
        """The coarse inputs as a Dataset of named (time, lat, lon) variables with their CF attributes, as a user holds them."""
        return xr.Dataset(
            {
                name: self.inputs.sel(channel=name, drop=True).assign_attrs(dict(self.attrs.get(name, {})))
                for name in self.input_variables
            }
        )

    def target_dataset(self) -> xr.Dataset:
        """The targets (the truth) as a Dataset of named (time, lat, lon) variables with their CF attributes."""
        return xr.Dataset(
            {
                name: self.target.sel(variable=name, drop=True).assign_attrs(dict(self.attrs.get(name, {})))
                for name in self.target_variables
            }
        )

    def select_time(self, start: str | None, end: str | None, *, role: str = "period") -> PairedData:
        """The samples between ``start`` and ``end`` (inclusive; a date includes its whole day)."""
        selection = {"time": slice(start, end)}
        target = self.target.sel(selection)
        if target.sizes["time"] == 0:
            first, last = self.times[0], self.times[-1]
            raise DataError(f"the {role} {start}..{end} contains no time step; the data runs from {first} to {last}")
        return replace(self, inputs=self.inputs.sel(selection), target=target)


def fine_static(
    static: XarrayInput | None, variables: Sequence[str] | None, fine: Grid
) -> tuple[xr.DataArray | None, dict[str, dict[str, str]], list[str]]:
    """Bring static fields onto the fine grid; returns (field, attrs, notes)."""
    if static is None:
        return None, {}, []
    field = select_field(static, variables, role="static", dims=("lat", "lon"))
    names = [str(v) for v in field["variable"].values]
    notes = []
    if fine.window_in(Grid.of(field)) is None:
        notes.append(f"interpolated static fields {names} onto the target grid")
    field = regrid(field, fine, role="static")
    field = field.rename(variable="channel")
    return field, variable_attributes(static, names, role="static"), notes


def _coarse_predictors(
    predictors: XarrayInput | None,
    variables: Sequence[str] | None,
    coarse: Grid,
    fine: Grid,
    scale: int,
    times: xr.DataArray,
) -> tuple[xr.DataArray | None, dict[str, dict[str, str]], list[str]]:
    """Bring predictors at any resolution onto the coarse grid at the target's times."""
    if predictors is None:
        return None, {}, []
    field = select_field(predictors, variables, role="predictor")
    names = [str(v) for v in field["variable"].values]
    missing = np.setdiff1d(times.values, field["time"].values)
    if missing.size:
        raise DataError(
            f"the predictors {names} lack {missing.size} of the target's time steps "
            f"(first missing: {pd.Timestamp(missing[0])}); provide predictors for every target time"
        )
    field = align_longitudes(field.sel(time=times.values), coarse.lon)
    window = fine.window_in(Grid.of(field))
    if window is not None:
        field = block_average(field.isel(lat=window[0], lon=window[1]), scale)
        note = f"block-averaged predictors {names} from the target grid to the coarse grid"
    else:
        note = f"interpolated predictors {names} onto the coarse grid"
    field = regrid(field, coarse, role="predictor")
    return field, variable_attributes(predictors, names, role="predictor"), [note]


def target_field(
    target: XarrayInput, variables: Sequence[str] | None, scale: int, crop: bool
) -> tuple[xr.DataArray, list[str]]:
    """The (time, variable, lat, lon) float32 target on a grid divisible by ``scale``, and notes on what was done.

    Coordinates are standardized and the grid checked to be regular; with
    ``crop`` it is cropped (centred) to a multiple of ``scale``, else a grid
    not divisible by it is refused. The values are not read, so a lazy
    (dask) target stays lazy: see :func:`check_target_values` for the checks
    that read them.
    """
    scale = check_scale(scale)
    field = select_field(target, variables, role="target")
    _ = Grid.of(field).spacing  # raises for irregular grids
    _check_coarse_cells(field.sizes["lat"], field.sizes["lon"], scale)
    notes = []
    if crop:
        field, report = crop_to_multiple(field, scale)
        if report:
            logger.warning(report)
            notes.append(report)
    elif field.sizes["lat"] % scale or field.sizes["lon"] % scale:
        raise DataError(
            f"the target grid is {field.sizes['lat']} x {field.sizes['lon']} cells, not divisible by scale "
            f"{scale}; enable cropping (crop=True, or `crop: true` in the config) or subset the data to a "
            "multiple of the scale"
        )
    return field, notes


def _check_coarse_cells(rows: int, cols: int, scale: int) -> None:
    """Raise DataError when a ``rows`` x ``cols`` target leaves fewer than 2 coarse cells per axis at ``scale``."""
    if min(rows, cols) // scale < 2:
        largest = min(rows, cols) // 2
        fix = f"Use a scale of at most {largest} (half the smaller side), or" if largest >= 2 else "Give"
        raise DataError(
            f"the target grid is {rows} x {cols} cells: scale {scale} leaves {rows // scale} x {cols // scale} coarse "
            f"cells, and dl4ds needs at least 2 per axis. {fix} a target covering a larger domain"
        )


def check_target_values(field: xr.DataArray) -> None:
    """Raise DataError when the target, or one of its variables, is entirely NaN."""
    valid = field.notnull()
    if not bool(valid.any()):
        raise DataError("the target data is entirely NaN; check the variable and the time range")
    all_nan = [str(v) for v in field["variable"].values if not bool(valid.sel(variable=v).any())]
    if all_nan:
        raise DataError(f"the target variable(s) {all_nan} are entirely NaN; check the data")


def _prepare_target(
    target: XarrayInput, variables: Sequence[str] | None, scale: int, crop: bool
) -> tuple[xr.DataArray, list[str]]:
    field, notes = target_field(target, variables, scale, crop)
    check_target_values(field)
    return field, notes


def _assemble(
    coarse_targets: xr.DataArray,
    target: xr.DataArray,
    input_names: list[str],
    target_source: XarrayInput,
    coarse_source: XarrayInput | None,
    predictors: tuple[XarrayInput | None, Sequence[str] | None],
    static: tuple[XarrayInput | None, Sequence[str] | None],
    scale: int,
    notes: list[str],
) -> PairedData:
    fine = Grid.of(target)
    coarse = Grid.of(coarse_targets)
    static_field, static_attrs, static_notes = fine_static(static[0], static[1], fine)
    predictor_field, predictor_attrs, predictor_notes = _coarse_predictors(
        predictors[0], predictors[1], coarse, fine, scale, target["time"]
    )
    for note in static_notes + predictor_notes:
        logger.info(note)
    channels = [coarse_targets.rename(variable="channel")]
    if predictor_field is not None:
        channels.append(predictor_field.rename(variable="channel"))
        input_names = input_names + [str(v) for v in predictor_field["variable"].values]
    inputs = xr.concat(channels, dim="channel", coords="minimal", compat="override")
    inputs = inputs.assign_coords(channel=input_names, lat=coarse.lat, lon=coarse.lon)
    target_names = [str(v) for v in target["variable"].values]
    attrs = variable_attributes(target_source, target_names, role="target")
    if coarse_source is not None:
        attrs |= variable_attributes(coarse_source, input_names[: len(target_names)], role="coarse")
    attrs |= predictor_attrs | static_attrs
    return PairedData(
        inputs=inputs,
        target=target,
        static=static_field,
        scale=scale,
        input_variables=tuple(input_names),
        attrs=attrs,
        notes=tuple(notes + static_notes + predictor_notes),
    )


def _crop_to_coverage(target: xr.DataArray, source: Grid, scale: int, notes: list[str]) -> tuple[xr.DataArray, Grid]:
    """Crop ``target`` to the coarse cells whose centres lie within ``source``'s span.

    Returns the cropped target and its coarse grid. Coarse data (a GCM, a
    reanalysis) often has no cell centre near the edges of the target domain;
    those edge cells are dropped rather than extrapolated.
    """
    coarse = Grid.of(target).coarsen(scale)
    window = coarse.cells_within(source)
    if window is None:
        raise DataError(
            f"the coarse data ({source.describe()}) does not overlap the target grid ({Grid.of(target).describe()}); "
            "pair data over the same region"
        )
    rows, cols = window
    if (rows.stop - rows.start, cols.stop - cols.start) == coarse.shape:
        return target, coarse
    cropped = target.isel(
        lat=slice(rows.start * scale, rows.stop * scale), lon=slice(cols.start * scale, cols.stop * scale)
    )
    notes.append(
        f"cropped the target grid to {Grid.of(cropped).describe()}, the part whose coarse cells lie within the "
        f"coarse data ({source.describe()})"
    )
    logger.warning(notes[-1])
    return cropped, Grid(coarse.lat[rows], coarse.lon[cols])


@dataclass(frozen=True)
class PerfectProg:
    """Coarse inputs made from the target by ``scale`` x ``scale`` block averaging.

    Args:
        scale: integer refinement factor (>= 2).
        crop: crop the target grid to a multiple of ``scale`` (centred) instead
            of raising an error.
    """

    scale: int
    crop: bool = True

    def pair(
        self,
        target: XarrayInput,
        *,
        variables: Sequence[str] | None = None,
        static: XarrayInput | None = None,
        static_variables: Sequence[str] | None = None,
        predictors: XarrayInput | None = None,
        predictor_variables: Sequence[str] | None = None,
    ) -> PairedData:
        """Pair ``target`` (dims time, lat, lon; any common coordinate names) with its block average."""
        field, notes = _prepare_target(target, variables, self.scale, self.crop)
        coarse_targets = block_average(field, self.scale)
        names = [str(v) for v in field["variable"].values]
        return _assemble(
            coarse_targets,
            field,
            names,
            target,
            None,
            (predictors, predictor_variables),
            (static, static_variables),
            self.scale,
            notes,
        )


@dataclass(frozen=True)
class MOS:
    """Explicit coarse data paired with the target by time (Model Output Statistics).

    Args:
        scale: integer ratio between the coarse grid the network sees and the
            target grid. Coarse data on another grid (not aligned, or a
            non-integer resolution ratio) is interpolated onto the target-aligned
            coarse grid with ``method``.
        crop: crop the target grid to a multiple of ``scale`` instead of raising.
        method: interpolation used for regridding the coarse data.
    """

    scale: int
    crop: bool = True
    method: RegridMethod = "linear"

    def pair(
        self,
        target: XarrayInput,
        coarse: XarrayInput,
        *,
        variables: Sequence[str] | None = None,
        coarse_variables: Sequence[str] | None = None,
        static: XarrayInput | None = None,
        static_variables: Sequence[str] | None = None,
        predictors: XarrayInput | None = None,
        predictor_variables: Sequence[str] | None = None,
    ) -> PairedData:
        """Pair ``target`` with ``coarse``; ``coarse_variables[i]`` is the coarse counterpart of ``variables[i]``."""
        field, notes = _prepare_target(target, variables, self.scale, self.crop)
        target_names = [str(v) for v in field["variable"].values]
        coarse_names = list(coarse_variables) if coarse_variables is not None else target_names
        if len(coarse_names) != len(target_names):
            raise ConfigError(
                f"{len(coarse_names)} coarse variables {coarse_names} for {len(target_names)} target variables "
                f"{target_names}; give one coarse variable per target variable, in the same order"
            )
        coarse_field = select_field(coarse, coarse_names, role="coarse")
        common = np.intersect1d(field["time"].values, coarse_field["time"].values)
        if common.size == 0:
            raise DataError(
                "the coarse and target data share no time step: coarse runs "
                f"{pd.Timestamp(coarse_field['time'].values.min())} to {pd.Timestamp(coarse_field['time'].values.max())}, "
                f"target {pd.Timestamp(field['time'].values.min())} to {pd.Timestamp(field['time'].values.max())}; "
                "pair data covering the same period"
            )
        if common.size < field.sizes["time"] or common.size < coarse_field.sizes["time"]:
            notes.append(f"kept the {common.size} time steps common to the coarse and target data")
            logger.info(notes[-1])
        field = field.sel(time=common)
        coarse_field = coarse_field.sel(time=common)
        coarse_field = align_longitudes(coarse_field, field["lon"].values)
        field, coarse_grid = _crop_to_coverage(field, Grid.of(coarse_field), self.scale, notes)
        if coarse_grid.window_in(Grid.of(coarse_field)) is None:
            notes.append(
                f"interpolated ({self.method}) the coarse data from {Grid.of(coarse_field).describe()} "
                f"onto the target-aligned coarse grid {coarse_grid.describe()}"
            )
            logger.info(notes[-1])
        coarse_field = regrid(coarse_field, coarse_grid, method=self.method, role="coarse")
        return _assemble(
            coarse_field,
            field,
            coarse_names,
            target,
            coarse,
            (predictors, predictor_variables),
            (static, static_variables),
            self.scale,
            notes,
        )
