"""The ``search:`` section of a tuning config, declared once: the parameters searched and how the study runs.

A tuning config is an experiment config (:class:`dl4ds.experiment.ExperimentConfig`,
the *base*: the values every trial starts from) plus a ``search:`` section::

    search:
      parameters:                                  # any field of the config, by its dotted path
        model.name: {choices: [resnet_spc, densenet_spc, unet_spc]}
        training.learning_rate: {low: 5.0e-4, high: 5.0e-3, log: true}
        model.params.n_filters: {low: 32, high: 96, step: 16}       # integer fields give integer ranges
        model.params.depth: {low: 1, high: 3, when: {model.name: [unet_*]}}
      objective: rmse                              # on the validation period
      pruner: {name: median, min_epochs: 5}
      trials: 40
      timeout: 30m

The structure is checked here; :class:`dl4ds.tuning.space.SearchSpace` checks
the parameters against the base config (fields that exist, values they accept,
models that take them) before any trial starts.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, field_validator, model_validator

from dl4ds.utils.options import Options

Objective = Literal["rmse", "mae", "crps", "loss"]


class Choices(Options):
    """A categorical parameter: one of ``choices``, any YAML values (names, numbers, null, lists, mappings)."""

    choices: list[Any] = Field(min_length=1, description="the values to choose from")
    when: dict[str, list[Any]] = Field(
        default_factory=dict,
        description="search this parameter only when each named (categorical) parameter takes one of the listed "
        "values; strings may be glob patterns such as unet_*",
    )

    @field_validator("choices")
    @classmethod
    def _distinct(cls, choices: list[Any]) -> list[Any]:
        seen: list[Any] = []
        for choice in choices:
            if choice in seen:
                raise ValueError(f"{choice!r} is listed twice")
            seen.append(choice)
        return choices


class Range(Options):
    """A numeric parameter in [low, high]: integers for an integer field, else real numbers."""

    low: float = Field(description="the smallest value")
    high: float = Field(description="the largest value")
    log: bool = Field(default=False, description="sample uniformly in the logarithm (for rates, decays...)")
    step: float | None = Field(default=None, gt=0, description="sample only low, low + step, ... high")
    when: dict[str, list[Any]] = Field(default_factory=dict, description="as for choices")

    @model_validator(mode="after")
    def _possible(self) -> Range:
        if not self.low < self.high:
            raise ValueError(
                f"low {self.low:g} must be below high {self.high:g}; for a single value set it in the config instead"
            )
        if self.log and self.low <= 0:
            raise ValueError(f"a log range needs low > 0, not {self.low:g}")
        if self.log and self.step is not None:
            raise ValueError("a log range cannot have a step; remove one of them")
        if self.step is not None:
            intervals = (self.high - self.low) / self.step
            if not math.isclose(intervals, round(intervals), abs_tol=1e-9):
                raise ValueError(
                    f"high - low = {self.high - self.low:g} is not a multiple of step {self.step:g}; adjust high"
                )
        return self


def _parameter_kind(value: Any) -> str | None:
    if isinstance(value, Choices) or (isinstance(value, dict) and "choices" in value):
        return "choices"
    if isinstance(value, Range) or (isinstance(value, dict) and ("low" in value or "high" in value)):
        return "range"
    return None


Parameter = Annotated[
    Annotated[Choices, Tag("choices")] | Annotated[Range, Tag("range")],
    Discriminator(
        _parameter_kind,
        custom_error_type="parameter_kind",
        custom_error_message="a parameter is {choices: [...]} or {low: L, high: H} (optionally log: true or step: S)",
    ),
]


class PrunerOptions(Options):
    """When a trial whose validation loss lags behind the others' at the same epoch is stopped."""

    name: Literal["median", "hyperband", "none"] = Field(
        default="median",
        description="median: stop a trial whose best validation loss so far is worse than the median of the "
        "other trials' at the same epoch; hyperband: successive halving over brackets of budgets; none",
    )
    min_epochs: int = Field(default=5, ge=1, description="no trial is stopped before this epoch")
    startup_trials: int = Field(
        default=5, ge=0, description="median: trials that must have finished before any is stopped"
    )
    reduction_factor: int = Field(default=3, ge=2, description="hyperband: 1 / the share of trials kept at each rung")

    @model_validator(mode="before")
    @classmethod
    def _bare_name(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value


class SamplerOptions(Options):
    """The TPE sampler (Optuna's Tree-structured Parzen Estimator)."""

    startup_trials: int = Field(
        default=10, ge=0, description="trials sampled at random before TPE models the finished ones"
    )
    seed: int = Field(default=0, description="seeds the sampler; with one worker, a study is repeatable")


_DURATION = re.compile(
    r"^\s*(?:(?P<h>\d+(?:\.\d*)?)\s*h)?\s*(?:(?P<m>\d+(?:\.\d*)?)\s*m(?:in)?)?\s*(?:(?P<s>\d+(?:\.\d*)?)\s*s)?\s*$"
)


def parse_duration(value: Any) -> float | None:
    """Seconds from a number of seconds or a string such as ``"90s"``, ``"30m"``, ``"2h"``, ``"1h30m"``; None stays None.

    Raises:
        ValueError: an unreadable or non-positive duration.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = str(value)
        match = _DURATION.match(text)
        if text.strip().replace(".", "", 1).isdigit():
            seconds = float(text)
        elif match and any(match.groupdict().values()):
            parts = {unit: float(match[unit] or 0) for unit in "hms"}
            seconds = 3600 * parts["h"] + 60 * parts["m"] + parts["s"]
        else:
            raise ValueError(f"{text!r} is not a duration; write e.g. 90s, 30m, 2h or 1h30m, or a number of seconds")
    if not seconds > 0:
        raise ValueError(f"a duration must be positive, not {value!r}")
    return seconds


class SearchOptions(Options):
    """The ``search:`` section: the parameters searched, the score that ranks trials, and the study's budget."""

    parameters: dict[str, Parameter] = Field(
        min_length=1, description="the searched fields of the config by dotted path, e.g. training.learning_rate"
    )
    objective: Objective = Field(
        default="rmse",
        description="what ranks the trials, on the validation period only: rmse, mae or crps (area weighted, in "
        "the target's units; for several targets the mean of each one's score over its standard deviation) of "
        "the model of the best epoch, or loss (its validation loss)",
    )
    pruner: PrunerOptions = Field(default_factory=PrunerOptions, description="a name or the options of PrunerOptions")
    sampler: SamplerOptions = Field(default_factory=SamplerOptions, description="the options of SamplerOptions")
    include_base: bool = Field(
        default=True,
        description="the base config's own values are the study's first trial, so the tuned config is compared "
        "with it on the test period",
    )
    trials: int = Field(
        default=20,
        ge=0,
        description="trials in the study in total, over every run and worker (interrupted trials are retried "
        "and count once)",
    )
    timeout: float | None = Field(
        default=None,
        description="stop this worker after this long (e.g. 30m, 2h, or seconds): no trial starts after it and a "
        "running one stops after its epoch, to be resumed with the study (unless no trial has finished yet); None "
        "for no limit",
    )
    storage: str | None = Field(
        default=None,
        description="Optuna RDB storage URL shared by the workers (sqlite:///study.db, postgresql://..., "
        "mysql://...); default sqlite:///OUTPUT_DIR/study.db",
    )
    study: str | None = Field(default=None, description="the study's name in the storage; default the config's name")

    @field_validator("timeout", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float | None:
        return parse_duration(value)
