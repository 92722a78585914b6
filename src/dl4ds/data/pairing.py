"""Pairing coarse inputs with high-resolution targets.

Two strategies, as in DL4DS:

- :class:`PerfectProg`: only high-resolution data is given; the coarse input is
  its ``scale`` x ``scale`` block average.
- :class:`MOS`: explicit coarse data (e.g. a reanalysis at 1.9 degree or a model
  run), matched with the target by time, at any ratio of coarse to fine spacing.

How the networks see any pair of grids (MOS)
    A network refines its input by an integer factor, the *scale*: by default
    the ratio of the coarse to the fine spacing rounded to the nearest integer
    (on the finer-spaced axis of the coarse data; 1.9 -> 0.5 degree gives 4,
    1.4 -> 0.5 gives 3, 0.44 -> 0.11 gives 4, N96 1.25 x 1.875 -> 0.25 gives 5).
    The target grid is padded (by fewer than ``scale`` cells before and after
    on each axis) to a multiple of the scale, and the network's coarse grid is
    the padded grid coarsened by the scale; the coarse data is regridded onto
    it (``method``: linear by default, or conservative), and taken as it is
    when it already lies on it. The padding is placed so that the network's
    coarse cells coincide with those of the coarse data where the ratio is an
    integer, and centred otherwise. Padded target cells are NaN, so the losses
    and scores skip them, and outputs are cut back to the target domain:
    nothing of the target is cropped, and no coarse cell is extrapolated
    beyond the cells of the data. Target cells whose centres lie outside the
    cells of the coarse data are dropped (and the crop reported).

Units are converted, not compared (:mod:`dl4ds.data.units`): the coarse
counterparts of the targets are converted to the targets' units, and a
missing or incompatible unit is an error naming both.

Both produce a :class:`PairedData`, which keeps xarray coordinates throughout.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from dl4ds.data import units
from dl4ds.data.fields import (
    block_average,
    crop_to_multiple,
    select_field,
    select_variables,
    variable_attributes,
)
from dl4ds.data.grid import Grid, align_longitudes
from dl4ds.data.regrid import RegridMethod, regrid
from dl4ds.errors import ConfigError, DataError
from dl4ds.utils.options import check_scale

logger = logging.getLogger(__name__)

XarrayInput = xr.Dataset | xr.DataArray
Padding = tuple[tuple[int, int], tuple[int, int]]
"""Fine cells added ((before, after) latitude, (before, after) longitude) around the target domain."""
NO_PADDING: Padding = ((0, 0), (0, 0))


@dataclass(frozen=True)
class Source:
    """Data to pair, the variables to take from it and how to bring it onto another grid.

    Attributes:
        data: a Dataset, or a named DataArray.
        variables: the variables to take (a level with ``ta@850hPa``); None takes every data variable.
        regrid: how to bring it onto the grid it is needed on (``linear``,
            ``nearest``, ``cubic`` or ``conservative``); None for the default there (``linear``).
    """

    data: XarrayInput
    variables: Sequence[str] | None = None
    regrid: RegridMethod | None = None


SourcesInput = XarrayInput | Source | Sequence[Source]


def as_sources(data: SourcesInput | None, variables: Sequence[str] | None = None) -> list[Source]:
    """``data`` as a list of :class:`Source` (``variables`` applies to bare data)."""
    if data is None:
        return []
    if isinstance(data, Source):
        return [data]
    if isinstance(data, xr.Dataset | xr.DataArray):
        return [Source(data, variables)]
    sources = list(data)
    if not all(isinstance(source, Source) for source in sources):
        raise ConfigError("several sources are given as a list of dl4ds.data.Source(data, variables, regrid)")
    return sources


@dataclass(frozen=True)
class Resampling:
    """How coarse data on its own grid was brought onto the network's coarse grid (MOS at any pair of grids).

    Attributes:
        grid: the coarse data's own grid.
        method: the regrid method (see :data:`~dl4ds.data.regrid.RegridMethod`).
    """

    grid: Grid
    method: RegridMethod

    def to_dict(self) -> dict[str, Any]:
        return {"grid": self.grid.to_dict(), "method": self.method}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Resampling:
        return cls(Grid.from_dict(data["grid"]), data["method"])


@dataclass(frozen=True)
class PairedData:
    """Coarse inputs and high-resolution targets on aligned grids, in physical units.

    Attributes:
        inputs: (time, channel, lat, lon) on the coarse grid. The first
            ``n_targets`` channels are the coarse versions of the targets, the
            rest are predictors.
        target: (time, variable, lat, lon) on the fine grid, which is the coarse
            grid refined by ``scale``. NaN marks cells without truth, such as
            the ``padding``.
        static: (channel, lat, lon) on the fine grid, or None.
        scale: integer ratio of coarse to fine grid spacing.
        input_variables: names of the input channels as found in the coarse
            data (for PerfectProg the target names).
        attrs: CF attributes (units, standard_name, long_name) of each target
            and input variable.
        notes: what was done to the data on the way (crops, regridding).
        padding: fine cells around the target domain that make the fine grid
            a multiple of the scale (MOS); NaN in the target, cut from outputs.
        resampling: how the coarse data was regridded onto the coarse grid
            (MOS with coarse data on another grid), None if it was not.
    """

    inputs: xr.DataArray
    target: xr.DataArray
    static: xr.DataArray | None
    scale: int
    input_variables: tuple[str, ...]
    attrs: Mapping[str, Mapping[str, str]]
    notes: tuple[str, ...] = field(default=())
    padding: Padding = NO_PADDING
    resampling: Resampling | None = None

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
    def domain(self) -> tuple[slice, slice]:
        """The (lat, lon) index slices of the fine grid that hold the target domain (all but the padding)."""
        return domain_slices(self.fine_grid.shape, self.padding)

    @property
    def domain_grid(self) -> Grid:
        """The target domain: the fine grid without its padding."""
        return unpadded(self.fine_grid, self.padding)

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
        """The targets (the truth) on the target domain, as a Dataset of named (time, lat, lon) variables with their CF attributes."""
        return self.in_domain(
            xr.Dataset(
                {
                    name: self.target.sel(variable=name, drop=True).assign_attrs(dict(self.attrs.get(name, {})))
                    for name in self.target_variables
                }
            )
        )

    def in_domain(self, fine: xr.Dataset) -> xr.Dataset:
        """``fine`` (on this fine grid) cut to the target domain, without the padding."""
        if self.padding == NO_PADDING:
            return fine
        rows, cols = self.domain
        return fine.isel(lat=rows, lon=cols)

    def select_time(self, start: str | None, end: str | None, *, role: str = "period") -> PairedData:
        """The samples between ``start`` and ``end`` (inclusive; a date includes its whole day)."""
        selection = {"time": slice(start, end)}
        target = self.target.sel(selection)
        if target.sizes["time"] == 0:
            first, last = self.times[0], self.times[-1]
            raise DataError(f"the {role} {start}..{end} contains no time step; the data runs from {first} to {last}")
        return replace(self, inputs=self.inputs.sel(selection), target=target)

    def take(self, positions: Sequence[int] | np.ndarray) -> PairedData:
        """The samples at ``positions`` along time (e.g. those of some start years, see :mod:`dl4ds.data.hindcast_pairing`)."""
        return replace(self, inputs=self.inputs.isel(time=positions), target=self.target.isel(time=positions))


def domain_slices(shape: tuple[int, int], padding: Padding) -> tuple[slice, slice]:
    """The index slices of a padded fine grid of ``shape`` that hold the unpadded domain."""
    (top, bottom), (left, right) = padding
    return slice(top, shape[0] - bottom), slice(left, shape[1] - right)


def unpadded(fine: Grid, padding: Padding) -> Grid:
    """The domain of a padded fine grid: ``fine`` without its ``padding``."""
    rows, cols = domain_slices(fine.shape, padding)
    return Grid(fine.lat[rows], fine.lon[cols])


def choose_scale(fine: Grid, coarse: Grid) -> int:
    """The integer refinement factor for coarse data on ``coarse`` and targets on ``fine``.

    The ratio of their spacings rounded to the nearest integer, on the axis
    where the coarse data is finer relative to the target (so no coarse
    information is lost on either axis), at least 2.

    Raises:
        DataError: the coarse data is not coarser than the target (ratio below 1.5).
    """
    ratios = [abs(c) / abs(f) for c, f in zip(coarse.spacing, fine.spacing)]
    ratio = min(ratios)
    if ratio < 1.5:
        raise DataError(
            f"the coarse data (spacing {coarse.spacing[0]:g} x {coarse.spacing[1]:g} degrees) is not coarser than the "
            f"target ({fine.spacing[0]:g} x {fine.spacing[1]:g} degrees), so there is nothing to downscale; check which "
            "data is the coarse input and which the target"
        )
    return max(2, math.floor(ratio + 0.5))


def _axis_padding(fine: np.ndarray, coarse: np.ndarray, scale: int) -> tuple[int, int]:
    """(before, after) fine cells that make ``fine`` a multiple of ``scale``, aligned with ``coarse`` if they can be."""
    step, coarse_step = fine[1] - fine[0], coarse[1] - coarse[0]
    before = ((-len(fine)) % scale) // 2
    if abs(coarse_step - scale * step) <= 1e-3 * abs(step):
        # the coarse cell k of the padded grid is centred at fine[0] + (k * scale - before + (scale - 1) / 2) * step
        shift = (scale - 1) / 2 - (coarse[0] - fine[0]) / step
        if abs(shift - round(shift)) < 1e-3:
            before = round(shift) % scale
    return before, (-(len(fine) + before)) % scale


def pad_target(field: xr.DataArray, padding: Padding, fine: Grid) -> xr.DataArray:
    """``field`` (..., lat, lon) on its domain, with NaN cells added by ``padding``, on the padded grid ``fine``."""
    if padding == NO_PADDING:
        return field
    padded = field.pad(lat=padding[0], lon=padding[1], constant_values=np.nan)
    return padded.assign_coords(lat=fine.lat, lon=fine.lon)


def _pad_edges(field: xr.DataArray, padding: Padding, fine: Grid) -> xr.DataArray:
    """``field`` (..., lat, lon) extended over ``padding`` by repeating its edge values, on the padded grid ``fine``."""
    if padding == NO_PADDING:
        return field
    padded = field.pad(lat=padding[0], lon=padding[1], mode="edge")
    return padded.assign_coords(lat=fine.lat, lon=fine.lon)


def _regridded(method: RegridMethod) -> str:
    """The verb for a note on regridding with ``method``."""
    return "remapped conservatively" if method == "conservative" else "interpolated"


def _padded_coverage(field: xr.DataArray, domain: Grid, role: str) -> None:
    """Raise DataError unless every cell centre of the target ``domain`` lies within the cells of ``field``."""
    source = Grid.of(field)
    if domain.cells_inside(source.extent()) != (slice(0, domain.shape[0]), slice(0, domain.shape[1])):
        (south, north), (west, east) = source.extent()
        raise DataError(
            f"the {role} data covers lat {south:.4g}..{north:.4g}, lon {west:.4g}..{east:.4g} (cell bounds), which does "
            f"not cover the target domain ({domain.describe()}); provide {role} data over a larger area"
        )


def fine_static(
    static: SourcesInput | None,
    variables: Sequence[str] | None,
    fine: Grid,
    padding: Padding = NO_PADDING,
) -> tuple[xr.DataArray | None, dict[str, dict[str, str]], list[str]]:
    """Bring static fields onto the fine grid; returns (field, attrs, notes).

    ``fine`` is the fine grid including ``padding``: the fields are regridded
    (the source's ``regrid`` method, linear by default) onto the target domain,
    which they must cover, and their edge values repeated over the padding.
    """
    sources = as_sources(static, variables)
    if not sources:
        return None, {}, []
    if len(sources) > 1:
        raise ConfigError("static fields come from one source; merge them into one dataset on one grid")
    source = sources[0]
    field = select_field(source.data, source.variables, role="static", dims=("lat", "lon"))
    names = [str(v) for v in field["variable"].values]
    domain = unpadded(fine, padding)
    notes = []
    method = source.regrid or "linear"
    if domain.window_in(Grid.of(field)) is None:
        notes.append(f"{_regridded(method)} static fields {names} onto the target grid ({method})")
    field = _pad_edges(regrid(field, domain, method=method, role="static"), padding, fine)
    field = field.rename(variable="channel")
    return field, variable_attributes(source.data, names, role="static"), notes


def _coarse_predictors(
    sources: Sequence[Source],
    coarse: Grid,
    fine: Grid,
    padding: Padding,
    scale: int,
    times: xr.DataArray,
) -> tuple[xr.DataArray | None, dict[str, dict[str, str]], list[str]]:
    """Bring predictors from each source, at any resolution, onto the coarse grid at the target's times."""
    domain = unpadded(fine, padding)
    fields: list[xr.DataArray] = []
    attrs: dict[str, dict[str, str]] = {}
    notes: list[str] = []
    for source in sources:
        field = select_field(source.data, source.variables, role="predictor")
        names = [str(v) for v in field["variable"].values]
        missing = np.setdiff1d(times.values, field["time"].values)
        if missing.size:
            raise DataError(
                f"the predictors {names} lack {missing.size} of the target's time steps "
                f"(first missing: {pd.Timestamp(missing[0])}); provide predictors for every target time"
            )
        field = align_longitudes(field.sel(time=times.values), coarse.lon)
        window = domain.window_in(Grid.of(field))
        if window is not None:
            on_domain = field.isel(lat=window[0], lon=window[1]).assign_coords(lat=domain.lat, lon=domain.lon)
            field = block_average(pad_target(on_domain, padding, fine), scale)
            notes.append(f"block-averaged predictors {names} from the target grid to the coarse grid")
        elif coarse.window_in(Grid.of(field)) is not None:
            field = regrid(field, coarse, role="predictor")
        else:
            _padded_coverage(field, domain, "predictor")
            method = source.regrid or "linear"
            notes.append(f"{_regridded(method)} predictors {names} onto the coarse grid ({method})")
            field = regrid(field, coarse, method=method, role="predictor", clamp=True)
        fields.append(field.assign_coords(lat=coarse.lat, lon=coarse.lon))
        attrs |= variable_attributes(source.data, names, role="predictor")
    if not fields:
        return None, {}, []
    combined = xr.concat(fields, dim="variable", coords="minimal", compat="override") if len(fields) > 1 else fields[0]
    return combined, attrs, notes


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
    attrs: dict[str, dict[str, str]],
    predictors: Sequence[Source],
    static: Sequence[Source],
    scale: int,
    notes: list[str],
    padding: Padding = NO_PADDING,
    resampling: Resampling | None = None,
    extra_channels: xr.DataArray | None = None,
) -> PairedData:
    """The pairs of ``target`` (on its padded fine grid) and its ``coarse_targets``, with predictors and static fields.

    ``attrs`` holds the CF attributes of the targets and their coarse
    counterparts (and of ``extra_channels``, uniform (time, variable) input
    channels put last); those of predictors and static fields are added.
    """
    fine = Grid.of(target)
    coarse = Grid.of(coarse_targets)
    static_field, static_attrs, static_notes = fine_static(static, None, fine, padding)
    predictor_field, predictor_attrs, predictor_notes = _coarse_predictors(
        predictors, coarse, fine, padding, scale, target["time"]
    )
    for note in static_notes + predictor_notes:
        logger.info(note)
    channels = [coarse_targets.rename(variable="channel")]
    if predictor_field is not None:
        channels.append(predictor_field.rename(variable="channel"))
        input_names = input_names + [str(v) for v in predictor_field["variable"].values]
    if extra_channels is not None:
        uniform = extra_channels.astype(np.float32).broadcast_like(coarse_targets.isel(variable=0, drop=True))
        channels.append(uniform.transpose("time", "variable", "lat", "lon").rename(variable="channel"))
        input_names = input_names + [str(v) for v in extra_channels["variable"].values]
    repeated = sorted({name for name in input_names if input_names.count(name) > 1})
    if repeated:
        raise ConfigError(
            f"the input channels {input_names} repeat {repeated}; take each variable from one source only"
        )
    inputs = xr.concat(channels, dim="channel", coords="minimal", compat="override")
    inputs = inputs.assign_coords(channel=input_names, lat=coarse.lat, lon=coarse.lon)
    return PairedData(
        inputs=inputs,
        target=target,
        static=static_field,
        scale=scale,
        input_variables=tuple(input_names),
        attrs=predictor_attrs | static_attrs | attrs,
        notes=tuple(notes + static_notes + predictor_notes),
        padding=padding,
        resampling=resampling,
    )


def _crop_to_cells(target: xr.DataArray, source: Grid, notes: list[str]) -> xr.DataArray:
    """Crop ``target`` to the cells whose centres lie within the cells of ``source`` (the coarse data).

    Coarse data (a GCM, a reanalysis) over a smaller area than the target has
    nothing to say beyond its cells; those target cells are dropped rather
    than extrapolated, and the crop reported.
    """
    domain = Grid.of(target)
    window = domain.cells_inside(source.extent())
    if window is None:
        raise DataError(
            f"the coarse data ({source.describe()}) does not overlap the target grid ({domain.describe()}); "
            "pair data over the same region"
        )
    if window == (slice(0, domain.shape[0]), slice(0, domain.shape[1])):
        return target
    cropped = target.isel(lat=window[0], lon=window[1])
    notes.append(
        f"cropped the target grid to {Grid.of(cropped).describe()}, the part that lies within the cells of the "
        f"coarse data ({source.describe()})"
    )
    logger.warning(notes[-1])
    return cropped


def _target_attrs(source: XarrayInput, names: Sequence[str]) -> dict[str, dict[str, str]]:
    return variable_attributes(source, names, role="target")


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
        static: SourcesInput | None = None,
        static_variables: Sequence[str] | None = None,
        predictors: SourcesInput | None = None,
        predictor_variables: Sequence[str] | None = None,
    ) -> PairedData:
        """Pair ``target`` (dims time, lat, lon; any common coordinate names) with its block average.

        ``predictors`` (and ``static``) may be data with ``*_variables``, a
        :class:`Source`, or (predictors) a list of sources, each on its own grid.
        """
        field, notes = _prepare_target(target, variables, self.scale, self.crop)
        coarse_targets = block_average(field, self.scale)
        names = [str(v) for v in field["variable"].values]
        return _assemble(
            coarse_targets,
            field,
            names,
            _target_attrs(target, names),
            as_sources(predictors, predictor_variables),
            as_sources(static, static_variables),
            self.scale,
            notes,
        )


@dataclass(frozen=True)
class MOS:
    """Explicit coarse data paired with the target by time (Model Output Statistics), at any pair of grids.

    The whole target domain is kept: it is padded to a multiple of the scale
    (see the module's documentation for how the networks see any pair of grids).

    Args:
        scale: the integer refinement factor of the network; None (default)
            chooses it from the grids (:func:`choose_scale`).
        method: how coarse data not on the network's coarse grid is regridded
            onto it: ``linear`` (default), ``nearest``, ``cubic`` or
            ``conservative`` (area-weighted, keeps totals).
        crop: deprecated and ignored: the target is no longer cropped to a multiple of the scale.
    """

    scale: int | None = None
    method: RegridMethod = "linear"
    crop: bool | None = None

    def __post_init__(self) -> None:
        if self.scale is not None:
            check_scale(self.scale)
        if self.crop is not None:
            warnings.warn(
                "MOS(crop=...) is ignored and will be removed in 0.3: MOS pads the target to a multiple of the "
                "scale instead of cropping it",
                DeprecationWarning,
                stacklevel=3,
            )

    def pair(
        self,
        target: XarrayInput,
        coarse: XarrayInput,
        *,
        variables: Sequence[str] | None = None,
        coarse_variables: Sequence[str] | None = None,
        static: SourcesInput | None = None,
        static_variables: Sequence[str] | None = None,
        predictors: SourcesInput | None = None,
        predictor_variables: Sequence[str] | None = None,
    ) -> PairedData:
        """Pair ``target`` with ``coarse``; ``coarse_variables[i]`` is the coarse counterpart of ``variables[i]``.

        The coarse counterparts are converted to the targets' units. Both may
        name levels (``ta@850hPa``). ``predictors`` and ``static`` as in
        :meth:`PerfectProg.pair`.

        Raises:
            DataError: units that are missing on one side or measure different
                quantities, no common time, coarse data that does not overlap
                the target, or a coarse grid not coarser than the target's.
        """
        field = select_field(target, variables, role="target")
        _ = Grid.of(field).spacing  # raises for irregular grids
        check_target_values(field)
        target_names = [str(v) for v in field["variable"].values]
        coarse_names = list(coarse_variables) if coarse_variables is not None else target_names
        if len(coarse_names) != len(target_names):
            raise ConfigError(
                f"{len(coarse_names)} coarse variables {coarse_names} for {len(target_names)} target variables "
                f"{target_names}; give one coarse variable per target variable, in the same order"
            )
        attrs = _target_attrs(target, target_names)
        coarse_data = self._coarse_in_target_units(coarse, coarse_names, target_names, attrs)
        coarse_field = select_field(coarse_data, coarse_names, role="coarse")
        notes: list[str] = []
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
        return self.pair_on_grids(
            field.sel(time=common),
            coarse_field.sel(time=common),
            coarse_names,
            _coarse_attrs(coarse_data, coarse_names) | attrs,
            as_sources(predictors, predictor_variables),
            as_sources(static, static_variables),
            notes,
        )

    def pair_on_grids(
        self,
        field: xr.DataArray,
        coarse_field: xr.DataArray,
        coarse_names: Sequence[str],
        attrs: dict[str, dict[str, str]],
        predictors: Sequence[Source],
        static: Sequence[Source],
        notes: list[str],
        extra_channels: xr.DataArray | None = None,
    ) -> PairedData:
        """Pair a target ``field`` and its ``coarse_field`` (both (time, variable, lat, lon), on the same samples).

        The grid part of :meth:`pair`: the target is cropped to the cells of
        the coarse data and padded to a multiple of the scale, the coarse data
        regridded onto the network's coarse grid. ``attrs`` holds the CF
        attributes of both; ``extra_channels`` (time, variable) are input
        channels that do not vary in space, such as a forecast's lead time.
        """
        coarse_field = align_longitudes(coarse_field, field["lon"].values)
        source = Grid.of(coarse_field)
        field = _crop_to_cells(field, source, notes)
        domain = Grid.of(field)
        scale = self.scale if self.scale is not None else choose_scale(domain, source)
        _check_coarse_cells(*domain.shape, scale)
        padding: Padding = (
            _axis_padding(domain.lat, source.lat, scale),
            _axis_padding(domain.lon, source.lon, scale),
        )
        fine = domain.padded(*padding)
        coarse_grid = fine.coarsen(scale)
        if self.scale is None:
            notes.append(
                f"chose scale {scale} for coarse data at {source.spacing[0]:g} x {source.spacing[1]:g} degrees and "
                f"a target at {domain.spacing[0]:g} x {domain.spacing[1]:g} degrees"
            )
            logger.info(notes[-1])
        if padding != NO_PADDING:
            notes.append(
                f"padded the target grid from {domain.shape[0]} x {domain.shape[1]} to {fine.shape[0]} x "
                f"{fine.shape[1]} cells (a multiple of scale {scale}; latitude {padding[0]}, longitude {padding[1]} "
                "cells before and after, left out of losses and outputs)"
            )
            logger.info(notes[-1])
        resampling = None
        if coarse_grid.window_in(source) is None:
            resampling = Resampling(source, self.method)
            notes.append(
                f"regridded ({self.method}) the coarse data from {source.describe()} onto the network's coarse grid "
                f"{coarse_grid.describe()}"
            )
            logger.info(notes[-1])
        coarse_field = regrid(coarse_field, coarse_grid, method=self.method, role="coarse", clamp=True)
        return _assemble(
            coarse_field,
            pad_target(field, padding, fine),
            list(coarse_names),
            attrs,
            predictors,
            static,
            scale,
            notes,
            padding,
            resampling,
            extra_channels,
        )

    @staticmethod
    def _coarse_in_target_units(
        coarse: XarrayInput,
        coarse_names: Sequence[str],
        target_names: Sequence[str],
        attrs: Mapping[str, Mapping[str, str]],
    ) -> xr.Dataset:
        """The coarse variables, levels selected, each converted to the units of its target (logged)."""
        data = select_variables(coarse, coarse_names, role="coarse")
        for coarse_name, target_name in zip(coarse_names, target_names):
            converted, _ = units.conform(
                data[coarse_name],
                attrs.get(target_name, {}).get("units"),
                what=f"the coarse variable {coarse_name!r}",
                reference=f"the target {target_name!r}",
                names=(coarse_name, target_name),
            )
            data[coarse_name] = converted
        return data


def _coarse_attrs(coarse: xr.Dataset, names: Sequence[str]) -> dict[str, dict[str, str]]:
    return variable_attributes(coarse, names, role="coarse")
