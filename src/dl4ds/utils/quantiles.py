"""Quantiles by linear interpolation between order statistics (NumPy's default method), vectorised over points."""

from __future__ import annotations

import numpy as np


def sorted_quantiles(ordered: np.ndarray, counts: np.ndarray, probability: float) -> np.ndarray:
    """Quantile ``probability`` along axis 0 of ``ordered`` (valid values first, ascending), with ``counts`` valid each.

    Linear interpolation between order statistics (NumPy's default method);
    NaN where ``counts`` is 0.
    """
    position = (np.maximum(counts, 1) - 1) * probability
    lower = np.floor(position).astype(np.int64)
    upper = np.minimum(lower + 1, np.maximum(counts - 1, 0))
    fraction = position - lower
    low = np.take_along_axis(ordered, lower[None], axis=0)[0]
    high = np.take_along_axis(ordered, upper[None], axis=0)[0]
    return np.where(counts > 0, low + fraction * (high - low), np.nan)


def quantiles_over_time(values: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """(quantile, ...) quantiles over the first axis of (time, ...) values, ignoring NaN.

    Linear interpolation between order statistics (NumPy's default method),
    vectorised over the other axes; NaN where a point has no valid value.
    """
    ordered = np.sort(values, axis=0)  # NaN sorts last
    count = (~np.isnan(values)).sum(axis=0)
    return np.stack([sorted_quantiles(ordered, count, probability) for probability in probabilities])
