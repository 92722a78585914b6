"""The baseline ladder by name, from the simplest rung up: :func:`create_baseline`, :func:`list_baselines`."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from functools import partial

from dl4ds.baselines.base import Baseline
from dl4ds.baselines.bcsd import BCSD
from dl4ds.baselines.interpolation import Conservative, Interpolation
from dl4ds.baselines.lapse_rate import LapseRate
from dl4ds.baselines.regression import PointwiseRegression
from dl4ds.errors import ConfigError

_BASELINES: dict[str, Callable[..., Baseline]] = {
    "nearest": partial(Interpolation, "nearest"),
    "bilinear": partial(Interpolation, "bilinear"),
    "bicubic": partial(Interpolation, "bicubic"),
    "conservative": Conservative,
    "lapse_rate": LapseRate,
    "bcsd": BCSD,
    "regression": PointwiseRegression,
}


def list_baselines() -> list[str]:
    """The registry names of the baselines, from the simplest to the most elaborate."""
    return list(_BASELINES)


def create_baseline(name: str, **params: object) -> Baseline:
    """The baseline registered as ``name``, built with ``params`` (its options)."""
    if name not in _BASELINES:
        raise ConfigError(f"unknown baseline {name!r}; choose one of {', '.join(_BASELINES)}")
    factory = _BASELINES[name]
    signature = inspect.signature(factory)
    try:
        signature.bind(**params)
    except TypeError as error:
        options = ", ".join(signature.parameters) or "none"
        raise ConfigError(f"invalid options for the {name} baseline ({error}); its options are: {options}") from None
    return factory(**params)
