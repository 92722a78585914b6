"""The registry of downscaling networks, in the manner of ``timm.create_model``.

An architecture is a builder: an :class:`torch.nn.Module` subclass or a
function whose signature is::

    (scale: int, in_channels: int, out_channels: int,
     static_channels: int = 0, *, <architecture parameters with defaults>)

and which returns a network whose ``forward(x, static, offset)`` maps coarse
inputs (B, in_channels, h, w) and static fields (B, static_channels,
h * scale, w * scale), or ``None`` when ``static_channels == 0``, to
(B, out_channels, h * scale, w * scale); ``offset`` (B, 2) locates each
sample's first fine cell in the training grid. Spatio-temporal networks
(``temporal = True``) take (B, T, in_channels, h, w) and return
(B, T, out_channels, H, W). Register a builder with ``@register_model("name")``
and build it with :func:`create`.

A network declares what the code applying it must know, as attributes
(absent ones take the default in brackets): ``temporal`` (False),
``stochastic`` (False: repeated calls give the same field), ``size_multiple``
(1: the coarse-grid multiple that tile sizes and origins must respect) and
``takes_offset`` (False: ``forward`` ignores ``offset``) and ``iterative``
(False; True for a sampler such as :mod:`dl4ds.networks.diffusion`, whose
``forward`` draws a sample by repeated denoising and whose ``step(x, static,
offset)``, one denoiser evaluation, sets the tiles' overlap).
:class:`dl4ds.model.Capabilities` gathers them for the trained model.
"""

from __future__ import annotations

import difflib
import inspect
import numbers
from collections.abc import Callable
from typing import Any, TypeVar

from torch import nn

from dl4ds.errors import ConfigError
from dl4ds.utils.options import check_scale

Builder = TypeVar("Builder", bound=Callable[..., nn.Module])

# The leading constructor parameters shared by every architecture, in order.
_COMMON_PARAMETERS = ("scale", "in_channels", "out_channels", "static_channels")

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str) -> Callable[[Builder], Builder]:
    """Decorator adding a builder (an ``nn.Module`` subclass or a function) to the registry under ``name``.

    Raises ``TypeError`` or ``ValueError`` (programming errors, at import time) when
    the builder is not callable, its signature does not follow the
    convention of this module, or ``name`` is already taken.
    """

    def decorator(builder: Builder) -> Builder:
        if not callable(builder):
            raise TypeError(
                f"@register_model({name!r}) must decorate an nn.Module subclass or a function, not {builder!r}"
            )
        if name in _REGISTRY:
            raise ValueError(f"model name {name!r} is already registered (by {_REGISTRY[name].__qualname__})")
        _check_signature(name, builder)
        _REGISTRY[name] = builder
        return builder

    if not (isinstance(name, str) and name.isidentifier() and name == name.lower()):
        raise ValueError(f"model name {name!r} must be a lower-case Python identifier such as 'resnet_spc'")
    return decorator


def list_models() -> list[str]:
    """Names of the registered architectures, sorted."""
    return sorted(_REGISTRY)


def describe_model(name: str) -> str:
    """The one-line description of ``name`` (the first line of its builder's docstring)."""
    doc = inspect.getdoc(_lookup(name)) or ""
    return doc.splitlines()[0] if doc else ""


def model_parameters(name: str) -> dict[str, Any]:
    """The architecture-specific keyword parameters of ``name`` and their defaults.

    ``scale``, ``in_channels``, ``out_channels`` and ``static_channels`` are not included.
    """
    return {p.name: p.default for p in _architecture_parameters(_lookup(name))}


def create(
    name: str,
    *,
    scale: int,
    in_channels: int,
    out_channels: int,
    static_channels: int = 0,
    **params: Any,
) -> nn.Module:
    """Build the registered architecture ``name``.

    Args:
        name: registry name, one of :func:`list_models`.
        scale: integer refinement factor (>= 2) from the coarse to the fine grid.
        in_channels: coarse input channels; by convention the first
            ``out_channels`` of them are the coarse versions of the targets.
        out_channels: predicted fine-resolution variables.
        static_channels: static high-resolution channels (0 for none).
        **params: architecture parameters, see :func:`model_parameters`.

    Raises:
        ConfigError: unknown name, unknown parameter, parameter of the wrong
            type, or impossible sizes.
    """
    builder = _lookup(name)
    scale = check_scale(scale)
    in_channels = _check_int("in_channels", in_channels, minimum=1)
    out_channels = _check_int("out_channels", out_channels, minimum=1)
    static_channels = _check_int("static_channels", static_channels, minimum=0)

    accepted = {p.name: p for p in _architecture_parameters(builder)}
    checked: dict[str, Any] = {}
    for key, value in params.items():
        if key not in accepted:
            suggestion = difflib.get_close_matches(key, accepted, n=1)
            did_you_mean = f" (did you mean {suggestion[0]!r}?)" if suggestion else ""
            raise ConfigError(
                f"unknown parameter {key!r} for model {name!r}{did_you_mean}; "
                f"use only these parameters (defaults shown): {_describe(accepted)}"
            )
        checked[key] = _check_type(name, accepted[key], value)
    return builder(scale, in_channels, out_channels, static_channels, **checked)


def check_minimum(model: str, minimum: int, **values: int) -> None:
    """For architectures' constructors: raise ConfigError unless every value is >= ``minimum``."""
    for key, value in values.items():
        if value < minimum:
            raise ConfigError(
                f"parameter {key}={value!r} of model {model!r} must be >= {minimum}; set {key} to at least {minimum}"
            )


def _lookup(name: str) -> Callable[..., nn.Module]:
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        pass
    suggestion = difflib.get_close_matches(name, _REGISTRY, n=1) if isinstance(name, str) else []
    did_you_mean = f"; did you mean {suggestion[0]!r}?" if suggestion else ""
    raise ConfigError(f"unknown model {name!r}{did_you_mean}; choose one of: {', '.join(list_models())}")


def _architecture_parameters(builder: Callable[..., nn.Module]) -> list[inspect.Parameter]:
    parameters = inspect.signature(builder).parameters.values()
    return [p for p in parameters if p.name not in _COMMON_PARAMETERS]


def _check_signature(name: str, builder: Callable[..., nn.Module]) -> None:
    parameters = list(inspect.signature(builder).parameters.values())
    leading = tuple(p.name for p in parameters[: len(_COMMON_PARAMETERS)])
    if leading != _COMMON_PARAMETERS:
        raise TypeError(
            f"{builder.__qualname__} ({name!r}) must take {', '.join(_COMMON_PARAMETERS)} first, not {leading}"
        )
    for p in _architecture_parameters(builder):
        if p.kind is not inspect.Parameter.KEYWORD_ONLY or p.default is inspect.Parameter.empty:
            raise TypeError(
                f"{builder.__qualname__} ({name!r}): parameter {p.name!r} must be keyword-only with a default"
            )


def _describe(accepted: dict[str, inspect.Parameter]) -> str:
    return ", ".join(f"{key}={p.default!r}" for key, p in accepted.items())


def _check_int(key: str, value: Any, *, minimum: int, hint: str | None = None) -> int:
    hint = hint or f"{key} must be an integer >= {minimum}"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ConfigError(f"{key}={value!r} is not an integer; {hint}")
    if value < minimum:
        raise ConfigError(f"{key}={value!r} is too small; {hint}")
    return int(value)


def _check_type(name: str, parameter: inspect.Parameter, value: Any) -> Any:
    """Check ``value`` against the type of the parameter's default when it is a bool, an int or a float."""
    default = parameter.default
    problem = f"parameter {parameter.name}={value!r} of model {name!r}"
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{problem} is not a boolean; use true or false (default {default!r})")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise ConfigError(f"{problem} is not an integer; use a whole number (default {default!r})")
        return int(value)
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ConfigError(f"{problem} is not a number; use a number such as {default!r}")
        return float(value)
    return value
