"""Coverage of the bootstrap intervals of a correlation over few years: percentile against BCa.

Hindcast verification resamples the start years (often 6 to 30) with
replacement. For the anomaly correlation of ``years`` pairs drawn with a
known correlation rho, this script draws many such samples, takes the
90 % interval of each, as ``dl4ds.evaluation.forecast_scores`` computes it
from the year-resampling weights (percentile, and BCa with the
leave-one-year-out jackknife), and prints how often each contains rho
(0.90 is right) and its mean width.

    python benchmarks/interval_coverage.py [--trials 1500] [--resamples 500]
"""

from __future__ import annotations

import argparse

import numpy as np

from dl4ds.evaluation import forecast_scores as fs

CONFIDENCE = 0.9


def correlations(x: np.ndarray, y: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(R,) Pearson correlation of the pairs (x, y), (n,), with each row of ``weights`` (R, n) as multiplicities."""
    total = weights.sum(axis=1)
    mx, my = weights @ x / total, weights @ y / total
    covariance = weights @ (x * y) / total - mx * my
    with np.errstate(invalid="ignore", divide="ignore"):  # a resample of one repeated year has no correlation
        return covariance / np.sqrt((weights @ x**2 / total - mx**2) * (weights @ y**2 / total - my**2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1500, help="samples drawn per case")
    parser.add_argument("--resamples", type=int, default=500, help="bootstrap resamples per sample")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"{'years':>5}{'rho':>6}{'coverage pct':>14}{'coverage BCa':>14}{'width pct':>11}{'width BCa':>11}")
    for years in (6, 10, 20):
        jackknife = fs.jackknife_weights(years)
        for rho in (0.0, 0.5, 0.8):
            covered = {"pct": [], "bca": []}
            widths: dict[str, list[float]] = {"pct": [], "bca": []}
            for _ in range(args.trials):
                x = rng.standard_normal(years)
                y = rho * x + np.sqrt(1.0 - rho**2) * rng.standard_normal(years)
                values = correlations(x, y, fs.resample_weights(years, args.resamples, rng))
                intervals = {
                    "pct": fs.percentile_interval(values[1:], CONFIDENCE),
                    "bca": fs.bca_interval(values[0], values[1:], correlations(x, y, jackknife), CONFIDENCE),
                }
                for name, (low, high) in intervals.items():
                    covered[name].append(low <= rho <= high)
                    widths[name].append(high - low)
            print(
                f"{years:>5}{rho:>6.1f}{np.mean(covered['pct']):>14.3f}{np.mean(covered['bca']):>14.3f}"
                f"{np.nanmean(widths['pct']):>11.3f}{np.nanmean(widths['bca']):>11.3f}"
            )
    print(f"nominal coverage {CONFIDENCE:.2f}")


if __name__ == "__main__":
    main()
