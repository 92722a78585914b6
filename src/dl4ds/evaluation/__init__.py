"""Verification of downscaled fields: deterministic scores and comparison maps."""

from dl4ds.evaluation.metrics import compute_metrics, rmse_map
from dl4ds.evaluation.plots import plot_comparison, plot_metric_maps

__all__ = ["compute_metrics", "rmse_map", "plot_comparison", "plot_metric_maps"]
