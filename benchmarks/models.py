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
from collections.abc import Callable

import torch
from machine import describe
from torch.utils.flop_counter import FlopCounterMode

from dl4ds import networks
from dl4ds.training.losses import masked_mae

SCALE = 4
FINE = 64
WINDOW = 4
TRAIN_BATCH = 16
INFERENCE_BATCH = 64
WARMUP = 2


def sample_batch(temporal: bool, batch: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random (x, static, y) for ``batch`` samples of 64 x 64 fine cells, in the trainer's layouts.

    Like :class:`dl4ds.training.SupervisedTrainer`, the 4-D tensors (static fields, and
    the inputs of a spatial network) are channels-last; windows (B, T, C, h, w) are not.
    """
    coarse = FINE // SCALE
    frames = (batch, WINDOW) if temporal else (batch,)
    x = torch.randn(*frames, 1, coarse, coarse)
    if not temporal:
        x = x.contiguous(memory_format=torch.channels_last)
    static = torch.randn(batch, 2, FINE, FINE).contiguous(memory_format=torch.channels_last)
    return x, static, torch.randn(*frames, 1, FINE, FINE)


def forward_flops(network: torch.nn.Module) -> int:
    """FLOPs of one forward pass on a single sample (batch 1)."""
    x, static, _ = sample_batch(network.temporal, 1)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        network(x, static)
    return counter.get_total_flops()


def training_rate(network: torch.nn.Module, steps: int) -> float:
    """Samples per second of training steps: forward, masked MAE, backward, Adam step."""
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
    """Samples per second of forward passes in evaluation mode without gradients."""
    network.eval()
    x, static, _ = sample_batch(network.temporal, INFERENCE_BATCH)
    return _rate(lambda: network(x, static), steps, INFERENCE_BATCH)


def _rate(step: Callable[[], object], steps: int, batch: int) -> float:
    for _ in range(WARMUP):  # warm-up: allocations and kernel selection
        step()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", help="comma-separated names (default: every registered model)")
    parser.add_argument(
        "--steps", type=int, default=3, help=f"timed steps per measurement after {WARMUP} warm-up steps (default 3)"
    )
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    names = args.models.split(",") if args.models else networks.list_models()
    unknown = [name for name in names if name not in networks.list_models()]
    if unknown:
        parser.error(f"unknown models {unknown}; see `dl4ds models`")
    if args.steps < 1:
        parser.error("--steps must be >= 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    print(describe())
    print(
        f"x{SCALE}, {FINE}x{FINE} fine cells, 1 input, 1 output, 2 static channels; training batch {TRAIN_BATCH}, inference batch {INFERENCE_BATCH}"
    )
    print(
        f"rec* models: a sample is a window of {WINDOW} time steps; their GFLOPs and samples/s count one window as one sample"
    )
    print(f"{'model':18s} {'parameters':>10s} {'GFLOPs/sample':>14s} {'train samples/s':>16s} {'infer samples/s':>16s}")
    for name in names:
        torch.manual_seed(0)
        network = networks.create(name, scale=SCALE, in_channels=1, out_channels=1, static_channels=2)
        parameters = sum(p.numel() for p in network.parameters())
        flops = forward_flops(network)
        train = training_rate(network, args.steps)
        infer = inference_rate(network, args.steps)
        print(f"{name:18s} {parameters:>10,d} {flops / 1e9:>14.3f} {train:>16.1f} {infer:>16.1f}", flush=True)
    print(f"{len(names)} models in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
