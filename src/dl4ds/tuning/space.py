"""The search space checked against the base config, sampled by Optuna trials and applied to the base.

:class:`SearchSpace` turns the ``search.parameters`` of a tuning config into
trial configs. At construction it reports every problem at once, each named
by its path: a field the config does not have, a value the field refuses (its
own bounds and types, declared once in the config's option models), a model
name that is not registered, a ``model.params`` entry that no candidate model
takes, a condition on an unknown parameter, a base value outside the space.

``model.params.X`` is searched only in trials whose model takes X (U-Net's
``depth``, say, only for ``unet_*`` networks); ``when`` adds explicit
conditions. The base config's ``model.params`` that a trial's model does not
take are left out of that trial.
"""

from __future__ import annotations

import difflib
import fnmatch
import json
import typing
from collections.abc import Mapping
from typing import Any

import optuna
from pydantic import BaseModel

from dl4ds import networks
from dl4ds.errors import ConfigError
from dl4ds.experiment.config import ExperimentConfig
from dl4ds.tuning.options import Choices, Parameter, Range

TASK_FIELDS = (
    "data.target",
    "data.coarse",
    "data.pairing",
    "data.scale",
    "data.crop",
    "data.train_period",
    "data.val_period",
    "data.test_period",
    "output_dir",
)
"""Fields that define the task the trials are compared on: never searched."""

LOSS_FIELDS = (
    "training.loss",
    "training.loss_region",
    "training.area_weighted",
    "training.trainer",
    "training.ensemble_size",
)
"""Fields that change what the validation loss measures, so that it does not compare trials."""

_PRIMITIVE = (type(None), bool, int, float, str)


class SearchSpace:
    """The parameters of ``search.parameters`` on the base config ``base``.

    Args:
        parameters: dotted config path -> :class:`Choices` or :class:`Range`.
        base: the config every trial starts from.
        loss_objective: whether trials are ranked on their validation loss,
            which then may not change meaning between trials (:data:`LOSS_FIELDS`).
        include_base: whether the base config is a trial, which needs its
            values inside the space.

    Raises:
        ConfigError: every problem of the space, one per line, each naming
            ``search.parameters.PATH``.
    """

    def __init__(
        self,
        parameters: Mapping[str, Parameter],
        base: ExperimentConfig,
        *,
        loss_objective: bool = False,
        include_base: bool = False,
    ) -> None:
        self.parameters = dict(parameters)
        self.base = base
        self._problems: list[str] = []
        self._kinds: dict[str, str] = {}
        self.order = self._ordered()
        faulty = set()
        for path, spec in self.parameters.items():
            found = len(self._problems)
            self._check(path, spec, loss_objective)
            if len(self._problems) > found:
                faulty.add(path)
        if include_base:
            self._base_point(skip=faulty)
        if self._problems:
            listed = "\n".join(f"  - {problem}" for problem in self._problems)
            raise ConfigError(f"invalid search space:\n{listed}")

    # ----------------------------------------------------------------- sampling and applying

    def suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        """The values of one trial, ``{path: value}``, for the parameters active in it, in sampling order."""
        values: dict[str, Any] = {}
        for path in self.order:
            if not self._active(path, values):
                continue
            spec = self.parameters[path]
            if isinstance(spec, Choices):
                labels = self.labels(path)
                values[path] = spec.choices[labels.index(trial.suggest_categorical(path, labels))]
            elif self._kinds[path] == "int":
                step = 1 if spec.step is None else int(spec.step)
                values[path] = trial.suggest_int(path, int(spec.low), int(spec.high), step=step, log=spec.log)
            else:
                values[path] = trial.suggest_float(path, spec.low, spec.high, step=spec.step, log=spec.log)
        return values

    def values(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The config values of a trial's Optuna ``params`` (categorical labels decoded), in sampling order."""
        decoded = {}
        for path in self.order:
            if path not in params:
                continue
            spec = self.parameters[path]
            if isinstance(spec, Choices):
                decoded[path] = spec.choices[self.labels(path).index(params[path])]
            else:
                decoded[path] = params[path]
        return decoded

    def apply(self, values: Mapping[str, Any]) -> ExperimentConfig:
        """The base config with ``values`` set; base ``model.params`` that the trial's model does not take are dropped.

        Raises:
            ConfigError: a combination of values that the config refuses.
        """
        name = values.get("model.name", self.base.model.name)
        accepted = networks.model_parameters(name)
        kept = {key: value for key, value in self.base.model.params.items() if key in accepted}
        return self.base.with_values({"model.params": kept, **values})

    def base_values(self) -> dict[str, Any]:
        """The base config's point of the space, as Optuna parameters (labels of categorical choices).

        Raises:
            ConfigError: a base value outside the space (then set search.include_base: false, or widen it).
        """
        values = self._base_point(skip=set())
        if self._problems:
            listed = "\n".join(f"  - {problem}" for problem in self._problems)
            raise ConfigError(f"invalid search space:\n{listed}")
        return {path: self.label(path, value) for path, value in values.items()}

    def _base_point(self, skip: set[str]) -> dict[str, Any]:
        """The base config's values of the active parameters, noting those outside the space (``skip``: not checked)."""
        values: dict[str, Any] = {}
        for path in self.order:
            if path in skip or not self._active(path, values):
                continue
            value = self._base_value(path)
            spec = self.parameters[path]
            if isinstance(spec, Choices):
                same = [choice for choice in spec.choices if self._is_base_value(path, choice, value)]
                if not same:
                    self._problems.append(
                        f"search.parameters.{path}: the base config's value {value!r} is not one of the choices; add "
                        "it, or set search.include_base: false"
                    )
                    continue
                value = same[0]
            elif not _in_range(spec, value):
                self._problems.append(
                    f"search.parameters.{path}: the base config's value {value!r} lies outside the range; widen it, "
                    "or set search.include_base: false"
                )
                continue
            values[path] = value
        return values

    def _is_base_value(self, path: str, choice: Any, value: Any) -> bool:
        """Whether ``choice`` gives the base config's ``value`` at ``path`` (e.g. ``cosine`` for a cosine schedule)."""
        if choice == value or path.startswith("model.params."):
            return bool(choice == value)
        try:
            return self.base.with_values({path: choice}) == self.base
        except ConfigError:
            return False

    def labels(self, path: str) -> list[Any]:
        """The Optuna choices of categorical ``path``: the values, or their JSON text when one is a list or mapping."""
        spec = self.parameters[path]
        assert isinstance(spec, Choices)
        return [self.label(path, choice) for choice in spec.choices]

    def label(self, path: str, value: Any) -> Any:
        """``value`` as Optuna stores it for ``path``."""
        spec = self.parameters[path]
        if isinstance(spec, Choices) and not all(isinstance(choice, _PRIMITIVE) for choice in spec.choices):
            return json.dumps(value, sort_keys=True)
        return value

    # ----------------------------------------------------------------- checks

    def _ordered(self) -> list[str]:
        """The parameters in an order where every condition's parameter comes first (model.name before model.params)."""
        ordered: list[str] = []
        visiting: set[str] = set()

        def visit(path: str) -> None:
            if path in ordered:
                return
            if path in visiting:
                self._problems.append(f"search.parameters.{path}: its conditions (when) depend on it in a cycle")
                return
            visiting.add(path)
            needs = list(self.parameters[path].when)
            if path.startswith("model.params.") and "model.name" in self.parameters:
                needs.append("model.name")
            for other in needs:
                if other in self.parameters:
                    visit(other)
            visiting.discard(path)
            ordered.append(path)

        for path in self.parameters:
            visit(path)
        return ordered

    def _active(self, path: str, values: Mapping[str, Any]) -> bool:
        for other, allowed in self.parameters[path].when.items():
            if other not in values or not _matches(values[other], allowed):
                return False
        if path.startswith("model.params."):
            name = values.get("model.name", self.base.model.name)
            return path.removeprefix("model.params.") in networks.model_parameters(name)
        return True

    def _base_value(self, path: str) -> Any:
        if path.startswith("model.params."):
            key = path.removeprefix("model.params.")
            return self.base.model.params.get(key, networks.model_parameters(self.base.model.name)[key])
        value: Any = self.base.to_dict()
        for key in path.split("."):
            value = value[key]
        return value

    @property
    def changes_loss(self) -> bool:
        """Whether a searched field changes what the validation loss measures (:data:`LOSS_FIELDS`)."""
        return any(_within(path, LOSS_FIELDS) for path in self.parameters)

    def _check(self, path: str, spec: Choices | Range, loss_objective: bool) -> None:
        where = f"search.parameters.{path}"
        if _within(path, TASK_FIELDS):
            self._problems.append(
                f"{where}: defines the task the trials are compared on (data, periods, output); it cannot be searched"
            )
            return
        if loss_objective and _within(path, LOSS_FIELDS):
            self._problems.append(
                f"{where}: changes what the validation loss measures, so objective: loss would rank unlike "
                "quantities; use objective rmse, mae or crps, or fix it in the config"
            )
        for other, allowed in spec.when.items():
            self._check_condition(where, other, allowed)
        if path.startswith("model.params."):
            self._check_model_parameter(where, path, spec)
            return
        kind = self._field_kind(where, path)
        if kind is None:
            return
        self._kinds[path] = kind
        if isinstance(spec, Range):
            if kind not in ("int", "float"):
                self._problems.append(f"{where}: is not a number; search it with choices: [...]")
                return
            if kind == "int" and not (spec.low.is_integer() and spec.high.is_integer() and _whole(spec.step)):
                self._problems.append(f"{where}: is an integer field; give whole-number low, high and step")
                return
        for value in _probe_values(spec, kind):
            if path == "model.name":
                self._check_model_name(where, value)
                continue
            try:
                self.base.with_values({path: value})
            except ConfigError as error:
                reason = str(error).removeprefix("invalid configuration:\n").strip().removeprefix("- ")
                self._problems.append(f"{where}: the value {value!r} is refused: {reason}")

    def _check_condition(self, where: str, other: str, allowed: list[Any]) -> None:
        spec = self.parameters.get(other)
        if spec is None:
            close = difflib.get_close_matches(other, self.parameters, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            self._problems.append(f"{where}.when: {other!r} is not a searched parameter{hint}")
            return
        if not isinstance(spec, Choices):
            self._problems.append(f"{where}.when: {other!r} must be a categorical parameter (choices) to condition on")
            return
        for value in allowed:
            if not any(_matches(choice, [value]) for choice in spec.choices):
                self._problems.append(f"{where}.when.{other}: {value!r} matches none of its choices {spec.choices}")

    def _candidate_models(self, path: str) -> list[str]:
        spec = self.parameters.get("model.name")
        names = spec.choices if isinstance(spec, Choices) else [self.base.model.name]
        allowed = self.parameters[path].when.get("model.name")
        return [name for name in names if allowed is None or _matches(name, allowed)]

    def _check_model_name(self, where: str, name: Any) -> None:
        if name not in networks.list_models():
            close = difflib.get_close_matches(str(name), networks.list_models(), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            self._problems.append(f"{where}: {name!r} is not a registered model{hint} (see `dl4ds models`)")
            return
        temporal = name.startswith("rec")
        if temporal and self.base.model.time_window is None and "model.time_window" not in self.parameters:
            self._problems.append(
                f"{where}: {name!r} is spatio-temporal and needs model.time_window; set it in the config or search it"
            )

    def _check_model_parameter(self, where: str, path: str, spec: Choices | Range) -> None:
        key = path.removeprefix("model.params.")
        candidates = [name for name in self._candidate_models(path) if name in networks.list_models()]
        taking = [name for name in candidates if key in networks.model_parameters(name)]
        if not taking:
            owners = [name for name in networks.list_models() if key in networks.model_parameters(name)]
            known = f"; it is taken by {', '.join(owners[:6])}{'...' if len(owners) > 6 else ''}" if owners else ""
            self._problems.append(
                f"{where}: no candidate model ({', '.join(candidates) or 'none'}) takes the parameter {key!r}{known}"
            )
            return
        default = networks.model_parameters(taking[0])[key]
        kind = "int" if _is_int(default) else "float" if isinstance(default, float) else "other"
        self._kinds[path] = kind
        if isinstance(spec, Range):
            if kind == "other":
                self._problems.append(f"{where}: {key} (default {default!r}) is not a number; search it with choices")
                return
            if kind == "int" and not (spec.low.is_integer() and spec.high.is_integer() and _whole(spec.step)):
                self._problems.append(f"{where}: {key} is an integer; give whole-number low, high and step")
                return
        channels = self._channels()
        scale = self.base.data.scale or 4  # MOS without a scale chooses one at pairing; any scale probes the parameter
        for value in _probe_values(spec, kind):
            for name in taking:
                try:
                    networks.create(name, scale=scale, **channels, **{key: value})
                except ConfigError as error:
                    self._problems.append(f"{where}: the value {value!r} is refused by {name}: {error}")
                    break

    def _channels(self) -> dict[str, int]:
        data = self.base.data
        targets = len(data.target.variables or [None])
        static = 0 if data.static is None else len(data.static.variables or [None])
        return {"in_channels": targets, "out_channels": targets, "static_channels": static}

    def _field_kind(self, where: str, path: str) -> str | None:
        """int, float or other for the config field at ``path``; None (after noting why) if there is none."""
        model: type[BaseModel] | None = ExperimentConfig
        keys = path.split(".")
        for depth, key in enumerate(keys):
            if model is None:
                section = ".".join(keys[:depth])
                self._problems.append(
                    f"{where}: {section!r} is a single value, not a section; search its whole value with choices"
                )
                return None
            if key not in model.model_fields:
                close = difflib.get_close_matches(key, list(model.model_fields), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                section = ".".join(keys[:depth]) or "the config"
                self._problems.append(
                    f"{where}: {section} has no field {key!r}{hint} (known: {', '.join(model.model_fields)})"
                )
                return None
            annotation = model.model_fields[key].annotation
            model = _model_in(annotation)
        members = [a for a in typing.get_args(annotation) if a is not type(None)] or [annotation]
        if members == [int]:
            return "int"
        if members == [float]:
            return "float"
        return "other"


def _within(path: str, fields: tuple[str, ...]) -> bool:
    return any(path == field or path.startswith(field + ".") for field in fields)


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return next((found for a in typing.get_args(annotation) if (found := _model_in(a)) is not None), None)


def _matches(value: Any, allowed: list[Any]) -> bool:
    """Whether ``value`` is one of ``allowed``, whose strings may be glob patterns."""
    return any(
        value == pattern
        or (isinstance(value, str) and isinstance(pattern, str) and fnmatch.fnmatchcase(value, pattern))
        for pattern in allowed
    )


def _probe_values(spec: Choices | Range, kind: str) -> list[Any]:
    """The values that represent the whole parameter when checked against the config: every choice, or both ends."""
    if isinstance(spec, Choices):
        return list(spec.choices)
    return [int(spec.low), int(spec.high)] if kind == "int" else [spec.low, spec.high]


def _in_range(spec: Range, value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float) or not spec.low <= value <= spec.high:
        return False
    if spec.step is None:
        return True
    steps = (value - spec.low) / spec.step
    return abs(steps - round(steps)) < 1e-9


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _whole(step: float | None) -> bool:
    return step is None or float(step).is_integer()
