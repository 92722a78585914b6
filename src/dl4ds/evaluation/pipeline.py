"""The verification pipeline: align -> fit the baseline ladder on the training period -> score -> report.

:func:`verify` is the one path that both ``dl4ds evaluate`` and the test
period of an experiment take: the baselines (:mod:`dl4ds.baselines`) are
fitted on the training pairs only and predict the verified period, every
model is scored against the truth (:class:`Evaluation`, built on
:class:`~dl4ds.evaluation.verification.Verification`), and the report is
written (:func:`~dl4ds.evaluation.report.write_report`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from dl4ds.baselines import Baseline, BaselineOptions, create_baseline, list_baselines
from dl4ds.data.grid import standardize, truth_on_prediction_grid
from dl4ds.data.pairing import PairedData
from dl4ds.errors import ConfigError, DataError
from dl4ds.evaluation.report import write_report
from dl4ds.evaluation.scores import Scores, frame_html, metrics_frame
from dl4ds.evaluation.verification import Verification

logger = logging.getLogger(__name__)

__all__ = [
    "Evaluation",
    "VerificationResult",
    "baseline_predictions",
    "build_baselines",
    "headline_scores",
    "parse_baselines",
    "verify",
]

HEADLINE_METRICS = ("rmse", "mae", "bias", "correlation")


def parse_baselines(names: str | Sequence[str]) -> list[str]:
    """Baseline names from ``"all"``, a comma-separated string or a list; unknown names raise ConfigError."""
    items = [n.strip() for n in (names.split(",") if isinstance(names, str) else names) if n.strip()]
    if items == ["all"]:
        return list_baselines()
    unknown = [n for n in items if n not in list_baselines()]
    if unknown:
        raise ConfigError(f"unknown baseline(s) {unknown}; choose from {list_baselines()} or 'all'")
    return items


def build_baselines(names: Sequence[str], options: BaselineOptions | None = None) -> dict[str, Baseline]:
    """The named baselines, each with its options from ``options`` (defaults where none are set)."""
    options = options or BaselineOptions()
    return {name: create_baseline(name, **options.of(name)) for name in names}


def baseline_predictions(
    names: Sequence[str], train: PairedData, test: PairedData, *, options: BaselineOptions | None = None
) -> dict[str, xr.Dataset]:
    """Fit each named baseline (with its ``options``) on ``train`` only and predict the fine fields of ``test``."""
    return _fit_and_predict(build_baselines(names, options), train, test)


def _fit_and_predict(baselines: Mapping[str, Baseline], train: PairedData, test: PairedData) -> dict[str, xr.Dataset]:
    overlap = np.intersect1d(train.target["time"].values, test.target["time"].values)
    if overlap.size and any(baseline.requires_fit for baseline in baselines.values()):
        logger.warning(
            "%d of the %d verified time steps are also training time steps; the baselines' scores there are optimistic",
            overlap.size,
            test.target.sizes["time"],
        )
    predictions = {}
    for name, baseline in baselines.items():
        logger.info("fitting the %s baseline on %d training time steps", name, train.target.sizes["time"])
        predictions[name] = baseline.fit(train).predict(test)
    return predictions


def headline_scores(scores: Mapping[str, Scores]) -> dict[str, dict[str, float]]:
    """``{model: {metric: value}}`` of the :data:`HEADLINE_METRICS` and ``crps``, keyed ``model/variable`` for several variables.

    The CRPS of a deterministic prediction is its MAE, so every model of the
    ladder gets one and ensembles compare directly with single fields.
    """
    several = len(scores) > 1
    headline = {}
    for variable, result in scores.items():
        for model in result.models:
            overall = result.overall.sel(model=model)
            values = {metric: float(overall[metric]) for metric in HEADLINE_METRICS}
            crps = float(overall["crps"]) if "crps" in overall else float("nan")
            values["crps"] = crps if np.isfinite(crps) else values["mae"]
            headline[f"{model}/{variable}" if several else model] = values
    return headline


@dataclass(frozen=True)
class Evaluation:
    """Scores several named predictions of the same variables against one truth.

    Args:
        verification: the metrics and their options.
    """

    verification: Verification = field(default_factory=Verification)

    def score(
        self, predictions: Mapping[str, xr.Dataset], truth: xr.Dataset, *, variables: Sequence[str] | None = None
    ) -> dict[str, Scores]:
        """``{variable: Scores}`` of every prediction (model name -> Dataset) for each variable.

        The variables default to those the first prediction shares with the
        truth. Each prediction is scored on its own grid against the window of
        the truth it covers, over the common times.
        """
        if not predictions:
            raise DataError("nothing to evaluate: pass at least one prediction")
        first = next(iter(predictions.values()))
        names = list(variables) if variables else [str(v) for v in first.data_vars if v in truth.data_vars]
        if not names:
            raise DataError(
                f"the prediction ({sorted(map(str, first.data_vars))}) and truth ({sorted(map(str, truth.data_vars))}) "
                "share no variable; choose one with --variable"
            )
        results = {}
        for variable in names:
            parts = []
            for model, prediction in predictions.items():
                for dataset, role in ((prediction, f"prediction {model!r}"), (truth, "truth")):
                    if variable not in dataset.data_vars:
                        raise DataError(
                            f"the {role} has no variable {variable!r}; it has {sorted(map(str, dataset.data_vars))}"
                        )
                field = standardize(prediction[variable], require_time=False)
                observed = truth_on_prediction_grid(field, standardize(truth[variable], require_time=False))
                logger.info("scoring %s of %s", variable, model)
                parts.append(self.verification.score(field, observed.rename(variable), model=model))
            results[variable] = Scores.combine(parts)
        return results

    @staticmethod
    def examples(
        predictions: Mapping[str, xr.Dataset], truth: xr.Dataset, variables: Sequence[str]
    ) -> dict[str, dict[str, xr.DataArray]]:
        """One time step per variable for error maps: the one where the truth departs most from its mean.

        Returns ``{variable: {"truth": field, model: field, ...}}`` of 2-D
        fields; ensembles are shown by their first member.
        """
        examples = {}
        for variable in variables:
            first = standardize(next(iter(predictions.values()))[variable], require_time=False)
            observed = truth_on_prediction_grid(first, standardize(truth[variable], require_time=False))
            observed = (
                observed.sel(time=np.intersect1d(observed["time"], first["time"])) if "time" in first.dims else observed
            )
            selection = {}
            if "time" in observed.dims and observed.sizes["time"] > 1:
                departure = abs(observed - observed.mean("time")).mean(("lat", "lon"))
                selection = {"time": observed["time"].values[int(departure.argmax("time"))]}
            fields = {"truth": _single_map(observed, selection)}
            for model, prediction in predictions.items():
                fields[model] = _single_map(standardize(prediction[variable], require_time=False), selection)
            examples[variable] = fields
        return examples


def _single_map(field: xr.DataArray, selection: Mapping[str, object]) -> xr.DataArray:
    """``field`` at ``selection``, reduced to (lat, lon) by taking the first index of any other dimension."""
    field = field.sel(selection) if selection else field
    extra = {dim: 0 for dim in field.dims if dim not in ("lat", "lon")}
    return field.isel(extra) if extra else field


@dataclass(frozen=True)
class VerificationResult:
    """What :func:`verify` produced.

    Attributes:
        scores: ``{variable: Scores}`` of every model, the predictions first, then the baselines.
        headline: ``{model: {metric: value}}`` (see :func:`headline_scores`).
        baselines: the baselines that were fitted and scored, in ladder order.
        report: the report's ``index.html``.
        left_out: ``{baseline: why}`` for the rungs of the ladder that could not run on these data.
    """

    scores: dict[str, Scores]
    headline: dict[str, dict[str, float]]
    baselines: tuple[str, ...]
    report: Path
    left_out: Mapping[str, str] = field(default_factory=dict)

    def to_dataframe(self) -> pd.DataFrame:
        """The headline scores as a table, one row per model (``model/variable`` with several variables)."""
        return metrics_frame(self.headline)

    def _repr_html_(self) -> str:
        return frame_html(self.to_dataframe(), "headline scores", note=f"report: {self.report}")


def _best_baseline(scores: Mapping[str, Scores], baselines: Sequence[str]) -> list[str] | None:
    """``[the baseline with the lowest RMSE of the first variable]``, or None (the report's default) without baselines."""
    first = next(iter(scores.values()))
    if not baselines or "rmse" not in first.overall:
        return list(baselines[:1]) or None
    rmse = first.overall["rmse"].sel(model=list(baselines)).values
    return [baselines[int(np.nanargmin(rmse))]] if np.isfinite(rmse).any() else list(baselines[:1])


def verify(
    predictions: Mapping[str, xr.Dataset],
    truth: xr.Dataset,
    report_dir: str | os.PathLike[str],
    *,
    baselines: str | Sequence[str] = (),
    train: PairedData | None = None,
    pairs: PairedData | None = None,
    evaluation: Evaluation | None = None,
    variables: Sequence[str] | None = None,
    title: str = "dl4ds verification report",
    notes: Sequence[str] = (),
    baseline_options: BaselineOptions | None = None,
) -> VerificationResult:
    """Verify ``predictions`` and the baseline ladder against ``truth`` and write the report to ``report_dir``.

    Args:
        predictions: the downscaled fields to verify, ``{name: Dataset}``, each
            deterministic or an ensemble (a member or sample dim).
        truth: the observed fine fields; each prediction is scored on its own
            grid against the window of the truth it covers, over the common times.
        report_dir: where the report goes (see :func:`write_report`).
        baselines: baseline names, ``"all"`` or a comma-separated string (:func:`parse_baselines`), scored beside
            the predictions; the best of them (lowest RMSE of the first variable) is the reference of the skill scores.
            With ``"all"``, the rungs of the ladder that cannot run on these
            data (``lapse_rate`` without an elevation static field) are left
            out, with a warning and a note in the report saying why; a
            baseline named explicitly that cannot run is an error.
        train: the training pairs the baselines that learn are fitted on.
            Without them those baselines are left out, and a note says so.
        pairs: the pairs of the verified period, whose coarse inputs the
            baselines downscale; needed when ``baselines`` is not empty.
        evaluation: the metrics and their options; default :class:`Evaluation`.
        variables: the variables to verify; default all that the first
            prediction shares with the truth.
        title, notes: heading and lines under it in the report.
        baseline_options: the baselines' options (e.g. ``bcsd.multiplicative``); defaults where not set.

    Raises:
        ConfigError: baselines without ``pairs``, unknown baseline names or invalid baseline options.
        DataError: a baseline named explicitly that cannot run on these data; as :meth:`Evaluation.score` and
            :func:`write_report`.
    """
    whole_ladder = isinstance(baselines, str) and baselines.strip() == "all"
    names = parse_baselines(baselines) if baselines else []
    notes = list(notes)
    if names and pairs is None:
        raise ConfigError("baselines need the pairs of the verified period (their coarse inputs); pass pairs=...")
    built = build_baselines(names, baseline_options)
    if train is None:
        learning = [name for name in names if built[name].requires_fit]
        if learning:
            names = [name for name in names if name not in learning]
            notes.append(f"baselines {', '.join(learning)} left out: they learn from training data, and none was given")
    left_out = {}
    for name in names:
        assert pairs is not None  # checked above
        reason = built[name].unavailable(pairs)
        if reason is None:
            continue
        if not whole_ladder:
            raise DataError(f"the {name} baseline cannot run on these data: {reason}")
        left_out[name] = reason
        logger.warning("the %s baseline is left out of the ladder: %s", name, reason)
        notes.append(f"baseline {name} left out: {reason}")
    names = [name for name in names if name not in left_out]
    fitted: dict[str, xr.Dataset] = {}
    if names:
        assert pairs is not None  # checked above
        fitted = _fit_and_predict({name: built[name] for name in names}, train if train is not None else pairs, pairs)
    if train is not None and fitted:
        notes.append(
            f"baselines {', '.join(fitted)} fitted on {str(train.times[0])[:10]} to {str(train.times[-1])[:10]}, "
            f"the training period ({train.target.sizes['time']} time steps)"
        )
    everything = dict(predictions) | fitted
    evaluation = evaluation or Evaluation()
    scores = evaluation.score(everything, truth, variables=variables)
    report = write_report(
        scores,
        report_dir,
        title=title,
        references=_best_baseline(scores, names),
        examples=evaluation.examples(everything, truth, list(scores)),
        notes=notes,
    )
    return VerificationResult(scores, headline_scores(scores), tuple(names), report, left_out)
