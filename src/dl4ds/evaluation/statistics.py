"""NumPy kernels behind the verification scores: ranks, SSIM, spectra, ensemble scores.

They work on plain arrays whose last two axes are (lat, lon) and carry no
xarray logic; :mod:`dl4ds.evaluation.verification` feeds them chunk by chunk.
A weight of 0 marks a point to leave out (missing in either field).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import fft, ndimage

EARTH_RADIUS_KM = 6371.0


def moment_scores(sums: dict[str, np.ndarray], data_range: float) -> dict[str, np.ndarray]:
    """Bias, MAE, RMSE, Pearson correlation, std ratio and PSNR from weighted sums.

    ``sums`` holds arrays of equal shape: the :func:`product_sums` and ``ae``
    and ``se`` (weighted sums of absolute and squared errors), as
    :func:`moment_sums` gives them. Entries with zero weight give NaN.
    ``data_range`` (the truth's max - min) is the PSNR peak.
    """
    mean_p, mean_t, var_p, var_t, cov = _moments(sums)
    w = np.where(sums["w"] > 0, sums["w"], np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        mse = np.maximum(sums["se"] / w, 0.0)
        return {
            "bias": mean_p - mean_t,
            "mae": sums["ae"] / w,
            "rmse": np.sqrt(mse),
            "correlation": _correlation(var_p, var_t, cov),
            "std_ratio": np.where(var_t > 0, np.sqrt(var_p / var_t), np.nan),
            "psnr": 10.0 * np.log10(data_range**2 / mse) if data_range > 0 else np.full_like(mse, np.nan),
        }


def correlation(sums: dict[str, np.ndarray]) -> np.ndarray:
    """Weighted Pearson correlation from :func:`product_sums`; NaN where either variable is constant."""
    _, _, var_p, var_t, cov = _moments(sums)
    return _correlation(var_p, var_t, cov)


def product_sums(
    p: np.ndarray, t: np.ndarray, w: np.ndarray, axis: int | tuple[int, ...] | None
) -> dict[str, np.ndarray]:
    """Weighted sums of 1, p, t, p*p, t*t and p*t over ``axis`` (keys ``w``, ``p``, ``t``, ``pp``, ``tt``, ``pt``).

    ``p`` and ``t`` must be finite wherever ``w > 0`` (set missing points to 0
    with weight 0) and already shifted by a common constant.
    """
    return {
        "w": w.sum(axis),
        "p": (w * p).sum(axis),
        "t": (w * t).sum(axis),
        "pp": (w * p * p).sum(axis),
        "tt": (w * t * t).sum(axis),
        "pt": (w * p * t).sum(axis),
    }


def moment_sums(p: np.ndarray, t: np.ndarray, w: np.ndarray, axis: int | tuple[int, ...]) -> dict[str, np.ndarray]:
    """The weighted sums :func:`moment_scores` needs: :func:`product_sums` and those of ``|p - t|`` and ``(p - t)**2``."""
    error = p - t
    return product_sums(p, t, w, axis) | {
        "ae": (w * np.abs(error)).sum(axis),
        "se": (w * error * error).sum(axis),
    }


def _moments(sums: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
    """Weighted means, variances and covariance from :func:`product_sums`; NaN where the weight is 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        w = np.where(sums["w"] > 0, sums["w"], np.nan)
        mean_p, mean_t = sums["p"] / w, sums["t"] / w
        var_p = np.maximum(sums["pp"] / w - mean_p**2, 0.0)
        var_t = np.maximum(sums["tt"] / w - mean_t**2, 0.0)
        return mean_p, mean_t, var_p, var_t, sums["pt"] / w - mean_p * mean_t


def _correlation(var_p: np.ndarray, var_t: np.ndarray, cov: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        correlation = np.where((var_p > 0) & (var_t > 0), cov / np.sqrt(var_p * var_t), np.nan)
    return np.clip(correlation, -1.0, 1.0)


def weighted_ranks(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Mid-ranks along the last axis, counting each value with its weight.

    The rank of a value is the total weight of smaller values plus half the
    weight of the values equal to it (ties share a rank); with unit weights
    this is the usual mid-rank minus 1/2. Points of zero weight do not change
    the ranks of the others. Shape of ``values``; NaNs must have weight 0.
    """
    rows = values.reshape(-1, values.shape[-1])
    length = rows.shape[1]
    order = np.argsort(rows, axis=-1)  # ties share a mid-rank, so a stable sort is not needed
    flat = (order + (np.arange(rows.shape[0]) * length)[:, None]).ravel()
    ordered = rows.ravel()[flat].reshape(rows.shape)
    ordered_weights = weights.reshape(-1)[flat].reshape(rows.shape)
    before = np.cumsum(ordered_weights, axis=-1) - ordered_weights
    starts = np.ones(ordered.shape, dtype=bool)
    starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    ranks = np.empty(rows.size)
    if starts.all():  # no ties
        ranks[flat] = (before + 0.5 * ordered_weights).ravel()
        return ranks.reshape(values.shape)
    group = np.cumsum(starts.ravel()) - 1
    group_weight = np.bincount(group, weights=ordered_weights.ravel())
    group_before = before.ravel()[starts.ravel()]
    ranks[flat] = group_before[group] + 0.5 * group_weight[group]
    return ranks.reshape(values.shape)


def weighted_correlation(x: np.ndarray, y: np.ndarray, w: np.ndarray, axis: int | tuple[int, ...]) -> np.ndarray:
    """Weighted Pearson correlation of ``x`` and ``y`` over ``axis``; NaN where either is constant."""
    return correlation(product_sums(x, y, w, axis))


def ssim_map(p: np.ndarray, t: np.ndarray, valid: np.ndarray, data_range: float, window: int = 7) -> np.ndarray:
    """Local structural similarity (Wang et al. 2004) of (n, lat, lon) fields, NaN where invalid.

    Local means, variances and the covariance are taken over a ``window`` x
    ``window`` box (reflected at the edges, shrunk to the field size if
    needed) over the valid points only. Constants ``C1 = (0.01 L)**2`` and
    ``C2 = (0.03 L)**2`` with ``L = data_range``.
    """
    size = min(window, p.shape[-2], p.shape[-1])
    size -= 1 - size % 2  # odd
    box = (1,) * (p.ndim - 2) + (size, size)
    mask = valid.astype(np.float64)  # local means are taken over the valid points only
    x = np.where(valid, p, 0.0)
    y = np.where(valid, t, 0.0)

    def local_mean(field: np.ndarray) -> np.ndarray:
        return ndimage.uniform_filter(field, size=box, mode="reflect")

    coverage = local_mean(mask) if not valid.all() else np.ones(mask.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        mu_x = local_mean(x) / coverage
        mu_y = local_mean(y) / coverage
        var_x = np.maximum(local_mean(x * x) / coverage - mu_x**2, 0.0)
        var_y = np.maximum(local_mean(y * y) / coverage - mu_y**2, 0.0)
        cov = local_mean(x * y) / coverage - mu_x * mu_y
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        ssim = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return np.where(valid & (coverage > 1e-12), ssim, np.nan)


@dataclass(frozen=True)
class RadialSpectrum:
    """Radially averaged power spectra of fields on one regular lat-lon grid.

    Spectra use the 2-D discrete cosine transform (Denis et al. 2002, Mon.
    Wea. Rev.), which suits limited-area fields that are not periodic. Mode
    (m, n) has wavenumber sqrt((n / (2 X dx))**2 + (m / (2 Y dy))**2) in
    cycles per km, with dy and dx the grid spacing in km (dx at the domain's
    central latitude). Its variance ``F[m, n]**2 / (Y X)`` (orthonormal DCT)
    goes to the bin of width ``dk`` (the coarser of the two axes' wavenumber
    steps) that contains it, up to the smaller Nyquist wavenumber; the mean
    (mode 0, 0) is left out. The bins of a field's spectrum sum to its
    variance when no mode lies beyond the last bin.
    """

    shape: tuple[int, int]
    spacing_km: tuple[float, float]

    @classmethod
    def for_grid(cls, lat: np.ndarray, lon: np.ndarray) -> RadialSpectrum:
        """The spectrum of the grid of cell centres ``lat`` x ``lon`` (degrees)."""
        dlat = float(np.abs(np.diff(lat)).mean()) if lat.size > 1 else 1.0
        dlon = float(np.abs(np.diff(lon)).mean()) if lon.size > 1 else 1.0
        km_per_degree = np.deg2rad(1.0) * EARTH_RADIUS_KM
        dy = dlat * km_per_degree
        dx = dlon * km_per_degree * max(np.cos(np.deg2rad(float(np.mean(lat)))), 1e-3)
        return cls((lat.size, lon.size), (dy, dx))

    @property
    def bin_width(self) -> float:
        (ny, nx), (dy, dx) = self.shape, self.spacing_km
        return max(1.0 / (2 * nx * dx), 1.0 / (2 * ny * dy))

    @property
    def wavenumbers(self) -> np.ndarray:
        """Centres of the bins in cycles per km, shape (K,)."""
        (dy, dx) = self.spacing_km
        nyquist = min(1.0 / (2 * dx), 1.0 / (2 * dy))
        count = max(int(np.floor(nyquist / self.bin_width + 1e-9)), 1)
        return self.bin_width * np.arange(1, count + 1)

    def _bins(self) -> np.ndarray:
        (ny, nx), (dy, dx) = self.shape, self.spacing_km
        ky = np.arange(ny)[:, None] / (2 * ny * dy)
        kx = np.arange(nx)[None, :] / (2 * nx * dx)
        index = np.maximum(np.rint(np.hypot(ky, kx) / self.bin_width).astype(np.int64), 1)
        index[0, 0] = 0  # the mean
        index[index > self.wavenumbers.size] = 0
        return index.ravel()

    def power(self, fields: np.ndarray) -> np.ndarray:
        """Variance per wavenumber bin of (n, lat, lon) finite fields, shape (n, K)."""
        ny, nx = self.shape
        coefficients = fft.dctn(fields, type=2, axes=(-2, -1), norm="ortho")
        variance = (coefficients**2).reshape(fields.shape[0], -1) / (ny * nx)
        bins = self._bins()
        count = self.wavenumbers.size + 1
        result = np.zeros((fields.shape[0], count))
        for row in range(fields.shape[0]):
            result[row] = np.bincount(bins, weights=variance[row], minlength=count)
        return result[:, 1:]

    def high_octaves(self) -> np.ndarray:
        """Mask of the bins in the two highest octaves, wavenumbers above a quarter of the largest."""
        k = self.wavenumbers
        return k > k[-1] / 4.0


def crps_ensemble(members: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """CRPS of an ensemble ``members`` (n, M, ...) for observations ``truth`` (n, ...).

    Uses the energy form ``mean|X - y| - 0.5 mean|X - X'|`` of the empirical
    ensemble distribution (Gneiting and Raftery 2007), with the pair term
    computed from sorted members in O(M log M). For M = 1 it is the absolute error.
    """
    m = members.shape[1]
    ordered = np.sort(members, axis=1)
    spread_weights = (2 * np.arange(1, m + 1) - m - 1).reshape((1, m) + (1,) * (members.ndim - 2))
    skill = np.abs(members - truth[:, None]).mean(axis=1)
    return skill - (spread_weights * ordered).sum(axis=1) / m**2


def ensemble_rank(members: np.ndarray, truth: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rank 0..M of ``truth`` (n, ...) among ``members`` (n, M, ...); ties are split at random."""
    below = (members < truth[:, None]).sum(axis=1)
    equal = (members == truth[:, None]).sum(axis=1)
    return below + np.floor(rng.random(below.shape) * (equal + 1)).astype(below.dtype)


def histogram_quantiles(edges: np.ndarray, weights: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """Quantiles from a weighted histogram (``edges`` (B+1,), ``weights`` (B,)).

    Each bin's weight sits at its centre; quantiles interpolate linearly
    between the mid-points of the cumulative weight of occupied bins, which
    for fine bins is NumPy's ``method="hazen"`` to within a bin width.
    """
    occupied = weights > 0
    if not occupied.any():
        return np.full(probabilities.shape, np.nan)
    centres = 0.5 * (edges[:-1] + edges[1:])[occupied]
    mass = weights[occupied]
    midpoints = np.cumsum(mass) - 0.5 * mass
    return np.interp(probabilities * mass.sum(), midpoints, centres)
