"""A static verification report: the scores of every variable and model as tables, NetCDF, figures and one page.

:func:`write_report` turns :class:`~dl4ds.evaluation.scores.Scores` into a
directory that can be moved, archived or served as it is::

    index.html              the page: notes, a headline table, skill against one reference, every score and
                            figure; self-contained (inline CSS, figures embedded as data URIs, no scripts)
    metrics.nc              every score, flat variable names (see :func:`write_report`)
    metrics.csv, metrics.md overall scores, one row per (variable, model)
    skill.csv, skill.md     skill of each model relative to the reference model(s)
    figures/*.png           maps, spectra, quantiles, score distributions, rank histograms

The report is built in a hidden folder inside the directory and moved into
place only once complete, so a failure leaves the previous report (if any) as
it was, and readers never see half-written files.
"""

from __future__ import annotations

import base64
import html
import os
import re
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from dl4ds._version import __version__
from dl4ds.cf import appended_history
from dl4ds.errors import DataError
from dl4ds.evaluation import plots
from dl4ds.evaluation.scores import Scores, metric_info, near_perfect, skill_scores
from dl4ds.io import write_netcdf
from dl4ds.utils.atomic import atomic_path, make_directory, new_temporary, remove_stale_temporaries

__all__ = ["write_report"]

_DATA_FILES = ("metrics.nc", "metrics.csv", "metrics.md", "skill.csv", "skill.md")
_CSV_FORMAT = "%.6g"
_COORDINATE_NAMES = {
    "model": "model verified (network or baseline)",
    "reference": "reference model of the skill score",
    "probability": "probability of the quantile",
    "rank": "rank of the truth among the ensemble members",
}
_SKILL_NOTE = (
    "skill = 1 - distance(model) / distance(reference), where distance is how far a score is from perfect: "
    "1 is perfect, 0 no better than the reference, negative worse; n/a where the reference is near perfect."
)
HEADLINE_METRICS = ("rmse", "mae", "bias", "correlation", "crps", "spectral_ratio", "ssim")
"""The columns of the headline table (those the scores have); ``crps`` only when a model is an ensemble."""
MAPPED_METRICS = ("rmse", "bias", "correlation", "std_ratio", "ssim", "crps", "spread_skill")
"""The scores drawn as maps on the page (those the scores have); ``metrics.nc`` holds the map of every score."""
_NOT_APPLICABLE = "n/a"


@dataclass(frozen=True)
class _Table:
    """Scores of several models (rows) for several metrics (columns), with the best cell of each column marked.

    Attributes:
        headers: column titles with units, e.g. ``"rmse (K)"``, shape (metric,).
        descriptions: the metrics' long names, shape (metric,).
        models: row titles, shape (model,).
        values: shape (model, metric).
        best: True where a value is the closest to perfect in its column (only
            for columns with at least two finite values), shape (model, metric).
        not_applicable: True where a value is left out as meaningless (a skill
            against a near-perfect reference), shown "n/a", shape (model, metric).
    """

    headers: list[str]
    descriptions: list[str]
    models: list[str]
    values: np.ndarray
    best: np.ndarray
    not_applicable: np.ndarray


@dataclass(frozen=True)
class _Figure:
    file: str  # relative to the report directory, e.g. "figures/t2m_spectrum.png"
    caption: str


@dataclass(frozen=True)
class _Section:
    """Everything the report shows for one variable."""

    variable: str
    units: str
    headline: _Table
    overall: _Table
    skill: dict[str, _Table]  # by reference model
    figures: list[_Figure]


def write_report(
    scores: Mapping[str, Scores],
    directory: str | os.PathLike[str],
    *,
    title: str = "dl4ds verification report",
    references: Sequence[str] | None = None,
    examples: Mapping[str, Mapping[str, xr.DataArray]] | None = None,
    notes: Sequence[str] = (),
) -> Path:
    """Write the verification report of ``scores`` to ``directory`` and return the path of its ``index.html``.

    Args:
        scores: ``{variable: Scores}``, each with a ``model`` dimension over
            the models compared; the keys name the variables in the report.
        directory: created if needed. The report's files (see the module
            docstring) replace those of an earlier report there, ``figures/``
            as a whole; other files are left alone.
        title: heading of the page and ``title`` attribute of ``metrics.nc``.
        references: models to compute skill against (:func:`skill_scores`);
            every variable must have them. Default: for each variable, the
            best (lowest RMSE) of its models but the first, e.g. the best
            baseline of the ladder when the network comes first.
        examples: ``{variable: {"truth": field, model: field, ...}}`` with 2-D
            (lat, lon) fields of one time step, drawn with their errors
            against ``"truth"`` (:func:`~dl4ds.evaluation.plot_comparison`).
        notes: lines shown under the title, e.g. the periods used.

    ``metrics.nc`` holds, for each variable ``v`` and metric ``m``:
    ``v_m`` (model), ``v_m_time`` (model, time, ...), ``v_m_map`` (model,
    lat, lon), ``v_m_<group>`` (model, group), ``v_power`` (model,
    wavenumber), ``v_truth_power`` (wavenumber), ``v_quantile_prediction``
    (model, probability), ``v_quantile_truth`` (probability),
    ``v_rank_histogram`` (model, rank) and ``v_skill_m`` (model,
    reference), with the scores' ``long_name`` and ``units``. Where two
    variables have different coordinates along a dimension (other grids,
    times or models), the second one's dimension is named ``<dim>_<v>``.
    Names along a dimension (models, references, seasons) are its auxiliary
    coordinate ``<dim>_label`` (CF labels; coordinate variables are numeric).

    Figures without data are left out: the rank histogram without an
    ensemble, the grouped scores without groups, the example maps without
    ``examples``.

    Raises:
        DataError: for empty ``scores``, scores without a ``model`` dimension,
            unknown references or example variables.
        OutputError: a directory that cannot be written (a file in the way, no permission, a full disk).
    """
    scores = _checked_scores(scores)
    chosen = _checked_references(scores, references)
    examples = _checked_examples(scores, examples)
    notes = [notes] if isinstance(notes, str) else [str(note) for note in notes]
    skills = {variable: skill_scores(item, chosen[variable]) for variable, item in scores.items()}

    directory = Path(directory)
    staging = _staging_folder(directory)
    try:
        dataset = _merge({variable: _flat(variable, scores[variable], skills[variable]) for variable in scores})
        dataset.attrs["title"] = title
        dataset.attrs["history"] = appended_history(None, f"verified with dl4ds {__version__}")
        if notes:
            dataset.attrs["comment"] = "\n".join(notes)
        write_netcdf(dataset, staging / "metrics.nc")
        _write_csv(_overall_frame(scores), staging / "metrics.csv")
        _write_csv(_skill_frame(skills, chosen), staging / "skill.csv")
        sections = [
            _section(variable, item, skills[variable], chosen[variable], examples.get(variable), staging)
            for variable, item in scores.items()
        ]
        _write_text(staging / "metrics.md", _overall_markdown(title, notes, sections))
        _write_text(staging / "skill.md", _skill_markdown(title, sections))
        _write_text(staging / "index.html", _page(title, notes, sections, staging))
        _commit(staging, directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return directory / "index.html"


def _section(
    variable: str,
    scores: Scores,
    skill: xr.Dataset,
    references: list[str],
    example: Mapping[str, xr.DataArray] | None,
    root: Path,
) -> _Section:
    """The tables of one variable, and its figures drawn into ``root/figures``."""
    header = partial(_header, data_units=scores.units)
    perfect = near_perfect(scores, references) if references else None
    return _Section(
        variable=variable,
        units=scores.units,
        headline=_table(scores.overall[_headline_metrics(scores)], _metric_distance, header),
        overall=_table(scores.overall, _metric_distance, header),
        skill={
            ref: _table(
                _versus(skill, ref), _skill_distance, lambda name, values: name, _versus_mask(perfect, skill, ref)
            )
            for ref in references
        },
        figures=_draw_figures(variable, scores, example, root),
    )


def _headline_metrics(scores: Scores) -> list[str]:
    """The :data:`HEADLINE_METRICS` the scores have; CRPS only with an ensemble (for one field it is the MAE)."""
    ensemble = scores.rank_histogram is not None and bool(np.isfinite(scores.rank_histogram.values).any())
    return [name for name in HEADLINE_METRICS if name in scores.overall.data_vars and (name != "crps" or ensemble)]


# --- checks ---------------------------------------------------------------------------------------------------------


def _checked_scores(scores: Mapping[str, Scores]) -> dict[str, Scores]:
    if not isinstance(scores, Mapping) or not scores:
        raise DataError("no scores to report; pass a non-empty dict {variable name: Scores}.")
    checked: dict[str, Scores] = {}
    for variable, item in scores.items():
        if not isinstance(item, Scores):
            raise DataError(
                f"scores[{variable!r}] is a {type(item).__name__}; pass the Scores object of each variable."
            )
        parts = {
            "overall": item.overall,
            "per_sample": item.per_sample,
            "maps": item.maps,
            "grouped": item.grouped,
            "spectrum": item.spectrum["power"],
            "quantiles": item.quantiles["prediction"],
            "rank_histogram": item.rank_histogram,
        }
        for name, part in parts.items():
            if part is None or (name != "overall" and isinstance(part, xr.Dataset) and not part.data_vars):
                continue  # absent
            if "model" not in part.dims:
                raise DataError(
                    f"the {name} scores of {variable!r} have dims {tuple(part.dims)} without 'model'; give every "
                    "part of the Scores a model dimension, e.g. part.expand_dims(model=['name']), or stack the "
                    "models with Scores.combine."
                )
        if not item.models:
            raise DataError(f"the scores of {variable!r} have no models; verify at least one prediction.")
        checked[str(variable)] = item
    slugs: dict[str, str] = {}
    for variable in checked:
        other = slugs.setdefault(_slug(variable), variable)
        if other != variable:
            raise DataError(f"variables {other!r} and {variable!r} would share figure names; rename one of them.")
    return checked


def _checked_references(scores: dict[str, Scores], references: Sequence[str] | None) -> dict[str, list[str]]:
    """The reference models of each variable: ``references``, or the best (lowest RMSE) of its models but the first."""
    if references is None:
        return {variable: _best_of(item, item.models[1:]) for variable, item in scores.items()}
    references = [references] if isinstance(references, str) else [str(ref) for ref in references]
    for variable, item in scores.items():
        missing = [ref for ref in references if ref not in item.models]
        if missing:
            raise DataError(
                f"reference models {missing} are not among the models {item.models} of {variable!r}; "
                "pass references that every variable was verified for."
            )
    return {variable: list(references) for variable in scores}


def _best_of(scores: Scores, models: list[str]) -> list[str]:
    """``[the model of models with the lowest RMSE]`` (the first of them without RMSE), or [] for no models."""
    if not models:
        return []
    if "rmse" not in scores.overall:
        return models[:1]
    rmse = scores.overall["rmse"].sel(model=models).values
    return [models[int(np.nanargmin(rmse))]] if np.isfinite(rmse).any() else models[:1]


def _checked_examples(
    scores: dict[str, Scores], examples: Mapping[str, Mapping[str, xr.DataArray]] | None
) -> dict[str, Mapping[str, xr.DataArray]]:
    examples = dict(examples or {})
    for variable, fields in examples.items():
        if variable not in scores:
            raise DataError(
                f"examples are given for {variable!r}, which has no scores; the variables are {list(scores)}."
            )
        if not isinstance(fields, Mapping) or "truth" not in fields:
            raise DataError(
                f"the examples of {variable!r} need a 'truth' field to draw errors against; pass "
                "{'truth': field, model: field, ...}."
            )
    return examples


def _staging_folder(directory: Path) -> Path:
    """Create ``directory`` and a hidden folder in it to build the report in, after removing those of killed runs.

    Raises:
        OutputError: ``directory`` is a file, or cannot be created or written.
    """
    make_directory(directory, what="report")
    remove_stale_temporaries(directory / "report")
    staging = new_temporary(directory / "report")
    staging.mkdir()
    return staging


def _slug(name: str) -> str:
    """``name`` with only letters, digits, '.', '-' and '_', for file names and HTML ids."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "variable"


# --- metrics.nc -----------------------------------------------------------------------------------------------------


def _flat(variable: str, scores: Scores, skill: xr.Dataset) -> xr.Dataset:
    """All scores of one variable as a Dataset with the flat names :func:`write_report` lists."""
    items: dict[str, xr.DataArray] = {}

    def add(name: str, values: xr.DataArray, **defaults: str) -> None:
        attrs = {**defaults, **values.attrs}
        if attrs.get("units") == "dB":  # not a UDUNITS unit: a dimensionless number, said to be in decibels
            attrs.update(units="1", comment="in decibels (10 log10 of a ratio of powers)")
        items[f"{variable}_{name}"] = values.assign_attrs(attrs)

    for name, values in scores.overall.data_vars.items():
        add(str(name), values)
    for name, values in scores.per_sample.data_vars.items():
        add(f"{name}_time", values)
    for name, values in scores.maps.data_vars.items():
        add(f"{name}_map", values)
    if scores.grouped is not None:
        for name, values in scores.grouped.data_vars.items():
            add(f"{name}_{'_'.join(str(dim) for dim in values.dims if dim != 'model')}", values)
    add("power", scores.spectrum["power"], long_name="radially averaged power spectrum of the prediction")
    add("truth_power", scores.spectrum["truth_power"], long_name="radially averaged power spectrum of the truth")
    for part in ("prediction", "truth"):
        add(f"quantile_{part}", scores.quantiles[part], long_name=f"quantiles of the {part}", units=scores.units)
    if scores.rank_histogram is not None:
        add(
            "rank_histogram",
            scores.rank_histogram,
            long_name="frequency of the rank of the truth among the ensemble members",
            units="1",
        )
    if skill.sizes.get("reference", 0):
        for name, values in skill.data_vars.items():
            add(f"skill_{name}", values)
    dataset = xr.Dataset(items)
    labels = {
        dim: dataset[dim].astype(str).assign_attrs(long_name=_COORDINATE_NAMES[dim])
        for dim in ("model", "reference")
        if dim in dataset.coords
    }
    for dim in ("probability", "rank"):
        if dim in dataset.coords:
            labels[dim] = dataset[dim].assign_attrs(long_name=_COORDINATE_NAMES[dim], units="1")
    return dataset.assign_coords(labels)


def _merge(parts: Mapping[str, xr.Dataset]) -> xr.Dataset:
    """One Dataset of all variables' parts.

    A dimension whose size or coordinates differ from the same dimension of
    an earlier part is renamed ``<dim>_<variable>``, with the coordinates along it.
    """
    merged = xr.Dataset()
    for variable, part in parts.items():
        taken = sorted(set(map(str, part.data_vars)) & set(map(str, merged.data_vars)))
        if taken:
            raise DataError(f"the scores of {variable!r} and another variable both give {taken}; rename one of them.")
        clashing = {str(dim) for dim in part.dims if _clashes(merged, part, str(dim))}
        renames = {str(name): f"{name}_{variable}" for name in part.coords if clashing & set(map(str, part[name].dims))}
        renames.update({dim: f"{dim}_{variable}" for dim in clashing})
        merged = xr.merge([merged, part.rename(renames)], compat="equals", join="exact", combine_attrs="drop_conflicts")
    return merged


def _clashes(merged: xr.Dataset, part: xr.Dataset, dim: str) -> bool:
    if dim not in merged.dims:
        return False
    if merged.sizes[dim] != part.sizes[dim]:
        return True
    shared = [name for name in part.coords if dim in part[name].dims and name in merged.coords]
    return any(not merged[name].equals(part[name]) for name in shared)


# --- tables ---------------------------------------------------------------------------------------------------------


def _overall_frame(scores: Mapping[str, Scores]) -> pd.DataFrame:
    """Overall scores, one row per (variable, model), one column per metric."""
    frames = []
    for variable, item in scores.items():
        frame = item.overall.to_dataframe()[list(item.overall.data_vars)].reset_index()
        frames.append(frame.assign(model=frame["model"].astype(str)).assign(variable=variable))
    columns = ["variable", "model"]
    table = pd.concat(frames, ignore_index=True, sort=False)
    return table[columns + [c for c in table.columns if c not in columns]]


def _skill_frame(skills: Mapping[str, xr.Dataset], references: Mapping[str, list[str]]) -> pd.DataFrame:
    """Skill scores, one row per (variable, reference, model other than the reference), one column per metric."""
    columns = ["variable", "reference", "model"]
    frames = []
    for variable, skill in skills.items():
        for reference in references[variable]:
            versus = _versus(skill, reference)
            frame = versus.to_dataframe()[list(versus.data_vars)].reset_index()
            frames.append(frame.assign(model=frame["model"].astype(str), variable=variable, reference=reference))
    if not frames:
        return pd.DataFrame(columns=columns)
    table = pd.concat(frames, ignore_index=True, sort=False)
    return table[columns + [c for c in table.columns if c not in columns]]


def _versus(skill: xr.Dataset, reference: str) -> xr.Dataset:
    """Skill relative to ``reference`` of the other models, dims (model,)."""
    others = [str(m) for m in skill["model"].values if str(m) != reference]
    return skill.sel(reference=reference, drop=True).sel(model=others)


def _versus_mask(perfect: xr.Dataset | None, skill: xr.Dataset, reference: str) -> xr.Dataset | None:
    """Where the skill relative to ``reference`` is not applicable (the reference near perfect), dims (model,)."""
    if perfect is None:
        return None
    others = _versus(skill, reference)["model"]
    return perfect.sel(reference=reference, drop=True).expand_dims(model=others.values)


def _table(
    scores: xr.Dataset,
    distance: Callable[[str, np.ndarray], np.ndarray],
    header: Callable[[str, xr.DataArray], str],
    not_applicable: xr.Dataset | None = None,
) -> _Table:
    """A :class:`_Table` of ``scores`` (dims (model,)).

    ``distance(metric, values)`` says how far values are from perfect, to mark
    the best; ``header(metric, values)`` gives the column title;
    ``not_applicable`` (booleans like ``scores``) marks the cells shown "n/a".
    """
    names = [str(name) for name in scores.data_vars]
    values = np.full((scores.sizes["model"], len(names)), np.nan)
    best = np.zeros(values.shape, dtype=bool)
    for column, name in enumerate(names):
        values[:, column] = scores[name].transpose("model").values
        far = distance(name, values[:, column])
        if np.isfinite(far).sum() >= 2:
            best[:, column] = np.isclose(far, np.nanmin(far), rtol=1e-9, atol=0.0)
    mask = np.zeros(values.shape, dtype=bool)
    if not_applicable is not None:
        for column, name in enumerate(names):
            mask[:, column] = not_applicable[name].transpose("model").values
    return _Table(
        headers=[header(name, scores[name]) for name in names],
        descriptions=[str(scores[name].attrs.get("long_name", name)) for name in names],
        models=[str(m) for m in scores["model"].values],
        values=values,
        best=best & ~mask,
        not_applicable=mask,
    )


def _metric_distance(name: str, values: np.ndarray) -> np.ndarray:
    return metric_info(name).distance(values)


def _skill_distance(name: str, values: np.ndarray) -> np.ndarray:
    return np.abs(1.0 - values)


def _header(name: str, values: xr.DataArray, data_units: str) -> str:
    units = str(values.attrs.get("units") or metric_info(name).units_for(data_units))
    return f"{name} ({units})" if units not in ("", "1") else name


def _format(value: float, not_applicable: bool = False) -> str:
    """A score with 4 significant digits; "n/a" for a meaningless one, a dash for NaN."""
    if not_applicable:
        return _NOT_APPLICABLE
    return "\N{EN DASH}" if not np.isfinite(value) else f"{value:.4g}"


def _markdown_table(table: _Table) -> str:
    """The table in GitHub Markdown, best values in bold."""
    lines = [
        "| " + " | ".join(["model", *table.headers]) + " |",
        "|:--" + "|--:" * len(table.headers) + "|",
    ]
    for model, values, best, absent in zip(table.models, table.values, table.best, table.not_applicable):
        cells = [f"**{_format(v)}**" if b else _format(v, a) for v, b, a in zip(values, best, absent)]
        lines.append("| " + " | ".join([model, *cells]) + " |")
    return "\n".join(lines)


def _overall_markdown(title: str, notes: list[str], sections: list[_Section]) -> str:
    parts = [f"# {title}", *(["\n".join(f"- {note}" for note in notes)] if notes else [])]
    parts.append("Overall scores; the best value of each column (closest to perfect) in bold.")
    for section in sections:
        units = f" ({section.units})" if section.units else ""
        parts += [f"## {section.variable}{units}", _markdown_table(section.overall)]
    return "\n\n".join(parts) + "\n"


def _skill_markdown(title: str, sections: list[_Section]) -> str:
    parts = [f"# {title}: skill scores", _SKILL_NOTE]
    for section in sections:
        if not section.skill:
            parts += [f"## {section.variable}", "No reference models."]
        for reference, table in section.skill.items():
            parts += [f"## {section.variable} relative to {reference}", _markdown_table(table)]
    return "\n\n".join(parts) + "\n"


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as temporary:
        frame.to_csv(temporary, index=False, float_format=_CSV_FORMAT)


def _write_text(path: Path, text: str) -> None:
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")


# --- figures --------------------------------------------------------------------------------------------------------


def _draw_figures(
    variable: str, scores: Scores, example: Mapping[str, xr.DataArray] | None, root: Path
) -> list[_Figure]:
    """Draw every figure of one variable that has data into ``root/figures``; return them in page order."""
    figures: list[_Figure] = []

    def draw(name: str, caption: str, plot: Callable[..., Path], data: object, **options: object) -> None:
        file = f"figures/{_slug(variable)}_{name}.png"
        plot(data, root / file, **options)
        figures.append(_Figure(file, caption))

    if example is not None:
        draw(
            "example",
            f"Example fields{_time_label(example['truth'])} (top) and their errors against the truth (bottom).",
            plots.plot_comparison,
            example,
            title=f"{variable}: example",
        )
    for metric in (name for name in MAPPED_METRICS if name in scores.maps.data_vars):
        maps = scores.maps[metric]
        models = [m for m in scores.models if _has_values(maps.sel(model=m))]
        if models:
            long_name = str(maps.attrs.get("long_name", metric))
            draw(
                f"map_{_slug(str(metric))}",
                f"{long_name.capitalize()} at each grid point, one panel per model (shared colour scale; "
                "panel titles give the area-weighted mean).",
                plots.plot_metric_maps,
                {m: maps.sel(model=m, drop=True) for m in models},
                title=f"{variable}: {metric}",
                **_map_style(str(metric)),
            )
    if _has_values(scores.spectrum["truth_power"]):
        draw(
            "spectrum",
            "Radially averaged power spectra against wavelength, the truth in black, finer scales to the right; "
            "beneath, each model's power divided by the truth's, with 0.8-1.2 shaded.",
            plots.plot_spectra,
            scores.spectrum,
            title=f"{variable}: power spectra",
        )
    if _has_values(scores.quantiles["prediction"]):
        draw(
            "quantiles",
            "Quantile-quantile plot: each model's area-weighted quantiles against the truth's; "
            "a model on the dashed 1:1 line reproduces the truth's distribution.",
            plots.plot_quantiles,
            scores.quantiles,
            title=f"{variable}: quantiles",
            units=scores.units,
        )
    if any(_has_values(values) for values in scores.per_sample.data_vars.values()):
        draw(
            "per_sample",
            "Distribution of the scores of the individual samples (time steps), one violin per model, median marked.",
            plots.plot_sample_scores,
            scores.per_sample,
            title=f"{variable}: scores per sample",
        )
    if scores.grouped is not None and any(_has_values(v) for v in scores.grouped.data_vars.values()):
        groups = ", ".join(str(dim) for dim in scores.grouped.dims if dim != "model")
        draw(
            "grouped",
            f"Overall scores per {groups}.",
            plots.plot_grouped_scores,
            scores.grouped,
            title=f"{variable}: scores per {groups}",
        )
    if scores.rank_histogram is not None and _has_values(scores.rank_histogram):
        draw(
            "rank_histogram",
            "Rank histograms of the ensemble models: how often the truth falls at each rank among the members. "
            "A reliable ensemble is flat at the dashed line; a U shape means too little spread, a dome too much.",
            plots.plot_rank_histogram,
            scores.rank_histogram,
            title=f"{variable}: rank histogram",
        )
    return figures


def _has_values(values: xr.DataArray) -> bool:
    return bool(np.isfinite(values.values).any())


def _map_style(metric: str) -> dict[str, str | float]:
    """Colour scale of a score map: diverging about the perfect value for signed biases (0) and ratios (1), from 0
    for errors, robust otherwise (correlations)."""
    info = metric_info(metric)
    if info.perfect == 0.0 and (metric == "bias" or metric.endswith("_bias")):
        return {"scale": "diverging", "cmap": "RdBu_r", "centre": 0.0}
    if info.perfect == 1.0 and (metric.endswith("ratio") or metric == "spread_skill"):
        return {"scale": "diverging", "cmap": "PuOr_r", "centre": 1.0}
    if info.perfect == 0.0:
        return {"scale": "zero", "cmap": "magma_r"}
    return {"scale": "robust", "cmap": "viridis"}


def _time_label(field: xr.DataArray) -> str:
    """`` at <time>`` for a field with a single time coordinate, else ""."""
    for name in ("time", "valid_time"):
        if name in field.coords and field[name].size == 1:
            value = field[name].values.ravel()[0]
            text = np.datetime_as_string(value, unit="m") if np.issubdtype(field[name].dtype, np.datetime64) else value
            return f" at {text}"
    return ""


# --- index.html -----------------------------------------------------------------------------------------------------

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 80em; padding: 0 1em; color: #222; }
h1 { border-bottom: 2px solid #444; padding-bottom: .2em; }
h2 { border-bottom: 1px solid #aaa; margin-top: 2em; }
.scroll { max-width: 100%; overflow-x: auto; margin: .5em 0 1.5em; }
table { border-collapse: collapse; font-size: .9em; }
p.caption { color: #444; font-size: .9em; margin: .3em 0; }
th, td { border: 1px solid #ccc; padding: .25em .6em; white-space: nowrap; }
th { background: #f0f0f0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.best { font-weight: bold; background: #d9f2d9; }
td.na { color: #888; }
details > summary { cursor: pointer; margin: .5em 0; }
figure { margin: 1.5em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #ddd; }
figcaption { font-size: .9em; color: #444; max-width: 60em; }
.notes li, .meta { color: #444; }
"""


def _page(title: str, notes: list[str], sections: list[_Section], root: Path) -> str:
    """The self-contained HTML page: its header, then one section per variable (figures read from ``root``)."""
    escape = html.escape
    body = [_header_html(title, notes, sections), *(_variable_html(section, root) for section in sections)]
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


def _header_html(title: str, notes: list[str], sections: list[_Section]) -> str:
    """Title, notes, the data files and the table of contents."""
    escape = html.escape
    parts = [f"<h1>{escape(title)}</h1>"]
    if notes:
        parts.append('<ul class="notes">' + "".join(f"<li>{escape(note)}</li>" for note in notes) + "</ul>")
    links = " · ".join(f'<a href="{name}">{name}</a>' for name in _DATA_FILES)
    parts.append(f'<p class="meta">Written by dl4ds {escape(__version__)}. Data: {links}.</p>')
    parts.append(
        "<nav><ul>"
        + "".join(f'<li><a href="#{_slug(s.variable)}">{escape(s.variable)}</a></li>' for s in sections)
        + "</ul></nav>"
    )
    return "\n".join(parts)


def _variable_html(section: _Section, root: Path) -> str:
    """One variable: the headline table, skill against the reference(s), every score, the figures."""
    escape = html.escape
    units = f" ({escape(section.units)})" if section.units else ""
    return "\n".join(
        [
            f'<section id="{_slug(section.variable)}"><h2>{escape(section.variable)}{units}</h2>',
            _headline_html(section),
            _skill_html(section),
            _all_scores_html(section),
            _figures_html(section, root),
            "</section>",
        ]
    )


def _headline_html(section: _Section) -> str:
    return "<h3>Headline scores</h3>\n" + _html_table(
        section.headline, "best value of each column (closest to perfect) highlighted"
    )


def _skill_html(section: _Section) -> str:
    parts = []
    for reference, table in section.skill.items():
        parts.append(f"<h3>Skill relative to {html.escape(reference)}</h3>")
        parts.append(_html_table(table, _SKILL_NOTE))
    return "\n".join(parts)


def _all_scores_html(section: _Section) -> str:
    count = len(section.overall.headers)
    return (
        f"<details><summary>All {count} overall scores</summary>\n"
        + _html_table(section.overall, "best value of each column (closest to perfect) highlighted")
        + "\n</details>"
    )


def _figures_html(section: _Section, root: Path) -> str:
    """The figures, embedded as PNG data URIs so that the page is one file that can be mailed."""
    escape = html.escape
    parts = []
    for figure in section.figures:
        encoded = base64.b64encode((root / figure.file).read_bytes()).decode("ascii")
        parts.append(
            f'<figure id="{escape(Path(figure.file).stem)}"><img src="data:image/png;base64,{encoded}" '
            f'alt="{escape(figure.caption)}"><figcaption>{escape(figure.caption)} '
            f'(<a href="{escape(figure.file)}">PNG</a>)</figcaption></figure>'
        )
    return "\n".join(parts)


def _html_table(table: _Table, caption: str) -> str:
    """The table in a box that scrolls sideways when it is wider than the page."""
    escape = html.escape
    head = "".join(
        f'<th title="{escape(description)}">{escape(header)}</th>'
        for header, description in zip(table.headers, table.descriptions)
    )
    rows = []
    for model, values, best, absent in zip(table.models, table.values, table.best, table.not_applicable):
        cells = "".join(
            f'<td class="num{" best" if b else ""}{" na" if a else ""}"'
            + (' title="the reference is near perfect in this score"' if a else "")
            + f">{escape(_format(v, a))}</td>"
            for v, b, a in zip(values, best, absent)
        )
        rows.append(f"<tr><th>{escape(model)}</th>{cells}</tr>")
    return (  # the caption above the box, so that it wraps in the page rather than scrolling with the table
        f'<p class="caption">{escape(caption)}</p>\n<div class="scroll"><table>\n'
        f"<thead><tr><th>model</th>{head}</tr></thead>\n<tbody>\n" + "\n".join(rows) + "\n</tbody></table></div>"
    )


# --- moving the report into place -----------------------------------------------------------------------------------


def _commit(staging: Path, directory: Path) -> None:
    """Move the complete report from ``staging`` into ``directory``, replacing an earlier one.

    The old ``index.html`` goes first and the new one comes last, so the page
    never links to figures that are being replaced; the old ``figures/`` is
    moved into ``staging``, to be deleted with it.
    """
    (directory / "index.html").unlink(missing_ok=True)
    if (directory / "figures").exists():
        os.replace(directory / "figures", staging / "old-figures")
    (staging / "figures").mkdir(exist_ok=True)
    os.replace(staging / "figures", directory / "figures")
    for name in _DATA_FILES:
        os.replace(staging / name, directory / name)
    os.replace(staging / "index.html", directory / "index.html")
