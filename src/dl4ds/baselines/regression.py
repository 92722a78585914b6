"""Per-point linear regression of the truth on every interpolated input channel."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from dl4ds.baselines.arrays import interpolate_valid, nanmean
from dl4ds.baselines.base import Baseline
from dl4ds.baselines.options import RegressionOptions
from dl4ds.data.pairing import PairedData


def _standardize(features: np.ndarray) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Standardise (time, feature, lat, lon) features per point over the times where all are valid.

    Returns one float32 (time, lat, lon) array per feature (NaN at incomplete
    times) and the float64 (feature, lat, lon) means and standard deviations
    (1 where a feature is constant).
    """
    incomplete = np.isnan(features).any(axis=1)
    standardized, means, stds = [], [], []
    for values in features.swapaxes(0, 1):
        values = np.where(incomplete, np.nan, values)
        mean = nanmean(values, axis=0)
        deviation = values - mean
        std = np.sqrt(nanmean(deviation * deviation, axis=0))
        std = np.where(std > 0, std, 1.0)
        standardized.append((deviation / std).astype(np.float32))
        means.append(mean)
        stds.append(std)
    return standardized, np.stack(means), np.stack(stds)


class PointwiseRegression(Baseline):
    """Linear regression, at each fine point, of the truth on the bilinear interpolation of every input channel.

    ``truth ~ intercept + sum_c coef_c * bilinear(input_c)`` over the training
    times, with the coarse target channels and the predictors as features.
    Fitted by batched normal equations on features standardised per point,
    with ``ridge`` (times the number of valid times) added to the diagonal of
    the feature part; times where the truth or a feature is NaN are left out
    of that point's fit, and points with fewer valid times than features + 1
    predict NaN.

    Args:
        options: the :class:`~dl4ds.baselines.options.RegressionOptions`
            (``ridge``, a small positive regularisation that keeps points with
            constant or collinear features solvable), or a mapping of them.
        **overrides: single options, e.g. ``ridge=1e-4``.

    Attributes (after :meth:`fit`; float64, fine grid, raw units):
        coef_: (variable, channel, lat, lon); intercept_: (variable, lat, lon).
    """

    name = "regression"
    per_point = True

    def __init__(self, options: RegressionOptions | Mapping[str, Any] | None = None, **overrides: Any) -> None:
        super().__init__()
        what = "options for the regression baseline"
        self.options = RegressionOptions.parse(options or {}, what).updated(what, **overrides)
        self.ridge: float = self.options.ridge

    def _fit(self, train: PairedData) -> None:
        standardized, mean, std = _standardize(interpolate_valid(train.inputs.values, train.scale, "bilinear"))
        n_features = len(standardized) + 1  # with the intercept
        diagonal = np.arange(1, n_features)
        coefficients, intercepts = [], []
        for truth in train.target.values.swapaxes(0, 1):
            valid = ~np.isnan(truth) & ~np.isnan(standardized[0])
            design = [valid.astype(np.float32)] + [np.where(valid, values, 0) for values in standardized]
            response = np.where(valid, truth, 0)
            gram = np.stack(
                [np.stack([np.sum(a * b, axis=0, dtype=np.float64) for b in design], -1) for a in design], -2
            )
            moments = np.stack([np.sum(a * response, axis=0, dtype=np.float64) for a in design], -1)
            count = gram[..., 0, 0]
            solvable = count >= n_features
            gram[..., diagonal, diagonal] += self.ridge * count[..., None]
            gram[~solvable] = np.eye(n_features)
            solution = np.linalg.solve(gram, moments[..., None])[..., 0]  # (lat, lon, feature)
            solution[~solvable] = np.nan
            coef = np.moveaxis(solution[..., 1:], -1, 0) / std
            coefficients.append(coef)
            intercepts.append(solution[..., 0] - np.sum(coef * mean, axis=0))
        self.coef_ = np.stack(coefficients)
        self.intercept_ = np.stack(intercepts)

    def _predict(self, data: PairedData) -> np.ndarray:
        features = interpolate_valid(data.inputs.values, data.scale, "bilinear")
        return np.stack(
            [
                (intercept + np.einsum("chw,tchw->thw", coef, features)).astype(np.float32)
                for coef, intercept in zip(self.coef_, self.intercept_)
            ],
            axis=1,
        )
