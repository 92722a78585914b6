"""Train every network on the bundled ERA5 data within a CPU time budget and verify it against bicubic.

Uses the demo's data, split and training settings (``dl4ds/configs/demo.yaml``:
PerfectProg x4 of ERA5 2 m temperature over the British Isles with elevation and
land fraction; train 1-21 March 2019, keep the best epoch on 22-24 March, test on
25-31 March; MAE, Adam at 0.002 with a cosine schedule, batch 16). Each network
is built at its default size (spatio-temporal ``rec*`` networks see windows of 4
hours). One epoch with validation, on a throwaway copy of the network, times an
epoch; the network is then trained from the same initial weights for as many
epochs as fit in ``--budget`` seconds (at least 1, at most ``--max-epochs``), and
the test period is downscaled from its coarse inputs and scored against the
truth, as is bicubic interpolation of the same inputs. Writes a Markdown table
(default ``docs/architectures.md``) and prints it::

    python benchmarks/architecture_table.py [--models resnet_spc,unet_pin] [--budget 60] [--max-epochs 40] [--output docs/architectures.md]

Exits with status 1 if a model fails to train or does not beat bicubic; the
table is written all the same, with those rows marked.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import math
import shlex
import sys
import time
import traceback
from dataclasses import dataclass

import torch
import xarray as xr
from machine import describe

from dl4ds import networks
from dl4ds.baselines import interpolate_to_fine
from dl4ds.data import DownscalingDataset, Normalizer, PairedData
from dl4ds.evaluation.metrics import compute_metrics
from dl4ds.experiment import Experiment
from dl4ds.experiment.demo import demo_config
from dl4ds.inference.downscale import downscale
from dl4ds.model import DownscalingModel
from dl4ds.training import SupervisedTrainer
from dl4ds.training.options import TrainingOptions
from dl4ds.utils.atomic import atomic_path

TIME_WINDOW = 4


@dataclass(frozen=True)
class TestData:
    """The test period as the verification needs it: coarse inputs, truth and bicubic's score."""

    coarse: xr.Dataset
    truth: xr.DataArray
    variable: str
    bicubic_rmse: float

    @classmethod
    def of(cls, test: PairedData) -> TestData:
        """Truth and bicubic interpolation of the coarse target, as :func:`dl4ds.experiment.runner.verify_model` builds them."""
        variable = test.target_variables[0]
        truth = test.target.sel(variable=variable, drop=True).assign_attrs(dict(test.attrs.get(variable, {})))
        coarse = test.inputs.isel(channel=0, drop=True).assign_attrs(truth.attrs)
        bicubic = interpolate_to_fine(coarse, test.scale)
        return cls(test.input_dataset(), truth, variable, compute_metrics(bicubic, truth)["rmse"])


@dataclass(frozen=True)
class Result:
    """One row of the table; ``error`` is set, and the scores are NaN, when the model failed."""

    name: str
    parameters: int
    epochs: int
    seconds: float
    rmse: float
    bicubic_rmse: float
    error: str | None = None

    @property
    def improvement(self) -> float:
        """RMSE reduction relative to bicubic, in percent (negative: worse than bicubic)."""
        return 100.0 * (1.0 - self.rmse / self.bicubic_rmse)

    @property
    def beats_bicubic(self) -> bool:
        return self.error is None and self.rmse < self.bicubic_rmse


def train_and_verify(
    name: str,
    train: PairedData,
    val: PairedData,
    normalizer: Normalizer,
    test: TestData,
    settings: TrainingOptions,
    args: argparse.Namespace,
) -> Result:
    """Train ``name`` within the budget of ``args`` and score it on ``test``."""
    window = TIME_WINDOW if name.startswith("rec") else None
    torch.manual_seed(settings.seed)
    model = DownscalingModel.build(name, train, normalizer, time_window=window)
    train_set = DownscalingDataset(train, normalizer, time_window=window)
    val_set = DownscalingDataset(val, normalizer, time_window=window)

    def trainer(epochs: int) -> SupervisedTrainer:
        return SupervisedTrainer(settings, epochs=epochs, progress=False)

    probe = trainer(1)
    probe.fit(copy.deepcopy(model), train_set, val_set)
    epoch_seconds = probe.history.epochs[0].seconds
    # 5% headroom: epochs vary by a few percent around the probe.
    epochs = max(1, min(args.max_epochs, math.floor(0.95 * args.budget / epoch_seconds)))

    started = time.perf_counter()
    trainer(epochs).fit(model, train_set, val_set)
    seconds = time.perf_counter() - started
    predicted = downscale(model, test.coarse)[test.variable]
    rmse = compute_metrics(predicted, test.truth)["rmse"]
    return Result(name, sum(p.numel() for p in model.network.parameters()), epochs, seconds, rmse, test.bicubic_rmse)


def markdown(results: list[Result], settings: TrainingOptions, args: argparse.Namespace) -> str:
    """The table with a paragraph on what was measured, how, on what machine, and how to regenerate it."""
    command = shlex.join(["python", "benchmarks/architecture_table.py", *sys.argv[1:]])
    lines = [
        "# Every architecture on the bundled ERA5 data",
        "",
        "Each registered network, at its default size, trained on the CPU and verified against bicubic interpolation "
        "on the data of `dl4ds demo`: ERA5 2 m temperature over the British Isles, PerfectProg x4 to the 0.25 degree "
        "grid, with elevation and land fraction as static fields; trained on 1-21 March 2019 with the best epoch "
        "chosen on 22-24 March, and tested on the hourly fields of 25-31 March downscaled from their coarse inputs "
        f"(RMSE in K over the test period, area-weighted). Spatio-temporal (`rec*`) networks see windows of {TIME_WINDOW} "
        "hours and their predictions of overlapping windows are averaged. Training: "
        f"{settings.loss.upper()} loss, Adam at {settings.learning_rate:g} with a {settings.lr_schedule} schedule, "
        f"batch {settings.batch_size}, seed {settings.seed}, as many epochs as fit in 95% of a budget of {args.budget:g} s "
        f"(at least 1, at most {args.max_epochs}) judged from one timed epoch on a throwaway copy of the network; "
        "the training time is the measured wall time of the run, validation included.",
        "",
        f"Measured on {datetime.date.today().isoformat()} on {describe()}, with:",
        "",
        "```",
        command,
        "```",
        "",
        "| model | parameters | epochs | training (s) | RMSE (K) | bicubic RMSE (K) | improvement vs bicubic | beats bicubic |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        if r.error:
            lines.append(f"| `{r.name}` | | | | | {r.bicubic_rmse:.3f} | | **failed**: {r.error.replace('|', '/')} |")
            continue
        lines.append(
            f"| `{r.name}` | {r.parameters:,d} | {r.epochs} | {r.seconds:.1f} | {r.rmse:.3f} | {r.bicubic_rmse:.3f} "
            f"| {r.improvement:.1f}% | {'yes' if r.beats_bicubic else '**no**'} |"
        )
    lines += ["", summary(results), ""]
    return "\n".join(lines)


def summary(results: list[Result]) -> str:
    """How many models beat bicubic, which failed, and the longest training."""
    winners = sum(r.beats_bicubic for r in results)
    failed = [r.name for r in results if r.error]
    longest = max(results, key=lambda r: r.seconds)
    text = f"{winners} of {len(results)} networks beat bicubic interpolation; longest training {longest.seconds:.1f} s ({longest.name})."
    return text + (f" Failed: {', '.join(failed)}." if failed else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", help="comma-separated names (default: every registered model)")
    parser.add_argument("--budget", type=float, default=60.0, help="training seconds per model (default 60)")
    parser.add_argument("--max-epochs", type=int, default=40, help="epoch cap (default 40, the demo's)")
    parser.add_argument(
        "--output", default="docs/architectures.md", help="Markdown file to write (default docs/architectures.md)"
    )
    args = parser.parse_args()
    names = args.models.split(",") if args.models else networks.list_models()
    unknown = [name for name in names if name not in networks.list_models()]
    if unknown:
        parser.error(f"unknown models {unknown}; see `dl4ds models`")
    if args.budget <= 0 or args.max_epochs < 1:
        parser.error("--budget must be > 0 and --max-epochs >= 1")

    config = demo_config("unused")  # only the data and training settings are used; nothing is written
    data = config.data
    paired = Experiment(config).pair()
    train = paired.select_time(*data.train_period, role="train_period")
    val = paired.select_time(*data.val_period, role="val_period")
    test = TestData.of(paired.select_time(*data.test_period, role="test_period"))
    normalizer = Normalizer.fit(train)

    results = []
    for name in names:
        try:
            result = train_and_verify(name, train, val, normalizer, test, config.training, args)
        except Exception as error:
            traceback.print_exc()
            result = Result(
                name,
                0,
                0,
                0.0,
                math.nan,
                test.bicubic_rmse,
                error=f"{type(error).__name__}: {' '.join(str(error).split())}",
            )
        results.append(result)
        print(
            f"{name:18s} {result.epochs:3d} epochs {result.seconds:6.1f} s  RMSE {result.rmse:.3f} K "
            f"(bicubic {test.bicubic_rmse:.3f} K)" + (f"  FAILED {result.error}" if result.error else ""),
            flush=True,
        )

    table = markdown(results, config.training, args)
    with atomic_path(args.output) as temporary:
        temporary.write_text(table)
    print(table)  # ends with the summary line
    sys.exit(0 if all(r.beats_bicubic for r in results) else 1)


if __name__ == "__main__":
    main()
