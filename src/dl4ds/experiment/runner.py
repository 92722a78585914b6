"""An experiment: data from a configuration, training, and verification on the test period."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

import numpy as np
import pandas as pd
import torch
import xarray as xr

from dl4ds.baselines import list_baselines
from dl4ds.data.grid import standardize
from dl4ds.data.lazy import LazyPatchDataset, fit_lazy_normalizer
from dl4ds.data.normalization import Normalizer
from dl4ds.data.pairing import MOS, PairedData, PerfectProg
from dl4ds.data.torch_dataset import DownscalingDataset, cell_weights
from dl4ds.errors import ConfigError, DataError
from dl4ds.evaluation.pipeline import verify
from dl4ds.experiment.config import ExperimentConfig
from dl4ds.inference.downscale import downscale
from dl4ds.io import open_data, write_netcdf
from dl4ds.model import DownscalingModel, read_checkpoint
from dl4ds.training import EpochRecord, create_trainer
from dl4ds.training.trainer import BEST_CHECKPOINT
from dl4ds.utils.atomic import atomic_path

logger = logging.getLogger(__name__)

DEFAULT_SAMPLES = 10
"""Ensemble members drawn per test input to verify a stochastic network when the config does not say."""


@dataclass(frozen=True)
class ExperimentResult:
    """What :meth:`Experiment.run` produced."""

    model: DownscalingModel
    output_dir: Path
    metrics: dict[str, dict[str, float]] | None


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
    static: xr.Dataset | None
    static_variables: list[str] | None
    predictors: xr.Dataset | None
    predictor_variables: list[str] | None


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
        paired = self.pair()
        train = paired.select_time(*self.config.data.train_period, role="train_period")
        times = standardize(prediction, require_time=False)
        if "time" not in times.coords:
            raise DataError("the prediction has no time coordinate, so the baselines cannot be matched to its period")
        first, last = (str(value)[:19] for value in (times["time"].values.min(), times["time"].values.max()))
        return train, paired.select_time(first, last, role="prediction's period")

    def pair(self, period: tuple[str, str] | None = None) -> PairedData:
        """Read the configured sources and pair coarse inputs with targets over all times, or over ``period`` only."""
        data = self.config.data
        target = open_data(data.target.path)
        if period is not None:
            target = standardize(target).sel(time=slice(*period))
        static = None if data.static is None else open_data(data.static.path)
        predictors = None if data.predictors is None else open_data(data.predictors.path)
        common: _PairingSources = {
            "variables": data.target.variables,
            "static": static,
            "static_variables": None if data.static is None else data.static.variables,
            "predictors": predictors,
            "predictor_variables": None if data.predictors is None else data.predictors.variables,
        }
        if data.pairing == "mos":
            assert data.coarse is not None
            return MOS(data.scale, crop=data.crop).pair(
                target, open_data(data.coarse.path), coarse_variables=data.coarse.variables, **common
            )
        return PerfectProg(data.scale, crop=data.crop).pair(target, **common)

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
        torch.manual_seed(training.seed)  # the weights' initialisation, so a seed gives the same run in any process
        model = DownscalingModel.build(
            model_config.name,
            data.reference,
            data.normalizer,
            params=model_config.params,
            config=self.config.to_dict(),
            time_window=model_config.time_window,
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
        if data.test is not None:
            metrics = verify_model(model, data.test, self.output_dir, data.train, samples=samples, seed=training.seed)
        return ExperimentResult(model=model, output_dir=self.output_dir, metrics=metrics)

    def training_data(self) -> TrainingData:
        """The run's data, in memory or (``data.lazy``) read chunk by chunk from the archive: decided here, once."""
        return self._lazy_data() if self.config.data.lazy else self._in_memory_data()

    def _in_memory_data(self) -> TrainingData:
        data = self.config.data
        paired = self.pair()
        train = paired.select_time(*data.train_period, role="train_period")
        val = None if data.val_period is None else paired.select_time(*data.val_period, role="val_period")
        test = None if data.test_period is None else paired.select_time(*data.test_period, role="test_period")
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
        target = standardize(open_data(data.target.path)).sel(time=slice(*data.train_period))
        pairing: dict[str, Any] = {
            "scale": data.scale,
            "variables": data.target.variables,
            "static": None if data.static is None else open_data(data.static.path),
            "static_variables": None if data.static is None else data.static.variables,
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

    @property
    def best_checkpoint(self) -> Path:
        return self.output_dir / "checkpoints" / BEST_CHECKPOINT


def verify_model(
    model: DownscalingModel,
    test: PairedData,
    output_dir: Path,
    train: PairedData | None = None,
    *,
    samples: int = 1,
    seed: int | None = None,
) -> dict[str, dict[str, float]]:
    """Downscale the test period with ``model`` and verify it against the baseline ladder (:func:`verify`).

    A stochastic network is verified as an ensemble of ``samples`` members
    (a ``sample`` dimension, drawn with ``seed``), which adds the CRPS,
    spread-skill ratio and rank histogram to its scores. The baselines are
    fitted on ``train``; without it only those that learn nothing are scored.
    Writes ``test_downscaled.nc``, ``metrics.json`` and the report in
    ``report/``. Returns ``{model: {metric: value}}`` with the network first,
    per target variable when there are several (keys ``model/variable``).
    """
    meta = model.metadata
    predicted = downscale(model, test.input_dataset(), samples=samples, seed=seed)
    period = f"{str(test.times[0])[:16]} to {str(test.times[-1])[:16]}"
    result = verify(
        {meta.architecture: predicted},
        test.target_dataset(),
        output_dir / "report",
        baselines=list_baselines(),
        train=train,
        pairs=test,
        title=f"{meta.architecture} x{meta.scale}: verification on the test period",
        notes=[f"test period {period} ({test.target.sizes['time']} time steps)"],
    )
    write_netcdf(predicted, output_dir / "test_downscaled.nc")
    with atomic_path(output_dir / "metrics.json") as temporary:
        temporary.write_text(json.dumps(result.headline, indent=2) + "\n")
    return result.headline
