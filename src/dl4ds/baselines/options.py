"""The baselines' options, declared once: the keywords of the baselines, ``evaluation.baselines`` in a config, and
the ``--bcsd-*``, ``--lapse-rate-*`` and ``--regression-*`` options of ``dl4ds evaluate``."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from dl4ds.utils.interpolation import InterpolationMode
from dl4ds.utils.options import Options


class BCSDOptions(Options):
    """Options of the ``bcsd`` baseline (:class:`~dl4ds.baselines.BCSD`)."""

    n_quantiles: int = Field(
        default=100, ge=2, description="evenly spaced probabilities of the quantile mapping, 0 and 1 included"
    )
    multiplicative: list[str] | None = Field(
        default=None,
        description="target variables corrected by ratios rather than shifts (bounded at zero, e.g. "
        "precipitation); none takes the precipitation-like ones (by standard_name, else by name such as pr or tp)",
    )

    @field_validator("multiplicative", mode="before")
    @classmethod
    def _one_name(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class LapseRateOptions(Options):
    """Options of the ``lapse_rate`` baseline (:class:`~dl4ds.baselines.LapseRate`)."""

    elevation: str | None = Field(
        default=None,
        description="the static variable holding the elevation (m, or geopotential in m2 s-2); none takes the first "
        "named like one (elevation, orography, orog, altitude, height, hgt, z, topo)",
    )
    interpolation: InterpolationMode = Field(
        default="bilinear", description="interpolation of the coarse field: nearest, bilinear or bicubic"
    )


class RegressionOptions(Options):
    """Options of the ``regression`` baseline (:class:`~dl4ds.baselines.PointwiseRegression`)."""

    ridge: float = Field(
        default=1e-6,
        gt=0,
        allow_inf_nan=False,
        description="ridge regularisation (times the number of valid times) that keeps points with constant or "
        "collinear inputs solvable",
    )


class BaselineOptions(Options):
    """The options of every baseline that has any: the ``evaluation.baselines`` section of a config."""

    bcsd: BCSDOptions = Field(default_factory=BCSDOptions, description="options of the bcsd baseline")
    lapse_rate: LapseRateOptions = Field(
        default_factory=LapseRateOptions, description="options of the lapse_rate baseline"
    )
    regression: RegressionOptions = Field(
        default_factory=RegressionOptions, description="options of the regression baseline"
    )

    def of(self, name: str) -> dict[str, Any]:
        """The options of the baseline ``name`` that were set, as keywords of :func:`create_baseline`."""
        options = getattr(self, name, None)
        return options.model_dump(exclude_unset=True) if isinstance(options, Options) else {}
