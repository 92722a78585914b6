"""Experiment configuration: a YAML file validated into typed objects.

Example (paths are relative to the YAML file; ``bundled:NAME`` opens bundled data)::

    data:
      target: {path: "bundled:era5_t2m_uk", variables: [t2m]}
      static: {path: "bundled:uk_static", variables: [elevation, land_fraction]}
      pairing: perfect_prog
      scale: 4
      train_period: ["2019-03-01", "2019-03-21"]
      val_period: ["2019-03-22", "2019-03-24"]
      test_period: ["2019-03-25", "2019-03-31"]
    model: {name: resnet_spc}
    training: {epochs: 30, batch_size: 16, loss: mae, lr_schedule: {name: cosine, warmup_epochs: 2}}
    output_dir: runs/era5_uk

MOS with coarse data on any grid, several files, levels and predictor sources::

    data:
      target: {path: "obs/tas_0p5_*.nc", variables: [tas]}
      coarse: {path: [reanalysis_1990s.nc, reanalysis_2000s.nc], variables: [t2m], units: {t2m: degC}}
      predictors:
        - {path: "reanalysis_pl/*.nc", variables: ["ta@850hPa", "z@500hPa"]}
        - {path: sst.nc, variables: [sst], regrid: conservative}
      pairing: mos            # scale: chosen from the grids unless given

Forecast-aware MOS: every member, start and lead of a coarse hindcast paired
with the observations at its valid time (:class:`dl4ds.data.HindcastMOS`),
split by start year; the lead time is an input channel, so one model serves
every lead (``configs/hindcast_mos.yaml``)::

    data:
      target: {path: obs_tas_monthly.nc, variables: [tas]}
      coarse: {path: seas5_tas_hindcast.nc, variables: [tas]}   # dims init, member, lead, lat, lon
      pairing: hindcast_mos
      lead_input: true
      train_years: [2000, 2001, 2002, 2003, 2004, 2005, 2006, 2007, 2008, 2009]
      val_years: [2010, 2011]
      test_years: [2012, 2013, 2014]  # verified per lead as a forecast: at least 3 start years
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from dl4ds.baselines.options import BaselineOptions
from dl4ds.data.regrid import RegridMethod
from dl4ds.errors import ConfigError
from dl4ds.evaluation.precipitation import PrecipitationOptions
from dl4ds.training.options import TrainingOptions
from dl4ds.utils.options import Options, Scale, problems

Period = tuple[str, str]
PERIODS = ("train_period", "val_period", "test_period")
START_YEARS = ("train_years", "val_years", "test_years")


class VariableSource(Options):
    """Variables read from a NetCDF file, a Zarr store, a bundled dataset (``bundled:NAME``), a glob or a list of files."""

    path: str | list[str] = Field(
        description="a NetCDF file or Zarr store, bundled:NAME, a glob pattern (data/*.nc) or a list of files, "
        "opened together (split along time or by variable)"
    )
    variables: list[str] | None = Field(
        default=None, description="variables to use, a level written VARIABLE@LEVEL (ta@850hPa); all if omitted"
    )
    units: dict[str, str] = Field(
        default_factory=dict,
        description="units of variables, set or overriding those in the files, e.g. {t2m: degC}; inputs are converted "
        "to the target's units",
    )
    regrid: RegridMethod | None = Field(
        default=None,
        description="how the data is brought onto another grid: linear (default), nearest, cubic or conservative "
        "(area-weighted, keeps totals)",
    )

    def paths(self) -> list[str]:
        return [self.path] if isinstance(self.path, str) else list(self.path)


class DataConfig(Options):
    target: VariableSource
    pairing: Literal["perfect_prog", "mos", "hindcast_mos"] = Field(
        default="perfect_prog",
        description="perfect_prog (coarse inputs are block averages of the target), mos (explicit coarse data paired "
        "by time) or hindcast_mos (every member, start and lead of a coarse hindcast paired with the observations at "
        "its valid time)",
    )
    coarse: VariableSource | None = Field(
        default=None,
        description="mos: the coarse counterparts of the targets; hindcast_mos: the coarse hindcast (dims init, "
        "member, lead, lat, lon)",
    )
    static: VariableSource | None = None
    predictors: VariableSource | list[VariableSource] | None = Field(
        default=None, description="one source of predictors, or a list of sources, each on its own grid"
    )
    scale: Scale | None = Field(
        default=None,
        description="integer refinement factor from the coarse to the fine grid (>= 2); required for perfect_prog, "
        "chosen from the grids for mos if omitted",
    )
    crop: bool = Field(
        default=True,
        description="perfect_prog: crop the target to a multiple of the scale (mos pads it and never crops)",
    )
    train_period: Period | None = Field(
        default=None, description="[start, end] dates of training (perfect_prog and mos; required)"
    )
    val_period: Period | None = None
    test_period: Period | None = None
    train_years: list[int] | None = Field(
        default=None, description="hindcast_mos: the start years of training (required)"
    )
    val_years: list[int] | None = Field(default=None, description="hindcast_mos: the start years of validation")
    test_years: list[int] | None = Field(
        default=None,
        description="hindcast_mos: the start years of the test, verified per lead as a forecast (at least 3)",
    )
    lead_input: bool = Field(
        default=True, description="hindcast_mos: the lead time as an input channel, so one model serves every lead"
    )
    aggregation: Literal["mean"] | None = Field(
        default=None,
        description="hindcast_mos: 'mean' pairs a monthly hindcast with the mean of daily observations; "
        "finer observations are refused without it",
    )
    patch_size: tuple[int, int] | None = Field(
        default=None, description="fine cells (height, width); whole domain if omitted"
    )
    lazy: bool = Field(
        default=False,
        description="read the training period chunk by chunk (dl4ds.data.lazy) instead of loading it; needs patch_size",
    )

    @field_validator("train_period", "val_period", "test_period")
    @classmethod
    def _dates(cls, period: Period | None) -> Period | None:
        if period is not None:
            start, end = (pd.Timestamp(v) for v in period)
            if end < start:
                raise ValueError(f"period ends ({period[1]}) before it starts ({period[0]})")
        return period

    @property
    def predictor_sources(self) -> list[VariableSource]:
        """The predictor sources as a list (empty without predictors)."""
        if self.predictors is None:
            return []
        return [self.predictors] if isinstance(self.predictors, VariableSource) else list(self.predictors)

    @model_validator(mode="after")
    def _consistent(self) -> DataConfig:
        if self.pairing == "perfect_prog" and self.scale is None:
            raise ValueError("pairing 'perfect_prog' needs a scale, the integer refinement factor, e.g. scale: 4")
        if self.target.regrid is not None:
            raise ValueError("target.regrid: the target defines the fine grid and is never regridded; remove regrid")
        if self.pairing == "mos" and self.coarse is None:
            raise ValueError("pairing 'mos' needs a 'coarse' source (the coarse data paired with the target)")
        if self.pairing == "hindcast_mos":
            self._check_hindcast_mos()
        else:
            if self.train_period is None:
                raise ValueError(f"pairing {self.pairing!r} needs a train_period, e.g. ['2019-03-01', '2019-03-21']")
            given = [name for name in (*START_YEARS, "aggregation") if getattr(self, name) is not None]
            if given:
                raise ValueError(
                    f"{', '.join(given)} apply to pairing 'hindcast_mos' only; use train_period, val_period and "
                    "test_period, or pairing: hindcast_mos"
                )
        if self.lazy and self.patch_size is None:
            raise ValueError("lazy: true samples patches from the archive; set patch_size, e.g. [64, 64]")
        if (
            self.patch_size is not None
            and self.scale is not None  # MOS chooses its scale at pairing, where the dataset checks the patches
            and any(side < self.scale or side % self.scale for side in self.patch_size)
        ):
            example = 16 * self.scale
            raise ValueError(
                f"patch_size {list(self.patch_size)} must be positive multiples of the scale {self.scale} (fine cells), "
                f"e.g. [{example}, {example}]; or leave it out for whole-domain samples"
            )
        if self.pairing == "perfect_prog" and self.coarse is not None:
            raise ValueError(
                "pairing 'perfect_prog' makes its coarse input from the target; remove 'coarse' or use pairing 'mos'"
            )
        periods = {name: getattr(self, name) for name in PERIODS}
        spans = {name: _span(p) for name, p in periods.items() if p is not None}
        names = list(spans)
        for i, first in enumerate(names):
            for second in names[i + 1 :]:
                (a0, a1), (b0, b1) = spans[first], spans[second]
                if a0 < b1 and b0 < a1:
                    raise ValueError(
                        f"{first} {periods[first]} overlaps {second} {periods[second]}; periods must be disjoint"
                    )
        return self

    def _check_hindcast_mos(self) -> None:
        if self.coarse is None:
            raise ValueError("pairing 'hindcast_mos' needs a 'coarse' source: the coarse hindcast")
        periods = [name for name in PERIODS if getattr(self, name) is not None]
        if periods:
            raise ValueError(
                f"pairing 'hindcast_mos' splits by start year: replace {', '.join(periods)} by train_years, "
                "val_years and test_years"
            )
        if self.train_years is None:
            raise ValueError("pairing 'hindcast_mos' needs train_years, the start years of training, e.g. [2000, 2001]")
        if self.predictors is not None or self.lazy:
            raise ValueError(
                "pairing 'hindcast_mos' takes no predictors and is not read lazily yet; remove predictors and lazy"
            )
        if self.test_years is not None and len(set(self.test_years)) < 3:
            raise ValueError(
                f"test_years {self.test_years}: a forecast is verified against the climatology of its start years, "
                "which needs at least 3; give 3 or more, or leave test_years out and cross-validate by year"
            )
        splits = {name: set(getattr(self, name)) for name in START_YEARS if getattr(self, name) is not None}
        names = list(splits)
        for i, first in enumerate(names):
            for second in names[i + 1 :]:
                shared = splits[first] & splits[second]
                if shared:
                    raise ValueError(
                        f"{first} and {second} share the start years {sorted(shared)}; they must be disjoint"
                    )


def _span(period: Period) -> tuple[pd.Timestamp, pd.Timestamp]:
    """[start, end) of a period whose end date, when given without a time, includes that whole day."""
    start, end = pd.Timestamp(period[0]), pd.Timestamp(period[1])
    if len(period[1]) <= 10:
        end += pd.Timedelta(days=1)
    return start, end


class ModelConfig(Options):
    name: str = Field(default="resnet_spc", description="registry name, see `dl4ds models`")
    params: dict[str, Any] = Field(default_factory=dict, description="architecture parameters")
    time_window: int | None = Field(
        default=None,
        ge=1,
        description="consecutive time steps per sample; required by spatio-temporal (rec*) models only",
    )


class EvaluationConfig(Options):
    samples: int | None = Field(
        default=None,
        ge=1,
        description="ensemble members per test input for stochastic networks; default 10 for them, 1 otherwise",
    )
    baselines: BaselineOptions = Field(
        default_factory=BaselineOptions,
        description="options of the baselines, e.g. {bcsd: {multiplicative: [pr]}, lapse_rate: {elevation: orog}}",
    )
    precipitation: PrecipitationOptions = Field(
        default_factory=PrecipitationOptions,
        description="wet-day scores of precipitation, e.g. {wet_day_threshold: 0.1, variables: [pr]}",
    )


class ExperimentConfig(Options):
    data: DataConfig
    model: ModelConfig = ModelConfig()
    training: TrainingOptions = TrainingOptions()
    evaluation: EvaluationConfig = EvaluationConfig()
    output_dir: str = "runs/experiment"

    @model_validator(mode="after")
    def _samples_fit_the_model(self) -> ExperimentConfig:
        if self.data.pairing == "hindcast_mos" and self.model.time_window is not None:
            raise ValueError(
                "model.time_window: hindcast_mos samples are forecasts of different starts, members and leads, not "
                "consecutive time steps; use a spatial network without time_window"
            )
        return self

    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str]) -> ExperimentConfig:
        """Read and validate a YAML file; relative paths are taken from the file's folder."""
        path = Path(path)
        try:
            raw = yaml.safe_load(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file {str(path)!r} does not exist") from None
        except yaml.YAMLError as error:
            raise ConfigError(f"config file {str(path)!r} is not valid YAML: {error}") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"config file {str(path)!r} must hold a mapping with a 'data' section")
        return cls.from_dict(raw, base_dir=path.parent)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], base_dir: str | os.PathLike[str] | None = None) -> ExperimentConfig:
        """Validate a configuration mapping, raising :class:`ConfigError` with every problem listed."""
        try:
            config = cls.model_validate(raw)
        except ValidationError as error:
            listed = "\n".join(f"  - {problem}" for problem in problems(error, "config", cls))
            raise ConfigError(f"invalid configuration:\n{listed}") from None
        return config.resolve_paths(base_dir) if base_dir is not None else config

    def with_values(self, values: Mapping[str, Any]) -> ExperimentConfig:
        """A validated copy with the fields named by dotted paths replaced, e.g. ``{"training.epochs": 5}``.

        Raises:
            ConfigError: a path that names no field, or a value that fails validation.
        """
        raw = self.to_dict()
        for path, value in values.items():
            *parents, leaf = path.split(".")
            section = raw
            for key in parents:
                if section.get(key) is None:
                    section[key] = {}
                section = section[key]
                if not isinstance(section, dict):
                    raise ConfigError(f"{path!r} names no field of the configuration: {key!r} is not a section")
            section[leaf] = value
        return ExperimentConfig.from_dict(raw)

    def resolve_paths(self, base_dir: str | os.PathLike[str]) -> ExperimentConfig:
        """A copy whose relative file paths are made relative to ``base_dir``."""
        base = Path(base_dir)

        def resolve_path(path: str) -> str:
            return path if path.startswith("bundled:") or Path(path).expanduser().is_absolute() else str(base / path)

        def resolve(source: VariableSource | None) -> VariableSource | None:
            if source is None:
                return None
            paths = [resolve_path(path) for path in source.paths()]
            return source.model_copy(update={"path": paths[0] if isinstance(source.path, str) else paths})

        predictors = self.data.predictors
        update: dict[str, Any] = {name: resolve(getattr(self.data, name)) for name in ("target", "coarse", "static")}
        update["predictors"] = (
            [resolve(source) for source in predictors] if isinstance(predictors, list) else resolve(predictors)
        )
        data = self.data.model_copy(update=update)
        output = self.output_dir if Path(self.output_dir).is_absolute() else str(base / self.output_dir)
        return self.model_copy(update={"data": data, "output_dir": output})

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")
