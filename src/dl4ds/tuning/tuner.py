"""Model design by search: :class:`Tuner` runs a study of seeded experiments and verifies the best on the test period.

Each trial is an ordinary experiment (:class:`dl4ds.experiment.Experiment`) of
the base config with the trial's values, trained with the config's seed in
its own folder ``OUTPUT_DIR/trials/trial_NNNN/`` (``config.yaml``, which
``dl4ds train`` reruns as it is, ``checkpoints/``, ``validation.json``),
without its test period. Trials are ranked on the validation period only;
the test period is used once, at the end, to verify the best trial (and the
base config's trial, for comparison) against the baseline ladder.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import torch
import xarray as xr
import yaml
from optuna.trial import FrozenTrial, TrialState
from pydantic import ValidationError

from dl4ds.baselines import list_baselines
from dl4ds.errors import ConfigError
from dl4ds.evaluation.pipeline import Evaluation, headline_scores, verify
from dl4ds.evaluation.scores import frame_html, metrics_frame
from dl4ds.experiment.config import ExperimentConfig
from dl4ds.experiment.runner import DEFAULT_SAMPLES, Experiment
from dl4ds.inference.downscale import downscale
from dl4ds.io import write_netcdf
from dl4ds.model import DownscalingModel, load_model, read_checkpoint
from dl4ds.training import EpochRecord
from dl4ds.training.trainer import BEST_CHECKPOINT, LAST_CHECKPOINT
from dl4ds.tuning import results
from dl4ds.tuning.options import SearchOptions
from dl4ds.tuning.space import SearchSpace
from dl4ds.tuning.study import (
    WORKER,
    AskLock,
    counted_trials,
    create_sampler,
    fail_dead_local_trials,
    open_storage,
    open_study,
    retry_trial,
    sqlite_path,
)
from dl4ds.utils.atomic import atomic_path
from dl4ds.utils.options import problems

logger = logging.getLogger(__name__)

VALIDATION_JSON = "validation.json"
TRIAL_CONFIG = "config.yaml"


def load_tuning_config(path: str | os.PathLike[str]) -> tuple[ExperimentConfig, SearchOptions]:
    """The base experiment config and the ``search:`` section of the YAML file ``path``, both validated.

    Raises:
        ConfigError: every problem of both parts, each named by its path.
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} does not exist") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"config file {str(path)!r} is not valid YAML: {error}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("search"), dict):
        raise ConfigError(
            f"config file {str(path)!r} has no search: section; add the searched parameters to an experiment "
            "config, as in src/dl4ds/configs/tune.yaml"
        )
    found: list[str] = []
    search_raw = raw.pop("search")
    config = search = None
    try:
        config = ExperimentConfig.from_dict(raw, base_dir=path.parent)
    except ConfigError as error:
        found += [line.strip().removeprefix("- ") for line in str(error).splitlines()[1:]]
    try:
        search = SearchOptions.model_validate(search_raw)
    except ValidationError as error:
        # pydantic puts the parameter's kind (its union tag) into the path: drop it.
        found += [
            "search." + re.sub(r"\.(range|choices)(?=[.:])", "", problem, count=1)
            for problem in problems(error, "search", SearchOptions)
        ]
    if found or config is None or search is None:
        listed = "\n".join(f"  - {problem}" for problem in found)
        raise ConfigError(f"invalid configuration:\n{listed}")
    if search.study is None:
        search = search.updated("search", study=path.stem)
    return config, search


class _BudgetSpent(Exception):
    """Raised after an epoch when the worker's time budget has run out."""


@dataclass(frozen=True)
class TuningResult:
    """What :meth:`Tuner.run` produced.

    Attributes:
        output_dir: the folder of the results.
        best_trial: number of the best finished trial, None if none finished.
        best_value: its objective on the validation period.
        best_config: its complete config (``best.yaml``), with the test period.
        test: ``{model: {metric: value}}`` on the test period (``tuned``, ``base``,
            then the baseline ladder), None when not verified.
        counts: trials per state (``COMPLETE``, ``PRUNED``, ``FAIL``, ...).
    """

    output_dir: Path
    best_trial: int | None
    best_value: float | None
    best_config: ExperimentConfig | None
    test: dict[str, dict[str, float]] | None
    counts: dict[str, int]

    def to_dataframe(self) -> pd.DataFrame:
        """The test period's headline scores (``tuned``, ``base``, the ladder), one row per model; empty if not verified."""
        return metrics_frame(self.test or {})

    def _repr_html_(self) -> str:
        trials = ", ".join(f"{count} {state.lower()}" for state, count in self.counts.items())
        note = f"best trial {self.best_trial} (objective {self.best_value}); trials: {trials}; results in {self.output_dir}"
        return frame_html(self.to_dataframe(), "tuning: scores on the test period", note=note)


class Tuner:
    """Searches the space of ``search`` around the base ``config`` with Optuna and verifies the best.

    Args:
        config: the base experiment; it needs a validation period, which
            ranks the trials. Its test period, if any, only verifies the result.
        search: the ``search:`` section (parameters, objective, pruner,
            sampler, trials, timeout, storage, study).
        output_dir: where the study (by default), the trials and the results
            go; default the config's ``output_dir``.
        progress: show training progress bars.

    Raises:
        ConfigError: every problem of the search space, before any trial runs.
    """

    def __init__(
        self,
        config: ExperimentConfig,
        search: SearchOptions,
        *,
        output_dir: str | os.PathLike[str] | None = None,
        progress: bool = False,
    ) -> None:
        if config.data.val_period is None:
            raise ConfigError("tuning ranks the trials on data.val_period; set a validation period in the config")
        self.config = config
        self.search = search
        self.output_dir = Path(output_dir if output_dir is not None else config.output_dir)
        self.progress = progress
        self.space = SearchSpace(
            search.parameters, config, loss_objective=search.objective == "loss", include_base=search.include_base
        )
        self.storage_url = search.storage or f"sqlite:///{(self.output_dir / 'study.db').absolute()}"
        self.study_name = search.study or "dl4ds-tune"
        self._study: optuna.Study | None = None

    @classmethod
    def from_yaml(
        cls,
        path: str | os.PathLike[str],
        *,
        output_dir: str | os.PathLike[str] | None = None,
        progress: bool = False,
        **overrides: Any,
    ) -> Tuner:
        """The tuner of a tuning config file; ``overrides`` replace fields of its ``search:`` section (e.g. ``trials=5``)."""
        config, search = load_tuning_config(path)
        search = search.updated("search", **{key: value for key, value in overrides.items() if value is not None})
        return cls(config, search, output_dir=output_dir, progress=progress)

    @property
    def trials_dir(self) -> Path:
        return self.output_dir / "trials"

    @property
    def study(self) -> optuna.Study:
        """The study in the storage, created (with the base config queued as its first trial) or loaded."""
        if self._study is None:
            path = sqlite_path(self.storage_url)
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
            with self._lock().held():  # workers starting together would race to create the tables
                study, created = open_study(open_storage(self.storage_url), self.study_name, self.search.pruner)
            fingerprint = self._fingerprint()
            if created:
                study.set_user_attr("fingerprint", fingerprint)
                if self.search.include_base:
                    study.enqueue_trial(self.space.base_values(), user_attrs={"base": True})
            elif study.user_attrs.get("fingerprint", fingerprint) != fingerprint:
                raise ConfigError(
                    f"study {self.study_name!r} in {self.storage_url} was started with another base config or search "
                    "space, so its trials are not comparable with these; resume it with the same config, or give "
                    "another --study name or --storage"
                )
            self._study = study
        return self._study

    # ----------------------------------------------------------------- the search

    def run(self, *, verify_best: bool = True) -> TuningResult:
        """Run trials in this process until the study has ``search.trials`` or the time is up, then write the results.

        The results (``trials.csv``, ``best.yaml``, figures) describe the whole
        study. Unless ``verify_best`` is false or other workers are still
        running trials, the best trial is also verified on the test period.
        """
        self.optimize()
        return self.write_results(verify_best=verify_best)

    def optimize(self) -> None:
        """Run trials until the study has ``search.trials`` in total (from every worker) or ``search.timeout`` passes."""
        study = self.study
        deadline = None if self.search.timeout is None else time.monotonic() + self.search.timeout
        local_lock = sqlite_path(self.storage_url) is not None
        lock = self._lock()
        while True:
            lock.acquire()
            try:
                for number in fail_dead_local_trials(study):
                    logger.warning("trial %d was left running by a worker that no longer exists", number)
                count = counted_trials(study)
                waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
                if count >= self.search.trials and not waiting:  # queued trials (the base, retries) still run
                    logger.info("the study has %d of %d trials", count, self.search.trials)
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    logger.info("the time budget is spent")
                    break
                study.sampler = create_sampler(
                    self.search.sampler, len(study.get_trials(deepcopy=False)), local_lock=local_lock
                )
                study.optimize(lambda trial: self._objective(trial, lock, deadline), n_trials=1)
            finally:
                lock.release()

    def _lock(self) -> AskLock:
        """The lock of this machine's workers: beside an SQLite database, else in the output folder."""
        path = sqlite_path(self.storage_url)
        return AskLock(Path(f"{path}.lock") if path is not None else self.output_dir / ".tune.lock")

    def _objective(self, trial: optuna.Trial, lock: AskLock, deadline: float | None) -> float:
        lock.release()  # the trial exists: other workers may ask for theirs
        trial.set_user_attr("worker", WORKER)
        values = self.space.suggest(trial)
        twin = self._finished_twin(trial)
        if twin is not None:
            logger.info("trial %d has the parameters of trial %d; its result is reused", trial.number, twin.number)
            trial.set_user_attr("duplicate_of", twin.number)
            for key, value in twin.user_attrs.items():
                if key.startswith("val_") or key in ("epochs", "best_epoch", "parameters"):
                    trial.set_user_attr(key, value)
            assert twin.value is not None
            return twin.value
        folder = self.trials_dir / f"trial_{trial.number:04d}"
        trial.set_user_attr("folder", str(folder.relative_to(self.output_dir)))
        started = time.perf_counter()
        records: list[EpochRecord] = []
        try:
            config = self.space.apply(values).with_values({"data.test_period": None, "output_dir": str(folder)})
            folder.mkdir(parents=True, exist_ok=True)
            _write_config(config, folder / TRIAL_CONFIG, f"trial {trial.number} of study {self.study_name}")
            validation = _Validation(self, config, folder)
            resume = self._resume(trial, folder, records, validation)
            logger.info("trial %d: %s", trial.number, ", ".join(f"{k}={v!r}" for k, v in values.items()))
            on_epoch = self._reporter(trial, records, deadline, config, validation)
            result = Experiment(config).run(resume=resume, progress=self.progress, on_epoch=on_epoch)
            scores = validation.scores(result.model)
        except optuna.TrialPruned:
            trial.set_user_attr("epochs", len(records))
            trial.set_user_attr("seconds", round(time.perf_counter() - started, 1))
            raise
        except _BudgetSpent:
            reason = f"stopped by the time budget after epoch {records[-1].epoch}; resumes with the study"
            return self._failed(trial, reason, started, retry=True)
        except KeyboardInterrupt:
            self._failed(trial, "interrupted", started, retry=True)
            raise
        except Exception as error:  # out of memory, a diverged loss, an impossible combination: record it, go on
            logger.warning("trial %d failed: %s: %s", trial.number, type(error).__name__, error)
            return self._failed(trial, f"{type(error).__name__}: {error}", started, retry=False)
        finally:
            _free_memory()
        best = min(records, key=lambda record: record.monitored)
        scores["loss"] = best.monitored
        for key, value in scores.items():
            trial.set_user_attr(f"val_{key}", value)
        trial.set_user_attr("epochs", len(records))
        trial.set_user_attr("best_epoch", best.epoch)
        trial.set_user_attr("parameters", sum(p.numel() for p in result.model.parameters()))
        trial.set_user_attr("seconds", round(time.perf_counter() - started, 1))
        with atomic_path(folder / VALIDATION_JSON) as temporary:
            temporary.write_text(json.dumps({"objective": self.search.objective, **scores}, indent=2) + "\n")
        return scores[self.search.objective]

    def _reporter(
        self,
        trial: optuna.Trial,
        records: list[EpochRecord],
        deadline: float | None,
        config: ExperimentConfig,
        validation: _Validation,
    ) -> Callable[[EpochRecord], None]:
        """The ``on_epoch`` hook: report the epoch to the pruner, prune, and stop when the time budget is spent.

        The budget stops a trial only once the study has a finished one, so
        that there is always a result (the base config's, first) to compare with.

        The value reported is the validation loss; when the searched fields
        change what that loss measures, it is the objective of the best epoch
        so far instead, which compares across trials.
        """
        best = [min((r.monitored for r in records), default=math.inf)]

        def on_epoch(record: EpochRecord) -> None:
            records.append(record)
            value = record.monitored
            if self.space.changes_loss:
                improved = record.monitored < best[0]
                best[0] = min(best[0], record.monitored)
                value = validation.best_so_far(improved)
            trial.report(value, record.epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned after epoch {record.epoch}")
            last = record.epoch >= config.training.epochs
            if deadline is not None and time.monotonic() >= deadline and not last and _any_finished(trial.study):
                raise _BudgetSpent

        return on_epoch

    def _resume(self, trial: optuna.Trial, folder: Path, records: list[EpochRecord], validation: _Validation) -> bool:
        """For a retried trial, take over the interrupted one's checkpoints and reported epochs; whether to resume."""
        origin = trial.user_attrs.get("retry_of")
        if origin is None:
            return False
        source = self.trials_dir / f"trial_{int(origin):04d}" / "checkpoints"
        if not (source / LAST_CHECKPOINT).is_file():
            return False
        shutil.copytree(source, folder / "checkpoints", dirs_exist_ok=True)
        state = read_checkpoint(folder / "checkpoints" / LAST_CHECKPOINT).get("training_state") or {}
        reported = next(t for t in trial.study.get_trials(deepcopy=False) if t.number == origin).intermediate_values
        for entry in state.get("history", []):
            record = EpochRecord(**entry)
            records.append(record)
            value = reported.get(record.epoch, record.monitored)
            validation.best = min(validation.best, value)
            trial.report(value, record.epoch)
        logger.info("trial %d resumes trial %d after epoch %d", trial.number, origin, len(records))
        return True

    def _failed(self, trial: optuna.Trial, reason: str, started: float, *, retry: bool) -> float:
        trial.set_user_attr("fail_reason", reason)
        trial.set_user_attr("seconds", round(time.perf_counter() - started, 1))
        if retry:
            retry_trial(trial.study, trial.number, trial.params)
        return math.nan  # Optuna records a NaN objective as a failed trial

    def _finished_twin(self, trial: optuna.Trial) -> FrozenTrial | None:
        """A finished trial with exactly this trial's parameters (the result would be the same)."""
        if "retry_of" in trial.user_attrs:
            return None
        for other in trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            if other.number != trial.number and other.params == trial.params:
                return other
        return None

    def _fingerprint(self) -> str:
        """What trials of one study must share: the base config (less file locations) and the search space."""
        base = self.config.to_dict()
        base.pop("output_dir")
        for source in base["data"].values():
            if isinstance(source, dict):
                source.pop("path", None)
        space = {path: spec.model_dump(mode="json") for path, spec in self.search.parameters.items()}
        return json.dumps({"base": base, "space": space, "objective": self.search.objective}, sort_keys=True)

    # ----------------------------------------------------------------- results

    def trial_config(self, trial: FrozenTrial) -> ExperimentConfig:
        """The complete config of ``trial``, with the base config's test period and ``output_dir: best``."""
        values = self.space.values(trial.params)
        return self.space.apply(values).with_values({"output_dir": "best"})

    def write_results(self, *, verify_best: bool = True) -> TuningResult:
        """Write ``trials.csv``, ``best.yaml``, ``summary.json`` and the figures; verify the best on the test period.

        The verification (``test/``) runs when ``verify_best``, the base config
        has a test period, a trial finished, and no other worker is still running one.
        """
        study = self.study
        trials = study.get_trials(deepcopy=False)
        counts = {
            state.name: sum(t.state == state for t in trials)
            for state in TrialState
            if any(t.state == state for t in trials)
        }
        results.write_trials_csv(trials, self.output_dir / "trials.csv")
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        summary: dict[str, Any] = {
            "study": self.study_name,
            "storage": self.storage_url,
            "objective": f"validation {self.search.objective}",
            "trials": counts,
        }
        if not complete:
            results.write_summary(summary, self.output_dir / "summary.json")
            logger.warning("no trial has finished yet; nothing to choose from")
            return TuningResult(self.output_dir, None, None, None, None, counts)
        results.write_figures(study, self.output_dir / "figures", f"validation {self.search.objective}")
        best = study.best_trial
        best_config = self.trial_config(best)
        _write_config(
            best_config,
            self.output_dir / "best.yaml",
            f"the best of study {self.study_name}: trial {best.number}, validation {self.search.objective} "
            f"{best.value:.4g}; chosen on the validation period only. Train it with `dl4ds train best.yaml`",
        )
        base = next((t for t in complete if t.user_attrs.get("base")), None)
        summary["best"] = {"trial": best.number, "value": best.value, "params": best.params}
        if base is not None:
            summary["base"] = {"trial": base.number, "value": base.value}
        running = [t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))]
        test = None
        if not verify_best or self.config.data.test_period is None:
            logger.info("the best trial is not verified on a test period")
        elif running:
            logger.info("trials %s are still running elsewhere; the last worker to finish verifies the best", running)
        else:
            test = self.verify_on_test(best, None if base is None or base.number == best.number else base)
            summary["test"] = test
            if "base" in test:
                summary["test_rmse_reduction_vs_base"] = 1 - test["tuned"]["rmse"] / test["base"]["rmse"]
        results.write_summary(summary, self.output_dir / "summary.json")
        return TuningResult(self.output_dir, best.number, best.value, best_config, test, counts)

    def verify_on_test(self, best: FrozenTrial, base: FrozenTrial | None) -> dict[str, dict[str, float]]:
        """Verify the best trial (and the base config's) on the test period against the ladder; writes ``test/``.

        Each model is its trial's checkpoint when it is on this machine, else
        it is retrained from the trial's config (the same seed gives the same
        weights on the CPU).
        """
        directory = self.output_dir / "test"
        chosen = {"tuned": best} if base is None else {"tuned": best, "base": base}
        predictions: dict[str, xr.Dataset] = {}
        notes = ["the trials were ranked on the validation period only; the test period played no part in the choice"]
        data = None
        for name, trial in chosen.items():
            config = self.trial_config(trial)
            model = self._trained_model(trial, config, name)
            experiment = Experiment(config)
            data = experiment.training_data()
            assert data.test is not None
            inputs = data.test.input_dataset().assign_attrs(experiment.coarse_attributes)  # licence, source, history
            predictions[name] = _predict(model, config, inputs)
            notes.append(f"{name}: trial {trial.number}, {model.metadata.architecture}, {_describe(trial.params)}")
        assert data is not None and data.test is not None
        result = verify(
            predictions,
            data.test.target_dataset(),
            directory / "report",
            baselines=list_baselines(),
            train=data.train,
            pairs=data.test,
            title=f"study {self.study_name}: the tuned config on the test period",
            notes=notes,
        )
        write_netcdf(predictions["tuned"], directory / "test_downscaled.nc")
        with atomic_path(directory / "metrics.json") as temporary:
            temporary.write_text(json.dumps(result.headline, indent=2) + "\n")
        return result.headline

    def _trained_model(self, trial: FrozenTrial, config: ExperimentConfig, name: str) -> DownscalingModel:
        origin = trial.user_attrs.get("duplicate_of", trial.number)
        checkpoint = self.trials_dir / f"trial_{int(origin):04d}" / "checkpoints" / BEST_CHECKPOINT
        if checkpoint.is_file():
            return load_model(checkpoint)
        logger.info("trial %d's checkpoint is not on this machine; retraining it", trial.number)
        retrained = config.with_values({"data.test_period": None, "output_dir": str(self.output_dir / name)})
        return Experiment(retrained).run(progress=self.progress).model


class _Validation:
    """A trial's scores on the validation period: of its final model, and of the best epoch's checkpoint so far."""

    def __init__(self, tuner: Tuner, config: ExperimentConfig, folder: Path) -> None:
        data = Experiment(config).training_data()
        assert data.val is not None, "the tuner checks that the config has a validation period"
        self.pairs = data.val
        self.config = config
        self.objective = tuner.search.objective
        self.checkpoint = folder / "checkpoints" / BEST_CHECKPOINT
        self.best = math.inf

    def scores(self, model: DownscalingModel) -> dict[str, float]:
        """RMSE, MAE, bias, correlation and CRPS of ``model`` (several targets: each over its spread, averaged)."""
        truth = self.pairs.target_dataset()
        predicted = _predict(model, self.config, self.pairs.input_dataset())
        headline = headline_scores(Evaluation().score({"trial": predicted}, truth))
        if len(headline) == 1:
            return dict(headline["trial"])
        variables = [str(name) for name in truth.data_vars if f"trial/{name}" in headline]
        spread = {name: float(truth[name].std()) for name in variables}
        metrics = list(headline[f"trial/{variables[0]}"])
        return {
            metric: sum(headline[f"trial/{name}"][metric] / spread[name] for name in variables) / len(variables)
            for metric in metrics
        }

    def best_so_far(self, improved: bool) -> float:
        """The objective of the best epoch's checkpoint, scored again when the epoch just written improved on it."""
        if improved:
            self.best = self.scores(load_model(self.checkpoint))[self.objective]
        return self.best


def _predict(model: DownscalingModel, config: ExperimentConfig, inputs: xr.Dataset) -> xr.Dataset:
    samples = config.evaluation.samples or (DEFAULT_SAMPLES if model.capabilities.stochastic else 1)
    return downscale(model, inputs, samples=samples, seed=config.training.seed)


def _write_config(config: ExperimentConfig, path: Path, comment: str) -> None:
    text = f"# {comment}\n" + yaml.safe_dump(config.to_dict(), sort_keys=False)
    with atomic_path(path) as temporary:
        temporary.write_text(text)


def _describe(params: dict[str, Any]) -> str:
    return ", ".join(f"{key}={value}" for key, value in params.items()) or "the base config"


def _any_finished(study: optuna.Study) -> bool:
    return bool(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))


def _free_memory() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
