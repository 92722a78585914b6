"""NumPy kernels of the forecast-skill scores: per-start statistics, scores from their sums, the block bootstrap.

They work on plain arrays without xarray logic, flat over grid points:
member anomalies ``(n, M, L, P)`` and observed anomalies ``(n, L, P)`` for
``n`` starts, ``M`` members, ``L`` leads and ``P`` points;
:class:`~dl4ds.evaluation.forecast_verification.ForecastVerification` feeds
them band by band. Every score is a function of sums over starts
(:func:`scores_from_sums`), so summing the per-start statistics of each year
and resampling the years with replacement (:func:`resample_weights`) gives
the block bootstrap over years without recomputing the statistics; leaving
one year out at a time (:func:`jackknife_weights`) gives the jackknife that
the bias-corrected and accelerated intervals need (:func:`bca_interval`).

Definitions (anomalies throughout):

* ACC: the Pearson correlation over the starts of the ensemble-mean anomaly
  and the observed anomaly (centred);
* RMSE: of the ensemble-mean anomaly;
* CRPS: the *fair* CRPS of the ensemble (Ferro 2014), ``mean|X - y| -
  sum_{i != j} |X_i - X_j| / (2 M (M - 1))``: the ensemble CRPS of
  :func:`~dl4ds.evaluation.statistics.crps_ensemble` with the spread term
  scaled by M / (M - 1), which removes its dependence on the ensemble size,
  so that a 15-member forecast and a climatological ensemble of 5 years
  compare fairly (:func:`fair_crps`); CRPSS = 1 - CRPS / CRPS of the
  climatological ensemble, the observed anomalies of the other years of
  the same start month;
* RPS over terciles: sum over the two lower categories of the squared
  difference of cumulative probabilities; the forecast probability of a
  category is the fraction of members in it, the tercile edges are those of
  the forecast's own climatology (all starts and members) for the forecast
  and of the observations for the observations; RPSS against the
  climatological 1/3, 1/3, 1/3;
* ROC area of the event "below the lower tercile" or "above the upper
  tercile", the trapezoidal area under the hit rate against the false-alarm
  rate over the thresholds k / M (equal to the Mann-Whitney statistic with
  ties counted half, i.e. scikit-learn's ``roc_auc_score``);
* spread-error ratio: sqrt((M + 1) / M * mean ensemble variance) / RMSE of
  the ensemble mean, with the unbiased (ddof=1) variance: 1 for a reliable
  ensemble, below 1 for too little spread (Fortin et al. 2014).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import numpy as np
from scipy.special import ndtr, ndtri

from dl4ds.evaluation import statistics as stats

__all__ = [
    "SUM_NAMES",
    "bca_interval",
    "climatological_crps",
    "event_counts",
    "fair_crps",
    "jackknife_weights",
    "nan_quantiles",
    "p_values",
    "percentile_interval",
    "reliability",
    "resample_weights",
    "roc_area",
    "roc_area_from_counts",
    "scores_from_sums",
    "skill_from_sums",
    "start_statistics",
    "tercile_edges",
]

SUM_NAMES = ("w", "m", "o", "mm", "oo", "mo", "se", "var", "crps", "crps_clim", "rps", "rps_clim")
"""The per-start statistics that the scores are functions of (the weighted sums of :func:`scores_from_sums`)."""


def tercile_edges(values: np.ndarray, months: np.ndarray, axis: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper tercile of ``values`` (start first) per start month, broadcast back to every start.

    ``axis`` are the axes pooled besides the starts (e.g. (1,) for the
    members); the result has the shape of ``values`` without them. NaN are
    left out; the quantiles interpolate linearly (NumPy's default method).
    """
    shape = tuple(size for index, size in enumerate(values.shape) if index not in axis)
    lower, upper = np.full(shape, np.nan), np.full(shape, np.nan)
    for month in np.unique(months):
        group = months == month
        pooled = np.moveaxis(values[group], axis, tuple(range(1, len(axis) + 1)))
        pooled = pooled.reshape(-1, *pooled.shape[len(axis) + 1 :])
        if np.isfinite(pooled).all():
            lower[group], upper[group] = np.quantile(pooled, (1 / 3, 2 / 3), axis=0)
        else:
            lower[group], upper[group] = nan_quantiles(pooled, (1 / 3, 2 / 3))
    return lower, upper


def nan_quantiles(values: np.ndarray, probabilities: tuple[float, ...] | np.ndarray) -> np.ndarray:
    """Quantiles over the first axis skipping NaN, ``np.nanquantile``'s linear method, vectorised: (K, ...).

    ``probabilities`` holds K levels, or (K, ...) levels, one per element of
    ``values[0]`` (as the BCa interval needs); a NaN level gives NaN.
    """
    ordered = np.sort(values, axis=0)  # NaN last
    count = np.isfinite(ordered).sum(axis=0)
    levels = np.asarray(probabilities, dtype=np.float64)
    if levels.ndim == 1:
        levels = levels.reshape(-1, *([1] * (values.ndim - 1)))
    levels = np.broadcast_to(levels, (levels.shape[0], *values.shape[1:]))
    result = np.full(levels.shape, np.nan)
    for index, level in enumerate(levels):
        position = level * np.maximum(count - 1, 0)
        below = np.floor(np.nan_to_num(position)).astype(np.int64)
        above = np.minimum(below + 1, np.maximum(count - 1, 0))
        low = np.take_along_axis(ordered, below[None], axis=0)[0]
        high = np.take_along_axis(ordered, above[None], axis=0)[0]
        result[index] = np.where((count > 0) & np.isfinite(position), low + (position - below) * (high - low), np.nan)
    return result


def climatological_crps(observed: np.ndarray, months: np.ndarray, years: np.ndarray) -> np.ndarray:
    """Fair CRPS (n, L, P) of the climatological ensemble: each start's observed anomaly against those of the other years.

    The ensemble of start ``i`` is the observed anomalies of the starts of
    the same calendar month in other years; NaN where one of them is NaN.
    With one start per year and month (the usual hindcast), the CRPS of every
    start comes from the sums of absolute differences ``R_i = sum_j |x_i -
    x_j|`` in O(n**2); otherwise each start's ensemble is scored on its own.
    """
    result = np.full(observed.shape, np.nan)
    for month in np.unique(months):
        group = np.flatnonzero(months == month)
        if np.unique(years[group]).size == group.size and group.size >= 3:
            values = observed[group]
            rows = np.stack([np.abs(values - value).sum(axis=0) for value in values])  # R_i, NaN if any is NaN
            count, total = group.size, rows.sum(axis=0)
            # mean |X - x_i| over the n - 1 others, minus the fair pair term of the others: (T - 2 R_i) / (2 (n-1) (n-2))
            result[group] = rows / (count - 1) - (total - 2 * rows) / (2 * (count - 1) * (count - 2))
            continue
        for index in group:
            others = group[years[group] != years[index]]
            if others.size:
                result[index] = fair_crps(observed[others][None], observed[index][None])[0]
    return result


def fair_crps(members: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """The fair CRPS of ensembles ``members`` (n, M, ...) for ``truth`` (n, ...); the absolute error for M = 1.

    From :func:`~dl4ds.evaluation.statistics.crps_ensemble`, ``mean|X - y| -
    s`` with ``s = sum_ij |X_i - X_j| / (2 M**2)``: the fair form subtracts
    ``s * M / (M - 1)`` instead (Ferro 2014, Q. J. R. Meteorol. Soc. 140, 1917).
    """
    count = members.shape[1]
    crps = stats.crps_ensemble(members, truth)
    if count < 2:
        return crps
    skill = np.abs(members - truth[:, None]).mean(axis=1)
    return crps - (skill - crps) / (count - 1)


def start_statistics(
    members: np.ndarray,
    observed: np.ndarray,
    forecast_terciles: tuple[np.ndarray, np.ndarray],
    observed_terciles: tuple[np.ndarray, np.ndarray],
) -> dict[str, np.ndarray]:
    """The per-start statistics of one forecast, each (n, L, P); NaN where a member or the observation is.

    Args:
        members: member anomalies (n, M, L, P).
        observed: observed anomalies (n, L, P).
        forecast_terciles, observed_terciles: (lower, upper) tercile edges (n, L, P).

    Returns the :data:`SUM_NAMES` that depend on the forecast (``m``, ``mm``,
    ``mo``, ``se``, ``var``, ``crps``, ``rps``) and ``o``, ``oo``,
    ``rps_clim``, plus the tercile probabilities ``p_lower``, ``p_upper``, the
    events ``e_lower``, ``e_upper`` (0/1) and ``k_lower``, ``k_upper``, the
    number of members in the lower and upper tercile.
    """
    count = members.shape[1]
    mean = members.mean(axis=1)
    error = mean - observed
    variance = members.var(axis=1, ddof=1) if count > 1 else np.zeros(mean.shape)
    k_lower = (members < forecast_terciles[0][:, None]).sum(axis=1)
    k_upper = (members > forecast_terciles[1][:, None]).sum(axis=1)
    p_lower, p_upper = k_lower / count, k_upper / count
    e_lower = (observed < observed_terciles[0]).astype(np.float64)
    e_upper = (observed > observed_terciles[1]).astype(np.float64)
    return {
        "m": mean,
        "o": observed,
        "mm": mean * mean,
        "oo": observed * observed,
        "mo": mean * observed,
        "se": error * error,
        "var": variance,
        "crps": fair_crps(members, observed),
        "rps": (p_lower - e_lower) ** 2 + (p_upper - e_upper) ** 2,
        "rps_clim": (1 / 3 - e_lower) ** 2 + (1 / 3 - e_upper) ** 2,
        "p_lower": p_lower,
        "p_upper": p_upper,
        "e_lower": e_lower,
        "e_upper": e_upper,
        "k_lower": k_lower,
        "k_upper": k_upper,
    }


def skill_from_sums(sums: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """ACC, CRPSS and RPSS from weighted sums of ``w``, ``m``, ``o``, ``mm``, ``oo``, ``mo``, ``crps``, ``crps_clim``,
    ``rps`` and ``rps_clim`` (arrays of one shape); NaN where undefined."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return {
            "acc": stats.correlation(
                {"w": sums["w"], "p": sums["m"], "t": sums["o"], "pp": sums["mm"], "tt": sums["oo"], "pt": sums["mo"]}
            ),
            "crpss": 1.0 - sums["crps"] / sums["crps_clim"],
            "rpss": 1.0 - sums["rps"] / sums["rps_clim"],
        }


def scores_from_sums(sums: Mapping[str, np.ndarray], members: int) -> dict[str, np.ndarray]:
    """ACC, RMSE, CRPS, CRPSS, RPSS and spread-error ratio from weighted sums of the :data:`SUM_NAMES`.

    All arrays have one shape (e.g. (R, L, P) for R resamples); NaN where
    the weight is 0 or a score is undefined (a constant field for the ACC,
    one member for the spread).
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        w = np.where(sums["w"] > 0, sums["w"], np.nan)
        rmse = np.sqrt(np.maximum(sums["se"] / w, 0.0))
        spread = np.sqrt(np.maximum(sums["var"] / w, 0.0) * (members + 1) / members)
        ratio = np.where((rmse > 0) & (members > 1), spread / rmse, np.nan)
        return skill_from_sums(sums) | {"rmse": rmse, "crps": sums["crps"] / w, "spread_error": ratio}


def roc_area(probabilities: np.ndarray, events: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """ROC area over the first axis (the starts) at every other index: (n, ...) -> (...).

    The Mann-Whitney form: the chance that an event start has a higher
    forecast probability than a non-event start, ties counted half; each
    start counts with its weight (0 leaves it out). NaN where there are no
    events or no non-events.
    """
    yes, no = weights * events, weights * (1.0 - events)
    total = np.zeros(probabilities.shape[1:])
    for index in range(probabilities.shape[0]):
        above = (probabilities[index] > probabilities) + 0.5 * (probabilities[index] == probabilities)
        total += yes[index] * (no * above).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return total / (yes.sum(axis=0) * no.sum(axis=0))


def event_counts(
    counts: np.ndarray, events: np.ndarray, weights: np.ndarray, groups: np.ndarray, size: int, members: int
) -> np.ndarray:
    """Weights summed per (group, lead, members in the category, event 0/1): shape (size, L, M + 1, 2).

    ``counts`` (members in the category), ``events`` and ``weights`` are
    (n, L, P); ``groups`` (n,) gives each start's group (its year) in 0..size-1.
    """
    leads = counts.shape[1]
    lead = np.broadcast_to(np.arange(leads)[None, :, None], counts.shape)
    group = np.broadcast_to(groups[:, None, None], counts.shape)
    index = ((group * leads + lead) * (members + 1) + counts) * 2 + events.astype(np.int64)
    flat = np.bincount(index.ravel(), weights=weights.ravel(), minlength=size * leads * (members + 1) * 2)
    return flat.reshape(size, leads, members + 1, 2)


def roc_area_from_counts(counts: np.ndarray) -> np.ndarray:
    """ROC area from (..., K, 2) weights of (probability level k, event 0/1), levels ascending: shape (...).

    Hit and false-alarm rates for the thresholds "probability >= level k",
    k = K-1 down to 0, joined by straight lines from (0, 0) to (1, 1).
    """
    from_top = np.cumsum(counts[..., ::-1, :], axis=-2)
    with np.errstate(divide="ignore", invalid="ignore"):
        rates = from_top / from_top[..., -1:, :]
    hits = np.concatenate([np.zeros((*rates.shape[:-2], 1)), rates[..., 1]], axis=-1)
    false = np.concatenate([np.zeros((*rates.shape[:-2], 1)), rates[..., 0]], axis=-1)
    return (0.5 * (hits[..., 1:] + hits[..., :-1]) * np.diff(false, axis=-1)).sum(axis=-1)


def reliability(counts: np.ndarray, bins: int) -> dict[str, np.ndarray]:
    """The reliability diagram of (..., M + 1, 2) weights of (members in the category, event 0/1).

    The forecast probabilities k / M go to ``bins`` equal bins of [0, 1] (1
    in the last). Returns, each (..., bins): ``forecast_probability`` (mean
    forecast probability in the bin), ``observed_frequency`` (relative
    frequency of the event) and ``frequency`` (share of the forecasts in the
    bin); NaN for empty bins.
    """
    members = counts.shape[-2] - 1
    probability = np.arange(members + 1) / members
    which = np.minimum((probability * bins).astype(int), bins - 1)
    total = counts.sum(axis=-1)
    binned = np.zeros((*counts.shape[:-2], bins))
    events = np.zeros_like(binned)
    weighted = np.zeros_like(binned)
    for level in range(members + 1):
        binned[..., which[level]] += total[..., level]
        events[..., which[level]] += counts[..., level, 1]
        weighted[..., which[level]] += total[..., level] * probability[level]
    with np.errstate(divide="ignore", invalid="ignore"):
        occupied = np.where(binned > 0, binned, np.nan)
        return {
            "forecast_probability": weighted / occupied,
            "observed_frequency": events / occupied,
            "frequency": binned / binned.sum(axis=-1, keepdims=True),
        }


def resample_weights(years: int, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """(1 + resamples, years) multiplicities: the original sample (all ones), then bootstrap resamples of the years."""
    drawn = rng.integers(0, years, size=(resamples, years))
    counts = np.zeros((resamples, years))
    np.add.at(counts, (np.arange(resamples)[:, None], drawn), 1.0)
    return np.concatenate([np.ones((1, years)), counts])


def jackknife_weights(years: int) -> np.ndarray:
    """(years, years) multiplicities of the leave-one-year-out samples: ones, with a 0 for the year left out."""
    return 1.0 - np.eye(years)


def bca_interval(estimate: np.ndarray, resampled: np.ndarray, jackknife: np.ndarray, confidence: float) -> np.ndarray:
    """The central ``confidence`` bias-corrected and accelerated (BCa) bootstrap interval (Efron 1987): (2, ...).

    Args:
        estimate: (...) the statistic on the original sample.
        resampled: (B, ...) the statistic on each bootstrap resample; NaN and infinite ones are left out.
        jackknife: (Y, ...) the statistic with each year left out in turn; NaN and infinite ones are left out.

    The interval's ends are the quantiles of ``resampled`` at
    Phi(z0 + (z0 + z) / (1 - a (z0 + z))) for z = Phi^-1((1 -+ confidence) / 2):
    z0 = Phi^-1(share of resamples below the estimate, ties counted half)
    corrects the median bias of the resampling distribution (resampled years
    repeat, which biases a correlation), and the acceleration a, the skewness
    of the jackknife values over 6, corrects for a spread that changes with
    the statistic. With z0 = a = 0 it is :func:`percentile_interval`. The
    share is kept within half a resample of 0 and 1, so that an estimate
    beyond every resample gives the outermost resample rather than infinity;
    fewer than two distinct jackknife values give a = 0. NaN where no
    resample or no estimate is finite.
    """
    finite = np.isfinite(resampled)
    count = finite.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        below = (finite & (resampled < estimate)).sum(axis=0) + 0.5 * (finite & (resampled == estimate)).sum(axis=0)
        share = np.clip(below / count, 0.5 / count, 1.0 - 0.5 / count)
        bias = ndtri(share)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN jackknife slices: a = 0 below
            jackknife = np.where(np.isfinite(jackknife), jackknife, np.nan)
            centred = np.nanmean(jackknife, axis=0) - jackknife
        cubes = np.nansum(centred**3, axis=0)
        squares = np.nansum(centred**2, axis=0)
        acceleration = np.where(squares > 0, cubes / (6.0 * np.where(squares > 0, squares, 1.0) ** 1.5), 0.0)
        alpha = 0.5 * (1.0 - confidence)
        z = ndtri(np.array([alpha, 1.0 - alpha])).reshape(2, *([1] * np.ndim(bias)))
        levels = np.clip(ndtr(bias + (bias + z) / (1.0 - acceleration * (bias + z))), 0.0, 1.0)
    interval = nan_quantiles(np.where(finite, resampled, np.nan), levels)
    return np.where(np.isfinite(estimate), interval, np.nan)


def percentile_interval(resampled: np.ndarray, confidence: float) -> np.ndarray:
    """The central ``confidence`` percentile interval over the first axis (resamples), NaN ignored: (2, ...)."""
    alpha = 0.5 * (1.0 - confidence)
    if resampled.size == 0:
        return np.full((2, *resampled.shape[1:]), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices give NaN, as documented
        return np.nanquantile(resampled, [alpha, 1.0 - alpha], axis=0)


def p_values(resampled: np.ndarray) -> np.ndarray:
    """Two-sided bootstrap p-values of a difference being 0, over the first axis (resamples): (...).

    Twice the smaller share of resamples on either side of 0 (at most 1); NaN
    where every resample is NaN.
    """
    finite = np.isfinite(resampled)
    count = finite.sum(axis=0)
    below = (np.where(finite, resampled, 0.0) <= 0).sum(axis=0) - (~finite).sum(axis=0)
    above = (np.where(finite, resampled, 0.0) >= 0).sum(axis=0) - (~finite).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(count > 0, np.minimum(1.0, 2.0 * np.minimum(below, above) / count), np.nan)
