"""Verification of downscaled fields: metrics, skill against the baseline ladder, reports; :func:`verify` does it all."""

from dl4ds.baselines import Baseline, create_baseline, list_baselines
from dl4ds.evaluation.forecast_options import ForecastOptions
from dl4ds.evaluation.forecast_verification import ForecastScores, ForecastVerification
from dl4ds.evaluation.metrics import compute_metrics, rmse_map
from dl4ds.evaluation.pipeline import Evaluation, VerificationResult, verify
from dl4ds.evaluation.plots import plot_comparison, plot_metric_maps
from dl4ds.evaluation.report import write_report
from dl4ds.evaluation.scores import METRICS, Scores, skill_scores
from dl4ds.evaluation.verification import Verification

__all__ = [
    "METRICS",
    "Baseline",
    "Evaluation",
    "ForecastOptions",
    "ForecastScores",
    "ForecastVerification",
    "Scores",
    "Verification",
    "VerificationResult",
    "compute_metrics",
    "create_baseline",
    "list_baselines",
    "plot_comparison",
    "plot_metric_maps",
    "rmse_map",
    "skill_scores",
    "verify",
    "write_report",
]
