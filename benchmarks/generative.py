"""Supervised, CGAN and residual diffusion ensembles on bundled ERA5 (issue 15's targets).

Trains, with ``dl4ds train`` in fresh processes, the supervised demo
configuration (``configs/demo.yaml``), the CGAN (``configs/cgan.yaml``) and
the residual diffusion model (``configs/diffusion.yaml``, whose stage 1 is
the supervised run's checkpoint, as CorrDiff reuses its regression network),
on 1-21 March 2019 (validation 22-24), then scores their test-period outputs
(25-31 March, 10 members for the generative models) and prints, for each:

- CRPS (K; for the deterministic network its MAE);
- RMSE of the ensemble mean (K);
- spread-skill ratio (ensemble spread over the ensemble mean's RMSE, 1 is calibrated);
- the spectral ratio over the two highest wavenumber octaves (member power
  over the truth's) of every member: range and mean;
- the rank histogram's outer-bin excess: the fuller outer bin over its uniform share;
- the wall time of training and verification (the diffusion run's excludes
  stage 1, the supervised run's time, which is shown beside it).

A second table scores the diffusion members with the sampled residual scaled
by other factors than the spread inflation fitted on the validation days,
which shows the factor the test week itself would want (a diagnostic: it
looks at the test truth).

    python benchmarks/generative.py [--quick] [--output DIR] [--runs supervised,diffusion] [--score-only]

``--quick`` trains a few epochs and draws 4 members (a few minutes), to
check that everything runs; its figures mean nothing.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
import yaml

from dl4ds.evaluation import Verification
from dl4ds.experiment import Experiment
from dl4ds.experiment.config import ExperimentConfig
from dl4ds.model.checkpoint import load_model

RUNS = ("supervised", "diffusion", "cgan")  # diffusion before the CGAN, whose figures are known
CONFIGS = {"supervised": "demo.yaml", "cgan": "cgan.yaml", "diffusion": "diffusion.yaml"}
QUICK = {"epochs": 3, "samples": 4}
INFLATION_DIAGNOSTIC = (0.5, 1.0, 1.25, 1.5, 1.75, 2.0)
"""Factors, relative to the fitted spread inflation, on the diffusion ensemble's residuals in the diagnostic table."""


def config(run: str, output: Path, quick: bool) -> dict[str, Any]:
    """The configuration of ``run``: the packaged one, stage 1 from the supervised run, shortened with ``quick``."""
    raw = yaml.safe_load(resources.files("dl4ds").joinpath("configs", CONFIGS[run]).read_text())
    if run == "diffusion":
        raw["training"]["diffusion"] = {
            **raw["training"].get("diffusion", {}),
            "stage1_checkpoint": str(output / "supervised" / "checkpoints" / "best.pt"),
        }
    if quick:
        raw["training"]["epochs"] = QUICK["epochs"]
        if run != "supervised":
            raw.setdefault("evaluation", {})["samples"] = QUICK["samples"]
    return raw


def train(run: str, output: Path, quick: bool) -> float:
    """Run ``dl4ds train`` on the configuration of ``run`` into ``output / run``; returns the wall time in seconds."""
    path = output / f"{run}.yaml"
    path.write_text(yaml.safe_dump(config(run, output, quick)))
    command = [sys.executable, "-m", "dl4ds.cli", "--quiet", "train", str(path), "--output-dir", str(output / run)]
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def scores(prediction: xr.DataArray, truth: xr.DataArray, verification: Verification) -> dict[str, float]:
    """CRPS, ensemble-mean RMSE, spread-skill, members' spectral ratios and outer-bin excess of one run."""
    overall = verification.score(prediction, truth, model="run")
    values = overall.overall.sel(model="run")
    result = {"rmse": float(values["rmse"]), "crps": float(values["mae"]), "spread_skill": float("nan")}
    members = (
        [prediction]
        if "sample" not in prediction.dims
        else [prediction.isel(sample=m, drop=True) for m in range(prediction.sizes["sample"])]
    )
    ratios = np.array([float(verification.score(m, truth).overall["spectral_ratio"].item()) for m in members])
    result |= {"ratio_min": ratios.min(), "ratio_max": ratios.max(), "ratio_mean": ratios.mean()}
    result["outer_excess"] = float("nan")
    if "sample" in prediction.dims:
        result["crps"] = float(values["crps"])
        result["spread_skill"] = float(values["spread_skill"])
        assert overall.rank_histogram is not None, "an ensemble has a rank histogram"
        frequencies = overall.rank_histogram.sel(model="run").values
        result["outer_excess"] = float(max(frequencies[0], frequencies[-1]) * len(frequencies))
    return result


def inflation_diagnostic(output: Path, truth: xr.DataArray, verification: Verification) -> None:
    """Print the diffusion ensemble's scores with its residuals scaled by other factors than the fitted one.

    Stage 1 is the supervised network, so every member is its output plus the
    fitted factor times a sampled residual; rescaling that residual shows
    how far the fitted factor is from the best one for the test week itself.
    The best factor uses the test truth, so it is a diagnostic, not a forecast.
    """
    fitted = float(load_model(output / "diffusion" / "checkpoints" / "best.pt").network.spread_inflation[0])
    mean = xr.open_dataset(output / "supervised" / "test_downscaled.nc")["t2m"]
    members = xr.open_dataset(output / "diffusion" / "test_downscaled.nc")["t2m"]
    print(
        f"\ndiffusion members with the sampled residual rescaled (fitted factor {fitted:.2f} on the validation days):"
    )
    print(
        f"{'factor':<11}{'CRPS K':>8}{'RMSE K':>8}{'spread/skill':>14}{'spectral ratio (members)':>28}{'outer bin':>11}"
    )
    for relative in INFLATION_DIAGNOSTIC:
        s = scores(mean + relative * (members - mean), truth, verification)
        ratios = f"{s['ratio_min']:.3f}-{s['ratio_max']:.3f} (mean {s['ratio_mean']:.3f})"
        print(
            f"{relative * fitted:<11.2f}{s['crps']:>8.4f}{s['rmse']:>8.4f}{s['spread_skill']:>14.3f}{ratios:>28}"
            f"{s['outer_excess']:>10.2f}x"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", help="directory for the runs (default: a temporary one)")
    parser.add_argument("--quick", action="store_true", help="a few epochs and 4 members: checks that it runs")
    parser.add_argument("--score-only", action="store_true", help="score the runs already in --output")
    parser.add_argument(
        "--runs",
        default=",".join(RUNS),
        help="comma-separated runs to train (default all); the others are scored if --output holds them",
    )
    args = parser.parse_args()
    output = Path(args.output or tempfile.mkdtemp(prefix="dl4ds-generative-"))
    output.mkdir(parents=True, exist_ok=True)
    seconds = {run: float("nan") for run in RUNS}
    if not args.score_only:
        for run in args.runs.split(","):
            seconds[run] = train(run, output, args.quick)
            print(f"{run}: trained and verified in {seconds[run]:.0f} s", flush=True)

    settings = ExperimentConfig.from_dict(config("diffusion", output, args.quick))
    test = Experiment(settings).pair().select_time(*settings.data.test_period)
    truth = test.target.sel(variable="t2m", drop=True).assign_attrs(units="K")
    verification = Verification()
    print(f"\ntest period {settings.data.test_period[0]} to {settings.data.test_period[1]}; outputs in {output}")
    print(
        f"{'run':<11}{'CRPS K':>8}{'RMSE K':>8}{'spread/skill':>14}{'spectral ratio (members)':>28}"
        f"{'outer bin':>11}{'wall s':>9}"
    )
    for run in RUNS:
        if not (output / run / "test_downscaled.nc").exists():
            print(f"{run:<11}not run")
            continue
        prediction = xr.open_dataset(output / run / "test_downscaled.nc")["t2m"]
        s = scores(prediction, truth, verification)
        wall = f"{seconds[run]:.0f}" + (f" (+{seconds['supervised']:.0f})" if run == "diffusion" else "")
        ratios = f"{s['ratio_min']:.3f}-{s['ratio_max']:.3f} (mean {s['ratio_mean']:.3f})"
        print(
            f"{run:<11}{s['crps']:>8.4f}{s['rmse']:>8.4f}{s['spread_skill']:>14.3f}{ratios:>28}"
            f"{s['outer_excess']:>10.2f}x {wall:>9}"
        )
    if all((output / run / "test_downscaled.nc").exists() for run in ("supervised", "diffusion")):
        inflation_diagnostic(output, truth, verification)
    print(
        "targets for diffusion: CRPS <= 0.150 K; spread/skill in [0.85, 1.15]; every member's spectral ratio in "
        "[0.9, 1.1]; RMSE <= supervised + 3%; outer bin <= 2x; training + sampling <= 45 min"
    )


if __name__ == "__main__":
    main()
