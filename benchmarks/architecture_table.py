"""Train every network on the bundled ERA5 data within a CPU time budget and verify it against bicubic.

Uses the demo's data and split (PerfectProg x4 of ERA5 2 m temperature over the
British Isles with elevation and land fraction; train 1-21 March 2019, pick the
best epoch on 22-24 March, test on 25-31 March) and the demo's training settings
(MAE, Adam at 0.002, cosine schedule, batch 16). Spatio-temporal models use
windows of 4 hours. Each model gets as many epochs (at most ``--max-epochs``) as
fit in ``--budget`` seconds, judged from a probe epoch on a throwaway copy.
Writes a Markdown table (default ``docs/architectures.md``) and prints it::

    python benchmarks/architecture_table.py [--models resnet_spc,unet_pin] [--budget 60] [--output docs/architectures.md]

Exits with status 1 if a model fails to train or does not beat bicubic.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import math
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import torch

from dl4ds import models
from dl4ds.atomic import atomic_path
from dl4ds.data import DownscalingDataset, Normalizer
from dl4ds.demo import demo_config
from dl4ds.evaluation.baselines import interpolate_to_fine
from dl4ds.evaluation.metrics import compute_metrics
from dl4ds.experiment import Experiment, coarse_inputs_dataset
from dl4ds.inference.downscale import downscale
from dl4ds.model import DownscalingModel
from dl4ds.training import SupervisedTrainer
from machine import describe

TIME_WINDOW = 4
SEED = 0
BATCH_SIZE = 16


@dataclass
class Result:
    name: str
    parameters: int
    epochs: int
    seconds: float
    rmse: float
    bicubic_rmse: float
    error: str | None = None

    @property
    def improvement(self) -> float:
        return 100.0 * (1.0 - self.rmse / self.bicubic_rmse)

    @property
    def beats_bicubic(self) -> bool:
        return self.error is None and self.rmse < self.bicubic_rmse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", help="comma-separated names (default: every registered model)")
    parser.add_argument("--budget", type=float, default=60.0, help="training seconds per model (default 60)")
    parser.add_argument("--max-epochs", type=int, default=40, help="epoch cap, the demo's 40 by default")
    parser.add_argument("--output", default="docs/architectures.md", help="Markdown file to write")
    args = parser.parse_args()
    names = args.models.split(",") if args.models else models.list_models()

    config = demo_config(tempfile.mkdtemp(prefix="dl4ds-table-"))
    data = config.data
    paired = Experiment(config).pair()
    train = paired.select_time(*data.train_period, role="train_period")
    val = paired.select_time(*data.val_period, role="val_period")
    test = paired.select_time(*data.test_period, role="test_period")
    normalizer = Normalizer.fit(train)
    truth = test.target.sel(variable="t2m", drop=True)
    bicubic = interpolate_to_fine(test.inputs.isel(channel=0, drop=True), data.scale)
    bicubic_rmse = compute_metrics(bicubic, truth)["rmse"]
    coarse_test = coarse_inputs_dataset(test)

    results = []
    for name in names:
        try:
            results.append(_train_and_verify(name, train, val, normalizer, coarse_test, truth, bicubic_rmse, args))
        except Exception as error:  # noqa: BLE001 -- one broken model must not hide the others' results
            traceback.print_exc()
            results.append(Result(name, 0, 0, 0.0, math.nan, bicubic_rmse, error=f"{type(error).__name__}: {error}"))
        result = results[-1]
        print(f"{name:18s} {result.epochs:3d} epochs {result.seconds:6.1f} s  RMSE {result.rmse:.3f} K "
              f"(bicubic {bicubic_rmse:.3f} K)" + (f"  FAILED {result.error}" if result.error else ""), flush=True)

    table = _markdown(results, args)
    with atomic_path(args.output) as temporary:
        Path(temporary).write_text(table)
    print(table)
    winners = sum(r.beats_bicubic for r in results)
    print(f"{winners} of {len(results)} models beat bicubic; longest training {max(r.seconds for r in results):.1f} s")
    sys.exit(0 if winners == len(results) else 1)


def _train_and_verify(name, train, val, normalizer, coarse_test, truth, bicubic_rmse, args) -> Result:
    window = TIME_WINDOW if name.startswith("rec") else None
    torch.manual_seed(SEED)
    model = DownscalingModel.build(name, train, normalizer, time_window=window)
    train_set = DownscalingDataset(train, normalizer, time_window=window)
    val_set = DownscalingDataset(val, normalizer, time_window=window)

    def trainer(epochs: int) -> SupervisedTrainer:
        return SupervisedTrainer(loss="mae", learning_rate=0.002, epochs=epochs, batch_size=BATCH_SIZE, seed=SEED, progress=False)

    # Probe: one epoch with validation on a throwaway copy. A first epoch is the slowest (allocation,
    # kernel selection), so the epochs it allows fit in the budget.
    started = time.perf_counter()
    trainer(1).fit(copy.deepcopy(model), train_set, val_set)
    epoch_seconds = time.perf_counter() - started
    epochs = max(1, min(args.max_epochs, int(args.budget // epoch_seconds)))

    started = time.perf_counter()
    trainer(epochs).fit(model, train_set, val_set)
    seconds = time.perf_counter() - started
    predicted = downscale(model, coarse_test, batch_size=64)["t2m"]
    rmse = compute_metrics(predicted, truth)["rmse"]
    return Result(name, sum(p.numel() for p in model.network.parameters()), epochs, seconds, rmse, bicubic_rmse)


def _markdown(results: list[Result], args: argparse.Namespace) -> str:
    lines = [
        "# Every architecture on the bundled ERA5 data",
        "",
        f"Each network, at its default size, trained for at most {args.budget:g} s of CPU time on ERA5 2 m temperature "
        "over the British Isles (PerfectProg x4, 0.25 degree target, elevation and land fraction as static fields; "
        "train 1-21 March 2019, best epoch chosen on 22-24 March) and tested on the hourly fields of 25-31 March "
        f"against bicubic interpolation. Spatio-temporal (`rec*`) networks see windows of {TIME_WINDOW} hours. "
        f"Epochs: as many as fit in the budget, judged from a probe epoch, at most {args.max_epochs}; "
        "training time includes validation after every epoch.",
        "",
        f"Measured on {datetime.date.today().isoformat()} ({describe()}) with:",
        "",
        "```",
        "python benchmarks/architecture_table.py" + (f" --budget {args.budget:g}" if args.budget != 60 else ""),
        "```",
        "",
        "| model | parameters | epochs | training (s) | RMSE (K) | bicubic RMSE (K) | vs bicubic | beats bicubic |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        if r.error:
            lines.append(f"| `{r.name}` | | | | | {r.bicubic_rmse:.3f} | | failed: {r.error} |")
            continue
        lines.append(
            f"| `{r.name}` | {r.parameters:,d} | {r.epochs} | {r.seconds:.1f} | {r.rmse:.3f} | {r.bicubic_rmse:.3f} "
            f"| {-r.improvement:+.1f}% | {'yes' if r.beats_bicubic else '**no**'} |"
        )
    winners = sum(r.beats_bicubic for r in results)
    lines += ["", f"{winners} of {len(results)} networks beat bicubic interpolation.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
