"""Options of the hindcast verification, declared once: :class:`ForecastVerification`'s and ``dl4ds evaluate-forecast``'s."""

from __future__ import annotations

from pydantic import Field

from dl4ds.data.hindcast import Aggregation
from dl4ds.utils.options import Options


class ForecastOptions(Options):
    """How a hindcast is matched to the observations, turned into anomalies and scored with confidence."""

    aggregation: Aggregation = Field(
        default=None,
        description="how observations finer than the forecast's period (daily data for monthly forecasts) are "
        "brought to it: mean, the mean of the observations in each period; none refuses them",
    )
    leave_one_out: bool = Field(
        default=True,
        description="take each start year's anomalies from the climatology of the other years (cross-validated)",
    )
    resamples: int = Field(
        default=500,
        ge=10,
        description="bootstrap resamples of the start years for the confidence intervals and significance maps",
    )
    confidence: float = Field(
        default=0.9, gt=0, lt=1, description="confidence level of the bootstrap intervals and significance maps"
    )
    reliability_bins: int = Field(
        default=10, ge=2, description="equal bins of the forecast probability in the reliability diagrams"
    )
    seed: int = Field(default=0, description="seed of the bootstrap resampling")
