"""Hindcast verification: the skill of a (downscaled) seasonal ensemble per lead time, beside reference forecasts.

:class:`ForecastVerification` matches every forecast to the observations
(:mod:`dl4ds.data.hindcast`), takes anomalies, and scores them
(:mod:`dl4ds.evaluation.forecast_scores`) per lead, as maps and as area
means (cos-latitude weighted), with a block bootstrap over the start years
for confidence (bias-corrected and accelerated intervals, whose jackknife
leaves out one start year at a time; percentile p-values). The first
forecast is the one verified; the others are its references (e.g. the
coarse forecast interpolated, baselines applied member by member), and the
differences of skill (ΔACC, ΔCRPSS, ΔRPSS) come with intervals and
significance maps from the same, paired, resamples.

The fields are read in bands of latitude, scored in parallel threads (up to
4, as many as there are CPUs), so the working memory stays small however
many starts, members and points the hindcast has. A point is scored
at a start and lead where the observation, every member of every forecast
and the climatological ensemble are valid, so all forecasts are compared
on the same samples.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import pandas as pd
import xarray as xr

from dl4ds.data.hindcast import Hindcast, StartCalendar, climatology, match_observations, to_units_of
from dl4ds.errors import DataError
from dl4ds.evaluation import forecast_scores as fs
from dl4ds.evaluation.alignment import area_weights
from dl4ds.evaluation.forecast_options import ForecastOptions

logger = logging.getLogger(__name__)

__all__ = ["DIFFERENCE_SCORES", "SCORES", "ForecastScores", "ForecastVerification"]

SCORES = {
    "acc": ("anomaly correlation of the ensemble mean", "1"),
    "rmse": ("RMSE of the ensemble-mean anomaly", None),
    "crps": ("CRPS of the ensemble anomalies", None),
    "crpss": ("CRPS skill score against the observed climatology", "1"),
    "rpss": ("tercile ranked probability skill score against climatology", "1"),
    "roc_lower": ("ROC area of the lower-tercile event", "1"),
    "roc_upper": ("ROC area of the upper-tercile event", "1"),
    "spread_error": ("spread-error ratio (1 for a reliable ensemble)", "1"),
}
"""Each score's long name and units (None: those of the data)."""

DIFFERENCE_SCORES = ("acc", "crpss", "rpss")
"""The scores whose difference from each reference is given with intervals and significance maps."""

_EVENTS = ("lower", "upper")
_BLOCK_VALUES = 2**21  # member values scored per band: arrays under 32 MiB, which malloc reuses without page faults
_READ_VALUES = 2**25  # member values read at once per forecast (128 MiB of float32)
_RESAMPLED_VALUES = 2**19  # values of one resampled statistic held at a time
_THREADS = 4  # bands scored at once, at most (and at most the CPUs)


@dataclass(frozen=True)
class ForecastScores:
    """The skill of every forecast per lead.

    Attributes:
        area: area means (cos-latitude weighted) of the :data:`SCORES`, dims
            (model, lead), and their BCa bootstrap intervals ``<score>_interval``
            (model, lead, bound). The ACC is the mean of its map, the other
            scores are of the area-pooled sums (e.g. CRPSS = 1 - sum CRPS /
            sum climatological CRPS).
        maps: the :data:`SCORES` at each point, dims (model, lead, lat, lon).
        differences: ``delta_<score>`` (the verified forecast minus each
            reference) for the :data:`DIFFERENCE_SCORES`, dims (reference,
            lead), with ``delta_<score>_interval`` (reference, lead, bound) and
            the bootstrap ``delta_<score>_p_value`` (reference, lead).
        difference_maps: the same differences and p-values at each point, dims (reference, lead, lat, lon).
        reliability: ``forecast_probability``, ``observed_frequency`` and
            ``frequency`` per (model, lead, event, bin), for the events lower
            and upper tercile, pooled over the area.
        attrs: variable, units, confidence, resamples, start years.
    """

    area: xr.Dataset
    maps: xr.Dataset
    differences: xr.Dataset
    difference_maps: xr.Dataset
    reliability: xr.Dataset
    attrs: dict[str, str | int | float] = field(default_factory=dict)

    @property
    def models(self) -> list[str]:
        return [str(m) for m in self.area["model"].values]

    @property
    def references(self) -> list[str]:
        return [str(m) for m in self.differences["reference"].values]

    def to_dataset(self) -> xr.Dataset:
        """Everything as one Dataset: ``<score>``, ``<score>_interval``, ``<score>_map``, ``delta_*``,
        ``delta_*_map``, ``reliability_*``; ``attrs`` as global attributes."""
        parts = [
            self.area,
            self.maps.rename({name: f"{name}_map" for name in self.maps.data_vars}),
            self.differences,
            self.difference_maps.rename({name: f"{name}_map" for name in self.difference_maps.data_vars}),
            self.reliability.rename({name: f"reliability_{name}" for name in self.reliability.data_vars}),
        ]
        dataset = xr.merge(parts, compat="no_conflicts", join="outer", combine_attrs="drop")
        dataset.attrs = dict(self.attrs)
        return dataset

    def table(self, scores: tuple[str, ...] = ("acc", "crpss", "rpss")) -> pd.DataFrame:
        """Area means with their intervals, one row per (model, lead): ``<score>``, ``<score>_low``, ``<score>_high``."""
        rows = []
        for model in self.models:
            for lead in self.area["lead"].values:
                row: dict[str, object] = {"model": model, "lead": _label(lead)}
                for score in scores:
                    point = self.area.sel(model=model, lead=lead)
                    row[score] = float(point[score])
                    row[f"{score}_low"], row[f"{score}_high"] = (float(v) for v in point[f"{score}_interval"].values)
                rows.append(row)
        return pd.DataFrame(rows)

    def difference_table(self) -> pd.DataFrame:
        """Differences of skill with intervals and p-values, one row per (reference, lead)."""
        rows = []
        for reference in self.references:
            for lead in self.differences["lead"].values:
                point = self.differences.sel(reference=reference, lead=lead)
                row: dict[str, object] = {"reference": reference, "lead": _label(lead)}
                for score in DIFFERENCE_SCORES:
                    name = f"delta_{score}"
                    row[name] = float(point[name])
                    row[f"{name}_low"], row[f"{name}_high"] = (float(v) for v in point[f"{name}_interval"].values)
                    row[f"{name}_p_value"] = float(point[f"{name}_p_value"])
                rows.append(row)
        return pd.DataFrame(rows)


@dataclass(frozen=True)
class ForecastVerification:
    """Scores hindcasts against observations per lead time (see the module docstring).

    Args:
        options: the :class:`~dl4ds.evaluation.forecast_options.ForecastOptions`, or a mapping of them.
    """

    options: ForecastOptions = field(default_factory=ForecastOptions)

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", ForecastOptions.parse(self.options, "forecast verification options"))

    def score(
        self,
        forecasts: Mapping[str, xr.DataArray | xr.Dataset],
        observations: xr.DataArray | xr.Dataset,
        *,
        variable: str | None = None,
    ) -> ForecastScores:
        """Score every forecast (name -> hindcast) against ``observations``; the first is the one verified.

        Each forecast has dims (init, member, lead, lat, lon) under any of
        their usual names; the references must have the first one's grid,
        members, starts and leads. ``variable`` picks the variable of
        Datasets holding several.

        Raises:
            DataError: no forecast, a forecast without an init or lead
                dimension, references of another layout, fewer than 3 start
                years, observations covering none of the valid times or finer
                than the forecast's period without an aggregation rule (see
                :func:`~dl4ds.data.hindcast.match_observations`), or no
                point where everything is valid.
        """
        if not forecasts:
            raise DataError("nothing to verify: pass at least one forecast, {name: hindcast}")
        hindcasts = {
            name: Hindcast.of(data, variable=variable, role=f"forecast {name!r}") for name, data in forecasts.items()
        }
        names = list(hindcasts)
        first = hindcasts[names[0]]
        for name in names[1:]:
            first.check_like(hindcasts[name], name)
        hindcasts = {name: to_units_of(item, observations, name) for name, item in hindcasts.items()}
        first = hindcasts[names[0]]
        starts = first.starts
        starts.check(f"forecast {names[0]!r}")
        observed = match_observations(first, observations, aggregation=self.options.aggregation, variable=variable)
        return _Scorer(self.options, hindcasts, observed, starts).run()


class _Scorer:
    """One verification: reads the forecasts band by band, accumulates the sums, assembles the scores."""

    def __init__(
        self,
        options: ForecastOptions,
        hindcasts: Mapping[str, Hindcast],
        observed: xr.DataArray,
        starts: StartCalendar,
    ) -> None:
        self.options = options
        self.hindcasts = dict(hindcasts)
        self.names = list(hindcasts)
        self.first = self.hindcasts[self.names[0]]
        self.starts = starts
        data = self.first.data
        self.n, self.members, self.leads = data.sizes["init"], data.sizes["member"], data.sizes["lead"]
        self.ny, self.nx = data.sizes["lat"], data.sizes["lon"]
        self.years, self.year_index = np.unique(starts.years, return_inverse=True)
        self.one_hot = (self.year_index[None, :] == np.arange(self.years.size)[:, None]).astype(np.float64)
        rng = np.random.default_rng(options.seed)
        # rows: the original sample, the bootstrap resamples, then the jackknife (each year left out) for BCa
        self.bootstrap = slice(1, 1 + options.resamples)
        self.jackknife = slice(1 + options.resamples, None)
        self.weights = np.concatenate(
            [fs.resample_weights(self.years.size, options.resamples, rng), fs.jackknife_weights(self.years.size)]
        )  # (1 + R + Y, Y)
        self.lat_weights = area_weights(data, "latitude").values
        observed_values = observed.values.astype(np.float64)
        self.observed = observed_values - climatology(observed_values, starts, leave_one_out=options.leave_one_out)
        self.observed_attrs = dict(observed.attrs)
        self.variable = str(observed.name or data.name or "")
        rows = self.weights.shape[0]
        models, leads, years = len(self.names), self.leads, self.years.size
        self.maps = {score: np.full((models, leads, self.ny, self.nx), np.nan) for score in SCORES}
        self.delta_maps = {
            f"delta_{score}{part}": np.full((models - 1, leads, self.ny, self.nx), np.nan)
            for score in DIFFERENCE_SCORES
            for part in ("", "_p_value")
        }
        self.area_sums = np.zeros((models, years, len(fs.SUM_NAMES), leads))
        self.acc_area = np.zeros((models, 2, rows, leads))  # weighted sum of ACC, weight of finite ACC
        self.counts = np.zeros((models, 2, years, leads, self.members + 1, 2))
        self.valid_points = 0
        self.lock = threading.Lock()

    def run(self) -> ForecastScores:
        per_row = max(1, self.n * self.members * self.leads * self.nx)
        rows = max(1, _BLOCK_VALUES // per_row)
        reads = rows * max(1, _READ_VALUES // (rows * per_row))  # rows read at once: fewer, larger reads
        threads = min(_THREADS, os.cpu_count() or 1)
        with ThreadPoolExecutor(max_workers=threads) as pool:  # NumPy and BLAS release the GIL
            for first in range(0, self.ny, reads):
                block = slice(first, min(first + reads, self.ny))
                values = {name: item.data.isel(lat=block).values for name, item in self.hindcasts.items()}
                bands = [slice(start, min(start + rows, block.stop)) for start in range(block.start, block.stop, rows)]
                for done in pool.map(partial(self._band, block=values, offset=first), bands):
                    assert done is None
        if self.valid_points == 0:
            raise DataError(
                "no point has a valid observation and valid forecasts at any start and lead (everything is NaN in at "
                "least one of them); check that the forecasts and observations overlap and are not fully masked."
            )
        return self._assemble()

    def _band(self, rows: slice, block: Mapping[str, np.ndarray], offset: int) -> None:
        """Score the points of ``rows``; ``block`` holds each forecast's rows from ``offset`` on, as read."""
        count = rows.stop - rows.start
        points = count * self.nx
        observed = self.observed[:, :, rows].reshape(self.n, self.leads, points)
        clim_crps = fs.climatological_crps(observed, self.starts.months, self.starts.years)
        anomalies = {}
        valid = np.isfinite(observed) & np.isfinite(clim_crps)
        for name in self.names:
            values = block[name][..., rows.start - offset : rows.stop - offset, :].astype(np.float64)
            values = values.reshape(self.n, self.members, self.leads, points)
            mean = values.mean(axis=1)
            values -= climatology(mean, self.starts, leave_one_out=self.options.leave_one_out)[:, None]
            valid &= np.isfinite(values).all(axis=1)
            anomalies[name] = values
        with self.lock:
            self.valid_points += int(valid.sum())
        weight = valid.astype(np.float64)
        everywhere = bool(valid.all())
        observed = observed if everywhere else np.where(valid, observed, np.nan)
        observed_terciles = fs.tercile_edges(observed, self.starts.months, axis=())
        area = np.repeat(self.lat_weights[rows], self.nx)  # (P,)
        statistics = []
        for model, name in enumerate(self.names):
            members = anomalies.pop(name)
            if not everywhere:
                members = np.where(valid[:, None], members, np.nan)
            terciles = fs.tercile_edges(members, self.starts.months, axis=(1,))
            items = fs.start_statistics(members, observed, terciles, observed_terciles)
            del members
            items["w"], items["crps_clim"] = weight, clim_crps
            sums = np.stack([np.where(valid, items[key], 0.0) for key in fs.SUM_NAMES], axis=1)  # (n, S, L, P)
            per_year = (self.one_hot @ sums.reshape(self.n, -1)).reshape(self.years.size, *sums.shape[1:])
            area_sums = per_year @ area
            total = fs.scores_from_sums(dict(zip(fs.SUM_NAMES, per_year.sum(axis=0))), self.members)
            for score, values in total.items():
                self.maps[score][model, :, rows] = values.reshape(self.leads, count, self.nx)
            finite = np.isfinite(total["acc"])
            acc_sum, acc_weight = np.where(finite, total["acc"], 0.0) @ area, finite @ area
            counts = []
            for event in _EVENTS:
                counts.append(
                    fs.event_counts(
                        np.where(valid, items[f"k_{event}"], 0),
                        np.where(valid, items[f"e_{event}"], 0.0),
                        weight * area,
                        self.year_index,
                        self.years.size,
                        self.members,
                    )
                )
                roc = fs.roc_area(items[f"p_{event}"], np.where(valid, items[f"e_{event}"], 0.0), weight)
                self.maps[f"roc_{event}"][model, :, rows] = roc.reshape(self.leads, count, self.nx)
            with self.lock:
                self.area_sums[model] += area_sums
                self.acc_area[model, 0, 0] += acc_sum
                self.acc_area[model, 1, 0] += acc_weight
                self.counts[model] += np.stack(counts)
            statistics.append(per_year)
        self._resampled(statistics, rows, area)

    def _resampled(self, statistics: list[np.ndarray], rows: slice, area: np.ndarray) -> None:
        """ACC, CRPSS and RPSS of every bootstrap and jackknife resample at the points of ``rows``: ACC area sums,
        p-value maps (of the bootstrap resamples).

        ``statistics`` holds each model's per-year sums (Y, S, L, P). The
        resamples are summed in float32 (with BLAS), enough for intervals and p-values.
        """
        weights = self.weights[1:].astype(np.float32)  # (B, Y)
        resamples, points = weights.shape[0], area.size
        shared = [fs.SUM_NAMES.index(key) for key in ("w", "o", "oo", "crps_clim", "rps_clim")]
        own = [fs.SUM_NAMES.index(key) for key in ("m", "mm", "mo", "crps", "rps")]
        step = max(1, _RESAMPLED_VALUES // (resamples * self.leads))
        p_values = {score: np.full((len(self.names) - 1, self.leads, points), np.nan) for score in DIFFERENCE_SCORES}

        def resample(per_year: np.ndarray, keys: list[int], part: slice) -> dict[str, np.ndarray]:
            values = per_year[:, keys, :, part].astype(np.float32)
            summed = (weights @ values.reshape(values.shape[0], -1)).reshape(resamples, *values.shape[1:])
            return {fs.SUM_NAMES[key]: summed[:, index] for index, key in enumerate(keys)}

        for first in range(0, points, step):
            part = slice(first, min(first + step, points))
            common = resample(statistics[0], shared, part)
            skills = []
            for model, per_year in enumerate(statistics):
                skill = fs.skill_from_sums(common | resample(per_year, own, part))
                finite = np.isfinite(skill["acc"])
                acc_sum, acc_weight = np.where(finite, skill["acc"], 0.0) @ area[part], finite @ area[part]
                with self.lock:
                    self.acc_area[model, 0, 1:] += acc_sum
                    self.acc_area[model, 1, 1:] += acc_weight
                skills.append(skill)
            for reference in range(1, len(self.names)):
                for score in DIFFERENCE_SCORES:
                    # a resample of few years can repeat one year, making a skill infinite (a zero variance or
                    # reference score); the difference is then not finite, and p_values leaves that resample out
                    with np.errstate(invalid="ignore"):
                        difference = skills[0][score] - skills[reference][score]
                    p_values[score][reference - 1, :, part] = fs.p_values(difference[: self.options.resamples])
        shape = (len(self.names) - 1, self.leads, rows.stop - rows.start, self.nx)
        for score in DIFFERENCE_SCORES:
            self.delta_maps[f"delta_{score}_p_value"][:, :, rows] = p_values[score].reshape(shape)
            delta = self.maps[score][:1, :, rows] - self.maps[score][1:, :, rows]
            self.delta_maps[f"delta_{score}"][:, :, rows] = delta

    def _interval(self, values: np.ndarray) -> np.ndarray:
        """The BCa interval (2, model, lead) of area scores ``values`` (model, weight rows, lead)."""
        return fs.bca_interval(
            values[:, 0],
            np.moveaxis(values[:, self.bootstrap], 1, 0),
            np.moveaxis(values[:, self.jackknife], 1, 0),
            self.options.confidence,
        )

    def _assemble(self) -> ForecastScores:
        data = self.first.data
        units = str(self.observed_attrs.get("units", data.attrs.get("units", "")))
        confidence = self.options.confidence
        lead = data["lead"]
        models = xr.DataArray(self.names, dims="model", name="model")
        references = xr.DataArray(self.names[1:], dims="reference", name="reference")
        bounds = xr.DataArray(["lower", "upper"], dims="bound", name="bound")
        resampled = np.einsum("ry,mysl->msrl", self.weights, self.area_sums)  # (model, S, R, L)
        area = fs.scores_from_sums(dict(zip(fs.SUM_NAMES, np.moveaxis(resampled, 1, 0))), self.members)
        with np.errstate(divide="ignore", invalid="ignore"):
            area["acc"] = self.acc_area[:, 0] / np.where(self.acc_area[:, 1] > 0, self.acc_area[:, 1], np.nan)
        counts = np.einsum("ry,meylkc->merlkc", self.weights, self.counts)
        for index, event in enumerate(_EVENTS):
            area[f"roc_{event}"] = fs.roc_area_from_counts(counts[:, index])
        area_vars: dict[str, xr.DataArray] = {}
        for score, (long_name, score_units) in SCORES.items():
            attrs = {"long_name": f"{long_name}, area mean", "units": score_units or units}
            values = area[score]  # (model, R, L)
            area_vars[score] = xr.DataArray(values[:, 0], dims=("model", "lead"), attrs=attrs)
            interval = np.moveaxis(self._interval(values), 0, -1)
            area_vars[f"{score}_interval"] = xr.DataArray(
                interval,
                dims=("model", "lead", "bound"),
                attrs={**attrs, "long_name": f"{confidence:.0%} BCa bootstrap interval of the {long_name}, area mean"},
            )
        difference_vars: dict[str, xr.DataArray] = {}
        for score in DIFFERENCE_SCORES:
            long_name = f"{SCORES[score][0]}: verified forecast minus reference"
            delta = area[score][:1] - area[score][1:]  # (reference, R, L)
            difference_vars[f"delta_{score}"] = xr.DataArray(
                delta[:, 0], dims=("reference", "lead"), attrs={"long_name": f"{long_name}, area mean", "units": "1"}
            )
            difference_vars[f"delta_{score}_interval"] = xr.DataArray(
                np.moveaxis(self._interval(delta), 0, -1),
                dims=("reference", "lead", "bound"),
                attrs={"long_name": f"{confidence:.0%} BCa bootstrap interval of the {long_name}", "units": "1"},
            )
            difference_vars[f"delta_{score}_p_value"] = xr.DataArray(
                fs.p_values(np.moveaxis(delta[:, self.bootstrap], 1, 0)),
                dims=("reference", "lead"),
                attrs={"long_name": f"two-sided bootstrap p-value of the {long_name} being 0", "units": "1"},
            )
        spatial = {"lat": data["lat"], "lon": data["lon"]}
        maps = xr.Dataset(
            {
                score: xr.DataArray(
                    values,
                    dims=("model", "lead", "lat", "lon"),
                    attrs={"long_name": SCORES[score][0], "units": SCORES[score][1] or units},
                )
                for score, values in self.maps.items()
            },
            coords={"model": models, "lead": lead, **spatial},
        )
        difference_maps = xr.Dataset(
            {
                name: xr.DataArray(
                    values,
                    dims=("reference", "lead", "lat", "lon"),
                    attrs={
                        "long_name": (
                            f"two-sided bootstrap p-value of the {name.removeprefix('delta_').removesuffix('_p_value')} "
                            "difference being 0"
                            if name.endswith("_p_value")
                            else f"{SCORES[name.removeprefix('delta_')][0]}: verified forecast minus reference"
                        ),
                        "units": "1",
                    },
                )
                for name, values in self.delta_maps.items()
            },
            coords={"reference": references, "lead": lead, **spatial},
        )
        diagram = fs.reliability(self.counts.sum(axis=2), self.options.reliability_bins)  # (model, event, L, bins)
        bins = self.options.reliability_bins
        reliability = xr.Dataset(
            {
                name: xr.DataArray(
                    np.moveaxis(values, 2, 1),
                    dims=("model", "lead", "event", "bin"),
                    attrs={"long_name": name.replace("_", " "), "units": "1"},
                )
                for name, values in diagram.items()
            },
            coords={
                "model": models,
                "lead": lead,
                "event": xr.DataArray(["lower_tercile", "upper_tercile"], dims="event"),
                "bin": xr.DataArray((np.arange(bins) + 0.5) / bins, dims="bin", attrs={"long_name": "bin centre"}),
            },
        )
        summary: dict[str, str | int | float] = {
            "variable": self.variable,
            "units": units,
            "confidence": confidence,
            "resamples": self.options.resamples,
            "start_years": ", ".join(map(str, self.years)),
            "members": self.members,
            "leave_one_out": int(self.options.leave_one_out),
            "verified_forecast": self.names[0],
        }
        return ForecastScores(
            area=xr.Dataset(area_vars, coords={"model": models, "lead": lead, "bound": bounds}),
            maps=maps,
            differences=xr.Dataset(difference_vars, coords={"reference": references, "lead": lead, "bound": bounds}),
            difference_maps=difference_maps,
            reliability=reliability,
            attrs=summary,
        )


def _label(lead: object) -> str:
    """A lead value for tables: timedeltas in days, others as they are."""
    if isinstance(lead, np.timedelta64):
        return f"{lead / np.timedelta64(1, 'D'):g} days"
    return str(lead)
