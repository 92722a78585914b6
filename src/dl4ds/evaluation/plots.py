"""Side-by-side maps of downscaled fields, their errors and per-gridpoint scores.

Figures are built with :class:`matplotlib.figure.Figure` directly, without
pyplot, so importing or calling these functions never touches the user's
interactive backend or open figures. Files are written atomically: a reader
never sees a half-written image.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import xarray as xr
from matplotlib import colormaps
from matplotlib.figure import Figure

from dl4ds.atomic import atomic_path
from dl4ds.data.grid import Grid, standardize
from dl4ds.errors import DataError

__all__ = ["plot_comparison", "plot_metric_maps"]

_PANEL_WIDTH = 3.6  # inches of map per panel
_ROBUST_PERCENTILES = (2.0, 98.0)
_DPI = 120


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
    mesh = None
    for ax, key in zip(axes[0], keys):
        mesh = _draw(ax, maps[key], cmap=field_cmap, vmin=vmin, vmax=vmax)
        ax.set_title(key)
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
    cmap: str = "magma_r",
) -> Path:
    """Draw per-gridpoint score maps (e.g. :func:`~dl4ds.evaluation.rmse_map` of each method) side by side.

    All panels share one colour scale, starting at 0 for non-negative scores
    such as RMSE; each panel is titled with its key and its area-weighted
    (cos latitude) mean. Writes the image and returns ``path``.
    """
    fields = _as_maps(maps)
    keys = list(fields)
    fig, axes = _figure(fields, nrows=1, ncols=len(keys), title=title)

    vmin, vmax = _robust_range(fields.values())
    if vmin >= 0:
        vmin = 0.0
    units = _units(next(iter(fields.values())), fields.values())
    score_cmap = colormaps[cmap].with_extremes(bad="0.85")
    mesh = None
    for ax, key in zip(axes[0], keys):
        field = fields[key]
        mesh = _draw(ax, field, cmap=score_cmap, vmin=vmin, vmax=vmax)
        mean = _area_mean(field)
        ax.set_title(f"{key}\nmean {mean:.3g} {units}".rstrip() if np.isfinite(mean) else key)
    label = _label(next(iter(fields.values())), fields.values())
    fig.colorbar(mesh, ax=list(axes[0]), shrink=0.9, extend="max" if vmin == 0 else "both", label=label)
    return _save(fig, path)


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
    for row, row_axes in enumerate(axes):
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


def _draw(ax, field: xr.DataArray, *, cmap, vmin: float, vmax: float):
    values = np.ma.masked_invalid(field.values)
    return ax.pcolormesh(
        _edges(field["lon"].values),
        _edges(field["lat"].values),
        values,
        cmap=cmap,
        vmin=vmin,
        vmax=vmax,
        shading="flat",
        rasterized=True,
    )


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
    for field in (preferred, *fields):
        units = field.attrs.get("units")
        if units:
            return str(units)
    return ""


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
