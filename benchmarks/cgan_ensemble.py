"""CGAN ensemble against the supervised network on bundled ERA5 (issue 4's targets).

Trains the supervised demo configuration (``configs/demo.yaml``) and the CGAN
configuration (``configs/cgan.yaml``) with ``dl4ds train`` in fresh
processes, then scores their test-period predictions (25-31 March 2019):

- CRPS of the CGAN ensemble (10 members) against the CRPS of the supervised
  network's deterministic output, which equals its MAE (target: lower);
- the power ratio over the two highest wavenumber octaves (``spectral_ratio``
  of :class:`dl4ds.evaluation.Verification`, prediction over truth) of each
  CGAN member, of the ensemble mean and of the supervised network (target:
  members within 0.8-1.2).

    python benchmarks/cgan_ensemble.py [--output DIR] [--epochs N]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path

import numpy as np
import xarray as xr

from dl4ds.evaluation import Verification
from dl4ds.experiment import Experiment
from dl4ds.experiment.config import ExperimentConfig


def train(config: str, output: Path, epochs: int | None) -> float:
    """Run ``dl4ds train`` on a packaged config into ``output``; returns the wall time in seconds."""
    path = resources.files("dl4ds").joinpath("configs", config)
    command = [sys.executable, "-m", "dl4ds.cli", "--quiet", "train", str(path), "--output-dir", str(output)]
    if epochs:
        command += ["--epochs", str(epochs)]
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", help="directory for both runs (default: a temporary one)")
    parser.add_argument("--epochs", type=int, help="override both configurations' epochs")
    parser.add_argument("--score-only", action="store_true", help="score the runs already in --output")
    args = parser.parse_args()
    output = Path(args.output or tempfile.mkdtemp(prefix="dl4ds-cgan-"))
    if args.score_only:
        seconds = {"demo": float("nan"), "cgan": float("nan")}
    else:
        seconds = {name: train(f"{name}.yaml", output / name, args.epochs) for name in ("demo", "cgan")}

    config = ExperimentConfig.from_yaml(resources.files("dl4ds").joinpath("configs", "cgan.yaml"))
    test = Experiment(config).pair().select_time(*config.data.test_period)
    truth = test.target.sel(variable="t2m", drop=True).assign_attrs(units="K")
    verification = Verification()
    supervised = xr.open_dataset(output / "demo" / "test_downscaled.nc")["t2m"]
    ensemble = xr.open_dataset(output / "cgan" / "test_downscaled.nc")["t2m"]
    supervised_scores = verification.score(supervised, truth, model="supervised").overall.sel(model="supervised")
    ensemble_scores = verification.score(ensemble, truth, model="cgan").overall.sel(model="cgan")
    member_ratios = [
        float(verification.score(ensemble.isel(sample=m, drop=True), truth).overall["spectral_ratio"].item())
        for m in range(ensemble.sizes["sample"])
    ]
    supervised_crps = float(supervised_scores["mae"])  # the CRPS of a deterministic forecast is its MAE
    ensemble_crps = float(ensemble_scores["crps"])
    print(f"training + verification wall time: supervised {seconds['demo']:.0f} s, cgan {seconds['cgan']:.0f} s")
    print(
        f"test CRPS (K): cgan ensemble of {ensemble.sizes['sample']} {ensemble_crps:.4f}, "
        f"supervised (= its MAE) {supervised_crps:.4f}  -> {'met' if ensemble_crps < supervised_crps else 'MISSED'}"
    )
    print(
        f"test RMSE (K): cgan ensemble mean {float(ensemble_scores['rmse']):.4f}, supervised {float(supervised_scores['rmse']):.4f}"
    )
    print(f"spread-skill ratio of the ensemble: {float(ensemble_scores['spread_skill']):.3f}")
    ratios = np.array(member_ratios)
    within = bool(np.all(np.abs(ratios - 1) <= 0.2))
    print(
        f"spectral ratio over the two highest octaves: cgan members {ratios.min():.3f}-{ratios.max():.3f} "
        f"(mean {ratios.mean():.3f}) -> {'met' if within else 'MISSED'}; ensemble mean "
        f"{float(ensemble_scores['spectral_ratio']):.3f}; supervised {float(supervised_scores['spectral_ratio']):.3f}"
    )
    print(f"outputs: {output}")


if __name__ == "__main__":
    main()
