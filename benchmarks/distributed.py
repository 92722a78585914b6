"""Data-parallel training: the loss of 2 Gloo processes step by step against 1 process, and GPU throughput.

1. resnet_spc (default parameters, x4, static fields) trains on 8 hourly ERA5
   fields with a global batch of 8, so every epoch is one optimisation step, for
   ``--steps`` steps: once in this process's child, once under
   ``torchrun --nproc_per_node 2`` (Gloo, 4 samples per process). Prints both
   losses at every step and the largest difference (target 1e-5).
2. With a CUDA GPU: training samples/s of resnet_spc on 128 x 128 fine cells,
   fp32, bf16 and bf16 + torch.compile (skipped without a GPU).

    python benchmarks/distributed.py [--steps 10]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from machine import describe


def worker(output: Path, steps: int) -> None:
    """Train for ``steps`` one-step epochs; rank 0 writes ``output/last.pt``."""
    from dl4ds import datasets
    from dl4ds.data import DownscalingDataset, Normalizer, PerfectProg
    from dl4ds.model import DownscalingModel
    from dl4ds.training import SupervisedTrainer

    era5 = datasets.era5_t2m_uk().isel(time=slice(0, 8))
    pairs = PerfectProg(scale=4).pair(era5, static=datasets.uk_static())
    normalizer = Normalizer.fit(pairs)
    torch.manual_seed(0)
    model = DownscalingModel.build("resnet_spc", pairs, normalizer)
    trainer = SupervisedTrainer(
        epochs=steps, batch_size=8, learning_rate=1e-3, lr_schedule="constant", progress=False, checkpoint_dir=output
    )
    trainer.fit(model, DownscalingDataset(pairs, normalizer))


def losses(output: Path) -> np.ndarray:
    from dl4ds.model.checkpoint import read_checkpoint

    return np.array(
        [record["train_loss"] for record in read_checkpoint(output / "last.pt")["training_state"]["history"]]
    )


def compare_processes(steps: int) -> None:
    with tempfile.TemporaryDirectory() as temporary:
        root = Path(temporary)
        runs = {
            "1 process": [sys.executable, __file__, "--worker", str(root / "one"), "--steps", str(steps)],
            "2 processes": [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--standalone",
                "--nproc_per_node=2",
                __file__,
                "--worker",
                str(root / "two"),
                "--steps",
                str(steps),
            ],
        }
        for name, command in runs.items():
            start = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True)
            print(f"{name}: {time.perf_counter() - start:.1f} s")
        one, two = losses(root / "one"), losses(root / "two")
    print("step  loss (1 process)  loss (2 processes)  difference")
    for step, (a, b) in enumerate(zip(one, two), start=1):
        print(f"{step:4d}  {a:16.8f}  {b:18.8f}  {abs(a - b):10.2e}")
    print(f"largest difference over {len(one)} steps: {np.abs(one - two).max():.2e} (target 1e-5)")


def gpu_throughput() -> None:
    if not torch.cuda.is_available():
        print("no CUDA GPU: fp32 / bf16 / compiled throughput skipped")
        return
    from dl4ds import networks

    device = torch.device("cuda")
    batch = 32
    x = torch.randn(batch, 1, 32, 32, device=device).to(memory_format=torch.channels_last)
    static = torch.randn(batch, 2, 128, 128, device=device).to(memory_format=torch.channels_last)
    y = torch.randn(batch, 1, 128, 128, device=device)
    for label, dtype, compiled in (
        ("fp32", None, False),
        ("bf16", torch.bfloat16, False),
        ("bf16 + compile", torch.bfloat16, True),
    ):
        torch.manual_seed(0)
        network = networks.create("resnet_spc", scale=4, in_channels=1, out_channels=1, static_channels=2)
        network = network.to(device, memory_format=torch.channels_last)
        optimizer = torch.optim.Adam(network.parameters(), lr=1e-3)
        step_network = torch.compile(network) if compiled else network

        def step(step_network=step_network, optimizer=optimizer, dtype=dtype) -> None:
            with torch.autocast("cuda", dtype=dtype or torch.float32, enabled=dtype is not None):
                loss = (step_network(x, static).float() - y).abs().mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        for _ in range(10):  # warm-up (and compilation)
            step()
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(50):
            step()
        torch.cuda.synchronize()
        print(
            f"{label}: {50 * batch / (time.perf_counter() - start):,.0f} samples/s (resnet_spc, 128 x 128 fine cells)"
        )


def main() -> None:
    if sys.argv[1:2] == ["--worker"]:
        parser = argparse.ArgumentParser()
        parser.add_argument("--worker", type=Path)
        parser.add_argument("--steps", type=int)
        args = parser.parse_args()
        worker(args.worker, args.steps)
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    print(describe())
    compare_processes(args.steps)
    gpu_throughput()


if __name__ == "__main__":
    main()
