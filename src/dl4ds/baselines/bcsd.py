"""Bias Correction and Spatial Disaggregation: quantile mapping on the coarse grid, then interpolated anomalies."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import xarray as xr

from dl4ds.baselines.arrays import block_mean, coarse_targets, interpolate_valid, nanmean
from dl4ds.baselines.base import Baseline
from dl4ds.baselines.options import BCSDOptions
from dl4ds.data.pairing import PairedData
from dl4ds.data.precipitation import is_precipitation
from dl4ds.errors import ConfigError
from dl4ds.utils.quantiles import quantiles_over_time

logger = logging.getLogger(__name__)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, 1 where the denominator is 0."""
    return np.divide(
        numerator, denominator, out=np.ones(np.broadcast(numerator, denominator).shape), where=denominator != 0
    )


def _map_quantiles(values: np.ndarray, source: np.ndarray, target: np.ndarray, *, multiplicative: bool) -> np.ndarray:
    """Empirical quantile mapping of (time, ...) values, point by point.

    ``source`` and ``target`` are (quantile, ...) ascending quantiles of the
    training input and truth at each point. Inside the training range values
    are mapped by linear interpolation between quantiles; beyond it the offset
    at the nearest end is kept: a constant shift, or for ``multiplicative`` a
    constant ratio (1 where the source quantile is 0).
    """
    n_quantiles = source.shape[0]
    sequences = torch.from_numpy(np.ascontiguousarray(source.reshape(n_quantiles, -1).T))
    queries = torch.from_numpy(np.ascontiguousarray(values.reshape(values.shape[0], -1).T))
    above = torch.searchsorted(sequences, queries, right=True).numpy().T.reshape(values.shape)
    segment = np.clip(above - 1, 0, n_quantiles - 2)
    x0, x1 = np.take_along_axis(source, segment, 0), np.take_along_axis(source, segment + 1, 0)
    y0, y1 = np.take_along_axis(target, segment, 0), np.take_along_axis(target, segment + 1, 0)
    step = x1 - x0
    slope = np.divide(y1 - y0, step, out=np.zeros_like(step), where=step > 0)
    mapped = y0 + slope * (values - x0)
    for end, outside in ((0, values < source[0]), (-1, values > source[-1])):
        if multiplicative:
            extended = values * _ratio(target[end], source[end])
        else:
            extended = values + (target[end] - source[end])
        mapped = np.where(outside, extended, mapped)
    return mapped


class BCSD(Baseline):
    """Bias Correction and Spatial Disaggregation (Wood et al. 2004), fitted per coarse point.

    Fit: the training truth block-averaged to the coarse grid; at each coarse
    point and variable, the empirical quantiles of the coarse input and of the
    coarse truth over the training times, the time mean of the coarse truth
    (coarse climatology) and of the fine truth (fine climatology).

    Predict: the coarse input is quantile-mapped (:func:`_map_quantiles`) to
    the truth's distribution, then disaggregated as an anomaly from the coarse
    climatology, interpolated bilinearly and added to the fine climatology:
    ``fine_clim + bilinear(corrected - coarse_clim)``. For ``multiplicative``
    variables (e.g. precipitation) the anomaly is a ratio:
    ``fine_clim * bilinear(corrected / coarse_clim)``, with ratio 1 where the
    coarse climatology is 0 (never any, e.g. rain, in training: the prediction
    keeps the zero climatology). Fine points without training truth give NaN.

    Args:
        options: the :class:`~dl4ds.baselines.options.BCSDOptions` (``n_quantiles``,
            the number of evenly spaced probabilities, 0 and 1 included; and
            ``multiplicative``, the target variables corrected by ratios rather
            than shifts, by default the precipitation-like ones, see
            :func:`dl4ds.data.precipitation.is_precipitation`), or a mapping of them.
        **overrides: single options, e.g. ``multiplicative=["pr"]``.

    Attributes (after :meth:`fit`; float64, coarse or fine grid as named):
        multiplicative: the target variables corrected by ratios.
        input_quantiles_, truth_quantiles_: (quantile, variable, lat, lon) coarse.
        coarse_climatology_: (variable, lat, lon) coarse; fine_climatology_: (variable, lat, lon) fine.
    """

    name = "bcsd"
    per_point = True

    def __init__(self, options: BCSDOptions | Mapping[str, Any] | None = None, **overrides: Any) -> None:
        super().__init__()
        what = "options for the bcsd baseline"
        self.options = BCSDOptions.parse(options or {}, what).updated(what, **overrides)
        self.n_quantiles = self.options.n_quantiles
        self.multiplicative: tuple[str, ...] = tuple(self.options.multiplicative or ())

    def _fit(self, train: PairedData) -> None:
        if self.options.multiplicative is None:
            self.multiplicative = tuple(
                name for name in train.target_variables if is_precipitation(name, train.attrs.get(name, {}))
            )
        unknown = [name for name in self.multiplicative if name not in train.target_variables]
        if unknown:
            raise ConfigError(
                f"the bcsd option multiplicative names {unknown}, which are not target variables; "
                f"choose among {list(train.target_variables)}"
            )
        if self.multiplicative:
            logger.info("the bcsd baseline corrects %s by ratios", ", ".join(self.multiplicative))
        coarse_truth = block_mean(train.target.values, train.scale)
        probabilities = np.linspace(0.0, 1.0, self.n_quantiles)
        self.input_quantiles_ = quantiles_over_time(coarse_targets(train).astype(np.float64), probabilities)
        self.truth_quantiles_ = quantiles_over_time(coarse_truth, probabilities)
        self.coarse_climatology_ = nanmean(coarse_truth, axis=0)
        self.fine_climatology_ = nanmean(train.target.values, axis=0)

    def bias_correct(self, data: PairedData) -> xr.DataArray:
        """The quantile-mapped coarse target channels of ``data``: (time, variable, lat, lon) float32, coarse grid."""
        self._check(data)
        return xr.DataArray(
            self._corrected(data).astype(np.float32),
            dims=("time", "variable", "lat", "lon"),
            coords={
                "time": data.inputs["time"],
                "variable": list(data.target_variables),
                "lat": data.inputs["lat"],
                "lon": data.inputs["lon"],
            },
            name="bias_corrected",
        )

    def _corrected(self, data: PairedData) -> np.ndarray:
        coarse = coarse_targets(data).astype(np.float64)
        return np.stack(
            [
                _map_quantiles(
                    coarse[:, index],
                    self.input_quantiles_[:, index],
                    self.truth_quantiles_[:, index],
                    multiplicative=name in self.multiplicative,
                )
                for index, name in enumerate(data.target_variables)
            ],
            axis=1,
        )

    def _predict(self, data: PairedData) -> np.ndarray:
        corrected = self._corrected(data)
        fine = []
        for index, name in enumerate(data.target_variables):
            coarse_clim, fine_clim = self.coarse_climatology_[index], self.fine_climatology_[index]
            if name in self.multiplicative:
                with np.errstate(divide="ignore", invalid="ignore"):
                    ratio = corrected[:, index] / coarse_clim
                ratio[(coarse_clim == 0) & ~np.isnan(corrected[:, index])] = 1.0
                values = fine_clim * interpolate_valid(ratio, data.scale, "bilinear")
            else:
                values = fine_clim + interpolate_valid(corrected[:, index] - coarse_clim, data.scale, "bilinear")
            fine.append(values.astype(np.float32))
        return np.stack(fine, axis=1)
