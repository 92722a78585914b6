"""Trains a small resnet_spc on the bundled ERA5 week; run by the distributed tests, alone or under torchrun.

    python -m torch.distributed.run --standalone --nproc_per_node 2 tests/distributed_worker.py OUTPUT [--epochs N]
        [--trainer supervised|cgan|diffusion] [--resume]

Writes OUTPUT/last.pt and OUTPUT/best.pt (rank 0), like any training run.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

from dl4ds import datasets
from dl4ds.data import DownscalingDataset, Normalizer, PerfectProg
from dl4ds.model import DownscalingModel
from dl4ds.training import Trainer, TrainingOptions, create_trainer


def train(output: Path, epochs: int, trainer_name: str = "supervised", resume: bool = False) -> Trainer:
    """Train on days 1-5 (patches of 16 x 16 fine cells), validate on days 6-7; returns the trainer."""
    week = datasets.era5_t2m_uk().sel(time=slice("2019-03-01", "2019-03-07")).isel(time=slice(None, None, 3))
    pairs = PerfectProg(scale=4).pair(week, static=datasets.uk_static())
    train_pairs, val_pairs = (
        pairs.select_time("2019-03-01", "2019-03-05"),
        pairs.select_time("2019-03-06", "2019-03-07"),
    )
    normalizer = Normalizer.fit(train_pairs)
    torch.manual_seed(0)
    small = {"n_filters": 8, "n_blocks": 1}
    extra: dict[str, Any]  # the trainer's own options
    if trainer_name == "diffusion":  # stage 1 trained for one epoch in the run, then the denoiser
        model = DownscalingModel.build(
            "residual_diffusion",
            train_pairs,
            normalizer,
            params={"regressor_params": small, "n_filters": 8, "depth": 1, "embedding": 8},
        )
        extra = {"diffusion": {"stage1_epochs": 1}, "ema_decay": 0.9}
    else:
        params = small | ({"noise_channels": 2} if trainer_name == "cgan" else {})
        model = DownscalingModel.build("resnet_spc", train_pairs, normalizer, params=params)
        extra = {"gan": {"adversarial_weight": 0.1}} if trainer_name == "cgan" else {}
    options = TrainingOptions(
        trainer=trainer_name, epochs=epochs, batch_size=8, learning_rate=2e-3, lr_schedule="constant", seed=0, **extra
    )
    trainer = create_trainer(options, checkpoint_dir=output, progress=False)
    trainer.fit(
        model,
        DownscalingDataset(train_pairs, normalizer, patch_size=(16, 16), seed=0),
        DownscalingDataset(val_pairs, normalizer),
        resume=resume,
    )
    return trainer


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("output", type=Path)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--trainer", default="supervised")
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()
    train(args.output, args.epochs, args.trainer, args.resume)
