"""A base for the small validated option objects of training (schedules, early stopping, GAN options)."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from dl4ds.errors import ConfigError

OptionsType = TypeVar("OptionsType", bound="Options")


class Options(BaseModel):
    """Frozen options that reject unknown keys; the same class validates Python arguments and config sections."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @classmethod
    def parse(cls: type[OptionsType], spec: Any, what: str) -> OptionsType:
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
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or what}: {e['msg']}" for e in error.errors())
            raise ConfigError(f"invalid {what}: {problems}") from None
