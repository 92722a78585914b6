"""An experiment: data from a configuration, training, and verification on the test period."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import xarray as xr

from dl4ds.atomic import atomic_path
from dl4ds.config import ExperimentConfig
from dl4ds.data.normalization import Normalizer
from dl4ds.data.pairing import MOS, PairedData, PerfectProg
from dl4ds.data.torch_dataset import DownscalingDataset
from dl4ds.evaluation.baselines import interpolate_to_fine
from dl4ds.evaluation.metrics import compute_metrics, rmse_map
from dl4ds.evaluation.plots import plot_comparison, plot_metric_maps
from dl4ds.inference.downscale import downscale
from dl4ds.io import open_data, write_netcdf
from dl4ds.model import DownscalingModel
from dl4ds.training.trainer import BEST_CHECKPOINT, SupervisedTrainer

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExperimentResult:
    """What :meth:`Experiment.run` produced."""

    model: DownscalingModel
    output_dir: Path
    metrics: dict[str, dict[str, float]] | None


class Experiment:
    """Runs the configuration ``config``: pair data, train, verify on the test period.

    Writes to ``config.output_dir``: ``checkpoints/best.pt`` and ``last.pt``,
    ``checkpoints/history.csv``, and with a test period ``metrics.json``,
    ``test_downscaled.nc`` and PNG maps.
    """

    def __init__(self, config: ExperimentConfig) -> None:
        self.config = config
        self.output_dir = Path(config.output_dir)

    def pair(self) -> PairedData:
        """Read the configured sources and pair coarse inputs with targets over all times."""
        data = self.config.data
        target = open_data(data.target.path)
        static = None if data.static is None else open_data(data.static.path)
        predictors = None if data.predictors is None else open_data(data.predictors.path)
        common = dict(
            variables=data.target.variables,
            static=static,
            static_variables=None if data.static is None else data.static.variables,
            predictors=predictors,
            predictor_variables=None if data.predictors is None else data.predictors.variables,
        )
        if data.pairing == "mos":
            assert data.coarse is not None
            return MOS(data.scale, crop=data.crop).pair(
                target, open_data(data.coarse.path), coarse_variables=data.coarse.variables, **common
            )
        return PerfectProg(data.scale, crop=data.crop).pair(target, **common)

    def run(self, *, resume: bool = False, progress: bool = True) -> ExperimentResult:
        data_config = self.config.data
        paired = self.pair()
        train = paired.select_time(*data_config.train_period, role="train_period")
        val = None if data_config.val_period is None else paired.select_time(*data_config.val_period, role="val_period")
        test = None if data_config.test_period is None else paired.select_time(*data_config.test_period, role="test_period")
        normalizer = Normalizer.fit(train)
        model_config = self.config.model
        model = DownscalingModel.build(
            model_config.name, train, normalizer, params=model_config.params, config=self.config.to_dict(),
            time_window=model_config.time_window,
        )
        logger.info(
            "training %s (%d parameters) on %d samples, validating on %d",
            self.config.model.name, sum(p.numel() for p in model.parameters()), train.target.sizes["time"],
            0 if val is None else val.target.sizes["time"],
        )
        trainer = SupervisedTrainer(**self.config.training.model_dump(), checkpoint_dir=self.output_dir / "checkpoints", progress=progress)
        trainer.fit(
            model,
            DownscalingDataset(train, normalizer, data_config.patch_size, model_config.time_window),
            None if val is None else DownscalingDataset(val, normalizer, time_window=model_config.time_window),
            resume=resume,
        )
        metrics = None if test is None else verify(model, test, self.output_dir)
        return ExperimentResult(model=model, output_dir=self.output_dir, metrics=metrics)

    @property
    def best_checkpoint(self) -> Path:
        return self.output_dir / "checkpoints" / BEST_CHECKPOINT


def coarse_inputs_dataset(data: PairedData) -> xr.Dataset:
    """The coarse inputs of ``data`` as a Dataset of named variables, as a user would hold them."""
    return xr.Dataset(
        {
            name: data.inputs.sel(channel=name, drop=True).assign_attrs(dict(data.attrs.get(name, {})))
            for name in data.input_variables
        }
    )


def verify(model: DownscalingModel, test: PairedData, output_dir: Path) -> dict[str, dict[str, float]]:
    """Compare the network with bicubic interpolation on ``test``; write metrics, predictions and maps.

    Returns ``{method: {metric: value}}`` for "bicubic" and the network's name,
    per target variable when there are several (keys ``method/variable``).
    """
    output_dir.mkdir(parents=True, exist_ok=True)
    meta = model.metadata
    predicted = downscale(model, coarse_inputs_dataset(test))
    metrics: dict[str, dict[str, float]] = {}
    several = len(meta.target_variables) > 1
    for index, name in enumerate(meta.target_variables):
        truth = test.target.sel(variable=name, drop=True).assign_attrs(dict(test.attrs.get(name, {})))
        coarse = test.inputs.isel(channel=index, drop=True).assign_attrs(truth.attrs)
        bicubic = interpolate_to_fine(coarse, meta.scale)
        network = predicted[name]
        for method, field in (("bicubic", bicubic), (meta.architecture, network)):
            metrics[f"{method}/{name}" if several else method] = compute_metrics(field, truth)
        sample = int(abs(truth - truth.mean("time")).mean(("lat", "lon")).argmax("time"))
        when = str(truth["time"].values[sample])[:16]
        plot_comparison(
            {
                "coarse input": coarse.isel(time=sample),
                "bicubic": bicubic.isel(time=sample),
                meta.architecture: network.isel(time=sample),
                "truth": truth.isel(time=sample),
            },
            output_dir / f"maps_{name}.png",
            title=f"{name} on {when} UTC (test period)",
        )
        plot_metric_maps(
            {"bicubic": rmse_map(bicubic, truth), meta.architecture: rmse_map(network, truth)},
            output_dir / f"rmse_maps_{name}.png",
            title=f"RMSE of {name} over the test period",
        )
    write_netcdf(predicted, output_dir / "test_downscaled.nc")
    with atomic_path(output_dir / "metrics.json") as temporary:
        temporary.write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics
