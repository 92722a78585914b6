"""Figures of downscaled fields and of their verification scores.

Maps (:func:`plot_comparison`, :func:`plot_metric_maps`) draw fields at their
real cell edges with robust colour ranges, axes in degrees, and Natural Earth
1:50m coastlines and borders shipped with dl4ds (:func:`dl4ds.datasets.map_lines`,
no download). The score figures
(:func:`plot_spectra`, :func:`plot_quantiles`, :func:`plot_sample_scores`,
:func:`plot_grouped_scores`, :func:`plot_rank_histogram`) take the parts of a
:class:`~dl4ds.evaluation.scores.Scores` with their ``model`` dimension and
give every model the same colour in every figure.

Figures are built with :class:`matplotlib.figure.Figure` directly, without
pyplot, so importing or calling these functions never touches the user's
interactive backend or open figures. Files are written atomically: a reader
never sees a half-written image.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
import xarray as xr
from matplotlib import colormaps
from matplotlib.collections import LineCollection, QuadMesh
from matplotlib.figure import Figure

from dl4ds.data.grid import Grid, standardize
from dl4ds.datasets import map_lines
from dl4ds.errors import DataError
from dl4ds.utils.atomic import atomic_path

__all__ = [
    "plot_comparison",
    "plot_grouped_scores",
    "plot_metric_maps",
    "plot_quantiles",
    "plot_rank_histogram",
    "plot_sample_scores",
    "plot_spectra",
]

_PANEL_WIDTH = 3.6  # inches of map per panel
_ROBUST_PERCENTILES = (2.0, 98.0)
_DPI = 100  # figures are embedded in the page: 100 dpi keeps it light and quick to draw
_MAX_COLUMNS = 4  # map panels per row
_SPECTRAL_BAND = (0.8, 1.2)  # power ratios shaded as close to the truth


def plot_comparison(
    fields: Mapping[str, xr.DataArray],
    path: str | os.PathLike[str],
    *,
    truth_key: str | None = "truth",
    title: str = "",
    cmap: str = "viridis",
) -> Path:
    """Draw 2-D (lat, lon) maps side by side, with their errors against the truth beneath.

    The first row shows every field in ``fields`` (in order), titled with its
    key and sharing one colour scale (2nd-98th percentile of all panels).
    Fields are drawn with ``pcolormesh`` at their real cell positions, so a
    coarse input on its own grid lines up with the fine fields. The second
    row shows ``field - fields[truth_key]`` for every other field on the
    truth's grid, with a diverging colour scale symmetric about 0; fields on
    other grids (e.g. the coarse input) get no error panel. With
    ``truth_key=None`` only the first row is drawn.

    A field with a single time step (or other size-1 dimensions) is squeezed
    to 2-D. Writes the image (PNG unless ``path`` names another format
    matplotlib supports) and returns ``path`` as a :class:`~pathlib.Path`.
    """
    maps = _as_maps(fields)
    if truth_key is not None and truth_key not in maps:
        raise DataError(
            f"truth_key {truth_key!r} is not among the fields {list(maps)}; pass the key of the "
            "reference field, or truth_key=None to draw the fields without error panels."
        )

    errors: dict[str, xr.DataArray] = {}
    if truth_key is not None:
        truth = maps[truth_key]
        truth_grid = Grid.of(truth)
        for key, field in maps.items():
            if key != truth_key and Grid.of(field).equals(truth_grid):
                errors[key] = field.copy(data=field.values - truth.values)

    keys = list(maps)
    nrows = 2 if errors else 1
    fig, axes = _figure(maps, nrows=nrows, ncols=len(keys), title=title)

    vmin, vmax = _robust_range(maps.values())
    field_cmap = colormaps[cmap].with_extremes(bad="0.85")
    mesh: QuadMesh | None = None
    for ax, key in zip(axes[0], keys):
        mesh = _draw(ax, maps[key], cmap=field_cmap, vmin=vmin, vmax=vmax)
        ax.set_title(key)
    assert mesh is not None, "_as_maps returns at least one field"
    reference = maps[truth_key] if truth_key is not None else next(iter(maps.values()))
    fig.colorbar(mesh, ax=list(axes[0]), shrink=0.9, extend="both", label=_label(reference, maps.values()))

    if errors:
        limit = _symmetric_limit(errors.values())
        error_cmap = colormaps["RdBu_r"].with_extremes(bad="0.85")
        for ax, key in zip(axes[1], keys):
            if key not in errors:
                ax.set_axis_off()
                continue
            mesh = _draw(ax, errors[key], cmap=error_cmap, vmin=-limit, vmax=limit)
            ax.set_title(f"{key} \N{MINUS SIGN} {truth_key}")
        first = next(ax for ax, key in zip(axes[1], keys) if key in errors)
        first.tick_params(labelleft=True)
        first.set_ylabel("latitude (\N{DEGREE SIGN}N)")
        units = _units(reference, maps.values())
        label = f"error ({units})" if units else "error"
        fig.colorbar(mesh, ax=list(axes[1]), shrink=0.9, extend="both", label=label)

    return _save(fig, path)


def plot_metric_maps(
    maps: Mapping[str, xr.DataArray],
    path: str | os.PathLike[str],
    *,
    title: str = "",
    cmap: str | None = None,
    scale: Literal["zero", "robust", "diverging"] = "zero",
    centre: float = 0.0,
) -> Path:
    """Draw per-gridpoint score maps (e.g. :func:`~dl4ds.evaluation.rmse_map` of each model) side by side.

    All panels share one colour scale: with ``scale="zero"`` the 2nd-98th
    percentile of all panels, extended down to 0 for non-negative scores such
    as RMSE; ``"robust"`` that percentile range alone (e.g. correlations near
    1); ``"diverging"`` symmetric about ``centre``, the perfect value: 0 for
    signed scores such as biases, 1 for ratios.
    ``cmap`` defaults to ``"RdBu_r"`` for diverging scales and ``"magma_r"``
    otherwise. Each panel is titled with its key and its area-weighted (cos
    latitude) mean; more than four panels wrap onto further rows. Writes the
    image and returns ``path``.
    """
    fields = _as_maps(maps)
    keys = list(fields)
    ncols = min(len(keys), _MAX_COLUMNS)
    fig, axes = _figure(fields, nrows=math.ceil(len(keys) / ncols), ncols=ncols, title=title)
    panels = list(axes.ravel()[: len(keys)])
    for ax in axes.ravel()[len(keys) :]:
        ax.set_axis_off()

    if scale == "diverging":
        limit = _symmetric_limit([field - centre for field in fields.values()])
        vmin, vmax = centre - limit, centre + limit
    else:
        vmin, vmax = _robust_range(fields.values())
        if scale == "zero" and vmin >= 0:
            vmin = 0.0
    units = _units(next(iter(fields.values())), fields.values())
    cmap = cmap or ("RdBu_r" if scale == "diverging" else "magma_r")
    score_cmap = colormaps[cmap].with_extremes(bad="0.85")
    mesh: QuadMesh | None = None
    for ax, key in zip(panels, keys):
        field = fields[key]
        mesh = _draw(ax, field, cmap=score_cmap, vmin=vmin, vmax=vmax)
        mean = _area_mean(field)
        ax.set_title(f"{key}\nmean {mean:.3g} {units}".rstrip() if np.isfinite(mean) else key)
    assert mesh is not None, "_as_maps returns at least one field"
    label = _label(next(iter(fields.values())), fields.values())
    fig.colorbar(mesh, ax=panels, shrink=0.9, extend="max" if scale == "zero" and vmin == 0 else "both", label=label)
    return _save(fig, path)


def plot_spectra(spectrum: xr.Dataset, path: str | os.PathLike[str], *, title: str = "") -> Path:
    """Draw radially averaged power spectra against wavelength, with their ratio to the truth's beneath.

    ``spectrum`` holds ``power`` (model, wavenumber) and ``truth_power``
    (wavenumber,), with a ``wavelength`` coordinate in km along ``wavenumber``
    (cycles per km), as in :attr:`Scores.spectrum`. The upper panel is
    log-log, the truth in black; the lower panel shows power / truth power
    with the band 0.8-1.2 shaded. Wavelength decreases to the right (finer
    scales). Bins without positive power are left out. Writes the image and
    returns ``path``.
    """
    power = _by_model(spectrum["power"], "spectrum power")
    truth = spectrum["truth_power"]
    wavelength = _wavelength(spectrum)
    keep = np.isfinite(wavelength) & (wavelength > 0) & np.isfinite(truth.values) & (truth.values > 0)
    if not keep.any():
        raise DataError("the truth's spectrum has no bin with positive power and a finite wavelength; nothing to draw.")

    fig = Figure(figsize=(7.0, 6.0), layout="constrained", dpi=_DPI)
    upper, lower = fig.subplots(2, 1, sharex=True, height_ratios=(2.2, 1.0))
    x = wavelength[keep]
    upper.plot(x, truth.values[keep], color="black", linewidth=2.0, label="truth")
    lower.axhspan(*_SPECTRAL_BAND, color="0.9", label=f"{_SPECTRAL_BAND[0]:g}-{_SPECTRAL_BAND[1]:g}")
    lower.axhline(1.0, color="black", linewidth=1.0)
    ratios = []
    for model, colour in _model_colours(power).items():
        values = power.sel(model=model).values[keep]
        values = np.where(values > 0, values, np.nan)
        upper.plot(x, values, color=colour, label=model)
        ratios.append(values / truth.values[keep])
        lower.plot(x, ratios[-1], color=colour)
    upper.set_xscale("log")
    upper.set_yscale("log")
    upper.invert_xaxis()
    units = _shown_units(spectrum["power"].attrs.get("units", ""))
    upper.set_ylabel(f"power ({units})" if units else "power")
    upper.legend(fontsize=8)
    upper.grid(True, which="major", alpha=0.3)
    finite = np.concatenate(ratios)
    finite = finite[np.isfinite(finite)]
    top = float(np.clip(finite.max() * 1.05, 1.3, 3.0)) if finite.size else 1.3
    lower.set_ylim(0.0, top)
    lower.set_ylabel("power / truth")
    lower.set_xlabel("wavelength (km)")
    lower.legend(fontsize=8, loc="lower left")
    lower.grid(True, which="major", alpha=0.3)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_quantiles(quantiles: xr.Dataset, path: str | os.PathLike[str], *, title: str = "", units: str = "") -> Path:
    """Draw a quantile-quantile plot: each model's quantiles against the truth's, with the 1:1 line.

    ``quantiles`` holds ``prediction`` (model, probability) and ``truth``
    (probability,), as in :attr:`Scores.quantiles`. ``units`` labels the axes
    when the arrays have no ``units`` attribute. Writes the image and returns
    ``path``.
    """
    prediction = _by_model(quantiles["prediction"], "prediction quantiles")
    truth = quantiles["truth"].values
    fig = Figure(figsize=(5.5, 5.2), layout="constrained", dpi=_DPI)
    ax = fig.subplots()
    finite = np.concatenate([truth, prediction.values.ravel()])
    finite = finite[np.isfinite(finite)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    ax.plot([low, high], [low, high], color="black", linewidth=1.0, linestyle="--", label="1:1")
    for model, colour in _model_colours(prediction).items():
        ax.plot(truth, prediction.sel(model=model).values, marker="o", markersize=3, color=colour, label=model)
    units = _shown_units(quantiles["truth"].attrs.get("units") or units)
    suffix = f" ({units})" if units else ""
    ax.set_xlabel(f"truth quantile{suffix}")
    ax.set_ylabel(f"predicted quantile{suffix}")
    ax.set_aspect("equal", adjustable="datalim")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_sample_scores(per_sample: xr.Dataset, path: str | os.PathLike[str], *, title: str = "") -> Path:
    """Draw the distribution of every per-sample score as violins, one subplot per metric and violin per model.

    ``per_sample`` holds one variable per metric with dims (model, time[,
    other sample dims]), as in :attr:`Scores.per_sample`; all sample dims are
    pooled. Metrics without finite values are left out, and a model with
    fewer than two distinct values is drawn as points. Writes the image and
    returns ``path``.
    """
    metrics, fig, axes = _metric_panels(per_sample, "per-sample scores", ncols=4, panel=(3.2, 3.0), margin=(0.4, 0.4))
    for ax, name in zip(axes, metrics):
        scores = _by_model(per_sample[name], f"per-sample {name}")
        colours = _model_colours(scores)
        for position, (model, colour) in enumerate(colours.items()):
            values = scores.sel(model=model).values.ravel()
            values = values[np.isfinite(values)]
            if np.unique(values).size >= 2:
                parts = ax.violinplot(values, positions=[position], showmedians=True, widths=0.8)
                for body in parts["bodies"]:
                    body.set_facecolor(colour)
                    body.set_alpha(0.6)
                for key in ("cbars", "cmins", "cmaxes", "cmedians"):
                    parts[key].set_color(colour)
            elif values.size:
                ax.plot(np.full(values.size, position), values, "o", color=colour)
        ax.set_xticks(range(len(colours)), list(colours), rotation=30, ha="right", fontsize=8)
        ax.set_title(name)
        units = _shown_units(per_sample[name].attrs.get("units", ""))
        if units:
            ax.set_ylabel(units)
        ax.grid(True, axis="y", alpha=0.3)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_grouped_scores(grouped: xr.Dataset, path: str | os.PathLike[str], *, title: str = "") -> Path:
    """Draw scores per group (e.g. season) as grouped bars, one subplot per metric and bar colour per model.

    ``grouped`` holds one variable per metric with dims (model, group), as
    in :attr:`Scores.grouped`. Metrics without finite values are left out.
    Writes the image and returns ``path``.
    """
    metrics, fig, axes = _metric_panels(grouped, "grouped scores", ncols=3, panel=(4.0, 2.8), margin=(0.4, 0.6))
    group_dims = [dim for dim in grouped[metrics[0]].dims if dim != "model"]
    if len(group_dims) != 1:
        raise DataError(f"grouped scores need dims (model, group); found {tuple(grouped[metrics[0]].dims)}.")
    group = group_dims[0]
    labels = [str(label) for label in grouped[group].values]
    colours = _model_colours(_by_model(grouped[metrics[0]], "grouped scores"))
    width = 0.8 / len(colours)
    for ax, name in zip(axes, metrics):
        scores = grouped[name].transpose("model", group)
        for index, (model, colour) in enumerate(colours.items()):
            offsets = np.arange(len(labels)) - 0.4 + (index + 0.5) * width
            ax.bar(offsets, scores.sel(model=model).values, width=width, color=colour, label=model)
        ax.axhline(0.0, color="black", linewidth=0.8)
        ax.set_xticks(range(len(labels)), labels, fontsize=8)
        ax.set_xlabel(group)
        units = _shown_units(grouped[name].attrs.get("units", ""))
        ax.set_title(f"{name} ({units})" if units else name)
        ax.grid(True, axis="y", alpha=0.3)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=len(colours), fontsize=8)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_rank_histogram(rank_histogram: xr.DataArray, path: str | os.PathLike[str], *, title: str = "") -> Path:
    """Draw the rank histogram of every ensemble model, with a dashed line at the uniform frequency.

    ``rank_histogram`` holds frequencies with dims (model, rank), ranks 0..M,
    as :attr:`Scores.rank_histogram`; models whose row is all NaN
    (deterministic ones) are left out. A flat histogram at 1/(M+1) means a
    reliable ensemble; a U shape too little spread, a dome too much. Writes
    the image and returns ``path``.
    """
    frequencies = _by_model(rank_histogram, "rank histogram").transpose("model", "rank")
    colours = {m: c for m, c in _model_colours(frequencies).items() if _any_finite(frequencies.sel(model=m))}
    if not colours:
        raise DataError("no model has a rank histogram (all values are NaN); nothing to draw.")
    fig = Figure(figsize=(3.8 * len(colours) + 0.4, 3.4), layout="constrained", dpi=_DPI)
    axes = fig.subplots(1, len(colours), squeeze=False, sharey=True)[0]
    for ax, (model, colour) in zip(axes, colours.items()):
        values = frequencies.sel(model=model).values
        ranks = np.flatnonzero(np.isfinite(values))
        ax.bar(ranks, values[ranks], width=0.9, color=colour)
        ax.axhline(1.0 / ranks.size, color="black", linestyle="--", linewidth=1.0, label=f"uniform 1/{ranks.size}")
        ax.set_title(model)
        ax.set_xlabel(f"rank of the truth among {ranks.size - 1} members")
        ax.legend(fontsize=8)
    axes[0].set_ylabel("frequency")
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def _metric_panels(
    scores: xr.Dataset, what: str, *, ncols: int, panel: tuple[float, float], margin: tuple[float, float]
) -> tuple[list[str], Figure, np.ndarray]:
    """The metrics of ``scores`` with finite values, and a figure with one axes each (at most ``ncols`` a row).

    ``panel`` is the (width, height) of an axes and ``margin`` the extra
    (width, height) of the figure, in inches; axes beyond the metrics are hidden.
    """
    metrics = [str(name) for name, values in scores.data_vars.items() if _any_finite(values)]
    if not metrics:
        raise DataError(f"the {what} have no finite values; nothing to draw.")
    ncols = min(ncols, len(metrics))
    nrows = math.ceil(len(metrics) / ncols)
    figsize = (panel[0] * ncols + margin[0], panel[1] * nrows + margin[1])
    fig = Figure(figsize=figsize, layout="constrained", dpi=_DPI)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[len(metrics) :]:
        ax.set_axis_off()
    return metrics, fig, axes


def _by_model(values: xr.DataArray, what: str) -> xr.DataArray:
    if "model" not in values.dims:
        raise DataError(
            f"the {what} have dims {tuple(values.dims)} without 'model'; pass the parts of a Scores object, "
            "or add one with values.expand_dims(model=['name'])."
        )
    return values


def _model_colours(values: xr.DataArray) -> dict[str, tuple]:
    """A colour per model, by position along ``model`` so that every figure uses the same ones."""
    palette = colormaps["tab10"]
    return {str(model): palette(index % palette.N) for index, model in enumerate(values["model"].values)}


def _any_finite(values: xr.DataArray) -> bool:
    return bool(np.isfinite(values.values).any())


def _wavelength(spectrum: xr.Dataset) -> np.ndarray:
    """Wavelength in km of each wavenumber bin: the ``wavelength`` coordinate, else 1 / wavenumber."""
    if "wavelength" in spectrum.coords:
        return np.asarray(spectrum["wavelength"].values, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return 1.0 / np.asarray(spectrum["wavenumber"].values, dtype=np.float64)


def _as_maps(fields: Mapping[str, xr.DataArray]) -> dict[str, xr.DataArray]:
    """Standardized 2-D (lat, lon) float copies of the fields, in order."""
    if not isinstance(fields, Mapping) or not fields:
        raise DataError("pass the fields to plot as a non-empty dict of {panel title: DataArray}.")
    maps: dict[str, xr.DataArray] = {}
    for key, field in fields.items():
        if not isinstance(field, xr.DataArray):
            raise DataError(f"field {key!r} is a {type(field).__name__}; pass an xarray DataArray.")
        field = standardize(field, require_time=False)
        extra = [dim for dim in field.dims if dim not in ("lat", "lon")]
        squeezable = [dim for dim in extra if field.sizes[dim] == 1]
        field = field.squeeze(squeezable, drop=True) if squeezable else field
        extra = [dim for dim in field.dims if dim not in ("lat", "lon")]
        if extra:
            sizes = {dim: field.sizes[dim] for dim in extra}
            raise DataError(
                f"field {key!r} has dimensions {sizes} besides lat/lon; maps need one 2-D field, "
                f"e.g. field.isel({extra[0]}=0) or field.mean({extra[0]!r})."
            )
        maps[str(key)] = field.transpose("lat", "lon").astype(np.float64)
    return maps


def _figure(maps: dict[str, xr.DataArray], *, nrows: int, ncols: int, title: str) -> tuple[Figure, np.ndarray]:
    """A constrained-layout figure of ``nrows`` x ``ncols`` map axes sharing the union extent."""
    lon_edges = [_edges(field["lon"].values) for field in maps.values()]
    lat_edges = [_edges(field["lat"].values) for field in maps.values()]
    x0, x1 = min(e[0] for e in lon_edges), max(e[-1] for e in lon_edges)
    y0, y1 = min(e[0] for e in lat_edges), max(e[-1] for e in lat_edges)
    # Equal distances in x and y: a degree of longitude is cos(latitude) degrees of latitude.
    aspect = 1.0 / max(np.cos(np.deg2rad(0.5 * (y0 + y1))), 0.1)
    height_per_width = np.clip(aspect * (y1 - y0) / max(x1 - x0, 1e-9), 0.3, 3.0)
    width = _PANEL_WIDTH * ncols + 1.2
    height = nrows * (0.85 * _PANEL_WIDTH * height_per_width + 1.0) + (0.4 if title else 0.0)

    fig = Figure(figsize=(width, height), layout="constrained", dpi=_DPI)
    axes = np.atleast_2d(fig.subplots(nrows, ncols, sharex=True, sharey=True, squeeze=False))
    for row_axes in axes:
        for col, ax in enumerate(row_axes):
            ax.set_xlim(x0, x1)
            ax.set_ylim(y0, y1)
            ax.set_aspect(aspect, adjustable="box")
            ax.xaxis.set_major_formatter("{x:g}\N{DEGREE SIGN}")
            ax.yaxis.set_major_formatter("{x:g}\N{DEGREE SIGN}")
            ax.tick_params(labelsize=8, labelbottom=True)
            ax.set_xlabel("longitude (\N{DEGREE SIGN}E)", fontsize=9)
            if col == 0:
                ax.set_ylabel("latitude (\N{DEGREE SIGN}N)")
    if title:
        fig.suptitle(title)
    return fig, axes


def _draw(ax, field: xr.DataArray, *, cmap, vmin: float, vmax: float) -> QuadMesh:
    """Draw ``field`` at its cell edges, with the coastlines and borders over its extent."""
    values = np.ma.masked_invalid(field.values)
    lon, lat = _edges(field["lon"].values), _edges(field["lat"].values)
    mesh = ax.pcolormesh(lon, lat, values, cmap=cmap, vmin=vmin, vmax=vmax, shading="flat", rasterized=True)
    for kind, style in _MAP_LINE_STYLES.items():
        lines = _lines_within(kind, (lon[0], lon[-1]), (lat[0], lat[-1]))
        if lines:
            ax.add_collection(LineCollection(lines, **style), autolim=False)
    return mesh


_MAP_LINE_STYLES: dict[str, dict[str, Any]] = {
    "coastlines": {"colors": "black", "linewidths": 0.6},
    "borders": {"colors": "black", "linewidths": 0.4, "linestyles": (0, (3, 2))},
}


def _lines_within(kind: str, lon: tuple[float, float], lat: tuple[float, float]) -> list[np.ndarray]:
    """The Natural Earth lines of ``kind`` that cross the box ``lon`` x ``lat`` (degrees), shifted by 360 degrees
    where the box's longitudes are in another range (0..360)."""
    west, east = min(lon), max(lon)
    south, north = min(lat), max(lat)
    lines, boxes = _line_boxes(kind)
    chosen = []
    for shift in (-360.0, 0.0, 360.0):
        crossing = (
            (boxes[:, 1] + shift >= west)
            & (boxes[:, 0] + shift <= east)
            & (boxes[:, 3] >= south)
            & (boxes[:, 2] <= north)
        )
        chosen += [lines[i] + (shift, 0.0) for i in np.flatnonzero(crossing)]
    return chosen


@cache
def _line_boxes(kind: str) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """The lines of ``kind`` and their bounding boxes (west, east, south, north), shape (line, 4)."""
    lines = map_lines()[kind]
    boxes = np.array([(x.min(), x.max(), y.min(), y.max()) for x, y in (line.T for line in lines)])
    return lines, boxes


def _edges(centres: np.ndarray) -> np.ndarray:
    """Cell edges from ascending cell centres (midpoints inside, half a step beyond the ends)."""
    centres = np.asarray(centres, dtype=np.float64)
    if centres.size == 1:
        return np.array([centres[0] - 0.5, centres[0] + 0.5])
    middle = 0.5 * (centres[1:] + centres[:-1])
    return np.concatenate([[2 * centres[0] - middle[0]], middle, [2 * centres[-1] - middle[-1]]])


def _finite_values(fields) -> np.ndarray:
    values = np.concatenate([np.ravel(field.values) for field in fields])
    return values[np.isfinite(values)]


def _robust_range(fields) -> tuple[float, float]:
    values = _finite_values(fields)
    if values.size == 0:
        return 0.0, 1.0
    low, high = (float(v) for v in np.percentile(values, _ROBUST_PERCENTILES))
    if not high > low:
        pad = max(abs(low) * 1e-3, 1e-6)
        low, high = low - pad, high + pad
    return low, high


def _symmetric_limit(fields) -> float:
    values = np.abs(_finite_values(fields))
    limit = float(np.percentile(values, _ROBUST_PERCENTILES[1])) if values.size else 0.0
    return limit if limit > 0 else 1e-6


def _units(preferred: xr.DataArray, fields) -> str:
    """The first ``units`` attribute found, shown as "" for dimensionless ("1")."""
    for field in (preferred, *fields):
        units = field.attrs.get("units")
        if units:
            return _shown_units(units)
    return ""


def _shown_units(units: object) -> str:
    return "" if str(units) == "1" else str(units)


def _label(preferred: xr.DataArray, fields) -> str:
    name = preferred.attrs.get("long_name") or preferred.name or ""
    units = _units(preferred, fields)
    return f"{name} ({units})".strip() if units else str(name)


def _area_mean(field: xr.DataArray) -> float:
    weights = np.cos(np.deg2rad(field["lat"].values))[:, None] * np.isfinite(field.values)
    total = weights.sum()
    return float(np.nansum(field.values * weights) / total) if total > 0 else float("nan")


def _save(fig: Figure, path: str | os.PathLike[str]) -> Path:
    """Write ``fig`` to ``path`` atomically, as PNG unless the suffix names another format matplotlib writes."""
    path = Path(path)
    supported = fig.canvas.get_supported_filetypes()
    suffix = path.suffix.lower().lstrip(".")
    fmt = suffix if suffix in supported else "png"
    with atomic_path(path) as temporary:
        fig.savefig(temporary, format=fmt, dpi=_DPI)
    return path
