"""Size, cost and CPU speed of every registered network at its default size.

For each model (x4, 1 input, 1 output and 2 static channels) on 64 x 64
high-resolution samples (16 x 16 coarse cells), prints the parameters, the
forward FLOPs per sample (``torch.utils.flop_counter``, a multiply-add counted
as 2 FLOPs), and training and inference throughput. Training is a masked-MAE
step with Adam at batch 16 in the channels-last layout the trainer uses;
inference runs in evaluation mode without gradients at batch 64. A sample of a
spatio-temporal (``rec*``) network is a window of 4 time steps, so its FLOPs
and samples/s are per window::

    python benchmarks/models.py [--models resnet_spc,unet_pin] [--steps 5] [--threads N]
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from dl4ds import models
from dl4ds.training.losses import masked_mae
from machine import describe

SCALE = 4
FINE = 64
WINDOW = 4
TRAIN_BATCH = 16
INFERENCE_BATCH = 64


def sample_batch(temporal: bool, batch: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random (x, static, y) for ``batch`` samples of 64 x 64 fine cells."""
    coarse = FINE // SCALE
    if temporal:
        return torch.randn(batch, WINDOW, 1, coarse, coarse), torch.randn(batch, 2, FINE, FINE), torch.randn(batch, WINDOW, 1, FINE, FINE)
    x = torch.randn(batch, 1, coarse, coarse).contiguous(memory_format=torch.channels_last)
    return x, torch.randn(batch, 2, FINE, FINE).contiguous(memory_format=torch.channels_last), torch.randn(batch, 1, FINE, FINE)


def forward_flops(network: torch.nn.Module) -> int:
    x, static, _ = sample_batch(network.temporal, 1)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        network(x, static)
    return counter.get_total_flops()


def training_rate(network: torch.nn.Module, steps: int) -> float:
    network.train().to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(network.parameters(), lr=1e-3)
    x, static, y = sample_batch(network.temporal, TRAIN_BATCH)
    mask = torch.ones_like(y, dtype=torch.bool)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        masked_mae(network(x, static), y, mask).backward()
        optimizer.step()

    return _rate(step, steps, TRAIN_BATCH)


@torch.no_grad()
def inference_rate(network: torch.nn.Module, steps: int) -> float:
    network.eval()
    x, static, _ = sample_batch(network.temporal, INFERENCE_BATCH)
    return _rate(lambda: network(x, static), steps, INFERENCE_BATCH)


def _rate(step, steps: int, batch: int) -> float:
    for _ in range(2):  # warm-up: allocations and kernel selection
        step()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", help="comma-separated names (default: every registered model)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per measurement after 2 warm-up steps")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    names = args.models.split(",") if args.models else models.list_models()
    print(describe())
    print(f"x{SCALE}, {FINE}x{FINE} fine cells, 1 input, 1 output, 2 static channels; rec* samples are windows of {WINDOW} steps")
    print(f"{'model':18s} {'parameters':>10s} {'GFLOPs/sample':>14s} {'train samples/s':>16s} {'infer samples/s':>16s}")
    for name in names:
        torch.manual_seed(0)
        network = models.create(name, scale=SCALE, in_channels=1, out_channels=1, static_channels=2)
        parameters = sum(p.numel() for p in network.parameters())
        flops = forward_flops(network)
        train = training_rate(network, args.steps)
        infer = inference_rate(network, args.steps)
        print(f"{name:18s} {parameters:>10,d} {flops / 1e9:>14.3f} {train:>16.1f} {infer:>16.1f}", flush=True)


if __name__ == "__main__":
    main()
