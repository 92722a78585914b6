"""An experiment: data from a configuration, training, and verification on the test period."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

import numpy as np
import pandas as pd
import xarray as xr

from dl4ds.data.grid import standardize
from dl4ds.data.hindcast import Hindcast
from dl4ds.data.hindcast_pairing import HindcastMOS, select_start_years
from dl4ds.data.lazy import LazyPatchDataset, fit_lazy_normalizer
from dl4ds.data.normalization import Normalizer
from dl4ds.data.pairing import MOS, PairedData, PerfectProg, Source
from dl4ds.data.torch_dataset import DownscalingDataset, cell_weights
from dl4ds.data.units import with_units
from dl4ds.errors import ConfigError, DataError
from dl4ds.evaluation.forecast_baselines import baseline_hindcasts
from dl4ds.evaluation.forecast_report import write_forecast_report
from dl4ds.evaluation.forecast_verification import ForecastVerification
from dl4ds.evaluation.pipeline import Evaluation, verify
from dl4ds.evaluation.scores import frame_html, metrics_frame
from dl4ds.evaluation.verification import Verification
from dl4ds.experiment.config import EvaluationConfig, ExperimentConfig, VariableSource
from dl4ds.inference.downscale import downscale
from dl4ds.io import INPUT_ATTRIBUTE, expand_paths, open_data, resolve_source, write_netcdf
from dl4ds.model import DownscalingModel, read_checkpoint
from dl4ds.training import EpochRecord, create_trainer
from dl4ds.training.diffusion import stage1_model
from dl4ds.training.trainer import BEST_CHECKPOINT
from dl4ds.utils.atomic import atomic_path, make_directory

logger = logging.getLogger(__name__)

DEFAULT_SAMPLES = 10
"""Ensemble members drawn per test input to verify a stochastic network when the config does not say."""


@dataclass(frozen=True)
class ExperimentResult:
    """What :meth:`Experiment.run` produced."""

    model: DownscalingModel
    output_dir: Path
    metrics: dict[str, dict[str, float]] | None

    def to_dataframe(self) -> pd.DataFrame:
        """The test period's headline scores, one row per model (empty without a test period)."""
        return metrics_frame(self.metrics or {})

    def _repr_html_(self) -> str:
        caption = f"{self.model.metadata.architecture}: scores on the test period"
        return frame_html(self.to_dataframe(), caption, note=f"outputs in {self.output_dir}")


@dataclass(frozen=True)
class TrainingData:
    """The data of a run.

    Attributes:
        reference: pairs the model is built on (grid, static fields, cells without truth).
        normalizer: statistics fitted on the training period.
        train: the training pairs, or None when they are read lazily (never loaded).
        val, test: the pairs of the validation and test periods, if configured.
        train_set: the training samples for the given (H, W) loss weights per fine cell.
    """

    reference: PairedData
    normalizer: Normalizer
    train: PairedData | None
    val: PairedData | None
    test: PairedData | None
    train_set: Callable[[np.ndarray | None], DownscalingDataset | LazyPatchDataset]


class _PairingSources(TypedDict):
    """The keyword arguments that both pairings (:class:`PerfectProg` and :class:`MOS`) take."""

    variables: list[str] | None
    static: Source | None
    predictors: list[Source]


def open_source(source: VariableSource, role: str) -> xr.Dataset:
    """The data of a configured source: its files opened lazily, with the units it sets."""
    return with_units(open_data(source.path), source.units, role=role)


def _pairing_source(source: VariableSource, role: str) -> Source:
    """A configured source opened for pairing: data, variables and regrid method."""
    return Source(open_source(source, role), source.variables, source.regrid)


class Experiment:
    """Runs the configuration ``config``: pair data, train, verify on the test period.

    Writes to ``config.output_dir``: ``checkpoints/best.pt`` and ``last.pt``,
    ``checkpoints/history.csv``, and with a test period ``metrics.json``,
    ``test_downscaled.nc`` and the verification report against the baseline
    ladder fitted on the training period (``report/index.html``).
    """

    def __init__(self, config: ExperimentConfig) -> None:
        self.config = config
        self.output_dir = Path(config.output_dir)

    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str]) -> Experiment:
        """The experiment of a YAML configuration file."""
        return cls(ExperimentConfig.from_yaml(path))

    @classmethod
    def of_checkpoint(cls, path: str | os.PathLike[str]) -> Experiment:
        """The experiment that trained the model in checkpoint ``path``, from the configuration stored in it."""
        stored = read_checkpoint(path)["metadata"].get("config")
        if not stored:
            raise ConfigError(
                f"checkpoint {str(path)!r} holds no experiment configuration (it was not written by an experiment); "
                "give the experiment's YAML configuration instead (CLI: --config)"
            )
        return cls(ExperimentConfig.from_dict(dict(stored)))

    def baseline_pairs(self, prediction: xr.Dataset) -> tuple[PairedData, PairedData]:
        """The training pairs, which the baselines are fitted on, and the pairs of ``prediction``'s period.

        Raises:
            DataError: the prediction has no time coordinate, or its period has no data.
        """
        if self.config.data.pairing == "hindcast_mos":
            raise ConfigError(
                "a hindcast MOS model downscales forecasts, which are verified per lead against observations: use "
                "dl4ds evaluate-forecast HINDCAST OBSERVATIONS --reference NAME:PATH (ForecastVerification in Python)"
            )
        paired = self.pair()
        train = self.split(paired)[0]
        times = standardize(prediction, require_time=False)
        if "time" not in times.coords:
            raise DataError("the prediction has no time coordinate, so the baselines cannot be matched to its period")
        first, last = (str(value)[:19] for value in (times["time"].values.min(), times["time"].values.max()))
        self._check_prediction_source(prediction)
        return train, paired.select_time(first, last, role="prediction's period")

    @property
    def coarse_source(self) -> str:
        """Where the coarse inputs come from, as files joined by ", ": the coarse data (MOS), or the target they
        are block averages of."""
        data = self.config.data
        path = data.coarse.path if data.pairing == "mos" and data.coarse is not None else data.target.path
        return ", ".join(str(resolve_source(each)) for each in expand_paths(path))

    @property
    def coarse_attributes(self) -> dict[str, object]:
        """The global attributes (licence, source, history...) of the data the coarse inputs come from."""
        data = self.config.data
        source = data.coarse if data.pairing == "mos" and data.coarse is not None else data.target
        with open_data(source.path) as ds:
            return {str(key): value for key, value in ds.attrs.items()}

    def _check_prediction_source(self, prediction: xr.Dataset) -> None:
        """Warn when ``prediction`` was downscaled from other coarse data than the baselines are built from."""
        made_from = prediction.attrs.get(INPUT_ATTRIBUTE)
        if not made_from:
            logger.info(
                "the prediction does not say which coarse data it was downscaled from (no %r attribute); the "
                "baselines downscale %s",
                INPUT_ATTRIBUTE,
                self.coarse_source,
            )
            return
        sources = {resolve_source(item.strip()) for item in str(made_from).split(",")}
        if sources & {resolve_source(item) for item in self.coarse_source.split(", ")}:
            return
        built_from = (
            f"the experiment's coarse data {self.coarse_source}"
            if self.config.data.pairing == "mos"
            else f"the block averages of the experiment's target {self.coarse_source}"
        )
        logger.warning(
            "the prediction was downscaled from %s, but the baselines downscale %s: unless those are the same fields, "
            "the network and the baselines are compared on different inputs. Downscale the experiment's coarse "
            "data for a like-for-like comparison, or verify without --baselines",
            made_from,
            built_from,
        )

    def pair(self, period: tuple[str, str] | None = None) -> PairedData:
        """Read the configured sources and pair coarse inputs with targets over all times, or over ``period`` only."""
        data = self.config.data
        target = open_source(data.target, "target")
        if period is not None:
            target = standardize(target, role="target").sel(time=slice(*period))
        common: _PairingSources = {
            "variables": data.target.variables,
            "static": None if data.static is None else _pairing_source(data.static, "static"),
            "predictors": [_pairing_source(source, "predictor") for source in data.predictor_sources],
        }
        if data.pairing == "hindcast_mos":
            assert data.coarse is not None, "the config requires a coarse source for hindcast_mos"
            hindcast = open_source(data.coarse, "coarse")
            return HindcastMOS(
                data.scale,
                method=data.coarse.regrid or "linear",
                lead_input=data.lead_input,
                aggregation=data.aggregation,
            ).pair(
                target,
                hindcast,
                variables=data.target.variables,
                hindcast_variables=data.coarse.variables,
                static=common["static"],
            )
        if data.pairing == "mos":
            assert data.coarse is not None, "the config requires a coarse source for mos"
            coarse = open_source(data.coarse, "coarse")
            return MOS(data.scale, method=data.coarse.regrid or "linear").pair(
                target, coarse, coarse_variables=data.coarse.variables, **common
            )
        assert data.scale is not None, "the config requires a scale for perfect_prog"
        return PerfectProg(data.scale, crop=data.crop).pair(target, **common)

    def split(self, paired: PairedData) -> tuple[PairedData, PairedData | None, PairedData | None]:
        """The training, validation and test pairs of ``paired``: by period, or (hindcast_mos) by start year."""
        data = self.config.data
        if data.pairing == "hindcast_mos":
            assert data.train_years is not None, "the config requires train_years for hindcast_mos"

            def years(chosen: list[int] | None, role: str) -> PairedData | None:
                return None if chosen is None else select_start_years(paired, chosen, role=role)

            train = select_start_years(paired, data.train_years, role="train_years")
            return train, years(data.val_years, "val_years"), years(data.test_years, "test_years")
        assert data.train_period is not None, "the config requires a train_period for perfect_prog and mos"

        def period(chosen: tuple[str, str] | None, role: str) -> PairedData | None:
            return None if chosen is None else paired.select_time(*chosen, role=role)

        train = paired.select_time(*data.train_period, role="train_period")
        return train, period(data.val_period, "val_period"), period(data.test_period, "test_period")

    def train_pairs(self) -> PairedData:
        """The training pairs (which the baselines learn from)."""
        return self.split(self.pair())[0]

    def run(
        self,
        *,
        resume: bool = False,
        progress: bool = True,
        on_epoch: Callable[[EpochRecord], None] | None = None,
    ) -> ExperimentResult:
        """Pair the data, train the model and, with a test period, verify it; returns the model and headline scores.

        ``on_epoch`` is called with each epoch's record (see :meth:`dl4ds.training.Trainer.fit`).
        """
        training = self.config.training
        model_config = self.config.model
        data = self.training_data()
        model = DownscalingModel.build(
            model_config.name,
            data.reference,
            data.normalizer,
            params=model_config.params,
            config=self.config.to_dict(),
            time_window=model_config.time_window,
            seed=training.seed,  # the same initial weights in every torchrun process
        )
        trainer = create_trainer(training, checkpoint_dir=self.output_dir / "checkpoints", progress=progress)
        region = training.loss_region
        weights = cell_weights(
            data.reference,
            region=None if region is None else region.variable,
            region_min=None if region is None else region.min,
            region_max=None if region is None else region.max,
            area_weighted=training.area_weighted,
        )
        train_set = data.train_set(weights)
        val_set = None
        if data.val is not None:
            val_set = DownscalingDataset(
                data.val, data.normalizer, time_window=model_config.time_window, cell_weights=weights
            )
        _check_evaluation_variables(self.config.evaluation, data.reference.target_variables)
        trainer.check_model(model)
        make_directory(self.output_dir / "checkpoints", what="output")  # before training, which writes it
        logger.info(
            "training %s (%d parameters) on %d samples per epoch, validating on %d",
            model_config.name,
            sum(p.numel() for p in model.parameters()),
            len(train_set),
            0 if data.val is None else data.val.target.sizes["time"],
        )
        trainer.fit(model, train_set, val_set, resume=resume, on_epoch=on_epoch)
        if not trainer.distributed.is_main:  # rank 0 verifies and writes the outputs
            return ExperimentResult(model=model, output_dir=self.output_dir, metrics=None)
        samples = self.config.evaluation.samples or (DEFAULT_SAMPLES if model.capabilities.stochastic else 1)
        metrics = None
        if data.test is not None and self.config.data.pairing == "hindcast_mos":
            metrics = self._verify_hindcast(model)
        elif data.test is not None:
            metrics = verify_model(
                model,
                data.test,
                self.output_dir,
                data.train,
                samples=samples,
                seed=training.seed,
                evaluation=self.config.evaluation,
                source=self.coarse_source,
                source_attributes=self.coarse_attributes,
            )
        return ExperimentResult(model=model, output_dir=self.output_dir, metrics=metrics)

    def training_data(self) -> TrainingData:
        """The run's data, in memory or (``data.lazy``) read chunk by chunk from the archive: decided here, once."""
        return self._lazy_data() if self.config.data.lazy else self._in_memory_data()

    def _in_memory_data(self) -> TrainingData:
        data = self.config.data
        train, val, test = self.split(self.pair())
        normalizer = Normalizer.fit(train)
        seed = self.config.training.seed

        def train_set(weights: np.ndarray | None) -> DownscalingDataset:
            return DownscalingDataset(
                train, normalizer, data.patch_size, self.config.model.time_window, cell_weights=weights, seed=seed
            )

        return TrainingData(train, normalizer, train, val, test, train_set)

    def _lazy_data(self) -> TrainingData:
        """The training period read chunk by chunk (never loaded), with the PerfectProg pairing of :meth:`pair`.

        The model is built on small pairs, the validation period or the first
        day of training: they give the grid and static fields, and cells
        without truth there are taken to have none in training. The baselines
        that learn are left out of the verification, since the training period
        is never loaded.
        """
        data = self.config.data
        if data.pairing != "perfect_prog" or data.predictors is not None or self.config.model.time_window is not None:
            raise ConfigError(
                "data.lazy reads the training period chunk by chunk with PerfectProg pairing only, without predictors and "
                "for spatial networks; use pairing perfect_prog without predictors and time_window, or set lazy: false"
            )
        if data.patch_size is None:  # the config requires it with lazy: true
            raise ConfigError("data.lazy samples patches from the archive; set data.patch_size, e.g. [64, 64]")
        assert data.train_period is not None, "the config requires a train_period for perfect_prog"
        target = standardize(open_source(data.target, "target"), role="target").sel(time=slice(*data.train_period))
        pairing: dict[str, Any] = {
            "scale": data.scale,
            "variables": data.target.variables,
            "static": None if data.static is None else _pairing_source(data.static, "static"),
            "static_variables": None,
            "crop": data.crop,
        }
        normalizer = fit_lazy_normalizer(target, **pairing)
        val = None if data.val_period is None else self.pair(data.val_period)
        first_day = str(pd.Timestamp(data.train_period[0]).date())
        reference = val if val is not None else self.pair((data.train_period[0], first_day))
        test = None if data.test_period is None else self.pair(data.test_period)
        patch_size, seed = data.patch_size, self.config.training.seed

        def train_set(weights: np.ndarray | None) -> LazyPatchDataset:
            return LazyPatchDataset(
                target, normalizer, patch_size=patch_size, cell_weights=weights, seed=seed, **pairing
            )

        return TrainingData(reference, normalizer, None, val, test, train_set)

    def _verify_hindcast(self, model: DownscalingModel) -> dict[str, dict[str, float]]:
        """Downscale the test years' hindcast and verify it per lead as a forecast, beside the interpolated hindcast.

        Writes ``test_downscaled.nc`` (the hindcast's layout), ``metrics.json``
        and, per target variable, the forecast-skill report (``report/``, or
        ``report/VARIABLE`` with several). Returns ``{model: {score_lead: value}}``
        for the ACC and CRPSS of each lead (keys ``acc_LEAD``, with ``/VARIABLE`` when there are several).
        """
        data = self.config.data
        assert data.coarse is not None and data.test_years is not None, "hindcast_mos verifies the test years"
        raw = open_source(data.coarse, "coarse")
        inputs = model.metadata.input_variables
        hindcast = Hindcast.of(raw, variable=inputs[0])
        years = pd.DatetimeIndex(hindcast.data["init"].values).year
        test_hindcast = raw.isel({str(hindcast.names["init"]): np.flatnonzero(np.isin(years, data.test_years))})
        predicted = downscale(model, test_hindcast.assign_attrs(self.coarse_attributes), seed=self.config.training.seed)
        predicted.attrs[INPUT_ATTRIBUTE] = self.coarse_source
        observations = open_source(data.target, "target")
        metrics: dict[str, dict[str, float]] = {}
        targets = model.metadata.target_variables
        for target, coarse_name in zip(targets, inputs):
            fine = Hindcast.of(predicted, variable=target)
            interpolated = baseline_hindcasts(["bicubic"], test_hindcast, fine, variable=coarse_name)["bicubic"]
            name = model.metadata.architecture
            scores = ForecastVerification().score(
                {name: predicted[target], "interpolated (bicubic)": interpolated}, observations, variable=target
            )
            report = self.output_dir / "report" if len(targets) == 1 else self.output_dir / "report" / target
            write_forecast_report(
                scores,
                report,
                title=f"{name} x{model.metadata.scale} (hindcast MOS): forecast skill in the test years",
                notes=[f"test start years {', '.join(map(str, sorted(data.test_years)))}"],
            )
            suffix = "" if len(targets) == 1 else f"/{target}"
            for row in scores.table(("acc", "crpss")).to_dict("records"):
                entry = metrics.setdefault(str(row["model"]), {})
                entry[f"acc_{row['lead']}{suffix}"] = float(row["acc"])
                entry[f"crpss_{row['lead']}{suffix}"] = float(row["crpss"])
        write_netcdf(predicted, self.output_dir / "test_downscaled.nc")
        with atomic_path(self.output_dir / "metrics.json") as temporary:
            temporary.write_text(json.dumps(metrics, indent=2) + "\n")
        return metrics

    @property
    def best_checkpoint(self) -> Path:
        return self.output_dir / "checkpoints" / BEST_CHECKPOINT


def _check_evaluation_variables(evaluation: EvaluationConfig, targets: tuple[str, ...]) -> None:
    """Refuse, before any training, evaluation options naming variables that are not targets."""
    named = {
        "evaluation.baselines.bcsd.multiplicative": evaluation.baselines.bcsd.multiplicative,
        "evaluation.precipitation.variables": evaluation.precipitation.variables,
    }
    for key, names in named.items():
        unknown = [name for name in names or () if name not in targets]
        if unknown:
            raise ConfigError(f"{key} names {unknown}, which are not target variables; choose among {list(targets)}")


def verify_model(
    model: DownscalingModel,
    test: PairedData,
    output_dir: Path,
    train: PairedData | None = None,
    *,
    samples: int = 1,
    seed: int | None = None,
    evaluation: EvaluationConfig | None = None,
    source: str | None = None,
    source_attributes: Mapping[str, object] | None = None,
) -> dict[str, dict[str, float]]:
    """Downscale the test period with ``model`` and verify it against the baseline ladder (:func:`verify`).

    A stochastic network is verified as an ensemble of ``samples`` members
    (a ``sample`` dimension, drawn with ``seed``), which adds the CRPS,
    spread-skill ratio and rank histogram to its scores; a diffusion model's
    stage-1 network is verified beside it. The baselines are
    fitted on ``train``; without it only those that learn nothing are scored.
    The rungs of the ladder the data does not allow (``lapse_rate`` without
    an elevation static field) are left out, and the report says why.
    ``evaluation`` gives the baselines' options and the wet-day scores' (its ``samples`` is not used here);
    ``source``, recorded in ``test_downscaled.nc``, names where the test inputs come from, and
    ``source_attributes`` are that data's global attributes, whose licence, source and history the file keeps.
    Writes ``test_downscaled.nc``, ``metrics.json`` and the report in
    ``report/``. Returns ``{model: {metric: value}}`` with the network first,
    per target variable when there are several (keys ``model/variable``).
    """
    meta = model.metadata
    evaluation = evaluation or EvaluationConfig()
    inputs = test.input_dataset()
    predicted = downscale(model, inputs.assign_attrs(source_attributes or {}), samples=samples, seed=seed)
    period = f"{str(test.times[0])[:16]} to {str(test.times[-1])[:16]}"
    if source is not None:
        predicted.attrs[INPUT_ATTRIBUTE] = str(source)
    predictions = {meta.architecture: predicted}
    if model.capabilities.iterative:  # a diffusion model's stage-1 mean: the deterministic network it refines
        stage1 = stage1_model(model)
        predictions[f"{stage1.metadata.architecture} (stage 1)"] = downscale(stage1, inputs)
    result = verify(
        predictions,
        test.target_dataset(),
        output_dir / "report",
        baselines="all",
        train=train,
        pairs=test,
        evaluation=Evaluation(Verification(precipitation=evaluation.precipitation)),
        baseline_options=evaluation.baselines,
        title=f"{meta.architecture} x{meta.scale}: verification on the test period",
        notes=[f"test period {period} ({test.target.sizes['time']} time steps)"],
    )
    write_netcdf(predicted, output_dir / "test_downscaled.nc")
    with atomic_path(output_dir / "metrics.json") as temporary:
        temporary.write_text(json.dumps(result.headline, indent=2) + "\n")
    return result.headline
