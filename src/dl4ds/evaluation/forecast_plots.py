"""Figures of the forecast-skill scores: reliability diagrams and skill by lead time with bootstrap intervals.

Maps of the scores are drawn by :func:`dl4ds.evaluation.plots.plot_metric_maps`.
Like :mod:`dl4ds.evaluation.plots`, figures are built without pyplot and
written atomically.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import xarray as xr
from matplotlib import colormaps
from matplotlib.figure import Figure

from dl4ds.evaluation.plots import _save

__all__ = ["plot_reliability", "plot_skill_by_lead"]


def plot_reliability(reliability: xr.Dataset, path: str | os.PathLike[str], *, title: str = "") -> Path:
    """Reliability diagrams of one lead: a panel per tercile event, a line per model, frequency of use beneath.

    ``reliability`` holds ``forecast_probability``, ``observed_frequency`` and
    ``frequency`` with dims (model, event, bin) (one lead of
    :attr:`~dl4ds.evaluation.ForecastScores.reliability`). Points on the
    diagonal are reliable; a line flatter than it is over-confident.
    """
    events = [str(e) for e in reliability["event"].values]
    models = [str(m) for m in reliability["model"].values]
    colours = _colours(models)
    fig = Figure(figsize=(4.2 * len(events), 5.4), layout="constrained")
    grid = fig.add_gridspec(2, len(events), height_ratios=(3, 1))
    width = 0.8 / (len(reliability["bin"]) * max(len(models), 1))
    for column, event in enumerate(events):
        top = fig.add_subplot(grid[0, column])
        bottom = fig.add_subplot(grid[1, column], sharex=top)
        top.plot([0, 1], [0, 1], color="0.5", linestyle="--", linewidth=1)
        top.axhline(1 / 3, color="0.8", linewidth=1)
        for index, model in enumerate(models):
            part = reliability.sel(model=model, event=event)
            top.plot(
                part["forecast_probability"].values,
                part["observed_frequency"].values,
                marker="o",
                color=colours[model],
                label=model,
            )
            centres = reliability["bin"].values + (index - (len(models) - 1) / 2) * width
            bottom.bar(centres, part["frequency"].values, width=width, color=colours[model])
        top.set(xlim=(0, 1), ylim=(0, 1), ylabel="observed frequency", title=event.replace("_", " "))
        bottom.set(xlabel="forecast probability", ylabel="share")
        top.grid(alpha=0.3)
        if column == 0:
            top.legend(fontsize="small", loc="upper left")
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_skill_by_lead(
    area: xr.Dataset, scores: tuple[str, ...], path: str | os.PathLike[str], *, title: str = ""
) -> Path:
    """Area-mean scores against the lead, a line per model with its bootstrap interval as error bars.

    ``area`` is :attr:`~dl4ds.evaluation.ForecastScores.area` (``<score>`` and ``<score>_interval``).
    """
    models = [str(m) for m in area["model"].values]
    colours = _colours(models)
    leads = [str(v) for v in area["lead"].values]
    fig = Figure(figsize=(4.2 * len(scores), 3.6), layout="constrained")
    axes = fig.subplots(1, len(scores), squeeze=False)[0]
    offsets = np.linspace(-0.15, 0.15, len(models)) if len(models) > 1 else np.zeros(1)
    for ax, score in zip(axes, scores):
        for offset, model in zip(offsets, models):
            value = area[score].sel(model=model).values
            interval = area[f"{score}_interval"].sel(model=model).transpose("lead", "bound").values
            error = np.abs(interval.T - value[None, :])
            ax.errorbar(
                np.arange(len(leads)) + offset,
                value,
                yerr=error,
                marker="o",
                capsize=3,
                color=colours[model],
                label=model,
            )
        ax.axhline(0, color="0.5", linewidth=1)
        ax.set(xticks=np.arange(len(leads)), xticklabels=leads, xlabel="lead", title=score)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize="small")
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def _colours(models: list[str]) -> dict[str, tuple]:
    palette = colormaps["tab10"]
    return {model: palette(index % 10) for index, model in enumerate(models)}
