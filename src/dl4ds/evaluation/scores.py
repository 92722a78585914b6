"""The verification metrics dl4ds computes, and the container of their results.

Every metric has an entry in :data:`METRICS` that says what it measures, in
which units, and what a perfect forecast would score. Skill scores against a
reference model (:func:`skill_scores`) use the distance to that perfect value,
so one formula covers errors (perfect 0), correlations (perfect 1) and ratios.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Literal

import numpy as np
import pandas as pd
import xarray as xr

from dl4ds.errors import DataError

__all__ = [
    "METRICS",
    "NEAR_PERFECT",
    "MetricInfo",
    "Scores",
    "metric_info",
    "near_perfect",
    "quantile_metric",
    "skill_scores",
]

UnitsKind = Literal["data", "dimensionless", "dB", "mm day-1"]


@dataclass(frozen=True)
class MetricInfo:
    """What a metric measures.

    Attributes:
        long_name: a description for tables, plots and NetCDF ``long_name``.
        units: ``"data"`` (the variable's units), ``"dimensionless"``, ``"dB"``, or ``"mm day-1"``
            (daily precipitation, whatever the data's units).
        perfect: the score of a perfect prediction; ``inf`` for PSNR.
    """

    long_name: str
    units: UnitsKind
    perfect: float

    def distance(self, value: np.ndarray | float) -> np.ndarray:
        """How far ``value`` is from perfect (0 = perfect); PSNR maps to the normalised MSE 10**(-PSNR/10)."""
        value = np.asarray(value, dtype=np.float64)
        if np.isinf(self.perfect):
            return 10.0 ** (-value / 10.0)
        return np.abs(value - self.perfect)

    def units_for(self, data_units: str) -> str:
        return {"data": data_units, "dimensionless": "1", "dB": "dB", "mm day-1": "mm day-1"}[self.units]


METRICS: dict[str, MetricInfo] = {
    "bias": MetricInfo("mean error (prediction - truth)", "data", 0.0),
    "mae": MetricInfo("mean absolute error", "data", 0.0),
    "rmse": MetricInfo("root mean square error", "data", 0.0),
    "correlation": MetricInfo("Pearson correlation", "dimensionless", 1.0),
    "spearman": MetricInfo("Spearman rank correlation", "dimensionless", 1.0),
    "std_ratio": MetricInfo("ratio of standard deviations (prediction / truth)", "dimensionless", 1.0),
    "psnr": MetricInfo("peak signal-to-noise ratio (peak = range of the truth)", "dB", float("inf")),
    "ssim": MetricInfo("structural similarity (7x7 window)", "dimensionless", 1.0),
    "max_bias": MetricInfo("bias of the period's maximum", "data", 0.0),
    "min_bias": MetricInfo("bias of the period's minimum", "data", 0.0),
    "spectral_ratio": MetricInfo(
        "power of the prediction / the truth's over the two highest wavenumber octaves", "dimensionless", 1.0
    ),
    "crps": MetricInfo("continuous ranked probability score of the ensemble", "data", 0.0),
    "spread_skill": MetricInfo(
        "ensemble spread / RMSE of the ensemble mean, times sqrt((M+1)/M)", "dimensionless", 1.0
    ),
    "wet_day_frequency_bias": MetricInfo("bias of the fraction of wet days (precipitation)", "dimensionless", 0.0),
    "p95_wet_day_bias": MetricInfo("bias of the 95th percentile of wet-day precipitation", "mm day-1", 0.0),
    "p99_wet_day_bias": MetricInfo("bias of the 99th percentile of wet-day precipitation", "mm day-1", 0.0),
}


_QUANTILE_BIAS = re.compile(r"p(\d+(?:_\d+)?)_bias")


def quantile_metric(probability: float) -> str:
    """The metric name of the bias of quantile ``probability``: 0.98 -> ``"p98_bias"``, 0.995 -> ``"p99_5_bias"``."""
    percent = round(100.0 * probability, 6)
    return f"p{percent:02.0f}_bias" if percent.is_integer() else f"p{percent:g}_bias".replace(".", "_")


def metric_info(name: str) -> MetricInfo:
    """The :class:`MetricInfo` of a metric of :data:`METRICS` or a quantile bias (``p98_bias``)."""
    if name in METRICS:
        return METRICS[name]
    match = _QUANTILE_BIAS.fullmatch(name)
    if match:
        percent = float(match.group(1).replace("_", "."))
        return MetricInfo(f"bias of the {percent:g} % quantile", "data", 0.0)
    raise DataError(f"unknown metric {name!r}; the metrics are {sorted(METRICS)} and pNN_bias quantile biases")


@dataclass(frozen=True)
class Scores:
    """Verification results of one variable for one or more models (network, baselines).

    Every dataset has a leading ``model`` dimension; each of its data
    variables is one metric named as in :data:`METRICS`, with ``long_name`` and
    ``units`` attributes. Metrics that do not apply are absent (for example
    ``crps`` for a deterministic prediction) or NaN for the models they do not
    apply to.

    Attributes:
        variable: name of the verified variable.
        units: its units ("" if unknown).
        overall: metrics pooled over all points, dims (model,). Moment scores
            (bias, mae, rmse, correlation, std_ratio, psnr) and CRPS are pooled
            over space and time with the area weights; ssim is the mean of the
            per-sample values; quantile and extreme biases are the area-weighted
            mean of the absolute values of their (signed) maps, so that
            opposite errors in different places do not cancel.
        per_sample: spatial scores of each time step (or other sample), dims
            (model, time[, other sample dims]).
        maps: temporal scores at each grid point, dims (model, lat, lon).
        grouped: overall scores per group (e.g. ``season``), dims (model, group),
            or None.
        spectrum: radially averaged power spectra, dims (model, wavenumber) for
            ``power`` and (wavenumber,) for ``truth_power``; ``wavenumber`` in
            cycles per km with a ``wavelength`` coordinate in km.
        quantiles: pooled area-weighted quantiles for quantile-quantile plots:
            ``prediction`` (model, probability) and ``truth`` (probability,).
        rank_histogram: frequency of the rank of the truth among the ensemble
            members, dims (model, rank) with ranks 0..M, or None if no model
            is an ensemble.
    """

    variable: str
    units: str
    overall: xr.Dataset
    per_sample: xr.Dataset
    maps: xr.Dataset
    grouped: xr.Dataset | None
    spectrum: xr.Dataset
    quantiles: xr.Dataset
    rank_histogram: xr.DataArray | None

    @property
    def models(self) -> list[str]:
        return [str(m) for m in self.overall["model"].values]

    def to_dataframe(self) -> pd.DataFrame:
        """The overall scores as a table: one row per model (index ``model``), one column per metric."""
        frame = self.overall.to_dataframe()[list(map(str, self.overall.data_vars))]
        frame.index = frame.index.astype(str)
        return frame

    def _repr_html_(self) -> str:
        units = f" ({self.units})" if self.units else ""
        return frame_html(self.to_dataframe(), f"{self.variable}{units}: overall scores of {len(self.models)} models")

    @classmethod
    def combine(cls, parts: Sequence[Scores]) -> Scores:
        """Stack the scores of several models for the same variable and truth along ``model``."""
        if not parts:
            raise DataError("no scores to combine")
        first = parts[0]
        names = [m for part in parts for m in part.models]
        if len(set(names)) != len(names):
            raise DataError(f"models {names} are not unique; give each prediction its own name")
        for part in parts[1:]:
            if part.variable != first.variable:
                raise DataError(f"cannot combine scores of {first.variable!r} and {part.variable!r}")

        def stack(name: str, shared: tuple[str, ...] = ()) -> xr.Dataset | xr.DataArray | None:
            items = [getattr(part, name) for part in parts]
            present = [item for item in items if item is not None]
            if not present:
                return None
            if len(present) < len(items):  # e.g. a rank histogram for the ensemble only
                template = present[0]
                items = [
                    item if item is not None else xr.full_like(template, np.nan).assign_coords(model=part.models)
                    for item, part in zip(items, parts)
                ]
            if shared and isinstance(items[0], xr.Dataset):
                common = items[0][list(shared)]
                items = [item.drop_vars(list(shared)) for item in items]
                return xr.merge([xr.concat(items, "model", join="outer"), common])
            return xr.concat(items, "model", join="outer")

        def stack_dataset(name: str, shared: tuple[str, ...] = ()) -> xr.Dataset:
            """``stack`` of a field that every part has as a Dataset."""
            stacked = stack(name, shared)
            assert isinstance(stacked, xr.Dataset), f"the {name} scores are not a Dataset"
            return stacked

        grouped = stack("grouped")
        assert grouped is None or isinstance(grouped, xr.Dataset), "the grouped scores are not a Dataset"
        rank_histogram = stack("rank_histogram")
        assert rank_histogram is None or isinstance(rank_histogram, xr.DataArray), (
            "the rank histogram is not a DataArray"
        )
        return cls(
            variable=first.variable,
            units=first.units,
            overall=stack_dataset("overall"),
            per_sample=stack_dataset("per_sample"),
            maps=stack_dataset("maps"),
            grouped=grouped,
            spectrum=stack_dataset("spectrum", shared=("truth_power",)),
            quantiles=stack_dataset("quantiles", shared=("truth",)),
            rank_histogram=rank_histogram,
        )

    def select(self, models: Sequence[str]) -> Scores:
        """The scores of ``models`` only, in that order."""
        missing = [m for m in models if m not in self.models]
        if missing:
            raise DataError(f"no scores for {missing}; the models are {self.models}")
        values = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, (xr.Dataset, xr.DataArray)) and "model" in value.dims:
                value = value.sel(model=list(models))
            values[item.name] = value
        return Scores(**values)


def skill_scores(scores: Scores, references: Sequence[str] | None = None) -> xr.Dataset:
    """Skill of every model relative to each reference model, for every overall metric.

    ``skill = 1 - distance(model) / distance(reference)``, where ``distance``
    is how far a score is from perfect (:meth:`MetricInfo.distance`): 1 is a
    perfect model, 0 no better than the reference, negative worse. For RMSE
    this is the usual ``1 - RMSE / RMSE_ref``; for correlations
    ``1 - (1 - r) / (1 - r_ref)``; for biases the absolute values are compared.

    Returns a Dataset with the overall metrics as variables, dims (model,
    reference). ``references`` defaults to all models. A skill is NaN where
    the reference is near perfect in that metric (:func:`near_perfect`): its
    ratio would be a meaningless large number, such as a bias skill of -120
    against a reference whose bias is 0.0003 K.
    """
    references = list(scores.models if references is None else references)
    overall = scores.overall
    perfect = near_perfect(scores, references)
    result = {}
    for name, values in overall.data_vars.items():
        info = metric_info(str(name))
        distance = xr.apply_ufunc(info.distance, values)
        reference = distance.sel(model=references).rename(model="reference")
        with np.errstate(divide="ignore", invalid="ignore"):
            skill = 1.0 - distance / reference
        skill = skill.where((reference > 0) & ~perfect[name])
        skill.attrs = {"long_name": f"skill in {info.long_name} relative to the reference", "units": "1"}
        result[str(name)] = skill
    return xr.Dataset(result)


NEAR_PERFECT = {"data": 0.01, "dimensionless": 1e-3, "mm day-1": 0.01}
"""How close to perfect a reference's score may be before skill against it is not shown: for scores in the data's
units, this fraction of the reference's RMSE (its typical error); for dimensionless scores and daily precipitation
(mm day-1), this distance. PSNR has no such limit (its distance, the normalised MSE, is never near 0 in practice)."""


def near_perfect(scores: Scores, references: Sequence[str]) -> xr.Dataset:
    """Whether each reference's overall score is so close to perfect that skill against it means nothing.

    Returns booleans with the overall metrics as variables, dims (reference,);
    the limits are :data:`NEAR_PERFECT`.
    """
    overall = scores.overall.sel(model=list(references)).rename(model="reference")
    typical = overall["rmse"] if "rmse" in overall else xr.full_like(overall[next(iter(overall.data_vars))], np.nan)
    result = {}
    for name, values in overall.data_vars.items():
        info = metric_info(str(name))
        distance = xr.apply_ufunc(info.distance, values)
        if info.units == "data":
            limit = NEAR_PERFECT["data"] * typical
        else:
            limit = xr.full_like(distance, NEAR_PERFECT.get(info.units, 0.0))
        result[str(name)] = (distance < limit).fillna(False)
    return xr.Dataset(result)


def metrics_frame(metrics: Mapping[str, Mapping[str, float]]) -> pd.DataFrame:
    """``{model: {metric: value}}`` (the headline scores of a verification) as a table, one row per model."""
    frame = pd.DataFrame.from_dict({str(model): dict(values) for model, values in metrics.items()}, orient="index")
    return frame.rename_axis("model")


def frame_html(frame: pd.DataFrame, caption: str, note: str = "") -> str:
    """A table of scores for a notebook: 4 significant digits, a dash for NaN, under a caption."""
    table = frame.to_html(float_format=lambda value: f"{value:.4g}", na_rep="\N{EN DASH}", border=0)
    extra = f"<br><small>{html.escape(note)}</small>" if note else ""
    return f"<div><strong>{html.escape(caption)}</strong>{extra}{table}</div>"
