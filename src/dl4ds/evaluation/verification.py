"""The full verification of a prediction against the truth, overall, per sample, per grid point and per group.

:class:`Verification` scores one prediction (deterministic, or an ensemble
with a ``member`` dimension) of one variable and returns
:class:`~dl4ds.evaluation.scores.Scores`. Both fields are loaded as float32
and streamed through in chunks of samples (time steps) and bands of latitude,
so the working memory beyond the two fields stays small.

Conventions: every score is area weighted (cos latitude) unless
``weights=None``; points where either field is NaN are left out; an
ensemble's deterministic scores are those of its mean. PSNR and SSIM use the
truth's range (max - min over all points) as the peak value.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from dataclasses import dataclass, field

import numpy as np
import xarray as xr

from dl4ds.errors import ConfigError, DataError
from dl4ds.evaluation import statistics as stats
from dl4ds.evaluation.alignment import WeightOption, align, area_weights, data_units
from dl4ds.evaluation.precipitation import WET_DAY_METRICS, PrecipitationOptions
from dl4ds.evaluation.scores import Scores, metric_info, quantile_metric
from dl4ds.utils.quantiles import sorted_quantiles

__all__ = ["Verification"]

QQ_PROBABILITIES = np.array(
    [0.001, 0.005, 0.01, 0.02, 0.05, *np.arange(0.1, 0.91, 0.1), 0.95, 0.98, 0.99, 0.995, 0.999]
)
_HISTOGRAM_BINS = 2**16
_MOMENT_METRICS = ("bias", "mae", "rmse", "correlation", "std_ratio", "psnr")
_TIME_GROUPS = ("season", "month", "year", "dayofyear", "hour")


@dataclass(frozen=True)
class Verification:
    """Scores a prediction against the truth.

    Args:
        quantiles: probabilities whose quantile bias is scored at each grid point
            over time (``p02_bias``, ``p50_bias``, ``p98_bias`` by default).
        weights: ``"latitude"`` (cos latitude, i.e. cell area) or None.
        groupby: also score each group of samples: ``"season"``, ``"month"``,
            ``"year"``, ``"dayofyear"`` or ``"hour"`` of the time, a dimension or
            1-D coordinate of the samples (e.g. ``"lead_time"``), or the
            prediction's ensemble dimension (``"member"``: the deterministic scores
            of each member).
        ssim_window: side of the SSIM window in grid cells.
        chunk_size: samples processed at a time (memory vs. overhead).
        seed: seed of the random tie-breaking in rank histograms.
        precipitation: which variables also get wet-day scores
            (``wet_day_frequency_bias``, ``p95_wet_day_bias``,
            ``p99_wet_day_bias``; see :mod:`dl4ds.evaluation.precipitation`)
            and the wet-day threshold; by default the precipitation-like ones.
    """

    quantiles: tuple[float, ...] = (0.02, 0.5, 0.98)
    weights: WeightOption = "latitude"
    groupby: str | None = None
    ssim_window: int = 7
    chunk_size: int = 16
    seed: int = 0
    precipitation: PrecipitationOptions = field(default_factory=PrecipitationOptions)

    def __post_init__(self) -> None:
        if not all(0.0 <= q <= 1.0 for q in self.quantiles):
            raise ConfigError(f"quantiles must lie in [0, 1], got {list(self.quantiles)}")
        if self.weights not in ("latitude", None):
            raise ConfigError(
                f"unknown weights {self.weights!r}; use 'latitude' (area weighting) or None (unweighted)."
            )
        if self.ssim_window < 3 or self.chunk_size < 1:
            raise ConfigError(
                f"ssim_window must be >= 3 and chunk_size >= 1, got {self.ssim_window} and {self.chunk_size}"
            )

    def score(self, prediction: xr.DataArray, truth: xr.DataArray, *, model: str = "prediction") -> Scores:
        """Score ``prediction`` against ``truth`` (see :class:`~dl4ds.evaluation.scores.Scores`).

        ``prediction`` has the truth's dimensions (any of time/valid_time and
        other sample dimensions, lat/latitude, lon/longitude) and optionally an
        ensemble dimension (member, number, realization). Only the common
        times are scored. Raises :class:`DataError` as
        :func:`~dl4ds.evaluation.alignment.align` does, or if no point is valid.
        """
        pred, true = align(prediction, truth, members=True, dtype=np.float32)
        samples = _Samples.of(pred, true, area_weights(true, self.weights).values, self.chunk_size)
        groups = _Groups.of(self.groupby, true, pred, samples)
        first = _FirstPass(samples, groups, self.seed).run()
        second = _SecondPass(samples, first, self.ssim_window).run()
        third = _RankPass(samples, second).run()
        bands = _BandPass(samples, groups, self.quantiles).run()
        units = data_units(truth) or data_units(prediction) or ""
        wet = None
        if self.precipitation.applies(str(truth.name), {**prediction.attrs, **truth.attrs}):
            wet = self.precipitation.maps(pred, true.rename(truth.name), units)
            bands.maps.update(wet or {})
        scores = _assemble(model, truth, units, samples, groups, first, second, third, bands, self.quantiles)
        if wet is not None:
            threshold = f"; a wet day has at least {self.precipitation.wet_day_threshold:g} mm"
            for part in (scores.overall, scores.maps):
                for name in WET_DAY_METRICS:
                    part[name].attrs["long_name"] += threshold
        return scores


@dataclass
class _Samples:
    """The aligned fields as arrays: prediction (N, M, Y, X), truth (N, Y, X), float32.

    N counts the samples (all combinations of the sample dimensions), M the
    ensemble members (1 for a deterministic prediction).
    """

    prediction: np.ndarray
    truth: np.ndarray
    lat_weights: np.ndarray  # (Y, 1)
    sample_dims: tuple[Hashable, ...]
    sample_coords: dict[Hashable, xr.Variable]
    sample_shape: tuple[int, ...]
    member_dim: Hashable | None
    lat: np.ndarray
    lon: np.ndarray
    chunk_size: int

    @classmethod
    def of(cls, pred: xr.DataArray, true: xr.DataArray, lat_weights: np.ndarray, chunk_size: int) -> _Samples:
        sample_dims = tuple(dim for dim in true.dims if dim not in ("lat", "lon"))
        member = next((dim for dim in pred.dims if dim not in true.dims), None)
        ny, nx = true.sizes["lat"], true.sizes["lon"]
        shape = tuple(true.sizes[dim] for dim in sample_dims)
        count = int(np.prod(shape)) if shape else 1
        members = pred.sizes[member] if member else 1
        coords = {
            name: coord.variable
            for name, coord in true.coords.items()
            if coord.dims and set(coord.dims) <= set(sample_dims)
        }
        return cls(
            prediction=np.ascontiguousarray(pred.values).reshape(count, members, ny, nx),
            truth=np.ascontiguousarray(true.values).reshape(count, ny, nx),
            lat_weights=np.asarray(lat_weights, dtype=np.float64)[:, None],
            sample_dims=sample_dims,
            sample_coords=coords,
            sample_shape=shape,
            member_dim=member,
            lat=true["lat"].values,
            lon=true["lon"].values,
            chunk_size=chunk_size,
        )

    @property
    def count(self) -> int:
        return self.truth.shape[0]

    @property
    def members(self) -> int:
        return self.prediction.shape[1]

    def chunks(self) -> Iterator[_Chunk]:
        for start in range(0, self.count, self.chunk_size):
            stop = min(start + self.chunk_size, self.count)
            members = self.prediction[start:stop].astype(np.float64)
            truth = self.truth[start:stop].astype(np.float64)
            mean = members.mean(axis=1)
            valid = np.isfinite(mean) & np.isfinite(truth)
            weights = np.where(valid, self.lat_weights, 0.0)
            yield _Chunk(
                slice(start, stop), members, np.where(valid, mean, 0.0), np.where(valid, truth, 0.0), valid, weights
            )

    def per_sample(self, values: np.ndarray, name: str) -> xr.DataArray:
        """(N,) values as a DataArray over the sample dimensions."""
        if not self.sample_dims:
            return xr.DataArray(values[0], name=name)
        return xr.DataArray(
            values.reshape(self.sample_shape), dims=self.sample_dims, coords=self.sample_coords, name=name
        )

    def spatial(self, values: np.ndarray, name: str) -> xr.DataArray:
        return xr.DataArray(values, dims=("lat", "lon"), coords={"lat": self.lat, "lon": self.lon}, name=name)


@dataclass
class _Chunk:
    """Samples ``index`` as float64: members (n, M, Y, X); mean and truth (n, Y, X), 0 where invalid."""

    index: slice
    members: np.ndarray
    prediction: np.ndarray
    truth: np.ndarray
    valid: np.ndarray
    weights: np.ndarray


@dataclass
class _Groups:
    """Which group each sample belongs to (codes (N,)), or the ensemble dimension for per-member scores."""

    name: str
    codes: np.ndarray | None
    labels: np.ndarray

    @classmethod
    def of(cls, groupby: str | None, true: xr.DataArray, pred: xr.DataArray, samples: _Samples) -> _Groups | None:
        if groupby is None:
            return None
        if groupby == samples.member_dim:
            return cls(groupby, None, pred[groupby].values if groupby in pred.coords else np.arange(samples.members))
        if groupby in _TIME_GROUPS:
            if "time" not in samples.sample_dims or not np.issubdtype(true["time"].dtype, np.datetime64):
                raise ConfigError(
                    f"groupby={groupby!r} needs a time dimension of dates; the truth has dims {true.dims}"
                )
            values = getattr(true["time"].dt, groupby)
            source = values.broadcast_like(true.isel(lat=0, lon=0, drop=True))
        elif groupby in true.coords and set(true[groupby].dims) <= set(samples.sample_dims) and true[groupby].dims:
            source = true[groupby].broadcast_like(true.isel(lat=0, lon=0, drop=True))
        else:
            options = [*_TIME_GROUPS, *samples.sample_dims, *([samples.member_dim] if samples.member_dim else [])]
            raise ConfigError(f"cannot group by {groupby!r}; choose one of {options}")
        flat = source.transpose(*samples.sample_dims).values.reshape(-1)
        labels, codes = np.unique(flat, return_inverse=True)
        if groupby == "season":
            order = [s for s in ("DJF", "MAM", "JJA", "SON") if s in labels]
            codes = np.array([order.index(labels[c]) for c in codes])
            labels = np.array(order)
        return cls(groupby, codes, labels)

    @property
    def by_member(self) -> bool:
        return self.codes is None

    def reduce(self, values: np.ndarray) -> np.ndarray:
        """Sum (N, ...) per-sample values within each group: (G, ...)."""
        assert self.codes is not None
        result = np.zeros((self.labels.size, *values.shape[1:]))
        np.add.at(result, self.codes, values)
        return result


@dataclass
class _FirstPass:
    """Moment sums per sample and per grid point, value ranges, ensemble scores and spectra."""

    samples: _Samples
    groups: _Groups | None
    seed: int

    def run(self) -> _FirstPass:
        s = self.samples
        n, (ny, nx), m = s.count, s.truth.shape[1:], s.members
        self.spectrum = stats.RadialSpectrum.for_grid(s.lat, s.lon)
        k = self.spectrum.wavenumbers.size
        self.sample_sums: dict[str, np.ndarray] = {}
        self.map_sums: dict[str, np.ndarray] = {}
        self.member_sums: dict[str, np.ndarray] = {}
        self.power = np.zeros((2, n, k))
        self.has_spectrum = np.zeros(n, dtype=bool)
        self.ensemble = m > 1
        self.crps = np.zeros((2, n))  # weighted sums of CRPS and of the ensemble variance
        self.crps_map = np.zeros((3, ny, nx))  # sums of CRPS, variance, and counts
        self.rank_counts = np.zeros(m + 1)
        ranges = [np.inf, -np.inf, np.inf, -np.inf]
        rng = np.random.default_rng(self.seed)
        self.shift: float | None = None  # set from the first chunk by _set_shift
        self.reference: np.ndarray | None = None  # (Y, X)
        for chunk in s.chunks():
            if self.shift is None:
                self._set_shift(chunk)
            self._moments(chunk)
            if chunk.valid.any():
                ranges = _update_ranges(ranges, chunk)
            self._spectra(chunk)
            if self.ensemble:
                self._ensemble(chunk, rng)
        if not np.isfinite(ranges[0]):
            raise DataError(
                "prediction and truth have no point where both are valid (every point is NaN in at least "
                "one of them); check that the fields overlap in space and time and are not fully masked."
            )
        self.truth_range = (ranges[0], ranges[1])
        self.prediction_range = (ranges[2], ranges[3])
        return self

    def _set_shift(self, chunk: _Chunk) -> None:
        """A constant and a per-point offset subtracted before summing squares, for exact variances in float64."""
        count = chunk.valid.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            reference = np.where(count > 0, chunk.truth.sum(axis=0) / count, np.nan)
        self.shift = float(np.nanmean(reference)) if np.isfinite(reference).any() else 0.0
        self.reference = np.where(np.isfinite(reference), reference, self.shift)

    def _moments(self, chunk: _Chunk) -> None:
        p, t, w = chunk.prediction - self.shift, chunk.truth - self.shift, chunk.weights
        _append(self.sample_sums, stats.moment_sums(p, t, w, axis=(1, 2)))
        ones = chunk.valid.astype(np.float64)
        local = stats.moment_sums(
            np.where(chunk.valid, chunk.prediction - self.reference, 0.0),
            np.where(chunk.valid, chunk.truth - self.reference, 0.0),
            ones,
            axis=0,
        )
        _accumulate(self.map_sums, local)
        if self.groups is not None and self.groups.by_member:
            members = chunk.members - self.shift
            valid = np.isfinite(members) & chunk.valid[:, None]
            weights = np.where(valid, self.samples.lat_weights, 0.0)
            truth = np.broadcast_to(t[:, None], members.shape)
            _append(self.member_sums, stats.moment_sums(np.where(valid, members, 0.0), truth, weights, axis=(2, 3)))

    def _spectra(self, chunk: _Chunk) -> None:
        rows = np.flatnonzero(chunk.valid.any(axis=(1, 2)))
        if rows.size == 0:
            return
        valid = chunk.valid[rows]
        fields = []
        for values in (chunk.prediction[rows], chunk.truth[rows]):
            mean = (values * valid).sum(axis=(1, 2)) / valid.sum(axis=(1, 2))
            fields.append(np.where(valid, values, mean[:, None, None]))  # gaps filled with the sample mean
        index = np.arange(chunk.index.start, chunk.index.stop)[rows]
        self.power[0, index] = self.spectrum.power(fields[0])
        self.power[1, index] = self.spectrum.power(fields[1])
        self.has_spectrum[index] = True

    def _ensemble(self, chunk: _Chunk, rng: np.random.Generator) -> None:
        valid = chunk.valid & np.isfinite(chunk.members).all(axis=1)
        members = np.where(valid[:, None], chunk.members, 0.0)
        crps = np.where(valid, stats.crps_ensemble(members, chunk.truth), 0.0)
        variance = np.where(valid, members.var(axis=1, ddof=1), 0.0)
        w = np.where(valid, chunk.weights, 0.0)
        self.crps[:, chunk.index] = [(w * crps).sum(axis=(1, 2)), (w * variance).sum(axis=(1, 2))]
        self.crps_map += [crps.sum(axis=0), variance.sum(axis=0), valid.sum(axis=0)]
        ranks = stats.ensemble_rank(members, chunk.truth, rng)
        self.rank_counts += np.bincount(ranks[valid], weights=w[valid], minlength=self.samples.members + 1)


@dataclass
class _SecondPass:
    """SSIM per sample and grid point; weighted histograms of both fields for pooled ranks and quantiles."""

    samples: _Samples
    first: _FirstPass
    window: int

    def run(self) -> _SecondPass:
        s = self.samples
        data_range = self.first.truth_range[1] - self.first.truth_range[0]
        self.ssim = np.zeros((2, s.count))  # weighted sums of SSIM and of weights
        self.ssim_map = np.zeros((2, *s.truth.shape[1:]))
        self.edges = [_edges(*self.first.prediction_range), _edges(*self.first.truth_range)]
        self.histograms = np.zeros((2, _HISTOGRAM_BINS))
        for chunk in s.chunks():
            local = stats.ssim_map(chunk.prediction, chunk.truth, chunk.valid, data_range, self.window)
            ok = np.isfinite(local)
            local = np.where(ok, local, 0.0)
            w = np.where(ok, chunk.weights, 0.0)
            self.ssim[:, chunk.index] = [(w * local).sum(axis=(1, 2)), w.sum(axis=(1, 2))]
            self.ssim_map += [local.sum(axis=0), ok.sum(axis=0)]
            for row, values in enumerate((chunk.prediction, chunk.truth)):
                bins = _bin_index(values[chunk.valid], self.edges[row])
                self.histograms[row] += np.bincount(bins, weights=chunk.weights[chunk.valid], minlength=_HISTOGRAM_BINS)
        return self


@dataclass
class _RankPass:
    """Spearman correlations: pooled over all points (ranks from the histograms) and per sample."""

    samples: _Samples
    second: _SecondPass

    def run(self) -> _RankPass:
        s = self.samples
        mid_ranks = [np.cumsum(h) - 0.5 * h for h in self.second.histograms]
        self.pooled: dict[str, np.ndarray] = {}
        self.per_sample = np.full(s.count, np.nan)
        for chunk in s.chunks():
            ranks = []
            for row, values in enumerate((chunk.prediction, chunk.truth)):
                bins = _bin_index(values, self.second.edges[row])
                ranks.append(np.where(chunk.valid, mid_ranks[row][bins], 0.0))
            _accumulate(self.pooled, stats.product_sums(ranks[0], ranks[1], chunk.weights, axis=None))
            n = chunk.prediction.shape[0]
            flat = [
                np.where(chunk.valid, v, np.nan).astype(np.float32).reshape(n, -1)
                for v in (chunk.prediction, chunk.truth)
            ]
            w = chunk.weights.reshape(n, -1)
            self.per_sample[chunk.index] = stats.weighted_correlation(
                stats.weighted_ranks(flat[0], w), stats.weighted_ranks(flat[1], w), w, axis=1
            )
        return self


@dataclass
class _BandPass:
    """Statistics over time at each grid point: quantiles, extremes, Spearman; per group too."""

    samples: _Samples
    groups: _Groups | None
    quantiles: tuple[float, ...]

    def run(self) -> _BandPass:
        s = self.samples
        ny, nx = s.truth.shape[1:]
        names = [quantile_metric(q) for q in self.quantiles] + ["max_bias", "min_bias"]
        codes = None if self.groups is None else self.groups.codes  # (N,) group of each sample; None per member
        group_count = self.groups.labels.size if self.groups is not None and codes is not None else 0
        self.maps = {name: np.full((ny, nx), np.nan) for name in [*names, "spearman"]}
        self.group_maps = {name: np.full((group_count, ny, nx), np.nan) for name in names}
        rows = max(1, 2_000_000 // max(s.count * nx, 1))
        for start in range(0, ny, rows):
            band = slice(start, min(start + rows, ny))
            prediction = s.prediction[:, :, band].astype(np.float64).mean(axis=1)
            truth = s.truth[:, band].astype(np.float64)
            valid = np.isfinite(prediction) & np.isfinite(truth)
            prediction, truth = np.where(valid, prediction, np.nan), np.where(valid, truth, np.nan)
            for name, value in self._statistics(prediction, truth, valid).items():
                self.maps[name][band] = value
            weights = np.ascontiguousarray(np.moveaxis(valid, 0, -1), dtype=np.float64)
            ranks = [
                stats.weighted_ranks(np.ascontiguousarray(np.moveaxis(v, 0, -1), dtype=np.float32), weights)
                for v in (prediction, truth)
            ]
            self.maps["spearman"][band] = stats.weighted_correlation(ranks[0], ranks[1], weights, axis=-1)
            for code in range(group_count):
                assert codes is not None, "group_count is 0 without codes"
                members = codes == code
                for name, value in self._statistics(prediction[members], truth[members], valid[members]).items():
                    self.group_maps[name][code, band] = value
        return self

    def _statistics(self, prediction: np.ndarray, truth: np.ndarray, valid: np.ndarray) -> dict[str, np.ndarray]:
        """Quantile and extreme biases at each point of (n, rows, X) fields (NaN where invalid, sorted last)."""
        counts = valid.sum(axis=0)
        ordered = [np.sort(prediction, axis=0), np.sort(truth, axis=0)]
        result = {
            quantile_metric(q): sorted_quantiles(ordered[0], counts, q) - sorted_quantiles(ordered[1], counts, q)
            for q in self.quantiles
        }
        result["max_bias"] = sorted_quantiles(ordered[0], counts, 1.0) - sorted_quantiles(ordered[1], counts, 1.0)
        result["min_bias"] = sorted_quantiles(ordered[0], counts, 0.0) - sorted_quantiles(ordered[1], counts, 0.0)
        return result


def _append(target: dict[str, np.ndarray], values: dict[str, np.ndarray]) -> None:
    for key, value in values.items():
        target[key] = np.concatenate([target[key], value]) if key in target else value


def _accumulate(target: dict[str, np.ndarray], values: dict[str, np.ndarray]) -> None:
    for key, value in values.items():
        target[key] = target[key] + value if key in target else np.asarray(value, dtype=np.float64)


def _update_ranges(ranges: list[float], chunk: _Chunk) -> list[float]:
    truth, prediction = chunk.truth[chunk.valid], chunk.prediction[chunk.valid]
    return [
        min(ranges[0], float(truth.min())),
        max(ranges[1], float(truth.max())),
        min(ranges[2], float(prediction.min())),
        max(ranges[3], float(prediction.max())),
    ]


def _edges(low: float, high: float) -> np.ndarray:
    if not high > low:
        low, high = low - 0.5, high + 0.5
    return np.linspace(low, high, _HISTOGRAM_BINS + 1)


def _bin_index(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    scaled = (values - edges[0]) * (_HISTOGRAM_BINS / (edges[-1] - edges[0]))
    return np.clip(scaled, 0, _HISTOGRAM_BINS - 1).astype(np.int64)


def _area_mean(values: np.ndarray, lat_weights: np.ndarray) -> np.ndarray:
    """Area-weighted mean over the last two axes of (..., Y, X) maps, skipping NaN."""
    ok = np.isfinite(values)
    w = np.where(ok, lat_weights, 0.0)
    return _ratio((np.where(ok, values, 0.0) * w).sum(axis=(-2, -1)), w.sum(axis=(-2, -1)))


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1.0), np.nan)


def _spread_skill(variance_sum: np.ndarray, weight: np.ndarray, rmse: np.ndarray, members: int) -> np.ndarray:
    spread = np.sqrt(_ratio(variance_sum, weight))
    return np.sqrt((members + 1) / members) * _ratio(spread, rmse)


def _assemble(
    model: str,
    truth: xr.DataArray,
    units: str,
    samples: _Samples,
    groups: _Groups | None,
    first: _FirstPass,
    second: _SecondPass,
    ranks: _RankPass,
    bands: _BandPass,
    quantiles: tuple[float, ...],
) -> Scores:
    data_range = first.truth_range[1] - first.truth_range[0]
    total = {key: value.sum() for key, value in first.sample_sums.items()}
    overall = stats.moment_scores(total, data_range)
    per_sample = stats.moment_scores(first.sample_sums, data_range)
    maps = stats.moment_scores(first.map_sums, data_range)

    high = first.spectrum.high_octaves()
    high_power = first.power[:, :, high].sum(axis=-1)  # (2, N)
    overall["spearman"] = stats.correlation(ranks.pooled)
    per_sample["spearman"] = ranks.per_sample
    maps["spearman"] = bands.maps.pop("spearman")
    overall["ssim"] = _ratio(second.ssim[0].sum(), second.ssim[1].sum())
    per_sample["ssim"] = _ratio(second.ssim[0], second.ssim[1])
    maps["ssim"] = _ratio(second.ssim_map[0], second.ssim_map[1])
    overall["spectral_ratio"] = _ratio(high_power[0].sum(), high_power[1].sum())
    per_sample["spectral_ratio"] = _ratio(high_power[0], high_power[1])
    for name, values in bands.maps.items():
        maps[name] = values
        overall[name] = _area_mean(np.abs(values), samples.lat_weights)  # signed biases would cancel out
    if first.ensemble:
        m = samples.members
        overall["crps"] = _ratio(first.crps[0].sum(), total["w"])
        overall["spread_skill"] = _spread_skill(first.crps[1].sum(), total["w"], overall["rmse"], m)
        per_sample["crps"] = _ratio(first.crps[0], first.sample_sums["w"])
        per_sample["spread_skill"] = _spread_skill(first.crps[1], first.sample_sums["w"], per_sample["rmse"], m)
        maps["crps"] = _ratio(first.crps_map[0], first.crps_map[2])
        maps["spread_skill"] = _spread_skill(first.crps_map[1], first.crps_map[2], maps["rmse"], m)

    grouped = None
    if groups is not None:
        grouped = _grouped(groups, samples, first, second, bands, data_range, high_power)

    def dataset(values: dict[str, np.ndarray], build) -> xr.Dataset:
        return xr.Dataset({name: _annotate(build(np.asarray(v), name), name, units) for name, v in values.items()})

    overall_ds = dataset(overall, lambda v, name: xr.DataArray(float(v), name=name))
    per_sample_ds = dataset(per_sample, samples.per_sample)
    maps_ds = dataset(maps, samples.spatial)
    grouped_ds = None
    if groups is not None and grouped is not None:
        labels = groups.labels
        grouped_ds = dataset(
            grouped, lambda v, name: xr.DataArray(v, dims=(groups.name,), coords={groups.name: labels}, name=name)
        )

    spectrum = _spectrum_dataset(first, units)
    qq = _quantile_dataset(second, units)
    rank_histogram = None
    if first.ensemble:
        frequency = first.rank_counts / max(first.rank_counts.sum(), 1e-300)
        rank_histogram = xr.DataArray(
            frequency,
            dims=("rank",),
            coords={"rank": np.arange(frequency.size)},
            name="rank_histogram",
            attrs={"long_name": "frequency of the rank of the truth among the ensemble members", "units": "1"},
        )
    variable = str(truth.name) if truth.name is not None else "variable"

    def with_model(obj):
        return None if obj is None else obj.expand_dims(model=[model])

    return Scores(
        variable=variable,
        units=units,
        overall=with_model(overall_ds),
        per_sample=with_model(per_sample_ds),
        maps=with_model(maps_ds),
        grouped=with_model(grouped_ds),
        spectrum=xr.merge([with_model(spectrum[["power"]]), spectrum[["truth_power"]]]),
        quantiles=xr.merge([with_model(qq[["prediction"]]), qq[["truth"]]]),
        rank_histogram=with_model(rank_histogram),
    )


def _grouped(
    groups: _Groups,
    samples: _Samples,
    first: _FirstPass,
    second: _SecondPass,
    bands: _BandPass,
    data_range: float,
    high_power: np.ndarray,
) -> dict[str, np.ndarray]:
    if groups.by_member:
        sums = {key: value.sum(axis=0) for key, value in first.member_sums.items()}
        return stats.moment_scores(sums, data_range)
    sums = {key: groups.reduce(value) for key, value in first.sample_sums.items()}
    result = stats.moment_scores(sums, data_range)
    ssim = groups.reduce(second.ssim.T)
    result["ssim"] = _ratio(ssim[:, 0], ssim[:, 1])
    power = groups.reduce(high_power.T)
    result["spectral_ratio"] = _ratio(power[:, 0], power[:, 1])
    for name, values in bands.group_maps.items():
        result[name] = _area_mean(np.abs(values), samples.lat_weights)
    if first.ensemble:
        crps = groups.reduce(first.crps.T)
        result["crps"] = _ratio(crps[:, 0], sums["w"])
        result["spread_skill"] = _spread_skill(crps[:, 1], sums["w"], result["rmse"], samples.members)
    return result


def _annotate(values: xr.DataArray, name: str, units: str) -> xr.DataArray:
    info = metric_info(name)
    values.attrs = {"long_name": info.long_name, "units": info.units_for(units)}
    return values


def _spectrum_dataset(first: _FirstPass, units: str) -> xr.Dataset:
    k = first.spectrum.wavenumbers
    used = first.has_spectrum
    mean = first.power[:, used].mean(axis=1) if used.any() else np.full((2, k.size), np.nan)
    coords = {
        "wavenumber": ("wavenumber", k, {"long_name": "wavenumber", "units": "km-1"}),
        "wavelength": ("wavenumber", 1.0 / k, {"long_name": "wavelength", "units": "km"}),
    }
    attrs = {"long_name": "variance per wavenumber bin, radially averaged", "units": f"({units})2" if units else "1"}
    return xr.Dataset(
        {
            "power": ("wavenumber", mean[0], attrs | {"long_name": "power spectrum of the prediction"}),
            "truth_power": ("wavenumber", mean[1], attrs | {"long_name": "power spectrum of the truth"}),
        },
        coords=coords,
    )


def _quantile_dataset(second: _SecondPass, units: str) -> xr.Dataset:
    values = [stats.histogram_quantiles(second.edges[i], second.histograms[i], QQ_PROBABILITIES) for i in range(2)]
    attrs = {"units": units} if units else {}
    return xr.Dataset(
        {
            "prediction": ("probability", values[0], attrs | {"long_name": "area-weighted quantile of the prediction"}),
            "truth": ("probability", values[1], attrs | {"long_name": "area-weighted quantile of the truth"}),
        },
        coords={"probability": QQ_PROBABILITIES},
    )
