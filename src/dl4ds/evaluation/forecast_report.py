"""The forecast-skill report: per-lead tables with bootstrap intervals, reliability diagrams and skill maps, one page.

:func:`write_forecast_report` turns :class:`~dl4ds.evaluation.ForecastScores`
into a directory that can be moved or served as it is::

    index.html        the page: notes, skill by lead, differences, then a section per lead
    scores.nc         every score (ForecastScores.to_dataset)
    scores.csv        area means with intervals, one row per (model, lead)
    differences.csv   ΔACC, ΔCRPSS, ΔRPSS against each reference with intervals and p-values
    figures/*.png     skill by lead, and per lead: reliability diagrams, skill maps, difference maps

Like :func:`~dl4ds.evaluation.report.write_report`, the report is built in a
hidden folder and moved into place only once complete.
"""

from __future__ import annotations

import html
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from dl4ds._version import __version__
from dl4ds.evaluation import plots
from dl4ds.evaluation.forecast_plots import plot_reliability, plot_skill_by_lead
from dl4ds.evaluation.forecast_verification import DIFFERENCE_SCORES, SCORES, ForecastScores
from dl4ds.evaluation.report import _STYLE, _format, _slug, _staging_folder, _write_csv, _write_text
from dl4ds.io import write_netcdf

__all__ = ["write_forecast_report"]

_DATA_FILES = ("scores.nc", "scores.csv", "differences.csv")
_TABLE_SCORES = ("acc", "crpss", "rpss", "roc_lower", "roc_upper", "spread_error", "rmse")
_MAP_SCORES = ("acc", "crpss", "rpss")


@dataclass(frozen=True)
class _Figure:
    file: str
    caption: str


def write_forecast_report(
    scores: ForecastScores,
    directory: str | os.PathLike[str],
    *,
    title: str = "dl4ds forecast-skill report",
    notes: Sequence[str] = (),
) -> Path:
    """Write the report of ``scores`` to ``directory`` (created if needed) and return the path of its ``index.html``.

    The report's files (see the module docstring) replace those of an
    earlier report there, ``figures/`` as a whole; other files are left alone.

    Raises:
        OutputError: a directory that cannot be written (a file in the way, no permission, a full disk).
    """
    directory = Path(directory)
    notes = [str(note) for note in notes]
    staging = _staging_folder(directory)
    try:
        dataset = scores.to_dataset()
        dataset.attrs["title"] = title
        if notes:
            dataset.attrs["comment"] = "\n".join(notes)
        write_netcdf(dataset, staging / "scores.nc")
        _write_csv(scores.table(_TABLE_SCORES), staging / "scores.csv")
        _write_csv(scores.difference_table(), staging / "differences.csv")
        (staging / "figures").mkdir()
        overview = plot_skill_by_lead(
            scores.area, ("acc", "crpss", "rpss"), staging / "figures" / "skill_by_lead.png", title=title
        )
        sections = [_lead_section(scores, index, staging) for index in range(scores.area.sizes["lead"])]
        page = _page(title, notes, scores, _Figure(str(overview.relative_to(staging)), _OVERVIEW), sections)
        _write_text(staging / "index.html", page)
        _commit(staging, directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return directory / "index.html"


_OVERVIEW = (
    "Area means (cos-latitude weighted) against the lead, with the bootstrap intervals over the start years as "
    "error bars. ACC: anomaly correlation of the ensemble mean; CRPSS and RPSS (terciles): skill against the "
    "observed climatology, 0 no better than it."
)


def _lead_section(scores: ForecastScores, index: int, root: Path) -> tuple[str, list[_Figure]]:
    """The heading and figures of one lead."""
    lead = scores.area["lead"].values[index]
    label = _lead_label(lead)
    slug = _slug(f"lead_{label}")
    figures = []
    reliability = scores.reliability.isel(lead=index)
    file = f"figures/{slug}_reliability.png"
    plot_reliability(reliability, root / file, title=f"lead {label}: reliability of tercile events")
    figures.append(
        _Figure(
            file,
            "Reliability diagrams of the tercile events, pooled over the area (cos-latitude weighted): observed "
            "frequency against forecast probability (the diagonal is perfect reliability, the grey line the "
            "climatological 1/3), and beneath, how often each probability was forecast.",
        )
    )
    confidence = float(scores.attrs.get("confidence", 0.9))
    for score in _MAP_SCORES:
        maps = scores.maps[score].isel(lead=index).assign_attrs(long_name=score, units="1")
        file = f"figures/{slug}_{score}_map.png"
        plots.plot_metric_maps(
            {model: maps.sel(model=model, drop=True) for model in scores.models},
            root / file,
            title=f"lead {label}: {score}",
            scale="diverging",
            cmap="RdBu_r",
        )
        figures.append(_Figure(file, f"{SCORES[score][0].capitalize()} at each point, one panel per forecast."))
    for score in DIFFERENCE_SCORES[:2] if scores.references else ():
        deltas = scores.difference_maps[f"delta_{score}"].isel(lead=index)
        p_values = scores.difference_maps[f"delta_{score}_p_value"].isel(lead=index)
        panels = {}
        for reference in scores.references:
            delta = deltas.sel(reference=reference, drop=True).assign_attrs(
                long_name=f"\N{GREEK CAPITAL LETTER DELTA}{score}", units="1"
            )
            panels[f"minus {reference}"] = delta
            panels[f"minus {reference}, significant"] = delta.where(p_values.sel(reference=reference) < 1 - confidence)
        file = f"figures/{slug}_delta_{score}_map.png"
        plots.plot_metric_maps(
            panels, root / file, title=f"lead {label}: {score} of {scores.models[0]}", scale="diverging", cmap="PuOr"
        )
        figures.append(
            _Figure(
                file,
                f"Difference of the {score} of {scores.models[0]} minus each reference; beside it, only the points "
                f"where the difference is significant at {confidence:.0%} (two-sided block bootstrap over the start years).",
            )
        )
    return label, figures


def _lead_label(lead: object) -> str:
    if isinstance(lead, np.timedelta64):
        return f"{lead / np.timedelta64(1, 'D'):g}d"
    return str(lead)


# --- index.html -----------------------------------------------------------------------------------------------------


def _page(
    title: str,
    notes: list[str],
    scores: ForecastScores,
    overview: _Figure,
    sections: list[tuple[str, list[_Figure]]],
) -> str:
    escape = html.escape
    confidence = float(scores.attrs.get("confidence", 0.9))
    body = [f"<h1>{escape(title)}</h1>"]
    if notes:
        body.append('<ul class="notes">' + "".join(f"<li>{escape(note)}</li>" for note in notes) + "</ul>")
    links = " · ".join(f'<a href="{name}">{name}</a>' for name in _DATA_FILES)
    body.append(
        f'<p class="meta">Written by dl4ds {escape(__version__)}. Start years {escape(str(scores.attrs.get("start_years", "")))}; '
        f"{escape(str(scores.attrs.get('members', '')))} members; {confidence:.0%} intervals from "
        f"{escape(str(scores.attrs.get('resamples', '')))} bootstrap resamples of the years. Data: {links}.</p>"
    )
    body.append(
        "<nav><ul>"
        + "".join(f'<li><a href="#lead_{_slug(label)}">lead {escape(label)}</a></li>' for label, _ in sections)
    )
    body.append("</ul></nav>")
    body.append("<h2>Skill by lead</h2>")
    units = {name: str(scores.area[name].attrs.get("units", "")) for name in _TABLE_SCORES}
    caption = f"area means [{confidence:.0%} interval]"
    body.append(_table(scores.table(_TABLE_SCORES), "model", _TABLE_SCORES, caption, units=units))
    if scores.references:
        body.append(f"<h3>{escape(scores.models[0])} minus each reference</h3>")
        names = tuple(f"delta_{score}" for score in DIFFERENCE_SCORES)
        body.append(
            _table(
                scores.difference_table(),
                "reference",
                names,
                f"differences of the area means [{confidence:.0%} interval] (p: two-sided bootstrap p-value)",
                p_values=True,
            )
        )
    body.append(_figure(overview))
    for label, figures in sections:
        body.append(f'<section id="lead_{_slug(label)}"><h2>Lead {escape(label)}</h2>')
        body.extend(_figure(figure) for figure in figures)
        body.append("</section>")
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


def _table(
    frame: pd.DataFrame,
    key: str,
    names: Sequence[str],
    caption: str,
    *,
    p_values: bool = False,
    units: Mapping[str, str] | None = None,
) -> str:
    escape = html.escape
    shown = {name: (units or {}).get(name, "1") for name in names}
    head = "".join(
        f"<th>{escape(name)}{escape(f' ({shown[name]})' if shown[name] not in ('', '1') else '')}</th>"
        for name in names
    )
    rows = []
    for _, row in frame.iterrows():
        cells = []
        for name in names:
            text = f"{_format(row[name])} [{_format(row[f'{name}_low'])}, {_format(row[f'{name}_high'])}]"
            if p_values:
                text += f" p={_format(row[f'{name}_p_value'])}"
            cells.append(f'<td class="num">{escape(text)}</td>')
        rows.append(f"<tr><th>{escape(str(row[key]))}</th><td>{escape(str(row['lead']))}</td>{''.join(cells)}</tr>")
    return (
        f"<table><caption>{escape(caption)}</caption>\n<thead><tr><th>{escape(key)}</th><th>lead</th>{head}</tr></thead>\n"
        "<tbody>\n" + "\n".join(rows) + "\n</tbody></table>"
    )


def _figure(figure: _Figure) -> str:
    escape = html.escape
    return (
        f'<figure><img src="{escape(figure.file)}" alt="{escape(figure.caption)}" loading="lazy">'
        f"<figcaption>{escape(figure.caption)}</figcaption></figure>"
    )


def _commit(staging: Path, directory: Path) -> None:
    """Move the complete report into ``directory``: the old page first, the new page last (see report._commit)."""
    (directory / "index.html").unlink(missing_ok=True)
    if (directory / "figures").exists():
        os.replace(directory / "figures", staging / "old-figures")
    os.replace(staging / "figures", directory / "figures")
    for name in _DATA_FILES:
        os.replace(staging / name, directory / name)
    os.replace(staging / "index.html", directory / "index.html")
