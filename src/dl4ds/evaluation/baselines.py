"""Reference methods the networks must beat: the baseline ladder.

Every baseline downscales :class:`~dl4ds.data.pairing.PairedData` through one
interface: ``fit(train)`` learns from the training pairs only, and
``predict(data)`` downscales the coarse inputs of ``data``, whose target is used
for its coordinates and attributes but never its values. From the simplest rung
up (the order of :func:`list_baselines`):

================  ================================================================
``nearest``       each coarse value repeated over its ``scale`` x ``scale`` block
``bilinear``      bilinear interpolation
``bicubic``       bicubic interpolation (the networks' global skip connection)
``conservative``  bilinear, corrected so that every block averages to its coarse value
``lapse_rate``    interpolation plus a fitted linear elevation correction
``bcsd``          quantile-mapping bias correction and spatial disaggregation
``regression``    linear regression at each fine point on all interpolated inputs
================  ================================================================

All interpolation uses :func:`dl4ds.interpolation.upsample`, the kernel of the
networks' global skip. As with the networks, a coarse cell without data (NaN)
gives NaN over its whole block; to keep it from spreading into neighbouring
blocks, such cells are filled from their valid neighbours before interpolating.
"""

from __future__ import annotations

import inspect
import numbers
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import ClassVar, Self, get_args

import numpy as np
import torch
import xarray as xr

from dl4ds.data.grid import Grid
from dl4ds.data.pairing import PairedData
from dl4ds.errors import ConfigError, DataError
from dl4ds.evaluation.statistics import sorted_quantiles
from dl4ds.interpolation import InterpolationMode, upsample

__all__ = [
    "BCSD",
    "Baseline",
    "Conservative",
    "Interpolation",
    "LapseRate",
    "PointwiseRegression",
    "create_baseline",
    "interpolate_to_fine",
    "list_baselines",
]

STANDARD_GRAVITY = 9.80665  # m s-2, converts geopotential (m2 s-2) to height (m)
ELEVATION_NAMES = ("elevation", "orography", "orog", "altitude", "height", "hgt", "z", "topo")
GEOPOTENTIAL_UNITS = {"m**2s**-2", "m2s-2", "m^2s^-2", "m**2/s**2", "m2/s2", "m^2/s^2"}  # spaces removed
_STENCIL_REACH = 2  # coarse cells beyond its own that bicubic interpolation reads for a fine cell


# --------------------------------------------------------------------------- array helpers


def _interpolate(values: np.ndarray, scale: int, mode: InterpolationMode) -> np.ndarray:
    """Interpolate (..., h, w) values to float32 (..., h * scale, w * scale) with :func:`upsample`."""
    *leading, height, width = values.shape
    tensor = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32).reshape(-1, 1, height, width))
    return upsample(tensor, scale, mode).numpy().reshape(*leading, height * scale, width * scale)


def _repeat(values: np.ndarray, scale: int) -> np.ndarray:
    """Each cell of (..., h, w) values repeated over a ``scale`` x ``scale`` block."""
    return values.repeat(scale, axis=-2).repeat(scale, axis=-1)


def _nanmean(values: np.ndarray, axis: int | tuple[int, ...]) -> np.ndarray:
    """Mean over ``axis`` ignoring NaN, accumulated in float64; NaN where no value is valid (no warning)."""
    valid = ~np.isnan(values)
    total = np.where(valid, values, 0).sum(axis=axis, dtype=np.float64)
    count = valid.sum(axis=axis)
    return np.divide(total, count, out=np.full(total.shape, np.nan), where=count > 0)


def _block_average(values: np.ndarray, scale: int) -> np.ndarray:
    """NaN-skipping float64 mean of the ``scale`` x ``scale`` blocks of (..., H, W) values.

    The coarsening of :class:`~dl4ds.data.pairing.PerfectProg`
    (:func:`dl4ds.data.fields.block_average`) on arrays; all-NaN blocks give NaN.
    """
    *leading, height, width = values.shape
    return _nanmean(values.reshape(*leading, height // scale, scale, width // scale, scale), axis=(-3, -1))


def _neighbour_sum(values: np.ndarray) -> np.ndarray:
    """Sum over the 3 x 3 neighbourhood of each cell of (..., h, w) values (zero outside the grid)."""
    padded = np.pad(values, [(0, 0)] * (values.ndim - 2) + [(1, 1), (1, 1)])
    height, width = values.shape[-2:]
    return sum(padded[..., i : i + height, j : j + width] for i in range(3) for j in range(3))


def _fill_gaps(values: np.ndarray) -> np.ndarray:
    """A float32 copy of (..., h, w) values with NaN cells filled for interpolation.

    A NaN cell takes the mean of its valid 3 x 3 neighbours, repeated so that
    every cell an interpolation stencil can read from a valid block is filled.
    Cells further from valid data are set to 0: they only reach the blocks of
    NaN cells, which are masked afterwards.
    """
    filled = values.astype(np.float32)
    for _ in range(_STENCIL_REACH):
        missing = np.isnan(filled)
        count = _neighbour_sum((~missing).astype(np.float32))
        total = _neighbour_sum(np.where(missing, 0, filled))
        filled = np.where(missing & (count > 0), total / np.maximum(count, 1), filled)
    return np.nan_to_num(filled, nan=0.0)


def _interpolate_valid(values: np.ndarray, scale: int, mode: InterpolationMode) -> np.ndarray:
    """Interpolate (..., h, w) values to float32 (..., H, W), NaN exactly over the blocks of NaN cells."""
    missing = np.isnan(values)
    if not missing.any():
        return _interpolate(values, scale, mode)
    fine = _interpolate(_fill_gaps(values), scale, mode)
    fine[_repeat(missing, scale)] = np.nan
    return fine


def _quantiles(values: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """(quantile, ...) quantiles over the first axis of (time, ...) values, ignoring NaN.

    Linear interpolation between order statistics (NumPy's default method),
    vectorised over the other axes; NaN where a point has no valid value.
    """
    ordered = np.sort(values, axis=0)  # NaN sorts last
    count = (~np.isnan(values)).sum(axis=0)
    return np.stack([sorted_quantiles(ordered, count, probability) for probability in probabilities])


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


def _coarse_targets(data: PairedData) -> np.ndarray:
    """(time, variable, lat, lon) coarse input channels of the target variables, physical units."""
    return data.inputs.values[:, : len(data.target_variables)]


def _check_mode(mode: str, option: str) -> None:
    modes = get_args(InterpolationMode)
    if mode not in modes:
        raise ConfigError(f"{option} must be one of {', '.join(modes)}, got {mode!r}")


# --------------------------------------------------------------------------- the interface


@dataclass(frozen=True, eq=False)
class _Layout:
    """What a baseline was fitted on, to check the data it is applied to."""

    scale: int
    target_variables: tuple[str, ...]
    input_variables: tuple[str, ...]
    static_variables: tuple[str, ...]
    grid: Grid

    @classmethod
    def of(cls, data: PairedData) -> _Layout:
        return cls(data.scale, data.target_variables, data.input_variables, data.static_variables, data.fine_grid)

    def check(self, data: PairedData, baseline: str, *, grid: bool) -> None:
        """Raise :class:`DataError` naming every difference between ``data`` and this layout."""
        other = _Layout.of(data)
        differences = [
            f"{label} {theirs} (fitted with {mine})"
            for label, mine, theirs in (
                ("scale", self.scale, other.scale),
                ("target variables", list(self.target_variables), list(other.target_variables)),
                ("input variables", list(self.input_variables), list(other.input_variables)),
                ("static variables", list(self.static_variables), list(other.static_variables)),
            )
            if mine != theirs
        ]
        if grid and not self.grid.equals(other.grid):
            differences.append(f"fine grid {other.grid.describe()} (fitted on {self.grid.describe()})")
        if differences:
            raise DataError(
                f"the data does not match what the {baseline} baseline was fitted on: {'; '.join(differences)}. "
                "Pair the data like the training data, or fit the baseline on data like this"
            )


class Baseline(ABC):
    """A reference downscaling method: ``fit(train)``, then ``predict(data)``.

    Attributes:
        name: the registry name (see :func:`create_baseline`).
        requires_fit: whether the baseline learns from training data (and so
            refuses to predict before :meth:`fit`).
        per_point: whether it learns values per grid point, so that it only
            applies to data on the grid it was fitted on.
    """

    name: str
    requires_fit: ClassVar[bool] = True
    per_point: ClassVar[bool] = False

    def __init__(self) -> None:
        self._layout: _Layout | None = None

    def fit(self, train: PairedData) -> Self:
        """Learn from the training pairs ``train`` only (interpolation baselines just record its layout)."""
        self._fit(train)
        self._layout = _Layout.of(train)
        return self

    def predict(self, data: PairedData) -> xr.Dataset:
        """Downscale the coarse inputs of ``data``; ``data`` is not modified.

        Returns one float32 variable per target variable of ``data``, named like
        it, with dims (time, lat, lon) and coordinates of ``data.target``, in
        physical units with the attributes of ``data.attrs``. Raises
        :class:`ConfigError` before :meth:`fit` for baselines that learn, and
        :class:`DataError` if ``data`` differs from the training data in scale,
        variables, static fields or (for per-point baselines) grid.
        """
        self._check(data)
        values = self._predict(data)
        coords = {dim: data.target[dim] for dim in ("time", "lat", "lon")}
        return xr.Dataset(
            {
                name: xr.DataArray(
                    values[:, index].astype(np.float32, copy=False),
                    dims=("time", "lat", "lon"),
                    coords=coords,
                    attrs=dict(data.attrs.get(name, {})),
                )
                for index, name in enumerate(data.target_variables)
            }
        )

    def _check(self, data: PairedData) -> None:
        if self._layout is not None:
            self._layout.check(data, self.name, grid=self.per_point)
        elif self.requires_fit:
            raise ConfigError(f"the {self.name} baseline learns from training data; call fit(train) first")

    def _fit(self, train: PairedData) -> None:  # noqa: B027 (a hook: most baselines learn nothing)
        """Learn parameters from ``train``; nothing for baselines that do not learn."""

    @abstractmethod
    def _predict(self, data: PairedData) -> np.ndarray:
        """(time, variable, lat, lon) predictions on the fine grid of ``data``, physical units."""


# --------------------------------------------------------------------------- the ladder


class Interpolation(Baseline):
    """The coarse target channels interpolated onto the fine grid with ``mode``; nothing is learned.

    Args:
        mode: ``nearest`` (each coarse value over its block), ``bilinear`` or
            ``bicubic``; also the baseline's name.
    """

    requires_fit = False

    def __init__(self, mode: InterpolationMode = "bicubic") -> None:
        super().__init__()
        _check_mode(mode, "mode")
        self.name = mode
        self.mode = mode

    def _predict(self, data: PairedData) -> np.ndarray:
        return _interpolate_valid(_coarse_targets(data), data.scale, self.mode)


class Conservative(Baseline):
    """Smooth interpolation whose ``scale`` x ``scale`` block means equal the coarse values exactly.

    Bilinear interpolation ``b`` of the coarse field ``c``, plus the block
    residual repeated over each block: ``b + nearest(c - block_mean(b))``, so
    that block-averaging the result (the coarsening of
    :class:`~dl4ds.data.pairing.PerfectProg`) gives back ``c``. First-order
    conservative remapping onto a nested refinement would simply repeat each
    coarse value over its block, i.e. the ``nearest`` baseline; this is the
    smooth (second-order-like) counterpart. A NaN coarse cell gives NaN over
    its block. Nothing is learned.
    """

    name = "conservative"
    requires_fit = False

    def _predict(self, data: PairedData) -> np.ndarray:
        coarse = _coarse_targets(data)
        smooth = _interpolate_valid(coarse, data.scale, "bilinear")
        residual = (coarse - _block_average(smooth, data.scale)).astype(np.float32)
        return smooth + _repeat(residual, data.scale)


class LapseRate(Baseline):
    """Interpolation plus a linear elevation correction with a fitted rate per variable.

    ``interp(coarse) + rate * (z - interp(block_average(z)))`` where ``z`` (m)
    is the elevation static field on the fine grid: the sub-grid elevation
    anomaly times a rate, e.g. about -6.5e-3 K/m for temperature. Each rate is
    the least-squares slope (no intercept) of the residual ``truth -
    interp(coarse)`` on the elevation anomaly over every valid training value.
    Geopotential (units m2 s-2) is converted to height; cells without an
    elevation get no correction.

    Args:
        elevation: the static variable holding the elevation; by default the
            first static variable named (case-insensitively) one of
            :data:`ELEVATION_NAMES`.
        interpolation: ``nearest``, ``bilinear`` or ``bicubic``.

    Attributes:
        rates_: after :meth:`fit`, ``{variable: rate}`` in the variable's units per metre.
    """

    name = "lapse_rate"

    def __init__(self, elevation: str | None = None, interpolation: InterpolationMode = "bilinear") -> None:
        super().__init__()
        _check_mode(interpolation, "interpolation")
        self.elevation = elevation
        self.interpolation = interpolation
        self.rates_: dict[str, float] = {}

    def _elevation_name(self, data: PairedData) -> str:
        available = data.static_variables
        if not available:
            raise DataError(
                "the lapse_rate baseline needs an elevation static field but the data has no static fields; "
                "pair the data with static=<a dataset holding the elevation in m>"
            )
        if self.elevation is not None:
            if self.elevation not in available:
                raise DataError(
                    f"the static fields {list(available)} do not include the elevation {self.elevation!r}; "
                    "set the lapse_rate option elevation to one of them"
                )
            return self.elevation
        by_lower_name = {name.lower(): name for name in available}
        for candidate in ELEVATION_NAMES:
            if candidate in by_lower_name:
                return by_lower_name[candidate]
        raise DataError(
            f"none of the static fields {list(available)} is named like an elevation ({', '.join(ELEVATION_NAMES)}); "
            "set the lapse_rate option elevation to the static variable that holds it"
        )

    def _elevation_anomaly(self, data: PairedData) -> np.ndarray:
        """(lat, lon) float64 elevation minus its interpolated block average, in m; NaN without elevation."""
        name = self._elevation_name(data)
        elevation = data.static.sel(channel=name).values.astype(np.float64)
        if data.attrs.get(name, {}).get("units", "").replace(" ", "") in GEOPOTENTIAL_UNITS:
            elevation = elevation / STANDARD_GRAVITY
        coarse = _block_average(elevation, data.scale)
        return elevation - _interpolate_valid(coarse, data.scale, self.interpolation)

    def _fit(self, train: PairedData) -> None:
        anomaly = self._elevation_anomaly(train)
        interpolated = _interpolate_valid(_coarse_targets(train), train.scale, self.interpolation)
        rates = {}
        for index, name in enumerate(train.target_variables):
            residual = train.target.values[:, index] - interpolated[:, index]
            valid = ~np.isnan(residual) & ~np.isnan(anomaly)
            dz = np.where(valid, anomaly, 0.0)
            spread = np.sum(dz * dz, dtype=np.float64)
            if spread == 0:
                raise DataError(
                    f"the elevation does not vary within the coarse cells where {name} has training data, so no "
                    "lapse rate can be fitted; use the bilinear baseline or a static field with sub-grid relief"
                )
            rates[name] = float(np.sum(dz * np.where(valid, residual, 0.0), dtype=np.float64) / spread)
        self.rates_ = rates

    def _predict(self, data: PairedData) -> np.ndarray:
        correction = np.nan_to_num(self._elevation_anomaly(data)).astype(np.float32)
        rates = np.array([self.rates_[name] for name in data.target_variables], dtype=np.float32)
        fine = _interpolate_valid(_coarse_targets(data), data.scale, self.interpolation)
        return fine + rates[:, None, None] * correction


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
        n_quantiles: number of evenly spaced probabilities, 0 and 1 included.
        multiplicative: target variables corrected by ratios rather than shifts.

    Attributes (after :meth:`fit`; float64, coarse or fine grid as named):
        input_quantiles_, truth_quantiles_: (quantile, variable, lat, lon) coarse.
        coarse_climatology_: (variable, lat, lon) coarse; fine_climatology_: (variable, lat, lon) fine.
    """

    name = "bcsd"
    per_point = True

    def __init__(self, n_quantiles: int = 100, multiplicative: Sequence[str] = ()) -> None:
        super().__init__()
        if isinstance(n_quantiles, bool) or not isinstance(n_quantiles, (int, np.integer)) or n_quantiles < 2:
            raise ConfigError(f"n_quantiles must be an integer >= 2, got {n_quantiles!r}")
        self.n_quantiles = int(n_quantiles)
        self.multiplicative = (multiplicative,) if isinstance(multiplicative, str) else tuple(multiplicative)

    def _fit(self, train: PairedData) -> None:
        unknown = [name for name in self.multiplicative if name not in train.target_variables]
        if unknown:
            raise ConfigError(
                f"the bcsd option multiplicative names {unknown}, which are not target variables; "
                f"choose among {list(train.target_variables)}"
            )
        coarse_truth = _block_average(train.target.values, train.scale)
        probabilities = np.linspace(0.0, 1.0, self.n_quantiles)
        self.input_quantiles_ = _quantiles(_coarse_targets(train).astype(np.float64), probabilities)
        self.truth_quantiles_ = _quantiles(coarse_truth, probabilities)
        self.coarse_climatology_ = _nanmean(coarse_truth, axis=0)
        self.fine_climatology_ = _nanmean(train.target.values, axis=0)

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
        coarse = _coarse_targets(data).astype(np.float64)
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
                values = fine_clim * _interpolate_valid(ratio, data.scale, "bilinear")
            else:
                values = fine_clim + _interpolate_valid(corrected[:, index] - coarse_clim, data.scale, "bilinear")
            fine.append(values.astype(np.float32))
        return np.stack(fine, axis=1)


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
        mean = _nanmean(values, axis=0)
        deviation = values - mean
        std = np.sqrt(_nanmean(deviation * deviation, axis=0))
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
        ridge: small positive regularisation that keeps points with constant
            or collinear features solvable.

    Attributes (after :meth:`fit`; float64, fine grid, raw units):
        coef_: (variable, channel, lat, lon); intercept_: (variable, lat, lon).
    """

    name = "regression"
    per_point = True

    def __init__(self, ridge: float = 1e-6) -> None:
        super().__init__()
        if isinstance(ridge, bool) or not isinstance(ridge, numbers.Real) or not 0 < ridge < np.inf:
            raise ConfigError(f"ridge must be a positive number, got {ridge!r}; the default is 1e-6")
        self.ridge = float(ridge)

    def _fit(self, train: PairedData) -> None:
        standardized, mean, std = _standardize(_interpolate_valid(train.inputs.values, train.scale, "bilinear"))
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
        features = _interpolate_valid(data.inputs.values, data.scale, "bilinear")
        return np.stack(
            [
                (intercept + np.einsum("chw,tchw->thw", coef, features)).astype(np.float32)
                for coef, intercept in zip(self.coef_, self.intercept_)
            ],
            axis=1,
        )


# --------------------------------------------------------------------------- registry

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


def interpolate_to_fine(coarse: xr.DataArray, scale: int, mode: InterpolationMode = "bicubic") -> xr.DataArray:
    """Interpolate a standardized coarse field (..., lat, lon) onto its refinement by ``scale``.

    Uses the same kernel as the networks' global skip connection (see
    :func:`dl4ds.interpolation.upsample`). Attributes and non-spatial coordinates
    are kept; the result is named after ``coarse``.
    """
    fine_grid = Grid.of(coarse).refine(scale)
    fine = _interpolate(coarse.values, scale, mode)
    coords = {name: c.variable for name, c in coarse.coords.items() if "lat" not in c.dims and "lon" not in c.dims}
    return xr.DataArray(
        fine, dims=coarse.dims, coords=coords | fine_grid.coords(), attrs=coarse.attrs, name=coarse.name
    )
