"""The base of every option set (configuration sections, trainer and downscaler options): validated, frozen, strict."""

from __future__ import annotations

import difflib
import typing
from typing import Annotated, Any, Self

import numpy as np
from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError

from dl4ds.errors import ConfigError


class Options(BaseModel):
    """Frozen options that reject unknown keys; the same class validates Python arguments and config sections."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @classmethod
    def parse(cls, spec: Any, what: str) -> Self:
        """Validate ``spec`` (an instance, a mapping, or a bare name for classes with a ``name``) into ``cls``.

        Raises:
            ConfigError: naming ``what`` (e.g. ``"lr_schedule"``) and every problem.
        """
        if isinstance(spec, cls):
            return spec
        if isinstance(spec, str):
            spec = {"name": spec}
        try:
            return cls.model_validate(spec)
        except ValidationError as error:
            raise ConfigError(f"invalid {what}: {'; '.join(problems(error, what, cls))}") from None

    def updated(self, what: str, **overrides: Any) -> Self:
        """A validated copy with the fields in ``overrides`` replaced (ConfigError naming ``what`` if invalid)."""
        if not overrides:
            return self
        return type(self).parse(self.model_dump(exclude_unset=True) | overrides, what)


def problems(error: ValidationError, what: str, options: type[BaseModel] | None = None) -> list[str]:
    """One line per problem of a pydantic validation error, naming the field by its dotted path.

    Bounds read ``path=value must be at least N``; an unknown key gets the
    closest known name of ``options`` (the model validated) as a suggestion.
    """
    lines = []
    for item in error.errors():
        location = tuple(item["loc"])
        path = ".".join(map(str, location)) or what
        kind, context = item["type"], item.get("ctx", {})
        if kind in _BOUNDS:
            wording, key = _BOUNDS[kind]
            lines.append(f"{path}={item['input']!r} must be {wording} {context[key]}")
        elif kind == "extra_forbidden":
            known = _field_names(options, location[:-1])
            close = difflib.get_close_matches(str(location[-1]), known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            listed = f" Known here: {', '.join(known)}." if known else ""
            lines.append(f"{path}: unknown option{hint}{listed}")
        else:
            lines.append(f"{path}: {item['msg'].removeprefix('Value error, ')}")
    return lines


_BOUNDS = {
    "greater_than_equal": ("at least", "ge"),
    "greater_than": ("greater than", "gt"),
    "less_than_equal": ("at most", "le"),
    "less_than": ("less than", "lt"),
}


def _field_names(options: type[BaseModel] | None, location: tuple[Any, ...]) -> list[str]:
    """The field names of the options model found at ``location`` inside ``options`` (empty if none)."""
    model = options
    for key in location:
        if model is None or not isinstance(key, str) or key not in model.model_fields:
            return []
        model = _model_in(model.model_fields[key].annotation)
    return list(model.model_fields) if model is not None else []


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model class that ``annotation`` (a model, or a union with one) names, if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for member in typing.get_args(annotation):
        found = _model_in(member)
        if found is not None:
            return found
    return None


def check_scale(scale: Any) -> int:
    """``scale`` as an int, checked to be an integer refinement factor of at least 2.

    Raises:
        ConfigError: for a non-integer or a scale below 2.
    """
    if isinstance(scale, bool) or not isinstance(scale, int | np.integer) or scale < 2:
        raise ConfigError(
            f"scale must be an integer >= 2 (the coarse-to-fine refinement factor, e.g. 4), got {scale!r}"
        )
    return int(scale)


def _scale_field(scale: int) -> int:
    try:
        return check_scale(scale)
    except ConfigError as error:
        raise ValueError(str(error)) from None


Scale = Annotated[int, AfterValidator(_scale_field)]
"""A refinement factor as an option field, checked by :func:`check_scale`."""
